"""Every read route: the documented key set, JSON types and (where it matters) key order."""

import json

import pytest

from conftest import call_ok
from conftest import data
from conftest import get_json
from conftest import no_duplicates
from conftest import NODE

pytestmark = pytest.mark.usefixtures("fast_hash")

API = "/api/v3"

CONNECTION = {
    "clean_start": bool, "client_id": str, "connected_at": str, "ipaddress": str,
    "is_bridge": bool, "is_super": bool, "keepalive": int, "mountpoint": str, "node": str,
    "peercert": str, "port": int, "proto_name": str, "proto_ver": int, "username": str,
    "will_topic": str, "zone": str,
    # Behaviour sheet 6.3: the 12 integers 3.0.1 adds once a connection's stats timer ran.
    "heap_size": int, "mailbox_len": int, "reductions": int, "recv_cnt": int, "recv_msg": int,
    "recv_oct": int, "recv_pkt": int, "send_cnt": int, "send_msg": int, "send_oct": int,
    "send_pend": int, "send_pkt": int,
}
SESSION = {
    "awaiting_rel_len": int, "binding": str, "clean_start": bool, "client_id": str,
    "created_at": str, "deliver_msg": int, "enqueue_msg": int, "expiry_interval": int,
    "heap_size": int, "inflight_len": int, "mailbox_len": int, "max_awaiting_rel": int,
    "max_inflight": int, "max_mqueue": int, "max_subscriptions": int, "mqueue_dropped": int,
    "mqueue_len": int, "node": str, "reductions": int, "subscriptions_count": int,
    "username": str,
}
SUBSCRIPTION = {"client_id": str, "node": str, "qos": int, "topic": str}
ROUTE = {"node": str, "topic": str}
BROKER = {"datetime": str, "node": str, "node_status": str, "otp_release": str,
          "sysdescr": str, "uptime": str, "version": str}
BROKER_LOOKUP = {k: v for k, v in BROKER.items() if k != "node"}
NODE_LIST = {
    "connections": int, "load1": str, "load15": str, "load5": str, "max_fds": int,
    "memory_total": (str, int), "memory_used": (str, int), "name": str, "node": str,
    "node_status": str, "otp_release": str, "process_available": int, "process_used": int,
    "uptime": str, "version": str,
}
NODE_LOOKUP = {**{k: v for k, v in NODE_LIST.items() if k != "node"},
               "memory_total": int, "memory_used": int}
LISTENER = {"acceptors": int, "current_conns": int, "listen_on": str, "max_conns": int,
            "protocol": str, "shutdown_count": (list, dict)}
ALARM = {"id": str, "severity": str, "summary": str, "timestamp": str, "title": str}
BANNED = {"as": str, "by": object, "desc": object, "reason": object, "until": (int, str),
          "who": str}
PLUGIN = {"name": str, "version": str, "description": str, "active": bool}
CONFIG = {"key": str, "value": (str, dict, list), "datatpye": str, "app": str}
PLUGIN_CONFIG = {"key": str, "value": str, "desc": str, "required": bool}

METRIC_KEYS = {
    "bytes/received", "bytes/sent",
    "packets/received", "packets/sent", "packets/connect", "packets/connack",
    "packets/publish/received", "packets/publish/sent", "packets/puback/received",
    "packets/puback/sent", "packets/puback/missed", "packets/pubrec/received",
    "packets/pubrec/sent", "packets/pubrec/missed", "packets/pubrel/received",
    "packets/pubrel/sent", "packets/pubrel/missed", "packets/pubcomp/received",
    "packets/pubcomp/sent", "packets/pubcomp/missed", "packets/subscribe", "packets/suback",
    "packets/unsubscribe", "packets/unsuback", "packets/pingreq", "packets/pingresp",
    "packets/disconnect/received", "packets/disconnect/sent", "packets/auth",
    "messages/received", "messages/sent", "messages/qos0/received", "messages/qos0/sent",
    "messages/qos1/received", "messages/qos1/sent", "messages/qos2/received",
    "messages/qos2/expired", "messages/qos2/sent", "messages/qos2/dropped",
    "messages/retained", "messages/dropped", "messages/expired", "messages/forward",
}
STATS_KEYS = {
    "connections/count", "connections/max", "sessions/count", "sessions/max",
    "sessions/persistent/count", "sessions/persistent/max", "topics/count", "topics/max",
    "subscribers/count", "subscribers/max", "subscriptions/count", "subscriptions/max",
    "subscriptions/shared/count", "subscriptions/shared/max", "routes/count", "routes/max",
    "retained/count", "retained/max",
}

