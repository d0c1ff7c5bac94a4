"""POST /mqtt/subscribe, /mqtt/unsubscribe and /mqtt/publish, seen through the other routes.

Scenarios use a small seeded cluster (20 connected clients, 2 offline persistent sessions)
and topics under prefixes no seeded subscription matches (checked: a publish there is
dropped before the test subscribes anything). Retained messages seeded under `status/…`
are delivered to new subscriptions of matching filters, so deltas are taken after
subscribing, or the filters avoid them.
"""

from urllib.parse import quote

import pytest

from conftest import API
from conftest import AUTH
from conftest import call
from conftest import delta
from conftest import get_json
from conftest import metrics
from conftest import NODE
from conftest import stats

# --- helpers ---------------------------------------------------------------------------


def sub(c, client_id, topic, qos=0, key="topic"):
    return call(c, "POST", "/mqtt/subscribe", {"client_id": client_id, key: topic, "qos": qos})


def unsub(c, client_id, topic):
    return call(c, "POST", "/mqtt/unsubscribe", {"client_id": client_id, "topic": topic})


def pub(c, topic, payload="", qos=0, retain=False, key="topic", **extra):
    return call(c, "POST", "/mqtt/publish",
                {key: topic, "payload": payload, "qos": qos, "retain": retain, **extra})


def sessions(c):
    return {s["client_id"]: s for s in get_json(c, f"{API}/sessions/")["data"]}


def session(c, client_id):
    data = get_json(c, f"{API}/sessions/{quote(client_id, safe='')}")["data"]
    assert len(data) == 1, (client_id, data)
    return data[0]


def client_subs(c, client_id):
    data = get_json(c, f"{API}/subscriptions/{quote(client_id, safe='')}")["data"]
    return {s["topic"]: s for s in data}


def routes_of(c, topic):
    return get_json(c, f"{API}/routes/{quote(topic, safe='')}")["data"]


def session_counters(c, ids):
    all_sessions = sessions(c)
    return {cid: {k: all_sessions[cid][k] for k in
                  ("deliver_msg", "enqueue_msg", "mqueue_len", "mqueue_dropped",
                   "subscriptions_count")} for cid in ids}


