"""The pages in a real browser: the live overview (/) and the API explorer (/_standin/docs).

Playwright drives Debian's Chromium (/usr/bin/chromium, never a downloaded browser) against a
real gunicorn (2 workers, a new database, STANDIN_CLIENTS=30) on a free localhost port.
The module also takes the screenshot the README shows: into docs/overview.png when
UPDATE_SCREENSHOT=1 is set, otherwise into the test's temporary folder (so a plain run leaves
the working tree as it was).

Without playwright or /usr/bin/chromium the module is skipped, unless CI is set: there the
missing pieces fail every test, so a green CI run proves the pages work.
Install: `apt-get install -y chromium` and `pip install playwright` (not `playwright install`).
"""

import json
import os
import threading
import time
from urllib.parse import quote

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
CLIENTS = 30
PAGE_SIZE = 20  # the overview's page size
NODE = "emqx@127.0.0.1"
SCREENSHOT = ROOT / "docs" / "overview.png"
VIEWPORT = {"width": 1440, "height": 900}
START_TIMEOUT = 20
UI_TIMEOUT = 10_000  # ms, for anything the page has to fetch and draw

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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    with LiveServer(tmp / "standin.db", workers=2, clients=CLIENTS,
                    args=["--config", str(ROOT / "gunicorn.conf.py"), "--access-logfile", "-"],
                    ready_path="/api/v3/brokers/", ready_auth=AUTH,  # seeds the db
                    start_timeout=START_TIMEOUT, stop_timeout=15) as live:
        yield live.url


def api(base, method, path, body=None):
    """An /api/v3 call answered HTTP 200 with code 0; the parsed body."""
    return send(base, method, "/api/v3" + path, body)


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


class Watch:
    """What a page asked for: every request, page errors, and offending requests."""

    def __init__(self, page, base):
        self.base = base
        self.requests = []
        self.errors = []
        page.on("request", self._request)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request(self, request):
        self.requests.append((request.method, request.url, request.headers.get("authorization")))

    def external(self):
        """Requests that left this server (the pages must work without the internet)."""
        return [u for _, u, _ in self.requests
                if not u.startswith((self.base + "/", "data:", "about:"))]

    def without_credentials(self):
        """Protected routes reached without an Authorization header (would pop a dialog)."""
        out = []
        for method, url, authorization in self.requests:
            path = url[len(self.base):].split("?")[0]
            if not path.startswith(("/api/v3", "/_standin")):
                continue
            if (method, path.rstrip("/")) == ("POST", "/api/v3/auth"):
                continue
            if not authorization:
                out.append((method, url))
        return out


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
    assert page.watch.errors == [], f"JavaScript errors: {page.watch.errors}"
    assert page.watch.external() == [], "the overview must not need the internet"
    assert page.watch.without_credentials() == [], "a protected route was hit without credentials"


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


# ---------------------------------------------------------------------------
# The overview
# ---------------------------------------------------------------------------


