"""PUT /configs/:app, PUT /nodes/:node/configs/:app and PUT /nodes/:node/plugin_configs/:plugin,
seen through the matching GETs."""

import pytest

from conftest import API
from conftest import AUTH
from conftest import call
from conftest import get_json
from conftest import NODE

NODE2 = "emqx@127.0.0.2"
RETAINER = {"retainer.expiry_interval": "100", "retainer.max_payload_size": "2MB",
            "retainer.max_retained_messages": "100", "retainer.storage_type": "ram"}


def put(c, path, body=None, **kw):
    return call(c, "PUT", path, body, **kw)


def node_configs(c, node=NODE):
    return get_json(c, f"{API}/nodes/{node}/configs/")["data"]


def cluster_configs(c):
    return {e["node"]: e["config"] for e in get_json(c, f"{API}/configs/")["data"]}


def plugin_configs(c, plugin="emqx_retainer", node=NODE):
    return get_json(c, f"{API}/nodes/{node}/plugin_configs/{plugin}")["data"]


@pytest.fixture
def c(make_app):
    return make_app(nodes=2, clients=2)


def test_update_config_shows_on_every_node(c):
    assert put(c, "/configs/emqx", {"key": "mqtt.max_packet_size", "value": "2MB"}) == {
        "code": 0}
    for node in (NODE, NODE2):
        items = [i for i in node_configs(c, node) if i["key"] == "mqtt.max_packet_size"]
        assert len(items) == 1
        item = items[0]
        assert list(item) == ["key", "value", "datatpye", "app"]
        assert item["value"] == "2MB" and item["app"] == "emqx"
        assert isinstance(item["datatpye"], str)
        assert cluster_configs(c)[node] == node_configs(c, node)


def test_update_config_twice_replaces_the_value(c):
    assert put(c, "/configs/emqx", {"key": "zone.external.idle_timeout",
                                    "value": "15s"}) == {"code": 0}
    n0 = len(node_configs(c))
    assert put(c, "/configs/emqx", {"key": "zone.external.idle_timeout",
                                    "value": "30s"}) == {"code": 0}
    items = node_configs(c)
    assert len(items) == n0
    assert [i["value"] for i in items if i["key"] == "zone.external.idle_timeout"] == ["30s"]


def test_update_node_config_only_touches_that_node(c):
    before2 = node_configs(c, NODE2)
    assert put(c, f"/nodes/{NODE}/configs/emqx_retainer",
               {"key": "retainer.expiry_interval", "value": "60"}) == {"code": 0}
    items = [i for i in node_configs(c, NODE) if i["key"] == "retainer.expiry_interval"]
    assert [(i["value"], i["app"]) for i in items] == [("60", "emqx_retainer")]
    assert node_configs(c, NODE2) == before2
    assert cluster_configs(c) == {NODE: node_configs(c, NODE), NODE2: before2}


def test_same_key_under_two_apps_are_two_items(c):
    assert put(c, "/configs/emqx", {"key": "k", "value": "1"}) == {"code": 0}
    assert put(c, "/configs/emqx_retainer", {"key": "k", "value": "2"}) == {"code": 0}
    got = {(i["app"], i["value"]) for i in node_configs(c) if i["key"] == "k"}
    assert got == {("emqx", "1"), ("emqx_retainer", "2")}


def test_an_application_the_node_does_not_have_is_404_and_stores_nothing(c):
    before = node_configs(c)
    for path in ("/configs/no_such_app", f"/nodes/{NODE}/configs/no_such_app"):
        r = c.put(f"/api/v3{path}", json={"key": "k", "value": "1"}, auth=("admin", "public"))
        assert r.status_code == 404 and r.get_json() == {"code": 404, "message": "not found"}
    assert node_configs(c) == before


@pytest.mark.parametrize("body,code,name", [
    ({"value": "1"}, 107, "key"),
    ({"key": "k"}, 107, "value"),
    ({}, 107, "key"),
    ({"key": 5, "value": "1"}, 108, "key"),
    ({"key": "k", "value": 1}, 108, "value"),
    ({"key": "k", "value": {"a": 1}}, 108, "value"),
])
def test_update_config_bad_parameters_change_nothing(c, body, code, name):
    before = get_json(c, f"{API}/configs/")
    for path in ("/configs/emqx", f"/nodes/{NODE}/configs/emqx"):
        got = put(c, path, body)
        assert got["code"] == code and name in got["message"], got
    assert get_json(c, f"{API}/configs/") == before


def test_update_node_config_on_unknown_node_is_json_404(c):
    r = c.put(f"{API}/nodes/emqx@10.9.9.9/configs/emqx", auth=AUTH,
              json={"key": "k", "value": "v"})
    assert r.status_code == 404 and r.get_json()["code"] == 404


def test_documented_plugin_configs_sequence(c):
    """emqx_mgmt_api_SUITE configs: PUT the retainer set, GET shows it."""
    assert put(c, f"/nodes/{NODE}/plugin_configs/emqx_retainer", RETAINER) == {"code": 0}
    items = plugin_configs(c)
    assert {"key": "retainer.max_retained_messages", "value": "100"}.items() <= next(
        i for i in items if i["key"] == "retainer.max_retained_messages").items()
    got = {i["key"]: (i["value"], i["required"]) for i in items}
    assert got == {k: (v, True) for k, v in RETAINER.items()}
    for i in items:
        assert list(i) == ["key", "value", "desc", "required"]


def test_plugin_configs_are_replaced_by_exactly_the_submitted_keys(c):
    before = {i["key"]: i for i in plugin_configs(c)}
    assert before["retainer.storage_type"]["required"] is True
    new = {"retainer.max_retained_messages": "5", "retainer.custom_key": "x"}
    assert put(c, f"/nodes/{NODE}/plugin_configs/emqx_retainer", new) == {"code": 0}
    got = {i["key"]: (i["value"], i["required"]) for i in plugin_configs(c)}
    for key, value in new.items():
        assert got[key] == (value, True)
    for key in set(before) - set(new):
        assert got[key] == ("", False), key  # not submitted: no longer set
    # Items present come first.
    flags = [i["required"] for i in plugin_configs(c)]
    assert flags == sorted(flags, reverse=True)
    # Another node's set is untouched.
    assert {i["key"]: i["value"] for i in plugin_configs(c, node=NODE2)} == {
        k: i["value"] for k, i in before.items()}


@pytest.mark.parametrize("body", [
    {"retainer.max_retained_messages": 100},
    {"retainer.storage_type": "ram", "retainer.max_retained_messages": True},
    {"retainer.expiry_interval": None},
    {"retainer.storage_type": ["ram"]},
])
def test_plugin_configs_non_string_values_are_unknown_error(c, body):
    before = plugin_configs(c)
    assert put(c, f"/nodes/{NODE}/plugin_configs/emqx_retainer", body) == {
        "code": 102, "message": "unknown_error"}
    assert plugin_configs(c) == before


def test_plugin_configs_of_unknown_plugin_is_json_404(c):
    r = c.put(f"{API}/nodes/{NODE}/plugin_configs/emqx_nope", auth=AUTH,
              json={"a.b": "c"})
    assert r.status_code == 404 and r.get_json()["code"] == 404
