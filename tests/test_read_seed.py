"""The synthetic cluster: deterministic, holds the document's samples, and agrees with itself."""

import sqlite3
from collections import Counter
from urllib.parse import quote

import pytest

from conftest import data
from conftest import get_json
from conftest import NODE
from conftest import route_topic
from conftest import strip_times

pytestmark = pytest.mark.usefixtures("fast_hash")

API = "/api/v3"
STATS_KEYS = ("heap_size", "mailbox_len", "reductions", "recv_cnt", "recv_msg", "recv_oct",
              "recv_pkt", "send_cnt", "send_msg", "send_oct", "send_pend", "send_pkt")
LISTS = [
    "/brokers/", "/nodes/", "/connections/", "/sessions/", "/subscriptions/", "/routes/",
    "/listeners/", "/metrics/", "/stats/", "/alarms/", "/plugins/", "/banned/", "/apps/",
    "/users/", "/configs/",
]


def _nodes(client):
    return [n["node"] for n in data(client, "/nodes/")]


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------


def test_seed_same_settings_same_answers(make_app):
    first, second = make_app(nodes=2, clients=30, seed=7), make_app(nodes=2, clients=30, seed=7)
    differing = [path for path in LISTS
                 if strip_times(data(first, path)) != strip_times(data(second, path))]
    assert differing == []


def test_seed_same_settings_same_bytes_for_stats(make_app, auth):
    first, second = make_app(seed=11), make_app(seed=11)
    assert (first.get(API + "/stats/", auth=auth).data
            == second.get(API + "/stats/", auth=auth).data)


@pytest.mark.parametrize("path", ["/connections/", "/sessions/", "/subscriptions/"])
def test_seed_different_seed_different_data(make_app, path):
    first, second = make_app(seed=1), make_app(seed=2)
    assert strip_times(data(first, path)) != strip_times(data(second, path))


@pytest.mark.parametrize(("nodes", "clients"), [(1, 50), (1, 5), (3, 20)])
def test_seed_clients_setting_is_connections_per_node(make_app, nodes, clients):
    client = make_app(nodes=nodes, clients=clients)
    counts = Counter(c["node"] for c in data(client, "/connections/"))
    assert len(counts) == nodes
    assert set(counts.values()) == {clients}


@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_seed_nodes_setting_names_nodes(make_app, nodes):
    client = make_app(nodes=nodes, clients=10)
    assert _nodes(client) == [f"emqx@127.0.0.{i}" for i in range(1, nodes + 1)]


# ---------------------------------------------------------------------------
# The document's sample clients
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("client_id", "port", "username"), [
    ("emqx-api-test:v1", 64594, "emqx-api-test:v1"), ("mqttjs_406e3f9a", 64593, "undefined")],
    ids=["with_username", "without_username"])
def test_seed_doc_client(client, client_id, port, username):
    [conn] = data(client, f"/connections/{client_id}")
    stats = {k: conn.pop(k) for k in STATS_KEYS}
    assert strip_times(conn) == {
        "clean_start": True, "client_id": client_id, "ipaddress": "127.0.0.1",
        "is_bridge": False, "is_super": False, "keepalive": 60, "mountpoint": "undefined",
        "node": NODE, "peercert": "nossl", "port": port, "proto_name": "MQTT", "proto_ver": 4,
        "username": username, "will_topic": "undefined", "zone": "external"}
    # Up an hour with a 60 s keepalive: its CONNECT, SUBSCRIBE and 60 PINGREQs at least.
    assert all(type(v) is int and v >= 0 for v in stats.values())
    assert stats["recv_pkt"] >= 62 and stats["send_pkt"] >= 62
    assert stats["recv_oct"] > 2 * 60 and stats["send_pend"] == stats["mailbox_len"] == 0


@pytest.mark.parametrize(("client_id", "username"), [
    ("emqx-api-test:v1", "emqx-api-test:v1"), ("mqttjs_406e3f9a", "undefined")])
def test_seed_doc_client_sessions(client, client_id, username):
    [session] = data(client, f"/sessions/{client_id}")
    assert (session["client_id"], session["username"], session["node"]) == (
        client_id, username, NODE)
    assert session["subscriptions_count"] == 1