# The document's listeners, in its order; acceptors and max_conns as the shipped confs set
# them (the doc's 10240000 for 11883 is a sample typo, behaviour sheet section 9 item 11).
DOC_LISTENERS = [
    ("mqtt:ssl", "8883", 16, 102400),
    ("mqtt:tcp", "0.0.0.0:1883", 8, 1024000),
    ("mqtt:tcp", "127.0.0.1:11883", 4, 1024000),
    ("http:dashboard", "18083", 4, 512),
    ("http:management", "8080", 2, 512),
    ("mqtt:ws", "8083", 4, 102400),
    ("mqtt:wss", "8084", 4, 16),
]

# The document's 22 plugins: (name, description, active).
DOC_PLUGINS = [
    ("emqx_auth_clientid", "EMQ X Authentication with ClientId/Password", False),
    ("emqx_auth_http", "EMQ X Authentication/ACL with HTTP API", False),
    ("emqx_auth_jwt", "EMQ X Authentication with JWT", False),
    ("emqx_auth_ldap", "EMQ X Authentication/ACL with LDAP", False),
    ("emqx_auth_mongo", "EMQ X Authentication/ACL with MongoDB", False),
    ("emqx_auth_mysql", "EMQ X Authentication/ACL with MySQL", False),
    ("emqx_auth_pgsql", "EMQ X Authentication/ACL with PostgreSQL", False),
    ("emqx_auth_redis", "EMQ X Authentication/ACL with Redis", False),
    ("emqx_auth_username", "EMQ X Authentication with Username/Password", False),
    ("emqx_coap", "EMQ X CoAP Gateway", False),
    ("emqx_dashboard", "EMQ X Web Dashboard", True),
    ("emqx_delayed_publish", "EMQ X Delayed Publish", True),
    ("emqx_lwm2m", "EMQ X LwM2M Gateway", False),
    ("emqx_management", "EMQ X Management API and CLI", True),
    ("emqx_plugin_template", "EMQ X Plugin Template", False),
    ("emqx_recon", "EMQ X Recon Plugin", True),
    ("emqx_reloader", "EMQ X Reloader Plugin", False),
    ("emqx_retainer", "EMQ X Retainer", True),
    ("emqx_sn", "EMQ X MQTT-SN Gateway", False),
    ("emqx_statsd", "Statsd for EMQ X", False),
    ("emqx_stomp", "EMQ X Stomp Protocol Plugin", False),
    ("emqx_web_hook", "EMQ X Webhook Plugin", False),
]


def assert_shape(obj, schema):
    """`obj` has exactly the schema's keys, each value of the schema's JSON type."""
    assert isinstance(obj, dict), obj
    assert set(obj) == set(schema), (sorted(set(obj) ^ set(schema)), obj)
    for key, kinds in schema.items():
        if kinds is object:
            continue
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        # bool is a subclass of int in Python, not in JSON: compare exact types.
        assert type(obj[key]) in kinds, (key, obj[key], kinds)


def shaped_items(client, path, schema):
    """The list at API + `path`: not empty, every item of the schema's shape."""
    items = data(client, path)
    assert items
    for item in items:
        assert_shape(item, schema)
    return items


# ---------------------------------------------------------------------------
# Connections, sessions, subscriptions, routes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/connections/", f"/nodes/{NODE}/connections/",
                                  "/connections/emqx-api-test:v1",
                                  f"/nodes/{NODE}/connections/emqx-api-test:v1"])
def test_connection_objects_have_28_documented_keys(client, path):
    for item in shaped_items(client, path, CONNECTION):
        assert len(item) == 28
        assert item["will_topic"] == "undefined"


@pytest.mark.parametrize("kind", ["connections", "sessions"])
def test_list_keys_alphabetical(client, kind):
    for item in data(client, f"/{kind}/"):
        assert list(item) == sorted(item)


