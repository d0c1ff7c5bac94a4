"""The pages in a real browser: the live overview and control room (/) and the API explorer
(/_standin/docs).

Playwright drives Debian's Chromium (/usr/bin/chromium, never a downloaded browser) against a
real gunicorn (2 workers, a new database, two nodes of STANDIN_CLIENTS=15) on a free localhost
port. Every control-room action is driven through the page and its effect checked through the
API with plain HTTP requests. One test stops a node and kills a server of its own under the
open page, then starts it again.

Every page the tests open is watched: no JavaScript error, nothing fetched from the internet,
no protected route without credentials, only public paths (/api/v3, /_standin, the page and
its static files), the page's own polling marked X-Standin-Overview: 1 and its writes
(the actions) unmarked, with Content-Type: application/json.

The module also takes the screenshots under docs/ (overview.png at 1400x900, light, the first
screen; overview-dark.png the same in the dark theme; overview-phone.png and
overview-phone-control.png at 390x844; overview-fault.png, a fault on one route reported
beside its panel; overview-offline.png, a stopped node and a lost server; explorer.png, the
API explorer filtered to one chapter) when UPDATE_SCREENSHOT=1 is set, otherwise into the
test's temporary folder (so a plain run leaves the working tree as it
was).

Without playwright or /usr/bin/chromium the module is skipped, unless CI is set: there the
missing pieces fail every test, so a green CI run proves the pages work.
Install: `apt-get install -y chromium` and `pip install playwright` (not `playwright install`).
"""

import json
import os
import re
import threading
import time
from urllib.parse import quote
from urllib.parse import urlsplit

import pytest
import requests

from live import LiveServer
from live import ROOT
from live import send

pytestmark = pytest.mark.live

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
AUTH = ("admin", "public")
NODES = 2
CLIENTS = 15  # per node
PAGE_SIZE = 10  # the overview's default page size, as in the EMQ X dashboard
NODE = "emqx@127.0.0.1"
NODE2 = "emqx@127.0.0.2"
DOCS = ROOT / "docs"
VIEWPORT = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
START_TIMEOUT = 20
UI_TIMEOUT = 10_000  # ms, for anything the page has to fetch and draw
JOURNAL_ROW = "#journal-table [data-testid=journal-row]"
UPDATE = os.environ.get("UPDATE_SCREENSHOT") == "1"

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

try:
    from playwright.sync_api import expect
    from playwright.sync_api import sync_playwright
    MISSING = None
except ImportError as exc:  # pragma: no cover - depends on the machine
    MISSING = f"playwright is not installed ({exc}); pip install playwright"
if MISSING is None and not os.access(CHROMIUM, os.X_OK):
    MISSING = f"{CHROMIUM} is missing; apt-get install -y chromium"
if MISSING and not IN_CI:
    pytest.skip(f"browser tests need Playwright and Debian's Chromium: {MISSING}",
                allow_module_level=True)


# ---------------------------------------------------------------------------
# The server: real gunicorn on a free port, a database of its own
# ---------------------------------------------------------------------------


def live_server(db, **kwargs):
    return LiveServer(db, workers=2, clients=CLIENTS, env={"STANDIN_NODES": str(NODES)},
                      args=["--config", str(ROOT / "gunicorn.conf.py"), "--access-logfile", "-"],
                      ready_path="/api/v3/brokers/", ready_auth=AUTH,  # seeds the db
                      start_timeout=START_TIMEOUT, stop_timeout=15, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("browser") / "standin.db") as live:
        yield live.url


def api(base, method, path, body=None):
    """An /api/v3 call answered HTTP 200 with code 0; the parsed body."""
    return send(base, method, "/api/v3" + path, body)


def control(base, method, path, body=None):
    """A /_standin control answered HTTP 200 with code 0; the parsed body."""
    return send(base, method, "/_standin" + path, body)


def shot_path(name, tmp_path):
    """Where a screenshot goes: docs/ with UPDATE_SCREENSHOT=1, else the test's folder."""
    return DOCS / name if UPDATE else tmp_path / name


# ---------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if MISSING:  # only reached under CI: the browser bits are part of what CI must prove
        pytest.fail(f"CI is set but the browser tests cannot run: {MISSING}")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


PROTECTED = ("/api/v3", "/_standin")
PUBLIC_PREFIXES = (*PROTECTED, "/static/")
WORLD_PREFIX = re.compile(r"^/worlds/([^/]+)(?=/)")  # a world's API and controls


class Watch:
    """What a page asked for: every request with its headers, and page errors."""

    def __init__(self, page, base):
        self.base = base
        self.requests = []
        self.errors = []
        page.on("request", self._request)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request(self, request):
        self.requests.append((request.method, request.url, dict(request.headers)))

    def ours(self):
        """(method, path, headers) of the requests to this server; a world's path as its
        path within the world (/worlds/<name>/api/v3/... as /api/v3/...)."""
        return [(m, WORLD_PREFIX.sub("", urlsplit(u).path), h) for m, u, h in self.requests
                if u.startswith(self.base + "/")]

    def worlds(self):
        """The worlds asked for, by name, with how many requests each."""
        names = [WORLD_PREFIX.match(urlsplit(u).path) for _, u, _ in self.requests
                 if u.startswith(self.base + "/")]
        return {n.group(1): sum(1 for x in names if x and x.group(1) == n.group(1))
                for n in names if n}

    def external(self):
        """Requests that left this server (the pages must work without the internet)."""
        return [u for _, u, _ in self.requests
                if not u.startswith((self.base + "/", "data:", "about:"))]

    def without_credentials(self):
        """Protected routes reached without an Authorization header (would pop a dialog)."""
        return [(m, p) for m, p, h in self.ours()
                if p.startswith(PROTECTED) and (m, p.rstrip("/")) != ("POST", "/api/v3/auth")
                and not h.get("authorization")]

    def private(self):
        """Paths that are neither the page, its files, the API nor the controls."""
        return [(m, p) for m, p, _ in self.ours()
                if p not in ("/", "/dashboard") and not p.startswith(PUBLIC_PREFIXES)]

    def polls(self):
        return [(m, p, h) for m, p, h in self.ours() if m == "GET" and p.startswith(PROTECTED)]

    def writes(self):
        """The actions: every write but the sign-in."""
        return [(m, p, h) for m, p, h in self.ours()
                if m != "GET" and p.startswith(PROTECTED) and p.rstrip("/") != "/api/v3/auth"]

    def check(self):
        assert self.errors == [], f"JavaScript errors: {self.errors}"
        assert self.external() == [], "the overview must not need the internet"
        assert self.without_credentials() == [], "a protected route was hit without credentials"
        assert self.private() == [], "the page may only use the public API and the controls"
        unmarked = [(m, p) for m, p, h in self.polls() if h.get("x-standin-overview") != "1"]
        assert unmarked == [], "the overview's polling must be marked X-Standin-Overview: 1"
        marked = [(m, p) for m, p, h in self.writes() if "x-standin-overview" in h]
        assert marked == [], "actions are real requests: they must not be marked"
        not_json = [(m, p) for m, p, h in self.writes()
                    if h.get("content-type") != "application/json"]
        assert not_json == [], "writes must send Content-Type: application/json"


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(UI_TIMEOUT)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, server):
    page = context.new_page()
    page.watch = Watch(page, server)
    yield page
    page.watch.check()


