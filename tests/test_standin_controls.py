"""Test-environment controls under /_standin/: index, envelope, logins, reset (HTTP and CLI).

Reset is checked through the real API routes: after a series of writes, every read answers
exactly as on the freshly seeded database (time fields aside).
"""

import time
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import quote

import pytest

import seed
from conftest import API
from conftest import AUTH
from conftest import call_ok as call  # writes: HTTP 200 and code 0
from conftest import control_sample
from conftest import CONTROLS_PREFIX
from conftest import get_json
from conftest import NODE
from conftest import request_json as control  # /_standin/... requests
from conftest import url_map_routes

pytestmark = pytest.mark.usefixtures("fast_hash")

NODE2 = "emqx@127.0.0.2"


@dataclass
class Sample:
    """A harmless request to a control: path values, JSON body (or None), and a request
    (method, path, body) that makes its target exist first."""

    values: dict = field(default_factory=dict)
    body: dict = None
    setup: tuple = None


DEVICE = ("POST", "/_standin/clients", {"client_id": "ctl-dev"})
WORLD = ("POST", "/_standin/worlds", {"name": "ctl-world"})
SNAPSHOT = ("POST", "/_standin/snapshots", {"name": "ctl-snap"})
ALARM = ("POST", "/_standin/alarms", {"id": "ctl_alarm", "severity": "warning", "title": "t",
                                      "summary": "s"})
# Every /_standin route of the URL map, by endpoint: its sample request, or None for the
# ones that do not answer in the envelope (a document, a page, a file; see test_openapi).
# A control missing here fails test_controls_answer_in_the_json_envelope.
ENVELOPE_SAMPLES = {
    "standin.index": Sample(),
    "standin.list_worlds": Sample(),
    "standin.create_world": Sample(body={"name": "ctl-world"}),
    "standin.delete_world": Sample({"name": "ctl-world"}, setup=WORLD),
    "standin.list_snapshots": Sample(),
    "standin.save_snapshot": Sample(body={"name": "ctl-snap"}),
    "standin.restore_snapshot": Sample({"name": "ctl-snap"}, setup=SNAPSHOT),
    "standin.delete_snapshot": Sample({"name": "ctl-snap"}, setup=SNAPSHOT),
    "standin.journal_count": Sample(),
    "standin.journal_unmatched": Sample(),
    "standin.ready": Sample(),
    "standin.openapi_document": None,
    "standin.docs": None,
    "standin.docs_asset": None,
    "standin.reset": Sample(body={}),
    "standin.connect_device": Sample(body=DEVICE[2]),
    "standin.disconnect_device": Sample({"clientid": "ctl-dev"}, setup=DEVICE),
    "standin.device_publish": Sample({"clientid": "ctl-dev"}, body={"topic": "ctl/t"},
                                     setup=DEVICE),
    "standin.raise_alarm": Sample(body=ALARM[2]),
    "standin.clear_alarm": Sample({"id": "ctl_alarm"}, setup=ALARM),
    "standin.set_node_status": Sample({"node": NODE}, body={"node_status": "Running"}),
    "standin.get_faults": Sample(),
    "standin.set_faults": Sample(body={"latency_ms": 0}),
    "standin.clear_faults": Sample(),
    "standin.journal": Sample(),
    "standin.clear_journal": Sample(),
    "standin.get_traffic": Sample(),
    "standin.set_traffic": Sample(body={"speed": 0}),
    "standin.stop_traffic": Sample(),
    "standin.advance_traffic": Sample(body={"seconds": 2}, setup=("PUT", "/_standin/traffic",
                                                                  {"speed": 0})),
}
ENVELOPE_CONTROLS = [r for r in url_map_routes(CONTROLS_PREFIX)
                     if ENVELOPE_SAMPLES.get(r.endpoint, "missing") is not None]


