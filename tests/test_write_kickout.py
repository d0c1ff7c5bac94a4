"""DELETE /connections/:clientid (kickout) and DELETE /connections/:clientid/acl/:topic,
seen through connections, sessions, subscriptions, routes, stats, metrics, listeners, nodes.
"""

from urllib.parse import quote

import pytest

from conftest import API
from conftest import call
from conftest import delta
from conftest import get_json
from conftest import is_shared
from conftest import metrics
from conftest import NODE
from conftest import route_topic
from conftest import stats


def q(value):
    return quote(value, safe="")


def kick(c, cid):
    return call(c, "DELETE", f"/connections/{q(cid)}")


def mqtt_listeners(c):
    return [x for x in get_json(c, f"{API}/nodes/{NODE}/listeners")["data"]
            if x["protocol"].startswith("mqtt:")]


def kicked_total(c):
    return sum((x["shutdown_count"] or {}).get("kicked", 0) for x in mqtt_listeners(c))


def current_conns(c):
    return sum(x["current_conns"] for x in mqtt_listeners(c))


def node_connections(c):
    listed = get_json(c, f"{API}/nodes/")["data"][0]["connections"]
    looked_up = get_json(c, f"{API}/nodes/{NODE}")["data"]["connections"]
    assert listed == looked_up
    return listed


def snapshot(c):
    return {"stats": stats(c), "metrics": metrics(c), "conns": current_conns(c),
            "kicked": kicked_total(c), "node_conns": node_connections(c),
            "connections": get_json(c, f"{API}/connections/"),
            "sessions": get_json(c, f"{API}/sessions/"),
            "subscriptions": get_json(c, f"{API}/subscriptions/"),
            "routes": get_json(c, f"{API}/routes/")}


@pytest.fixture
def c(make_app):
    return make_app(clients=20)


def connected(c):
    """client id -> connection, and client id -> session, of the seeded cluster."""
    conns = {x["client_id"]: x for x in get_json(c, f"{API}/connections/")["data"]}
    sessions = {x["client_id"]: x for x in get_json(c, f"{API}/sessions/")["data"]}
    return conns, sessions


def pick(c, clean, with_subscriptions=True):
    conns, sessions = connected(c)
    for cid, conn in conns.items():
        if cid in ("emqx-api-test:v1", "mqttjs_406e3f9a"):
            continue
        if conn["clean_start"] is clean and (
                sessions[cid]["subscriptions_count"] > 0) is with_subscriptions:
            return cid
    pytest.fail("seed has no such client")


def assert_gone_from_connections(c, cid):
    assert get_json(c, f"{API}/connections/{q(cid)}") == {"code": 0, "data": []}
    assert get_json(c, f"{API}/nodes/{NODE}/connections/{q(cid)}") == {"code": 0, "data": []}
    listed = get_json(c, f"{API}/connections/")
    assert cid not in {x["client_id"] for x in listed["data"]}
    assert listed["meta"]["count"] == len(listed["data"])
    node_listed = get_json(c, f"{API}/nodes/{NODE}/connections/")
    assert node_listed == listed


def test_kickout_clean_session_takes_session_subscriptions_and_routes(c):
    cid = pick(c, clean=True)
    subs = get_json(c, f"{API}/subscriptions/{q(cid)}")["data"]
    assert subs
    others = get_json(c, f"{API}/subscriptions/")["data"]
    # Routes (share prefix dropped) that only this client needs disappear with it.
    needed = {route_topic(o["topic"]) for o in others if o["client_id"] != cid}
    lost_routes = {route_topic(s["topic"]) for s in subs} - needed
    before = snapshot(c)

    assert kick(c, cid) == {"code": 0}

    assert_gone_from_connections(c, cid)
    assert get_json(c, f"{API}/sessions/{q(cid)}") == {"code": 0, "data": []}
    assert get_json(c, f"{API}/nodes/{NODE}/sessions/{q(cid)}") == {"code": 0, "data": []}
    assert cid not in {x["client_id"] for x in get_json(c, f"{API}/sessions/")["data"]}
    assert get_json(c, f"{API}/subscriptions/{q(cid)}") == {"code": 0, "data": []}
    assert cid not in {x["client_id"] for x in get_json(c, f"{API}/subscriptions/")["data"]}
    for topic in lost_routes:
        assert get_json(c, f"{API}/routes/{q(topic)}")["data"] == []
    for topic in {route_topic(s["topic"]) for s in subs} & needed:
        assert get_json(c, f"{API}/routes/{q(topic)}")["data"] == [{"node": NODE, "topic": topic}]

    after = snapshot(c)
    shared = sum(1 for s in subs if is_shared(s["topic"]))
    d = delta(before["stats"], after["stats"])
    assert d.get("connections/count") == -1
    assert d.get("sessions/count") == -1
    assert d.get("subscriptions/count") == -len(subs)
    assert d.get("subscribers/count") == -len(subs)
    assert d.get("subscriptions/shared/count", 0) == -shared
    assert d.get("routes/count", 0) == -len(lost_routes)
    assert after["routes"]["meta"]["count"] == before["routes"]["meta"]["count"] - len(lost_routes)
    assert "sessions/persistent/count" not in d
    assert not any(k.endswith("/max") for k in d), d  # high-water marks never drop
    m = delta(before["metrics"], after["metrics"])
    assert m == {"packets/disconnect/sent": 1, "packets/sent": 1}, m
    assert after["conns"] == before["conns"] - 1
    assert after["kicked"] == before["kicked"] + 1
    assert after["node_conns"] == before["node_conns"] - 1
    assert after["connections"]["meta"]["count"] == before["connections"]["meta"]["count"] - 1
    assert after["sessions"]["meta"]["count"] == before["sessions"]["meta"]["count"] - 1
    assert (after["subscriptions"]["meta"]["count"]
            == before["subscriptions"]["meta"]["count"] - len(subs))