@pytest.mark.parametrize("client_id", ["emqx-api-test:v1", "mqttjs_406e3f9a"])
def test_seed_doc_client_subscribed_to_test(client, client_id):
    assert data(client, f"/subscriptions/{client_id}") == [
        {"client_id": client_id, "node": NODE, "qos": 0, "topic": "/test"}]


def test_seed_doc_clients_listed_first(client):
    assert [c["client_id"] for c in data(client, "/connections/")[:2]] == [
        "emqx-api-test:v1", "mqttjs_406e3f9a"]


def test_seed_route_for_test_topic(client):
    assert data(client, "/routes/%2Ftest") == [{"node": NODE, "topic": "/test"}]


def test_seed_zero_clients_has_no_connections(make_app):
    client = make_app(clients=0)
    assert data(client, "/connections/") == []
    assert data(client, "/sessions/") == []
    assert data(client, "/routes/") == []


# ---------------------------------------------------------------------------
# Consistency (one node and three)
# ---------------------------------------------------------------------------


@pytest.fixture(params=[1, 3], ids=["1node", "3nodes"])
def cluster(request, make_app):
    return make_app(nodes=request.param, clients=30)


def _stats(client):
    return {s["node"]: s for s in data(client, "/stats/")}


def test_consistency_connections_count(cluster):
    stats = _stats(cluster)
    total = get_json(cluster, API + "/connections/")["meta"]["count"]
    assert total == sum(s["connections/count"] for s in stats.values())
    listed = {n["node"]: n["connections"] for n in data(cluster, "/nodes/")}
    listeners = {e["node"]: e["listeners"] for e in data(cluster, "/listeners/")}
    for node, node_stats in stats.items():
        count = get_json(cluster, f"{API}/nodes/{node}/connections/")["meta"]["count"]
        mqtt = sum(li["current_conns"] for li in listeners[node]
                   if li["protocol"].startswith("mqtt:"))
        assert node_stats["connections/count"] == count == listed[node] == mqtt
        assert get_json(cluster, f"{API}/nodes/{node}")["data"]["connections"] == count


def _counts_add_up(cluster, kind):
    """The cluster's `kind` count is the sum of the nodes' `kind/count` stats, and each
    node's stat equals the count and the length of its node-scoped list; the stats."""
    stats = _stats(cluster)
    total = get_json(cluster, f"{API}/{kind}/")["meta"]["count"]
    assert total == sum(s[f"{kind}/count"] for s in stats.values())
    for node, node_stats in stats.items():
        body = get_json(cluster, f"{API}/nodes/{node}/{kind}/")
        assert node_stats[f"{kind}/count"] == body["meta"]["count"] == len(body["data"])
    return stats


def test_consistency_sessions_count(cluster):
    _counts_add_up(cluster, "sessions")


def test_consistency_persistent_sessions_count(cluster):
    sessions = data(cluster, "/sessions/")
    for node, node_stats in _stats(cluster).items():
        persistent = [s for s in sessions if s["node"] == node and not s["clean_start"]]
        assert node_stats["sessions/persistent/count"] == len(persistent)


def _sql(cluster, query):
    """An independent count, straight from the cluster's SQLite file."""
    get_json(cluster, API + "/nodes/")  # the file exists once the app has answered
    db = sqlite3.connect(cluster.settings["DATABASE"])
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def test_consistency_subscriptions_count(cluster):
    """subscribers/* leave out the shared subscriptions (3.0.1 keeps them apart)."""
    plain = dict(_sql(cluster, "SELECT node, count(*) FROM subscriptions"
                               " WHERE share IS NULL GROUP BY node"))
    for node, node_stats in _counts_add_up(cluster, "subscriptions").items():
        assert node_stats["subscribers/count"] == plain[node] < node_stats["subscriptions/count"]


def test_consistency_shared_subscriptions_count(cluster):
    """Cluster-wide: every node reports the cluster's shared subscriptions."""
    [(shared,)] = _sql(cluster, "SELECT count(*) FROM subscriptions WHERE share IS NOT NULL")
    assert shared > 0
    for node_stats in _stats(cluster).values():
        assert node_stats["subscriptions/shared/count"] == shared