def reads(nodes):
    """Every read route of the catalogue (the node-scoped ones for each node)."""
    paths = [
        "/brokers/", "/nodes/", "/connections/", "/sessions/", "/subscriptions/", "/routes/",
        "/stats/", "/metrics/", "/listeners/", "/plugins/", "/alarms/", "/banned/", "/apps/",
        "/apps/admin", "/users/", "/configs/", "/routes/%2Ftest", "/subscriptions/mqttjs_406e3f9a",
        "/connections/mqttjs_406e3f9a", "/sessions/mqttjs_406e3f9a",
    ]
    for node in nodes:
        n = quote(node, safe="@")
        paths += [
            f"/brokers/{n}", f"/nodes/{n}", f"/nodes/{n}/metrics/", f"/nodes/{n}/stats/",
            f"/nodes/{n}/connections/", f"/nodes/{n}/sessions/", f"/nodes/{n}/subscriptions/",
            f"/nodes/{n}/listeners", f"/nodes/{n}/plugins/", f"/nodes/{n}/configs/",
            f"/alarms/{n}", f"/nodes/{n}/plugin_configs/emqx_retainer",
            f"/nodes/{n}/plugin_configs/emqx_web_hook",
            f"/nodes/{n}/connections/mqttjs_406e3f9a", f"/nodes/{n}/sessions/mqttjs_406e3f9a",
            f"/nodes/{n}/subscriptions/mqttjs_406e3f9a",
        ]
    return [API + p for p in paths]


def snapshot(c, untimed, nodes=(NODE,), auth=AUTH):
    """Each read's answer, time fields stripped."""
    return {path: untimed(get_json(c, path, auth=auth)) for path in reads(nodes)}


# --- index, envelope, auth, catalogue --------------------------------------------------


def test_index_lists_controls_and_settings(make_app):
    c = make_app(nodes=2, clients=7, seed=5)
    body = control(c, "GET", "/_standin")
    assert body["code"] == 0
    data = body["data"]
    assert data["settings"] == {"seed": 5, "nodes": 2, "clients": 7}
    assert data["faults"] is None
    paths = {entry["path"] for entry in data["controls"]}
    for path in ("/_standin/reset", "/_standin/clients", "/_standin/clients/:clientid",
                 "/_standin/alarms", "/_standin/alarms/:id", "/_standin/nodes/:node",
                 "/_standin/faults", "/_standin/journal"):
        assert path in paths, path
    # Every method of every route under /_standin/ of the URL map is listed.
    listed = {(entry["method"], entry["path"]) for entry in data["controls"]}
    missing = {(r.method, r.template) for r in url_map_routes("/_standin/")} - listed
    assert not missing, missing
    # A trailing slash works as on the API.
    assert control(c, "GET", "/_standin/") == body


def test_index_shows_active_faults(client):
    fault = {"latency_ms": 5, "routes": ["list_nodes"], "seed": 3}
    control(client, "PUT", "/_standin/faults", fault)
    faults = control(client, "GET", "/_standin")["data"]["faults"]
    assert faults["routes"] == ["list_nodes"]
    assert faults["seed"] == 3
    assert faults["latency_ms"] in (5, {"min": 5, "max": 5})
    control(client, "DELETE", "/_standin/faults")
    assert control(client, "GET", "/_standin")["data"]["faults"] is None


@pytest.mark.parametrize("route", ENVELOPE_CONTROLS, ids=[r.id for r in ENVELOPE_CONTROLS])
def test_controls_answer_in_the_json_envelope(client, route):
    sample = control_sample(ENVELOPE_SAMPLES, route)
    if sample.setup:
        control(client, *sample.setup)
    answer = control(client, route.method, route.path(sample.values), sample.body)
    assert answer["code"] == 0
    assert set(answer) <= {"code", "data", "meta"}


def test_controls_accept_an_application_login(make_app):
    c = make_app(APP_ID="ops-app", APP_SECRET="s3cret-value")
    assert control(c, "GET", "/_standin", auth=("ops-app", "s3cret-value"))["code"] == 0
    control(c, "GET", "/_standin", auth=("ops-app", "public"), status=401)


# --- reset -----------------------------------------------------------------------------


