"""Strict mode (STANDIN_STRICT=1): every answer EMQ X 3.0.1 gives differently is given as it
gives it; the default mode keeps its clear JSON errors.

Each case of the behaviour sheet where 3.0.1 crashes or answers text is run in both modes
(CASES). Strict mode's two listeners: the management API on PORT takes applications only and
serves 43 routes; the dashboard's on DASHBOARD_PORT takes dashboard users only and serves 54.
"""

import base64
import sqlite3
from dataclasses import dataclass

import pytest
import requests

from live import free_port
from live import LiveServer

pytestmark = pytest.mark.usefixtures("fast_hash")

APP = ("ops", "ops-secret")  # an application (the management listener's credential)
USER = ("admin", "public")  # the dashboard user
MGMT = "http://localhost:8080"
DASH = "http://localhost:18083"
NODE2 = "emqx@127.0.0.2"
CRASH = (500, "Internal Error")


@dataclass
class Case:
    situation: str
    method: str
    path: str
    body: object = None
    default: tuple = None  # (HTTP status, JSON body)
    strict: tuple = None  # (HTTP status, text body), or (HTTP status, JSON body)
    base: str = MGMT
    setup: str = None


CASES = [
    Case("missing topic", "POST", "/api/v3/mqtt/publish", {"payload": "x"},
         (200, {"code": 107, "message": "missing mandatory params: ['topic']"}), CRASH),
    Case("qos not 0/1/2", "POST", "/api/v3/mqtt/publish", {"topic": "t", "qos": "x"},
         (200, {"code": 108, "message": "'qos' must be 0, 1 or 2"}), CRASH),
    Case("empty topic in the list", "POST", "/api/v3/mqtt/publish", {"topic": "a,,b"},
         (200, {"code": 115, "message": "bad_topic"}), CRASH),
    Case("only wildcard names", "POST", "/api/v3/mqtt/publish", {"topic": "a/#"},
         (200, {"code": 115, "message": "bad_topic"}),
         (200, {"code": 115, "message": "bad_topic"})),
    Case("invalid filter", "POST", "/api/v3/mqtt/subscribe",
         {"client_id": "emqx-api-test:v1", "topic": "a/#/b"},
         (200, {"code": 115, "message": "bad_topic"}), CRASH),
    Case("subscribe without client_id", "POST", "/api/v3/mqtt/subscribe", {"topic": "a"},
         (200, {"code": 107, "message": "missing mandatory params: ['client_id']"}),
         (200, {"code": 112, "message": "session_not_found"})),
    Case("unsubscribe without topic", "POST", "/api/v3/mqtt/unsubscribe",
         {"client_id": "emqx-api-test:v1"},
         (200, {"code": 107, "message": "missing mandatory params: ['topic']"}), CRASH),
    Case("_limit 0", "GET", "/api/v3/connections/?_limit=0", None,
         (200, {"code": 108, "message": "'_limit' must be at least 1"}), CRASH),
    Case("_page not digits", "GET", "/api/v3/sessions/?_page=abc", None,
         (200, {"code": 108, "message": "'_page' must be an integer"}), CRASH),
    Case("kickout of an unknown client", "DELETE", "/api/v3/connections/nobody", None,
         (200, {"code": 112, "message": "not_found"}), CRASH),
    Case("clean_acl_cache (not in 3.0.1 GA)", "DELETE",
         "/api/v3/connections/emqx-api-test:v1/acl/t", None, (200, {"code": 0}),
         (404, "Not found.")),
    Case("a body that is not JSON", "POST", "/api/v3/banned/", b"who=x&as=client_id",
         (400, {"code": 109, "message": "request parameter is not a json"}),
         (400, "Bad Request")),
    Case("no such route", "GET", "/api/v3/nothing/here", None,
         (404, {"code": 404, "message": "not found"}), (404, "Not found.")),
    Case("another method", "POST", "/api/v3/brokers/", None,
         (404, {"code": 404, "message": "not found"}), (404, "Not found.")),
    Case("unknown node", "GET", "/api/v3/nodes/emqx@10.9.9.9/stats/", None,
         (404, {"code": 404, "message": "not found"}), (404, "Not found.")),
    Case("POST on the API root", "POST", "/api/v3/", None,
         (400, {"code": 400, "message": "bad request"}), (400, "Bad Request")),
    Case("POST on /status", "POST", "/status", None,
         (400, {"code": 400, "message": "bad request"}), (400, "Not found.")),
    Case("banned without who", "POST", "/api/v3/banned/", {"as": "client_id"},
         (200, {"code": 107, "message": "missing mandatory params: ['who', 'as']"}),
         (200, {"code": 107, "message": "missing mandatory params: ['who', 'as']"})),
    Case("banned as a bad kind", "POST", "/api/v3/banned/", {"who": "x", "as": "nope"},
         (200, {"code": 108, "message": "value of 'as' must be one of: ['client_id',"
                                         " 'username', 'ip_address']"}),
         (200, {"code": 108, "message": "value of 'as' must be one of: ['client_id',"
                                         " 'username', 'ip_address']"})),
    Case("update_config: 3.0.1 whitelists no key", "PUT", "/api/v3/configs/emqx",
         {"key": "log.level", "value": "debug"}, (200, {"code": 0}),
         (200, {"code": 102, "message": 1})),
    Case("add_app without app_id", "POST", "/api/v3/apps/", {"name": "x"},
         (200, {"code": 107, "message": "missing mandatory params: ['app_id']"}), CRASH,
         base=DASH),
    Case("change_pwd without new_pwd", "PUT", "/api/v3/change_pwd/admin", {"old_pwd": "public"},
         (200, {"code": 107, "message": "missing mandatory params: ['new_pwd']"}), CRASH,
         base=DASH),
    Case("a stopped node: get_broker", "GET", f"/api/v3/brokers/{NODE2}", None,
         (200, {"code": 102, "message": "nodedown"}), (200, {"code": 102, "message": "nodedown"}),
         setup="stop"),
    Case("a stopped node: its stats", "GET", f"/api/v3/nodes/{NODE2}/stats/", None,
         (200, {"code": 102, "message": "nodedown"}), CRASH, setup="stop"),
    Case("a stopped node: the node list", "GET", "/api/v3/nodes/", None, None, CRASH,
         setup="stop"),
    Case("a stopped node: its listeners", "GET", f"/api/v3/nodes/{NODE2}/listeners", None,
         (200, {"code": 0, "data": {"error": "nodedown"}}),
         (200, {"code": 0, "data": {"error": "nodedown"}}), setup="stop"),
]