def test_list_connections_proto_fields(client):
    for item in data(client, "/connections/"):
        assert item["proto_ver"] in (3, 4, 5)
        assert item["proto_name"] == ("MQIsdp" if item["proto_ver"] == 3 else "MQTT")
        assert item["peercert"] == "nossl"
        assert item["zone"] in ("external", "internal")


@pytest.mark.parametrize("path", ["/sessions/", f"/nodes/{NODE}/sessions/",
                                  "/sessions/emqx-api-test:v1",
                                  f"/nodes/{NODE}/sessions/emqx-api-test:v1"])
def test_session_objects_have_21_documented_keys(client, path):
    for item in shaped_items(client, path, SESSION):
        assert len(item) == 21
        assert item["binding"] == "local"


def test_list_sessions_defaults(client):
    for item in data(client, "/sessions/"):
        assert (item["max_awaiting_rel"], item["max_inflight"], item["max_mqueue"],
                item["max_subscriptions"]) == (100, 32, 1000, 0)
        assert item["expiry_interval"] == (0 if item["clean_start"] else 7200)


@pytest.mark.parametrize("path", ["/subscriptions/", f"/nodes/{NODE}/subscriptions/",
                                  "/subscriptions/emqx-api-test:v1",
                                  f"/nodes/{NODE}/subscriptions/emqx-api-test:v1"])
def test_subscription_objects_shape(client, path):
    for item in shaped_items(client, path, SUBSCRIPTION):
        assert list(item) == ["client_id", "node", "qos", "topic"]
        assert item["qos"] in (0, 1, 2)


@pytest.mark.parametrize("path", ["/routes/", "/routes/%2Ftest"])
def test_route_objects_shape(client, path):
    for item in shaped_items(client, path, ROUTE):
        assert list(item) == ["node", "topic"]


@pytest.mark.parametrize("path", ["/connections/nobody", "/sessions/nobody",
                                  "/subscriptions/nobody", f"/nodes/{NODE}/connections/nobody",
                                  f"/nodes/{NODE}/sessions/nobody",
                                  f"/nodes/{NODE}/subscriptions/nobody", "/routes/no%2Fsuch"])
def test_lookup_unknown_is_empty_list(client, path):
    assert get_json(client, API + path) == {"code": 0, "data": []}


# ---------------------------------------------------------------------------
# Brokers and nodes
# ---------------------------------------------------------------------------


def test_list_brokers_shape(client):
    items = data(client, "/brokers/")
    assert [b["node"] for b in items] == [NODE]
    for item in items:
        assert_shape(item, BROKER)
        assert list(item) == sorted(item)
        assert (item["node_status"], item["sysdescr"]) == ("Running", "EMQ X Broker")


def test_get_broker_shape_has_no_node(client):
    item = data(client, f"/brokers/{NODE}")
    assert_shape(item, BROKER_LOOKUP)
    assert list(item) == sorted(item)


def test_list_nodes_shape(client):
    items = data(client, "/nodes/")
    assert len(items) == 1
    for item in items:
        assert_shape(item, NODE_LIST)
        assert len(item) == 15
        assert item["name"] == item["node"] == NODE
        assert list(item) == sorted(item)


def test_list_nodes_memory_is_string(client):
    for item in data(client, "/nodes/"):
        assert isinstance(item["memory_total"], str)
        assert isinstance(item["memory_used"], str)


def test_get_node_shape_has_no_node_and_int_memory(client):
    item = data(client, f"/nodes/{NODE}")
    assert_shape(item, NODE_LOOKUP)
    assert len(item) == 14
    assert list(item) == sorted(item)
    assert item["name"] == NODE


# ---------------------------------------------------------------------------
# Listeners
# ---------------------------------------------------------------------------


def test_list_listeners_shape(client):
    items = data(client, "/listeners/")
    assert [list(i) for i in items] == [["listeners", "node"]]
    assert items[0]["node"] == NODE
    for listener in items[0]["listeners"]:
        assert_shape(listener, LISTENER)


def test_list_node_listeners_shape(client):
    for listener in data(client, f"/nodes/{NODE}/listeners"):
        assert_shape(listener, LISTENER)
        assert list(listener) == sorted(listener)


