"""Simulated devices (POST/DELETE /_standin/clients) and alarms (/_standin/alarms),
checked through the real API routes: connections, sessions, subscriptions, routes, stats,
metrics, listeners, alarms.

Topics live under `sim/…`, which no seeded subscription matches.
"""

from urllib.parse import quote

import pytest

from conftest import API
from conftest import AUTH
from conftest import call_ok as call  # writes: HTTP 200 and code 0
from conftest import delta
from conftest import get_json
from conftest import metrics
from conftest import NODE
from conftest import request_json as control  # /_standin/... requests
from conftest import stats

pytestmark = pytest.mark.usefixtures("fast_hash")

NODE2 = "emqx@127.0.0.2"


def connect(c, client_id, status=200, **fields):
    return control(c, "POST", "/_standin/clients", {"client_id": client_id, **fields},
                   status=status)


def leave(c, client_id):
    return control(c, "DELETE", "/_standin/clients/" + quote(client_id, safe=""))


def q(text):
    return quote(text, safe="")


def lookup(c, kind, client_id):
    return get_json(c, f"{API}/{kind}/{q(client_id)}")["data"]


def tcp_listener(c, node=NODE):
    listeners = get_json(c, f"{API}/nodes/{node}/listeners")["data"]
    (tcp,) = [x for x in listeners if x["listen_on"] == "0.0.0.0:1883"]
    return tcp


def closed_count(listener):
    shutdown = listener["shutdown_count"]
    return shutdown.get("closed", 0) if isinstance(shutdown, dict) else 0


@pytest.fixture
def c(make_app):
    return make_app(clients=20)


# --- connect ---------------------------------------------------------------------------


def test_connect_with_subscriptions_shows_everywhere(c):
    m0, s0, tcp0 = metrics(c), stats(c), tcp_listener(c)
    conns0 = get_json(c, API + "/connections/")
    subs0 = get_json(c, API + "/subscriptions/")
    routes0 = get_json(c, API + "/routes/")
    nodes0 = get_json(c, API + "/nodes/")["data"][0]

    answer = connect(c, "sim-dev-1", username="sim-user", proto_ver=5, keepalive=90,
                     ipaddress="10.1.2.3", port=40001,
                     subscriptions=[{"topic": "sim/dev-1/cmd", "qos": 1},
                                    {"topic": "sim/broadcast/#", "qos": 0}])
    assert answer["code"] == 0
    conn = answer["data"]
    assert {k: conn[k] for k in ("client_id", "username", "node", "ipaddress", "port",
                                 "proto_ver", "proto_name", "keepalive", "clean_start")} == {
        "client_id": "sim-dev-1", "username": "sim-user", "node": NODE, "ipaddress": "10.1.2.3",
        "port": 40001, "proto_ver": 5, "proto_name": "MQTT", "keepalive": 90,
        "clean_start": True}
    # The answer is the connection object the API shows.
    assert lookup(c, "connections", "sim-dev-1") == [conn]
    assert get_json(c, f"{API}/nodes/{NODE}/connections/sim-dev-1")["data"] == [conn]
    assert set(conn) == set(get_json(c, API + "/connections/")["data"][0])

    conns1 = get_json(c, API + "/connections/")
    assert conns1["meta"]["count"] == conns0["meta"]["count"] + 1
    assert conn in conns1["data"]

    (session,) = lookup(c, "sessions", "sim-dev-1")
    assert session["clean_start"] is True
    assert session["node"] == NODE
    assert session["username"] == "sim-user"
    assert session["subscriptions_count"] == 2
    assert session["client_id"] in {s["client_id"] for s in
                                    get_json(c, API + "/sessions/")["data"]}

    expected_subs = [{"client_id": "sim-dev-1", "node": NODE, "qos": 1, "topic": "sim/dev-1/cmd"},
                     {"client_id": "sim-dev-1", "node": NODE, "qos": 0,
                      "topic": "sim/broadcast/#"}]
    assert lookup(c, "subscriptions", "sim-dev-1") == expected_subs
    subs1 = get_json(c, API + "/subscriptions/")
    assert subs1["meta"]["count"] == subs0["meta"]["count"] + 2
    assert all(s in subs1["data"] for s in expected_subs)

    assert get_json(c, f"{API}/routes/{q('sim/dev-1/cmd')}")["data"] == [
        {"node": NODE, "topic": "sim/dev-1/cmd"}]
    assert get_json(c, f"{API}/routes/{q('sim/broadcast/#')}")["data"] == [
        {"node": NODE, "topic": "sim/broadcast/#"}]
    assert get_json(c, API + "/routes/")["meta"]["count"] == routes0["meta"]["count"] + 2

    d = delta(s0, stats(c))
    assert d["connections/count"] == 1
    assert d["sessions/count"] == 1
    assert d["subscriptions/count"] == 2
    assert d["routes/count"] == 2
    assert d["topics/count"] == 2
    assert "sessions/persistent/count" not in d

    dm = delta(m0, metrics(c))
    for key in ("packets/connect", "packets/connack", "packets/subscribe", "packets/suback"):
        assert dm.get(key) == 1, (key, dm)
    assert dm["packets/received"] >= 2 and dm["packets/sent"] >= 2
    assert dm.get("bytes/received", 0) > 0 and dm.get("bytes/sent", 0) > 0

    assert tcp_listener(c)["current_conns"] == tcp0["current_conns"] + 1
    assert get_json(c, API + "/nodes/")["data"][0]["connections"] == nodes0["connections"] + 1


