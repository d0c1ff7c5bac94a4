"""Missing or wrongly typed parameters on every write: a clear 107/108 (or 109 for a body
that is not JSON) naming the parameter, and nothing changed anywhere."""

import pytest

from conftest import AUTH
from conftest import get_json
from conftest import NODE

API = "/api/v3"
CID = "emqx-api-test:v1"  # a connected seeded client with a session

# Every read whose answer a write could change (times stripped before comparing).
STATE_READS = (
    "/connections/", "/sessions/", "/subscriptions/", "/routes/", "/stats/", "/metrics/",
    "/listeners/", "/nodes/", "/plugins/", "/banned/", "/apps/", "/users/", "/configs/",
    f"/nodes/{NODE}/plugin_configs/emqx_retainer",
)


def state(c, untimed):
    return {path: untimed(get_json(c, API + path)) for path in STATE_READS}


CASES = [
    # (method, path, body, code, parameter the message must name)
    ("POST", "/mqtt/publish", {"payload": "x"}, 107, "topic"),
    ("POST", "/mqtt/publish", {"topic": 5}, 108, "topic"),
    ("POST", "/mqtt/publish", {"topic": ["a"]}, 108, "topic"),
    ("POST", "/mqtt/publish", {"topics": 5}, 108, "topics"),
    ("POST", "/mqtt/publish", {"topic": "a", "qos": 3}, 108, "qos"),
    ("POST", "/mqtt/publish", {"topic": "a", "qos": "abc"}, 108, "qos"),
    ("POST", "/mqtt/publish", {"topic": "a", "qos": -1}, 108, "qos"),
    ("POST", "/mqtt/publish", {"topic": "a", "qos": 1.5}, 108, "qos"),
    ("POST", "/mqtt/publish", {"topic": "a", "qos": True}, 108, "qos"),
    ("POST", "/mqtt/publish", {"topic": "a", "retain": "yes"}, 108, "retain"),
    ("POST", "/mqtt/publish", {"topic": "a", "retain": 1}, 108, "retain"),
    ("POST", "/mqtt/publish", {"topic": "a", "payload": 5}, 108, "payload"),
    ("POST", "/mqtt/publish", {"topic": "a", "payload": {"k": 1}}, 108, "payload"),
    ("POST", "/mqtt/publish", {"topic": "a", "client_id": 7}, 108, "client_id"),
    ("POST", "/mqtt/publish", {"topic": "a", "retain": True, "payload": "x", "qos": 9},
     108, "qos"),
    ("POST", "/mqtt/subscribe", {"topic": "a"}, 107, "client_id"),
    ("POST", "/mqtt/subscribe", {"client_id": CID}, 107, "topic"),
    ("POST", "/mqtt/subscribe", {"client_id": 5, "topic": "a"}, 108, "client_id"),
    ("POST", "/mqtt/subscribe", {"client_id": CID, "topic": 5}, 108, "topic"),
    ("POST", "/mqtt/subscribe", {"client_id": CID, "topic": "a", "qos": 5}, 108, "qos"),
    ("POST", "/mqtt/subscribe", {"client_id": CID, "topic": "a", "qos": "x"}, 108, "qos"),
    ("POST", "/mqtt/unsubscribe", {"topic": "/test"}, 107, "client_id"),
    ("POST", "/mqtt/unsubscribe", {"client_id": CID}, 107, "topic"),
    ("POST", "/mqtt/unsubscribe", {"client_id": CID, "topic": 5}, 108, "topic"),
    ("POST", "/mqtt/unsubscribe", {"client_id": ["x"], "topic": "/test"}, 108, "client_id"),
    ("POST", "/banned/", {"as": "client_id"}, 107, "who"),
    ("POST", "/banned/", {"who": "x"}, 107, "as"),
    ("POST", "/banned/", {"who": "x", "as": "nope"}, 108, "as"),
    ("POST", "/banned/", {"who": 5, "as": "client_id"}, 108, "who"),
    ("POST", "/banned/", {"who": "x", "as": "client_id", "until": "soon"}, 108, "until"),
    ("DELETE", "/banned/flooder-01", None, 107, "as"),
    ("DELETE", "/banned/flooder-01", {"as": 5}, 108, "as"),
    ("POST", "/apps/", {"name": "n"}, 107, "app_id"),
    ("POST", "/apps/", {"app_id": 12}, 108, "app_id"),
    ("POST", "/apps/", {"app_id": "zv", "secret": 12, "status": True}, 108, "secret"),
    ("PUT", "/configs/emqx", {"value": "1"}, 107, "key"),
    ("PUT", "/configs/emqx", {"key": "k"}, 107, "value"),
    ("PUT", "/configs/emqx", {"key": "k", "value": 1}, 108, "value"),
    ("PUT", f"/nodes/{NODE}/configs/emqx", {"key": ["k"], "value": "1"}, 108, "key"),
    ("PUT", "/change_pwd/admin", {"old_pwd": "public"}, 107, "new_pwd"),
    ("PUT", "/change_pwd/admin", {"old_pwd": "public", "new_pwd": 1}, 108, "new_pwd"),
    ("POST", "/users/", {"username": 1, "password": "p"}, 108, "username"),
]