def test_list_node_listeners_documents_seven_in_order(client):
    listeners = data(client, f"/nodes/{NODE}/listeners")
    assert [(li["protocol"], li["listen_on"], li["acceptors"], li["max_conns"])
            for li in listeners] == DOC_LISTENERS


def test_list_node_listeners_shutdown_count_empty_list_or_object(client):
    for listener in data(client, f"/nodes/{NODE}/listeners"):
        shutdown = listener["shutdown_count"]
        if isinstance(shutdown, list):
            assert shutdown == []
        else:
            assert shutdown, "an empty shutdown_count is [] not {}"
            assert all(isinstance(k, str) and type(v) is int for k, v in shutdown.items())
        if listener["protocol"].startswith("http:"):
            assert shutdown == []


def test_list_listeners_matches_node_listeners(client):
    cluster = data(client, "/listeners/")
    assert cluster[0]["listeners"] == data(client, f"/nodes/{NODE}/listeners")


# ---------------------------------------------------------------------------
# Metrics and stats
# ---------------------------------------------------------------------------


def test_list_node_metrics_has_exactly_43_int_keys(client):
    metrics = data(client, f"/nodes/{NODE}/metrics/")
    assert set(metrics) == METRIC_KEYS
    assert len(metrics) == 43
    assert all(type(v) is int and v >= 0 for v in metrics.values())


def test_list_all_metrics_shape(client):
    items = data(client, "/metrics/")
    assert [list(i) for i in items] == [["node", "metrics"]]
    assert items[0]["node"] == NODE
    assert set(items[0]["metrics"]) == METRIC_KEYS
    assert items[0]["metrics"] == data(client, f"/nodes/{NODE}/metrics/")


def test_lookup_node_stats_has_18_int_keys(client):
    stats = data(client, f"/nodes/{NODE}/stats/")
    assert set(stats) == STATS_KEYS
    assert all(type(v) is int and v >= 0 for v in stats.values())


def test_list_stats_flattened_with_node_first(client):
    items = data(client, "/stats/")
    assert len(items) == 1
    item = items[0]
    assert list(item)[0] == "node"
    assert item["node"] == NODE
    assert set(item) == STATS_KEYS | {"node"}
    assert {k: v for k, v in item.items() if k != "node"} == data(
        client, f"/nodes/{NODE}/stats/")


# ---------------------------------------------------------------------------
# Alarms, plugins, banned
# ---------------------------------------------------------------------------


def test_list_all_alarms_shape(client):
    items = data(client, "/alarms/")
    assert [list(i) for i in items] == [["alarms", "node"]]
    assert items[0]["node"] == NODE
    for alarm in items[0]["alarms"]:
        assert_shape(alarm, ALARM)


def test_list_node_alarms_shape(client):
    alarms = data(client, f"/alarms/{NODE}")
    assert isinstance(alarms, list)
    for alarm in alarms:
        assert_shape(alarm, ALARM)
        assert list(alarm) == sorted(alarm)
        assert alarm["severity"] in ("notice", "warning", "error", "critical")
    assert alarms == data(client, "/alarms/")[0]["alarms"]


def test_list_all_plugins_shape(client):
    items = data(client, "/plugins/")
    assert [list(i) for i in items] == [["node", "plugins"]]
    assert items[0]["node"] == NODE
    assert items[0]["plugins"] == data(client, f"/nodes/{NODE}/plugins/")


def test_list_node_plugins_key_order(client):
    for plugin in data(client, f"/nodes/{NODE}/plugins/"):
        assert_shape(plugin, PLUGIN)
        assert list(plugin) == ["name", "version", "description", "active"]


def test_list_node_plugins_are_the_documents_22(client):
    plugins = data(client, f"/nodes/{NODE}/plugins/")
    assert [(p["name"], p["description"], p["active"]) for p in plugins] == DOC_PLUGINS
    assert {p["version"] for p in plugins} == {"3.0"}


def test_list_banned_shape(client):
    items = data(client, "/banned/")
    assert items
    for item in items:
        assert_shape(item, BANNED)
        assert list(item) == sorted(item)
        assert item["as"] in ("client_id", "username", "ip_address")
        assert type(item["until"]) is int or item["until"] == "undefined"