def world(make_app, strict):
    """A two-node world in the mode asked; its settings applied and its database made (the
    requests that may crash go through a plain client: the suite's own refuses 5xx)."""
    c = make_app(nodes=2, clients=10, APP_ID=APP[0], APP_SECRET=APP[1], STRICT=strict)
    assert c.get("/_standin/ready").status_code == 200
    return c


@pytest.mark.parametrize("case", CASES, ids=[c.situation for c in CASES])
def test_default_and_strict_answers(make_app, case):
    for strict in (False, True):
        c = world(make_app, strict)
        auth = USER if case.base == DASH else (APP if strict else USER)
        if case.setup == "stop":
            r = c.put(f"/_standin/nodes/{NODE2}", json={"node_status": "Stopped"}, auth=USER)
            assert r.get_json()["code"] == 0
        r = c.application.test_client().open(
            case.path, method=case.method, auth=auth, base_url=case.base,
            **({"data": case.body} if isinstance(case.body, bytes)
               else {} if case.body is None else {"json": case.body}))
        expected = case.strict if strict else case.default
        if expected is None:  # only the status matters here
            assert r.status_code == 200, (case.situation, strict, r.data)
            continue
        status, body = expected
        assert r.status_code == status, (case.situation, strict, r.status_code, r.data)
        if isinstance(body, str):
            assert r.mimetype == "text/plain", (case.situation, r.mimetype)
            assert r.get_data(as_text=True) == body, (case.situation, r.data)
        else:
            assert r.mimetype == "application/json", (case.situation, r.data)
            assert r.get_json() == body, (case.situation, strict, r.get_json())


def test_nothing_is_stored_when_strict_mode_refuses(make_app):
    c = world(make_app, True)
    before = c.get("/api/v3/configs/", auth=APP).get_json()
    c.put("/api/v3/configs/emqx", json={"key": "k", "value": "v"}, auth=APP)
    c.put("/api/v3/configs/no_such_app", json={"key": "k", "value": "v"}, auth=APP)
    assert c.get("/api/v3/configs/", auth=APP).get_json() == before


@pytest.mark.parametrize("strict", [False, True])
def test_401_as_minirest_sends_it(make_app, strict):
    c = world(make_app, strict)
    r = c.application.test_client().get("/api/v3/brokers/", auth=("nobody", "x"),
                                        base_url=MGMT)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic Realm="minirest-server"'
    if strict:  # its bare text, with no Content-Type at all
        assert r.data == b"UNAUTHORIZED" and "Content-Type" not in r.headers
    else:
        assert r.get_json() == {"code": 401, "message": "UNAUTHORIZED"}