def test_consistency_routes_count(cluster):
    body = get_json(cluster, API + "/routes/")
    for node_stats in _stats(cluster).values():
        assert node_stats["routes/count"] == body["meta"]["count"] == len(body["data"])


def test_consistency_topics_count_is_the_route_table(cluster):
    """As in 3.0.1, topics/count is the size of the route table: the dashboard's overview
    and its Topics page agree."""
    routes = get_json(cluster, API + "/routes/")["meta"]["count"]
    for node_stats in _stats(cluster).values():
        assert node_stats["topics/count"] == node_stats["routes/count"] == routes


def test_consistency_routes_follow_subscriptions(cluster):
    routes = {(r["node"], r["topic"]) for r in data(cluster, "/routes/")}
    needed = {(s["node"], route_topic(s["topic"])) for s in data(cluster, "/subscriptions/")}
    assert routes == needed


def test_consistency_routes_one_per_destination(cluster):
    """One route per (topic, node) for its plain subscribers, plus one per shared group."""
    routes = Counter((r["node"], r["topic"]) for r in data(cluster, "/routes/"))
    expected = Counter()
    for node, topic, _group in _sql(cluster, "SELECT DISTINCT node, route_topic,"
                                             " coalesce(share, '') FROM subscriptions"):
        expected[(node, topic)] += 1
    assert routes == expected


def test_consistency_route_lookup_matches_list(cluster):
    routes = data(cluster, "/routes/")
    topic = routes[0]["topic"]
    assert data(cluster, "/routes/" + quote(topic, safe="")) == [
        r for r in routes if r["topic"] == topic]


def test_consistency_max_at_least_count(cluster):
    for node_stats in _stats(cluster).values():
        for key, value in node_stats.items():
            if key.endswith("/count"):
                assert node_stats[key[:-len("count")] + "max"] >= value, key


def test_consistency_retained_count_matches_metrics(cluster):
    metrics = {m["node"]: m["metrics"] for m in data(cluster, "/metrics/")}
    for node, node_stats in _stats(cluster).items():
        assert metrics[node]["messages/retained"] == node_stats["retained/count"]


def test_consistency_session_subscriptions_count(cluster):
    per_client = Counter(s["client_id"] for s in data(cluster, "/subscriptions/"))
    for session in data(cluster, "/sessions/"):
        assert session["subscriptions_count"] == per_client[session["client_id"]], session


def test_consistency_every_connection_has_a_matching_session(cluster):
    sessions = {s["client_id"]: s for s in data(cluster, "/sessions/")}
    for conn in data(cluster, "/connections/"):
        session = sessions[conn["client_id"]]
        assert (session["node"], session["username"], session["clean_start"]) == (
            conn["node"], conn["username"], conn["clean_start"])


def test_consistency_subscriptions_belong_to_sessions(cluster):
    sessions = {s["client_id"]: s["node"] for s in data(cluster, "/sessions/")}
    for sub in data(cluster, "/subscriptions/"):
        assert sessions[sub["client_id"]] == sub["node"]


def test_consistency_offline_persistent_sessions_exist(cluster):
    connected = {c["client_id"] for c in data(cluster, "/connections/")}
    offline = [s for s in data(cluster, "/sessions/") if s["client_id"] not in connected]
    assert offline
    for session in offline:
        assert session["clean_start"] is False
        assert session["expiry_interval"] == 7200


def test_consistency_client_ids_unique(cluster):
    ids = [c["client_id"] for c in data(cluster, "/sessions/")]
    assert len(ids) == len(set(ids))


def test_consistency_metrics_connect_counts(cluster):
    stats = _stats(cluster)
    for entry in data(cluster, "/metrics/"):
        metrics = entry["metrics"]
        assert metrics["packets/connect"] >= stats[entry["node"]]["sessions/count"]
        assert metrics["packets/subscribe"] >= stats[entry["node"]]["subscriptions/count"]
        assert metrics["messages/received"] == sum(
            metrics[f"messages/qos{q}/received"] for q in range(3))