def test_publish_to_a_simulated_client_counts_a_delivery(c):
    connect(c, "sim-sub", subscriptions=[{"topic": "sim/deliver/+", "qos": 1}])
    m0 = metrics(c)
    (sess0,) = lookup(c, "sessions", "sim-sub")
    call(c, "POST", "/mqtt/publish", {"topic": "sim/deliver/x", "payload": "hi", "qos": 1})
    (sess1,) = lookup(c, "sessions", "sim-sub")
    assert sess1["deliver_msg"] == sess0["deliver_msg"] + 1
    assert sess1["mqueue_len"] == sess0["mqueue_len"] == 0
    d = delta(m0, metrics(c))
    assert d["messages/sent"] == 1
    assert d["messages/qos1/sent"] == 1
    assert "messages/received" not in d  # an API publish: no device sent it
    assert d["packets/publish/sent"] == 1
    assert "messages/dropped" not in d
    # The connection's own stats follow: a PUBLISH sent, its PUBACK received.
    (conn1,) = lookup(c, "connections", "sim-sub")
    assert conn1["send_msg"] == 1 and conn1["send_pkt"] == 2 and conn1["recv_pkt"] == 2
    assert conn1["send_oct"] == 4 + d["bytes/sent"]
    # A topic it does not subscribe to is not delivered to it.
    call(c, "POST", "/mqtt/publish", {"topic": "sim/elsewhere", "payload": "hi"})
    assert lookup(c, "sessions", "sim-sub")[0]["deliver_msg"] == sess1["deliver_msg"]


def test_connect_defaults(c):
    conn = connect(c, "sim-defaults")["data"]
    assert conn["clean_start"] is True
    assert conn["node"] == NODE
    assert conn["username"] == "undefined"
    assert lookup(c, "subscriptions", "sim-defaults") == []


def test_connect_to_a_chosen_node(make_app):
    c = make_app(nodes=2, clients=10)
    s1, s2 = stats(c, NODE), stats(c, NODE2)
    conn = connect(c, "sim-n2", node=NODE2, subscriptions=[{"topic": "sim/n2", "qos": 0}])["data"]
    assert conn["node"] == NODE2
    assert get_json(c, f"{API}/nodes/{NODE2}/connections/sim-n2")["data"] == [conn]
    assert get_json(c, f"{API}/nodes/{NODE}/connections/sim-n2")["data"] == []
    assert lookup(c, "sessions", "sim-n2")[0]["node"] == NODE2
    assert get_json(c, f"{API}/routes/{q('sim/n2')}")["data"] == [
        {"node": NODE2, "topic": "sim/n2"}]
    assert delta(s1, stats(c, NODE)).get("connections/count") is None
    assert delta(s2, stats(c, NODE2))["connections/count"] == 1