def test_kickout_persistent_session_keeps_session_and_subscriptions(c):
    cid = pick(c, clean=False)
    subs = get_json(c, f"{API}/subscriptions/{q(cid)}")["data"]
    sess = get_json(c, f"{API}/sessions/{q(cid)}")["data"]
    before = snapshot(c)

    assert kick(c, cid) == {"code": 0}

    assert_gone_from_connections(c, cid)
    assert get_json(c, f"{API}/sessions/{q(cid)}")["data"] == sess
    assert get_json(c, f"{API}/subscriptions/{q(cid)}")["data"] == subs
    after = snapshot(c)
    assert after["routes"] == before["routes"]
    assert after["subscriptions"] == before["subscriptions"]
    assert after["sessions"] == before["sessions"]
    d = delta(before["stats"], after["stats"])
    assert d == {"connections/count": -1}, d
    assert delta(before["metrics"], after["metrics"]) == {"packets/disconnect/sent": 1,
                                                          "packets/sent": 1}
    assert after["conns"] == before["conns"] - 1
    assert after["node_conns"] == before["node_conns"] - 1
    assert after["kicked"] == before["kicked"] + 1

    # Now an offline persistent session: messages for it are queued, not delivered.
    topic = "zk/after-kick"
    assert call(c, "POST", "/mqtt/subscribe", {"client_id": cid, "topic": topic,
                                               "qos": 1}) == {"code": 0}
    s0 = get_json(c, f"{API}/sessions/{q(cid)}")["data"][0]
    m0 = metrics(c)
    assert call(c, "POST", "/mqtt/publish", {"topic": topic, "payload": "x",
                                             "qos": 1}) == {"code": 0}
    s1 = get_json(c, f"{API}/sessions/{q(cid)}")["data"][0]
    assert s1["mqueue_len"] == s0["mqueue_len"] + 1
    assert s1["deliver_msg"] == s0["deliver_msg"]
    assert "messages/sent" not in delta(m0, metrics(c))


def test_kicked_clean_client_has_no_session_for_subscribe(c):
    cid = pick(c, clean=True, with_subscriptions=False)
    assert kick(c, cid) == {"code": 0}
    assert call(c, "POST", "/mqtt/subscribe", {"client_id": cid, "topic": "zk/x"}) == {
        "code": 112, "message": "session_not_found"}


def test_shared_route_stays_while_another_client_needs_it(c):
    # Both document sample clients subscribe to /test.
    assert len(get_json(c, f"{API}/routes/%2Ftest")["data"]) == 1
    s0 = stats(c)
    assert kick(c, "emqx-api-test:v1") == {"code": 0}
    assert get_json(c, f"{API}/routes/%2Ftest")["data"] == [{"node": NODE, "topic": "/test"}]
    assert delta(s0, stats(c)).get("routes/count") is None
    assert kick(c, "mqttjs_406e3f9a") == {"code": 0}
    assert get_json(c, f"{API}/routes/%2Ftest")["data"] == []
    d = delta(s0, stats(c))
    assert d["routes/count"] == -1 and d["topics/count"] == -1
    assert d["connections/count"] == -2 and d["subscriptions/count"] == -2


def test_kickout_of_unknown_or_already_kicked_client_is_112(c):
    before = snapshot(c)
    assert kick(c, "no-such-client") == {"code": 112, "message": "not_found"}
    assert snapshot(c) == before
    cid = pick(c, clean=True)
    assert kick(c, cid) == {"code": 0}
    mid = snapshot(c)
    assert kick(c, cid) == {"code": 112, "message": "not_found"}
    assert snapshot(c) == mid


def test_kickout_of_offline_persistent_session_is_112_and_keeps_it(c):
    conns, sessions = connected(c)
    offline = [cid for cid, s in sessions.items() if cid not in conns]
    assert offline
    before = snapshot(c)
    assert kick(c, offline[0]) == {"code": 112, "message": "not_found"}
    assert snapshot(c) == before


def test_kickout_client_id_with_colon_and_slash(c):
    assert kick(c, "emqx-api-test:v1") == {"code": 0}  # raw colon in the path
    assert get_json(c, f"{API}/connections/emqx-api-test:v1")["data"] == []


def test_documented_connection_and_session_sequence(make_app):
    """emqx_mgmt_api_SUITE connections_and_sessions, on a one-client cluster."""
    c = make_app(clients=1)
    conns = get_json(c, f"{API}/connections?_limit=100&_page=1")
    assert conns["meta"]["count"] == 1
    cid = conns["data"][0]["client_id"]
    assert kick(c, cid) == {"code": 0}
    assert get_json(c, f"{API}/connections?_limit=100&_page=1")["data"] == []
    assert get_json(c, f"{API}/sessions")["data"] == []


def test_clean_acl_cache(c):
    conns, sessions = connected(c)
    cid = pick(c, clean=True)
    before = snapshot(c)
    assert call(c, "DELETE", f"/connections/{q(cid)}/acl/{q('a/b')}") == {"code": 0}
    assert call(c, "DELETE", f"/connections/{q(cid)}/acl/a/b") == {"code": 0}
    assert snapshot(c) == before  # nothing else changes
    assert call(c, "DELETE", "/connections/no-such-client/acl/t") == {
        "code": 112, "message": "not_found"}
    offline = next(x for x in sessions if x not in conns)
    assert call(c, "DELETE", f"/connections/{q(offline)}/acl/t") == {
        "code": 112, "message": "not_found"}
    assert kick(c, cid) == {"code": 0}
    assert call(c, "DELETE", f"/connections/{q(cid)}/acl/t") == {
        "code": 112, "message": "not_found"}
