"""GET /api/v3/: the document's route catalogue, and a URL rule behind every entry."""

import re

import pytest

from conftest import get_json
from conftest import request_json

pytestmark = pytest.mark.usefixtures("fast_hash")

# The published document's listing, verbatim (55 entries, its order, its words).
DOC_CATALOGUE = [
    ("list_brokers", "GET", "/brokers/", "A list of brokers in the cluster"),
    ("list_connections", "GET", "/connections/", "A list of connections in the cluster"),
    ("list_node_connections", "GET", "nodes/:node/connections/",
     "A list of connections on a node"),
    ("list_listeners", "GET", "/listeners/", "A list of listeners in the cluster"),
    ("list_node_listeners", "GET", "/nodes/:node/listeners", "A list of listeners on the node"),
    ("list_node_metrics", "GET", "/nodes/:node/metrics/", "A list of metrics of a node"),
    ("list_all_metrics", "GET", "/metrics/", "A list of metrics of all nodes in the cluster"),
    ("list_nodes", "GET", "/nodes/", "A list of nodes in the cluster"),
    ("list_sessions", "GET", "/sessions/", "A list of sessions in the cluster"),
    ("list_node_sessions", "GET", "nodes/:node/sessions/", "A list of sessions on a node"),
    ("lookup_node_stats", "GET", "/nodes/:node/stats/", "A list of stats of a node"),
    ("list_stats", "GET", "/stats/", "A list of stats of all nodes in the cluster"),
    ("list_subscriptions", "GET", "/subscriptions/", "A list of subscriptions in the cluster"),
    ("lookup_client_subscriptions", "GET", "/subscriptions/:clientid",
     "A list of subscriptions of a client"),
    ("lookup_client_subscriptions_with_node", "GET", "/nodes/:node/subscriptions/:clientid",
     "A list of subscriptions of a client on the node"),
    ("list_node_subscriptions", "GET", "/nodes/:node/subscriptions/",
     "A list of subscriptions on a node"),
    ("add_app", "POST", "/apps/", "Add Application"),
    ("auth_user", "POST", "/auth", "Authenticate an user"),
    ("change_pwd", "PUT", "/change_pwd/:username", "Change password for an user"),
    ("clean_acl_cache", "DELETE", "/connections/:clientid/acl/:topic",
     "Clean ACL cache of a connection"),
    ("create_user", "POST", "/users/", "Create an user"),
    ("create_banned", "POST", "/banned/", "Create banned"),
    ("del_app", "DELETE", "/apps/:appid", "Delete Application"),
    ("delete_user", "DELETE", "/users/:name", "Delete an user"),
    ("delete_banned", "DELETE", "/banned/:who", "Delete banned"),
    ("get_all_configs", "GET", "/configs/", "Get all configs"),
    ("get_all_configs", "GET", "/nodes/:node/configs/", "Get all configs of a node"),
    ("get_broker", "GET", "/brokers/:node", "Get broker info of a node"),
    ("get_plugin_configs", "GET", "/nodes/:node/plugin_configs/:plugin",
     "Get configurations of a plugin on the node"),
    ("kickout_connection", "DELETE", "/connections/:clientid", "Kick out a connection"),
    ("list_apps", "GET", "/apps/", "List Applications"),
    ("list_node_alarms", "GET", "/alarms/:node", "List alarms of a node"),
    ("list_all_alarms", "GET", "/alarms/", "List all alarms"),
    ("list_all_plugins", "GET", "/plugins/", "List all plugins in the cluster"),
    ("list_node_plugins", "GET", "/nodes/:node/plugins/", "List all plugins on a node"),
    ("list_banned", "GET", "/banned/", "List banned"),
    ("list_routes", "GET", "/routes/", "List routes"),
    ("list_users", "GET", "/users/", "List users"),
    ("load_plugin", "PUT", "/nodes/:node/plugins/:plugin/load", "Load a plugin"),
    ("lookup_app", "GET", "/apps/:appid", "Lookup Application"),
    ("lookup_connections", "GET", "/connections/:clientid", "Lookup a connection in the cluster"),
    ("lookup_node_connections", "GET", "nodes/:node/connections/:clientid",
     "Lookup a connection on node"),
    ("get_node", "GET", "/nodes/:node", "Lookup a node in the cluster"),
    ("lookup_session", "GET", "/sessions/:clientid", "Lookup a session in the cluster"),
    ("lookup_node_session", "GET", "nodes/:node/sessions/:clientid",
     "Lookup a session on the node"),
    ("lookup_routes", "GET", "/routes/:topic", "Lookup routes to a topic"),
    ("mqtt_publish", "POST", "/mqtt/publish", "Publish a MQTT message"),
    ("mqtt_subscribe", "POST", "/mqtt/subscribe", "Subscribe a topic"),
    ("unload_plugin", "PUT", "/nodes/:node/plugins/:plugin/unload", "Unload a plugin"),
    ("mqtt_unsubscribe", "POST", "/mqtt/unsubscribe", "Unsubscribe a topic"),
    ("update_app", "PUT", "/apps/:appid", "Update Application"),
    ("update_user", "PUT", "/users/:name", "Update an user"),
    ("update_config", "PUT", "/configs/:app", "Update config of an application in the cluster"),
    ("update_node_config", "PUT", "/nodes/:node/configs/:app",
     "Update config of an application on a node"),
    ("update_plugin_configs", "PUT", "/nodes/:node/plugin_configs/:plugin",
     "Update configurations of a plugin on the node"),
]


def _normalise(path):
    """`/api/v3/nodes/<seg:node>/stats/` and `/nodes/:node/stats/` -> `nodes/:node/stats`."""
    path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r":\1", path)
    if path.startswith("/api/v3"):
        path = path[len("/api/v3"):]
    return path.strip("/")


def test_list_api_matches_document(client):
    """The document's 55 entries exactly (so no /_standin control among them), also after
    the controls have been used."""
    expected = {
        "code": 0,
        "data": [{"name": n, "method": m, "path": p, "descr": d} for n, m, p, d in DOC_CATALOGUE],
    }
    assert len(DOC_CATALOGUE) == 55
    assert get_json(client, "/api/v3/") == expected
    request_json(client, "PUT", "/_standin/faults", {"latency_ms": 0})
    request_json(client, "POST", "/_standin/clients", {"client_id": "cat-check"})
    assert get_json(client, "/api/v3/") == expected


def test_list_api_entry_key_order(client):
    for entry in get_json(client, "/api/v3/")["data"]:
        assert list(entry) == ["name", "method", "path", "descr"]


def test_list_api_envelope_key_order(client, auth):
    raw = client.get("/api/v3/", auth=auth).get_data(as_text=True)
    assert raw.startswith('{"code":0,"data":[{"name":"list_brokers",')


def test_list_api_without_trailing_slash(client):
    assert get_json(client, "/api/v3") == get_json(client, "/api/v3/")


@pytest.mark.parametrize(("name", "method", "path"), [(n, m, p) for n, m, p, _ in DOC_CATALOGUE],
                         ids=[f"{m}-{p}" for _, m, p, _ in DOC_CATALOGUE])
def test_url_map_has_rule_for_catalogue_entry(app, name, method, path):
    rules = [r for r in app.url_map.iter_rules() if _normalise(r.rule) == _normalise(path)]
    assert rules, f"no URL rule for {path}"
    assert any(method in r.methods for r in rules), (
        f"{path}: rules allow {sorted(set().union(*(r.methods for r in rules)))}, not {method}")