def test_list_banned_shows_seeded_ban_without_until(client):
    # Seeded: one ban of each kind; the username ban has no `until` and never expires
    # (behaviour sheet 5.13: "an entry without until never expires", `"undefined"` when omitted).
    items = data(client, "/banned/")
    assert {b["as"] for b in items} == {"client_id", "username", "ip_address"}
    assert [b["until"] for b in items if b["as"] == "username"] == ["undefined"]


# ---------------------------------------------------------------------------
# Apps, users, configs
# ---------------------------------------------------------------------------


def test_list_apps_has_no_secret(client):
    items = data(client, "/apps/")
    assert [a["app_id"] for a in items] == ["admin"]
    for item in items:
        assert list(item) == ["app_id", "name", "desc", "status", "expired"]


def test_lookup_app_has_secret(client):
    item = data(client, "/apps/admin")
    assert list(item) == ["app_id", "secret", "name", "desc", "status", "expired"]
    assert (item["app_id"], item["secret"], item["status"]) == ("admin", "public", True)
    assert item["expired"] == "undefined" or type(item["expired"]) is int


def test_lookup_app_unknown_is_empty_list(client):
    assert get_json(client, API + "/apps/no-such-app") == {"code": 0, "data": []}


def test_list_users_default_admin(client):
    assert get_json(client, API + "/users/") == {
        "code": 0, "data": [{"username": "admin", "tags": "administrator"}]}


def test_get_all_configs_seeded_lists_are_empty(client):
    # Behaviour sheet 5.14: stock 3.0.x registers no config keys, so both lists are empty
    # until a PUT /configs/:app sets one (which is why the shape tests below set two first).
    assert data(client, "/configs/") == [{"config": [], "node": NODE}]
    assert data(client, f"/nodes/{NODE}/configs/") == []


def _set_two_configs(client):
    call_ok(client, "PUT", "/configs/emqx", {"key": "mqtt.max_packet_size", "value": "2MB"})
    call_ok(client, "PUT", f"/nodes/{NODE}/configs/emqx_retainer",
            {"key": "retainer.expiry_interval", "value": "60"})


def test_get_all_configs_cluster_shape(client):
    _set_two_configs(client)
    items = data(client, "/configs/")
    assert [list(i) for i in items] == [["config", "node"]]
    assert items[0]["node"] == NODE
    assert len(items[0]["config"]) == 2
    assert items[0]["config"] == data(client, f"/nodes/{NODE}/configs/")


def test_get_all_configs_node_items_shape(client):
    _set_two_configs(client)
    items = data(client, f"/nodes/{NODE}/configs/")
    assert {(i["key"], i["value"], i["app"]) for i in items} == {
        ("mqtt.max_packet_size", "2MB", "emqx"),
        ("retainer.expiry_interval", "60", "emqx_retainer")}
    for item in items:
        assert_shape(item, CONFIG)
        assert list(item) == ["key", "value", "datatpye", "app"]


@pytest.mark.parametrize("plugin", ["emqx_retainer", "emqx_management", "emqx_dashboard"])
def test_get_plugin_configs_item_key_order(client, plugin):
    items = data(client, f"/nodes/{NODE}/plugin_configs/{plugin}")
    assert items
    for item in items:
        assert_shape(item, PLUGIN_CONFIG)
        assert list(item) == ["key", "value", "desc", "required"]
        assert item["key"].startswith(plugin.split("_", 1)[1] + ".")


def test_get_plugin_configs_retainer_keys(client):
    items = data(client, f"/nodes/{NODE}/plugin_configs/emqx_retainer")
    assert {i["key"] for i in items} == {
        "retainer.storage_type", "retainer.max_retained_messages", "retainer.max_payload_size",
        "retainer.expiry_interval"}


@pytest.mark.parametrize("plugin", ["emqx_management", "emqx_dashboard", "emqx_auth_username"])
def test_get_plugin_configs_set_items_first(client, plugin):
    # Behaviour sheet 5.14: items present in the conf come first, then the unset schema keys.
    required = [i["required"] for i in data(client, f"/nodes/{NODE}/plugin_configs/{plugin}")]
    assert required == sorted(required, reverse=True)


