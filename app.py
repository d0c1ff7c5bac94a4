"""emqx-standin: a stateful stand-in for the EMQ X 3.0 management REST API (/api/v3/).

Every documented route answers as EMQ X 3.0.1 does (shapes, codes, odd spellings), from a
synthetic, deterministic cluster kept in SQLite (WAL), so any number of gunicorn workers see
the same state and every write shows in every later read.

Run:    gunicorn -w 2 -b 0.0.0.0:8080 app:app     (creates and seeds STANDIN_DB on first use)
        flask --app app init-db                   (the same, explicitly)
Settings (environment): STANDIN_DB, STANDIN_SEED, STANDIN_NODES, STANDIN_CLIENTS,
STANDIN_APP_ID, STANDIN_APP_SECRET, PORT.
"""

import base64
import hashlib
import hmac
import json
import os
import random
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from functools import wraps
from urllib.parse import unquote

import click
from flask import Flask
from flask import Response
from flask import g
from flask import request
from flask_httpauth import HTTPBasicAuth
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

app = Flask(__name__)
app.config.from_mapping(
    DATABASE=os.environ.get("STANDIN_DB", os.path.join(app.root_path, "standin.db")),
    SEED=int(os.environ.get("STANDIN_SEED", "42")),
    NODES=int(os.environ.get("STANDIN_NODES", "1")),
    CLIENTS=int(os.environ.get("STANDIN_CLIENTS", "50")),
    APP_ID=os.environ.get("STANDIN_APP_ID", "admin"),
    APP_SECRET=os.environ.get("STANDIN_APP_SECRET", "public"),
    MAX_ROW_LIMIT=10000,
    MAX_CONTENT_LENGTH=1024 * 1024,
)
app.json.sort_keys = False  # entity key order is built to match the broker's
app.json.ensure_ascii = False
app.json.compact = True
app.url_map.strict_slashes = False
app.url_map.merge_slashes = False

PASSWORD_METHOD = "pbkdf2:sha256:60000"
REALM = "minirest-server"

