"""PUT/GET/DELETE /_standin/faults: latency and errors on chosen routes, reproducible by seed.

Injected errors use statuses below 500 (the StandinClient refuses any 5xx); the one test with
a 5xx status uses a plain Flask test client.
"""

import time

import pytest

from conftest import API
from conftest import AUTH
from conftest import get_json
from conftest import request_json

pytestmark = pytest.mark.usefixtures("fast_hash")

TEAPOT = {"status": 418, "code": 418, "message": "injected teapot"}


def put_faults(c, body):
    return request_json(c, "PUT", "/_standin/faults", body, code=0)


def get_faults(c):
    return get_json(c, "/_standin/faults")["data"]


def clear_faults(c):
    request_json(c, "DELETE", "/_standin/faults", code=0)


def timed_get(c, path):
    start = time.perf_counter()
    r = c.get(API + path, auth=AUTH)
    return r, time.perf_counter() - start


def statuses(c, path, n):
    return [c.get(API + path, auth=AUTH).status_code for _ in range(n)]


def test_no_faults_at_first(client):
    assert get_faults(client)["faults"] is None


def test_error_on_one_route_only(client):
    put_faults(client, {"error_rate": 1, "error": TEAPOT, "routes": ["list_brokers"]})
    for _ in range(5):
        r = client.get(API + "/brokers/", auth=AUTH)
        assert r.status_code == 418
        assert r.mimetype == "application/json"
        assert r.get_json() == {"code": 418, "message": "injected teapot"}
    # The same route with a trailing slash or none, and its other path form, are that route.
    assert client.get(API + "/brokers", auth=AUTH).status_code == 418
    # Other routes are untouched, including the other broker route.
    for path in ("/nodes/", "/connections/", "/stats/", "/brokers/emqx@127.0.0.1", "/",
                 "/routes/", "/metrics/"):
        body = get_json(client, API + path)
        assert body["code"] == 0, path
    # GET shows the active setting.
    faults = get_faults(client)["faults"]
    assert faults["routes"] == ["list_brokers"]
    assert faults["error_rate"] == 1
    assert faults["error"] == {**TEAPOT, "headers": {}}  # no extra headers asked for
    clear_faults(client)
    assert get_faults(client)["faults"] is None
    assert get_json(client, API + "/brokers/")["code"] == 0


def test_error_on_a_write_route_leaves_state_unchanged(client):
    put_faults(client, {"error_rate": 1, "error": TEAPOT, "routes": ["create_banned"]})
    before = get_json(client, API + "/banned/")
    r = client.post(API + "/banned/", json={"who": "faulty", "as": "client_id"}, auth=AUTH)
    assert r.status_code == 418
    assert get_json(client, API + "/banned/") == before
    clear_faults(client)
    r = client.post(API + "/banned/", json={"who": "faulty", "as": "client_id"}, auth=AUTH)
    assert r.status_code == 200 and r.get_json()["code"] == 0


def test_latency_on_one_route_only(client):
    # Warm up (database created and seeded) before timing anything.
    get_json(client, API + "/brokers/")
    put_faults(client, {"latency_ms": 300, "routes": ["list_nodes"]})
    r, slow = timed_get(client, "/nodes/")
    assert r.status_code == 200 and r.get_json()["code"] == 0
    assert slow >= 0.3
    r, fast = timed_get(client, "/brokers/")
    assert r.status_code == 200
    assert fast < 0.25
    clear_faults(client)
    r, after = timed_get(client, "/nodes/")
    assert after < 0.25


def test_latency_range(client):
    get_json(client, API + "/brokers/")
    put_faults(client, {"latency_ms": {"min": 50, "max": 120}, "routes": ["list_stats"]})
    faults = get_faults(client)["faults"]
    assert faults["latency_ms"] == {"min": 50, "max": 120}
    durations = [timed_get(client, "/stats/")[1] for _ in range(5)]
    assert all(0.05 <= d < 0.6 for d in durations), durations


def test_all_routes_when_routes_omitted(client):
    put_faults(client, {"error_rate": 1, "error": TEAPOT})
    for path in ("/brokers/", "/nodes/", "/connections/", "/apps/", "/"):
        r = client.get(API + path, auth=AUTH)
        assert r.status_code == 418, path
        assert r.get_json() == {"code": 418, "message": "injected teapot"}
    r = client.post(API + "/mqtt/publish", json={"topic": "a"}, auth=AUTH)
    assert r.status_code == 418
    # The controls themselves are not affected.
    assert get_json(client, "/_standin")["code"] == 0
    assert get_faults(client)["faults"]["routes"] is None
    clear_faults(client)
    assert get_json(client, API + "/brokers/")["code"] == 0


def test_unauthenticated_requests_still_401(client):
    put_faults(client, {"error_rate": 1, "error": TEAPOT})
    r = client.get(API + "/brokers/")
    assert r.status_code == 401


def test_same_seed_same_sequence(client):
    fault = {"error_rate": 0.5, "error": TEAPOT, "routes": ["list_brokers"], "seed": 1234}
    put_faults(client, fault)
    first = statuses(client, "/brokers/", 40)
    assert set(first) == {200, 418}, first
    # Requests to other routes do not disturb the sequence of the faulty route.
    put_faults(client, fault)
    second = []
    for _ in range(40):
        get_json(client, API + "/nodes/")
        second.append(client.get(API + "/brokers/", auth=AUTH).status_code)
    assert second == first
    # Clearing and setting again restarts the same sequence.
    clear_faults(client)
    put_faults(client, fault)
    assert statuses(client, "/brokers/", 40) == first
    # Another seed, another sequence.
    put_faults(client, {**fault, "seed": 4321})
    assert statuses(client, "/brokers/", 40) != first