def _writes(c):
    """A series of writes touching every part of the seeded state; returns new credentials."""
    conns = get_json(c, API + "/connections/")["data"]
    for conn in conns[2:5]:
        call(c, "DELETE", "/connections/" + quote(conn["client_id"], safe=""))
    call(c, "POST", "/mqtt/publish", {"topic": "/test", "payload": "hello", "qos": 1})
    call(c, "POST", "/mqtt/publish", {"topic": "status/eu-west", "payload": "", "retain": True})
    call(c, "POST", "/mqtt/publish", {"topic": "reset/new", "payload": "x", "retain": True})
    call(c, "POST", "/mqtt/subscribe",
         {"client_id": conns[6]["client_id"], "topic": "reset/#", "qos": 2})
    call(c, "POST", "/mqtt/unsubscribe", {"client_id": "mqttjs_406e3f9a", "topic": "/test"})
    call(c, "POST", "/banned/", {"who": "reset-me", "as": "client_id", "reason": "test"})
    call(c, "DELETE", "/banned/guest?as=username")
    call(c, "POST", "/apps/", {"app_id": "reset-app", "name": "n", "desc": "d",
                               "status": True})
    call(c, "PUT", "/apps/admin", {"name": "renamed", "desc": "d", "status": True})
    call(c, "POST", "/users/", {"username": "reset-user", "password": "pw1", "tags": "t"})
    call(c, "PUT", "/users/admin", {"tags": "changed"})
    call(c, "PUT", f"/nodes/{NODE}/plugins/emqx_recon/unload")
    call(c, "PUT", f"/nodes/{NODE}/plugins/emqx_web_hook/load")
    call(c, "PUT", "/configs/emqx", {"key": "mqtt.max_packet_size", "value": "2MB"})
    call(c, "PUT", f"/nodes/{NODE}/configs/emqx", {"key": "zone.external.idle_timeout",
                                                    "value": "30s"})
    call(c, "PUT", f"/nodes/{NODE}/plugin_configs/emqx_retainer",
         {"retainer.storage_type": "disc"})
    control(c, "POST", "/_standin/alarms", {"id": "reset_alarm", "severity": "critical",
                                            "title": "t", "summary": "s"})
    control(c, "DELETE", "/_standin/alarms/cpu_high_watermark")
    control(c, "POST", "/_standin/clients", {"client_id": "reset-device", "clean_start": False,
                                             "subscriptions": [{"topic": "reset/dev", "qos": 1}]})
    control(c, "DELETE", "/_standin/clients/" + quote(conns[7]["client_id"], safe=""))
    control(c, "PUT", f"/_standin/nodes/{NODE2}", {"node_status": "Stopped"})
    # Last: the admin's password (controls use the same Basic auth).
    call(c, "PUT", "/change_pwd/admin", {"old_pwd": "public", "new_pwd": "changed-pw"})
    return ("admin", "changed-pw")


def test_reset_restores_the_exact_seeded_state(make_app, untimed):
    c = make_app(nodes=2, clients=20)
    seeded = snapshot(c, untimed, nodes=(NODE, NODE2))
    new_auth = _writes(c)
    changed = snapshot(c, untimed, nodes=(NODE, NODE2), auth=new_auth)
    differing = [p for p in seeded if seeded[p] != changed[p]]
    for path in ("/connections/", "/banned/", "/apps/", "/users/", "/configs/", "/alarms/",
                 "/metrics/", "/plugins/", "/brokers/", "/nodes/"):
        assert API + path in differing, path
    assert control(c, "GET", "/_standin/journal", auth=new_auth)["data"]

    answer = control(c, "POST", "/_standin/reset", auth=new_auth)
    assert answer == {"code": 0, "data": {"seed": 42, "nodes": 2, "clients": 20}}
    # The journal is back to its seeded state (empty).
    assert control(c, "GET", "/_standin/journal")["data"] == []

    # The seeded password works again; the changed one and the created user do not.
    assert get_json(c, API + "/brokers/", auth=AUTH)["code"] == 0
    assert c.get(API + "/brokers/", auth=new_auth).status_code == 401
    assert c.get(API + "/brokers/", auth=("reset-user", "pw1")).status_code == 401
    assert c.get(API + "/brokers/", auth=("reset-app", "x")).status_code == 401
    after = snapshot(c, untimed, nodes=(NODE, NODE2))
    for path in seeded:
        assert after[path] == seeded[path], path