# The document's catalogue (GET /api/v3/): 55 entries, its order, its words.
CATALOGUE = [
    ("list_brokers", "GET", "/brokers/", "A list of brokers in the cluster"),
    ("list_connections", "GET", "/connections/", "A list of connections in the cluster"),
    ("list_node_connections", "GET", "nodes/:node/connections/", "A list of connections on a node"),
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
    ("lookup_node_session", "GET", "nodes/:node/sessions/:clientid", "Lookup a session on the node"),
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

RECEIVED_PACKETS = (
    "packets/connect", "packets/publish/received", "packets/puback/received",
    "packets/pubrec/received", "packets/pubrel/received", "packets/pubcomp/received",
    "packets/subscribe", "packets/unsubscribe", "packets/pingreq",
    "packets/disconnect/received", "packets/auth",
)
SENT_PACKETS = (
    "packets/connack", "packets/publish/sent", "packets/puback/sent", "packets/pubrec/sent",
    "packets/pubrel/sent", "packets/pubcomp/sent", "packets/suback", "packets/unsuback",
    "packets/pingresp", "packets/disconnect/sent",
)
METRIC_KEYS = (
    "bytes/received", "bytes/sent", "packets/received", "packets/sent",
    *RECEIVED_PACKETS, *SENT_PACKETS,
    "packets/puback/missed", "packets/pubrec/missed", "packets/pubrel/missed",
    "packets/pubcomp/missed",
    "messages/received", "messages/sent", "messages/qos0/received", "messages/qos0/sent",
    "messages/qos1/received", "messages/qos1/sent", "messages/qos2/received",
    "messages/qos2/expired", "messages/qos2/sent", "messages/qos2/dropped",
    "messages/retained", "messages/dropped", "messages/expired", "messages/forward",
)

STATS_KEYS = (
    ("connections/count", "connections_count"), ("connections/max", "connections_max"),
    ("sessions/count", "sessions_count"), ("sessions/max", "sessions_max"),
    ("sessions/persistent/count", "sessions_persistent_count"),
    ("sessions/persistent/max", "sessions_persistent_max"),
    ("topics/count", "topics_count"), ("topics/max", "topics_max"),
    ("subscribers/count", "subscriptions_count"), ("subscribers/max", "subscriptions_max"),
    ("subscriptions/count", "subscriptions_count"), ("subscriptions/max", "subscriptions_max"),
    ("subscriptions/shared/count", "subscriptions_shared_count"),
    ("subscriptions/shared/max", "subscriptions_shared_max"),
    ("routes/count", "routes_count"), ("routes/max", "routes_max"),
    ("retained/count", "retained_count"), ("retained/max", "retained_max"),
)

# (name, description, active) as the document lists them.
PLUGINS = (
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
)

# Plugin schemas: (key, value in the shipped .conf or None, schema doc).
PLUGIN_SCHEMAS = {
    "emqx_retainer": (
        ("retainer.storage_type", "ram", "Where to store the retained messages."),
        ("retainer.max_retained_messages", "0", "Maximum number of retained messages. 0 means no limit."),
        ("retainer.max_payload_size", "1MB", "Maximum retained message size."),
        ("retainer.expiry_interval", "0", "Expiry interval of the retained messages. Never expire if the value is 0."),
    ),
    "emqx_management": (
        ("management.max_row_limit", "10000", "Max Row Limit"),
        ("management.listener.http", "8080", "HTTP Listener"),
        ("management.listener.http.acceptors", "2", ""),
        ("management.listener.http.max_clients", "512", ""),
        ("management.listener.http.backlog", "512", ""),
        ("management.listener.http.send_timeout", "15s", ""),
        ("management.listener.http.send_timeout_close", "on", ""),
        ("management.listener.https", None, "HTTPS Listener"),
    ),
    "emqx_dashboard": (
        ("dashboard.default_user.login", "admin", "Default user's login name."),
        ("dashboard.default_user.password", "public", "Default user's password."),
        ("dashboard.listener.http", "18083", "HTTP Listener"),
        ("dashboard.listener.http.acceptors", "4", ""),
        ("dashboard.listener.http.max_clients", "512", ""),
        ("dashboard.listener.https", None, "HTTPS Listener"),
    ),
    "emqx_recon": (
        ("recon.gc_interval", "5m", "Garbage Collection: interval for all processes."),
    ),
    "emqx_auth_username": (
        ("auth.user.password_hash", "sha256", "Password hash."),
        ("auth.user.1.username", None, "Username"),
        ("auth.user.1.password", None, "Password"),
    ),
    "emqx_web_hook": (
        ("web.hook.api.url", "http://127.0.0.1:8080", "Webhook URL"),
        ("web.hook.rule.client.connected.1", '{"action": "on_client_connected"}', ""),
        ("web.hook.rule.client.disconnected.1", '{"action": "on_client_disconnected"}', ""),
        ("web.hook.rule.message.publish.1", '{"action": "on_message_publish"}', ""),
    ),
}

# The document's seven listeners, in its order: (protocol, listen_on, acceptors, max_conns).
LISTENERS = (
    ("mqtt:ssl", "8883", 16, 102400),
    ("mqtt:tcp", "0.0.0.0:1883", 8, 1024000),
    ("mqtt:tcp", "127.0.0.1:11883", 4, 1024000),
    ("http:dashboard", "18083", 4, 512),
    ("http:management", "8080", 2, 512),
    ("mqtt:ws", "8083", 4, 102400),
    ("mqtt:wss", "8084", 4, 16),
)
TCP_LISTENER, WS_LISTENER = 1, 5  # positions in LISTENERS that seeded clients use

# ---------------------------------------------------------------------------
# Errors and envelopes
# ---------------------------------------------------------------------------

SUCCESS = 0
UNKNOWN_ERROR = 102
MISSING_PARAM = 107
BAD_PARAM = 108
NOT_JSON = 109
CLIENT_NOT_FOUND = 112
BAD_TOPIC = 115


class ApiError(Exception):
    """An answer in the broker's error envelope: {"code": N, "message": ...}."""

    def __init__(self, code, message, status=200):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def ok(data=None, meta=None):
    """Build the success envelope, keys in the broker's order (code, data, meta)."""
    body = {"code": SUCCESS}
    if data is not None:
        body["data"] = data
    if meta is not None:
        body["meta"] = meta
    return body


def error_response(code, message, status):
    """The one error shape of the service."""
    return app.response_class(
        json.dumps({"code": code, "message": message}, ensure_ascii=False, separators=(",", ":")),
        status=status, mimetype="application/json")


def not_found():
    return ApiError(404, "not found", 404)


@app.errorhandler(ApiError)
def handle_api_error(e):
    return error_response(e.code, e.message, e.status)


@app.errorhandler(HTTPException)
def handle_http_error(e):
    """Routing and protocol errors (404, 405, 413, ...) in the same envelope, headers kept."""
    response = e.get_response()
    messages = {404: "not found", 405: "method not allowed", 413: "request body too large"}
    body = {"code": e.code, "message": messages.get(e.code, e.name.lower())}
    response.data = json.dumps(body, separators=(",", ":"))
    response.content_type = "application/json"
    return response


@app.errorhandler(Exception)
def handle_unexpected(e):
    """Last resort: never a traceback in a body. Logged for us, a plain envelope for them."""
    app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(UNKNOWN_ERROR, "internal error", 500)


# ---------------------------------------------------------------------------
# Paths: raw segments, so %2F in a topic or client id survives routing
# ---------------------------------------------------------------------------


class RawPathMiddleware:
    """Route on the undecoded path; the converters below decode each value once.

    WSGI servers hand over PATH_INFO already decoded, which makes `/routes/%2Ftest`
    indistinguishable from `/routes//test`. gunicorn and Werkzeug keep the raw path in
    RAW_URI, so routing sees `%2F` as part of a value, not as a separator.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw:
            path = raw.split("?", 1)[0]
            if "://" in path:  # absolute-form request target
                path = "/" + path.split("://", 1)[1].partition("/")[2]
            environ["PATH_INFO"] = path[len(environ.get("SCRIPT_NAME", "")):]
        else:
            environ["PATH_INFO"] = environ.get("PATH_INFO", "").replace("%", "%25")
        return self.wsgi_app(environ, start_response)


app.wsgi_app = RawPathMiddleware(app.wsgi_app)


class SegmentConverter(BaseConverter):
    """One path segment, percent-decoded (node names: `%40` works as `@`)."""

    def to_python(self, value):
        return unquote(value, errors="strict")


class TailConverter(BaseConverter):
    """The rest of the path, slashes included (topics and client ids), percent-decoded.

    A raw trailing slash is dropped (trailing slashes are optional everywhere); an
    encoded one (`%2F`) is kept.
    """

    regex = ".+"
    part_isolating = False
    weight = 300

    def to_python(self, value):
        if value.endswith("/") and len(value) > 1:
            value = value[:-1]
        return unquote(value, errors="strict")


app.url_map.converters["seg"] = SegmentConverter
app.url_map.converters["tail"] = TailConverter


def _rule(path):
    """Turn a catalogue path (`/nodes/:node/stats/`) into a Flask rule."""
    parts = path.strip("/").split("/")
    out = []
    for i, part in enumerate(parts):
        if part.startswith(":"):
            name = part[1:]
            last = i == len(parts) - 1
            conv = "tail" if last and name in ("clientid", "topic") else "seg"
            out.append(f"<{conv}:{name}>")
        else:
            out.append(part)
    return "/api/v3/" + "/".join(out) + ("/" if path.endswith("/") else "")


def api(name):
    """Register a view for every catalogue entry called `name` (method and path from there)."""

    def register(view):
        for entry_name, method, path, _descr in CATALOGUE:
            if entry_name == name:
                app.add_url_rule(_rule(path), endpoint=name, view_func=view, methods=[method])
        return view

    return register


# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------

_ready = set()
_ready_lock = threading.Lock()


def connect(path):
    """Open a connection with the settings every connection needs."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def get_db():
    """This request's connection, opened on first use (the database seeded if new)."""
    if "db" not in g:
        path = app.config["DATABASE"]
        if path not in _ready:
            with _ready_lock:
                if path not in _ready:
                    ensure_database(path)
                    _ready.add(path)
        g.db = connect(path)
    return g.db


@app.teardown_appcontext
def close_db(exc=None):
    db = g.pop("db", None)
    if db is not None:
        db.close()


@contextmanager
def transaction(db=None):
    """A write transaction: BEGIN IMMEDIATE, so concurrent workers serialize, never upgrade."""
    db = db or get_db()
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _schema_statements():
    with app.open_resource("schema.sql", "r") as f:
        script = f.read()
    statement = ""
    for line in script.splitlines(keepends=True):
        if not statement and (not line.strip() or line.lstrip().startswith("--")):
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


def ensure_database(path, seed=None, nodes=None, clients=None):
    """Create the tables and seed the cluster once; safe when several workers race here.

    The first process to take the write lock builds everything in one transaction; the
    others wait on the lock and then find the database seeded.
    """
    db = connect(path)
    try:
        db.execute("PRAGMA busy_timeout = 600000")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        with transaction(db):
            seeded = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
            if seeded and db.execute("SELECT 1 FROM meta WHERE key = 'seed'").fetchone():
                return False
            for statement in _schema_statements():
                db.execute(statement)
            seed_cluster(
                db,
                app.config["SEED"] if seed is None else seed,
                app.config["NODES"] if nodes is None else nodes,
                app.config["CLIENTS"] if clients is None else clients,
            )
            return True
    finally:
        db.close()


@app.cli.command("init-db")
def init_db_command():
    """Create and seed the database (STANDIN_DB) unless it exists already."""
    created = ensure_database(app.config["DATABASE"])
    click.echo(("Created and seeded " if created else "Already initialised: ")
               + app.config["DATABASE"])


# ---------------------------------------------------------------------------
# Synthetic cluster
# ---------------------------------------------------------------------------

DOC_CLIENTS = (
    # The document's two sample clients, both subscribed to /test.
    ("emqx-api-test:v1", "emqx-api-test:v1", 64594),
    ("mqttjs_406e3f9a", None, 64593),
)
CLIENT_KINDS = ("sensor", "meter", "gateway", "mqttjs", "paho", "esp32", "tracker", "thermostat")
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east")


def node_name(index):
    return f"emqx@127.0.0.{index}"


def _client_subscriptions(rng, cid, kind, region):
    """A device's plausible subscriptions: its own command topic, wildcards, shared groups."""
    choices = [
        (f"devices/{cid}/commands", 1),
        (f"{kind}/{region}/+/status", 0),
        (f"{kind}/{region}/#", 0),
        ("$share/workers/jobs/new", 1),
        ("$queue/tasks/ingest", 1),
        (f"alerts/{region}", 2),
        ("firmware/+/available", 1),
    ]
    count = rng.choice((0, 1, 1, 2, 2, 3))
    return rng.sample(choices, count)


def _insert_client(db, rng, node, listeners, now, cid, username, port, connected, clean):
    """A session, and its connection when `connected`; `port` set means a document sample."""
    proto_ver = 4 if port else rng.choice((3, 4, 4, 4, 5, 5))
    keepalive = 60 if port else rng.choice((30, 60, 60, 120, 300))
    kind = cid.split("-")[0].split("_")[0]
    region = rng.choice(REGIONS)
    created = now - rng.randint(5, 86400 * 3)
    db.execute(
        "INSERT INTO sessions (client_id, node, username, clean_start, created_at,"
        " expiry_interval, heap_size, reductions, max_mqueue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (cid, node, username, int(clean), created, 0 if clean else 7200,
         rng.choice((233, 376, 610, 987, 1598)), rng.randint(150, 90000), 1000))
    if connected:
        listener = listeners[TCP_LISTENER]
        if not port and rng.random() < 0.15:
            listener = listeners[WS_LISTENER]
        ip = "127.0.0.1" if port else (f"{rng.choice((10, 172, 192))}.{rng.randint(0, 255)}"
                                       f".{rng.randint(0, 255)}.{rng.randint(1, 254)}")
        db.execute(
            "INSERT INTO connections (client_id, node, listener_id, username, ipaddress, port,"
            " proto_name, proto_ver, keepalive, clean_start, connected_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cid, node, listener, username, ip, port or rng.randint(1024, 65535),
             "MQIsdp" if proto_ver == 3 else "MQTT", proto_ver, keepalive, int(clean), created))
    return kind, region