@pytest.fixture
def c(make_app):
    return make_app(clients=10)


@pytest.mark.parametrize("method,path,body,code,name", CASES,
                         ids=[f"{m} {p} {b}" for m, p, b, _, _ in CASES])
def test_bad_parameters_are_107_or_108_and_change_nothing(c, untimed, method, path, body,
                                                          code, name):
    before = state(c, untimed)
    kw = {} if body is None else {"json": body}
    r = c.open(API + path, method=method, auth=AUTH, **kw)
    assert r.status_code == 200, r.data
    got = r.get_json()
    assert list(got) == ["code", "message"], got
    assert got["code"] == code, got
    assert isinstance(got["message"], str) and name in got["message"], got
    assert state(c, untimed) == before


WRITES = [
    ("POST", "/mqtt/publish"), ("POST", "/mqtt/subscribe"), ("POST", "/mqtt/unsubscribe"),
    ("POST", "/banned/"), ("DELETE", "/banned/flooder-01"), ("POST", "/apps/"),
    ("PUT", "/apps/admin"), ("POST", "/users/"), ("PUT", "/users/admin"),
    ("PUT", "/change_pwd/admin"), ("PUT", "/configs/emqx"),
    ("PUT", f"/nodes/{NODE}/configs/emqx"), ("PUT", f"/nodes/{NODE}/plugin_configs/emqx_retainer"),
]


@pytest.mark.parametrize("method,path", WRITES, ids=[f"{m} {p}" for m, p in WRITES])
@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\"text\""])
def test_body_that_is_not_a_json_object_is_109_and_changes_nothing(c, untimed, method, path,
                                                                  raw):
    before = state(c, untimed)
    r = c.open(API + path, method=method, auth=AUTH, data=raw,
               content_type="application/json")
    assert r.status_code == 400, r.data
    assert r.get_json() == {"code": 109, "message": "request parameter is not a json"}
    assert state(c, untimed) == before


def test_a_bad_topic_in_a_subscribe_list_subscribes_none_of_them(c, untimed):
    before = state(c, untimed)
    r = c.post(f"{API}/mqtt/subscribe", auth=AUTH,
               json={"client_id": CID, "topic": "zv/ok,zv/#/bad", "qos": 1})
    assert r.get_json() == {"code": 115, "message": "bad_topic"}
    assert state(c, untimed) == before


def test_a_bad_qos_publishes_nothing_even_with_valid_topics(c, untimed):
    before = state(c, untimed)
    r = c.post(f"{API}/mqtt/publish", auth=AUTH,
               json={"topic": "/test", "payload": "x", "qos": 7, "retain": True})
    assert r.get_json()["code"] == 108
    assert state(c, untimed) == before


@pytest.mark.parametrize("qos", [1.0, 2.0, 0.0])
def test_a_float_qos_equal_to_a_level_is_rejected_or_counted_consistently(c, qos):
    """JSON `1.0`: either 108 with nothing changed, or QoS 1 everywhere: never a message
    counted in messages/received but in none of messages/qos{0,1,2}/received."""
    m0 = get_json(c, f"{API}/nodes/{NODE}/metrics/")["data"]
    r = c.post(f"{API}/mqtt/publish", auth=AUTH, json={"topic": "zv/f", "qos": qos})
    got = r.get_json()
    m1 = get_json(c, f"{API}/nodes/{NODE}/metrics/")["data"]
    d = {k: m1[k] - m0[k] for k in m1 if m1[k] != m0[k]}
    if got["code"] == 108:
        assert "qos" in got["message"] and d == {}
    else:
        assert got == {"code": 0}
        assert d == {"messages/received": 1, f"messages/qos{int(qos)}/received": 1,
                     "messages/dropped": 1}, d
