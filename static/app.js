/* Live overview and control room of the EMQ X 3.0 stand-in: plain JavaScript, no library, no
 * build step, nothing from the internet.
 *
 * Sign-in checks the dashboard user with POST /api/v3/auth (the one API route that needs no
 * credentials), keeps "Basic <base64>" in sessionStorage, and every later call carries it as an
 * Authorization header, so the browser's own Basic-auth dialog never appears.
 *
 * Polling (every 3 s; ?refresh=N seconds changes that) reads the public API and the /_standin/
 * controls, marked X-Standin-Overview: 1 so the stand-in leaves it out of its journal. Each source
 * runs on its own: a slow or failing route greys and reports only the panel it feeds, a source
 * still waiting is not asked again. The actions of the control room (and the buttons on nodes,
 * plugins, alarms and connections) are unmarked requests: they are what a presenter wants to
 * see in the journal. Every write sends Content-Type: application/json.
 *
 * Failure states: a network error on any request means the server cannot be reached (a sticky
 * banner, stale panels greyed, "last good" time); a JSON error answer (an injected fault, a
 * stopped node) is reported in the panel it breaks.
 */
(function () {
  "use strict";

  var ROOT_STANDIN = "/_standin"; // worlds are made, listed and deleted at the root only
  var STORE_KEY = "emqx-standin.auth";
  var USER_KEY = "emqx-standin.user";
  var FILTER_KEY = "emqx-standin.node";
  var DEVICES_KEY = "emqx-standin.devices";
  var THEME_KEY = "emqx-standin.theme";
  var WORLD_KEY = "emqx-standin.world";
  var PAGE_SIZES = [10, 50, 100];
  var HISTORY = 60; // samples kept for the charts
  var JOURNAL_LIMIT = 100;
  var REQUEST_TIMEOUT_MS = 20000;

  var refreshSeconds = (function () {
    var raw = new URLSearchParams(window.location.search).get("refresh");
    var n = raw === null ? 3 : Number(raw);
    return isFinite(n) && n >= 0.2 ? n : 3;
  })();

  var $ = function (id) { return document.getElementById(id); };

  /* The world the overview shows ("" = the default one). Everything the page reads and does
     goes to that world's API and controls, /worlds/<name>/api/v3 and /worlds/<name>/_standin. */
  var world = sessionStorage.getItem(WORLD_KEY) || "";
  var API, STANDIN;
  function setBase() {
    var base = world ? "/worlds/" + encodeURIComponent(world) : "";
    API = base + "/api/v3";
    STANDIN = base + "/_standin";
  }
  setBase();

  // ------------------------------------------------------------------ small helpers

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === "text") node.textContent = v;
        else if (k === "className") node.className = v;
        else if (k === "onclick") node.addEventListener("click", v);
        else node.setAttribute(k, v === true ? "" : v);
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function fmtInt(n) { return Number(n || 0).toLocaleString("en-US"); }

  function fmtRate(n) {
    if (n === null || n === undefined || !isFinite(n)) return "–";
    if (n >= 100) return Math.round(n).toLocaleString("en-US");
    if (n >= 10) return n.toFixed(1);
    return n.toFixed(2);
  }

  function fmtCompact(n) {
    if (n >= 1e9) return trim(n / 1e9) + "G";
    if (n >= 1e6) return trim(n / 1e6) + "M";
    if (n >= 1e3) return trim(n / 1e3) + "k";
    return trim(n);
  }
  function trim(n) { return String(Number(n.toFixed(n >= 10 ? 0 : 2))); }

  function fmtBytes(n) {
    if (n === null || n === undefined || !isFinite(n)) return "–";
    var units = ["B", "kB", "MB", "GB"];
    var i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? Math.round(n) : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
  }

  function text(v) {
    return v === null || v === undefined || v === "undefined" || v === "" ? "—" : String(v);
  }

  function clock(date) { return (date || new Date()).toLocaleTimeString("en-GB"); }

  // "76.45M" -> bytes (K, M, G, T suffixes; plain numbers are bytes).
  function parseSize(s) {
    var m = /^\s*([\d.]+)\s*([KMGT]?)/i.exec(String(s || ""));
    if (!m) return NaN;
    var mult = { "": 1, K: 1024, M: 1048576, G: 1073741824, T: 1099511627776 };
    return parseFloat(m[1]) * mult[m[2].toUpperCase()];
  }

  function fmtMem(v) {
    return typeof v === "number" ? (v / 1048576).toFixed(2) + "M" : text(v);
  }

  // "2 days,18 hours, 25 minutes, 32 seconds" -> "2 d 18 h 25 min 32 s".
  function shortUptime(s) {
    return String(s || "")
      .replace(/\s*days?/g, " d").replace(/\s*hours?/g, " h")
      .replace(/\s*minutes?/g, " min").replace(/\s*seconds?/g, " s")
      .replace(/\s*,\s*/g, " ").trim();
  }

  function enc(s) { return encodeURIComponent(s); }

  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

  // ------------------------------------------------------------------ theme

  var darkQuery = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function theme() {
    return document.documentElement.dataset.theme || (darkQuery && darkQuery.matches ? "dark" : "light");
  }

  function applyTheme(choice) {
    if (choice) document.documentElement.dataset.theme = choice;
    var dark = theme() === "dark";
    var button = $("theme-toggle");
    document.documentElement.dataset.themeNow = dark ? "dark" : "light";
    button.textContent = dark ? "☀ Light" : "☾ Dark";
    button.setAttribute("aria-label", "Switch to the " + (dark ? "light" : "dark") + " theme");
    button.title = "Switch to the " + (dark ? "light" : "dark") + " theme (the page follows the system until one is chosen)";
  }

  $("theme-toggle").addEventListener("click", function () {
    var next = theme() === "dark" ? "light" : "dark";
    try { localStorage.setItem(THEME_KEY, next); } catch (e) { /* private mode */ }
    applyTheme(next);
  });
  if (darkQuery && darkQuery.addEventListener) darkQuery.addEventListener("change", function () { applyTheme(); });
  applyTheme((function () { try { return localStorage.getItem(THEME_KEY); } catch (e) { return null; } })());

  // ------------------------------------------------------------------ requests

  function basicToken(user, password) {
    // btoa() only takes Latin-1: encode the UTF-8 bytes first.
    var bytes = new TextEncoder().encode(user + ":" + password);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return "Basic " + btoa(bin);
  }

  function credentials() { return sessionStorage.getItem(STORE_KEY); }

  function AuthError(message) { this.message = message; }
  function NetError(message) { this.message = message; }
  /* An answer that is not {"code":0}: HTTP status, the envelope's code and message. */
  function ApiError(info) {
    this.method = info.method; this.path = info.path; this.status = info.status;
    this.code = info.code; this.message = info.message; this.timeout = !!info.timeout;
  }
  ApiError.prototype.describe = function () {
    if (this.timeout) return this.method + " " + this.path + ": " + this.message;
    var what = this.code === null || this.code === undefined ? "" : "code " + this.code + " ";
    return this.method + " " + this.path + " answered HTTP " + this.status + ", " + what +
      "“" + this.message + "”";
  };

  function describe(e) {
    if (e instanceof ApiError) return e.describe();
    return e && e.message ? e.message : String(e);
  }

  /* One request. opts.overview marks the page's own polling (left out of the journal);
     writes carry a JSON body (or none) with Content-Type: application/json. */
  function call(method, path, opts) {
    opts = opts || {};
    var token = credentials();
    if (!token) return Promise.reject(new AuthError("Not signed in"));
    var headers = { "Authorization": token, "Accept": "application/json" };
    if (opts.overview) headers["X-Standin-Overview"] = "1";
    var init = { method: method, headers: headers, credentials: "omit", cache: "no-store" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      if (opts.body !== undefined) init.body = JSON.stringify(opts.body);
    }
    var controller = new AbortController();
    var timeout = setTimeout(function () { controller.abort(); }, opts.timeout || REQUEST_TIMEOUT_MS);
    init.signal = controller.signal;
    return fetch(path, init).then(function (res) {
      clearTimeout(timeout);
      reachable();
      if (res.status === 401) throw new AuthError("The server no longer accepts these credentials.");
      return res.text().then(function (raw) {
        var body = null;
        try { body = JSON.parse(raw); } catch (e) { body = null; }
        if (!body || typeof body !== "object") {
          throw new ApiError({ method: method, path: path, status: res.status, code: null,
                               message: "not JSON (" + (raw.length ? raw.slice(0, 60) : "empty") + ")" });
        }
        if (body.code !== 0) {
          throw new ApiError({ method: method, path: path, status: res.status, code: body.code,
                               message: body.message === undefined ? "error" : String(body.message) });
        }
        return body;
      });
    }, function (err) {
      clearTimeout(timeout);
      if (err && err.name === "AbortError") {
        throw new ApiError({ method: method, path: path, timeout: true,
                             message: "no answer within " + Math.round((opts.timeout || REQUEST_TIMEOUT_MS) / 1000) + " s" });
      }
      unreachable();
      throw new NetError("Could not reach the server (" + (err && err.message ? err.message : "network error") + ")");
    });
  }

  /* The page's own reading. An answer for another world than the one shown now (the
     presenter switched while it was on its way) is dropped, never drawn. */
  function poll(path) {
    var base = API;
    return call("GET", path, { overview: true }).then(function (body) {
      if (base !== API) throw new StaleAnswer();
      return body;
    });
  }
  function StaleAnswer() { this.message = "an answer for the world shown before"; }

  // ------------------------------------------------------------------ state

  var generation = 0; // bumped at sign-out and reset so late answers are dropped
  var timer = null;
  var filter = sessionStorage.getItem(FILTER_KEY) || ""; // "" = all nodes
  var nodes = []; // last /nodes/ answer
  var nodeMemory = {}; // name -> {status, since (Date|null), info (last running object)}
  var stats = []; // last /stats/ answer
  var counters = {}; // node -> {t, values}: the last metrics sample
  var history = []; // {t, rates: {node: {...}}}
  var standin = null; // last GET /_standin: settings, faults
  var routeNames = []; // the catalogue's route names (for the fault form)
  var journal = []; // last journal answer
  var devices = loadDevices();
  var worlds = null; // last GET /_standin/worlds (at the root)
  var rootSnapshots = []; // the default world's snapshots (a new world can start from one)
  var snapshots = null; // the shown world's snapshots
  var online = { ok: true, since: null, lastGood: null };

  function loadDevices() {
    try { return JSON.parse(sessionStorage.getItem(DEVICES_KEY)) || []; } catch (e) { return []; }
  }
  function saveDevices() {
    if (devices.length) sessionStorage.setItem(DEVICES_KEY, JSON.stringify(devices));
    else sessionStorage.removeItem(DEVICES_KEY);
  }

  function nodePath(name) { return "/nodes/" + enc(name); }
  function runningNodes() { return nodes.filter(function (n) { return n.node_status === "Running"; }); }

  // ------------------------------------------------------------------ panels: errors and faults

  // Routes each panel reads (the catalogue's names), so an injected fault can be shown beside it.
  var PANEL_ROUTES = {
    nodes: ["list_nodes"],
    totals: ["list_stats", "list_nodes"],
    charts: ["list_all_metrics"],
    alarms: ["list_all_alarms", "list_node_alarms"],
    plugins: ["list_all_plugins", "list_node_plugins"],
    conn: ["list_connections", "list_node_connections", "lookup_connections", "lookup_node_connections"],
    sess: ["list_sessions", "list_node_sessions", "lookup_session", "lookup_node_session"],
    sub: ["list_subscriptions", "list_node_subscriptions", "lookup_client_subscriptions",
          "lookup_client_subscriptions_with_node"],
    route: ["list_routes", "lookup_routes"]
  };
  var PANEL_TITLES = {
    nodes: "Nodes", totals: "Totals", charts: "Throughput", alarms: "Alarms", plugins: "Plugins",
    conn: "Connections", sess: "Sessions", sub: "Subscriptions", route: "Routes", journal: "Journal",
    control: "Control room"
  };

  function panel(name) { return document.querySelector("[data-panel='" + name + "']"); }

  var panelProblems = {}; // panel -> {source: {text, kind}}

  function setProblem(panelName, source, problem) {
    var probs = panelProblems[panelName] || (panelProblems[panelName] = {});
    if (problem) probs[source] = problem; else delete probs[source];
    var p = panel(panelName);
    if (!p) return;
    var box = p.querySelector(".panel-error");
    if (!box) return;
    var list = Object.keys(probs).map(function (k) { return probs[k]; });
    p.classList.toggle("is-stale", list.some(function (x) { return x.stale; }));
    box.hidden = !list.length;
    box.className = "panel-error" + (list.length && list.every(function (x) { return x.kind === "notice"; }) ? " notice" : "");
    box.textContent = list.map(function (x) { return x.text; }).join(" · ");
  }

  function apiProblem(e, panelName, lastGood) {
    var since = lastGood ? " Showing what was read at " + clock(lastGood) + "." : "";
    if (e instanceof ApiError && e.code === 102 && e.message === "nodedown" && filter) {
      return { kind: "notice", stale: true,
               text: filter + " is stopped: it has nothing to show (" + e.method + " " + e.path + " answered “nodedown”)." };
    }
    return { kind: "error", stale: true,
             text: PANEL_TITLES[panelName] + " could not be read at " + clock() + ": " + describe(e) + "." + since };
  }

  function renderFaultChips() {
    var faults = standin && standin.faults;
    Object.keys(PANEL_ROUTES).forEach(function (name) {
      var p = panel(name);
      var chip = p && p.querySelector(".fault-chip");
      if (!chip) return;
      var hit = null;
      if (faults) {
        if (!faults.routes) hit = ["every route"];
        else hit = faults.routes.filter(function (r) { return PANEL_ROUTES[name].indexOf(r) >= 0; });
        if (!hit.length) hit = null;
      }
      chip.hidden = !hit;
      if (hit) {
        chip.textContent = "fault injected: " + hit.join(", ");
        chip.title = describeFault(faults);
      }
    });
  }

  function describeFault(f) {
    var parts = [];
    if (f.error_rate > 0) {
      parts.push("HTTP " + f.error.status + " code " + f.error.code + " “" + f.error.message + "” on " +
                 Math.round(f.error_rate * 100) + "% of requests");
    }
    if (f.latency_ms.max > 0) {
      parts.push(f.latency_ms.min === f.latency_ms.max ? f.latency_ms.max + " ms latency"
                 : f.latency_ms.min + "–" + f.latency_ms.max + " ms latency");
    }
    if (!parts.length) parts.push("no effect (0% errors, 0 ms)");
    return parts.join(" and ") + ", on " + (f.routes ? f.routes.join(", ") : "every API route");
  }

  // ------------------------------------------------------------------ reachability

  function reachable() {
    online.lastGood = new Date();
    if (online.ok) return;
    online.ok = true;
    online.since = null;
    renderOnline();
  }

  function unreachable() {
    if (!online.ok) return;
    online.ok = false;
    online.since = new Date();
    renderOnline();
  }

  function renderOnline() {
    var banner = $("offline-banner");
    document.body.classList.toggle("is-offline", !online.ok);
    var pill = $("live-pill");
    pill.textContent = online.ok ? "live" : "offline";
    pill.className = "pill " + (online.ok ? "ok" : "bad");
    if (online.ok) {
      banner.hidden = true;
      banner.textContent = "";
      return;
    }
    banner.hidden = false;
    banner.replaceChildren(
      el("strong", { text: "Cannot reach the server" }),
      " since " + clock(online.since) + ". ",
      el("span", { "data-testid": "last-good",
                   text: online.lastGood ? "The data below is from " + clock(online.lastGood) + " (last good answer) and is greyed out. "
                                         : "Nothing was read yet. " }),
      "Retrying every " + refreshSeconds + " s…");
    $("refresh-status").textContent = online.lastGood ? "last good " + clock(online.lastGood) : "no answer yet";
  }

  // ------------------------------------------------------------------ nodes

  function noteNodes(list) {
    var now = new Date();
    list.forEach(function (n) {
      var mem = nodeMemory[n.name];
      if (!mem) {
        mem = nodeMemory[n.name] = { status: n.node_status, since: null, info: null };
      } else if (mem.status !== n.node_status) {
        mem.status = n.node_status;
        mem.since = mem.pending || now; // the page saw it change (or changed it itself)
        delete mem.pending;
      }
      if (n.node_status === "Running") mem.info = n;
    });
  }

  function nodeCard(n) {
    var running = n.node_status === "Running";
    var card = el("article", {
      className: "node-card " + (running ? "is-running" : "is-stopped") + (filter === n.name ? " is-selected" : ""),
      "data-testid": "node-card", "data-node": n.name, "data-status": n.node_status
    });
    var action = running
      ? el("button", { type: "button", className: "small", "data-testid": "node-stop", text: "Stop",
                       title: "PUT /_standin/nodes/" + n.name + " {node_status: Stopped}" })
      : el("button", { type: "button", className: "small primary", "data-testid": "node-start", text: "Start",
                       title: "PUT /_standin/nodes/" + n.name + " {node_status: Running}" });
    action.addEventListener("click", function () { setNodeStatus(n.name, running ? "Stopped" : "Running", action); });
    card.appendChild(el("header", null, [
      el("h3", { className: "node-name", text: n.name, title: n.name }),
      el("span", { className: "status " + (running ? "ok" : "bad"), "data-testid": "node-status",
                   text: running ? "Running" : "Stopped" }),
      action
    ]));
    if (running) {
      card.appendChild(el("dl", null, [
        el("dt", { text: "Version" }), el("dd", { "data-testid": "node-version", "data-f": "version" }),
        el("dt", { text: "Uptime" }), el("dd", { "data-testid": "node-uptime", "data-f": "uptime" }),
        el("dt", { text: "Memory" }), el("dd", { "data-testid": "node-memory" }, [
          el("span", { "data-f": "memory" }), el("div", { className: "bar" }, [el("span", { "data-f": "bar" })])]),
        el("dt", { text: "Load 1/5/15" }), el("dd", { "data-testid": "node-load", "data-f": "load" }),
        el("dt", { text: "Connections" }), el("dd", { "data-testid": "node-connections", "data-f": "connections" }),
        el("dt", { text: "Processes" }), el("dd", { "data-f": "processes" }),
        el("dt", { text: "OTP" }), el("dd", { "data-f": "otp" })
      ]));
    } else {
      card.appendChild(el("p", { className: "stopped-note", "data-testid": "node-stopped", "data-f": "stopped" }));
      card.appendChild(el("p", { className: "muted last-seen", "data-f": "lastseen" }));
    }
    return card;
  }

  function fill(card, field, value) {
    var node = card.querySelector("[data-f='" + field + "']");
    if (node && node.textContent !== value) node.textContent = value;
    return node;
  }

  function updateNodeCard(card, n) {
    card.classList.toggle("is-selected", filter === n.name);
    if (n.node_status === "Running") {
      var used = parseSize(n.memory_used), total = parseSize(n.memory_total);
      var pct = total > 0 ? Math.min(100, Math.round((used / total) * 100)) : 0;
      fill(card, "version", "EMQ X " + text(n.version));
      fill(card, "uptime", shortUptime(n.uptime)).title = text(n.uptime);
      fill(card, "memory", fmtMem(n.memory_used) + " / " + fmtMem(n.memory_total) + " (" + pct + "%)");
      card.querySelector("[data-f=bar]").style.width = pct + "%";
      fill(card, "load", text(n.load1) + " · " + text(n.load5) + " · " + text(n.load15));
      fill(card, "connections", fmtInt(n.connections));
      fill(card, "processes", fmtInt(n.process_used) + " / " + fmtInt(n.process_available));
      fill(card, "otp", text(n.otp_release));
    } else {
      var mem = nodeMemory[n.name] || {};
      fill(card, "stopped", mem.since
        ? "Stopped since " + clock(mem.since) + " (seen by this page)."
        : "Stopped: it already was when this page opened; the API does not say since when.");
      var info = mem.info;
      fill(card, "lastseen", info
        ? "Last seen running: EMQ X " + text(info.version) + ", up " + shortUptime(info.uptime) + ", " +
          fmtInt(info.connections) + " connections."
        : "The API shows a stopped node by its name and state only.");
    }
  }

  function renderNodes(list) {
    nodes = list;
    noteNodes(list);
    var box = $("node-list");
    var existing = {};
    Array.prototype.forEach.call(box.querySelectorAll("[data-testid=node-card]"), function (c) {
      existing[c.dataset.node] = c;
    });
    var cards = list.map(function (n) {
      var card = existing[n.name];
      if (!card || card.dataset.status !== n.node_status) card = nodeCard(n);
      updateNodeCard(card, n);
      return card;
    });
    if (!cards.length) cards = [el("p", { className: "muted", text: "No nodes." })];
    var unchanged = cards.length === box.children.length &&
      cards.every(function (c, i) { return box.children[i] === c; });
    if (!unchanged) box.replaceChildren.apply(box, cards);
    renderNodeChoices();
    renderTotalsNodes();
  }

  // The node filter and the node pickers of the control room follow the node list.
  function renderNodeChoices() {
    var select = $("node-filter");
    var known = nodes.map(function (n) { return n.name; });
    if (filter && known.length && known.indexOf(filter) < 0) setFilter("");
    var options = [el("option", { value: "", text: "All nodes" })].concat(nodes.map(function (n) {
      return el("option", { value: n.name, text: n.name + (n.node_status === "Running" ? "" : " (stopped)") });
    }));
    if (!same(optionList(select), options.map(function (o) { return [o.value, o.textContent]; }))) {
      select.replaceChildren.apply(select, options);
    }
    select.value = filter;
    Array.prototype.forEach.call(document.querySelectorAll(".node-select"), function (s) {
      var want = nodes.map(function (n) {
        return [n.name, n.name + (n.node_status === "Running" ? "" : " (stopped)")];
      });
      if (!same(optionList(s), want)) {
        var keep = s.value;
        s.replaceChildren.apply(s, want.map(function (w) { return el("option", { value: w[0], text: w[1] }); }));
        var first = runningNodes()[0];
        s.value = want.some(function (w) { return w[0] === keep; }) ? keep : (first ? first.name : want.length ? want[0][0] : "");
      }
    });
  }

  function optionList(select) {
    return Array.prototype.map.call(select.options, function (o) { return [o.value, o.textContent]; });
  }

  function setFilter(name) {
    filter = name;
    if (name) sessionStorage.setItem(FILTER_KEY, name); else sessionStorage.removeItem(FILTER_KEY);
    $("node-filter").value = name;
    Object.keys(tables).forEach(function (k) { tables[k].page = 1; tables[k].shown = null; });
    alarmsShown = null;
    pluginsShown = null;
    Object.keys(panelProblems).forEach(function (p) {
      Object.keys(panelProblems[p]).forEach(function (s) { setProblem(p, s, null); });
    });
    $("totals-title").textContent = name ? "Totals · " + name : "Cluster totals";
    $("rates-sub").replaceChildren("per second, from ", el("code", { text: API + "/metrics/" }),
                                   name ? ", " + name : ", all nodes");
    $("route-note").hidden = !name;
    Array.prototype.forEach.call(document.querySelectorAll("#node-list [data-testid=node-card]"), function (c) {
      c.classList.toggle("is-selected", c.dataset.node === name);
    });
    renderTotals();
    drawCharts();
  }

  $("node-filter").addEventListener("change", function (ev) {
    setFilter(ev.target.value);
    refreshNow();
  });

  // ------------------------------------------------------------------ totals

  function renderTotalsNodes() {
    var run = runningNodes().length;
    $("total-nodes").textContent = !nodes.length ? "–" : filter
      ? (nodes.some(function (n) { return n.name === filter && n.node_status === "Running"; }) ? "yes" : "no")
      : run + " / " + nodes.length;
    $("total-nodes").parentNode.classList.toggle("warn", nodes.length > 0 && run < nodes.length);
  }

  function renderTotals() {
    var rows = filter ? stats.filter(function (s) { return s.node === filter; }) : stats;
    var sum = function (key) {
      return rows.reduce(function (acc, s) { return acc + (Number(s[key]) || 0); }, 0);
    };
    // Topics and retained messages are cluster-wide: every node reports the same count.
    var max = function (key) {
      return rows.reduce(function (acc, s) { return Math.max(acc, Number(s[key]) || 0); }, 0);
    };
    var none = filter && !rows.length;
    $("total-connections").textContent = none ? "–" : fmtInt(sum("connections/count"));
    $("total-sessions").textContent = none ? "–" : fmtInt(sum("sessions/count"));
    $("total-subscriptions").textContent = none ? "–" : fmtInt(sum("subscriptions/count"));
    $("total-topics").textContent = none ? "–" : fmtInt(max("topics/count"));
    $("total-retained").textContent = none ? "–" : fmtInt(max("retained/count"));
    renderTotalsNodes();
  }

  // ------------------------------------------------------------------ charts

  var CHARTS = [
    { id: "messages", title: "Messages", unit: "messages/s", fmt: fmtRate, axis: fmtCompact, series: [
      { key: "msgIn", label: "received", cls: "s-in", rate: "rate-msg-in" },
      { key: "msgOut", label: "sent", cls: "s-out", rate: "rate-msg-out" }] },
    { id: "packets", title: "Packets", unit: "packets/s", fmt: fmtRate, axis: fmtCompact, series: [
      { key: "pktIn", label: "received", cls: "s-in", rate: "rate-pkt-in" },
      { key: "pktOut", label: "sent", cls: "s-out", rate: "rate-pkt-out" }] },
    { id: "bytes", title: "Bytes", unit: "bytes/s", fmt: function (v) { return fmtBytes(v) + "/s"; },
      axis: function (v) { return fmtBytes(v); }, series: [
      { key: "bytesIn", label: "received", cls: "s-in", rate: "rate-bytes-in" },
      { key: "bytesOut", label: "sent", cls: "s-out", rate: "rate-bytes-out" }] },
    { id: "connections", title: "Connections", unit: "per second", fmt: fmtRate, axis: fmtCompact, series: [
      { key: "connects", label: "connects", cls: "s-in", rate: "rate-conn-in" },
      { key: "disconnects", label: "disconnects", cls: "s-out", rate: "rate-conn-out" }] }
  ];

  var METRICS = {
    msgIn: ["messages/received"], msgOut: ["messages/sent"],
    pktIn: ["packets/received"], pktOut: ["packets/sent"],
    bytesIn: ["bytes/received"], bytesOut: ["bytes/sent"],
    connects: ["packets/connect"],
    disconnects: ["packets/disconnect/received", "packets/disconnect/sent"]
  };

  function buildCharts() {
    var box = $("charts");
    box.replaceChildren.apply(box, CHARTS.map(function (c) {
      var legend = c.series.map(function (s) {
        return el("span", { className: "legend" }, [
          svgEl("svg", { "class": "sw", viewBox: "0 0 24 8", "aria-hidden": "true" }),
          s.label + " ", el("b", { id: s.rate, "data-testid": s.rate, text: "–" })]);
      });
      var fig = el("figure", { className: "chart-card", "data-chart": c.id }, [
        el("figcaption", null, [
          el("span", { className: "chart-title" }, [c.title, " ", el("small", { className: "muted", text: c.unit })].concat(
            c.id === "connections" ? [el("span", { className: "chart-now" }, [el("b", { id: "conn-now", "data-testid": "conn-now", text: "–" }), " connected now"])] : [])),
          el("span", { className: "legends" }, legend)]),
        el("div", { className: "chart-box" }, [
          svgEl("svg", { id: "chart-" + c.id, "data-testid": "chart-" + c.id, "class": "chart", role: "img",
                         "aria-label": c.title + " per second over time" }),
          el("div", { className: "chart-tip", id: "chart-" + c.id + "-tip", "data-testid": "chart-tip", hidden: true })
        ])
      ]);
      // The legend's swatches draw the series' own stroke (colour and dash).
      Array.prototype.forEach.call(fig.querySelectorAll("svg.sw"), function (sw, i) {
        sw.appendChild(svgEl("line", { x1: 1, x2: 23, y1: 4, y2: 4, "class": "line " + c.series[i].cls }));
      });
      var svg = fig.querySelector("svg.chart");
      svg.addEventListener("pointermove", function (ev) { hoverChart(c, ev); });
      svg.addEventListener("pointerleave", function () { hideTip(c); });
      return fig;
    }));
    if (window.ResizeObserver) {
      var pending = null;
      new ResizeObserver(function () {
        cancelAnimationFrame(pending);
        pending = requestAnimationFrame(drawCharts);
      }).observe(box);
    }
  }

  function svgEl(tag, attrs, content) {
    var n = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (content !== undefined) n.textContent = content;
    return n;
  }

  function addMetrics(byNode) {
    var t = Date.now();
    var seen = {};
    var entry = { t: t, rates: {} };
    byNode.forEach(function (item) {
      var m = item.metrics || {};
      var values = {};
      Object.keys(METRICS).forEach(function (k) {
        values[k] = METRICS[k].reduce(function (acc, name) { return acc + (Number(m[name]) || 0); }, 0);
      });
      seen[item.node] = true;
      var prev = counters[item.node];
      // A sample right after the last one (an action asks at once) would divide a burst by
      // a tiny interval: it waits for the next one instead.
      if (prev && t - prev.t < refreshSeconds * 500) return;
      counters[item.node] = { t: t, values: values };
      if (!prev) return;
      var dt = (t - prev.t) / 1000;
      var r = {};
      Object.keys(values).forEach(function (k) {
        r[k] = Math.max(0, values[k] - prev.values[k]) / dt; // a reset counter is not a negative rate
      });
      entry.rates[item.node] = r;
    });
    // A node that left the answer (stopped) starts from a new baseline when it comes back.
    Object.keys(counters).forEach(function (n) { if (!seen[n]) delete counters[n]; });
    if (Object.keys(entry.rates).length) {
      history.push(entry);
      if (history.length > HISTORY) history.shift();
    }
    drawCharts();
  }

  // The samples of the chosen nodes: [{t, v: {key: rate}}] (samples without them are left out).
  function series() {
    var out = [];
    history.forEach(function (h) {
      var names = Object.keys(h.rates).filter(function (n) { return !filter || n === filter; });
      if (!names.length) return;
      var v = {};
      Object.keys(METRICS).forEach(function (k) {
        v[k] = names.reduce(function (acc, n) { return acc + h.rates[n][k]; }, 0);
      });
      out.push({ t: h.t, v: v });
    });
    return out;
  }

  function niceStep(max, ticks) {
    var raw = max / ticks;
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= raw) return steps[i] * p;
    return 10 * p;
  }

  var chartState = {};

  function drawCharts() {
    var pts = series();
    var conn = (filter ? stats.filter(function (s) { return s.node === filter; }) : stats)
      .reduce(function (a, s) { return a + (Number(s["connections/count"]) || 0); }, 0);
    if ($("conn-now")) $("conn-now").textContent = stats.length ? fmtInt(conn) : "–";
    CHARTS.forEach(function (c) { drawChart(c, pts); });
  }

  function drawChart(c, pts) {
    var svg = $("chart-" + c.id);
    if (!svg) return;
    var W = Math.max(240, Math.round(svg.getBoundingClientRect().width || 600));
    var H = Math.max(140, Math.round(svg.getBoundingClientRect().height || 190));
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    var L = 58, R = 14, T = 12, B = 26;
    // The time axis spans what there is (at least 10 samples), up to HISTORY samples.
    var tEnd = pts.length ? pts[pts.length - 1].t : Date.now();
    var windowMs = Math.min(HISTORY * refreshSeconds * 1000,
                            Math.max(10 * refreshSeconds * 1000, pts.length ? tEnd - pts[0].t : 0));
    var tStart = tEnd - windowMs;
    var visible = pts.filter(function (p) { return p.t >= tStart; });
    var maxV = visible.reduce(function (m, p) {
      return Math.max(m, p.v[c.series[0].key], p.v[c.series[1].key]);
    }, 0);
    var ticks = 4;
    var step = maxV > 0 ? niceStep(maxV, ticks) : (c.id === "bytes" ? 250 : 0.25);
    var top = step * Math.max(1, Math.ceil(maxV / step));
    var y = function (v) { return T + (H - T - B) * (1 - v / top); };
    var x = function (t) { return L + (W - L - R) * (t - tStart) / windowMs; };
    var out = [];
    for (var v = 0; v <= top + step / 2; v += step) {
      out.push(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "class": v === 0 ? "axis-line" : "grid" }));
      out.push(svgEl("text", { x: L - 8, y: y(v) + 4, "class": "axis", "text-anchor": "end" }, c.axis(v)));
    }
    // Time axis: clock times at a round step at least ~90 px apart.
    var plotW = W - L - R;
    var tStep = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800].map(function (s) { return s * 1000; })
      .filter(function (s) { return s / windowMs * plotW >= 90; })[0] || 3600000;
    for (var tt = Math.ceil(tStart / tStep) * tStep; tt <= tEnd; tt += tStep) {
      var d = new Date(tt);
      var label = tStep >= 60000 ? d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })
                                 : clock(d);
      out.push(svgEl("line", { x1: x(tt), x2: x(tt), y1: H - B, y2: H - B + 5, "class": "axis-line" }));
      // A label too close to an edge is anchored inside the chart instead of cut off.
      var anchor = x(tt) + 30 > W ? "end" : x(tt) - 30 < 0 ? "start" : "middle";
      out.push(svgEl("text", { x: anchor === "end" ? W - 1 : x(tt), y: H - 6, "class": "axis", "text-anchor": anchor }, label));
    }
    var stoppedNode = filter && nodes.some(function (n) { return n.name === filter && n.node_status !== "Running"; });
    if (stoppedNode || visible.length < 2) {
      var since = stoppedNode && nodeMemory[filter] && nodeMemory[filter].since;
      out.push(svgEl("text", { x: L + plotW / 2, y: T + (H - T - B) / 2, "class": "chart-note", "text-anchor": "middle" },
        stoppedNode ? filter + " is stopped" + (since ? " since " + clock(since) : "") + ": no metrics"
          : visible.length ? "collecting…" : "waiting for a second sample…"));
    }
    // One polyline per series and unbroken stretch (an outage leaves a gap).
    var gap = Math.max(2.5 * refreshSeconds * 1000, 4000);
    c.series.forEach(function (s) {
      var segment = [];
      var flush = function () {
        if (segment.length) {
          out.push(svgEl("polyline", { points: segment.join(" "), "class": "line " + s.cls, "data-series": s.key }));
        }
        segment = [];
      };
      visible.forEach(function (p, i) {
        if (i && p.t - visible[i - 1].t > gap) flush();
        segment.push(x(p.t).toFixed(1) + "," + y(p.v[s.key]).toFixed(1));
      });
      flush();
      var last = visible[visible.length - 1];
      if (last) out.push(svgEl("circle", { cx: x(last.t), cy: y(last.v[s.key]), r: 4, "class": "dot " + s.cls }));
    });
    var hover = svgEl("g", { "class": "hover" });
    out.push(hover);
    svg.replaceChildren.apply(svg, out);
    chartState[c.id] = { pts: visible, x: x, y: y, L: L, R: R, T: T, B: B, W: W, H: H, hover: hover,
                         tStart: tStart, windowMs: windowMs };
    var last = visible[visible.length - 1];
    c.series.forEach(function (s) {
      $(s.rate).textContent = last ? c.fmt(last.v[s.key]) : "–";
    });
    if (chartState[c.id].hoverX !== undefined) showTip(c, chartState[c.id].hoverX);
  }

  function hoverChart(c, ev) {
    var st = chartState[c.id];
    if (!st) return;
    var rect = ev.currentTarget.getBoundingClientRect();
    st.hoverX = (ev.clientX - rect.left) * (st.W / rect.width);
    showTip(c, st.hoverX);
  }

  function showTip(c, px) {
    var st = chartState[c.id];
    var tip = $("chart-" + c.id + "-tip");
    if (!st || !st.pts.length) { tip.hidden = true; return; }
    var t = st.tStart + (px - st.L) / (st.W - st.L - st.R) * st.windowMs;
    var best = st.pts.reduce(function (b, p) { return Math.abs(p.t - t) < Math.abs(b.t - t) ? p : b; }, st.pts[0]);
    var hx = st.x(best.t);
    st.hover.replaceChildren(svgEl("line", { x1: hx, x2: hx, y1: st.T, y2: st.H - st.B, "class": "crosshair" }));
    c.series.forEach(function (s) {
      st.hover.appendChild(svgEl("circle", { cx: hx, cy: st.y(best.v[s.key]), r: 5, "class": "dot " + s.cls }));
    });
    tip.replaceChildren.apply(tip, [el("b", { text: clock(new Date(best.t)) })].concat(c.series.map(function (s) {
      return el("span", { className: "tip-row" }, [
        el("i", { className: "tip-sw " + s.cls, "aria-hidden": "true" }), s.label + " ", el("b", { text: c.fmt(best.v[s.key]) })]);
    })));
    tip.hidden = false;
    var svg = $("chart-" + c.id);
    var width = svg.getBoundingClientRect().width;
    var left = hx * width / st.W;
    var w = tip.offsetWidth;
    tip.style.left = Math.max(0, left + 14 + w > width ? left - w - 14 : left + 14) + "px";
  }

  function hideTip(c) {
    var st = chartState[c.id];
    if (st) { delete st.hoverX; st.hover.replaceChildren(); }
    $("chart-" + c.id + "-tip").hidden = true;
  }

  // ------------------------------------------------------------------ alarms and plugins

  var alarmsShown = null;

  function renderAlarms(byNode) {
    if (same(alarmsShown, byNode)) return;
    alarmsShown = byNode;
    var items = [];
    byNode.forEach(function (entry) {
      (entry.alarms || []).forEach(function (a) {
        var clear = el("button", { type: "button", className: "small", "data-testid": "alarm-clear", text: "Clear",
                                   title: "DELETE /_standin/alarms/" + a.id + "?node=" + entry.node });
        clear.addEventListener("click", function () { clearAlarm(entry.node, a, clear); });
        items.push(el("li", { className: "alarm sev-" + a.severity, "data-testid": "alarm", "data-alarm-id": a.id,
                              "data-node": entry.node }, [
          el("span", { className: "sev", text: a.severity }),
          el("span", { className: "alarm-body" }, [
            el("strong", { text: a.title || a.id }),
            a.summary ? el("span", { className: "muted", text: a.summary }) : null,
            el("span", { className: "alarm-meta muted" }, [el("span", { className: "nowrap", text: entry.node }), " · ",
              el("span", { className: "nowrap", text: text(a.timestamp) })])
          ]),
          clear
        ]));
      });
    });
    var count = items.length;
    var list = $("alarm-list");
    if (!items.length) items.push(el("li", { className: "muted none", text: "No active alarms." }));
    list.replaceChildren.apply(list, items);
    $("alarm-count").textContent = String(count);
    $("alarm-count").className = "badge" + (count ? " warn" : "");
  }

  var pluginsShown = null;

  // Columns of plugin tables the panel holds side by side: a table needs ~14rem for the names
  // and ~7rem per node.
  function pluginGroups(nodeCount) {
    var box = $("plugin-list");
    var rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
    var need = (14 + 7 * nodeCount) * rem;
    return Math.max(1, Math.min(3, Math.floor((box.clientWidth + rem) / need)));
  }

  function renderPlugins(byNode) {
    var nodeNames = byNode.map(function (e) { return e.node; });
    var groups = pluginGroups(nodeNames.length);
    if (same(pluginsShown, [byNode, groups])) return;
    pluginsShown = [byNode, groups];
    var byName = {};
    var order = [];
    var active = 0, total = 0;
    byNode.forEach(function (entry) {
      (entry.plugins || []).forEach(function (p) {
        if (!byName[p.name]) { byName[p.name] = { info: p, on: {} }; order.push(p.name); }
        byName[p.name].on[entry.node] = !!p.active;
        total++;
        if (p.active) active++;
      });
    });
    // Plugins running somewhere first, then by name.
    order.sort(function (a, b) {
      var ra = nodeNames.some(function (n) { return byName[a].on[n]; });
      var rb = nodeNames.some(function (n) { return byName[b].on[n]; });
      return (rb - ra) || a.localeCompare(b);
    });
    var rows = order.map(function (name) {
      var p = byName[name];
      var anyOn = nodeNames.some(function (n) { return p.on[n]; });
      return el("tr", { className: "plugin" + (anyOn ? " on" : ""), "data-testid": "plugin", "data-plugin": name },
        [el("td", { className: "plugin-name", title: p.info.description, "data-label": "Plugin" }, [
          el("span", { className: "pname", text: name }),
          el("span", { className: "pdesc muted", text: p.info.description || "" })])]
        .concat(nodeNames.map(function (n) {
          var on = p.on[n];
          if (on === undefined) return el("td", { "data-label": n, text: "—" });
          var sw = el("button", {
            type: "button", role: "switch", className: "switch" + (on ? " on" : ""), "aria-checked": String(on),
            "data-testid": "plugin-toggle", "data-plugin": name, "data-node": n, "data-active": String(on),
            "aria-label": name + " on " + n,
            title: (on ? "Unload: PUT " : "Load: PUT ") + API + "/nodes/" + n + "/plugins/" + name + (on ? "/unload" : "/load")
          }, [el("span", { className: "knob", "aria-hidden": "true" }), el("span", { className: "switch-text", text: on ? "running" : "stopped" })]);
          sw.addEventListener("click", function () { togglePlugin(n, name, on, sw); });
          return el("td", { className: "node-col", "data-label": n }, [sw]);
        })));
    });
    var per = Math.ceil(rows.length / groups) || 1;
    var tablesOut = [];
    for (var g = 0; g * per < rows.length || (g === 0 && !rows.length); g++) {
      var head = el("tr", null, [el("th", { text: "Plugin" })].concat(nodeNames.map(function (n) {
        return el("th", { className: "node-col", text: n });
      })));
      var body = el("tbody", null, rows.slice(g * per, (g + 1) * per));
      if (!rows.length) body.appendChild(el("tr", { className: "empty" }, [el("td", { colspan: String(nodeNames.length + 1), text: "No plugins." })]));
      tablesOut.push(el("div", { className: "table-wrap" }, [el("table", { className: "plugin-table" }, [el("thead", null, [head]), body])]));
    }
    var box = $("plugin-list");
    box.style.gridTemplateColumns = "repeat(" + tablesOut.length + ", minmax(0, 1fr))";
    box.replaceChildren.apply(box, tablesOut);
    $("plugin-count").textContent = active + " / " + total + " running";
  }

  if (window.ResizeObserver) {
    new ResizeObserver(function () { if (pluginsShown) renderPlugins(pluginsShown[0]); }).observe($("plugin-list"));
  }

  // ------------------------------------------------------------------ paged tables

  function kickButton(c) {
    var b = el("button", { type: "button", className: "small danger-outline", "data-testid": "conn-kick", text: "Kick out",
                           title: "DELETE " + API + "/connections/" + c.client_id });
    b.addEventListener("click", function () { kickout(c.client_id, b); });
    return b;
  }

  var tables = {
    // wrap: the columns that may break a long value over lines (the others never do).
    conn: {
      what: "connections", key: "client_id", nodeScoped: true, path: "connections", wrap: [1, 2],
      row: function (c) {
        var ip = String(c.ipaddress).indexOf(":") >= 0 ? "[" + c.ipaddress + "]" : c.ipaddress; // IPv6
        return [c.client_id, text(c.username), ip + ":" + c.port, c.node,
          c.proto_name + " v" + c.proto_ver, c.keepalive + " s", c.clean_start ? "yes" : "no",
          c.connected_at, kickButton(c)];
      }
    },
    sess: {
      what: "sessions", key: "client_id", nodeScoped: true, path: "sessions", wrap: [1],
      row: function (s) {
        return [s.client_id, text(s.username), s.node, s.clean_start ? "yes" : "no",
          s.expiry_interval + " s", fmtInt(s.subscriptions_count),
          fmtInt(s.mqueue_len) + " / " + fmtInt(s.max_mqueue),
          fmtInt(s.inflight_len) + " / " + fmtInt(s.max_inflight), s.created_at];
      }
    },
    sub: {
      what: "subscriptions", key: "client_id", nodeScoped: true, path: "subscriptions", wrap: [1],
      row: function (s) { return [s.client_id, s.topic, String(s.qos), s.node]; }
    },
    route: {
      what: "routes", key: "topic", nodeScoped: false, path: "routes", wrap: [],
      row: function (r) { return [r.topic, r.node]; }
    }
  };
  Object.keys(tables).forEach(function (k) {
    var t = tables[k];
    t.name = k;
    t.page = 1;
    t.pages = 1;
    t.size = PAGE_SIZES[0];
    t.query = "";
    t.shown = null;
  });

  function tablePath(t, lookup) {
    var base = t.nodeScoped && filter ? nodePath(filter) + "/" + t.path + "/" : "/" + t.path + "/";
    return API + base + (lookup === undefined ? "?_page=" + t.page + "&_limit=" + t.size : enc(lookup));
  }

  function pageList(cur, total) {
    var out = [];
    for (var p = 1; p <= total; p++) {
      if (p === 1 || p === total || Math.abs(p - cur) <= 1 || (cur <= 3 && p <= 4) || (cur >= total - 2 && p >= total - 3)) {
        out.push(p);
      } else if (out[out.length - 1] !== "…") {
        out.push("…");
      }
    }
    return out;
  }

  function renderTable(t, rows, label) {
    var key = [rows, label, t.page, t.pages, t.query, t.size, filter];
    if (same(t.shown, key)) return;
    t.shown = key;
    var table = $(t.name + "-table");
    var heads = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) { return c.textContent; });
    var body = table.tBodies[0];
    if (!rows.length) {
      body.replaceChildren(el("tr", { className: "empty" }, [
        el("td", { colspan: String(heads.length),
                   text: t.query ? "No " + t.what + " match “" + t.query + "”" + (filter && t.nodeScoped ? " on " + filter : "") + "."
                                 : "No " + t.what + "." })
      ]));
    } else {
      body.replaceChildren.apply(body, rows.map(function (r) {
        var tr = el("tr", { "data-testid": t.name + "-row", "data-key": r[t.key] });
        t.row(r).forEach(function (v, i) {
          var cell = el("td", { className: i === 0 ? "key" : typeof v === "object" ? "actions"
                                  : t.wrap.indexOf(i) >= 0 ? "wrap" : null,
                                "data-label": heads[i] });
          cell.appendChild(typeof v === "object" ? v : document.createTextNode(String(v)));
          tr.appendChild(cell);
        });
        return tr;
      }));
    }
    $(t.name + "-page").textContent = label;
    var paged = !t.query;
    $(t.name + "-prev").disabled = !paged || t.page <= 1;
    $(t.name + "-next").disabled = !paged || t.page >= t.pages;
    var numbers = $(t.name + "-pages");
    numbers.replaceChildren.apply(numbers, paged ? pageList(t.page, t.pages).map(function (p) {
      if (p === "…") return el("span", { className: "ellipsis", text: "…" });
      var b = el("button", { type: "button", className: "page-num" + (p === t.page ? " current" : ""),
                             "data-testid": t.name + "-pagenum", "data-page": String(p), text: String(p),
                             "aria-label": "Page " + p, "aria-current": p === t.page ? "page" : null });
      b.addEventListener("click", function () { goPage(t, p); });
      return b;
    }) : []);
  }

  function loadTable(t, gen) {
    if (t.query) {
      var q = t.query;
      var f = filter;
      return poll(tablePath(t, q)).then(function (body) {
        if (gen !== generation || q !== t.query || f !== filter) return;
        var rows = body.data;
        if (!t.nodeScoped && filter) rows = rows.filter(function (r) { return r.node === filter; });
        var n = rows.length;
        renderTable(t, rows, n + (n === 1 ? " match" : " matches") + " for “" + q + "”");
      });
    }
    var page = t.page, size = t.size, f2 = filter;
    return poll(tablePath(t)).then(function (body) {
      if (gen !== generation || t.query || page !== t.page || size !== t.size || f2 !== filter) return;
      var count = (body.meta && body.meta.count) || 0;
      t.pages = Math.max(1, Math.ceil(count / t.size));
      if (t.page > t.pages) { // rows went away under us: go to the new last page
        t.page = t.pages;
        return loadTable(t, gen);
      }
      renderTable(t, body.data, "page " + t.page + " of " + t.pages + " · " + fmtInt(count) + " " + t.what);
    });
  }

  function goPage(t, p) {
    if (p < 1 || p > t.pages || p === t.page) return;
    t.page = p;
    runSource(sourceByName[t.name], generation, true);
  }

  // ------------------------------------------------------------------ journal

  var journalSelected = null;

  function journalStatusClass(e) {
    if (e.status >= 500) return "bad";
    if (e.status >= 400) return "warn";
    return e.code === 0 || e.code === null ? "ok" : "warn";
  }

  function journalMatches(e) {
    var route = $("journal-route").value;
    var status = $("journal-status").value;
    if (route && e.route !== route) return false;
    if (status === "ok") return e.status < 300 && (e.code === 0 || e.code === null);
    if (status === "code") return e.status < 300 && e.code !== 0 && e.code !== null;
    if (status === "4xx") return e.status >= 400 && e.status < 500;
    if (status === "5xx") return e.status >= 500;
    return true;
  }

  function journalKey(e) { return [e.time, e.method, e.path, e.query, e.status, e.duration_ms].join("|"); }

  var journalShown = null;

  function renderJournal(force) {
    var routeSelect = $("journal-route");
    var names = {};
    journal.forEach(function (e) { if (e.route) names[e.route] = true; });
    if (routeSelect.value) names[routeSelect.value] = true;
    var want = [["", "every route"]].concat(Object.keys(names).sort().map(function (n) { return [n, n]; }));
    if (!same(optionList(routeSelect), want)) {
      var keep = routeSelect.value;
      routeSelect.replaceChildren.apply(routeSelect, want.map(function (w) { return el("option", { value: w[0], text: w[1] }); }));
      routeSelect.value = keep;
    }
    var rows = journal.filter(journalMatches);
    var key = [rows, journalSelected && journalKey(journalSelected)];
    if (!force && same(journalShown, key)) return;
    journalShown = key;
    var body = $("journal-table").tBodies[0];
    if (!rows.length) {
      body.replaceChildren(el("tr", { className: "empty" }, [el("td", { colspan: "7",
        text: journal.length ? "No request matches these filters." : "No API request recorded yet: act in the control room, or call the API." })]));
    } else {
      body.replaceChildren.apply(body, rows.map(function (e) {
        var selected = journalSelected && journalKey(journalSelected) === journalKey(e);
        var tr = el("tr", { "data-testid": "journal-row", "data-route": e.route || "", "data-status": String(e.status),
                            "data-code": String(e.code), tabindex: "0", className: selected ? "selected" : null,
                            "aria-selected": selected ? "true" : "false" }, [
          el("td", { "data-label": "Time", text: String(e.time).slice(11) || text(e.time) }),
          el("td", { "data-label": "Method" }, [el("span", { className: "method m-" + e.method.toLowerCase(), text: e.method })]),
          el("td", { className: "jpath", "data-label": "Path" }, [
            el("span", { className: "path", text: e.path + (e.query ? "?" + e.query : "") }),
            el("span", { className: "route muted", text: e.route || "no route" })]),
          el("td", { "data-label": "HTTP" }, [el("span", { className: "code-pill " + journalStatusClass(e), text: String(e.status) })]),
          el("td", { "data-label": "Code", text: e.code === null ? "—" : String(e.code) }),
          el("td", { className: "num", "data-label": "ms", text: Number(e.duration_ms).toFixed(1) }),
          el("td", { "data-label": "Caller", text: text(e.caller) })
        ]);
        var open = function () { showJournalDetail(e); };
        tr.addEventListener("click", open);
        tr.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } });
        return tr;
      }));
    }
    $("journal-count").textContent = "Showing " + rows.length + " of the " + journal.length +
      " newest requests" + (journal.length >= JOURNAL_LIMIT ? " (the page reads the last " + JOURNAL_LIMIT + ")" : "") +
      ". The overview's own polling is not recorded.";
  }

  function prettyBody(raw) {
    if (raw === null || raw === undefined || raw === "") return null;
    try { return JSON.stringify(JSON.parse(raw), null, 2); } catch (e) { return String(raw); }
  }

  function showJournalDetail(e) {
    journalSelected = e;
    var pretty = prettyBody(e.body), answer = prettyBody(e.response);
    var box = $("journal-detail");
    box.replaceChildren(
      el("div", { className: "detail-head" }, [
        el("h3", null, [el("span", { className: "method m-" + e.method.toLowerCase(), text: e.method }), " ",
          el("span", { className: "path", text: e.path + (e.query ? "?" + e.query : "") })]),
        el("button", { type: "button", className: "small", "data-testid": "journal-detail-close", text: "Close",
                       onclick: function () { journalSelected = null; resetJournalDetail(); renderJournal(true); } })
      ]),
      el("dl", { className: "detail-list" }, [
        el("dt", { text: "Time" }), el("dd", { text: text(e.time) }),
        el("dt", { text: "Route" }), el("dd", { text: text(e.route) }),
        el("dt", { text: "HTTP status" }), el("dd", { "data-testid": "journal-detail-status", text: String(e.status) }),
        el("dt", { text: "Code" }), el("dd", { "data-testid": "journal-detail-code", text: e.code === null ? "— (no envelope)" : String(e.code) }),
        el("dt", { text: "Duration" }), el("dd", { text: Number(e.duration_ms).toFixed(3) + " ms" }),
        el("dt", { text: "Caller" }), el("dd", { text: text(e.caller) })
      ]),
      el("h4", { text: "Request body" }),
      pretty === null ? el("p", { className: "muted", "data-testid": "journal-request-body", text: "No body." })
                      : el("pre", { className: "body", "data-testid": "journal-request-body", text: pretty }),
      el("h4", { text: "Response body" }),
      answer === null ? el("p", { className: "muted", "data-testid": "journal-response-body", text: "No body." })
                      : el("pre", { className: "body", "data-testid": "journal-response-body", text: answer }),
      el("p", { className: "muted", text: "Bodies are kept up to their first KiB, secrets masked." })
    );
    renderJournal(true);
  }

  function resetJournalDetail() {
    $("journal-detail").replaceChildren(el("p", { className: "muted", text: "Select a request to see its details." }));
  }

  $("journal-route").addEventListener("change", function () { renderJournal(true); });
  $("journal-status").addEventListener("change", function () { renderJournal(true); });
  $("journal-pause").addEventListener("change", function () { if (!this.checked) refreshNow(); });
  $("journal-clear").addEventListener("click", function () {
    act({ button: this, method: "DELETE", path: STANDIN + "/journal", what: "Journal cleared",
          confirm: { title: "Clear the journal?", message: "Every recorded request is forgotten.", ok: "Clear journal" },
          done: function () { journal = []; journalSelected = null; resetJournalDetail(); renderJournal(true); } });
  });

  // ------------------------------------------------------------------ actions

  function confirmDialog(opts) {
    var dlg = $("confirm-dialog");
    $("confirm-title").textContent = opts.title;
    $("confirm-subject").textContent = opts.subject || "";
    $("confirm-subject").hidden = !opts.subject;
    $("confirm-message").textContent = opts.message;
    $("confirm-request").querySelector("code").textContent = opts.request || "";
    $("confirm-request").hidden = !opts.request;
    $("confirm-ok").textContent = opts.ok || "OK";
    if (dlg.open) return Promise.resolve(false);
    return new Promise(function (resolve) {
      dlg.returnValue = "";
      dlg.addEventListener("close", function done() {
        dlg.removeEventListener("close", done);
        resolve(dlg.returnValue === "ok");
      });
      dlg.showModal();
      $("confirm-ok").focus();
    });
  }

  function toast(message, kind) {
    var box = $("toasts");
    var t = el("div", { className: "toast " + (kind || "ok"), "data-testid": "toast", role: kind === "bad" ? "alert" : "status" }, [
      el("span", { text: message }),
      el("button", { type: "button", className: "toast-close", "aria-label": "Dismiss", text: "×",
                     onclick: function () { t.remove(); } })]);
    box.appendChild(t);
    while (box.children.length > 4) box.firstChild.remove();
    setTimeout(function () { t.remove(); }, kind === "bad" ? 12000 : 6000);
  }

  /* A control-room action: optional confirmation, then one unmarked request (it lands in the
     journal), a toast with the outcome and a refresh. Resolves to the answer or null. */
  function act(opts) {
    var go = opts.confirm
      ? confirmDialog(Object.assign({ request: opts.method + " " + opts.path + (opts.body ? " " + JSON.stringify(opts.body) : "") }, opts.confirm))
      : Promise.resolve(true);
    return go.then(function (ok) {
      if (!ok) return null;
      if (opts.button) opts.button.disabled = true;
      return call(opts.method, opts.path, { body: opts.body }).then(function (answer) {
        toast(opts.what + " · " + opts.method + " " + opts.path + " → code 0", "ok");
        if (opts.done) opts.done(answer);
        refreshNow();
        return answer;
      }, function (e) {
        if (e instanceof AuthError) { signOut(e.message); return null; }
        toast((opts.failed || "Failed") + ": " + describe(e), "bad");
        if (opts.failedDone) opts.failedDone(e);
        return null;
      }).then(function (answer) {
        if (opts.button) opts.button.disabled = false;
        return answer;
      });
    });
  }

  function kickout(clientId, button) {
    return act({ button: button, method: "DELETE", path: API + "/connections/" + enc(clientId),
                 what: "Kicked out " + clientId, failed: "Kickout of " + clientId + " failed",
                 confirm: { title: "Kick out this connection?", subject: clientId,
                            message: "The broker closes this connection. A clean session ends with it, with its subscriptions and routes; a persistent one stays and queues messages.",
                            ok: "Kick out" } });
  }

  function setNodeStatus(name, status, button) {
    var mem = nodeMemory[name];
    return act({ button: button, method: "PUT", path: STANDIN + "/nodes/" + enc(name), body: { node_status: status },
                 what: (status === "Stopped" ? "Stopped " : "Started ") + name,
                 failed: (status === "Stopped" ? "Stopping " : "Starting ") + name + " failed",
                 done: function () { if (mem) mem.pending = new Date(); } });
  }

  function togglePlugin(node, plugin, active, button) {
    var verb = active ? "unload" : "load";
    return act({ button: button, method: "PUT", path: API + nodePath(node) + "/plugins/" + enc(plugin) + "/" + verb,
                 what: (active ? "Unloaded " : "Loaded ") + plugin + " on " + node,
                 failed: (active ? "Unloading " : "Loading ") + plugin + " failed" });
  }

  function clearAlarm(node, alarm, button) {
    return act({ button: button, method: "DELETE", path: STANDIN + "/alarms/" + enc(alarm.id) + "?node=" + enc(node),
                 what: "Cleared alarm " + alarm.id, failed: "Clearing " + alarm.id + " failed",
                 confirm: { title: "Clear this alarm?", subject: alarm.id,
                            message: "The alarm on " + node + " (" + alarm.severity + ", raised " + text(alarm.timestamp) + ") is removed.",
                            ok: "Clear alarm" } });
  }

  // ------------------------------------------------------------------ control room cards

  /* One entry per card of the control room (<section class="control-card" data-control=NAME>):
     init(card) wires it once, update() runs after every refresh round. A new panel (worlds,
     snapshots, traffic, ...) is one more section in index.html and one more entry here. */
  var CONTROL_CARDS = {
    device: {
      init: function () {
        $("device-id").value = nextDeviceId();
        $("device-form").addEventListener("submit", function (ev) {
          ev.preventDefault();
          var id = $("device-id").value.trim();
          var subs;
          try { subs = parseSubscriptions($("device-subs").value); } catch (e) { toast(e.message, "bad"); return; }
          var body = { client_id: id, clean_start: $("device-clean").checked, subscriptions: subs };
          if ($("device-username").value.trim()) body.username = $("device-username").value.trim();
          if ($("device-node").value) body.node = $("device-node").value;
          act({ button: $("device-connect"), method: "POST", path: STANDIN + "/clients", body: body,
                what: "Connected " + id, failed: "Connecting " + id + " failed",
                done: function (answer) {
                  var c = answer.data || {};
                  devices = devices.filter(function (d) { return d.client_id !== id; });
                  devices.unshift({ client_id: id, node: c.node || body.node, at: clock(),
                                    subs: subs.map(function (s) { return s.topic + " " + s.qos; }).join(", ") });
                  saveDevices();
                  CONTROL_CARDS.device.update();
                  $("device-id").value = nextDeviceId();
                } });
        });
      },
      update: function () {
        var list = $("device-list");
        var want = JSON.stringify(devices);
        if (list.dataset.shown === want) return;
        list.dataset.shown = want;
        if (!devices.length) {
          list.replaceChildren(el("li", { className: "muted", text: "None yet." }));
          return;
        }
        list.replaceChildren.apply(list, devices.map(function (d) {
          var b = el("button", { type: "button", className: "small", "data-testid": "device-disconnect", text: "Disconnect",
                                 title: "DELETE /_standin/clients/" + d.client_id });
          b.addEventListener("click", function () {
            act({ button: b, method: "DELETE", path: STANDIN + "/clients/" + enc(d.client_id),
                  what: "Disconnected " + d.client_id, failed: "Disconnecting " + d.client_id + " failed",
                  confirm: { title: "Disconnect this device?", subject: d.client_id,
                             message: "The device leaves on its own: a clean session ends with its subscriptions, a persistent one stays.",
                             ok: "Disconnect" },
                  done: forget, failedDone: function (e) { if (e instanceof ApiError && e.code === 112) forget(); } });
          });
          function forget() {
            devices = devices.filter(function (x) { return x.client_id !== d.client_id; });
            saveDevices();
            CONTROL_CARDS.device.update();
          }
          return el("li", { "data-testid": "device", "data-client": d.client_id }, [
            el("span", { className: "device-info" }, [
              el("code", { text: d.client_id }),
              el("small", { className: "muted" }, [el("span", { className: "nowrap", text: d.node || "" }), " · ",
                el("span", { className: "nowrap", text: d.at }), d.subs ? " · " + d.subs : null])]),
            b]);
        }));
      }
    },
    alarm: {
      init: function () {
        $("alarm-form").addEventListener("submit", function (ev) {
          ev.preventDefault();
          var body = { id: $("alarm-id").value.trim(), severity: $("alarm-severity").value,
                       summary: $("alarm-summary").value };
          if ($("alarm-node").value) body.node = $("alarm-node").value;
          act({ button: $("alarm-raise"), method: "POST", path: STANDIN + "/alarms", body: body,
                what: "Raised alarm " + body.id, failed: "Raising " + body.id + " failed" });
        });
      },
      update: function () {}
    },
    faults: {
      init: function () {
        $("fault-form").addEventListener("submit", function (ev) {
          ev.preventDefault();
          var route = $("fault-route").value;
          var body = {
            latency_ms: Math.round(Number($("fault-latency").value) || 0),
            error_rate: Math.min(1, Math.max(0, (Number($("fault-rate").value) || 0) / 100)),
            error: { status: Math.round(Number($("fault-status").value) || 503) }
          };
          if (route) body.routes = [route];
          act({ button: $("fault-set"), method: "PUT", path: STANDIN + "/faults", body: body,
                what: "Fault set on " + (route || "every route"), failed: "Setting the fault failed",
                done: function (answer) { standin = Object.assign({}, standin, { faults: answer.data.faults }); renderStandin(); } });
        });
        $("fault-clear").addEventListener("click", function () {
          act({ button: this, method: "DELETE", path: STANDIN + "/faults", what: "Faults cleared",
                failed: "Clearing the faults failed",
                done: function () { standin = Object.assign({}, standin, { faults: null }); renderStandin(); } });
        });
      },
      update: function () {
        var faults = standin && standin.faults;
        var box = $("fault-active");
        box.className = "fault-active" + (faults ? " on" : "");
        box.textContent = faults ? "Active: " + describeFault(faults) + "." : "No fault injected.";
        $("fault-clear").disabled = !faults;
        var select = $("fault-route");
        var used = {};
        Object.keys(PANEL_ROUTES).forEach(function (p) {
          PANEL_ROUTES[p].forEach(function (r) { (used[r] = used[r] || []).push(PANEL_TITLES[p]); });
        });
        var want = [["", "every API route"]].concat(routeNames.map(function (r) {
          return [r, r + (used[r] ? " (" + used[r].join(", ") + ")" : "")];
        }));
        if (!same(optionList(select), want)) {
          var keep = select.value;
          select.replaceChildren.apply(select, want.map(function (w) { return el("option", { value: w[0], text: w[1] }); }));
          select.value = keep;
        }
      }
    },
    reset: {
      init: function () {
        $("reset-form").addEventListener("submit", function (ev) {
          ev.preventDefault();
          var body = {};
          [["seed", "reset-seed"], ["nodes", "reset-nodes"], ["clients", "reset-clients"]].forEach(function (f) {
            var v = $(f[1]).value.trim();
            if (v !== "") body[f[0]] = Math.round(Number(v));
          });
          act({ button: $("reset-submit"), method: "POST", path: STANDIN + "/reset", body: body,
                what: "Cluster reset", failed: "Reset failed",
                confirm: { title: "Reset the whole cluster?",
                           message: "Every connection, session, subscription, alarm, ban, app, user, plugin state and config goes back to the seeded state " +
                                    "(seed " + text(body.seed) + ", " + text(body.nodes) + " node(s), " + text(body.clients) + " clients per node); " +
                                    "the journal is emptied and the faults are cleared. Devices connected from this page are gone.",
                           ok: "Reset cluster" },
                done: function () { afterReset(); } });
        });
      },
      update: function () {
        var s = standin && standin.settings;
        if (!s) return;
        $("reset-current").textContent = "Now: seed " + s.seed + ", " + s.nodes + " node(s), " + s.clients + " clients per node.";
        [["seed", "reset-seed"], ["nodes", "reset-nodes"], ["clients", "reset-clients"]].forEach(function (f) {
          var input = $(f[1]);
          if (input.value === "" && document.activeElement !== input) input.value = s[f[0]];
        });
      }
    },
    worlds: {
      init: function () {
        $("world-from").addEventListener("change", function () { $("world-settings").hidden = !!this.value; });
        $("world-form").addEventListener("submit", function (ev) {
          ev.preventDefault();
          var name = $("world-name").value.trim();
          var body = { name: name };
          var from = $("world-from").value;
          if (from) body.snapshot = from;
          else {
            [["seed", "world-seed"], ["nodes", "world-nodes"], ["clients", "world-clients"]].forEach(function (f) {
              var v = $(f[1]).value.trim();
              if (v !== "") body[f[0]] = Math.round(Number(v));
            });
          }
          act({ button: $("world-create"), method: "POST", path: ROOT_STANDIN + "/worlds", body: body,
                what: "Created world " + name, failed: "Creating world " + name + " failed",
                done: function () { $("world-name").value = ""; } });
        });
      },
      update: function () {
        var select = $("world-from");
        var want = [["", "a seeded cluster"]].concat(rootSnapshots.map(function (x) {
          return [x.name, "snapshot " + x.name + " (default world)"];
        }));
        if (!same(optionList(select), want)) {
          var keep = select.value;
          select.replaceChildren.apply(select, want.map(function (w) { return el("option", { value: w[0], text: w[1] }); }));
          select.value = want.some(function (w) { return w[0] === keep; }) ? keep : "";
          $("world-settings").hidden = !!select.value;
        }
        var list = $("world-list");
        var entries = [{ name: "" }].concat(worlds || []);
        var key = JSON.stringify([world, worlds]);
        if (list.dataset.shown === key) return;
        list.dataset.shown = key;
        list.replaceChildren.apply(list, entries.map(function (w) {
          var shown = w.name === world;
          var s = w.settings;
          var about = w.name
            ? (s ? "seed " + s.seed + " · " + s.nodes + " node" + (s.nodes === 1 ? "" : "s") + " · " + fmtInt(s.clients) + " clients per node"
                 : "from a snapshot") + " · " + fmtBytes(w.size)
            : "served at /";
          var buttons = [];
          if (shown) buttons.push(el("span", { className: "badge on", "data-testid": "world-shown", text: "shown" }));
          else {
            var show = el("button", { type: "button", className: "small", "data-testid": "world-show", text: "Show",
                                      title: "The overview shows this world" });
            show.addEventListener("click", function () { switchWorld(w.name, show); });
            buttons.push(show);
          }
          if (w.name) {
            var del = el("button", { type: "button", className: "small danger-outline", "data-testid": "world-delete", text: "Delete…",
                                     title: "DELETE /_standin/worlds/" + w.name });
            del.addEventListener("click", function () { deleteWorld(w.name, del); });
            buttons.push(del);
          }
          return el("li", { "data-testid": "world", "data-world": w.name, className: shown ? "is-current" : null }, [
            el("span", { className: "device-info" }, [
              w.name ? el("code", { text: w.name }) : el("span", { text: "default world" }),
              el("small", { className: "muted", text: about })]),
            el("span", { className: "item-buttons" }, buttons)]);
        }));
      }
    },
    snapshots: {
      init: function () {
        $("snapshot-form").addEventListener("submit", function (ev) {
          ev.preventDefault();
          var name = $("snapshot-name").value.trim();
          var old = (snapshots || []).filter(function (x) { return x.name === name; })[0];
          act({ button: $("snapshot-save"), method: "POST", path: STANDIN + "/snapshots", body: { name: name },
                what: "Saved snapshot " + name, failed: "Saving snapshot " + name + " failed",
                confirm: old ? { title: "Overwrite this snapshot?", subject: name,
                                 message: "The snapshot saved at " + old.time + " is replaced by the state of " + worldLabel(world) + " now.",
                                 ok: "Overwrite" } : null });
        });
      },
      update: function () {
        $("snapshot-world").textContent = worldLabel(world);
        var list = $("snapshot-list");
        var key = JSON.stringify([world, snapshots]);
        if (list.dataset.shown === key) return;
        list.dataset.shown = key;
        if (!snapshots || !snapshots.length) {
          list.replaceChildren(el("li", { className: "muted", text: snapshots ? "None saved yet." : "…" }));
          return;
        }
        list.replaceChildren.apply(list, snapshots.map(function (x) {
          var restore = el("button", { type: "button", className: "small", "data-testid": "snapshot-restore", text: "Restore…",
                                       title: "POST " + STANDIN + "/snapshots/" + x.name + "/restore" });
          restore.addEventListener("click", function () {
            act({ button: restore, method: "POST", path: STANDIN + "/snapshots/" + enc(x.name) + "/restore",
                  what: "Restored snapshot " + x.name, failed: "Restoring " + x.name + " failed",
                  confirm: { title: "Restore this snapshot?", subject: x.name,
                             message: "All of " + worldLabel(world) + " goes back to how it was at " + x.time +
                                      ": connections, sessions, subscriptions, alarms, plugins, users, apps and faults. What changed since is lost.",
                             ok: "Restore" },
                  done: function () { afterReset(); } });
          });
          var del = el("button", { type: "button", className: "small danger-outline", "data-testid": "snapshot-delete", text: "Delete…",
                                   title: "DELETE " + STANDIN + "/snapshots/" + x.name });
          del.addEventListener("click", function () {
            act({ button: del, method: "DELETE", path: STANDIN + "/snapshots/" + enc(x.name),
                  what: "Deleted snapshot " + x.name, failed: "Deleting " + x.name + " failed",
                  confirm: { title: "Delete this snapshot?", subject: x.name,
                             message: "The state saved at " + x.time + " cannot be restored any more.", ok: "Delete" } });
          });
          return el("li", { "data-testid": "snapshot", "data-snapshot": x.name }, [
            el("span", { className: "device-info" }, [
              el("code", { text: x.name }),
              el("small", { className: "muted", text: x.time + " · " + fmtBytes(x.size) })]),
            el("span", { className: "item-buttons" }, [restore, del])]);
        }));
      }
    }
  };

  // ------------------------------------------------------------------ live traffic (optional)

  /* GET /_standin/traffic -> {"on", "<rate>": n, ...}; PUT with rates turns it on at those
     rates, DELETE turns it off. A server without the control answers 404: the card stays
     hidden and the page stops asking. The inputs are made from the answer's `limits` (the
     rates PUT takes, with their bounds). */
  var traffic = { absent: false, state: null };

  function loadTraffic() {
    return poll(STANDIN + "/traffic").then(function (b) {
      traffic.state = b.data;
      CONTROL_CARDS.traffic.update();
    }, function (e) {
      if (!(e instanceof ApiError) || e.status !== 404) throw e;
      traffic.absent = true;
      traffic.state = null;
      CONTROL_CARDS.traffic.update();
    });
  }

  function trafficRates() {  // the settable rates: the answer's `limits` names them
    return Object.keys((traffic.state || {}).limits || {});
  }

  CONTROL_CARDS.traffic = {
    init: function () {
      $("traffic-rates").addEventListener("input", function () { $("traffic-form").dataset.dirty = "1"; });
      $("traffic-form").addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = {};
        trafficRates().forEach(function (k) {
          var v = $("traffic-" + k).value.trim();
          if (v !== "") body[k] = Math.round(Number(v));
        });
        act({ button: $("traffic-on"), method: "PUT", path: STANDIN + "/traffic", body: body,
              what: "Traffic on", failed: "Turning traffic on failed",
              done: function (answer) {
                delete $("traffic-form").dataset.dirty;
                if (answer.data && typeof answer.data.on === "boolean") traffic.state = answer.data;
              } });
      });
      $("traffic-off").addEventListener("click", function () {
        act({ button: this, method: "DELETE", path: STANDIN + "/traffic", what: "Traffic off",
              failed: "Turning traffic off failed" });
      });
    },
    update: function () {
      var st = traffic.state;
      var card = document.querySelector("[data-control=traffic]");
      card.hidden = !st;
      if (!st) return;
      var rates = trafficRates();
      var box = $("traffic-rates");
      if (box.dataset.fields !== rates.join(",")) {
        box.dataset.fields = rates.join(",");
        box.replaceChildren.apply(box, rates.map(function (k) {
          return el("span", { className: "field" }, [
            el("label", { "for": "traffic-" + k, text: k.replace(/_per_/, " / ").replace(/_/g, " ") }),
            el("input", { id: "traffic-" + k, "data-testid": "traffic-" + k, type: "number", step: "1",
                          min: String(st.limits[k].min), max: String(st.limits[k].max) })]);
        }));
      }
      var dirty = $("traffic-form").dataset.dirty;
      rates.forEach(function (k) {
        var input = $("traffic-" + k);
        if (!dirty && document.activeElement !== input) input.value = String(st[k]);
      });
      var state = $("traffic-state");
      state.className = "traffic-state" + (st.on ? " on" : "");
      // The rates are in the fields below; the line says what traffic has done.
      state.textContent = st.on
        ? "On: " + fmtInt(st.online) + " of " + fmtInt(st.devices) + " devices online, " +
          fmtInt(st.counts.publishes) + " publishes in " + fmtInt(st.elapsed_s) + " simulated s."
        : "Off: the cluster only moves when someone acts.";
      $("traffic-on").textContent = st.on ? "Set rates" : "Turn on";
      $("traffic-off").disabled = !st.on;
    }
  };

  function worldLabel(name) { return name ? "world " + name : "the default world"; }

  /* Show another world: first ask it (with the page's credentials: a world has users of its
     own), then forget everything shown from the old one and read the new one. */
  function switchWorld(name, button) {
    var base = name ? "/worlds/" + enc(name) : "";
    if (button) button.disabled = true;
    return call("GET", base + "/_standin", { overview: true }).then(function () {
      showWorld(name);
      toast("Showing " + worldLabel(name), "ok");
    }, function (e) {
      if (e instanceof AuthError) toast(worldLabel(name) + " does not accept the credentials you signed in with.", "bad");
      else toast("Cannot show " + worldLabel(name) + ": " + describe(e), "bad");
    }).then(function () { if (button) button.disabled = false; });
  }

  function showWorld(name) {
    world = name;
    if (name) sessionStorage.setItem(WORLD_KEY, name); else sessionStorage.removeItem(WORLD_KEY);
    setBase();
    generation++;
    nodes = [];
    stats = [];
    standin = null;
    snapshots = null;
    afterReset();
    setFilter("");
    renderWorld();
    refreshNow();
  }

  function renderWorld() {
    var chip = $("world-chip");
    chip.hidden = !world;
    chip.textContent = world ? "world " + world : "";
    chip.title = world ? "The overview shows world " + world + " (its API is under /worlds/" + world + "/)" : "";
    document.title = "EMQ X 3.0 stand-in · Overview" + (world ? " · " + world : "");
    CONTROL_CARDS.worlds.update();
    CONTROL_CARDS.snapshots.update();
  }

  function deleteWorld(name, button) {
    return act({ button: button, method: "DELETE", path: ROOT_STANDIN + "/worlds/" + enc(name),
                 what: "Deleted world " + name, failed: "Deleting world " + name + " failed",
                 confirm: { title: "Delete this world?", subject: name,
                            message: "Its whole state goes, with its users, apps, journal and snapshots; clients of /worlds/" + name + "/ get 404 from now on." +
                                     (name === world ? " The overview goes back to the default world." : ""),
                            ok: "Delete world" },
                 done: function () { if (name === world) showWorld(""); } });
  }

  function nextDeviceId() {
    var n = 1;
    var taken = {};
    devices.forEach(function (d) { taken[d.client_id] = true; });
    while (taken["demo-device-" + n]) n++;
    return "demo-device-" + n;
  }

  // "a/b 1, c/# , d" -> [{topic, qos}]: a trailing 0, 1 or 2 after a space is the QoS.
  function parseSubscriptions(raw) {
    return raw.split(",").map(function (s) { return s.trim(); }).filter(Boolean).map(function (s) {
      var m = /^(.*\S)\s+([012])$/.exec(s);
      return m ? { topic: m[1], qos: Number(m[2]) } : { topic: s, qos: 0 };
    });
  }

  function afterReset() {
    history = [];
    counters = {};
    nodeMemory = {};
    devices = [];
    saveDevices();
    journal = [];
    journalSelected = null;
    resetJournalDetail();
    ["reset-seed", "reset-nodes", "reset-clients"].forEach(function (id) { $(id).value = ""; });
    Object.keys(tables).forEach(function (k) { tables[k].page = 1; tables[k].shown = null; });
    alarmsShown = null;
    pluginsShown = null;
    CONTROL_CARDS.device.update();
    $("device-id").value = nextDeviceId();
    drawCharts();
  }

  function renderStandin() {
    renderFaultChips();
    Object.keys(CONTROL_CARDS).forEach(function (k) { CONTROL_CARDS[k].update(); });
  }

  // ------------------------------------------------------------------ polling

  /* Each source reads one thing and renders it. A source still waiting for its answer is not
     asked again; one waiting too long says so in its panel. */
  var SOURCES = [
    { name: "nodes", panel: "nodes", load: function () { return poll(API + "/nodes/").then(function (b) { renderNodes(b.data); }); } },
    { name: "stats", panel: "totals", load: function () {
      return poll(API + "/stats/").then(function (b) { stats = b.data; renderTotals(); drawCharts(); });
    } },
    { name: "metrics", panel: "charts", load: function () { return poll(API + "/metrics/").then(function (b) { addMetrics(b.data); }); } },
    { name: "alarms", panel: "alarms", load: function () {
      var f = filter;
      return poll(API + (f ? "/alarms/" + enc(f) : "/alarms/")).then(function (b) {
        if (f === filter) renderAlarms(f ? [{ node: f, alarms: b.data }] : b.data);
      });
    } },
    { name: "plugins", panel: "plugins", load: function () {
      var f = filter;
      return poll(API + (f ? nodePath(f) + "/plugins/" : "/plugins/")).then(function (b) {
        if (f === filter) renderPlugins(f ? [{ node: f, plugins: b.data }] : b.data);
      });
    } },
    { name: "standin", panel: "control", load: function () {
      return poll(STANDIN).then(function (b) { standin = b.data; renderStandin(); });
    } },
    { name: "catalogue", panel: "control", once: true, load: function () {
      return poll(API + "/").then(function (b) {
        var names = {};
        b.data.forEach(function (r) { names[r.name] = true; });
        routeNames = Object.keys(names).sort();
        renderStandin();
      });
    } },
    { name: "worlds", panel: "control", load: function () {
      return Promise.all([poll(ROOT_STANDIN + "/worlds"), poll(ROOT_STANDIN + "/snapshots")]).then(function (b) {
        worlds = b[0].data;
        rootSnapshots = b[1].data;
        if (world && !worlds.some(function (w) { return w.name === world; })) {
          toast("The world " + world + " is gone: the overview shows the default world.", "bad");
          showWorld("");
          return;
        }
        CONTROL_CARDS.worlds.update();
      });
    } },
    { name: "snapshots", panel: "control", load: function () {
      var w = world;
      return poll(STANDIN + "/snapshots").then(function (b) {
        if (w !== world) return;
        snapshots = b.data;
        CONTROL_CARDS.snapshots.update();
      });
    } },
    { name: "traffic", panel: "control", skip: function () { return traffic.absent; }, load: loadTraffic },
    { name: "journal", panel: "journal", skip: function () { return $("journal-pause").checked; }, load: function () {
      return poll(STANDIN + "/journal?limit=" + JOURNAL_LIMIT).then(function (b) { journal = b.data; renderJournal(); });
    } }
  ].concat(Object.keys(tables).map(function (k) {
    return { name: k, panel: k, load: function (gen) { return loadTable(tables[k], gen); } };
  }));
  var sourceByName = {};
  SOURCES.forEach(function (s) { sourceByName[s.name] = s; });

  function runSource(s, gen, force) {
    if (s.busy) { s.again = s.again || !!force; return s.busy; }
    if (s.once && s.done) return Promise.resolve();
    if (s.skip && s.skip()) return Promise.resolve(); // paused by the presenter
    s.startedAt = Date.now();
    s.again = false;
    var f = filter;
    s.busy = Promise.resolve().then(function () { return s.load(gen); }).then(function () {
      if (gen !== generation) return;
      s.done = true;
      s.lastGood = new Date();
      setProblem(s.panel, s.name, null);
      // The bar says when the page last heard back; a panel still waiting says so itself.
      if (online.ok) $("refresh-status").textContent = "updated " + clock(s.lastGood);
    }, function (e) {
      if (gen !== generation || e instanceof StaleAnswer) return;
      if (e instanceof AuthError) { signOut(e.message); return; }
      if (e instanceof NetError) return; // the banner says it for every panel
      if (f !== filter) return; // answered for a filter no longer chosen
      setProblem(s.panel, s.name, apiProblem(e, s.panel, s.lastGood));
    }).then(function () {
      s.busy = null;
      if (s.again && gen === generation) return runSource(s, gen, true);
    });
    return s.busy;
  }

  function tick() {
    var gen = generation;
    clearTimeout(timer);
    if (!credentials()) return;
    var now = Date.now();
    var slowAfter = Math.max(4000, 2.5 * refreshSeconds * 1000);
    SOURCES.forEach(function (s) {
      if (s.busy && now - s.startedAt > slowAfter) {
        setProblem(s.panel, s.name + ":slow", { kind: "notice", stale: true,
          text: PANEL_TITLES[s.panel] ? PANEL_TITLES[s.panel] + ": waiting " + Math.round((now - s.startedAt) / 1000) + " s for an answer…" : "waiting for an answer…" });
      } else if (!s.busy) {
        setProblem(s.panel, s.name + ":slow", null);
      }
    });
    var round = SOURCES.map(function (s) { return runSource(s, gen, false); });
    Promise.all(round).then(function () {
      if (gen !== generation) return;
      if (!online.ok) renderOnline();
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    });
    timer = setTimeout(tick, refreshSeconds * 1000);
  }

  /* After an action: ask every source again now (those still busy ask once more when done). */
  function refreshNow() {
    var gen = generation;
    SOURCES.forEach(function (s) { if (!s.once) runSource(s, gen, true); });
  }

  // ------------------------------------------------------------------ sign in / out

  function showLogin(message) {
    $("app-view").hidden = true;
    ["session-bar", "live-pill", "refresh-status", "node-filter-wrap", "section-nav"].forEach(function (id) { $(id).hidden = true; });
    $("offline-banner").hidden = true;
    document.body.classList.remove("is-offline");
    $("login-view").hidden = false;
    var err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    ($("login-username").value ? $("login-password") : $("login-username")).focus();
  }

  function showApp() {
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    ["session-bar", "live-pill", "refresh-status", "node-filter-wrap", "section-nav"].forEach(function (id) { $(id).hidden = false; });
    $("signed-in-as").textContent = sessionStorage.getItem(USER_KEY) || "";
    renderOnline();
    $("refresh-status").title = "The page reads the API every " + refreshSeconds + " s";
    setFilter(filter);
    tick();
  }

  function signOut(message) {
    generation++;
    clearTimeout(timer);
    // Everything this tab kept goes: credentials, node filter, devices connected from here.
    [STORE_KEY, USER_KEY, FILTER_KEY, DEVICES_KEY, WORLD_KEY].forEach(function (k) { sessionStorage.removeItem(k); });
    filter = "";
    world = "";
    setBase();
    worlds = null;
    snapshots = null;
    renderWorld();
    devices = [];
    CONTROL_CARDS.device.update();
    history = [];
    counters = {};
    SOURCES.forEach(function (s) { s.done = false; });
    delete document.body.dataset.refreshed;
    showLogin(message);
  }

  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var user = $("login-username").value;
    var password = $("login-password").value;
    var button = $("login-submit");
    button.disabled = true;
    $("login-error").hidden = true;
    fetch(API + "/auth", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ username: user, password: password }),
      credentials: "omit"
    }).then(function (res) { return res.json(); }).then(function (body) {
      button.disabled = false;
      if (body.code === 0) {
        sessionStorage.setItem(STORE_KEY, basicToken(user, password));
        sessionStorage.setItem(USER_KEY, user);
        $("login-password").value = "";
        setTimeout(showApp); // outside this promise: a fault of the page is not "could not reach"
      } else {
        showLogin("Sign-in refused: " + (body.message || "code " + body.code));
      }
    }, function (e) {
      button.disabled = false;
      showLogin("Could not reach the server: " + e.message);
    });
  });

  $("logout").addEventListener("click", function () { signOut(""); });

  Object.keys(tables).forEach(function (k) {
    var t = tables[k];
    var debounce = null;
    $(k + "-prev").addEventListener("click", function () { goPage(t, t.page - 1); });
    $(k + "-next").addEventListener("click", function () { goPage(t, t.page + 1); });
    $(k + "-size").addEventListener("change", function (ev) {
      t.size = Number(ev.target.value);
      t.page = 1;
      runSource(sourceByName[k], generation, true);
    });
    $(k + "-search").addEventListener("input", function (ev) {
      clearTimeout(debounce);
      debounce = setTimeout(function () {
        t.query = ev.target.value.trim();
        if (!t.query) t.page = 1;
        runSource(sourceByName[k], generation, true);
      }, 250);
    });
  });

  buildCharts();
  Object.keys(CONTROL_CARDS).forEach(function (k) { CONTROL_CARDS[k].init(); });
  CONTROL_CARDS.device.update();
  renderWorld();

  if (credentials()) showApp();
  else showLogin("");
})();