def test_connect_to_an_unknown_node_is_refused(c):
    before = get_json(c, API + "/connections/")
    r = c.post("/_standin/clients", json={"client_id": "sim-x", "node": "emqx@10.9.9.9"},
               auth=AUTH)
    assert r.status_code < 500 and r.get_json()["code"] != 0
    assert get_json(c, API + "/connections/") == before


@pytest.mark.parametrize("body", [
    {}, {"client_id": ""}, {"client_id": 5}, {"client_id": "x", "proto_ver": 9},
    {"client_id": "x", "subscriptions": [{"topic": "a/#/b", "qos": 0}]},
    {"client_id": "x", "subscriptions": [{"topic": "a", "qos": 3}]},
    {"client_id": "x", "subscriptions": "a"},
    {"client_id": "x", "ipaddress": "not-an-ip"},
    {"client_id": "x", "proto_ver": 4.0}, {"client_id": "x", "proto_ver": True},
])
def test_connect_refuses_bad_input_and_changes_nothing(c, body):
    before = get_json(c, API + "/connections/")
    m0 = metrics(c)
    r = c.post("/_standin/clients", json=body, auth=AUTH)
    assert r.status_code < 500
    assert r.get_json()["code"] != 0, r.get_json()
    assert get_json(c, API + "/connections/") == before
    assert metrics(c) == m0


def test_same_client_id_takes_over_the_old_connection(c):
    connect(c, "sim-twin", port=40010, subscriptions=[{"topic": "sim/twin", "qos": 0}])
    count = get_json(c, API + "/connections/")["meta"]["count"]
    s0 = stats(c)
    m0 = metrics(c)
    conn = connect(c, "sim-twin", port=40011, ipaddress="10.0.0.9")["data"]
    assert lookup(c, "connections", "sim-twin") == [conn]
    assert conn["port"] == 40011 and conn["ipaddress"] == "10.0.0.9"
    assert get_json(c, API + "/connections/")["meta"]["count"] == count
    assert delta(s0, stats(c)).get("connections/count") is None
    assert delta(m0, metrics(c))["packets/connect"] == 1
    ids = [x["client_id"] for x in get_json(c, API + "/connections/")["data"]]
    assert ids.count("sim-twin") == 1


def test_takeover_of_a_seeded_connection(c):
    seeded = get_json(c, API + "/connections/")["data"][5]
    count = get_json(c, API + "/connections/")["meta"]["count"]
    conn = connect(c, seeded["client_id"], port=41000)["data"]
    assert lookup(c, "connections", seeded["client_id"]) == [conn]
    assert get_json(c, API + "/connections/")["meta"]["count"] == count


@pytest.mark.parametrize("field,value", [
    ("client_id", "flooder-01"), ("username", "guest"), ("ipaddress", "192.168.66.6")])
def test_seeded_bans_refuse_and_count(c, field, value):
    body = {"client_id": "sim-banned", field: value}
    before = get_json(c, API + "/connections/")
    m0 = metrics(c)
    assert control(c, "POST", "/_standin/clients", body, status=403) == {
        "code": 403, "message": "banned"}
    assert get_json(c, API + "/connections/") == before
    assert lookup(c, "sessions", body["client_id"]) == []
    d = delta(m0, metrics(c))
    assert d.get("packets/connect") == 1, d
    assert d.get("packets/subscribe") is None


def test_ban_created_through_the_api_refuses_until_deleted(c):
    call(c, "POST", "/banned/", {"who": "sim-later", "as": "client_id"})
    m0 = metrics(c)
    assert control(c, "POST", "/_standin/clients", {"client_id": "sim-later"}, status=403) == {
        "code": 403, "message": "banned"}
    assert control(c, "POST", "/_standin/clients", {"client_id": "sim-later"}, status=403) == {
        "code": 403, "message": "banned"}
    assert delta(m0, metrics(c)).get("packets/connect") == 2
    assert lookup(c, "connections", "sim-later") == []
    call(c, "DELETE", "/banned/sim-later?as=client_id")
    assert connect(c, "sim-later")["data"]["client_id"] == "sim-later"


