/* Live overview of the EMQ X 3.0 stand-in: plain JavaScript, no library, no build step.
 *
 * Sign-in checks the dashboard user with POST /api/v3/auth (the one API route that needs no
 * credentials), keeps "Basic <base64>" in sessionStorage, and every later API call carries it
 * as an Authorization header. No request without credentials ever reaches a protected route,
 * so the browser's own Basic-auth dialog never appears.
 *
 * The page refreshes itself every 3 s; ?refresh=N (seconds, may be fractional) changes that.
 */
(function () {
  "use strict";

  var API = "/api/v3";
  var STORE_KEY = "emqx-standin.auth";
  var USER_KEY = "emqx-standin.user";
  var PAGE_SIZE = 20;
  var HISTORY = 60; // samples kept for the rate charts

  var refreshSeconds = (function () {
    var raw = new URLSearchParams(window.location.search).get("refresh");
    var n = raw === null ? 3 : Number(raw);
    return isFinite(n) && n >= 0.2 ? n : 3;
  })();

  var $ = function (id) { return document.getElementById(id); };

  // ------------------------------------------------------------------ credentials

  function basicToken(user, password) {
    // btoa() only takes Latin-1: encode the UTF-8 bytes first.
    var bytes = new TextEncoder().encode(user + ":" + password);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return "Basic " + btoa(bin);
  }

  function credentials() { return sessionStorage.getItem(STORE_KEY); }

  function AuthError(message) { this.message = message; }

  function apiGet(path) {
    var token = credentials();
    if (!token) return Promise.reject(new AuthError("Not signed in"));
    return fetch(API + path, {
      // The stand-in leaves requests marked as the overview's own out of its journal.
      headers: { "Authorization": token, "Accept": "application/json",
                 "X-Standin-Overview": "1" },
      credentials: "omit",
      cache: "no-store"
    }).then(function (res) {
      if (res.status === 401) throw new AuthError("The server no longer accepts these credentials.");
      return res.json().catch(function () {
        throw new Error("HTTP " + res.status + " from " + path);
      }).then(function (body) {
        if (body.code !== 0) {
          throw new Error((body.message || "error") + " (code " + body.code + ") from " + path);
        }
        return body;
      });
    });
  }

  // ------------------------------------------------------------------ small helpers

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") node.textContent = attrs[k];
        else if (k === "className") node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) {
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

  function text(v) {
    return v === null || v === undefined || v === "undefined" ? "—" : String(v);
  }

  // "76.45M" -> bytes (K, M, G, T suffixes; plain numbers are bytes).
  function parseSize(s) {
    var m = /^\s*([\d.]+)\s*([KMGT]?)/i.exec(String(s || ""));
    if (!m) return NaN;
    var mult = { "": 1, K: 1024, M: 1048576, G: 1073741824, T: 1099511627776 };
    return parseFloat(m[1]) * mult[m[2].toUpperCase()];
  }

  // The node list says "76.45M"; a single node's lookup gives bytes. Show both alike.
  function fmtMem(v) {
    return typeof v === "number" ? (v / 1048576).toFixed(2) + "M" : text(v);
  }

  // "4 hours, 38 minutes, 32 seconds" -> "4 h 38 min 32 s" (fits a card on a projector).
  function shortUptime(s) {
    return String(s || "")
      .replace(/\s*days?/g, " d").replace(/\s*hours?/g, " h")
      .replace(/\s*minutes?/g, " min").replace(/\s*seconds?/g, " s").replace(/,/g, "");
  }

  // ------------------------------------------------------------------ state

  var timer = null;
  var generation = 0; // bumped at sign-out so late answers are dropped
  var samples = []; // {t, msgIn, msgOut, pktIn, pktOut} counters summed over nodes
  var rates = []; // {msgIn, msgOut, pktIn, pktOut} per second

  var tables = {
    conn: {
      list: "/connections/", lookup: "/connections/", what: "connections",
      key: "client_id",
      row: function (c) {
        return [c.client_id, text(c.username), c.ipaddress + ":" + c.port, c.node,
          c.proto_name + " v" + c.proto_ver, c.keepalive + " s", c.clean_start ? "yes" : "no",
          c.connected_at];
      }
    },
    sess: {
      list: "/sessions/", lookup: "/sessions/", what: "sessions", key: "client_id",
      row: function (s) {
        return [s.client_id, text(s.username), s.node, s.clean_start ? "yes" : "no",
          s.expiry_interval + " s", fmtInt(s.subscriptions_count),
          fmtInt(s.mqueue_len) + " / " + fmtInt(s.max_mqueue),
          fmtInt(s.inflight_len) + " / " + fmtInt(s.max_inflight), s.created_at];
      }
    },
    sub: {
      list: "/subscriptions/", lookup: "/subscriptions/", what: "subscriptions",
      key: "client_id",
      row: function (s) { return [s.client_id, s.topic, String(s.qos), s.node]; }
    },
    route: {
      list: "/routes/", lookup: "/routes/", what: "routes", key: "topic",
      row: function (r) { return [r.topic, r.node]; }
    }
  };
  Object.keys(tables).forEach(function (k) {
    tables[k].name = k;
    tables[k].page = 1;
    tables[k].pages = 1;
    tables[k].query = "";
  });

  // ------------------------------------------------------------------ rendering

  function renderNodes(nodes) {
    var list = $("node-list");
    list.replaceChildren.apply(list, nodes.map(function (n) {
      var used = parseSize(n.memory_used), total = parseSize(n.memory_total);
      var pct = total > 0 ? Math.min(100, Math.round((used / total) * 100)) : 0;
      var running = n.node_status === "Running";
      var bar = el("div", { className: "bar" }, [el("span", { style: "width:" + pct + "%" })]);
      return el("article", {
        className: "node-card " + (running ? "is-running" : "is-stopped"),
        "data-testid": "node-card", "data-node": n.name
      }, [
        el("header", null, [
          el("h3", { className: "node-name", text: n.name }),
          el("span", {
            className: "status " + (running ? "ok" : "bad"),
            "data-testid": "node-status", text: n.node_status
          })
        ]),
        el("dl", null, [
          el("dt", { text: "Version" }), el("dd", { "data-testid": "node-version", text: "EMQ X " + n.version }),
          el("dt", { text: "Uptime" }), el("dd", { "data-testid": "node-uptime", title: n.uptime, text: shortUptime(n.uptime) }),
          el("dt", { text: "Memory" }), el("dd", { "data-testid": "node-memory" }, [
            fmtMem(n.memory_used) + " / " + fmtMem(n.memory_total) + " (" + pct + "%)", bar]),
          el("dt", { text: "Load 1/5/15" }), el("dd", { "data-testid": "node-load", text: n.load1 + " · " + n.load5 + " · " + n.load15 }),
          el("dt", { text: "Connections" }), el("dd", { "data-testid": "node-connections", text: fmtInt(n.connections) }),
          el("dt", { text: "Processes" }), el("dd", { text: fmtInt(n.process_used) + " / " + fmtInt(n.process_available) }),
          el("dt", { text: "OTP" }), el("dd", { text: n.otp_release })
        ])
      ]);
    }));
    if (!nodes.length) list.replaceChildren(el("p", { className: "muted", text: "No nodes." }));
  }

  function renderTotals(stats) {
    var sum = function (key) {
      return stats.reduce(function (acc, s) { return acc + (Number(s[key]) || 0); }, 0);
    };
    // Topics and retained messages are cluster-wide: every node reports the same count.
    var max = function (key) {
      return stats.reduce(function (acc, s) { return Math.max(acc, Number(s[key]) || 0); }, 0);
    };
    $("total-connections").textContent = fmtInt(sum("connections/count"));
    $("total-sessions").textContent = fmtInt(sum("sessions/count"));
    $("total-subscriptions").textContent = fmtInt(sum("subscriptions/count"));
    $("total-topics").textContent = fmtInt(max("topics/count"));
    $("total-retained").textContent = fmtInt(max("retained/count"));
  }

  function addMetrics(metricsByNode) {
    var total = { t: performance.now() / 1000, msgIn: 0, msgOut: 0, pktIn: 0, pktOut: 0 };
    metricsByNode.forEach(function (entry) {
      var m = entry.metrics || {};
      total.msgIn += Number(m["messages/received"]) || 0;
      total.msgOut += Number(m["messages/sent"]) || 0;
      total.pktIn += Number(m["packets/received"]) || 0;
      total.pktOut += Number(m["packets/sent"]) || 0;
    });
    var prev = samples[samples.length - 1];
    samples.push(total);
    if (samples.length > 2) samples.shift();
    if (prev) {
      var dt = Math.max(total.t - prev.t, 0.001);
      var r = {};
      ["msgIn", "msgOut", "pktIn", "pktOut"].forEach(function (k) {
        r[k] = Math.max(0, total[k] - prev[k]) / dt; // a reset counter is not a negative rate
      });
      rates.push(r);
      if (rates.length > HISTORY) rates.shift();
    }
    var last = rates[rates.length - 1];
    $("rate-msg-in").textContent = last ? fmtRate(last.msgIn) : "–";
    $("rate-msg-out").textContent = last ? fmtRate(last.msgOut) : "–";
    $("rate-pkt-in").textContent = last ? fmtRate(last.pktIn) : "–";
    $("rate-pkt-out").textContent = last ? fmtRate(last.pktOut) : "–";
    drawChart($("chart-messages"), ["msgIn", "msgOut"]);
    drawChart($("chart-packets"), ["pktIn", "pktOut"]);
  }

  function niceMax(v) {
    if (v <= 1) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  function drawChart(svg, keys) {
    var NS = "http://www.w3.org/2000/svg";
    var W = 600, H = 180, L = 0, T = 8, B = 8;
    var top = niceMax(rates.reduce(function (m, r) {
      return Math.max(m, r[keys[0]], r[keys[1]]);
    }, 0));
    var nodes = [];
    function svgEl(tag, attrs, content) {
      var n = document.createElementNS(NS, tag);
      Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
      if (content !== undefined) n.textContent = content;
      return n;
    }
    var y = function (v) { return T + (H - T - B) * (1 - v / top); };
    [0, 0.5, 1].forEach(function (f) {
      nodes.push(svgEl("line", { x1: 0, x2: W, y1: y(top * f), y2: y(top * f), "class": "grid" }));
    });
    if (rates.length < 2) {
      nodes.push(svgEl("text", { x: W / 2, y: H / 2, "class": "chart-note", "text-anchor": "middle" },
        rates.length ? "collecting…" : "waiting for a second sample…"));
    }
    keys.forEach(function (k, i) {
      if (!rates.length) return;
      // Until the history is full the line spans what there is (at least 10 samples wide).
      var step = (W - L) / (Math.max(rates.length, 10) - 1);
      var x0 = W - (rates.length - 1) * step;
      var pts = rates.map(function (r, j) {
        return (x0 + j * step).toFixed(1) + "," + y(r[k]).toFixed(1);
      });
      if (pts.length === 1) pts.push((W).toFixed(1) + "," + y(rates[0][k]).toFixed(1));
      nodes.push(svgEl("polyline", {
        points: pts.join(" "), "class": "line " + (i === 0 ? "s-in" : "s-out"),
        "vector-effect": "non-scaling-stroke"
      }));
    });
    svg.replaceChildren.apply(svg, nodes);
    // Axis labels live in HTML so they are not stretched by preserveAspectRatio="none".
    var fig = svg.parentNode;
    var label = fig.querySelector(".chart-max");
    if (!label) {
      label = el("span", { className: "chart-max" });
      fig.appendChild(label);
    }
    var span = Math.round(Math.max(rates.length, 10) * refreshSeconds);
    label.textContent = "scale 0 – " + fmtRate(top) + "/s · last " + span + " s";
  }

  function renderAlarms(byNode) {
    var items = [];
    byNode.forEach(function (entry) {
      (entry.alarms || []).forEach(function (a) {
        items.push(el("li", { className: "alarm sev-" + a.severity, "data-testid": "alarm", "data-alarm-id": a.id }, [
          el("span", { className: "sev", text: a.severity }),
          el("span", { className: "alarm-body" }, [
            el("strong", { text: a.title || a.id }),
            el("span", { className: "muted", text: " " + (a.summary || "") }),
            el("span", { className: "alarm-meta muted", text: entry.node + " · " + a.timestamp })
          ])
        ]));
      });
    });
    var list = $("alarm-list");
    if (!items.length) items.push(el("li", { className: "muted none", text: "No active alarms." }));
    list.replaceChildren.apply(list, items);
    $("alarm-count").textContent = String(items.filter(function (i) { return i.dataset.testid === "alarm"; }).length);
    $("alarm-count").className = "badge" + (items.length && items[0].dataset.testid === "alarm" ? " warn" : "");
  }

  function renderPlugins(byNode) {
    var multi = byNode.length > 1;
    var items = [], active = 0, total = 0;
    byNode.forEach(function (entry) {
      (entry.plugins || []).forEach(function (p) {
        total++;
        if (p.active) active++;
        items.push(el("li", {
          className: "plugin " + (p.active ? "on" : "off"), "data-testid": "plugin",
          "data-plugin": p.name, "data-active": String(!!p.active), title: p.description
        }, [
          el("span", { className: "dot", "aria-hidden": "true" }),
          el("span", { className: "plugin-name", text: p.name + (multi ? " @ " + entry.node : "") }),
          el("span", { className: "plugin-state", text: p.active ? "running" : "stopped" })
        ]));
      });
    });
    // Running plugins first, then by name.
    items.sort(function (a, b) {
      return (b.dataset.active === "true") - (a.dataset.active === "true") ||
        a.dataset.plugin.localeCompare(b.dataset.plugin);
    });
    var list = $("plugin-list");
    list.replaceChildren.apply(list, items);
    $("plugin-count").textContent = active + " / " + total + " running";
  }

  function renderTable(t, rows, label) {
    var body = $(t.name + "-table").tBodies[0];
    var cols = $(t.name + "-table").tHead.rows[0].cells.length;
    if (!rows.length) {
      body.replaceChildren(el("tr", { className: "empty" }, [
        el("td", { colspan: String(cols), text: t.query ? "No " + t.what + " match “" + t.query + "”." : "No " + t.what + "." })
      ]));
    } else {
      body.replaceChildren.apply(body, rows.map(function (r) {
        var tr = el("tr", { "data-testid": t.name + "-row", "data-key": r[t.key] });
        t.row(r).forEach(function (v, i) {
          tr.appendChild(el("td", i === 0 ? { className: "key" } : null, [String(v)]));
        });
        return tr;
      }));
    }
    $(t.name + "-page").textContent = label;
    $(t.name + "-prev").disabled = !!t.query || t.page <= 1;
    $(t.name + "-next").disabled = !!t.query || t.page >= t.pages;
  }

  function loadTable(t, gen) {
    if (t.query) {
      var q = t.query;
      return apiGet(t.lookup + encodeURIComponent(q)).then(function (body) {
        if (gen !== generation || q !== t.query) return;
        var n = body.data.length;
        renderTable(t, body.data, n + (n === 1 ? " match" : " matches") + " for “" + q + "”");
      });
    }
    var page = t.page;
    return apiGet(t.list + "?_page=" + page + "&_limit=" + PAGE_SIZE).then(function (body) {
      if (gen !== generation || t.query || page !== t.page) return;
      var count = (body.meta && body.meta.count) || 0;
      t.pages = Math.max(1, Math.ceil(count / PAGE_SIZE));
      if (t.page > t.pages) { // rows went away under us: go to the new last page
        t.page = t.pages;
        return loadTable(t, gen);
      }
      renderTable(t, body.data, "page " + t.page + " of " + t.pages + " · " + fmtInt(count) + " " + t.what);
    });
  }

  // ------------------------------------------------------------------ refresh loop

  var lastError = null;

  function section(promise, name) {
    return promise.catch(function (e) {
      if (e instanceof AuthError) throw e;
      lastError = name + ": " + (e && e.message ? e.message : e);
    });
  }

  function refresh() {
    var gen = generation;
    clearTimeout(timer);
    lastError = null;
    $("refresh-status").textContent = "refreshing…";
    var work = [
      section(apiGet("/nodes/").then(function (b) { if (gen === generation) renderNodes(b.data); }), "nodes"),
      section(apiGet("/stats/").then(function (b) { if (gen === generation) renderTotals(b.data); }), "stats"),
      section(apiGet("/metrics/").then(function (b) { if (gen === generation) addMetrics(b.data); }), "metrics"),
      section(apiGet("/alarms/").then(function (b) { if (gen === generation) renderAlarms(b.data); }), "alarms"),
      section(apiGet("/plugins/").then(function (b) { if (gen === generation) renderPlugins(b.data); }), "plugins")
    ].concat(Object.keys(tables).map(function (k) { return section(loadTable(tables[k], gen), k); }));
    return Promise.all(work).then(function () {
      if (gen !== generation) return;
      var banner = $("error-banner");
      banner.hidden = !lastError;
      banner.textContent = lastError || "";
      $("refresh-status").textContent = "updated " + new Date().toLocaleTimeString("en-GB") +
        " · every " + refreshSeconds + " s";
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    }, function (e) {
      if (gen !== generation) return;
      if (e instanceof AuthError) { signOut(e.message); return; }
      $("refresh-status").textContent = "error";
    }).then(function () {
      if (gen === generation && credentials()) {
        timer = setTimeout(refresh, refreshSeconds * 1000);
      }
    });
  }

  // ------------------------------------------------------------------ sign in / out

  function showLogin(message) {
    $("app-view").hidden = true;
    $("session-bar").hidden = true;
    $("login-view").hidden = false;
    var err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    ($("login-username").value ? $("login-password") : $("login-username")).focus();
  }

  function showApp() {
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("session-bar").hidden = false;
    $("signed-in-as").textContent = sessionStorage.getItem(USER_KEY) || "";
    refresh();
  }

  function signOut(message) {
    generation++;
    clearTimeout(timer);
    sessionStorage.removeItem(STORE_KEY);
    sessionStorage.removeItem(USER_KEY);
    samples = [];
    rates = [];
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
      if (body.code === 0) {
        sessionStorage.setItem(STORE_KEY, basicToken(user, password));
        sessionStorage.setItem(USER_KEY, user);
        $("login-password").value = "";
        showApp();
      } else {
        showLogin("Sign-in refused: " + (body.message || "code " + body.code));
      }
    }).catch(function (e) {
      showLogin("Could not reach the server: " + e.message);
    }).then(function () { button.disabled = false; });
  });

  $("logout").addEventListener("click", function () { signOut(""); });

  Object.keys(tables).forEach(function (k) {
    var t = tables[k];
    var debounce = null;
    $(k + "-prev").addEventListener("click", function () {
      if (t.page > 1) { t.page--; loadTable(t, generation).catch(onTableError); }
    });
    $(k + "-next").addEventListener("click", function () {
      if (t.page < t.pages) { t.page++; loadTable(t, generation).catch(onTableError); }
    });
    $(k + "-search").addEventListener("input", function (ev) {
      clearTimeout(debounce);
      debounce = setTimeout(function () {
        t.query = ev.target.value.trim();
        if (!t.query) t.page = 1;
        loadTable(t, generation).catch(onTableError);
      }, 250);
    });
  });

  function onTableError(e) {
    if (e instanceof AuthError) { signOut(e.message); return; }
    var banner = $("error-banner");
    banner.hidden = false;
    banner.textContent = e && e.message ? e.message : String(e);
  }

  if (credentials()) showApp();
  else showLogin("");
})();