def log_in(page, base, refresh=1, user="admin", password="public"):
    page.goto(f"{base}/?refresh={refresh}")
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#login-username", user)
    page.fill("#login-password", password)
    page.click("#login-submit")


def rows(page, table):
    return page.locator(f"#{table}-table tbody tr[data-testid={table}-row]")


def row_keys(page, table):
    return rows(page, table).evaluate_all("rs => rs.map(r => r.dataset.key)")


def wait_refreshes(page, n):
    """Wait until the page has finished n more refresh rounds."""
    start = int(page.evaluate("Number(document.body.dataset.refreshed || 0)"))
    page.wait_for_function(f"Number(document.body.dataset.refreshed || 0) >= {start + n}",
                           timeout=UI_TIMEOUT)


def card(page, node):
    return page.locator(f"#node-list [data-testid=node-card][data-node='{node}']")


def panel(page, name):
    return page.locator(f"[data-panel={name}]")


def confirm(page, ok=True):
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    page.click("#confirm-ok" if ok else "#confirm-cancel")
    expect(dialog).to_be_hidden()


def number(page, selector):
    return int(page.locator(selector).inner_text().replace(",", ""))


# ---------------------------------------------------------------------------
# Sign-in and what the overview shows
# ---------------------------------------------------------------------------


def test_wrong_password_stays_on_the_form(page, server):
    log_in(page, server, password="not-the-password")
    expect(page.locator("#login-error")).to_contain_text("Password Error")
    expect(page.locator("#app-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_login_shows_the_nodes_and_the_totals_of_the_api(page, server):
    log_in(page, server)
    for node in api(server, "GET", "/nodes/")["data"]:
        c = card(page, node["name"])
        expect(c).to_be_visible()
        expect(c.locator("[data-testid=node-status]")).to_have_text("Running")
        expect(c.locator("[data-testid=node-version]")).to_contain_text(node["version"])
        expect(c.locator("[data-testid=node-memory]")).to_contain_text(node["memory_total"])
        expect(c.locator("[data-testid=node-load]")).to_contain_text(node["load1"])
        expect(c.locator("[data-testid=node-connections]")).to_have_text(f"{node['connections']:,}")
    expect(page.locator("#signed-in-as")).to_have_text("admin")
    expect(page.locator("#total-nodes")).to_have_text(f"{NODES} / {NODES}")
    api_calls = [h for _, p, h in page.watch.ours()
                 if p.startswith("/api/v3/") and "/auth" not in p]
    assert api_calls and all(h.get("authorization", "").startswith("Basic ") for h in api_calls)

    stats = api(server, "GET", "/stats/")["data"]
    total = sum(s["connections/count"] for s in stats)
    assert total == NODES * CLIENTS
    expect(page.locator("#total-connections")).to_have_text(f"{total:,}")
    expect(page.locator("#total-sessions")).to_have_text(
        f"{sum(s['sessions/count'] for s in stats):,}")
    expect(page.locator("#total-subscriptions")).to_have_text(
        f"{sum(s['subscriptions/count'] for s in stats):,}")
    expect(page.locator("#total-topics")).to_have_text(f"{stats[0]['topics/count']:,}")
    expect(page.locator("#total-retained")).to_have_text(f"{stats[0]['retained/count']:,}")

    # Plugins: one row per plugin, one switch per node and plugin, in the API's state.
    by_node = api(server, "GET", "/plugins/")["data"]
    expect(page.locator("#plugin-list [data-testid=plugin]")).to_have_count(
        len(by_node[0]["plugins"]))
    for entry in by_node:
        toggles = f"#plugin-list [data-testid=plugin-toggle][data-node='{entry['node']}']"
        expect(page.locator(toggles)).to_have_count(len(entry["plugins"]))
        active = [p["name"] for p in entry["plugins"] if p["active"]]
        expect(page.locator(toggles + "[aria-checked=true]")).to_have_count(len(active))
    alarms = sum(len(e["alarms"]) for e in api(server, "GET", "/alarms/")["data"])
    expect(page.locator("#alarm-list [data-testid=alarm]")).to_have_count(alarms)

    # The searches say what the 3.0 API looks up: an exact client id, an exact topic.
    for table in ("conn", "sess", "sub"):
        expect(page.locator(f"label[for={table}-search]")).to_have_text("Exact client id")
    expect(page.locator("label[for=route-search]")).to_have_text("Exact topic")

    # Logging out forgets the credentials and shows the form again.
    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_connections_page_through_by_number_and_size(page, server):
    log_in(page, server)
    count = api(server, "GET", f"/connections/?_limit={PAGE_SIZE}")["meta"]["count"]
    pages = -(-count // PAGE_SIZE)
    assert pages >= 3
    expect(page.locator("#conn-page")).to_contain_text(f"page 1 of {pages}")
    expect(rows(page, "conn")).to_have_count(PAGE_SIZE)

    def expected(n, size=PAGE_SIZE):
        return [c["client_id"] for c in
                api(server, "GET", f"/connections/?_page={n}&_limit={size}")["data"]]

    first = row_keys(page, "conn")
    assert first == expected(1)
    expect(page.locator("#conn-prev")).to_be_disabled()
    expect(page.locator("#conn-pages [data-page]")).to_have_count(pages)
    expect(page.locator("#conn-pages [aria-current=page]")).to_have_text("1")

    page.click("#conn-next")
    expect(page.locator("#conn-page")).to_contain_text(f"page 2 of {pages}")
    expect(rows(page, "conn")).to_have_count(len(expected(2)))
    assert row_keys(page, "conn") == expected(2)
    assert not set(expected(2)) & set(first)

    page.click(f"#conn-pages [data-page='{pages}']")
    expect(page.locator("#conn-page")).to_contain_text(f"page {pages} of {pages}")
    expect(page.locator("#conn-next")).to_be_disabled()
    expect(rows(page, "conn").first).to_have_attribute("data-key", expected(pages)[0])

    page.click("#conn-prev")
    expect(page.locator("#conn-page")).to_contain_text(f"page {pages - 1} of {pages}")

    # 10, 50 or 100 rows a page, as in the EMQ X dashboard.
    assert page.locator("#conn-size option").all_inner_texts() == ["10", "50", "100"]
    page.select_option("#conn-size", "50")
    expect(page.locator("#conn-page")).to_contain_text(f"page 1 of {-(-count // 50)}")
    expect(rows(page, "conn")).to_have_count(min(count, 50))
    assert row_keys(page, "conn") == expected(1, 50)


def test_search_then_kickout_disappears_within_one_refresh(page, server):
    conns = api(server, "GET", f"/connections/?_page=2&_limit={PAGE_SIZE}")["data"]
    victim = conns[-1]["client_id"]
    log_in(page, server, refresh=1)
    expect(rows(page, "conn")).to_have_count(PAGE_SIZE)

    page.fill("#conn-search", victim)
    expect(rows(page, "conn")).to_have_count(1)
    expect(rows(page, "conn").first).to_have_attribute("data-key", victim)
    expect(page.locator("#conn-page")).to_contain_text("1 match")
    # Sessions and subscriptions are searched by client id the same way.
    page.fill("#sess-search", victim)
    expect(rows(page, "sess")).to_have_count(1)
    expect(rows(page, "sess").first).to_have_attribute("data-key", victim)
    subs = api(server, "GET", f"/subscriptions/{quote(victim, safe='')}")["data"]
    page.fill("#sub-search", victim)
    expect(rows(page, "sub")).to_have_count(len(subs))
    # Routes by topic: "/test" needs encodeURIComponent (%2Ftest) to reach the route.
    page.fill("#route-search", "/test")
    expect(rows(page, "route")).to_have_count(1)
    expect(rows(page, "route").first).to_have_attribute("data-key", "/test")

    before = number(page, "#total-connections")
    wait_refreshes(page, 1)
    api(server, "DELETE", f"/connections/{quote(victim, safe='')}")
    # Gone within one refresh (1 s here), plus the time one refresh round takes.
    expect(rows(page, "conn")).to_have_count(0, timeout=3000)
    expect(page.locator("#conn-table tbody tr.empty")).to_contain_text(victim)
    expect(page.locator("#total-connections")).to_have_text(f"{before - 1:,}")

    # Clearing the search goes back to the paged list, the client no longer in it.
    page.fill("#conn-search", "")
    expect(page.locator("#conn-page")).to_contain_text("page 1 of")
    expect(rows(page, "conn")).to_have_count(PAGE_SIZE)


def test_node_filter_shows_one_node(page, server):
    log_in(page, server)
    expect(rows(page, "conn")).to_have_count(PAGE_SIZE)
    page.select_option("#node-filter", NODE2)

    expected = api(server, "GET", f"/nodes/{NODE2}/connections/?_limit={PAGE_SIZE}")
    expect(page.locator("#conn-page")).to_contain_text(
        f"{expected['meta']['count']:,} connections")
    expect(rows(page, "conn")).to_have_count(len(expected["data"]))
    assert row_keys(page, "conn") == [c["client_id"] for c in expected["data"]]
    stats = api(server, "GET", f"/nodes/{NODE2}/stats/")["data"]
    expect(page.locator("#total-connections")).to_have_text(f"{stats['connections/count']:,}")
    expect(page.locator("#totals-title")).to_have_text(f"Totals · {NODE2}")
    toggles = "#plugin-list [data-testid=plugin-toggle]"
    expect(page.locator(f"{toggles}[data-node='{NODE}']")).to_have_count(0)
    expect(page.locator(f"{toggles}[data-node='{NODE2}']")).not_to_have_count(0)
    expect(page.locator("#route-note")).to_be_visible()
    expect(card(page, NODE2)).to_have_class(re.compile(r"\bis-selected\b"))
    # A lookup with a node looks on that node only: a client of the other node is not found.
    other = api(server, "GET", f"/nodes/{NODE}/connections/?_limit=1")["data"][0]["client_id"]
    page.fill("#conn-search", other)
    expect(page.locator("#conn-table tbody tr.empty")).to_contain_text(f"on {NODE2}")

    # The choice survives a reload (per tab), and "All nodes" comes back to the cluster.
    page.reload()
    expect(page.locator("#node-filter")).to_have_value(NODE2)
    page.select_option("#node-filter", "")
    total = sum(s["connections/count"] for s in api(server, "GET", "/stats/")["data"])
    expect(page.locator("#total-connections")).to_have_text(f"{total:,}")
    expect(page.locator("#totals-title")).to_have_text("Cluster totals")


# ---------------------------------------------------------------------------
# The control room: each action through the page, its effect through the API
# ---------------------------------------------------------------------------


def test_kick_out_asks_first_and_lands_in_the_journal(page, server):
    victim = api(server, "GET", f"/connections/?_limit={PAGE_SIZE}")["data"][3]["client_id"]
    log_in(page, server)
    kick = page.locator(f"#conn-table tr[data-key='{victim}'] [data-testid=conn-kick]")

    kick.click()
    expect(page.locator("#confirm-subject")).to_have_text(victim)
    confirm(page, ok=False)  # cancelled: nothing happens
    wait_refreshes(page, 1)
    assert len(api(server, "GET", f"/connections/{quote(victim, safe='')}")["data"]) == 1

    kick.click()
    confirm(page)
    expect(page.locator(f"#conn-table tr[data-key='{victim}']")).to_have_count(0)
    assert api(server, "GET", f"/connections/{quote(victim, safe='')}")["data"] == []
    expect(page.locator("[data-testid=toast]").last).to_contain_text(f"Kicked out {victim}")

    # The kickout is in the journal (the page's polling is not), and its detail opens.
    entry = next(e for e in control(server, "GET", "/journal?limit=50")["data"]
                 if e["route"] == "kickout_connection")
    assert entry["method"] == "DELETE" and entry["code"] == 0 and victim in entry["path"]
    row = page.locator(f"{JOURNAL_ROW}[data-route=kickout_connection]").first
    expect(row).to_contain_text(victim)
    expect(row).to_contain_text("DELETE")
    row.click()
    detail = page.locator("#journal-detail")
    expect(detail).to_contain_text(f"/api/v3/connections/{victim}")
    expect(page.locator("[data-testid=journal-detail-status]")).to_have_text("200")
    expect(page.locator("[data-testid=journal-detail-code]")).to_have_text("0")


def test_simulated_device_connects_and_disconnects(page, server):
    log_in(page, server)
    expect(page.locator("#device-node option")).to_have_count(NODES)
    page.fill("#device-id", "ui-device-1")
    page.fill("#device-username", "ui-user")
    page.select_option("#device-node", NODE2)
    page.fill("#device-subs", "ui/sensors/# 1, ui/cmd")
    page.uncheck("#device-clean")
    page.click("#device-connect")

    device = page.locator("#device-list [data-testid=device][data-client=ui-device-1]")
    expect(device).to_be_visible()
    conn = api(server, "GET", "/connections/ui-device-1")["data"]
    assert len(conn) == 1
    assert conn[0]["node"] == NODE2 and conn[0]["username"] == "ui-user"
    assert conn[0]["clean_start"] is False
    subs = api(server, "GET", "/subscriptions/ui-device-1")["data"]
    subs = {(s["topic"], s["qos"]) for s in subs}
    assert subs == {("ui/sensors/#", 1), ("ui/cmd", 0)}
    page.fill("#conn-search", "ui-device-1")
    expect(rows(page, "conn")).to_have_count(1)

    device.locator("[data-testid=device-disconnect]").click()
    expect(page.locator("#confirm-subject")).to_have_text("ui-device-1")
    confirm(page)
    expect(device).to_have_count(0)
    assert api(server, "GET", "/connections/ui-device-1")["data"] == []
    # It left on its own with a persistent session: the session stays, offline.
    assert len(api(server, "GET", "/sessions/ui-device-1")["data"]) == 1
    expect(rows(page, "conn")).to_have_count(0)


def test_plugins_load_and_unload(page, server):
    plugin = "emqx_auth_username"

    def active(node):
        return next(p["active"] for p in api(server, "GET", f"/nodes/{node}/plugins/")["data"]
                    if p["name"] == plugin)

    assert not active(NODE) and not active(NODE2)
    log_in(page, server)
    toggle = page.locator(f"[data-testid=plugin-toggle][data-plugin={plugin}][data-node='{NODE}']")
    expect(toggle).to_have_attribute("aria-checked", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-checked", "true")
    assert active(NODE) and not active(NODE2)
    toggle.click()
    expect(toggle).to_have_attribute("aria-checked", "false")
    assert not active(NODE)


def test_alarms_raise_and_clear(page, server):
    log_in(page, server)
    page.fill("#alarm-id", "ui_disk_full")
    page.select_option("#alarm-severity", "critical")
    page.select_option("#alarm-node", NODE2)
    page.fill("#alarm-summary", "Disk 97% full")
    page.click("#alarm-raise")

    item = page.locator(f"#alarm-list [data-alarm-id=ui_disk_full][data-node='{NODE2}']")
    expect(item).to_contain_text("Disk 97% full")
    expect(item).to_contain_text("critical")
    alarms = api(server, "GET", f"/alarms/{NODE2}")["data"]
    assert [(a["id"], a["severity"], a["summary"]) for a in alarms][:1] == [
        ("ui_disk_full", "critical", "Disk 97% full")]
    assert all(a["id"] != "ui_disk_full" for a in api(server, "GET", f"/alarms/{NODE}")["data"])

    item.locator("[data-testid=alarm-clear]").click()
    expect(page.locator("#confirm-subject")).to_have_text("ui_disk_full")
    confirm(page)
    expect(item).to_have_count(0)
    assert all(a["id"] != "ui_disk_full" for a in api(server, "GET", f"/alarms/{NODE2}")["data"])


def test_a_fault_on_one_route_is_reported_beside_its_panel(page, server, tmp_path):
    log_in(page, server)
    expect(page.locator("#fault-route option[value=list_all_alarms]")).to_have_count(1)
    page.select_option("#fault-route", "list_all_alarms")
    page.fill("#fault-rate", "100")
    page.fill("#fault-status", "503")
    page.fill("#fault-latency", "0")
    page.click("#fault-set")
    try:
        faults = control(server, "GET", "/faults")["data"]["faults"]
        assert faults["routes"] == ["list_all_alarms"]
        assert faults["error_rate"] == 1 and faults["error"]["status"] == 503
        expect(page.locator("#fault-active")).to_contain_text("list_all_alarms")

        alarms = panel(page, "alarms")
        error = alarms.locator("[data-testid=panel-error]")
        expect(error).to_be_visible()
        expect(error).to_contain_text("injected fault")
        expect(error).to_contain_text("HTTP 503")
        expect(alarms).to_have_class(re.compile(r"\bis-stale\b"))
        expect(alarms.locator("[data-testid=fault-chip]")).to_contain_text("list_all_alarms")
        # The other panels read other routes: no error, no chip, and the server is reachable.
        for other in ("nodes", "totals", "plugins", "conn"):
            expect(panel(page, other).locator("[data-testid=panel-error]")).to_be_hidden()
            expect(panel(page, other).locator("[data-testid=fault-chip]")).to_be_hidden()
        expect(page.locator("#offline-banner")).to_be_hidden()
        page.evaluate("document.querySelector('[data-panel=alarms]').scrollIntoView()")
        page.screenshot(path=str(shot_path("overview-fault.png", tmp_path)))
    finally:
        page.click("#fault-clear")
    expect(page.locator("#fault-active")).to_have_text("No fault injected.")
    assert control(server, "GET", "/faults")["data"]["faults"] is None
    expect(panel(page, "alarms").locator("[data-testid=panel-error]")).to_be_hidden()
    expect(panel(page, "alarms")).not_to_have_class(re.compile(r"\bis-stale\b"))


def test_journal_filters_detail_pause_and_clear(page, server):
    control(server, "DELETE", "/journal")
    api(server, "GET", "/connections/?_limit=50")
    api(server, "POST", "/mqtt/publish", {"topic": "ui/journal", "payload": "hello", "qos": 1})
    refused = requests.delete(f"{server}/api/v3/connections/nobody-here", auth=AUTH, timeout=10)
    assert refused.json()["code"] == 112
    missing = requests.get(f"{server}/api/v3/no/such/route", auth=AUTH, timeout=10)
    assert missing.status_code == 404
    log_in(page, server)
    journal = page.locator(JOURNAL_ROW)
    expect(journal.first).to_be_visible()

    page.select_option("#journal-route", "mqtt_publish")
    expect(journal).not_to_have_count(0)
    assert set(journal.evaluate_all("rs => rs.map(r => r.dataset.route)")) == {"mqtt_publish"}
    page.select_option("#journal-route", "")
    page.select_option("#journal-status", "code")  # HTTP 200 with a code other than 0
    expect(page.locator(f"{JOURNAL_ROW}[data-route=kickout_connection]")).not_to_have_count(0)
    codes = journal.evaluate_all("rs => rs.map(r => r.dataset.code)")
    assert all(c not in ("0", "null") for c in codes), codes
    page.select_option("#journal-status", "4xx")
    expect(journal).not_to_have_count(0)
    assert {s[0] for s in journal.evaluate_all("rs => rs.map(r => r.dataset.status)")} == {"4"}
    page.select_option("#journal-status", "")

    # The detail: the request body as sent and the answer (pretty JSON); a long answer is
    # shown as the journal keeps it, cut at its first KiB.
    page.select_option("#journal-route", "mqtt_publish")
    journal.first.click()
    body = page.locator("[data-testid=journal-request-body]")
    assert json.loads(body.inner_text()) == {"topic": "ui/journal", "payload": "hello", "qos": 1}
    answer = page.locator("[data-testid=journal-response-body]")
    assert json.loads(answer.inner_text()) == {"code": 0}
    page.select_option("#journal-route", "list_connections")
    expect(journal).not_to_have_count(0)
    journal.first.click()
    expect(answer).to_contain_text('{"code": 0, "data": [{')
    assert answer.inner_text().endswith("…")
    page.select_option("#journal-route", "")

    # Paused, the panel keeps what it shows; resumed, it catches up.
    page.check("#journal-pause")
    shown = journal.count()
    api(server, "POST", "/mqtt/publish", {"topic": "ui/journal/paused", "payload": "x"})
    toggle = page.locator(
        f"[data-testid=plugin-toggle][data-plugin=emqx_recon][data-node='{NODE}']")
    for state in ("false", "true"):  # two actions, each refreshing at once
        toggle.click()
        expect(toggle).to_have_attribute("aria-checked", state)
    wait_refreshes(page, 2)
    assert journal.count() == shown
    page.uncheck("#journal-pause")
    expect(journal).to_have_count(shown + 3)  # the publish and the two plugin actions

    page.click("#journal-clear")
    confirm(page)
    expect(page.locator("#journal-table tbody tr.empty")).to_be_visible()
    assert control(server, "GET", "/journal")["data"] == []


def test_stop_and_start_a_node_from_its_card(page, server):
    log_in(page, server)
    node_card = card(page, NODE2)
    expect(node_card.locator("[data-testid=node-status]")).to_have_text("Running")
    node_card.locator("[data-testid=node-stop]").click()

    expect(node_card.locator("[data-testid=node-status]")).to_have_text("Stopped")
    status = {n["name"]: n["node_status"] for n in api(server, "GET", "/nodes/")["data"]}
    assert status == {NODE: "Running", NODE2: "Stopped"}
    note = node_card.locator("[data-testid=node-stopped]")
    expect(note).to_contain_text("Stopped since ")
    expect(node_card).to_contain_text("Last seen running: EMQ X 3.0")
    assert "undefined" not in page.locator("#node-list").inner_text()
    expect(page.locator("#total-nodes")).to_have_text(f"1 / {NODES}")
    expect(page.locator(f"#node-filter option[value='{NODE2}']")).to_have_text(f"{NODE2} (stopped)")

    node_card.locator("[data-testid=node-start]").click()
    expect(node_card.locator("[data-testid=node-status]")).to_have_text("Running")
    status = {n["name"]: n["node_status"] for n in api(server, "GET", "/nodes/")["data"]}
    assert status == {NODE: "Running", NODE2: "Running"}
    expect(page.locator("#total-nodes")).to_have_text(f"{NODES} / {NODES}")


def test_theme_follows_the_system_and_toggles(browser, server):
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="dark")
    ctx.set_default_timeout(UI_TIMEOUT)
    try:
        page = ctx.new_page()
        watch = Watch(page, server)
        log_in(page, server)
        expect(rows(page, "conn")).to_have_count(PAGE_SIZE)

        def background():
            return page.evaluate("getComputedStyle(document.body).backgroundColor")

        def luminance():
            r, g, b = (int(v) for v in re.findall(r"\d+", background())[:3])
            return (r + g + b) / 3

        assert luminance() < 60, background()  # the system says dark
        expect(page.locator("html")).to_have_attribute("data-theme-now", "dark")
        expect(page.locator("#theme-toggle")).to_have_accessible_name("Switch to the light theme")
        page.click("#theme-toggle")
        assert luminance() > 200, background()
        expect(page.locator("html")).to_have_attribute("data-theme-now", "light")
        expect(page.locator("#theme-toggle")).to_have_accessible_name("Switch to the dark theme")
        page.reload()  # the choice is remembered
        expect(page.locator("#app-view")).to_be_visible()
        assert luminance() > 200, background()
        page.click("#theme-toggle")
        assert luminance() < 60, background()
        watch.check()
    finally:
        ctx.close()


# ---------------------------------------------------------------------------
# Layouts and the screenshots
# ---------------------------------------------------------------------------


def overflowing_tables(page):
    return page.evaluate("""Array.from(document.querySelectorAll('.table-wrap'))
        .filter(w => w.offsetParent && w.scrollWidth > w.clientWidth + 1)
        .map(w => (w.querySelector('table').id || w.parentNode.id) + ': '
                  + w.scrollWidth + ' > ' + w.clientWidth)""")


def broken_node_names(page):
    """Node names drawn on more than one line."""
    return page.evaluate("""Array.from(document.querySelectorAll('.node-name'))
        .filter(e => e.getClientRects().length
                     && e.offsetHeight > 1.5 * parseFloat(getComputedStyle(e).lineHeight))
        .map(e => e.textContent)""")


LONG_ID = "building-7/floor-3/room-312/hvac-controller-0042-with-a-rather-long-client-id"


def test_layouts_charts_and_screenshots(page, server, tmp_path):
    # A world and a snapshot, so that their cards show what they list.
    control(server, "POST", "/worlds", {"name": "training-1", "nodes": 1, "clients": 4})
    control(server, "POST", "/snapshots", {"name": "baseline"})
    control(server, "POST", "/clients", {
        "client_id": LONG_ID, "username": "provisioning-service-account-for-the-east-wing",
        "ipaddress": "2001:db8:85a3:1234:5678:8a2e:370:7334"})
    log_in(page, server, refresh=1)
    expect(rows(page, "conn")).to_have_count(PAGE_SIZE)
    control(server, "POST", "/alarms", {
        "id": "high_system_memory_usage", "severity": "critical", "node": NODE,
        "title": "high_system_memory_usage",
        "summary": "System memory usage 91% is above the high watermark 80%"})
    expect(page.locator("#alarm-list [data-alarm-id=high_system_memory_usage]")).to_be_visible()

    # Traffic while the page refreshes: publishes to /test (two subscribers) by a device (a
    # message received) and through the API (only delivered; it shows in the journal), an
    # uneven number each round, and a device connecting now and then, until the screenshots
    # are taken.
    stop = threading.Event()
    send(server, "POST", "/_standin/clients", {"client_id": "chart-device"})

    def traffic():
        i = 0
        while not stop.is_set() and i < 600:
            i += 1
            for _ in range(1 + i % 4):
                send(server, "POST", "/_standin/clients/chart-device/publish",
                     {"topic": "/test", "payload": f"hello {i}", "qos": 1})
                api(server, "POST", "/mqtt/publish",
                    {"topic": "/test", "payload": f"hello {i}", "qos": 1})
            if i % 7 == 0:
                control(server, "POST", "/clients", {"client_id": f"sensor-burst-{i % 3}"})
            stop.wait(0.2)

    publisher = threading.Thread(target=traffic, daemon=True)
    publisher.start()
    try:
        # A device connected from the control room, a request opened in the journal.
        page.fill("#device-id", "demo-thermostat")
        page.fill("#device-subs", "home/+/temperature 1")
        page.click("#device-connect")
        expect(page.locator("#device-list [data-testid=device]")).to_have_count(1)
        time.sleep(4)
        wait_refreshes(page, 1)
        page.locator(f"{JOURNAL_ROW}[data-route=mqtt_publish]").first.click()
        expect(page.locator("[data-testid=journal-request-body]")).to_contain_text("hello")

        # Charts: both series drawn and moving, a y axis with values, a time axis, hover values.
        for chart in ("messages", "packets", "bytes", "connections"):
            svg = page.locator(f"#chart-{chart}")
            expect(svg.locator("polyline.s-in")).not_to_have_count(0)
            expect(svg.locator("polyline.s-out")).not_to_have_count(0)
            assert svg.locator("text.axis").count() >= 4  # values and times
        points = page.locator("#chart-messages polyline.s-in").first.get_attribute("points").split()
        assert len(points) >= 3
        assert len({p.split(",")[1] for p in points}) > 1, "the message rate line should move"
        assert float(page.locator("#rate-msg-out").inner_text().replace(",", "")) > 0
        labels = page.locator("#chart-messages text.axis").all_text_contents()
        assert any(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in labels), labels
        assert "0" in labels, labels
        chart = page.locator("#chart-messages")
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        chart.hover(position={"x": box["width"] - 30, "y": box["height"] / 2})
        tip = page.locator("#chart-messages-tip")
        expect(tip).to_be_visible()
        expect(tip).to_contain_text("received")
        expect(tip).to_contain_text("sent")
        page.mouse.move(0, 0)
        expect(tip).to_be_hidden()

        # 1400 px: every table fits its panel, a long id or address included; the page does
        # not scroll sideways.
        assert overflowing_tables(page) == []
        page.fill("#conn-search", LONG_ID)
        page.fill("#sess-search", LONG_ID)
        expect(rows(page, "conn")).to_have_count(1)
        expect(rows(page, "sess")).to_have_count(1)
        assert overflowing_tables(page) == []
        page.fill("#conn-search", "")
        page.fill("#sess-search", "")
        expect(rows(page, "conn")).to_have_count(PAGE_SIZE)
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
        for close in page.locator(".toast-close").all():  # toasts float over the picture
            close.click()
        page.evaluate("window.scrollTo(0, 0)")  # the first screen, as a projector shows it
        light = shot_path("overview.png", tmp_path)
        page.screenshot(path=str(light))

        page.click("#theme-toggle")
        dark = shot_path("overview-dark.png", tmp_path)
        page.screenshot(path=str(dark))
        page.click("#theme-toggle")

        # 390 px: one column, nothing sideways, node names whole.
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(300)  # the charts redraw for the new width
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert broken_node_names(page) == []
        assert overflowing_tables(page) == []
        page.evaluate("window.scrollTo(0, 0)")
        phone = shot_path("overview-phone.png", tmp_path)
        page.screenshot(path=str(phone))
        page.evaluate("document.getElementById('control-room').scrollIntoView()")
        phone_control = shot_path("overview-phone-control.png", tmp_path)
        page.screenshot(path=str(phone_control))
    finally:
        stop.set()
        publisher.join(timeout=15)
        control(server, "DELETE", "/alarms/high_system_memory_usage")
        api(server, "DELETE", "/connections/" + quote(LONG_ID, safe=""))
        control(server, "DELETE", "/worlds/training-1")
        control(server, "DELETE", "/snapshots/baseline")
    for shot in (light, dark, phone, phone_control):
        assert shot.stat().st_size > 20_000, shot


# ---------------------------------------------------------------------------
# Failure states: a stopped node, then the server gone and back
# ---------------------------------------------------------------------------


def test_stopped_node_and_lost_server(browser, tmp_path):
    db = tmp_path / "lost.db"
    live = live_server(db).__enter__()
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(UI_TIMEOUT)
    try:
        page = ctx.new_page()
        watch = Watch(page, live.url)
        log_in(page, live.url)
        expect(card(page, NODE2).locator("[data-testid=node-status]")).to_have_text("Running")

        # The node stops behind the page's back: shown as stopped, with when, never undefined.
        control(live.url, "PUT", f"/nodes/{NODE2}", {"node_status": "Stopped"})
        stopped = card(page, NODE2)
        expect(stopped.locator("[data-testid=node-status]")).to_have_text("Stopped")
        expect(stopped.locator("[data-testid=node-stopped]")).to_contain_text(
            re.compile(r"Stopped since \d\d:\d\d:\d\d"))
        expect(stopped.locator(".node-name")).to_have_text(NODE2)
        assert "undefined" not in page.locator("#node-list").inner_text()
        expect(page.locator("#total-nodes")).to_have_text(f"1 / {NODES}")
        # Its own view says why it is empty instead of failing.
        page.select_option("#node-filter", NODE2)
        notice = panel(page, "conn").locator("[data-testid=panel-error]")
        expect(notice).to_contain_text(f"{NODE2} is stopped")
        expect(notice).to_have_class(re.compile(r"\bnotice\b"))
        expect(page.locator("#chart-messages .chart-note")).to_contain_text("stopped")
        page.select_option("#node-filter", "")
        expect(notice).to_be_hidden()
        wait_refreshes(page, 1)
        updated = page.locator("#refresh-status").inner_text()
        assert updated.startswith("updated ")

        # The server dies under the open page.
        live.kill_all()
        banner = page.locator("#offline-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Cannot reach the server since")
        expect(banner.locator("[data-testid=last-good]")).to_contain_text(
            re.compile(r"from \d\d:\d\d:\d\d \(last good answer\)"))
        expect(page.locator("#live-pill")).to_have_text("offline")
        expect(page.locator("#refresh-status")).to_contain_text("last good")
        expect(page.locator("body")).to_have_class(re.compile(r"\bis-offline\b"))
        # Greyed: the panels fade out (a 0.3 s transition, so wait for it rather than read
        # the first frame's opacity).
        page.wait_for_function(
            "parseFloat(getComputedStyle(document.querySelector('[data-panel=nodes]')).opacity)"
            " < 1", timeout=2000)
        opacity = page.evaluate(
            "getComputedStyle(document.querySelector('[data-panel=nodes]')).opacity")
        assert float(opacity) < 1, "stale data is greyed"
        # At the top of the viewport wherever the page is scrolled to.
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_timeout(200)
        box = banner.bounding_box()
        assert box and 0 <= box["y"] < 200 and box["height"] > 10, box
        page.evaluate("window.scrollTo(0, 0)")
        # The stopped node stays shown as it was last seen.
        expect(stopped.locator("[data-testid=node-status]")).to_have_text("Stopped")
        page.screenshot(path=str(shot_path("overview-offline.png", tmp_path)))

        # Back on the same port and database: the page recovers by itself.
        live = live_server(db, port=live.port).__enter__()
        expect(banner).to_be_hidden(timeout=UI_TIMEOUT)
        expect(page.locator("#live-pill")).to_have_text("live")
        expect(page.locator("#refresh-status")).to_contain_text("updated ")
        expect(page.locator("body")).not_to_have_class(re.compile(r"\bis-offline\b"))
        expect(card(page, NODE2).locator("[data-testid=node-status]")).to_have_text("Stopped")
        watch.check()
    finally:
        ctx.close()
        live.stop()


# ---------------------------------------------------------------------------
# Worlds and snapshots
# ---------------------------------------------------------------------------


def world_item(page, name):
    return page.locator(f"#world-list [data-testid=world][data-world='{name}']")


def test_worlds_create_show_and_delete(page, server):
    log_in(page, server)
    expect(world_item(page, "")).to_be_visible()  # the default world, shown
    expect(world_item(page, "").locator("[data-testid=world-shown]")).to_be_visible()
    expect(page.locator("#world-chip")).to_be_hidden()

    page.fill("#world-name", "training-1")
    page.fill("#world-nodes", "1")
    page.fill("#world-clients", "4")
    page.click("#world-create")
    item = world_item(page, "training-1")
    expect(item).to_be_visible()
    expect(item).to_contain_text("1 node · 4 clients per node")
    made = {w["name"]: w for w in control(server, "GET", "/worlds")["data"]}
    assert made["training-1"]["settings"] == {"seed": 42, "nodes": 1, "clients": 4}

    # Shown: every panel reads the world's API, the default world is left alone.
    base = f"{server}/worlds/training-1"
    before = api(server, "GET", "/stats/")["data"]
    item.locator("[data-testid=world-show]").click()
    expect(page.locator("#world-chip")).to_have_text("world training-1")
    expect(item.locator("[data-testid=world-shown]")).to_be_visible()
    expect(page.locator("#total-nodes")).to_have_text("1 / 1")
    expect(page.locator("#total-connections")).to_have_text(
        str(api(base, "GET", "/stats/")["data"][0]["connections/count"]))
    expect(page.locator("#snapshot-world")).to_have_text("world training-1")
    victim = api(base, "GET", "/connections/")["data"][0]["client_id"]
    expect(rows(page, "conn").first).to_have_attribute("data-key", victim)
    rows(page, "conn").first.locator("[data-testid=conn-kick]").click()
    confirm(page)
    expect(page.locator("#total-connections")).to_have_text("3")
    assert api(base, "GET", f"/connections/{quote(victim, safe='')}")["data"] == []
    assert api(server, "GET", "/stats/")["data"] == before  # the default world is untouched
    assert page.watch.worlds().get("training-1", 0) > 5
    # A reload keeps showing it (per tab).
    page.reload()
    expect(page.locator("#world-chip")).to_have_text("world training-1")
    expect(page.locator("#total-nodes")).to_have_text("1 / 1")

    # Deleting it asks first; the overview goes back to the default world.
    item.locator("[data-testid=world-delete]").click()
    expect(page.locator("#confirm-subject")).to_have_text("training-1")
    confirm(page, ok=False)
    assert "training-1" in {w["name"] for w in control(server, "GET", "/worlds")["data"]}
    item.locator("[data-testid=world-delete]").click()
    confirm(page)
    expect(item).to_have_count(0)
    assert control(server, "GET", "/worlds")["data"] == []
    assert requests.get(f"{base}/api/v3/brokers/", auth=AUTH, timeout=10).status_code == 404
    expect(page.locator("#world-chip")).to_be_hidden()
    expect(page.locator("#total-nodes")).to_have_text(f"{NODES} / {NODES}")
    expect(world_item(page, "").locator("[data-testid=world-shown]")).to_be_visible()


def test_a_world_deleted_elsewhere_sends_the_overview_home(page, server):
    control(server, "POST", "/worlds", {"name": "short-lived", "nodes": 1, "clients": 2})
    log_in(page, server)
    world_item(page, "short-lived").locator("[data-testid=world-show]").click()
    expect(page.locator("#world-chip")).to_have_text("world short-lived")
    control(server, "DELETE", "/worlds/short-lived")
    expect(page.locator("#world-chip")).to_be_hidden()
    expect(page.locator("[data-testid=toast]").last).to_contain_text("short-lived is gone")
    expect(page.locator("#total-nodes")).to_have_text(f"{NODES} / {NODES}")


def snapshot_item(page, name):
    return page.locator(f"#snapshot-list [data-testid=snapshot][data-snapshot='{name}']")


def snapshot_names(base):
    return [x["name"] for x in control(base, "GET", "/snapshots")["data"]]


def test_snapshots_save_restore_and_delete(page, server):
    log_in(page, server)
    expect(page.locator("#snapshot-list")).to_contain_text("None saved yet")
    saved = sum(s["connections/count"] for s in api(server, "GET", "/stats/")["data"])
    page.fill("#snapshot-name", "before-demo")
    page.click("#snapshot-save")
    expect(snapshot_item(page, "before-demo")).to_be_visible()
    assert snapshot_names(server) == ["before-demo"]

    # Something happens, then the snapshot is restored from the page (after a confirmation).
    control(server, "POST", "/clients", {"client_id": "after-the-snapshot"})
    expect(page.locator("#total-connections")).to_have_text(f"{saved + 1:,}")
    snapshot_item(page, "before-demo").locator("[data-testid=snapshot-restore]").click()
    expect(page.locator("#confirm-title")).to_have_text("Restore this snapshot?")
    confirm(page, ok=False)
    assert len(api(server, "GET", "/connections/after-the-snapshot")["data"]) == 1
    snapshot_item(page, "before-demo").locator("[data-testid=snapshot-restore]").click()
    confirm(page)
    expect(page.locator("[data-testid=toast]").last).to_contain_text("Restored snapshot")
    assert api(server, "GET", "/connections/after-the-snapshot")["data"] == []
    expect(page.locator("#total-connections")).to_have_text(f"{saved:,}")

    # Saving under a name in use asks before it overwrites.
    page.fill("#snapshot-name", "before-demo")
    page.click("#snapshot-save")
    expect(page.locator("#confirm-title")).to_have_text("Overwrite this snapshot?")
    confirm(page, ok=False)

    # A new world can start from a snapshot of the default world.
    page.select_option("#world-from", "before-demo")
    expect(page.locator("#world-settings")).to_be_hidden()
    page.fill("#world-name", "from-snapshot")
    page.click("#world-create")
    expect(world_item(page, "from-snapshot")).to_be_visible()
    base = f"{server}/worlds/from-snapshot"
    assert api(base, "GET", "/stats/")["data"] == api(server, "GET", "/stats/")["data"]
    # Its snapshots are its own.
    world_item(page, "from-snapshot").locator("[data-testid=world-show]").click()
    expect(page.locator("#snapshot-world")).to_have_text("world from-snapshot")
    expect(page.locator("#snapshot-list")).to_contain_text("None saved yet")
    page.fill("#snapshot-name", "in-the-world")
    page.click("#snapshot-save")
    expect(snapshot_item(page, "in-the-world")).to_be_visible()
    assert snapshot_names(base) == ["in-the-world"]
    assert snapshot_names(server) == ["before-demo"]
    world_item(page, "from-snapshot").locator("[data-testid=world-delete]").click()
    confirm(page)
    expect(page.locator("#world-chip")).to_be_hidden()

    # Deleting a snapshot asks first.
    snapshot_item(page, "before-demo").locator("[data-testid=snapshot-delete]").click()
    confirm(page, ok=False)
    assert snapshot_names(server) == ["before-demo"]
    snapshot_item(page, "before-demo").locator("[data-testid=snapshot-delete]").click()
    confirm(page)
    expect(snapshot_item(page, "before-demo")).to_have_count(0)
    assert snapshot_names(server) == []


def test_traffic_card_hides_itself_without_the_control(page, server):
    """A server without GET /_standin/traffic (an older one: 404, played here by the
    browser) shows no traffic card, reports no error, and is asked once."""
    page.route("**/_standin/traffic", lambda route: route.fulfill(
        status=404, content_type="application/json", body='{"code":404,"message":"not found"}'))
    log_in(page, server)
    expect(rows(page, "conn")).to_have_count(PAGE_SIZE)
    wait_refreshes(page, 3)
    expect(page.locator("[data-testid=traffic-card]")).to_be_hidden()
    expect(panel(page, "control").locator("[data-testid=panel-error]")).to_be_hidden()
    asked = [p for m, p, _ in page.watch.ours() if m == "GET" and p == "/_standin/traffic"]
    assert asked == ["/_standin/traffic"]


def test_traffic_card_turns_traffic_on_and_the_overview_moves(page, server):
    """The card's fields are the rates the control takes; "Turn on" starts live traffic at
    the rates typed, and within seconds the overview's counts and charts move on their own;
    "Turn off" stops it. (That the same seed and time give the same state: test_traffic.py.)"""
    log_in(page, server)
    card_ = page.locator("[data-testid=traffic-card]")
    expect(card_).to_be_visible()
    expect(page.locator("[data-testid=traffic-state]")).to_contain_text("Off")
    limits = control(server, "GET", "/traffic")["data"]["limits"]
    expect(card_.locator("input[type=number]")).to_have_count(len(limits))
    expect(page.locator("[data-testid=traffic-connects_per_min]")).to_have_attribute(
        "max", str(limits["connects_per_min"]["max"]))
    totals = ("#total-connections", "#total-subscriptions", "#total-retained")
    before = [page.locator(t).inner_text() for t in totals]
    page.fill("[data-testid=traffic-connects_per_min]", "1200")
    page.fill("[data-testid=traffic-publishes_per_s]", "50")
    page.click("[data-testid=traffic-on]")
    expect(page.locator("[data-testid=traffic-state]")).to_contain_text("On")
    state = control(server, "GET", "/traffic")["data"]
    assert state["on"] and state["connects_per_min"] == 1200 and state["publishes_per_s"] == 50
    page.wait_for_function(
        "before => before.some((text, i) => document.querySelector("
        "['#total-connections', '#total-subscriptions', '#total-retained'][i]).textContent"
        " !== text)", arg=before, timeout=UI_TIMEOUT)
    assert control(server, "GET", "/traffic")["data"]["counts"]["connects"] > 0
    # The charts move with it: devices publish (messages received) and connect.
    page.wait_for_function(
        "['rate-msg-in', 'rate-conn-in'].every(id =>"
        " Number(document.getElementById(id).textContent.replace(/,/g, '')) > 0)",
        timeout=UI_TIMEOUT)
    page.click("[data-testid=traffic-off]")
    expect(page.locator("[data-testid=traffic-state]")).to_contain_text("Off")
    assert control(server, "GET", "/traffic")["data"]["on"] is False


# ---------------------------------------------------------------------------
# Reset (last of the overview's tests: it rebuilds the module's cluster)
# ---------------------------------------------------------------------------


def test_reset_asks_first_and_rebuilds_the_cluster(page, server):
    control(server, "POST", "/clients", {"client_id": "before-reset"})
    log_in(page, server)
    expect(page.locator("#reset-nodes")).to_have_value(str(NODES))
    expect(page.locator("#reset-clients")).to_have_value(str(CLIENTS))
    page.click("#reset-submit")
    expect(page.locator("#confirm-title")).to_contain_text("Reset")
    confirm(page, ok=False)
    assert len(api(server, "GET", "/connections/before-reset")["data"]) == 1

    page.fill("#reset-clients", "12")
    page.click("#reset-submit")
    expect(page.locator("#confirm-message")).to_contain_text("12 clients per node")
    confirm(page)
    expect(page.locator("#total-connections")).to_have_text(f"{NODES * 12:,}")
    assert api(server, "GET", "/connections/before-reset")["data"] == []
    settings = control(server, "GET", "")["data"]["settings"]
    assert settings == {"seed": 42, "nodes": NODES, "clients": 12}
    expect(page.locator("#reset-current")).to_contain_text("12 clients per node")

    # Back to the module's world for whatever runs next.
    control(server, "POST", "/reset", {"clients": CLIENTS})


# ---------------------------------------------------------------------------
# The API explorer (Swagger UI)
# ---------------------------------------------------------------------------


@pytest.fixture
def docs(browser, server):
    """The explorer open, signed in (the context answers the browser's Basic prompt) and
    watched: no JavaScript error and nothing from the internet, checked when done."""
    ctx = browser.new_context(viewport=VIEWPORT,
                              http_credentials={"username": AUTH[0], "password": AUTH[1]})
    ctx.set_default_timeout(UI_TIMEOUT)
    page = ctx.new_page()
    watch = Watch(page, server)
    page.goto(f"{server}/_standin/docs")
    yield page
    ctx.close()
    assert watch.errors == [], watch.errors
    assert watch.external() == [], "Swagger UI must not need the internet"


def test_docs_try_it_out_list_brokers(docs):
    # Swagger UI names an operation's block operations-<tag>-<operationId>.
    op = docs.locator("div.opblock[id^='operations-'][id$='-list_brokers']").first
    expect(op).to_be_visible(timeout=15_000)
    op.locator(".opblock-summary").first.click()
    try_it = op.get_by_role("button", name="Try it out")
    if try_it.count():  # tryItOutEnabled opens operations ready to execute
        try_it.click()
    op.get_by_role("button", name="Execute").click()
    live = op.locator(".live-responses-table tbody")
    expect(live.locator(".response-col_status").first).to_have_text("200")
    expect(live.locator(".response-col_description")).to_contain_text('"code": 0')
    expect(live.locator(".response-col_description")).to_contain_text(NODE)


def test_docs_filter_finds_a_chapter(docs, tmp_path):
    """Operations are tagged with the document's chapters: typing "connections" in the
    explorer's filter box leaves the connections chapter, all of it, and nothing else."""
    page = docs
    brokers = page.locator("div.opblock[id$='-list_brokers']")
    expect(brokers).to_be_visible(timeout=15_000)
    page.fill("input.operation-filter-input", "connections")
    expect(brokers).to_have_count(0)
    sections = page.locator(".opblock-tag-section h3")
    expect(sections).to_have_count(1)
    expect(sections.first).to_contain_text("connections")
    ops = page.locator("div.opblock[id^='operations-connections-']")
    expect(ops).to_have_count(6)  # 3 lists and lookups, node-scoped twins, kickout, acl
    for name in ("list_connections", "lookup_node_connections", "kickout_connection"):
        expect(page.locator(f"#operations-connections-{name}")).to_be_visible()
    # The path as the document prints it, trailing slash and all.
    expect(page.locator("#operations-connections-list_connections .opblock-summary-path")
           ).to_have_attribute("data-path", "/api/v3/connections/")
    page.evaluate("window.scrollTo(0, document.querySelector('.filter-container')"
                  ".getBoundingClientRect().top + window.scrollY - 8)")
    page.screenshot(path=str(shot_path("explorer.png", tmp_path)))


def test_docs_needs_credentials(server):
    assert requests.get(f"{server}/_standin/docs", timeout=10).status_code == 401
    assert requests.get(f"{server}/_standin/openapi.json", timeout=10).status_code == 401
    response = requests.get(f"{server}/_standin/docs", auth=AUTH, timeout=10)
    assert response.status_code == 200 and "swagger-ui-bundle.js" in response.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert requests.get(f"{server}/_standin/docs/{asset}", auth=AUTH,
                            timeout=10).status_code == 200, asset
    # A current Swagger UI (5.x), from the package's own release files.
    release = requests.get(f"{server}/_standin/docs/VERSION", auth=AUTH, timeout=10).text
    assert re.fullmatch(r"v?(\d+)\.\d+\.\d+\s*", release) and int(
        re.match(r"v?(\d+)", release).group(1)) >= 5, release
    spec = json.loads(requests.get(f"{server}/_standin/openapi.json", auth=AUTH, timeout=10).text)
    assert spec["components"]["securitySchemes"]["basicAuth"]["scheme"] == "basic"