def seed_cluster(db, seed, nodes, clients):
    """Fill an empty database with the synthetic cluster: same settings, same rows."""
    rng = random.Random(seed)
    now = int(time.time())
    db.execute("INSERT INTO cluster_stats (id) VALUES (1)")
    for key, value in (("seed", seed), ("nodes", nodes), ("clients", clients),
                       ("created_at", now)):
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
    used = set()
    for index in range(1, nodes + 1):
        node = node_name(index)
        db.execute(
            "INSERT INTO nodes (name, position, started_at, otp_release, version, sysdescr,"
            " max_fds, process_available, process_base, memory_total, memory_base,"
            " load1, load5, load15) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node, index, now - rng.randint(3600, 86400 * 4), "R21/10.0.5", "3.0",
             "EMQ X Broker", 7168, 262144, rng.randint(300, 360),
             rng.randint(76, 140) * 1048576 + rng.randint(0, 1048575),
             rng.randint(52, 64) * 1048576 + rng.randint(0, 1048575),
             f"{rng.uniform(0.1, 3):.2f}", f"{rng.uniform(0.1, 3):.2f}",
             f"{rng.uniform(0.1, 3):.2f}"))
        db.execute("INSERT INTO node_stats (node) VALUES (?)", (node,))
        listeners = []
        for protocol, listen_on, acceptors, max_conns in LISTENERS:
            shutdown = {}
            if protocol.startswith("mqtt:tcp") and listen_on.startswith("0.0.0.0"):
                shutdown = {"closed": rng.randint(1, 9), "kicked": rng.randint(0, 3)}
            cur = db.execute(
                "INSERT INTO listeners (node, protocol, listen_on, acceptors, max_conns,"
                " current_conns, shutdown_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (node, protocol, listen_on, acceptors, max_conns,
                 1 if protocol == "http:dashboard" else 0, json.dumps(shutdown)))
            listeners.append(cur.lastrowid)
        for name, description, active in PLUGINS:
            db.execute("INSERT INTO plugins (node, name, version, description, active)"
                       " VALUES (?, ?, ?, ?, ?)", (node, name, "3.0", description, int(active)))
        for plugin, items in PLUGIN_SCHEMAS.items():
            for position, (key, value, desc) in enumerate(items):
                db.execute("INSERT INTO plugin_configs (node, plugin, position, key, value, desc)"
                           " VALUES (?, ?, ?, ?, ?, ?)", (node, plugin, position, key, value, desc))

        subscriptions = []
        samples = DOC_CLIENTS[:clients] if index == 1 else ()
        for cid, username, port in samples:
            _insert_client(db, rng, node, listeners, now, cid, username, port, True, True)
            used.add(cid)
            subscriptions.append((cid, "/test", 0))
        devices = clients - len(samples)
        for k in range(devices + clients // 10):
            kind = rng.choice(CLIENT_KINDS)
            cid = f"{kind}-{rng.getrandbits(40):010x}"
            while cid in used:
                cid = f"{kind}-{rng.getrandbits(40):010x}"
            used.add(cid)
            connected = k < devices
            clean = connected and rng.random() < 0.75
            username = None if rng.random() < 0.3 else f"{kind}-user-{rng.randint(1, 999)}"
            kind, region = _insert_client(db, rng, node, listeners, now, cid, username, 0,
                                          connected, clean)
            for topic, qos in _client_subscriptions(rng, cid, kind, region):
                subscriptions.append((cid, topic, qos))
            if not connected:
                queued = rng.randint(0, 40)
                db.execute("UPDATE sessions SET enqueue_msg = ?, mqueue_len = ? WHERE client_id = ?",
                           (queued, queued, cid))
        for cid, topic, qos in subscriptions:
            route_topic, share = split_share(topic)
            db.execute("INSERT INTO subscriptions (client_id, node, topic, qos, route_topic, share)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (cid, node, topic, qos, route_topic, share))
        _seed_metrics(db, rng, node)
        if index == 1:
            db.execute("INSERT INTO alarms (node, alarm_id, severity, title, summary, timestamp)"
                       " VALUES (?, ?, ?, ?, ?, ?)",
                       (node, "cpu_high_watermark", "warning", "cpu_high_watermark",
                        "CPU usage 83% is above the high watermark 80%", now - 600))

    for i in range(min(6, max(nodes * clients // 10, 2))):
        region = REGIONS[i % len(REGIONS)]
        payload = json.dumps({"region": region, "online": True, "ts": now - i * 60})
        db.execute("INSERT INTO retained (topic, payload, qos, client_id, created_at)"
                   " VALUES (?, ?, ?, ?, ?)", (f"status/{region}", payload.encode(), 1,
                                                None, now - i * 60))
    if clients:
        for who, kind, reason in (("flooder-01", "client_id", "publish flood"),
                                  ("guest", "username", "shared credentials"),
                                  ("192.168.66.6", "ip_address", "port scan")):
            db.execute("INSERT INTO banned (who, kind, reason, by, desc, until)"
                       " VALUES (?, ?, ?, ?, ?, ?)",
                       (who, kind, json.dumps(reason), '"dashboard"', '"seeded ban"',
                        json.dumps(now + 86400 * 30) if kind != "username" else None))
    db.execute("INSERT INTO apps (app_id, secret, name, desc, status, expired)"
               " VALUES (?, ?, ?, ?, 'true', 'null')",
               (app.config["APP_ID"], app.config["APP_SECRET"], '"Default"',
                '"Application user"'))
    db.execute("INSERT INTO users (username, password, tags) VALUES (?, ?, ?)",
               ("admin", generate_password_hash("public", PASSWORD_METHOD), '"administrator"'))


def _seed_metrics(db, rng, node):
    """Counters of a node that has been up a while, consistent with its rows."""
    stats = db.execute("SELECT * FROM node_stats WHERE node = ?", (node,)).fetchone()
    sessions, subs = stats["sessions_count"], stats["subscriptions_count"]
    values = dict.fromkeys(METRIC_KEYS, 0)
    gone = rng.randint(0, 5)
    values["packets/connect"] = values["packets/connack"] = sessions + gone
    values["packets/disconnect/received"] = gone + sessions - stats["connections_count"]
    values["packets/subscribe"] = values["packets/suback"] = subs
    q = [rng.randint(0, 50 * (sessions + 1)) for _ in range(3)]
    for qos, n in enumerate(q):
        values[f"messages/qos{qos}/received"] = n
        values[f"messages/qos{qos}/sent"] = n * rng.randint(1, 3)
    values["messages/received"] = values["packets/publish/received"] = sum(q)
    values["messages/sent"] = values["packets/publish/sent"] = sum(
        values[f"messages/qos{qos}/sent"] for qos in range(3))
    values["packets/puback/received"] = values["messages/qos1/sent"]
    values["packets/puback/sent"] = q[1]
    values["packets/pubrec/sent"] = values["packets/pubrel/received"] = q[2]
    values["packets/pubcomp/sent"] = q[2]
    values["packets/pubrec/received"] = values["packets/pubrel/sent"] = values["messages/qos2/sent"]
    values["packets/pubcomp/received"] = values["messages/qos2/sent"]
    values["packets/pingreq"] = values["packets/pingresp"] = rng.randint(0, 100 * (sessions + 1))
    values["messages/dropped"] = rng.randint(0, sum(q) // 10 + 1)
    values["packets/received"] = sum(values[k] for k in RECEIVED_PACKETS)
    values["packets/sent"] = sum(values[k] for k in SENT_PACKETS)
    values["bytes/received"] = values["packets/received"] * rng.randint(20, 60)
    values["bytes/sent"] = values["packets/sent"] * rng.randint(20, 60)
    db.executemany("INSERT INTO metrics (node, key, value) VALUES (?, ?, ?)",
                   [(node, k, v) for k, v in values.items()])


def split_share(topic):
    """`$share/g/t` -> ("t", "g"); `$queue/t` -> ("t", "$queue"); `t` -> ("t", None)."""
    if topic.startswith("$share/"):
        _, group, rest = topic.split("/", 2)
        return rest, group
    if topic.startswith("$queue/"):
        return topic[len("$queue/"):], "$queue"
    return topic, None


# ---------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------

auth = HTTPBasicAuth(realm=REALM)
_verified = {}  # (stored hash, sha256 of the password) -> True; stale keys never match


def _password_ok(stored, password):
    """Check a salted hash, remembering successes so Basic auth stays cheap per request."""
    key = (stored, hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())
    if key in _verified:
        return True
    if not check_password_hash(stored, password):
        return False
    if len(_verified) > 1024:
        _verified.clear()
    _verified[key] = True
    return True


def _json_value(text):
    return None if text is None else json.loads(text)


@auth.verify_password
def verify_password(username, password):
    """An application (AppID/AppSecret, enabled, not expired) or a dashboard user."""
    if not username:
        return None
    db = get_db()
    row = db.execute("SELECT secret, status, expired FROM apps WHERE app_id = ?",
                     (username,)).fetchone()
    if row is not None and hmac.compare_digest(row["secret"].encode(), password.encode()):
        expired = _json_value(row["expired"])
        if _json_value(row["status"]) is True and (
                not isinstance(expired, (int, float)) or isinstance(expired, bool)
                or expired >= time.time()):
            return {"app_id": username}
    row = db.execute("SELECT password FROM users WHERE username = ?", (username,)).fetchone()
    if row is not None and _password_ok(row["password"], password):
        return {"username": username}
    return None


@auth.error_handler
def auth_error(status):
    return error_response(status, "UNAUTHORIZED", status)


_require_auth = auth.login_required(lambda: None)
OPEN_PATHS = {("POST", "/api/v3/auth")}


@app.before_request
def authenticate():
    """Basic auth on every /api/v3/ path, known or not, before routing answers (as minirest)."""
    path = request.path
    if not (path.startswith("/api/v3") or path.startswith("/_standin")):
        return None
    if (request.method, path.rstrip("/")) in OPEN_PATHS:
        return None
    return _require_auth()


# ---------------------------------------------------------------------------
# Parameters and pagination
# ---------------------------------------------------------------------------


def params():
    """Query parameters, then the JSON body's keys (the query wins, as in minirest)."""
    if "params" in g:
        return g.params
    merged = dict(request.args.items())
    body = request.get_data(cache=True)
    if body.strip():
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(NOT_JSON, "request parameter is not a json", 400) from None
        if not isinstance(data, dict):
            raise ApiError(NOT_JSON, "request parameter is not a json", 400)
        for key, value in data.items():
            merged.setdefault(key, value)
    g.params = merged
    return merged


def _int_param(name, default, minimum):
    value = params().get(name, default)
    if isinstance(value, bool):
        raise ApiError(BAD_PARAM, f"'{name}' must be an integer")
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not digits.isdigit() or not digits.isascii():
            raise ApiError(BAD_PARAM, f"'{name}' must be an integer")
        value = int(text)
    if not isinstance(value, int):
        raise ApiError(BAD_PARAM, f"'{name}' must be an integer")
    if value < minimum:
        raise ApiError(BAD_PARAM, f"'{name}' must be at least {minimum}")
    if value > 2 ** 62:
        raise ApiError(BAD_PARAM, f"'{name}' is too large")
    return value


def paginated(view):
    """Validate `_page` / `_limit` (defaults 1 / 10000) and put them on `g`."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.page = _int_param("_page", 1, -(2 ** 62))
        g.limit = _int_param("_limit", app.config["MAX_ROW_LIMIT"], 1)
        return view(*args, **kwargs)

    return wrapper


def fetch_page(sql, args, count):
    """One page of `sql` (already ordered) plus the broker's meta."""
    offset = (max(g.page, 1) - 1) * g.limit
    rows = get_db().execute(f"{sql} LIMIT ? OFFSET ?", (*args, g.limit, offset)).fetchall()
    return rows, {"page": g.page, "limit": g.limit, "count": count}


# ---------------------------------------------------------------------------
# Serializers and lookups
# ---------------------------------------------------------------------------


def local_time(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def uptime(seconds):
    """`1 days,18 hours, 45 minutes, 1 seconds` (sic: no space after "days,")."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} days,{hours} hours, {minutes} minutes, {secs} seconds"
    if hours:
        return f"{hours} hours, {minutes} minutes, {secs} seconds"
    if minutes:
        return f"{minutes} minutes, {secs} seconds"
    return f"{secs} seconds"


def memory_string(size):
    """`76.45M`-style sizes of the node list (a plain int below 1 KiB)."""
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size > factor:
            return f"{size / factor:.2f}{unit}"
    return size


def undefined(value):
    """Erlang's `undefined` atom as the broker's JSON shows it."""
    return "undefined" if value is None else value


def connection_json(row):
    return {
        "clean_start": bool(row["clean_start"]),
        "client_id": row["client_id"],
        "connected_at": local_time(row["connected_at"]),
        "ipaddress": row["ipaddress"],
        "is_bridge": bool(row["is_bridge"]),
        "is_super": bool(row["is_super"]),
        "keepalive": row["keepalive"],
        "mountpoint": undefined(row["mountpoint"]),
        "node": row["node"],
        "peercert": row["peercert"],
        "port": row["port"],
        "proto_name": row["proto_name"],
        "proto_ver": row["proto_ver"],
        "username": undefined(row["username"]),
        # 3.0 GA no longer emits will_topic; the document shows it, so we keep it.
        "will_topic": "undefined",
        "zone": row["zone"],
    }


SESSION_INTS = ("awaiting_rel_len", "deliver_msg", "enqueue_msg", "expiry_interval",
                "heap_size", "inflight_len", "mailbox_len", "max_awaiting_rel", "max_inflight",
                "max_mqueue", "max_subscriptions", "mqueue_dropped", "mqueue_len")


def session_json(row):
    out = {"awaiting_rel_len": row["awaiting_rel_len"], "binding": "local",
           "clean_start": bool(row["clean_start"]), "client_id": row["client_id"],
           "created_at": local_time(row["created_at"])}
    for key in SESSION_INTS[1:]:
        out[key] = row[key]
    out["node"] = row["node"]
    out["reductions"] = row["reductions"]
    out["subscriptions_count"] = row["subscriptions_count"]
    out["username"] = undefined(row["username"])
    return dict(sorted(out.items()))


def subscription_json(row):
    return {"client_id": row["client_id"], "node": row["node"], "qos": row["qos"],
            "topic": row["topic"]}


def route_json(row):
    return {"node": row["node"], "topic": row["topic"]}


def node_row(name, running=True):
    """The node named in a path: JSON 404 if unknown, `nodedown` if stopped (when asked)."""
    row = get_db().execute("SELECT * FROM nodes WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise not_found()
    if running and row["node_status"] != "Running":
        raise ApiError(UNKNOWN_ERROR, "nodedown")
    return row


def running_nodes():
    """Names of the nodes that answer, in cluster order."""
    if "running" not in g:
        g.running = [r["name"] for r in get_db().execute(
            "SELECT name FROM nodes WHERE node_status = 'Running' ORDER BY position")]
    return g.running


def _all_nodes_running():
    total = get_db().execute("SELECT count(*) FROM nodes").fetchone()[0]
    return total == len(running_nodes())


def node_filter(node=None):
    """SQL condition and arguments restricting rows to one node or to the running nodes."""
    if node is not None:
        return "node = ?", (node,)
    if _all_nodes_running():
        return "1", ()
    names = running_nodes()
    return f"node IN ({','.join('?' * len(names))})", tuple(names)


def node_stats(node):
    """The 18 stats of a node, cluster-wide tables included."""
    db = get_db()
    row = dict(db.execute("SELECT * FROM node_stats WHERE node = ?", (node,)).fetchone())
    row.update(dict(db.execute("SELECT * FROM cluster_stats").fetchone()))
    return {key: row[column] for key, column in STATS_KEYS}


def stat_total(column, node=None):
    """Sum of a node_stats counter over one node or the running nodes (maintained counts)."""
    where, args = node_filter(node)
    return get_db().execute(f"SELECT coalesce(sum({column}), 0) FROM node_stats WHERE {where}",
                            args).fetchone()[0]


def node_metrics(node):
    db = get_db()
    values = dict(db.execute("SELECT key, value FROM metrics WHERE node = ?", (node,)).fetchall())
    values["messages/retained"] = db.execute(
        "SELECT retained_count FROM cluster_stats").fetchone()[0]
    return {key: values.get(key, 0) for key in METRIC_KEYS}


def broker_json(row, with_node=True):
    out = {"datetime": local_time(time.time())}
    if with_node:
        out["node"] = row["name"]
    out.update({"node_status": row["node_status"], "otp_release": row["otp_release"],
                "sysdescr": row["sysdescr"], "uptime": uptime(time.time() - row["started_at"]),
                "version": row["version"]})
    return out


def node_json(row, with_node=True):
    """Node info; memory as strings in the list (`with_node`), as ints in the lookup."""
    stats = get_db().execute("SELECT * FROM node_stats WHERE node = ?", (row["name"],)).fetchone()
    used = (row["memory_base"] + 38000 * stats["sessions_count"]
            + 2400 * stats["subscriptions_count"])
    total = max(row["memory_total"], used + 4 * 1048576)
    memory = memory_string if with_node else int
    out = {"connections": stats["connections_count"], "load1": row["load1"],
           "load15": row["load15"], "load5": row["load5"], "max_fds": row["max_fds"],
           "memory_total": memory(total), "memory_used": memory(used), "name": row["name"]}
    if with_node:
        out["node"] = row["name"]
    out.update({
        "node_status": row["node_status"], "otp_release": row["otp_release"],
        "process_available": row["process_available"],
        "process_used": row["process_base"] + stats["connections_count"]
        + stats["sessions_count"],
        "uptime": uptime(time.time() - row["started_at"]), "version": row["version"]})
    return out


def listener_json(row):
    shutdown = json.loads(row["shutdown_count"])
    return {"acceptors": row["acceptors"], "current_conns": row["current_conns"],
            "listen_on": row["listen_on"], "max_conns": row["max_conns"],
            "protocol": row["protocol"], "shutdown_count": shutdown or []}


def node_listeners(node):
    return [listener_json(r) for r in get_db().execute(
        "SELECT * FROM listeners WHERE node = ? ORDER BY id", (node,))]


def alarm_json(row):
    return {"id": row["alarm_id"], "severity": row["severity"], "summary": row["summary"],
            "timestamp": local_time(row["timestamp"]), "title": row["title"]}


def node_alarms(node):
    return [alarm_json(r) for r in get_db().execute(
        "SELECT * FROM alarms WHERE node = ? ORDER BY timestamp DESC, id DESC", (node,))]


def plugin_json(row):
    return {"name": row["name"], "version": row["version"], "description": row["description"],
            "active": bool(row["active"])}


def node_plugins(node):
    return [plugin_json(r) for r in get_db().execute(
        "SELECT * FROM plugins WHERE node = ? ORDER BY name", (node,))]


def config_json(row):
    return {"key": row["key"], "value": row["value"], "datatpye": row["datatpye"],
            "app": row["app"]}


def node_configs(node):
    return [config_json(r) for r in get_db().execute(
        "SELECT * FROM configs WHERE node = ? ORDER BY id", (node,))]


def banned_json(row):
    return {"as": row["kind"], "by": undefined(_json_value(row["by"])),
            "desc": undefined(_json_value(row["desc"])),
            "reason": undefined(_json_value(row["reason"])),
            "until": undefined(_json_value(row["until"])), "who": row["who"]}


def app_json(row, with_secret=False):
    out = {"app_id": row["app_id"]}
    if with_secret:
        out["secret"] = row["secret"]
    for key in ("name", "desc", "status", "expired"):
        out[key] = undefined(_json_value(row[key]))
    return out


# ---------------------------------------------------------------------------
# Routes: API index, cluster and nodes
# ---------------------------------------------------------------------------


@app.get("/api/v3")
@app.get("/api/v3/")
def list_api():
    """The route catalogue, as the document prints it."""
    return ok([{"name": n, "method": m, "path": p, "descr": d} for n, m, p, d in CATALOGUE])


@app.get("/status")
def status():
    """Health text of the management listener (no credentials)."""
    node = node_name(1)
    try:
        row = get_db().execute("SELECT name, node_status FROM nodes ORDER BY position"
                               " LIMIT 1").fetchone()
        running = row is not None and row["node_status"] == "Running"
        node = row["name"] if row else node
    except sqlite3.Error:
        running = False
    text = f"Node {node} is started\nemqx is {'running' if running else 'not_running'}"
    return Response(text, mimetype="text/plain")


@api("list_brokers")
def list_brokers():
    """A list of brokers in the cluster."""
    rows = get_db().execute(
        "SELECT * FROM nodes WHERE node_status = 'Running' ORDER BY position").fetchall()
    return ok([broker_json(r) for r in rows])


@api("get_broker")
def get_broker(node):
    """Get broker info of a node."""
    return ok(broker_json(node_row(node), with_node=False))


@api("list_nodes")
def list_nodes():
    """A list of nodes in the cluster."""
    rows = get_db().execute("SELECT * FROM nodes ORDER BY position").fetchall()
    return ok([node_json(r) for r in rows])


@api("get_node")
def get_node(node):
    """Lookup a node in the cluster."""
    return ok(node_json(node_row(node), with_node=False))


@api("list_all_metrics")
def list_all_metrics():
    """A list of metrics of all nodes in the cluster."""
    return ok([{"node": n, "metrics": node_metrics(n)} for n in running_nodes()])


@api("list_node_metrics")
def list_node_metrics(node):
    """A list of metrics of a node."""
    return ok(node_metrics(node_row(node)["name"]))


@api("list_stats")
def list_stats():
    """A list of stats of all nodes in the cluster."""
    return ok([{"node": n, **node_stats(n)} for n in running_nodes()])


@api("lookup_node_stats")
def lookup_node_stats(node):
    """A list of stats of a node."""
    return ok(node_stats(node_row(node)["name"]))


# ---------------------------------------------------------------------------
# Routes: connections, sessions, subscriptions, routes
# ---------------------------------------------------------------------------


def _list_rows(table, serializer, count_column, node):
    if node is not None:
        node_row(node)
    where, args = node_filter(node)
    rows, meta = fetch_page(f"SELECT * FROM {table} WHERE {where} ORDER BY id", args,
                            stat_total(count_column, node))
    return ok([serializer(r) for r in rows], meta)


def _lookup_rows(table, serializer, clientid, node):
    if node is not None:
        node_row(node)
    where, args = node_filter(node)
    rows = get_db().execute(f"SELECT * FROM {table} WHERE client_id = ? AND {where} ORDER BY id",
                            (clientid, *args)).fetchall()
    return ok([serializer(r) for r in rows])


@api("list_connections")
@api("list_node_connections")
@paginated
def list_connections(node=None):
    """A list of connections in the cluster / on a node."""
    return _list_rows("connections", connection_json, "connections_count", node)


@api("lookup_connections")
@api("lookup_node_connections")
def lookup_connections(clientid, node=None):
    """Lookup a connection in the cluster / on a node."""
    return _lookup_rows("connections", connection_json, clientid, node)


@api("list_sessions")
@api("list_node_sessions")
@paginated
def list_sessions(node=None):
    """A list of sessions in the cluster / on a node."""
    return _list_rows("sessions", session_json, "sessions_count", node)


@api("lookup_session")
@api("lookup_node_session")
def lookup_session(clientid, node=None):
    """Lookup a session in the cluster / on the node."""
    return _lookup_rows("sessions", session_json, clientid, node)


@api("list_subscriptions")
@api("list_node_subscriptions")
@paginated
def list_subscriptions(node=None):
    """A list of subscriptions in the cluster / on a node."""
    return _list_rows("subscriptions", subscription_json, "subscriptions_count", node)


@api("lookup_client_subscriptions")
@api("lookup_client_subscriptions_with_node")
def lookup_client_subscriptions(clientid, node=None):
    """A list of subscriptions of a client (on the node)."""
    return _lookup_rows("subscriptions", subscription_json, clientid, node)


@api("list_routes")
@paginated
def list_routes():
    """List routes."""
    count = get_db().execute("SELECT routes_count FROM cluster_stats").fetchone()[0]
    rows, meta = fetch_page("SELECT topic, node FROM routes ORDER BY id", (), count)
    return ok([route_json(r) for r in rows], meta)


@api("lookup_routes")
def lookup_routes(topic):
    """Lookup routes to a topic."""
    rows = get_db().execute("SELECT topic, node FROM routes WHERE topic = ? ORDER BY id",
                            (topic,)).fetchall()
    return ok([route_json(r) for r in rows])


# ---------------------------------------------------------------------------
# Routes: plugins, listeners, alarms, banned, apps, users, configs (reads)
# ---------------------------------------------------------------------------


@api("list_all_plugins")
def list_all_plugins():
    """List all plugins in the cluster."""
    return ok([{"node": n, "plugins": node_plugins(n)} for n in running_nodes()])


@api("list_node_plugins")
def list_node_plugins(node):
    """List all plugins on a node."""
    return ok(node_plugins(node_row(node)["name"]))


@api("list_listeners")
def list_listeners():
    """A list of listeners in the cluster."""
    rows = get_db().execute("SELECT name, node_status FROM nodes ORDER BY position").fetchall()
    return ok([{"listeners": node_listeners(r["name"]) if r["node_status"] == "Running"
                else {"error": "nodedown"}, "node": r["name"]} for r in rows])


@api("list_node_listeners")
def list_node_listeners(node):
    """A list of listeners on the node."""
    row = node_row(node, running=False)
    if row["node_status"] != "Running":
        # The real broker answers code 0 with an error object here (sic).
        return ok({"error": "nodedown"})
    return ok(node_listeners(row["name"]))


@api("list_all_alarms")
def list_all_alarms():
    """List all alarms."""
    return ok([{"alarms": node_alarms(n), "node": n} for n in running_nodes()])


@api("list_node_alarms")
def list_node_alarms(node):
    """List alarms of a node."""
    return ok(node_alarms(node_row(node)["name"]))


BANNED_ACTIVE = ("NOT (json_type(until) IN ('integer', 'real') AND CAST(until AS REAL) < ?)")


@api("list_banned")
@paginated
def list_banned():
    """List banned."""
    now = time.time()
    count = get_db().execute(f"SELECT count(*) FROM banned WHERE {BANNED_ACTIVE}",
                             (now,)).fetchone()[0]
    rows, meta = fetch_page(f"SELECT * FROM banned WHERE {BANNED_ACTIVE} ORDER BY id",
                            (now,), count)
    return ok([banned_json(r) for r in rows], meta)


@api("list_apps")
def list_apps():
    """List Applications."""
    return ok([app_json(r) for r in get_db().execute("SELECT * FROM apps ORDER BY id")])


@api("lookup_app")
def lookup_app(appid):
    """Lookup Application."""
    row = get_db().execute("SELECT * FROM apps WHERE app_id = ?", (appid,)).fetchone()
    return ok(app_json(row, with_secret=True) if row else [])


@api("list_users")
def list_users():
    """List users."""
    return ok([{"username": r["username"], "tags": undefined(_json_value(r["tags"]))}
               for r in get_db().execute("SELECT username, tags FROM users ORDER BY id")])


@api("get_all_configs")
def get_all_configs(node=None):
    """Get all configs (of a node)."""
    if node is not None:
        return ok(node_configs(node_row(node)["name"]))
    return ok([{"config": node_configs(n), "node": n} for n in running_nodes()])


@api("get_plugin_configs")
def get_plugin_configs(node, plugin):
    """Get configurations of a plugin on the node."""
    node = node_row(node)["name"]
    db = get_db()
    if db.execute("SELECT 1 FROM plugins WHERE node = ? AND name = ?",
                  (node, plugin)).fetchone() is None:
        raise not_found()
    rows = db.execute("SELECT * FROM plugin_configs WHERE node = ? AND plugin = ?"
                      " ORDER BY value IS NULL, position DESC", (node, plugin)).fetchall()
    return ok([{"key": r["key"], "value": r["value"] or "", "desc": r["desc"],
                "required": r["value"] is not None} for r in rows])


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