def publish_size(topic, payload, qos):
    """Size of an MQTT 3.1.1 PUBLISH packet (fixed header + topic + packet id + payload)."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + len(payload.encode())
    length_bytes = 1
    while remaining >= 128 ** length_bytes:
        length_bytes += 1
    return 1 + length_bytes + remaining


class World:
    """Who is online and who is an offline persistent session, on a seeded cluster."""

    def __init__(self, c):
        self.c = c
        online = {x["client_id"] for x in get_json(c, f"{API}/connections/")["data"]}
        all_sessions = sessions(c)
        self.online = [cid for cid in all_sessions if cid in online]
        self.offline = [cid for cid, s in all_sessions.items()
                        if cid not in online and not s["clean_start"]]
        self._used = set()

    def take_online(self, n):
        picked = [cid for cid in self.online if cid not in self._used][:n]
        assert len(picked) == n, "not enough online clients in the seeded cluster"
        self._used.update(picked)
        return picked

    def take_offline(self, n):
        picked = [cid for cid in self.offline if cid not in self._used][:n]
        assert len(picked) == n, "not enough offline persistent sessions in the seed"
        self._used.update(picked)
        return picked


@pytest.fixture
def c(make_app):
    return make_app(clients=20)


@pytest.fixture
def world(c):
    w = World(c)
    assert len(w.online) >= 12 and len(w.offline) >= 2
    return w


def assert_nobody_matches(c, topic):
    """Precondition: no subscription (seeded or earlier) matches `topic`."""
    before = metrics(c)
    assert pub(c, topic) == {"code": 0}
    d = delta(before, metrics(c))
    assert d.get("messages/dropped") == 1, d
    assert "messages/sent" not in d, d


# --- subscribe / unsubscribe -----------------------------------------------------------


def test_subscribe_shows_in_subscriptions_session_routes_and_stats(c, world):
    (cid,) = world.take_online(1)
    m0, s0, sess0 = metrics(c), stats(c), session(c, cid)
    list0 = get_json(c, f"{API}/subscriptions/")
    routes0 = get_json(c, f"{API}/routes/")

    assert sub(c, cid, "zt/a", qos=1) == {"code": 0}

    expected = {"client_id": cid, "node": NODE, "qos": 1, "topic": "zt/a"}
    assert client_subs(c, cid)["zt/a"] == expected
    node_view = get_json(c, f"{API}/nodes/{NODE}/subscriptions/{quote(cid, safe='')}")["data"]
    assert expected in node_view
    list1 = get_json(c, f"{API}/subscriptions/")
    assert expected in list1["data"]
    assert list1["meta"]["count"] == list0["meta"]["count"] + 1 == len(list1["data"])
    assert session(c, cid)["subscriptions_count"] == sess0["subscriptions_count"] + 1
    assert routes_of(c, "zt/a") == [{"node": NODE, "topic": "zt/a"}]
    routes1 = get_json(c, f"{API}/routes/")
    assert {"node": NODE, "topic": "zt/a"} in routes1["data"]
    assert routes1["meta"]["count"] == routes0["meta"]["count"] + 1
    d = delta(s0, stats(c))
    assert d == {"subscriptions/count": 1, "subscriptions/max": 1, "subscribers/count": 1,
                 "subscribers/max": 1, "routes/count": 1, "routes/max": 1,
                 "topics/count": 1, "topics/max": 1}, d
    # An API subscribe is not a SUBSCRIBE packet: no packet counters move.
    assert delta(m0, metrics(c)) == {}


def test_subscribe_comma_separated_topics_and_topics_key(c, world):
    cid, other = world.take_online(2)
    s0 = stats(c)
    assert sub(c, cid, "zt/m1,zt/m2,zt/m3", qos=2) == {"code": 0}
    assert sub(c, other, "zt/n1,zt/n2", qos=1, key="topics") == {"code": 0}
    mine = client_subs(c, cid)
    assert {t: s["qos"] for t, s in mine.items() if t.startswith("zt/")} == {
        "zt/m1": 2, "zt/m2": 2, "zt/m3": 2}
    theirs = client_subs(c, other)
    assert {t: s["qos"] for t, s in theirs.items() if t.startswith("zt/")} == {
        "zt/n1": 1, "zt/n2": 1}
    for t in ("zt/m1", "zt/m2", "zt/m3", "zt/n1", "zt/n2"):
        assert routes_of(c, t) == [{"node": NODE, "topic": t}]
    d = delta(s0, stats(c))
    assert d["subscriptions/count"] == 5 and d["routes/count"] == 5 and d["topics/count"] == 5


def test_resubscribe_updates_qos_without_duplicating(c, world):
    (cid,) = world.take_online(1)
    assert sub(c, cid, "zt/r", qos=0) == {"code": 0}
    s1, sess1 = stats(c), session(c, cid)
    list1 = get_json(c, f"{API}/subscriptions/")
    assert sub(c, cid, "zt/r", qos=2) == {"code": 0}
    assert client_subs(c, cid)["zt/r"]["qos"] == 2
    assert [s for s in get_json(c, f"{API}/subscriptions/")["data"]
            if s["client_id"] == cid and s["topic"] == "zt/r"] == [
        {"client_id": cid, "node": NODE, "qos": 2, "topic": "zt/r"}]
    assert get_json(c, f"{API}/subscriptions/")["meta"]["count"] == list1["meta"]["count"]
    assert session(c, cid)["subscriptions_count"] == sess1["subscriptions_count"]
    assert stats(c) == s1
    assert routes_of(c, "zt/r") == [{"node": NODE, "topic": "zt/r"}]
    # The new QoS is the one deliveries use.
    before = metrics(c)
    assert pub(c, "zt/r", "x", qos=2) == {"code": 0}
    d = delta(before, metrics(c))
    assert d["messages/qos2/sent"] == 1 and "messages/qos0/sent" not in d


def test_one_route_per_filter_and_node_and_high_water_marks(c, world):
    a, b = world.take_online(2)
    s0 = stats(c)
    assert sub(c, a, "zt/s") == {"code": 0}
    assert sub(c, b, "zt/s") == {"code": 0}
    assert routes_of(c, "zt/s") == [{"node": NODE, "topic": "zt/s"}]
    s1 = stats(c)
    assert delta(s0, s1)["routes/count"] == 1
    assert delta(s0, s1)["topics/count"] == 1
    assert delta(s0, s1)["subscriptions/count"] == 2

    assert unsub(c, a, "zt/s") == {"code": 0}
    assert "zt/s" not in client_subs(c, a)
    assert routes_of(c, "zt/s") == [{"node": NODE, "topic": "zt/s"}]  # b still needs it
    assert unsub(c, b, "zt/s") == {"code": 0}
    assert routes_of(c, "zt/s") == []
    assert {"node": NODE, "topic": "zt/s"} not in get_json(c, f"{API}/routes/")["data"]
    s2 = stats(c)
    for key in ("routes/count", "topics/count", "subscriptions/count", "subscribers/count"):
        assert s2[key] == s0[key], key
    for key in ("routes/max", "topics/max", "subscriptions/max", "subscribers/max"):
        assert s2[key] == s1[key] >= s2[key.replace("/max", "/count")], key


def test_shared_and_queue_subscriptions_as_3_0_1_shows_them(c, world):
    """The subscription lists show the topic without its $share/<group>/ or $queue/ prefix;
    the route table has a row per destination (the node for the plain subscriber, one per
    group on it), shown without the group; subscribers/* leave the shared ones out."""
    a, b, p = world.take_online(3)
    s0 = stats(c)
    assert sub(c, a, "$share/g1/zt/q", qos=1) == {"code": 0}
    assert sub(c, b, "$queue/zt/q", qos=1) == {"code": 0}
    assert sub(c, p, "zt/q") == {"code": 0}
    assert client_subs(c, a)["zt/q"]["qos"] == 1
    assert "zt/q" in client_subs(c, b)
    assert all(not s["topic"].startswith(("$share/", "$queue/"))
               for s in get_json(c, f"{API}/subscriptions/")["data"])
    assert routes_of(c, "zt/q") == [{"node": NODE, "topic": "zt/q"}] * 3
    assert routes_of(c, "$share/g1/zt/q") == []
    assert routes_of(c, "$queue/zt/q") == []
    d = delta(s0, stats(c))
    assert d["subscriptions/count"] == 3 and d["subscribers/count"] == 1
    assert d["subscriptions/shared/count"] == 2 and d["subscriptions/shared/max"] == 2
    assert d["routes/count"] == 3 and d["topics/count"] == 3

    s1 = stats(c)
    assert unsub(c, a, "$share/g1/zt/q") == {"code": 0}
    d = delta(s1, stats(c))
    assert d == {"subscriptions/count": -1, "subscriptions/shared/count": -1,
                 "routes/count": -1, "topics/count": -1}, d
    assert routes_of(c, "zt/q") == [{"node": NODE, "topic": "zt/q"}] * 2
    after = stats(c)
    assert after["topics/count"] == after["routes/count"] == get_json(
        c, f"{API}/routes/")["meta"]["count"]


def test_unsubscribe_takes_one_filter_not_comma_split(c, world):
    (cid,) = world.take_online(1)
    assert sub(c, cid, "zt/c1,zt/c2") == {"code": 0}
    s1 = stats(c)
    assert unsub(c, cid, "zt/c1,zt/c2") == {"code": 0}  # a filter nobody has
    assert {"zt/c1", "zt/c2"} <= set(client_subs(c, cid))
    assert stats(c) == s1
    assert unsub(c, cid, "zt/c1") == {"code": 0}
    assert "zt/c1" not in client_subs(c, cid) and "zt/c2" in client_subs(c, cid)
    assert routes_of(c, "zt/c1") == []
    assert delta(s1, stats(c))["subscriptions/count"] == -1


def test_unsubscribe_of_a_filter_not_subscribed_is_ok_and_changes_nothing(c, world):
    (cid,) = world.take_online(1)
    s0, sess0 = stats(c), session(c, cid)
    assert unsub(c, cid, "zt/never") == {"code": 0}
    assert stats(c) == s0 and session(c, cid) == sess0


def test_no_session_answers_112_and_changes_nothing(c):
    s0 = stats(c)
    list0 = get_json(c, f"{API}/subscriptions/")
    assert sub(c, "no-such-client", "zt/x") == {"code": 112, "message": "session_not_found"}
    assert unsub(c, "no-such-client", "zt/x") == {"code": 112, "message": "session_not_found"}
    assert stats(c) == s0
    assert get_json(c, f"{API}/subscriptions/") == list0
    assert routes_of(c, "zt/x") == []


def test_offline_persistent_session_can_subscribe(c, world):
    (cid,) = world.take_offline(1)
    n0 = session(c, cid)["subscriptions_count"]
    assert sub(c, cid, "zt/off", qos=1) == {"code": 0}
    assert client_subs(c, cid)["zt/off"] == {"client_id": cid, "node": NODE, "qos": 1,
                                             "topic": "zt/off"}
    assert session(c, cid)["subscriptions_count"] == n0 + 1
    assert routes_of(c, "zt/off") == [{"node": NODE, "topic": "zt/off"}]


INVALID_FILTERS = ["zt/#/x", "zt/a+", "zt/#,zt/ok/#/", "zt/ok,", "zt/a#", "$share/g",
                   "$share/", "$share//zt", "$share/g/", "$share/+/zt", "$queue/"]


@pytest.mark.parametrize("topic", INVALID_FILTERS)
def test_invalid_filter_is_bad_topic_and_nothing_is_subscribed(c, world, topic):
    (cid,) = world.take_online(1)
    s0, subs0 = stats(c), client_subs(c, cid)
    assert sub(c, cid, topic) == {"code": 115, "message": "bad_topic"}
    assert stats(c) == s0 and client_subs(c, cid) == subs0


@pytest.mark.parametrize("topic", [t for t in INVALID_FILTERS if "," not in t])
def test_invalid_filter_on_unsubscribe_is_bad_topic(c, world, topic):
    (cid,) = world.take_online(1)
    s0, subs0 = stats(c), client_subs(c, cid)
    assert unsub(c, cid, topic) == {"code": 115, "message": "bad_topic"}
    assert stats(c) == s0 and client_subs(c, cid) == subs0


def test_routes_one_per_node_in_a_two_node_cluster(make_app):
    c = make_app(nodes=2, clients=4)
    by_node = {}
    for s in get_json(c, f"{API}/sessions/")["data"]:
        by_node.setdefault(s["node"], []).append(s["client_id"])
    n1, n2 = sorted(by_node)
    t0 = get_json(c, f"{API}/stats/")["data"]
    assert sub(c, by_node[n1][0], "zn/t") == {"code": 0}
    assert sub(c, by_node[n1][1], "zn/t") == {"code": 0}
    assert sub(c, by_node[n2][0], "zn/t") == {"code": 0}
    assert sorted(r["node"] for r in routes_of(c, "zn/t")) == [n1, n2]
    t1 = get_json(c, f"{API}/stats/")["data"]
    d1, d2 = delta(t0[0], t1[0]), delta(t0[1], t1[1])
    assert d1["subscriptions/count"] == 2 and d2["subscriptions/count"] == 1
    # routes and topics are cluster-wide tables: every node reports the same value, and
    # topics/count is the size of the route table, as in 3.0.1.
    for d in (d1, d2):
        assert d["routes/count"] == 2 and d["topics/count"] == 2
    assert sub(c, by_node[n2][0], "zn/t") == {"code": 0}  # re-subscribe: still one each
    assert len(routes_of(c, "zn/t")) == 2
    assert unsub(c, by_node[n2][0], "zn/t") == {"code": 0}
    assert routes_of(c, "zn/t") == [{"node": n1, "topic": "zn/t"}]


# --- publish ---------------------------------------------------------------------------


def test_publish_to_a_topic_nobody_subscribes_is_dropped(c):
    before = metrics(c)
    assert pub(c, "zt/nobody", "hi", qos=1) == {"code": 0}
    # An API publish is not a message received (3.0.1 counts only devices' PUBLISH packets).
    assert delta(before, metrics(c)) == {"messages/dropped": 1}


def test_publish_fanout_plain_and_shared_group_exact_deltas(c, world):
    """qos1 to 2 online plain qos1 subscribers + one shared group of 3 -> 3 deliveries."""
    topic, payload = "zf/t", "hello"
    assert_nobody_matches(c, topic)
    a, b = world.take_online(2)
    group = world.take_online(3)
    for cid in (a, b):
        assert sub(c, cid, topic, qos=1) == {"code": 0}
    for cid in group:
        assert sub(c, cid, f"$share/grp/{topic}", qos=1) == {"code": 0}
    ids = [a, b, *group]
    m0, s0, c0 = metrics(c), stats(c), session_counters(c, ids)

    assert pub(c, topic, payload, qos=1) == {"code": 0}

    d = delta(m0, metrics(c))
    assert "messages/received" not in d and "messages/qos1/received" not in d
    assert d["messages/sent"] == 3
    assert d["messages/qos1/sent"] == 3
    assert d["packets/publish/sent"] == 3
    assert d["bytes/sent"] == 3 * publish_size(topic, payload, 1)
    for key in ("messages/dropped", "messages/qos0/sent", "messages/qos2/sent",
                "packets/publish/received", "messages/qos0/received", "messages/retained"):
        assert key not in d, (key, d)
    assert stats(c) == s0
    c1 = session_counters(c, ids)
    assert c1[a]["deliver_msg"] == c0[a]["deliver_msg"] + 1
    assert c1[b]["deliver_msg"] == c0[b]["deliver_msg"] + 1
    assert sorted(c1[g]["deliver_msg"] - c0[g]["deliver_msg"] for g in group) == [0, 0, 1]
    for cid in ids:
        assert c1[cid]["enqueue_msg"] == c0[cid]["enqueue_msg"]
        assert c1[cid]["mqueue_len"] == c0[cid]["mqueue_len"]

    # Every further message goes to exactly one member of the group.
    for n in range(2, 6):
        assert pub(c, topic, payload, qos=1) == {"code": 0}
        cn = session_counters(c, ids)
        assert sum(cn[g]["deliver_msg"] - c0[g]["deliver_msg"] for g in group) == n
        assert cn[a]["deliver_msg"] - c0[a]["deliver_msg"] == n


def test_queue_prefix_behaves_as_a_shared_group(c, world):
    topic = "zqq/t"
    assert_nobody_matches(c, topic)
    members = world.take_online(3)
    for cid in members:
        assert sub(c, cid, f"$queue/{topic}") == {"code": 0}
    other_group = world.take_online(2)
    for cid in other_group:
        assert sub(c, cid, f"$share/other/{topic}") == {"code": 0}
    ids = members + other_group
    m0, c0 = metrics(c), session_counters(c, ids)
    assert pub(c, topic, "x") == {"code": 0}
    d = delta(m0, metrics(c))
    assert d["messages/sent"] == 2, d  # one per group
    c1 = session_counters(c, ids)
    assert sum(c1[x]["deliver_msg"] - c0[x]["deliver_msg"] for x in members) == 1
    assert sum(c1[x]["deliver_msg"] - c0[x]["deliver_msg"] for x in other_group) == 1


def test_publish_wildcard_matching(c, world):
    assert_nobody_matches(c, "zw/room1/temp")
    plus, hash_, exact, deeper, first_plus, other = world.take_online(6)
    subs = {plus: "zw/+/temp", hash_: "zw/#", exact: "zw/room1/temp",
            deeper: "zw/room1/+/x", first_plus: "+/room1/temp", other: "zw/+"}
    for cid, flt in subs.items():
        assert sub(c, cid, flt) == {"code": 0}
    ids = list(subs)

    def deliveries(topic):
        m0, c0 = metrics(c), session_counters(c, ids)
        assert pub(c, topic, "v") == {"code": 0}
        c1 = session_counters(c, ids)
        got = {cid for cid in ids if c1[cid]["deliver_msg"] != c0[cid]["deliver_msg"]}
        for cid in got:
            assert c1[cid]["deliver_msg"] - c0[cid]["deliver_msg"] == 1
        d = delta(m0, metrics(c))
        assert d.get("messages/sent", 0) == len(got)
        assert d.get("messages/dropped", 0) == (0 if got else 1)
        return got

    assert deliveries("zw/room1/temp") == {plus, hash_, exact, first_plus}
    assert deliveries("zw/room2/temp") == {plus, hash_}
    assert deliveries("zw") == {hash_}  # `a/#` matches `a`
    assert deliveries("zw/room1") == {hash_, other}
    assert deliveries("zw/room1/a/x") == {hash_, deeper}
    assert deliveries("zw/room1/temp/more") == {hash_}
    assert deliveries("zwx/room1/temp") == {first_plus}


def test_overlapping_filters_of_one_client_each_deliver(c, world):
    assert_nobody_matches(c, "zo/x")
    (cid,) = world.take_online(1)
    assert sub(c, cid, "zo/+") == {"code": 0}
    assert sub(c, cid, "zo/#") == {"code": 0}
    m0, d0 = metrics(c), session(c, cid)["deliver_msg"]
    assert pub(c, "zo/x", "v") == {"code": 0}
    assert session(c, cid)["deliver_msg"] == d0 + 2
    assert delta(m0, metrics(c))["messages/sent"] == 2


def test_dollar_topics_are_not_matched_by_leading_wildcards(c, world):
    hash_all, plus_x, sys_sub = world.take_online(3)
    assert sub(c, hash_all, "#") == {"code": 0}  # receives the retained messages now
    assert sub(c, plus_x, "+/x") == {"code": 0}
    ids = [hash_all, plus_x, sys_sub]
    m0, c0 = metrics(c), session_counters(c, ids)
    assert pub(c, "$SYS/x", "v") == {"code": 0}
    d = delta(m0, metrics(c))
    assert d == {"messages/dropped": 1}
    assert session_counters(c, ids) == c0

    assert sub(c, sys_sub, "$SYS/#") == {"code": 0}
    c0 = session_counters(c, ids)
    assert pub(c, "$SYS/x", "v") == {"code": 0}
    c1 = session_counters(c, ids)
    assert c1[sys_sub]["deliver_msg"] == c0[sys_sub]["deliver_msg"] + 1
    assert c1[hash_all] == c0[hash_all] and c1[plus_x] == c0[plus_x]

    # An ordinary topic reaches both wildcards.
    c0 = session_counters(c, ids)
    assert pub(c, "zd/x", "v") == {"code": 0}
    c1 = session_counters(c, ids)
    assert c1[hash_all]["deliver_msg"] == c0[hash_all]["deliver_msg"] + 1
    assert c1[plus_x]["deliver_msg"] == c0[plus_x]["deliver_msg"] + 1


@pytest.mark.parametrize("pub_qos,sub_qos", [(2, 0), (2, 1), (1, 2), (0, 2), (2, 2), (1, 0)])
def test_delivery_qos_is_the_minimum_of_publish_and_subscription(c, world, pub_qos, sub_qos):
    topic, payload = "zq/t", "abc"
    (cid,) = world.take_online(1)
    assert sub(c, cid, topic, qos=sub_qos) == {"code": 0}
    m0 = metrics(c)
    assert pub(c, topic, payload, qos=pub_qos) == {"code": 0}
    d = delta(m0, metrics(c))
    eff = min(pub_qos, sub_qos)
    assert d["messages/sent"] == 1 and d[f"messages/qos{eff}/sent"] == 1
    assert d["packets/publish/sent"] == 1
    for q in {0, 1, 2} - {eff}:
        assert f"messages/qos{q}/sent" not in d
    for q in {0, 1, 2}:
        assert f"messages/qos{q}/received" not in d
    if eff < 2:  # a QoS 2 exchange also sends PUBREL; QoS 0/1 only the PUBLISH
        assert d["bytes/sent"] == publish_size(topic, payload, eff)
        assert d["packets/sent"] == 1


def test_offline_persistent_sessions_queue_instead_of_delivering(c, world):
    topic = "zoff/t"
    assert_nobody_matches(c, topic)
    (online,) = world.take_online(1)
    (offline,) = world.take_offline(1)
    assert sub(c, offline, topic, qos=1) == {"code": 0}
    m0, c0 = metrics(c), session_counters(c, [offline])
    assert pub(c, topic, "x", qos=1) == {"code": 0}
    d = delta(m0, metrics(c))
    # Queued for the session: not dropped, not sent yet (nor received: an API publish).
    assert d == {}, d
    c1 = session_counters(c, [offline])[offline]
    assert c1["enqueue_msg"] == c0[offline]["enqueue_msg"] + 1
    assert c1["mqueue_len"] == c0[offline]["mqueue_len"] + 1
    assert c1["deliver_msg"] == c0[offline]["deliver_msg"]

    assert sub(c, online, topic, qos=1) == {"code": 0}
    m0, c0 = metrics(c), session_counters(c, [online, offline])
    assert pub(c, topic, "x", qos=1) == {"code": 0}
    d = delta(m0, metrics(c))
    assert d["messages/sent"] == 1 and d["packets/publish/sent"] == 1
    assert "messages/dropped" not in d
    c1 = session_counters(c, [online, offline])
    assert c1[online]["deliver_msg"] == c0[online]["deliver_msg"] + 1
    assert c1[offline]["mqueue_len"] == c0[offline]["mqueue_len"] + 1
    assert c1[offline]["deliver_msg"] == c0[offline]["deliver_msg"]


def test_offline_queue_is_bounded_by_max_mqueue(c, world):
    (offline,) = world.take_offline(1)
    assert sub(c, offline, "zm/#", qos=1) == {"code": 0}
    s0 = session(c, offline)
    room = s0["max_mqueue"] - s0["mqueue_len"]
    assert room > 0
    topics = [f"zm/{i}" for i in range(room + 3)]
    m0 = metrics(c)
    assert pub(c, ",".join(topics), "p", qos=1) == {"code": 0}
    s1 = session(c, offline)
    assert s1["mqueue_len"] == s1["max_mqueue"]
    assert s1["mqueue_dropped"] == s0["mqueue_dropped"] + 3
    assert s1["enqueue_msg"] == s0["enqueue_msg"] + len(topics)
    assert s1["deliver_msg"] == s0["deliver_msg"]
    d = delta(m0, metrics(c))
    assert d == {"messages/dropped": 3}, d  # 3 found the queue full; none sent


def test_publish_topics_key_and_comma_separated_names(c, world):
    a, b = world.take_online(2)
    assert sub(c, a, "zp/1") == {"code": 0}
    assert sub(c, b, "zp/2") == {"code": 0}
    m0, c0 = metrics(c), session_counters(c, [a, b])
    assert pub(c, "zp/1,zp/2,zp/3", "x", key="topics") == {"code": 0}
    d = delta(m0, metrics(c))
    assert d["messages/sent"] == 2 and "messages/received" not in d
    assert d["messages/dropped"] == 1
    c1 = session_counters(c, [a, b])
    assert all(c1[x]["deliver_msg"] == c0[x]["deliver_msg"] + 1 for x in (a, b))


def test_publish_drops_names_with_wildcards(c, world):
    (cid,) = world.take_online(1)
    assert sub(c, cid, "zx/#") == {"code": 0}
    m0, d0 = metrics(c), session(c, cid)["deliver_msg"]
    assert pub(c, "zx/+,zx/ok,zx/#", "x") == {"code": 0}
    assert delta(m0, metrics(c))["messages/sent"] == 1  # zx/ok only
    assert session(c, cid)["deliver_msg"] == d0 + 1

    m1 = metrics(c)
    for topic in ("zx/#", "zx/+/y", "+,#"):
        assert pub(c, topic, "x") == {"code": 115, "message": "bad_topic"}
        assert pub(c, topic, "x", key="topics") == {"code": 115, "message": "bad_topic"}
    assert metrics(c) == m1
    assert session(c, cid)["deliver_msg"] == d0 + 1


def test_publish_with_a_client_id_that_is_not_connected(c, world):
    (cid,) = world.take_online(1)
    assert sub(c, cid, "zg/t") == {"code": 0}
    d0 = session(c, cid)["deliver_msg"]
    assert pub(c, "zg/t", "x", client_id="ghost-client") == {"code": 0}
    assert session(c, cid)["deliver_msg"] == d0 + 1


# --- retained --------------------------------------------------------------------------


def test_retained_store_replace_delete_and_delivery_to_new_subscribers(c, world):
    topic = "zr/a"
    assert_nobody_matches(c, topic)
    first, second, third, fourth = world.take_online(4)
    s0, m0 = stats(c), metrics(c)

    assert pub(c, topic, "v1", qos=1, retain=True) == {"code": 0}
    s1, m1 = stats(c), metrics(c)
    assert s1["retained/count"] == s0["retained/count"] + 1
    assert s1["retained/max"] == max(s0["retained/max"], s1["retained/count"])
    assert m1["messages/retained"] == m0["messages/retained"] + 1 == s1["retained/count"]
    # Nobody subscribed yet: stored, and counted as dropped by the router.
    assert delta(m0, m1)["messages/dropped"] == 1

    # A new subscription receives the retained message (delivery QoS = min(1, sub qos)).
    d0 = session(c, first)["deliver_msg"]
    mm = metrics(c)
    assert sub(c, first, "zr/#", qos=0) == {"code": 0}
    assert session(c, first)["deliver_msg"] == d0 + 1
    d = delta(mm, metrics(c))
    assert d["messages/sent"] == 1 and d["messages/qos0/sent"] == 1
    assert d["packets/publish/sent"] == 1

    # Same topic again: replaced, not added.
    assert pub(c, topic, "v2", qos=1, retain=True) == {"code": 0}
    assert stats(c)["retained/count"] == s1["retained/count"]
    d0 = session(c, second)["deliver_msg"]
    assert sub(c, second, "zr/+", qos=1) == {"code": 0}
    assert session(c, second)["deliver_msg"] == d0 + 1

    # retain false does not store.
    assert pub(c, "zr/b", "v", retain=False) == {"code": 0}
    assert stats(c)["retained/count"] == s1["retained/count"]

    # An empty retained payload deletes it.
    assert pub(c, topic, "", qos=1, retain=True) == {"code": 0}
    s3, m3 = stats(c), metrics(c)
    assert s3["retained/count"] == s0["retained/count"]
    assert m3["messages/retained"] == s3["retained/count"]
    assert s3["retained/max"] == s1["retained/max"]  # high-water mark kept
    d0 = session(c, third)["deliver_msg"]
    assert sub(c, third, "zr/#") == {"code": 0}
    assert session(c, third)["deliver_msg"] == d0

    # A retained publish with subscribers is stored and delivered.
    mm = metrics(c)
    assert pub(c, "zr/c", "v", qos=0, retain=True) == {"code": 0}
    d = delta(mm, metrics(c))
    assert d["messages/sent"] == 3 and "messages/dropped" not in d  # first, second(zr/+), third
    assert d["messages/retained"] == 1
    d0 = session(c, fourth)["deliver_msg"]
    assert sub(c, fourth, "zr/c") == {"code": 0}
    assert session(c, fourth)["deliver_msg"] == d0 + 1


def test_seeded_retained_messages_reach_new_wildcard_subscribers(c, world):
    (cid,) = world.take_online(1)
    (offline,) = world.take_offline(1)
    retained = stats(c)["retained/count"]
    assert retained >= 2  # the seed keeps status/<region> messages
    d0, m0 = session(c, cid)["deliver_msg"], metrics(c)
    assert sub(c, cid, "status/#", qos=1) == {"code": 0}
    assert session(c, cid)["deliver_msg"] == d0 + retained
    d = delta(m0, metrics(c))
    assert d["messages/sent"] == retained and d["packets/publish/sent"] == retained
    # An offline persistent session gets them queued.
    q0 = session(c, offline)
    assert sub(c, offline, "status/+", qos=1) == {"code": 0}
    q1 = session(c, offline)
    assert q1["mqueue_len"] == q0["mqueue_len"] + retained
    assert q1["enqueue_msg"] == q0["enqueue_msg"] + retained
    assert q1["deliver_msg"] == q0["deliver_msg"]


def test_overlapping_filters_of_a_full_offline_queue_queue_only_up_to_max_mqueue(client):
    """Two matching subscriptions of one offline session: its queue stops at max_mqueue."""
    client.post("/_standin/clients", auth=AUTH, json={
        "client_id": "q-full", "clean_start": False,
        "subscriptions": [{"topic": "qf/#", "qos": 1}, {"topic": "qf/+", "qos": 1}]})
    client.delete("/_standin/clients/q-full", auth=AUTH)
    (session,) = get_json(client, f"{API}/sessions/q-full")["data"]
    room = session["max_mqueue"] - 1
    pub(client, ",".join(f"qf/a/{i}" for i in range(room)), "m", qos=1)  # only qf/# matches
    (session,) = get_json(client, f"{API}/sessions/q-full")["data"]
    assert session["mqueue_len"] == room and session["mqueue_dropped"] == 0

    pub(client, "qf/x", "m", qos=1)  # both filters match: one fits, one is dropped
    (session,) = get_json(client, f"{API}/sessions/q-full")["data"]
    assert session["mqueue_len"] == session["max_mqueue"]
    assert session["mqueue_dropped"] == 1
    assert session["enqueue_msg"] == room + 2