@pytest.mark.parametrize(("strict", "status"), [(False, 401), (True, 500)])
def test_a_basic_value_3_0_1_cannot_split(make_app, strict, status):
    c = world(make_app, strict)
    bad = {"Authorization": "Basic " + base64.b64encode(b"no-colon-here").decode()}
    assert c.application.test_client().get("/api/v3/brokers/", headers=bad,
                                           base_url=MGMT).status_code == status


@pytest.mark.parametrize(("strict", "status"), [(False, 401), (True, 500)])
def test_an_application_whose_status_is_not_a_boolean(make_app, strict, status):
    c = world(make_app, strict)
    c.get("/api/v3/brokers/", auth=USER, base_url=DASH)
    db = sqlite3.connect(c.settings["DATABASE"])
    with db:
        db.execute("UPDATE apps SET status = '\"stop\"' WHERE app_id = ?", (APP[0],))
    db.close()
    r = c.application.test_client().get("/api/v3/brokers/", auth=APP, base_url=MGMT)
    assert r.status_code == status


def test_strict_listeners_take_their_own_credentials_and_routes(make_app):
    c = world(make_app, True)
    plain = c.application.test_client()
    c.get("/api/v3/brokers/", auth=USER, base_url=DASH)  # seeds
    # Management listener: applications only, 43 routes.
    assert plain.get("/api/v3/brokers/", auth=APP, base_url=MGMT).status_code == 200
    assert plain.get("/api/v3/brokers/", auth=USER, base_url=MGMT).status_code == 401
    catalogue = plain.get("/api/v3/", auth=APP, base_url=MGMT).get_json()["data"]
    assert len(catalogue) == 43
    names = {e["name"] for e in catalogue}
    assert not names & {"list_apps", "list_users", "auth_user", "clean_acl_cache"}
    assert plain.get("/api/v3", auth=APP, base_url=MGMT).get_json()["data"] == catalogue
    r = plain.get("/api/v3/apps/", auth=APP, base_url=MGMT)
    assert (r.status_code, r.data) == (404, b"Not found.")
    r = plain.post("/api/v3/auth", json={"username": "admin", "password": "public"},
                   base_url=MGMT)
    assert r.status_code == 401  # no open route on the management listener
    # Dashboard listener: dashboard users only, 54 routes.
    assert plain.get("/api/v3/brokers/", auth=USER, base_url=DASH).status_code == 200
    assert plain.get("/api/v3/brokers/", auth=APP, base_url=DASH).status_code == 401
    catalogue = plain.get("/api/v3/", auth=USER, base_url=DASH).get_json()["data"]
    assert len(catalogue) == 54
    assert "clean_acl_cache" not in {e["name"] for e in catalogue}
    r = plain.get("/api/v3", auth=USER, base_url=DASH)
    assert (r.status_code, r.data) == (400, b"Not found.")
    assert plain.get("/api/v3/apps/", auth=USER, base_url=DASH).status_code == 200
    assert plain.post("/api/v3/auth", json={"username": "admin", "password": "public"},
                      base_url=DASH).get_json() == {"code": 0}
    # The stand-in's controls take either credential.
    for base, cred in ((MGMT, APP), (DASH, USER)):
        assert plain.get("/_standin", auth=cred, base_url=base).status_code == 200


@pytest.mark.live
def test_strict_mode_serves_two_real_listeners(tmp_path):
    port, dashboard = free_port(), free_port()
    with LiveServer(tmp_path / "standin.db", workers=2, clients=10, port=port,
                    args=["-b", f"127.0.0.1:{dashboard}"],
                    env={"STANDIN_STRICT": "1", "PORT": port, "DASHBOARD_PORT": dashboard,
                         "STANDIN_APP_ID": APP[0], "STANDIN_APP_SECRET": APP[1]}) as server:
        mgmt, dash = server.url, f"http://127.0.0.1:{dashboard}"
        assert requests.get(f"{mgmt}/api/v3/brokers/", auth=APP, timeout=5).status_code == 200
        assert requests.get(f"{mgmt}/api/v3/brokers/", auth=USER, timeout=5).status_code == 401
        assert requests.get(f"{dash}/api/v3/brokers/", auth=USER, timeout=5).status_code == 200
        assert requests.get(f"{dash}/api/v3/brokers/", auth=APP, timeout=5).status_code == 401
        r = requests.post(f"{mgmt}/api/v3/mqtt/publish", json={}, auth=APP, timeout=5)
        assert (r.status_code, r.text) == CRASH
        assert f"127.0.0.1:{dashboard}" in server.log_text()