def test_wrong_password_stays_on_the_form(page, server):
    log_in(page, server, password="not-the-password")
    expect(page.locator("#login-error")).to_contain_text("Password Error")
    expect(page.locator("#app-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_login_shows_the_node_and_the_totals_of_the_api(page, server):
    log_in(page, server)
    card = page.locator(f"#node-list [data-testid=node-card][data-node='{NODE}']")
    expect(card).to_be_visible()
    expect(card.locator("[data-testid=node-status]")).to_have_text("Running")
    node = next(n for n in api(server, "GET", "/nodes/")["data"] if n["name"] == NODE)
    expect(card.locator("[data-testid=node-version]")).to_contain_text(node["version"])
    expect(card.locator("[data-testid=node-memory]")).to_contain_text(node["memory_total"])
    expect(card.locator("[data-testid=node-load]")).to_contain_text(node["load1"])
    expect(page.locator("#signed-in-as")).to_have_text("admin")
    api_calls = [a for _, u, a in page.watch.requests if "/api/v3/" in u and "/auth" not in u]
    assert api_calls and all(a and a.startswith("Basic ") for a in api_calls)

    stats = api(server, "GET", "/stats/")["data"]
    total = sum(s["connections/count"] for s in stats)
    assert total > 0
    expect(page.locator("#total-connections")).to_have_text(f"{total:,}")
    expect(page.locator("#total-sessions")).to_have_text(
        f"{sum(s['sessions/count'] for s in stats):,}")
    expect(page.locator("#total-subscriptions")).to_have_text(
        f"{sum(s['subscriptions/count'] for s in stats):,}")
    expect(page.locator("#total-topics")).to_have_text(f"{stats[0]['topics/count']:,}")
    expect(page.locator("#total-retained")).to_have_text(f"{stats[0]['retained/count']:,}")

    plugins = api(server, "GET", "/plugins/")["data"][0]["plugins"]
    expect(page.locator("#plugin-list [data-testid=plugin]")).to_have_count(len(plugins))
    active = [p["name"] for p in plugins if p["active"]]
    expect(page.locator("#plugin-list [data-active=true]")).to_have_count(len(active))
    alarms = api(server, "GET", "/alarms/")["data"][0]["alarms"]
    expect(page.locator("#alarm-list [data-testid=alarm]")).to_have_count(len(alarms))

    # Logging out forgets the credentials and shows the form again.
    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_connections_page_through(page, server):
    log_in(page, server)
    count = api(server, "GET", f"/connections/?_limit={PAGE_SIZE}")["meta"]["count"]
    pages = -(-count // PAGE_SIZE)
    assert pages >= 2
    expect(page.locator("#conn-page")).to_contain_text(f"page 1 of {pages}")
    expect(rows(page, "conn")).to_have_count(PAGE_SIZE)
    first = row_keys(page, "conn")
    expected = [c["client_id"] for c in
                api(server, "GET", f"/connections/?_page=1&_limit={PAGE_SIZE}")["data"]]
    assert first == expected
    expect(page.locator("#conn-prev")).to_be_disabled()

    page.click("#conn-next")
    expect(page.locator("#conn-page")).to_contain_text(f"page 2 of {pages}")
    expected = [c["client_id"] for c in
                api(server, "GET", f"/connections/?_page=2&_limit={PAGE_SIZE}")["data"]]
    expect(rows(page, "conn")).to_have_count(len(expected))
    assert row_keys(page, "conn") == expected
    assert not set(expected) & set(first)

    page.click("#conn-prev")
    expect(page.locator("#conn-page")).to_contain_text(f"page 1 of {pages}")
    expect(rows(page, "conn").first).to_have_attribute("data-key", first[0])


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

    before = int(page.locator("#total-connections").inner_text().replace(",", ""))
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


def test_rates_chart_alarm_and_screenshot(page, server, tmp_path):
    log_in(page, server, refresh=1)
    expect(rows(page, "conn")).to_have_count(PAGE_SIZE)

    # An alarm raised now shows up live.
    requests.post(f"{server}/_standin/alarms", auth=AUTH, timeout=10, json={
        "id": "high_system_memory_usage", "severity": "critical",
        "title": "high_system_memory_usage",
        "summary": "System memory usage 91% is above the high watermark 80%"}).raise_for_status()
    expect(page.locator("#alarm-list [data-alarm-id=high_system_memory_usage]")).to_be_visible()

    # Traffic while the page refreshes: a device publishes to /test (two subscribers), an
    # uneven number each round, until the screenshot is taken (a device's publish is a
    # message received; one through the API is only delivered).
    stop = threading.Event()
    send(server, "POST", "/_standin/clients", {"client_id": "chart-device"})

    def publish():
        i = 0
        while not stop.is_set() and i < 400:
            i += 1
            for _ in range(1 + i % 4):
                send(server, "POST", "/_standin/clients/chart-device/publish",
                     {"topic": "/test", "payload": f"hello {i}", "qos": 1})
            stop.wait(0.2)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        time.sleep(6)
        wait_refreshes(page, 1)
        expect(page.locator("#chart-messages polyline")).to_have_count(2)
        expect(page.locator("#chart-packets polyline")).to_have_count(2)
        points = page.locator("#chart-messages polyline.s-in").get_attribute("points").split()
        assert len(points) >= 3
        assert len({p.split(",")[1] for p in points}) > 1, "the message rate line should move"
        assert float(page.locator("#rate-msg-out").inner_text().replace(",", "")) > 0

        # The picture for the README: the populated overview, whole page.
        shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "o.png"
        shot.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    finally:
        stop.set()
        publisher.join(timeout=15)
    assert shot.stat().st_size > 20_000


# ---------------------------------------------------------------------------
# The API explorer (Swagger UI)
# ---------------------------------------------------------------------------


def test_docs_try_it_out_list_brokers(browser, server):
    ctx = browser.new_context(viewport=VIEWPORT,
                              http_credentials={"username": AUTH[0], "password": AUTH[1]})
    ctx.set_default_timeout(UI_TIMEOUT)
    try:
        page = ctx.new_page()
        watch = Watch(page, server)
        page.goto(f"{server}/_standin/docs")
        # Swagger UI names an operation's block operations-<tag>-<operationId>.
        op = page.locator("div.opblock[id^='operations-'][id$='-list_brokers']").first
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
        assert watch.errors == [], watch.errors
        assert watch.external() == [], "Swagger UI must not need the internet"
    finally:
        ctx.close()


def test_docs_needs_credentials(server):
    assert requests.get(f"{server}/_standin/docs", timeout=10).status_code == 401
    assert requests.get(f"{server}/_standin/openapi.json", timeout=10).status_code == 401
    response = requests.get(f"{server}/_standin/docs", auth=AUTH, timeout=10)
    assert response.status_code == 200 and "swagger-ui-bundle.js" in response.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert requests.get(f"{server}/_standin/docs/{asset}", auth=AUTH,
                            timeout=10).status_code == 200, asset
    spec = json.loads(requests.get(f"{server}/_standin/openapi.json", auth=AUTH, timeout=10).text)
    assert spec["components"]["securitySchemes"]["basicAuth"]["scheme"] == "basic"