def test_ip_ban_refuses_a_device_from_that_address(c):
    call(c, "POST", "/banned/", {"who": "10.20.30.40", "as": "ip_address"})
    control(c, "POST", "/_standin/clients", {"client_id": "sim-ip", "ipaddress": "10.20.30.40"},
            status=403)
    assert connect(c, "sim-ip", ipaddress="10.20.30.41")["code"] == 0


def test_expired_ban_does_not_refuse(c):
    call(c, "POST", "/banned/", {"who": "sim-expired", "as": "client_id", "until": 1000})
    assert connect(c, "sim-expired")["code"] == 0


# --- disconnect ------------------------------------------------------------------------


def test_clean_client_disconnects_and_its_session_goes(c):
    connect(c, "sim-clean", subscriptions=[{"topic": "sim/clean", "qos": 0}])
    count = get_json(c, API + "/connections/")["meta"]["count"]
    s0, m0, tcp0 = stats(c), metrics(c), tcp_listener(c)
    assert leave(c, "sim-clean") == {"code": 0}
    assert lookup(c, "connections", "sim-clean") == []
    assert lookup(c, "sessions", "sim-clean") == []
    assert lookup(c, "subscriptions", "sim-clean") == []
    assert get_json(c, f"{API}/routes/{q('sim/clean')}")["data"] == []
    assert get_json(c, API + "/connections/")["meta"]["count"] == count - 1
    d = delta(s0, stats(c))
    assert d["connections/count"] == -1
    assert d["sessions/count"] == -1
    assert d["subscriptions/count"] == -1
    assert d["routes/count"] == -1
    dm = delta(m0, metrics(c))
    assert dm["packets/disconnect/received"] == 1
    assert "packets/disconnect/sent" not in dm
    tcp1 = tcp_listener(c)
    assert tcp1["current_conns"] == tcp0["current_conns"] - 1
    assert closed_count(tcp1) == closed_count(tcp0) + 1


def test_persistent_client_disconnects_and_keeps_its_session(c):
    connect(c, "sim-keep", clean_start=False,
            subscriptions=[{"topic": "sim/keep", "qos": 1}])
    s0, m0 = stats(c), metrics(c)
    assert stats(c)["sessions/persistent/count"] >= 1
    leave(c, "sim-keep")
    assert lookup(c, "connections", "sim-keep") == []
    (session,) = lookup(c, "sessions", "sim-keep")
    assert session["clean_start"] is False
    assert lookup(c, "subscriptions", "sim-keep") == [
        {"client_id": "sim-keep", "node": NODE, "qos": 1, "topic": "sim/keep"}]
    assert get_json(c, f"{API}/routes/{q('sim/keep')}")["data"] == [
        {"node": NODE, "topic": "sim/keep"}]
    d = delta(s0, stats(c))
    assert d == {"connections/count": -1}, d
    assert delta(m0, metrics(c))["packets/disconnect/received"] == 1

    # Offline: messages queue up.
    for _ in range(3):
        call(c, "POST", "/mqtt/publish", {"topic": "sim/keep", "payload": "m", "qos": 1})
    (queued,) = lookup(c, "sessions", "sim-keep")
    assert queued["mqueue_len"] == 3
    assert queued["deliver_msg"] == session["deliver_msg"]

    # Back with clean_start false: the same session resumes and its queue is delivered.
    m1 = metrics(c)
    conn = connect(c, "sim-keep", clean_start=False)["data"]
    assert conn["clean_start"] is False
    (resumed,) = lookup(c, "sessions", "sim-keep")
    assert resumed["mqueue_len"] == 0
    assert resumed["deliver_msg"] == queued["deliver_msg"] + 3
    assert resumed["created_at"] == session["created_at"]
    assert resumed["subscriptions_count"] == 1
    assert lookup(c, "subscriptions", "sim-keep") == [
        {"client_id": "sim-keep", "node": NODE, "qos": 1, "topic": "sim/keep"}]
    dm = delta(m1, metrics(c))
    assert dm["messages/sent"] == 3
    assert dm["packets/connect"] == 1
    assert stats(c)["connections/count"] == s0["connections/count"]