def test_get_plugin_configs_unset_value_is_empty_string(client):
    for item in data(client, f"/nodes/{NODE}/plugin_configs/emqx_management"):
        if not item["required"]:
            assert item["value"] == ""


@pytest.mark.parametrize("plugin", ["emqx_plugin_template", "emqx_delayed_publish"])
def test_get_plugin_configs_plugin_without_schema_is_empty(client, plugin):
    # 3.0.1: the template ships no schema; delayed_publish's conf and schema are empty.
    assert get_json(client, f"{API}/nodes/{NODE}/plugin_configs/{plugin}") == {
        "code": 0, "data": []}


def test_get_plugin_configs_as_shipped_in_3_0_1(client):
    """Spot checks read from the plugins' own files at v3.0.1: every plugin with a schema
    answers its keys (the dashboard shows no "No Default Configuration" for them)."""
    def answer(plugin):
        return {i["key"]: i for i in data(client, f"/nodes/{NODE}/plugin_configs/{plugin}")}

    plugins = [p["name"] for p in data(client, f"/nodes/{NODE}/plugins/")]
    empty = sorted(p for p in plugins if not answer(p))
    assert empty == ["emqx_delayed_publish", "emqx_plugin_template"]
    username = answer("emqx_auth_username")
    assert username["auth.user.password_hash"]["value"] == "sha256"
    assert username["auth.user.$id.username"] == {
        "key": "auth.user.$id.username", "value": "", "desc": "", "required": False}
    assert answer("emqx_recon")["recon.gc_interval"]["desc"] == "Global GC Interval{@configurable}"
    assert answer("emqx_management")["management.listener.http"]["value"] == "8080"
    assert answer("emqx_dashboard")["dashboard.listener.http"]["value"] == "18083"
    assert answer("emqx_coap")["coap.port"]["value"] == "5683"


# ---------------------------------------------------------------------------
# Envelopes
# ---------------------------------------------------------------------------

READ_PATHS = [
    "/brokers/", f"/brokers/{NODE}", "/nodes/", f"/nodes/{NODE}", "/connections/",
    f"/nodes/{NODE}/connections/", "/connections/emqx-api-test:v1",
    f"/nodes/{NODE}/connections/emqx-api-test:v1", "/sessions/", f"/nodes/{NODE}/sessions/",
    "/sessions/emqx-api-test:v1", f"/nodes/{NODE}/sessions/emqx-api-test:v1",
    "/subscriptions/", f"/nodes/{NODE}/subscriptions/", "/subscriptions/emqx-api-test:v1",
    f"/nodes/{NODE}/subscriptions/emqx-api-test:v1", "/routes/", "/routes/%2Ftest",
    "/listeners/", f"/nodes/{NODE}/listeners", "/metrics/", f"/nodes/{NODE}/metrics/",
    "/stats/", f"/nodes/{NODE}/stats/", "/alarms/", f"/alarms/{NODE}", "/plugins/",
    f"/nodes/{NODE}/plugins/", "/banned/", "/apps/", "/apps/admin", "/users/", "/configs/",
    f"/nodes/{NODE}/configs/", f"/nodes/{NODE}/plugin_configs/emqx_retainer",
]
PAGINATED = {"/connections/", f"/nodes/{NODE}/connections/", "/sessions/",
             f"/nodes/{NODE}/sessions/", "/subscriptions/", f"/nodes/{NODE}/subscriptions/",
             "/routes/", "/banned/"}


@pytest.mark.parametrize("path", READ_PATHS)
def test_read_route_envelope_key_order_compact(client, auth, path):
    response = client.get(API + path, auth=auth)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    raw = response.get_data(as_text=True).rstrip("\n")
    body = json.loads(raw, object_pairs_hook=no_duplicates)
    if path in PAGINATED:
        assert list(body) == ["code", "data", "meta"]
        assert list(body["meta"]) == ["page", "limit", "count"]
        assert raw.startswith('{"code":0,"data":[')
    else:
        assert list(body) == ["code", "data"]
        assert raw.startswith('{"code":0,"data":')
    # Compact JSON, as the broker's encoder writes it.
    assert "\n" not in raw
    assert '": ' not in raw.replace('\\"', "")