def test_same_seed_same_sequence_on_another_database(make_app):
    fault = {"error_rate": 0.3, "error": TEAPOT, "routes": ["list_connections"], "seed": 99}
    a, b = make_app(clients=5), make_app(clients=5)
    put_faults(a, fault)
    put_faults(b, fault)
    assert statuses(a, "/connections/", 30) == statuses(b, "/connections/", 30)


def test_same_seed_same_latencies(client):
    get_json(client, API + "/brokers/")
    fault = {"latency_ms": {"min": 0, "max": 200}, "routes": ["list_brokers"], "seed": 5}

    def run():
        put_faults(client, fault)
        return [timed_get(client, "/brokers/")[1] for _ in range(6)]

    first, second = run(), run()
    # The drawn delays repeat: the slow and fast requests line up (within scheduling noise).
    assert all(abs(x - y) < 0.06 for x, y in zip(first, second, strict=True)), (first, second)
    assert max(first) - min(first) > 0.03, first


def test_error_rate_zero_never_fails(client):
    put_faults(client, {"error_rate": 0, "error": TEAPOT, "routes": ["list_brokers"]})
    assert statuses(client, "/brokers/", 20) == [200] * 20


def test_error_rate_fraction_is_roughly_kept(client):
    put_faults(client, {"error_rate": 0.25, "error": TEAPOT, "routes": ["list_brokers"],
                        "seed": 7})
    failures = statuses(client, "/brokers/", 200).count(418)
    assert 25 <= failures <= 75, failures


def test_new_setting_replaces_the_old(client):
    put_faults(client, {"error_rate": 1, "error": TEAPOT, "routes": ["list_brokers"]})
    put_faults(client, {"error_rate": 1, "error": TEAPOT, "routes": ["list_nodes"]})
    assert client.get(API + "/brokers/", auth=AUTH).status_code == 200
    assert client.get(API + "/nodes/", auth=AUTH).status_code == 418


def test_several_routes(client):
    put_faults(client, {"error_rate": 1, "error": TEAPOT,
                        "routes": ["list_brokers", "get_broker", "lookup_connections"]})
    assert client.get(API + "/brokers/", auth=AUTH).status_code == 418
    assert client.get(API + "/brokers/emqx@127.0.0.1", auth=AUTH).status_code == 418
    assert client.get(API + "/connections/mqttjs_406e3f9a", auth=AUTH).status_code == 418
    assert client.get(API + "/connections/", auth=AUTH).status_code == 200


def test_route_with_several_paths(client):
    """A catalogue name with two paths (get_all_configs) is faulty on both."""
    put_faults(client, {"error_rate": 1, "error": TEAPOT, "routes": ["get_all_configs"]})
    assert client.get(API + "/configs/", auth=AUTH).status_code == 418
    assert client.get(API + "/nodes/emqx@127.0.0.1/configs/", auth=AUTH).status_code == 418


def test_5xx_error_status(app):
    plain = app.test_client()
    r = plain.put("/_standin/faults", auth=AUTH, json={
        "error_rate": 1, "routes": ["list_brokers"],
        "error": {"status": 503, "code": 102, "message": "service unavailable"}})
    assert r.status_code == 200 and r.get_json()["code"] == 0
    r = plain.get(API + "/brokers/", auth=AUTH)
    assert r.status_code == 503
    assert r.get_json() == {"code": 102, "message": "service unavailable"}
    assert plain.get(API + "/nodes/", auth=AUTH).status_code == 200


@pytest.mark.parametrize("body", [
    {"routes": ["no_such_route"]}, {"routes": "list_brokers"}, {"error_rate": 2},
    {"error_rate": -0.1}, {"error_rate": "0.5"}, {"latency_ms": -1},
    {"latency_ms": {"min": 100, "max": 10}}, {"latency_ms": "100"},
    {"error": {"status": "418"}}, {"error": "boom"}, {"seed": "x"},
])
def test_bad_fault_settings_are_refused(client, body):
    r = client.put("/_standin/faults", json=body, auth=AUTH)
    assert r.status_code < 500
    assert r.get_json()["code"] != 0, (body, r.get_json())
    assert get_faults(client)["faults"] is None
    assert client.get(API + "/brokers/", auth=AUTH).status_code == 200


def test_refused_setting_keeps_the_previous_one(client):
    put_faults(client, {"error_rate": 1, "error": TEAPOT, "routes": ["list_brokers"]})
    r = client.put("/_standin/faults", json={"routes": ["nope"]}, auth=AUTH)
    assert r.get_json()["code"] != 0
    assert client.get(API + "/brokers/", auth=AUTH).status_code == 418


def test_journal_records_injected_failures(client):
    client.delete("/_standin/journal", auth=AUTH)
    put_faults(client, {"error_rate": 1, "error": TEAPOT, "routes": ["list_brokers"]})
    client.get(API + "/brokers/", auth=AUTH)
    (entry,) = get_json(client, "/_standin/journal")["data"]
    assert entry["route"] == "list_brokers"
    assert entry["status"] == 418
    assert entry["code"] == 418