def test_persistent_session_moves_to_the_node_the_device_reaches(make_app):
    """Reconnecting on another node takes the session, its subscriptions and its queue
    along; the device sends no SUBSCRIBE, so nothing is re-subscribed or re-delivered."""
    c = make_app(nodes=2, clients=10)
    call(c, "POST", "/mqtt/publish", {"topic": "mv/state", "payload": "on", "retain": True})
    connect(c, "sim-move", clean_start=False,
            subscriptions=[{"topic": "mv/#", "qos": 1}, {"topic": "$share/g/mv/jobs", "qos": 0}])
    (before,) = lookup(c, "sessions", "sim-move")
    assert before["deliver_msg"] == 1  # the retained message, on subscribing
    leave(c, "sim-move")
    call(c, "POST", "/mqtt/publish", {"topic": "mv/x", "payload": "m", "qos": 1})
    m0, s0 = metrics(c, NODE2), stats(c)

    conn = connect(c, "sim-move", clean_start=False, node=NODE2)["data"]
    assert conn["node"] == NODE2
    (moved,) = lookup(c, "sessions", "sim-move")
    assert moved["node"] == NODE2 and moved["created_at"] == before["created_at"]
    assert moved["mqueue_len"] == 0 and moved["deliver_msg"] == 2  # the queued one only
    assert moved["subscriptions_count"] == 2
    assert {(x["node"], x["topic"]) for x in lookup(c, "subscriptions", "sim-move")} == {
        (NODE2, "mv/#"), (NODE2, "mv/jobs")}  # a shared one shown without its group
    assert get_json(c, f"{API}/routes/{q('mv/#')}")["data"] == [
        {"node": NODE2, "topic": "mv/#"}]
    dm = delta(m0, metrics(c, NODE2))  # the node the device reached counts it
    assert "packets/subscribe" not in dm and dm["messages/sent"] == 1
    node1 = get_json(c, f"{API}/nodes/{NODE}/stats/")["data"]
    assert node1["sessions/count"] == s0["sessions/count"] - 1


def test_seeded_offline_session_resumes_with_its_queue(c):
    online = {x["client_id"] for x in get_json(c, API + "/connections/")["data"]}
    offline = [s for s in get_json(c, API + "/sessions/")["data"]
               if s["client_id"] not in online and not s["clean_start"] and s["mqueue_len"]]
    assert offline, "the seed has an offline persistent session with queued messages"
    old = offline[0]
    m0 = metrics(c)
    s0 = stats(c)
    connect(c, old["client_id"], clean_start=False)
    (now,) = lookup(c, "sessions", old["client_id"])
    assert now["mqueue_len"] == 0
    assert now["deliver_msg"] == old["deliver_msg"] + old["mqueue_len"]
    assert now["subscriptions_count"] == old["subscriptions_count"]
    assert delta(m0, metrics(c))["messages/sent"] == old["mqueue_len"]
    d = delta(s0, stats(c))
    assert d["connections/count"] == 1
    assert "sessions/count" not in d


def test_clean_start_discards_a_persistent_session(c):
    connect(c, "sim-fresh", clean_start=False, subscriptions=[{"topic": "sim/fresh", "qos": 0}])
    leave(c, "sim-fresh")
    call(c, "POST", "/mqtt/publish", {"topic": "sim/fresh", "payload": "m"})
    connect(c, "sim-fresh", clean_start=True)
    (session,) = lookup(c, "sessions", "sim-fresh")
    assert session["clean_start"] is True
    assert session["mqueue_len"] == 0 and session["deliver_msg"] == 0
    assert lookup(c, "subscriptions", "sim-fresh") == []


def total_closed(c):
    return sum(closed_count(x) for x in get_json(c, f"{API}/nodes/{NODE}/listeners")["data"])