def test_reset_body_is_byte_identical_on_stable_reads(make_app):
    """Reads without clock values give the same bytes after a reset."""
    c = make_app(nodes=2, clients=20)
    # /connections/ (connected_at) and /banned/ (until) follow the clock: compared untimed
    # in test_reset_restores_the_exact_seeded_state, not byte for byte here.
    stable = [API + p for p in ("/subscriptions/", "/routes/", "/stats/",
                                "/metrics/", "/listeners/", "/plugins/", "/apps/",
                                "/users/", "/configs/",
                                f"/nodes/{NODE}/plugin_configs/emqx_retainer")]
    before = {p: c.get(p, auth=AUTH).data for p in stable}
    _writes(c)
    control(c, "POST", "/_standin/reset", auth=("admin", "changed-pw"))
    assert {p: c.get(p, auth=AUTH).data for p in stable} == before


def test_reset_with_settings_equals_a_fresh_seed(make_app, untimed):
    c = make_app(nodes=1, clients=20, seed=42)
    answer = control(c, "POST", "/_standin/reset", {"seed": 7, "nodes": 3, "clients": 5})
    assert answer["data"] == {"seed": 7, "nodes": 3, "clients": 5}
    assert control(c, "GET", "/_standin")["data"]["settings"] == {
        "seed": 7, "nodes": 3, "clients": 5}
    nodes = (NODE, NODE2, "emqx@127.0.0.3")
    fresh = make_app(nodes=3, clients=5, seed=7)
    assert snapshot(c, untimed, nodes) == snapshot(fresh, untimed, nodes)
    assert get_json(c, API + "/connections/")["meta"]["count"] == 15
    assert [n["name"] for n in get_json(c, API + "/nodes/")["data"]] == list(nodes)


def test_reset_defaults_to_the_settings_the_world_was_created_with(make_app, untimed):
    """A reset to other settings does not become the default of the next reset: one
    without a body goes back to the world as it was created."""
    c = make_app(nodes=1, clients=10, seed=42)
    first = snapshot(c, untimed)
    control(c, "POST", "/_standin/reset", {"seed": 9, "clients": 0})
    assert control(c, "GET", "/_standin")["data"]["settings"] == {
        "seed": 9, "nodes": 1, "clients": 0}
    assert get_json(c, API + "/connections/")["meta"]["count"] == 0
    assert control(c, "POST", "/_standin/reset")["data"] == {"seed": 42, "nodes": 1,
                                                             "clients": 10}
    assert snapshot(c, untimed) == first
    # A partial body takes the other settings from the world's creation too.
    control(c, "POST", "/_standin/reset", {"nodes": 2})
    assert control(c, "GET", "/_standin")["data"]["settings"] == {
        "seed": 42, "nodes": 2, "clients": 10}
    assert get_json(c, API + "/connections/")["meta"]["count"] == 20


def test_reset_to_an_empty_cluster(make_app):
    c = make_app(nodes=2, clients=20)
    control(c, "POST", "/_standin/reset", {"clients": 0})
    for path in ("/connections/", "/sessions/", "/subscriptions/", "/routes/", "/banned/"):
        body = get_json(c, API + path)
        assert body["data"] == [], path
        assert body["meta"]["count"] == 0, path
    assert [n["name"] for n in get_json(c, API + "/nodes/")["data"]] == [NODE, NODE2]
    assert all(n["connections"] == 0 for n in get_json(c, API + "/nodes/")["data"])
    for entry in get_json(c, API + "/stats/")["data"]:
        assert {k: v for k, v in entry.items() if k != "node" and v} == {}, entry
    assert get_json(c, API + "/alarms/")["data"] == [
        {"alarms": [], "node": NODE}, {"alarms": [], "node": NODE2}]
    assert [a["app_id"] for a in get_json(c, API + "/apps/")["data"]] == ["admin"]
    assert get_json(c, API + "/users/")["data"] == [
        {"username": "admin", "tags": "administrator"}]
    listeners = get_json(c, API + "/listeners/")["data"]
    assert [entry["node"] for entry in listeners] == [NODE, NODE2]
    assert all(len(entry["listeners"]) == 7 for entry in listeners)
    plugins = get_json(c, API + "/plugins/")["data"]
    assert all(len(entry["plugins"]) == len(seed.PLUGINS) for entry in plugins)
    for entry in get_json(c, API + "/metrics/")["data"]:
        assert entry["metrics"]["messages/retained"] == 0
        assert entry["metrics"]["packets/connect"] == 0


