"""PUT /nodes/:node/plugins/:plugin/load|unload, seen through the plugin lists and the
retainer's effect on retained publishes."""

import pytest

from conftest import API
from conftest import AUTH
from conftest import call
from conftest import get_json
from conftest import NODE


def put(c, path):
    return call(c, "PUT", path)


def node_plugins(c, node=NODE):
    return {p["name"]: p for p in get_json(c, f"{API}/nodes/{node}/plugins/")["data"]}


def cluster_plugins(c):
    return {e["node"]: {p["name"]: p for p in e["plugins"]}
            for e in get_json(c, f"{API}/plugins/")["data"]}


@pytest.fixture
def c(make_app):
    return make_app(clients=5)


def test_unload_and_load_flip_active_in_both_lists(c):
    before = node_plugins(c)
    assert before["emqx_retainer"]["active"] is True

    assert put(c, f"/nodes/{NODE}/plugins/emqx_retainer/unload") == {"code": 0}
    after = node_plugins(c)
    assert after["emqx_retainer"] == {**before["emqx_retainer"], "active": False}
    assert {k: v for k, v in after.items() if k != "emqx_retainer"} == {
        k: v for k, v in before.items() if k != "emqx_retainer"}
    assert list(after) == list(before)  # same plugins, same order
    assert cluster_plugins(c)[NODE]["emqx_retainer"]["active"] is False

    assert put(c, f"/nodes/{NODE}/plugins/emqx_retainer/unload") == {
        "code": 102, "message": "not_started"}
    assert node_plugins(c) == after

    assert put(c, f"/nodes/{NODE}/plugins/emqx_retainer/load") == {"code": 0}
    assert node_plugins(c) == before
    assert cluster_plugins(c)[NODE]["emqx_retainer"]["active"] is True
    assert put(c, f"/nodes/{NODE}/plugins/emqx_retainer/load") == {
        "code": 102, "message": "already_started"}
    assert node_plugins(c) == before


def test_load_an_inactive_plugin(c):
    before = node_plugins(c)
    assert before["emqx_web_hook"]["active"] is False
    assert put(c, f"/nodes/{NODE}/plugins/emqx_web_hook/unload") == {
        "code": 102, "message": "not_started"}
    assert put(c, f"/nodes/{NODE}/plugins/emqx_web_hook/load") == {"code": 0}
    assert node_plugins(c)["emqx_web_hook"]["active"] is True
    assert cluster_plugins(c)[NODE]["emqx_web_hook"]["active"] is True


def test_unknown_plugin_is_not_found_and_changes_nothing(c):
    before = get_json(c, f"{API}/plugins/")
    for action in ("load", "unload"):
        assert put(c, f"/nodes/{NODE}/plugins/emqx_nonexistent/{action}") == {
            "code": 102, "message": "not_found"}
    assert get_json(c, f"{API}/plugins/") == before


def test_unknown_node_is_json_404(c):
    r = c.put(f"{API}/nodes/emqx@10.9.9.9/plugins/emqx_retainer/unload", auth=AUTH)
    assert r.status_code == 404
    assert r.get_json()["code"] == 404


def test_documented_plugin_sequence(c):
    """emqx_mgmt_api_SUITE plugins: unload, check inactive; load, check active everywhere."""
    assert put(c, f"/nodes/{NODE}/plugins/emqx_retainer/unload") == {"code": 0}
    assert node_plugins(c)["emqx_retainer"]["active"] is False
    assert put(c, f"/nodes/{NODE}/plugins/emqx_retainer/load") == {"code": 0}
    cluster = get_json(c, f"{API}/plugins/")["data"]
    assert [e["node"] for e in cluster] == [NODE]
    node_list = get_json(c, f"{API}/nodes/{NODE}/plugins/")["data"]
    assert cluster[0]["plugins"] == node_list
    assert next(p for p in node_list if p["name"] == "emqx_retainer")["active"] is True


def test_plugin_state_is_per_node(make_app):
    c = make_app(nodes=2, clients=2)
    n2 = "emqx@127.0.0.2"
    assert put(c, f"/nodes/{n2}/plugins/emqx_recon/unload") == {"code": 0}
    assert node_plugins(c, n2)["emqx_recon"]["active"] is False
    assert node_plugins(c, NODE)["emqx_recon"]["active"] is True
    cluster = cluster_plugins(c)
    assert cluster[n2]["emqx_recon"]["active"] is False
    assert cluster[NODE]["emqx_recon"]["active"] is True
    assert put(c, f"/nodes/{NODE}/plugins/emqx_recon/load") == {
        "code": 102, "message": "already_started"}


def test_retained_messages_are_stored_only_while_the_retainer_runs(c):
    def retained():
        s = get_json(c, f"{API}/nodes/{NODE}/stats/")["data"]["retained/count"]
        m = get_json(c, f"{API}/nodes/{NODE}/metrics/")["data"]["messages/retained"]
        assert s == m
        return s

    n0 = retained()
    assert put(c, f"/nodes/{NODE}/plugins/emqx_retainer/unload") == {"code": 0}
    r = c.post(f"{API}/mqtt/publish", auth=AUTH,
               json={"topic": "zpl/t", "payload": "x", "retain": True})
    assert r.get_json() == {"code": 0}
    assert retained() == n0
    assert put(c, f"/nodes/{NODE}/plugins/emqx_retainer/load") == {"code": 0}
    r = c.post(f"{API}/mqtt/publish", auth=AUTH,
               json={"topic": "zpl/t", "payload": "x", "retain": True})
    assert r.get_json() == {"code": 0}
    assert retained() == n0 + 1
