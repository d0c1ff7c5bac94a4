"""Cluster-wide versus node-scoped reads, on one node and on three; unknown nodes."""

import pytest

from conftest import data
from conftest import get_json
from conftest import NODE
from conftest import strip_times

pytestmark = pytest.mark.usefixtures("fast_hash")

API = "/api/v3"
NODES3 = ["emqx@127.0.0.1", "emqx@127.0.0.2", "emqx@127.0.0.3"]
SCOPED_LISTS = ["connections", "sessions", "subscriptions"]


@pytest.fixture
def three(make_app):
    return make_app(nodes=3, clients=20)


# ---------------------------------------------------------------------------
# Three nodes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SCOPED_LISTS)
def test_cluster_list_covers_every_node(three, kind):
    assert {item["node"] for item in data(three, f"/{kind}/")} == set(NODES3)


@pytest.mark.parametrize("node", NODES3)
@pytest.mark.parametrize("kind", SCOPED_LISTS)
def test_node_list_only_that_node(three, kind, node):
    items = data(three, f"/nodes/{node}/{kind}/")
    assert items
    assert {item["node"] for item in items} == {node}


@pytest.mark.parametrize("kind", SCOPED_LISTS)
def test_cluster_list_is_union_of_node_lists(three, kind):
    union = [i for node in NODES3 for i in data(three, f"/nodes/{node}/{kind}/")]
    cluster = data(three, f"/{kind}/")
    assert sorted(map(repr, union)) == sorted(map(repr, cluster))


@pytest.mark.parametrize("kind", SCOPED_LISTS)
def test_cluster_list_meta_count_sums_node_counts(three, kind):
    total = get_json(three, f"{API}/{kind}/")["meta"]["count"]
    assert total == sum(get_json(three, f"{API}/nodes/{n}/{kind}/")["meta"]["count"]
                        for n in NODES3)


@pytest.mark.parametrize("path", ["/brokers/", "/nodes/", "/stats/", "/metrics/", "/listeners/",
                                  "/plugins/", "/alarms/", "/configs/"])
def test_cluster_per_node_lists_in_cluster_order(three, path):
    assert [item["node"] for item in data(three, path)] == NODES3


@pytest.mark.parametrize("node", NODES3)
def test_get_broker_each_node(three, node):
    broker = data(three, f"/brokers/{node}")
    listed = {b["node"]: b for b in data(three, "/brokers/")}[node]
    assert strip_times(broker) == strip_times({k: v for k, v in listed.items() if k != "node"})


@pytest.mark.parametrize("node", NODES3)
def test_get_node_each_node(three, node):
    assert data(three, f"/nodes/{node}")["name"] == node


@pytest.mark.parametrize("node", NODES3)
def test_lookup_node_stats_matches_cluster_list(three, node):
    listed = {s["node"]: s for s in data(three, "/stats/")}[node]
    assert data(three, f"/nodes/{node}/stats/") == {
        k: v for k, v in listed.items() if k != "node"}


@pytest.mark.parametrize("node", NODES3)
@pytest.mark.parametrize(("cluster_path", "field", "node_path"), [
    ("/metrics/", "metrics", "/nodes/{node}/metrics/"),
    ("/listeners/", "listeners", "/nodes/{node}/listeners"),
    ("/alarms/", "alarms", "/alarms/{node}"),
    ("/plugins/", "plugins", "/nodes/{node}/plugins/"),
], ids=["metrics", "listeners", "alarms", "plugins"])
def test_list_node_matches_cluster_list(three, cluster_path, field, node_path, node):
    listed = {e["node"]: e[field] for e in data(three, cluster_path)}[node]
    assert data(three, node_path.format(node=node)) == listed


@pytest.mark.parametrize("kind", SCOPED_LISTS)
def test_lookup_on_owning_node_and_elsewhere(three, kind):
    item = data(three, f"/nodes/{NODES3[1]}/{kind}/")[0]
    client_id, owner = item["client_id"], item["node"]
    cluster = data(three, f"/{kind}/{client_id}")
    assert cluster == data(three, f"/nodes/{owner}/{kind}/{client_id}")
    assert cluster and {i["node"] for i in cluster} == {owner}
    for other in NODES3:
        if other != owner:
            assert data(three, f"/nodes/{other}/{kind}/{client_id}") == []


def test_routes_cover_every_node(three):
    assert {r["node"] for r in data(three, "/routes/")} == set(NODES3)


def test_doc_clients_only_on_first_node(three):
    assert [c["node"] for c in data(three, "/connections/emqx-api-test:v1")] == [NODE]
    assert data(three, f"/nodes/{NODES3[2]}/connections/emqx-api-test:v1") == []


# ---------------------------------------------------------------------------
# One node: cluster and node-scoped answers are byte-identical
# ---------------------------------------------------------------------------


def _assert_byte_identical(client, auth, kind, rest):
    cluster = client.get(f"{API}/{kind}/{rest}", auth=auth)
    scoped = client.get(f"{API}/nodes/{NODE}/{kind}/{rest}", auth=auth)
    assert cluster.status_code == scoped.status_code == 200
    assert cluster.data == scoped.data


@pytest.mark.parametrize("query", ["", "?_page=1&_limit=100", "?_page=2&_limit=7"])
@pytest.mark.parametrize("kind", SCOPED_LISTS)
def test_one_node_list_byte_identical(client, auth, kind, query):
    _assert_byte_identical(client, auth, kind, query)


@pytest.mark.parametrize("client_id", ["emqx-api-test:v1", "mqttjs_406e3f9a", "nobody"])
@pytest.mark.parametrize("kind", SCOPED_LISTS)
def test_one_node_lookup_byte_identical(client, auth, kind, client_id):
    _assert_byte_identical(client, auth, kind, client_id)


# ---------------------------------------------------------------------------
# Unknown nodes
# ---------------------------------------------------------------------------

NODE_SCOPED = [
    "/brokers/{n}", "/nodes/{n}", "/nodes/{n}/connections/", "/nodes/{n}/connections/x1",
    "/nodes/{n}/sessions/", "/nodes/{n}/sessions/x1", "/nodes/{n}/subscriptions/",
    "/nodes/{n}/subscriptions/x1", "/nodes/{n}/listeners", "/nodes/{n}/metrics/",
    "/nodes/{n}/stats/", "/alarms/{n}", "/nodes/{n}/plugins/", "/nodes/{n}/configs/",
    "/nodes/{n}/plugin_configs/emqx_retainer",
]


@pytest.mark.parametrize("template", NODE_SCOPED)
def test_unknown_node_is_json_404(client, auth, template):
    for node in ("emqx@10.9.9.9", "emqx@127.0.0.2", "nonode", "emqx%40nowhere"):
        response = client.get(API + template.format(n=node), auth=auth)
        assert response.status_code == 404, node
        assert response.mimetype == "application/json", node
        body = response.get_json()
        assert list(body) == ["code", "message"], node
        assert body["code"] == 404, node


@pytest.mark.parametrize("plugin", ["emqx_nope", "not_a_plugin"])
def test_get_plugin_configs_unknown_plugin_is_json_404(client, auth, plugin):
    response = client.get(f"{API}/nodes/{NODE}/plugin_configs/{plugin}", auth=auth)
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


def test_unknown_node_on_three_node_cluster(three, auth):
    response = three.get(f"{API}/nodes/emqx@127.0.0.4/stats/", auth=auth)
    assert response.status_code == 404
    assert response.get_json()["code"] == 404