@pytest.mark.parametrize("body", [{"nodes": 0}, {"nodes": "2"}, {"clients": -1},
                                  {"seed": "x"}, {"clients": True}])
def test_reset_refuses_bad_settings_and_changes_nothing(client, body, untimed):
    before = snapshot(client, untimed)
    r = client.post("/_standin/reset", json=body, auth=AUTH)
    assert r.status_code < 500
    assert r.get_json()["code"] != 0, r.get_json()
    assert control(client, "GET", "/_standin")["data"]["settings"] == {
        "seed": 42, "nodes": 1, "clients": 50}
    assert snapshot(client, untimed) == before


def test_reset_clears_a_stopped_node_and_simulated_clients(make_app, untimed):
    c = make_app(nodes=2, clients=10)
    seeded = snapshot(c, untimed, nodes=(NODE, NODE2))
    control(c, "PUT", f"/_standin/nodes/{NODE2}", {"node_status": "Stopped"})
    control(c, "POST", "/_standin/clients", {"client_id": "gone-after-reset"})
    control(c, "POST", "/_standin/reset")
    assert get_json(c, API + "/connections/gone-after-reset")["data"] == []
    assert snapshot(c, untimed, nodes=(NODE, NODE2)) == seeded


def test_cli_reset(client, app, untimed):
    seeded = snapshot(client, untimed)
    call(client, "POST", "/banned/", {"who": "cli", "as": "client_id"})
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reset"])
    assert result.exit_code == 0, result.output
    assert snapshot(client, untimed) == seeded

    result = runner.invoke(args=["reset", "--seed", "3", "--nodes", "2", "--clients", "4"])
    assert result.exit_code == 0, result.output
    assert control(client, "GET", "/_standin")["data"]["settings"] == {
        "seed": 3, "nodes": 2, "clients": 4}
    assert get_json(client, API + "/connections/")["meta"]["count"] == 8
    assert [n["name"] for n in get_json(client, API + "/nodes/")["data"]] == [NODE, NODE2]

    # Only --clients: seed and nodes kept.
    result = runner.invoke(args=["reset", "--clients", "0"])
    assert result.exit_code == 0, result.output
    assert control(client, "GET", "/_standin")["data"]["settings"] == {
        "seed": 3, "nodes": 2, "clients": 0}
    assert get_json(client, API + "/connections/")["meta"]["count"] == 0


def test_cli_reset_equals_http_reset(make_app, app, untimed):
    a = make_app(clients=12, seed=8)
    b = make_app(clients=12, seed=8)
    nodes = (NODE, NODE2)
    control(a, "POST", "/_standin/reset", {"seed": 5, "nodes": 2, "clients": 6})
    get_json(b, API + "/brokers/")  # b's database exists; the CLI resets the configured one
    app.config.update(b.settings)
    result = app.test_cli_runner().invoke(
        args=["reset", "--seed", "5", "--nodes", "2", "--clients", "6"])
    assert result.exit_code == 0, result.output
    b.settings = {**b.settings, "SEED": 5, "NODES": 2, "CLIENTS": 6}
    assert snapshot(a, untimed, nodes) == snapshot(b, untimed, nodes)


def test_reset_is_fast(make_app):
    c = make_app(nodes=3, clients=200)
    get_json(c, API + "/brokers/")
    started = time.perf_counter()
    control(c, "POST", "/_standin/reset")
    elapsed = time.perf_counter() - started
    assert elapsed < 2, elapsed
    assert get_json(c, API + "/connections/")["meta"]["count"] == 600