def test_seeded_client_disconnects(c):
    conns = get_json(c, API + "/connections/")["data"]
    target = conns[3]["client_id"]
    closed0, count0 = total_closed(c), len(conns)
    leave(c, target)
    assert lookup(c, "connections", target) == []
    assert get_json(c, API + "/connections/")["meta"]["count"] == count0 - 1
    assert total_closed(c) == closed0 + 1


def test_disconnect_of_an_unknown_client(c):
    before = get_json(c, API + "/connections/")
    m0 = metrics(c)
    r = c.delete("/_standin/clients/no-such-client", auth=AUTH)
    assert r.status_code < 500
    assert r.get_json()["code"] != 0
    assert get_json(c, API + "/connections/") == before
    assert metrics(c) == m0


def test_client_id_with_slash(c):
    connect(c, "sim/with/slash")
    assert lookup(c, "connections", "sim/with/slash")[0]["client_id"] == "sim/with/slash"
    leave(c, "sim/with/slash")
    assert lookup(c, "connections", "sim/with/slash") == []


# --- alarms ----------------------------------------------------------------------------


def alarms_of(c, node=NODE):
    cluster = {e["node"]: e["alarms"] for e in get_json(c, API + "/alarms/")["data"]}
    local = get_json(c, f"{API}/alarms/{node}")["data"]
    assert cluster[node] == local
    return local


def test_raise_and_clear_alarms(c):
    seeded = alarms_of(c)
    first = control(c, "POST", "/_standin/alarms",
                    {"id": "disk_full", "severity": "critical", "title": "Disk full",
                     "summary": "/var is 99% full"})
    assert first["code"] == 0
    second = control(c, "POST", "/_standin/alarms",
                     {"id": "mem_high", "severity": "warning", "title": "Memory high",
                      "summary": "RAM 91%"})
    assert second["code"] == 0
    listed = alarms_of(c)
    assert [a["id"] for a in listed] == ["mem_high", "disk_full"] + [a["id"] for a in seeded]
    assert {k: listed[0][k] for k in ("id", "severity", "title", "summary")} == {
        "id": "mem_high", "severity": "warning", "title": "Memory high", "summary": "RAM 91%"}
    assert {k: listed[1][k] for k in ("id", "severity", "title", "summary")} == {
        "id": "disk_full", "severity": "critical", "title": "Disk full",
        "summary": "/var is 99% full"}
    assert set(listed[0]) == set(seeded[0]) if seeded else True
    assert listed[2:] == seeded

    assert control(c, "DELETE", "/_standin/alarms/disk_full") == {"code": 0}
    assert [a["id"] for a in alarms_of(c)] == ["mem_high"] + [a["id"] for a in seeded]
    control(c, "DELETE", "/_standin/alarms/mem_high")
    assert alarms_of(c) == seeded


def test_clear_a_seeded_alarm(c):
    assert [a["id"] for a in alarms_of(c)] == ["cpu_high_watermark"]
    control(c, "DELETE", "/_standin/alarms/cpu_high_watermark")
    assert alarms_of(c) == []


def test_alarm_on_a_chosen_node(make_app):
    c = make_app(nodes=2, clients=10)
    before1 = alarms_of(c, NODE)
    control(c, "POST", "/_standin/alarms", {"node": NODE2, "id": "n2_alarm",
                                            "severity": "warning", "title": "t",
                                            "summary": "s"})
    assert [a["id"] for a in alarms_of(c, NODE2)] == ["n2_alarm"]
    assert alarms_of(c, NODE) == before1
    control(c, "DELETE", "/_standin/alarms/n2_alarm")
    assert alarms_of(c, NODE2) == []


def test_clear_unknown_alarm_and_bad_raise(c):
    before = get_json(c, API + "/alarms/")
    r = c.delete("/_standin/alarms/no_such_alarm", auth=AUTH)
    assert r.status_code < 500 and r.get_json()["code"] != 0
    for body in ({}, {"id": "x", "severity": "apocalyptic"}, {"id": 5}):
        r = c.post("/_standin/alarms", json=body, auth=AUTH)
        assert r.status_code < 500 and r.get_json()["code"] != 0, (body, r.get_json())
    assert get_json(c, API + "/alarms/") == before
