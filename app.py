"""emqx-standin: a stateful stand-in for the EMQ X 3.0 management REST API (/api/v3/).

Every documented route answers as EMQ X 3.0.1 does (shapes, codes, odd spellings), from a
synthetic, deterministic cluster kept in SQLite (WAL), so any number of gunicorn workers see
the same state and every write shows in every later read.

This module is the EMQ X API and nothing else: the document's data, parameters and paging,
serializers, the broker's rules and every documented route. It stands on two modules of
plumbing: minirest.py (the HTTP layer: envelopes, errors, raw paths, credentials) and
database.py (SQLite access). What EMQ X does not have lives beside it: seed.py (the
synthetic cluster), standin.py (the /_standin/ controls and the pages) and cli.py
(commands), registered at the bottom of this file.

Run:    gunicorn -w 2 -b 127.0.0.1:8080 app:app   (creates and seeds STANDIN_DB on first use)
        flask --app app init-db                   (the same, explicitly)
Settings (environment): STANDIN_DB, STANDIN_SEED, STANDIN_NODES, STANDIN_CLIENTS,
STANDIN_APP_ID, STANDIN_APP_SECRET, STANDIN_JOURNAL_SIZE, PORT.
"""

import base64
import ipaddress
import json
import math
import os
import re
import secrets
import sqlite3
import sys
import time
from collections import Counter
from functools import wraps

import click
from flask import Flask
from flask import g
from flask import request
from flask import Response

import minirest
from database import CONNECTION_INSERT
from database import ensure_database
from database import get_db
from database import hash_password
from database import insert_app
from database import insert_user
from database import NotReady
from database import PAGED_TABLES
from database import release_db
from database import seek
from database import SESSION_INSERT
from database import SUBSCRIPTION_INSERT
from database import transaction
from minirest import ApiError
from minirest import BAD_PARAM
from minirest import BAD_TOPIC
from minirest import CLIENT_NOT_FOUND
from minirest import CRASH
from minirest import json_value
from minirest import MISSING_PARAM
from minirest import not_found
from minirest import NOT_JSON
from minirest import ok
from minirest import ok_items
from minirest import password_ok
from minirest import SAME
from minirest import served_here
from minirest import text_answer
from minirest import UNKNOWN_ERROR

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

VERSION = "0.3.0"  # the stand-in's own version
EMQX_VERSION = "3.0.1"  # the EMQ X release whose management API it answers as

class StandinFlask(Flask):
    """Flask, asking once per hook or view whether it is a coroutine (Flask asks `inspect`
    again for each of the dozen hooks and handlers every request runs)."""

    _synced = {}

    def ensure_sync(self, func):
        try:
            return self._synced[func]
        except KeyError:
            if len(self._synced) > 1024:
                self._synced.clear()
            synced = self._synced[func] = super().ensure_sync(func)
            return synced
        except TypeError:  # not hashable: as Flask does it
            return super().ensure_sync(func)


app = StandinFlask(__name__)
app.config.from_mapping(
    # The SQLite file; by default standin.db in the directory the service starts from.
    DATABASE=os.path.abspath(os.environ.get("STANDIN_DB", "standin.db")),
    SEED=int(os.environ.get("STANDIN_SEED", "42")),
    NODES=int(os.environ.get("STANDIN_NODES", "1")),
    CLIENTS=int(os.environ.get("STANDIN_CLIENTS", "50")),
    # An application is created with a new database only when both are set (EMQ X 3.0
    # creates none; the dashboard user admin/public works on the API too).
    APP_ID=os.environ.get("STANDIN_APP_ID") or None,
    APP_SECRET=os.environ.get("STANDIN_APP_SECRET") or None,
    # Strict mode: every answer that EMQ X 3.0.1 gives differently (its crashes, its text
    # bodies) is given as it gives it, on its two listeners (README, "Strict mode").
    STRICT=os.environ.get("STANDIN_STRICT", "") == "1",
    PORT=int(os.environ.get("PORT", "8080")),
    DASHBOARD_PORT=int(os.environ.get("DASHBOARD_PORT", "18083")),
    # Host headers served (comma-separated names; unset: any), against DNS rebinding.
    ALLOWED_HOSTS=[h.strip().lower() for h in os.environ.get("STANDIN_ALLOWED_HOSTS", "").split(",")
                   if h.strip()],
    MAX_ROW_LIMIT=10000,
    MAX_CONTENT_LENGTH=1024 * 1024,
    BUSY_TIMEOUT_MS=5000,  # a write waits this long for the lock, then answers "busy"
    INLINE_SEED_MAX=20000,  # devices a request may seed; larger worlds are seeded at start
)
app.url_map.strict_slashes = False  # the middleware already drops trailing slashes
app.url_map.merge_slashes = False

# The HTTP layer first: its hooks (body size, host, credentials before routing) run before
# the stand-in's (faults, journal), and its path converters exist before any route.
app.register_blueprint(minirest.bp)
app.teardown_appcontext(release_db)

# ---------------------------------------------------------------------------
# The document's data: catalogue, metric and stat keys (its error codes: minirest.py)
# ---------------------------------------------------------------------------

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
    # As in 3.0.1: topics/count is the size of the route table (as routes/count is), and
    # subscribers/* leave shared subscriptions out.
    ("topics/count", "routes_count"), ("topics/max", "routes_max"),
    ("subscribers/count", "subscribers_count"), ("subscribers/max", "subscribers_max"),
    ("subscriptions/count", "subscriptions_count"), ("subscriptions/max", "subscriptions_max"),
    ("subscriptions/shared/count", "subscriptions_shared_count"),
    ("subscriptions/shared/max", "subscriptions_shared_max"),
    ("routes/count", "routes_count"), ("routes/max", "routes_max"),
    ("retained/count", "retained_count"), ("retained/max", "retained_max"),
)


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
    return "/api/v3/" + "/".join(out)


def api(name):
    """Register a view for every catalogue entry called `name` (method and path from there)."""

    def register(view):
        for entry_name, method, path, _descr in CATALOGUE:
            if entry_name == name:
                app.add_url_rule(_rule(path), endpoint=name, view_func=view, methods=[method])
        return view

    return register


# ---------------------------------------------------------------------------
# Parameters and pagination
# ---------------------------------------------------------------------------


def _not_unicode(data):
    """The first top-level key whose key or value holds a lone surrogate, else None."""

    def broken(value):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
            return False
        if isinstance(value, list):
            return any(broken(v) for v in value)
        if isinstance(value, dict):
            return any(broken(k) or broken(v) for k, v in value.items())
        return False

    for key, value in data.items():
        if broken(key) or broken(value):
            return key.encode("utf-8", "backslashreplace").decode()
    return None


class RefusedValue(ValueError):
    """JSON that parses, holding a value the stand-in will not store (the message says)."""


def no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _json_int(text):
    if len(text.lstrip("-")) > 19:
        raise RefusedValue(f"the number {text[:24]}... has more than 19 digits")
    return int(text)


def _json_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise RefusedValue(f"the number {text[:24]} is out of range")
    return value


MAX_JSON_DEPTH = 64
_JSON_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def load_json(body):
    """Parse JSON text: ValueError for what is not JSON, RefusedValue for nesting past
    MAX_JSON_DEPTH (checked before parsing), numbers that are not finite or too long."""
    depth = 0
    for bracket in _JSON_STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if bracket in b"[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise RefusedValue(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(body, parse_constant=no_constants, parse_int=_json_int,
                      parse_float=_json_float)


def from_browser():
    """Is the request from a web page? (Browsers name the page's origin or fetch mode.)"""
    return "Origin" in request.headers or "Sec-Fetch-Mode" in request.headers


def params():
    """Query parameters, then the JSON body's keys (the query wins, as in minirest).

    As in 3.0.1 a body is read as JSON whatever its Content-Type (`curl -d` sends a form
    type), except from a browser: a page must say application/json, which another site's
    page cannot send without asking first (CORS), so a cross-site form post is refused.
    """
    if "params" in g:
        return g.params
    merged = dict(request.args.items())
    body = request.get_data(cache=True)
    if body.strip():
        if request.mimetype != "application/json" and from_browser():
            raise ApiError(NOT_JSON, "a browser must send the body as application/json", 415)
        try:
            data = load_json(body)
        except RefusedValue as e:
            raise ApiError(BAD_PARAM, str(e)) from None
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ApiError(NOT_JSON, "request parameter is not a json", 400) from None
        if not isinstance(data, dict):
            raise ApiError(NOT_JSON, "request parameter is not a json", 400)
        bad = _not_unicode(data)
        if bad is not None:
            raise ApiError(BAD_PARAM, f"'{bad}' holds text that is not valid Unicode")
        for key, value in data.items():
            merged.setdefault(key, value)
    g.params = merged
    return merged


def strict_int(value, name):
    """An integer, or a string of ASCII digits (an optional sign, at most 19 digits); 108
    for anything else. The one parser of numbers that arrive as text."""
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not digits.isdigit() or not digits.isascii():
            raise ApiError(BAD_PARAM, f"'{name}' must be an integer")
        if len(digits.lstrip("0")) > 19:
            raise ApiError(BAD_PARAM, f"'{name}' is too large")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(BAD_PARAM, f"'{name}' must be an integer")
    if abs(value) > 2 ** 62:
        raise ApiError(BAD_PARAM, f"'{name}' is too large")
    return value


def int_param(name, default, minimum):
    value = strict_int(params().get(name, default), name)
    if minimum is not None and value < minimum:
        raise ApiError(BAD_PARAM, f"'{name}' must be at least {minimum}")
    return value


def paginated(view):
    """Validate `_page` / `_limit` (defaults 1 / 10000) and put them on `g`; the count and
    the rows are read in one read transaction, so they agree even while a snapshot is
    restored or a reset commits in another worker."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if app.config["STRICT"] and any(
                not isinstance(params().get(k, ""), str) for k in ("_page", "_limit")):
            raise ApiError(BAD_PARAM, "'_page' and '_limit' must be strings")  # 3.0.1 crashes
        g.page = int_param("_page", 1, None)
        g.limit = int_param("_limit", app.config["MAX_ROW_LIMIT"], 1)
        db = get_db()
        db.execute("BEGIN")  # deferred: the first read takes the snapshot
        try:
            return view(*args, **kwargs)
        finally:
            if db.in_transaction:
                db.execute("COMMIT")

    return wrapper


DEEP_OFFSET = 4096


def _page_query(table, columns, where, args, count):
    """SQL and arguments for one page of `table` rows matching `where`, in id order (None
    past the end). A deep page of a table in PAGED_TABLES starts from the block that holds
    its first row, so the last page of a million rows costs what the first one does."""
    offset = (max(g.page, 1) - 1) * g.limit
    start = 0
    if offset >= count:  # past the end (count is exact): nothing to read
        return None
    if table in PAGED_TABLES and offset >= DEEP_OFFSET:
        start, offset = seek(get_db(), table, where, args, offset)
        if start is None:
            return None
    return (f"SELECT {columns} FROM {table} WHERE {where} AND id >= ? ORDER BY id LIMIT ?"
            " OFFSET ?", (*args, start, g.limit, offset))


def _meta(count):
    return {"page": g.page, "limit": g.limit, "count": count}


def fetch_page(table, columns, where, args, count):
    """One page of rows, plus the broker's meta."""
    query = _page_query(table, columns, where, args, count)
    return [] if query is None else get_db().execute(*query).fetchall(), _meta(count)


def fetch_page_json(table, entity_sql, where, args, count):
    """One page of entities built as JSON by `entity_sql`, as ok_items takes them, plus the
    broker's meta."""
    query = _page_query(table, f"{entity_sql} AS doc", where, args, count)
    return [] if query is None else joined_json(*query), _meta(count)


def joined_json(sql, args):
    """The JSON objects a query selects (as `doc`), as ok_items takes them: joined with
    commas by SQLite into one text, in the query's order (its ORDER BY ... LIMIT subquery
    feeds the aggregate row by row). A page never becomes a Python object per row."""
    text = get_db().execute(f"SELECT group_concat(doc, ',') FROM ({sql})", args).fetchone()[0]
    return [] if text is None else [text]


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


def _sql_bool(column):
    return f"json(iif({column}, 'true', 'false'))"


def _sql_time(column):
    """Unix seconds as the broker's local time text, `2019-01-31 12:00:00` (datetime() is
    strftime('%Y-%m-%d %H:%M:%S', ...) without reading a format: a third cheaper a row)."""
    return f"datetime({column}, 'unixepoch', 'localtime')"


def _sql_object(*pairs):
    """A json_object(...) expression from (key, SQL expression) pairs, in the given order."""
    return "json_object(" + ", ".join(f"'{key}', {expr}" for key, expr in pairs) + ")"


# Entities of the big tables are built as JSON text by SQLite itself, keys in the broker's
# (alphabetical) order: a page of them never passes through Python dicts.
# The connection object is built by SQLite when the row is stored or changes (schema.sql),
# all but its time, formatted here in local time as the broker shows it.
CONNECTION_SQL = f"doc_head || {_sql_time('connected_at')} || doc_tail"
SESSION_SQL = _sql_object(
    ("awaiting_rel_len", "awaiting_rel_len"), ("binding", "'local'"),
    ("clean_start", _sql_bool("clean_start")), ("client_id", "client_id"),
    ("created_at", _sql_time("created_at")),
    *((key, key) for key in ("deliver_msg", "enqueue_msg", "expiry_interval", "heap_size",
                             "inflight_len", "mailbox_len", "max_awaiting_rel", "max_inflight",
                             "max_mqueue", "max_subscriptions", "mqueue_dropped", "mqueue_len",
                             "node", "reductions", "subscriptions_count")),
    ("username", "coalesce(username, 'undefined')"))
# The topic of a shared subscription is shown without its $share/<group>/ or $queue/
# prefix, as 3.0.1 shows it (the group is an option of the subscription there).
SUBSCRIPTION_SQL = _sql_object(("client_id", "client_id"), ("node", "node"), ("qos", "qos"),
                               ("topic", "route_topic"))
ROUTE_SQL = _sql_object(("node", "node"), ("topic", "topic"))


def node_rows():
    """The nodes' rows by name, in cluster order, read again when the data changed."""
    return get_db().remember("node rows", lambda db: {
        row["name"]: row for row in db.execute("SELECT * FROM nodes ORDER BY position")})


def node_row(name, running=True):
    """The node named in a path: JSON 404 if unknown, `nodedown` if stopped (when asked)."""
    row = node_rows().get(name)
    if row is None:
        raise not_found()
    if running and row["node_status"] != "Running":
        # 3.0.1 answers nodedown on these, and crashes on its other node-scoped routes.
        answers = request.endpoint in ("get_broker", "list_node_connections", "load_plugin",
                                       "unload_plugin")
        raise ApiError(UNKNOWN_ERROR, "nodedown", strict=SAME if answers else CRASH)
    return row


def _nodes():
    """(names of the nodes that answer, in cluster order; whether every node answers),
    read again when the data changed."""

    def load(db):
        rows = node_rows().values()
        running = tuple(row["name"] for row in rows if row["node_status"] == "Running")
        return running, len(running) == len(rows)

    return get_db().remember("nodes", load)


def running_nodes():
    """Names of the nodes that answer, in cluster order."""
    return _nodes()[0]


def all_nodes_running():
    return _nodes()[1]


def node_filter(node=None):
    """SQL condition and arguments restricting rows to one node or to the running nodes."""
    if node is not None:
        return "node = ?", (node,)
    names, everyone = _nodes()
    if everyone:
        return "TRUE", ()
    return f"node IN ({','.join('?' * len(names))})", names


def node_stats(node):
    """The 18 stats of a node, cluster-wide tables included (without a stopped node's
    routes and shared subscriptions: they left the cluster with it)."""
    row = get_db().execute("SELECT * FROM node_stats, cluster_stats WHERE node = ?",
                           (node,)).fetchone()
    row = dict(zip(row.keys(), row, strict=True))  # in both tables: the cluster's (later)
    if not all_nodes_running():
        row["routes_count"] = running_routes()
        row["subscriptions_shared_count"] = stat_total("subscriptions_shared_count")
    return {key: row[column] for key, column in STATS_KEYS}


def running_routes():
    """Rows of the route table on the running nodes (from page_blocks, not a scan)."""
    where, args = node_filter()
    return get_db().execute(f"SELECT coalesce(sum(n), 0) FROM page_blocks WHERE tbl = 'routes'"
                            f" AND {where}", args).fetchone()[0]


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
    return {"as": row["kind"], "by": undefined(json_value(row["by"])),
            "desc": undefined(json_value(row["desc"])),
            "reason": undefined(json_value(row["reason"])),
            "until": undefined(json_value(row["until"])), "who": row["who"]}


def app_json(row, with_secret=False):
    out = {"app_id": row["app_id"]}
    if with_secret:
        out["secret"] = row["secret"]
    for key in ("name", "desc", "status", "expired"):
        out[key] = undefined(json_value(row[key]))
    return out


# ---------------------------------------------------------------------------
# Routes: API index, cluster and nodes
# ---------------------------------------------------------------------------


@app.get("/api/v3")
def list_api():
    """The route catalogue, as the document prints it (in strict mode, the routes of the
    listener asked)."""
    return ok([{"name": n, "method": m, "path": p, "descr": d} for n, m, p, d in CATALOGUE
               if served_here(n)])


@app.get("/status")
def status():
    """Health text of the management listener (no credentials)."""
    node, state = seeding.node_name(1), "started"
    try:
        row = get_db().execute("SELECT name, node_status FROM nodes ORDER BY position"
                               " LIMIT 1").fetchone()
        running = row is not None and row["node_status"] == "Running"
        node = row["name"] if row else node
    except NotReady:  # still seeding, or the file went away: as a node that is booting
        running, state = False, "starting"
    except sqlite3.Error:
        running = False
    text = f"Node {node} is {state}\nemqx is {'running' if running else 'not_running'}"
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
    rows = node_rows().values()
    # A stopped member shows only its name and status (what 3.0.1 tries to render; it
    # crashes rendering it).
    if app.config["STRICT"] and not all_nodes_running():
        return text_answer(*CRASH)
    return ok([node_json(r) if r["node_status"] == "Running"
               else {"name": r["name"], "node_status": r["node_status"]} for r in rows])


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


def _list_rows(table, entity_sql, count_column, node):
    if node is not None:
        node_row(node)
    where, args = node_filter(node)
    return ok_items(*fetch_page_json(table, entity_sql, where, args,
                                     stat_total(count_column, node)))


def _lookup_rows(table, entity_sql, clientid, node):
    if node is not None:
        node_row(node)
    where, args = node_filter(node)
    return ok_items(joined_json(f"SELECT {entity_sql} AS doc FROM {table} WHERE client_id = ?"
                                f" AND {where} ORDER BY id", (clientid, *args)))


@api("list_connections")
@api("list_node_connections")
@paginated
def list_connections(node=None):
    """A list of connections in the cluster / on a node."""
    return _list_rows("connections", CONNECTION_SQL, "connections_count", node)


@api("lookup_connections")
@api("lookup_node_connections")
def lookup_connections(clientid, node=None):
    """Lookup a connection in the cluster / on a node."""
    return _lookup_rows("connections", CONNECTION_SQL, clientid, node)


@api("list_sessions")
@api("list_node_sessions")
@paginated
def list_sessions(node=None):
    """A list of sessions in the cluster / on a node."""
    return _list_rows("sessions", SESSION_SQL, "sessions_count", node)


@api("lookup_session")
@api("lookup_node_session")
def lookup_session(clientid, node=None):
    """Lookup a session in the cluster / on the node."""
    return _lookup_rows("sessions", SESSION_SQL, clientid, node)


@api("list_subscriptions")
@api("list_node_subscriptions")
@paginated
def list_subscriptions(node=None):
    """A list of subscriptions in the cluster / on a node."""
    return _list_rows("subscriptions", SUBSCRIPTION_SQL, "subscriptions_count", node)


@api("lookup_client_subscriptions")
@api("lookup_client_subscriptions_with_node")
def lookup_client_subscriptions(clientid, node=None):
    """A list of subscriptions of a client (on the node)."""
    return _lookup_rows("subscriptions", SUBSCRIPTION_SQL, clientid, node)


@api("list_routes")
@paginated
def list_routes():
    """List routes."""
    where, args = node_filter()
    if all_nodes_running():
        count = get_db().execute("SELECT routes_count FROM cluster_stats").fetchone()[0]
    else:  # a stopped node's routes leave the cluster table
        count = running_routes()
    return ok_items(*fetch_page_json("routes", ROUTE_SQL, where, args, count))


@api("lookup_routes")
def lookup_routes(topic):
    """Lookup routes to a topic."""
    where, args = node_filter()
    return ok_items(joined_json(f"SELECT {ROUTE_SQL} AS doc FROM routes WHERE topic = ?"
                                f" AND {where} ORDER BY id", (topic, *args)))


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


# A ban whose `until` (unix seconds) has passed is expired and no longer listed.
BANNED_ACTIVE = ("(until IS NULL OR json_type(until) NOT IN ('integer', 'real')"
                 " OR CAST(until AS REAL) >= ?)")


@api("list_banned")
@paginated
def list_banned():
    """List banned."""
    now = time.time()
    count = get_db().execute(f"SELECT count(*) FROM banned WHERE {BANNED_ACTIVE}",
                             (now,)).fetchone()[0]
    rows, meta = fetch_page("banned", "*", BANNED_ACTIVE, (now,), count)
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
    return ok([{"username": r["username"], "tags": undefined(json_value(r["tags"]))}
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


# ---------------------------------------------------------------------------
# Validation of write parameters
# ---------------------------------------------------------------------------


def missing(*names):
    return ApiError(MISSING_PARAM, f"missing mandatory params: {list(names)}")


def string_param(name, required=True, default=None):
    """A string parameter: 107 when required and absent, 108 when not a string."""
    value = params().get(name)
    if value is None:
        if required:
            raise missing(name)
        return default
    if not isinstance(value, str):
        raise ApiError(BAD_PARAM, f"'{name}' must be a string")
    return value


def qos_param():
    value = params().get("qos", 0)
    if isinstance(value, str) and value.strip() in ("0", "1", "2"):
        value = int(value)
    if type(value) is not int or value not in (0, 1, 2):
        raise ApiError(BAD_PARAM, "'qos' must be 0, 1 or 2")
    return value


def bool_param(name, default=False):
    value = params().get(name, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ApiError(BAD_PARAM, f"'{name}' must be true or false")
    return value


# A write holds the database's lock while it works, so its work is bounded: the topics one
# publish or subscribe may name, and the rows it may deliver to or examine (about 10 s on
# two cores, well inside the worker timeout; past it the request changes nothing).
MAX_TOPICS = 1000
WORK_BUDGET = 1_000_000


def spend(units):
    """Count work done by this request; 108 (and a rollback) past WORK_BUDGET."""
    g.work = g.get("work", 0) + units
    if g.work > WORK_BUDGET:
        raise ApiError(BAD_PARAM, f"too much for one request: it would deliver to or examine"
                                  f" more than {WORK_BUDGET} rows; split it")


def topic_list():
    """`topic` (else `topics`), split on commas; 107 if neither is given."""
    p = params()
    name = "topic" if p.get("topic") is not None or "topics" not in p else "topics"
    topics = string_param(name).split(",")
    if len(topics) > MAX_TOPICS:
        raise ApiError(BAD_PARAM, f"'{name}' names {len(topics)} topics: at most {MAX_TOPICS}"
                                  " in one request")
    return topics


MAX_TOPIC_BYTES = 4096


def valid_filter(topic):
    """MQTT topic filter rules, `$share/<group>/` and `$queue/` understood."""
    if not topic or len(topic.encode()) > MAX_TOPIC_BYTES or "\0" in topic:
        return False
    route, share = split_share(topic) if "/" in topic else (topic, None)
    if share is not None and (not route or (share != "$queue" and (
            not share or "+" in share or "#" in share))):
        return False
    levels = route.split("/")
    for i, word in enumerate(levels):
        if word == "#" and i != len(levels) - 1:
            return False
        if word not in ("#", "+") and ("#" in word or "+" in word):
            return False
    return True


def valid_name(topic):
    return (bool(topic) and len(topic.encode()) <= MAX_TOPIC_BYTES and "\0" not in topic
            and "+" not in topic and "#" not in topic)


def topic_matches(topic_filter, name):
    """Does a (share-free) filter match a topic name? `$` topics escape leading wildcards."""
    f_levels, n_levels = topic_filter.split("/"), name.split("/")
    if name.startswith("$") and f_levels[0] in ("+", "#"):
        return False
    for i, word in enumerate(f_levels):
        if word == "#":
            return True
        if i >= len(n_levels) or (word != "+" and word != n_levels[i]):
            return False
    return len(f_levels) == len(n_levels)


def split_share(topic):
    """`$share/g/t` -> ("t", "g"); `$queue/t` -> ("t", "$queue"); `t` -> ("t", None)."""
    if topic.startswith("$share/"):
        parts = topic.split("/", 2)
        return (parts[2] if len(parts) == 3 else ""), parts[1]
    if topic.startswith("$queue/"):
        return topic[len("$queue/"):], "$queue"
    return topic, None


# ---------------------------------------------------------------------------
# Broker rules: metrics, routing, delivery
# ---------------------------------------------------------------------------

_PACKET_TOTALS = {**dict.fromkeys(RECEIVED_PACKETS, "packets/received"),
                  **dict.fromkeys(SENT_PACKETS, "packets/sent")}


def bump(db, counts):
    """Add {(node, metric): n} to the metrics; packet counters roll up into packets/*."""
    rows = []
    for (node, key), n in counts.items():
        rows.append((n, node, key))
        if key in _PACKET_TOTALS:
            rows.append((n, node, _PACKET_TOTALS[key]))
    db.executemany("UPDATE metrics SET value = value + ? WHERE node = ? AND key = ?", rows)


def publish_size(topic, payload, qos):
    """Bytes of an MQTT PUBLISH packet: fixed header, topic, packet id, payload."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + len(payload)
    length_bytes = 1 + (remaining >= 128) + (remaining >= 16384) + (remaining >= 2097152)
    return 1 + length_bytes + remaining


def _route_exists(db, topic):
    return db.execute("SELECT 1 FROM routes WHERE topic = ? LIMIT 1", (topic,)).fetchone()


def _prefix_exists(db, prefix):
    # Every filter starting with `prefix/`: a range scan on the routes' topic index.
    return db.execute("SELECT 1 FROM routes WHERE topic > ? AND topic < ? LIMIT 1",
                      (prefix + "/", prefix + "0")).fetchone()


def matching_filters(db, name):
    """The route filters that match a topic name, found by walking the levels.

    Like the broker's trie: each level extends only the prefixes that some filter has,
    so the cost follows the topic's depth and the filters that share its prefix,
    not the number of subscriptions.
    """
    levels = name.split("/")
    dollar = name.startswith("$")
    found = set()
    frontier = [None]
    for i, word in enumerate(levels):
        last = i == len(levels) - 1
        nxt = []
        for prefix in frontier:
            wild_ok = not (i == 0 and dollar)
            if wild_ok:
                hash_filter = "#" if prefix is None else f"{prefix}/#"
                if _route_exists(db, hash_filter):
                    found.add(hash_filter)
            for w in (word, "+") if wild_ok else (word,):
                candidate = w if prefix is None else f"{prefix}/{w}"
                if last:
                    if _route_exists(db, candidate):
                        found.add(candidate)
                    if _route_exists(db, candidate + "/#"):
                        found.add(candidate + "/#")
                elif _prefix_exists(db, candidate):
                    nxt.append(candidate)
        frontier = nxt
    return found


def plugin_active(db, node, plugin):
    row = db.execute("SELECT active FROM plugins WHERE node = ? AND name = ?",
                     (node, plugin)).fetchone()
    return bool(row and row["active"])


def deliver(db, deliveries, counts, retain=False):
    """Hand each (subscriber row, topic, payload, qos) message over; returns how many were
    received or queued.

    Online sessions get it sent (and acknowledged, as a well-behaved device would);
    offline persistent sessions queue it up to max_mqueue, dropping beyond (a session met
    twice in one call sees its queue as it grows).
    """
    spend(len(deliveries))
    delivered, queued, dropped, traffic = [], [], [], []
    handed = []  # MQTT listener: (client_id, topic, payload, qos) delivered or queued
    queue_lengths = {}
    for sub, topic, payload, qos in deliveries:
        eff = min(qos, sub["qos"])
        node = sub["node"]
        if sub["online"]:
            delivered.append((sub["client_id"],))
            handed.append((sub["client_id"], topic, payload, eff))  # MQTT listener
            size = publish_size(topic, payload, eff)
            counts[(node, "messages/sent")] += 1
            counts[(node, f"messages/qos{eff}/sent")] += 1
            counts[(node, "packets/publish/sent")] += 1
            counts[(node, "bytes/sent")] += size
            # The device's acknowledgements: PUBACK, or PUBREC then (after our PUBREL) PUBCOMP.
            acks, sent_more = (0, 0) if eff == 0 else (1, 0) if eff == 1 else (2, 1)
            if eff == 1:
                counts[(node, "packets/puback/received")] += 1
            elif eff == 2:
                for key in ("packets/pubrec/received", "packets/pubcomp/received"):
                    counts[(node, key)] += 1
                counts[(node, "packets/pubrel/sent")] += 1
            counts[(node, "bytes/received")] += 4 * acks
            counts[(node, "bytes/sent")] += 4 * sent_more
            traffic.append((1 + sent_more, size + 4 * sent_more, acks, 4 * acks,
                            sub["client_id"]))
        elif (length := queue_lengths.get(sub["client_id"], sub["mqueue_len"])) \
                < sub["max_mqueue"] or sub["max_mqueue"] == 0:
            queued.append((sub["client_id"],))
            handed.append((sub["client_id"], topic, payload, eff))  # MQTT listener
            queue_lengths[sub["client_id"]] = length + 1
        else:
            dropped.append((sub["client_id"],))
    db.executemany("UPDATE sessions SET deliver_msg = deliver_msg + 1 WHERE client_id = ?",
                   delivered)
    db.executemany("UPDATE connections SET send_msg = send_msg + 1, send_cnt = send_cnt + ?1,"
                   " send_pkt = send_pkt + ?1, send_oct = send_oct + ?2,"
                   " recv_cnt = recv_cnt + ?3, recv_pkt = recv_pkt + ?3, recv_oct = recv_oct + ?4"
                   " WHERE client_id = ?5", traffic)
    db.executemany("UPDATE sessions SET enqueue_msg = enqueue_msg + 1,"
                   " mqueue_len = mqueue_len + 1 WHERE client_id = ?", queued)
    db.executemany("UPDATE sessions SET enqueue_msg = enqueue_msg + 1,"
                   " mqueue_dropped = mqueue_dropped + 1 WHERE client_id = ?", dropped)
    # MQTT listener (mqtt.py): a message for a session that a real client began goes to the
    # outbox, which the listener sends on the client's socket (now, or when it is back).
    if handed and db.execute("SELECT 1 FROM mqtt_sessions LIMIT 1").fetchone():
        now = time.time()
        db.executemany("INSERT INTO mqtt_outbox (client_id, topic, payload, qos, retain, created)"
                       " SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM mqtt_sessions"
                       " WHERE client_id = ?1) AND (EXISTS (SELECT 1 FROM mqtt_sockets WHERE"
                       " client_id = ?1) OR NOT EXISTS (SELECT 1 FROM connections WHERE"
                       " client_id = ?1))", [(*h, int(retain), now) for h in handed])
    return len(delivered) + len(queued)


SUBSCRIBER_SQL = (
    "SELECT s.id, s.client_id, s.node, s.qos, s.share, s.route_topic,"
    " c.id IS NOT NULL AS online, ss.deliver_msg, ss.mqueue_len, ss.max_mqueue"
    " FROM subscriptions s JOIN sessions ss ON ss.client_id = s.client_id"
    " LEFT JOIN connections c ON c.client_id = s.client_id")


def route_message(db, topic, payload, qos, origin, counts):
    """Deliver a published message to every matching subscription, one per shared group."""
    filters = sorted(matching_filters(db, topic))
    if not filters:
        return 0
    running = set(running_nodes())
    rows = [r for r in db.execute(
        f"{SUBSCRIBER_SQL} WHERE s.route_topic IN ({','.join('?' * len(filters))})"
        " ORDER BY s.id", filters) if r["node"] in running]
    plain = [r for r in rows if r["share"] is None]
    groups = {}
    for r in rows:
        if r["share"] is not None:
            groups.setdefault((r["share"], r["route_topic"]), []).append(r)
    for members in groups.values():
        # One member per group: an online one if any, the least loaded, then the oldest.
        plain.append(min(members, key=lambda r: (not r["online"], r["deliver_msg"], r["id"])))
    # Forwarded once to every other node that has a receiver.
    counts[(origin, "messages/forward")] += len({r["node"] for r in plain} - {origin})
    return deliver(db, [(sub, topic, payload, qos) for sub in plain], counts)


def publish(db, topic, payload, qos, retain, origin, device=None):
    """What the broker does with one message arriving at `origin`: count, retain, route.

    Only a device's PUBLISH (`device`: its client id, connected to `origin`) is a message
    received, with its packet, its bytes and the acknowledgement it gets. A message
    published through the API is not (as in 3.0.1, where only the connection processes
    count what they receive): it is only delivered, or dropped.
    """
    counts = Counter()
    if device is not None:
        size = publish_size(topic, payload, qos)
        for key in ("messages/received", f"messages/qos{qos}/received",
                    "packets/publish/received"):
            counts[(origin, key)] += 1
        # QoS 1: our PUBACK. QoS 2: our PUBREC, the device's PUBREL, our PUBCOMP.
        sent = {0: (), 1: ("packets/puback/sent",),
                2: ("packets/pubrec/sent", "packets/pubcomp/sent")}[qos]
        received = ("packets/pubrel/received",) if qos == 2 else ()
        for key in (*sent, *received):
            counts[(origin, key)] += 1
        counts[(origin, "bytes/received")] += size + 4 * len(received)
        counts[(origin, "bytes/sent")] += 4 * len(sent)
        db.execute("UPDATE connections SET recv_msg = recv_msg + 1, recv_cnt = recv_cnt + ?1,"
                   " recv_pkt = recv_pkt + ?1, recv_oct = recv_oct + ?2,"
                   " send_cnt = send_cnt + ?3, send_pkt = send_pkt + ?3,"
                   " send_oct = send_oct + ?4 WHERE client_id = ?5",
                   (1 + len(received), size + 4 * len(received), len(sent), 4 * len(sent),
                    device))
    if retain and plugin_active(db, origin, "emqx_retainer"):
        if payload:
            db.execute("INSERT INTO retained (topic, payload, qos, created_at)"
                       " VALUES (?, ?, ?, ?) ON CONFLICT (topic) DO UPDATE SET"
                       " payload = excluded.payload, qos = excluded.qos,"
                       " created_at = excluded.created_at",
                       (topic, payload, qos, int(time.time())))
        else:
            db.execute("DELETE FROM retained WHERE topic = ?", (topic,))
    if not route_message(db, topic, payload, qos, origin, counts):
        counts[(origin, "messages/dropped")] += 1
    bump(db, counts)


def subscribe(db, session, topic, qos):
    """Add or update one subscription; a new one receives the matching retained messages."""
    route, share = split_share(topic)
    cur = db.execute("UPDATE subscriptions SET qos = ? WHERE client_id = ? AND topic = ?",
                     (qos, session["client_id"], topic))
    if cur.rowcount:
        return
    db.execute(SUBSCRIPTION_INSERT,
               (session["client_id"], session["node"], topic, qos, route, share))
    if share is not None or not plugin_active(db, session["node"], "emqx_retainer"):
        return
    retained = retained_matching(db, route)
    if retained:
        sub = db.execute(f"{SUBSCRIBER_SQL} WHERE s.client_id = ? AND s.topic = ?",
                         (session["client_id"], topic)).fetchone()
        counts = Counter()
        deliver(db, [(sub, r["topic"], r["payload"], r["qos"]) for r in retained], counts,
                retain=True)  # MQTT listener: sent with the RETAIN flag
        bump(db, counts)


def retained_matching(db, topic_filter):
    """The retained messages a (share-free) filter matches, found through the indexes: the
    topic itself, the range of topics under the filter's literal prefix, or the topics of
    the depths the filter can match."""
    sql = "SELECT topic, payload, qos FROM retained"
    levels = topic_filter.split("/")
    wild = next((i for i, word in enumerate(levels) if word in ("+", "#")), None)
    if wild is None:
        return db.execute(f"{sql} WHERE topic = ?", (topic_filter,)).fetchall()
    if wild:
        prefix = "/".join(levels[:wild])
        rows = db.execute(f"{sql} WHERE topic = ? OR (topic > ? AND topic < ?) ORDER BY topic",
                          (prefix, prefix + "/", prefix + "0"))
    elif levels[-1] == "#":
        rows = db.execute(f"{sql} WHERE levels >= ? ORDER BY topic", (len(levels) - 1,))
    elif levels[-1] == "+":
        rows = db.execute(f"{sql} WHERE levels = ? ORDER BY topic", (len(levels),))
    else:
        rows = db.execute(f"{sql} WHERE levels = ? AND last_level = ? ORDER BY topic",
                          (len(levels), levels[-1]))
    rows = rows.fetchall()
    spend(len(rows))
    return [r for r in rows if topic_matches(topic_filter, r["topic"])]


def session_for(db, client_id):
    """The client's session on a running node, or 112 session_not_found."""
    where, args = node_filter()
    row = db.execute(f"SELECT client_id, node FROM sessions WHERE client_id = ? AND {where}",
                     (client_id, *args)).fetchone()
    if row is None:
        raise ApiError(CLIENT_NOT_FOUND, "session_not_found")
    return row


def disconnect(db, client_id, reason):
    """Close a client's connection; a clean session goes with it. False if not connected."""
    where, args = node_filter()
    conn = db.execute(f"SELECT id, node, listener_id, clean_start FROM connections"
                      f" WHERE client_id = ? AND {where}", (client_id, *args)).fetchone()
    if conn is None:
        return False
    close_connection(db, conn, client_id, reason)
    return conn


def close_connection(db, conn, client_id, reason):
    """Remove a connection row ({id, listener_id, clean_start}; a clean session goes with
    it) and count `reason` in its listener's shutdown_count."""
    db.execute("DELETE FROM connections WHERE id = ?", (conn["id"],))
    if conn["clean_start"]:
        db.execute("DELETE FROM sessions WHERE client_id = ?", (client_id,))
    path = f'$."{reason}"'
    db.execute("UPDATE listeners SET shutdown_count = json_set(shutdown_count, ?,"
               " coalesce(json_extract(shutdown_count, ?), 0) + 1) WHERE id = ?",
               (path, path, conn["listener_id"]))


def banned_now(db, kind, who):
    """Is `who` (a client id, username or IP address) under an active ban?"""
    return who is not None and db.execute(
        f"SELECT 1 FROM banned WHERE kind = ? AND who = ? AND {BANNED_ACTIVE}",
        (kind, who, time.time())).fetchone() is not None


def connect_client(db, node, client_id, username=None, clean=True, proto_ver=4, keepalive=60,
                   ip="127.0.0.1", port=0, subscriptions=()):
    """A device's CONNECT reaching `node`; False if refused by a ban (the CONNECT counts).

    An existing connection of the same client id is taken over; a persistent session
    resumes (its queue drains to the device) or moves to this node with its
    subscriptions; `subscriptions` ((filter, qos) pairs) are then subscribed as one
    SUBSCRIBE.
    """
    counts = Counter({(node, "packets/connect"): 1, (node, "packets/connack"): 1,
                      (node, "bytes/received"): 14 + len(client_id.encode())
                      + len((username or "").encode()), (node, "bytes/sent"): 4})
    if (banned_now(db, "client_id", client_id) or banned_now(db, "username", username)
            or banned_now(db, "ip_address", ip)):
        bump(db, counts)
        return False
    if db.execute("SELECT 1 FROM connections WHERE client_id = ?", (client_id,)).fetchone():
        disconnect(db, client_id, "discarded")  # takeover: the old connection goes
    session = db.execute("SELECT * FROM sessions WHERE client_id = ?", (client_id,)).fetchone()
    if session is not None and (clean or session["node"] != node):
        _end_or_move_session(db, session, node, clean)
        session = None if clean else session
    now = int(time.time())
    if session is None or clean:
        db.execute(SESSION_INSERT, (client_id, node, username, int(clean), now,
                                    0 if clean else 7200, 376, 200, 0, 0, 0, 0))
    elif drained := session["mqueue_len"]:  # the queue drains to the device that came back
        db.execute("UPDATE sessions SET mqueue_len = 0, deliver_msg = deliver_msg + ?"
                   " WHERE client_id = ?", (drained, client_id))
        counts[(node, "messages/sent")] += drained
        counts[(node, "messages/qos1/sent")] += drained  # a queue keeps no QoS here: 1
        counts[(node, "packets/publish/sent")] += drained
    listener = db.execute("SELECT id FROM listeners WHERE node = ? AND protocol = 'mqtt:tcp'"
                          " ORDER BY id LIMIT 1", (node,)).fetchone()["id"]
    # Its stats so far: its CONNECT, our CONNACK, and any queue drained to it.
    drained = 0 if session is None or clean else session["mqueue_len"]
    db.execute(CONNECTION_INSERT, (client_id, node, listener, username, ip, port,
                                   "MQIsdp" if proto_ver == 3 else "MQTT", proto_ver,
                                   keepalive, int(clean), now, counts[(node, "bytes/received")],
                                   1, 0, 1, 4, 1 + drained, drained, 1 + drained, 376, 200))
    bump(db, counts)
    if subscriptions:
        bump(db, {(node, "packets/subscribe"): 1, (node, "packets/suback"): 1})
        for topic, qos in subscriptions:
            subscribe(db, {"client_id": client_id, "node": node}, topic, qos)
    return True


def _end_or_move_session(db, session, node, clean):
    """A clean start ends the old session; a persistent one moves to `node`, taking its
    subscriptions along (no SUBSCRIBE from the device, so no retained delivery)."""
    client_id = session["client_id"]
    kept = [] if clean else db.execute(
        "SELECT topic, qos FROM subscriptions WHERE client_id = ? ORDER BY id",
        (client_id,)).fetchall()
    db.execute("DELETE FROM sessions WHERE client_id = ?", (client_id,))
    if clean:
        return
    columns = [k for k in session.keys() if k not in ("id", "subscriptions_count")]
    db.execute(f"INSERT INTO sessions ({', '.join(columns)}) VALUES"
               f" ({', '.join('?' * len(columns))})",
               [node if k == "node" else session[k] for k in columns])
    db.executemany(SUBSCRIPTION_INSERT, [(client_id, node, r["topic"], r["qos"],
                                          *split_share(r["topic"])) for r in kept])


# ---------------------------------------------------------------------------
# Routes: connections and pub/sub (writes)
# ---------------------------------------------------------------------------


@api("kickout_connection")
def kickout_connection(clientid):
    """Kick out a connection."""
    with transaction() as db:
        conn = disconnect(db, clientid, "kicked")
        if not conn:
            # 3.0.1 crashes here (3.1 answers this code)
            raise ApiError(CLIENT_NOT_FOUND, "not_found", strict=CRASH)
        bump(db, {(conn["node"], "packets/disconnect/sent"): 1})
    return ok()


@api("clean_acl_cache")
def clean_acl_cache(clientid, topic):
    """Clean ACL cache of a connection."""
    where, args = node_filter()
    if get_db().execute(f"SELECT 1 FROM connections WHERE client_id = ? AND {where}",
                        (clientid, *args)).fetchone() is None:
        raise ApiError(CLIENT_NOT_FOUND, "not_found")
    return ok()


@api("mqtt_publish")
def mqtt_publish():
    """Publish a MQTT message."""
    topics = topic_list()
    payload = string_param("payload", required=False, default="").encode()
    qos = qos_param()
    retain = bool_param("retain")
    client_id = string_param("client_id", required=False)
    if any(not t or len(t.encode()) > MAX_TOPIC_BYTES or "\0" in t for t in topics):
        raise ApiError(BAD_TOPIC, "bad_topic", strict=CRASH)  # 3.0.1's validation crashes
    names = [t for t in topics if valid_name(t)]  # names with wildcards are dropped
    if not names:
        raise ApiError(BAD_TOPIC, "bad_topic")
    with transaction() as db:
        if not running_nodes():
            raise ApiError(UNKNOWN_ERROR, "nodedown")
        origin = running_nodes()[0]
        if client_id:
            row = db.execute("SELECT node FROM connections WHERE client_id = ?",
                             (client_id,)).fetchone()
            if row is not None and row["node"] in running_nodes():
                origin = row["node"]
        for name in names:
            publish(db, name, payload, qos, retain, origin)
    return ok()


def client_id_param():
    """The client id of a subscribe or unsubscribe (3.0.1 looks up no session without one)."""
    if params().get("client_id") is None:
        raise ApiError(MISSING_PARAM, "missing mandatory params: ['client_id']",
                       strict=ApiError(CLIENT_NOT_FOUND, "session_not_found"))
    return string_param("client_id")


@api("mqtt_subscribe")
def mqtt_subscribe():
    """Subscribe a topic."""
    client_id = client_id_param()
    topics = topic_list()
    qos = qos_param()
    if not all(valid_filter(t) for t in topics):
        raise ApiError(BAD_TOPIC, "bad_topic", strict=CRASH)  # 3.0.1's validation crashes
    with transaction() as db:
        session = session_for(db, client_id)
        for topic in dict.fromkeys(topics):
            subscribe(db, session, topic, qos)
    return ok()


@api("mqtt_unsubscribe")
def mqtt_unsubscribe():
    """Unsubscribe a topic."""
    client_id = client_id_param()
    topic = string_param("topic")  # 3.0 reads only `topic` here, and does not split it
    if not valid_filter(topic):
        raise ApiError(BAD_TOPIC, "bad_topic", strict=CRASH)  # 3.0.1's validation crashes
    with transaction() as db:
        session = session_for(db, client_id)
        db.execute("DELETE FROM subscriptions WHERE client_id = ? AND topic = ?",
                   (session["client_id"], topic))
    return ok()


# ---------------------------------------------------------------------------
# Routes: plugins, bans, apps, users, configs (writes)
# ---------------------------------------------------------------------------


def _set_plugin(node, plugin, active):
    with transaction() as db:
        node = node_row(node)["name"]
        row = db.execute("SELECT active FROM plugins WHERE node = ? AND name = ?",
                         (node, plugin)).fetchone()
        if row is None:
            raise ApiError(UNKNOWN_ERROR, "not_found")
        if bool(row["active"]) == active:
            raise ApiError(UNKNOWN_ERROR, "already_started" if active else "not_started")
        db.execute("UPDATE plugins SET active = ? WHERE node = ? AND name = ?",
                   (int(active), node, plugin))
    return ok()


@api("load_plugin")
def load_plugin(node, plugin):
    """Load a plugin."""
    return _set_plugin(node, plugin, True)


@api("unload_plugin")
def unload_plugin(node, plugin):
    """Unload a plugin."""
    return _set_plugin(node, plugin, False)


BANNED_KINDS = ("client_id", "username", "ip_address")
BAD_AS = "value of 'as' must be one of: ['client_id', 'username', 'ip_address']"


def _banned_key(who, kind):
    """Validate `as`, and put IP addresses in dotted form."""
    if kind not in BANNED_KINDS:
        raise ApiError(BAD_PARAM, BAD_AS, strict=SAME)  # 3.0.1's own answer
    if not isinstance(who, str) or not who:
        raise ApiError(BAD_PARAM, "'who' must be a non-empty string")
    if kind == "ip_address":
        try:
            who = str(ipaddress.ip_address(who))
        except ValueError:
            raise ApiError(BAD_PARAM, f"'who' is not an IP address: {who}") from None
    return who


@api("create_banned")
def create_banned():
    """Create banned."""
    p = params()
    if p.get("who") is None or p.get("as") is None:
        raise ApiError(MISSING_PARAM, "missing mandatory params: ['who', 'as']", strict=SAME)
    who = _banned_key(p["who"], p["as"])
    until = p.get("until")
    if until is not None:
        if isinstance(until, str) and not until.strip().isdigit():
            raise ApiError(BAD_PARAM, "'until' must be an integer (unix seconds)")
        until = strict_int(until, "until")
    values = [None if p.get(k) is None else json.dumps(p[k]) for k in ("reason", "by", "desc")]
    with transaction() as db:
        db.execute("INSERT INTO banned (who, kind, reason, by, desc, until)"
                   " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (who, kind) DO UPDATE SET"
                   " reason = excluded.reason, by = excluded.by, desc = excluded.desc,"
                   " until = excluded.until",
                   (who, p["as"], *values, None if until is None else json.dumps(until)))
    return ok(dict(p))


@api("delete_banned")
def delete_banned(who):
    """Delete banned."""
    kind = params().get("as")
    if kind is None:
        raise ApiError(MISSING_PARAM, "missing mandatory params: ['as']", strict=SAME)
    who = _banned_key(who, kind)
    with transaction() as db:
        db.execute("DELETE FROM banned WHERE who = ? AND kind = ?", (who, kind))
    return ok()


def generate_secret():
    """A secret shaped like the broker's: base64 of a 128-bit time-based GUID in decimal."""
    guid = (time.time_ns() // 1000) << 64 | secrets.randbits(64)
    return base64.b64encode(str(guid).encode()).decode().rstrip("=")


APP_FIELDS = ("name", "desc", "status", "expired")


@api("add_app")
def add_app():
    """Add Application."""
    app_id = string_param("app_id")
    secret = string_param("secret", required=False) or generate_secret()
    if not app_id:
        raise ApiError(BAD_PARAM, "'app_id' must not be empty")
    with transaction() as db:
        try:
            insert_app(db, app_id, secret, *(params().get(k) for k in APP_FIELDS))
        except sqlite3.IntegrityError:
            raise ApiError(UNKNOWN_ERROR, "alread_existed") from None  # sic
    return ok({"secret": secret})


@api("update_app")
def update_app(appid):
    """Update Application."""
    with transaction() as db:
        # All four fields are overwritten; omitted ones become undefined (as the broker).
        cur = db.execute("UPDATE apps SET name = ?, desc = ?, status = ?, expired = ?"
                         " WHERE app_id = ?",
                         (*(json.dumps(params().get(k)) for k in APP_FIELDS), appid))
        if not cur.rowcount:
            raise ApiError(UNKNOWN_ERROR, "ont_found")  # sic
    return ok()


@api("del_app")
def del_app(appid):
    """Delete Application."""
    with transaction() as db:
        db.execute("DELETE FROM apps WHERE app_id = ?", (appid,))
    return ok()


def char_codes(text):
    """The dashboard API answers some errors with an Erlang string: a list of char codes."""
    return [ord(c) for c in text]


def user_password(db, username):
    row = db.execute("SELECT password FROM users WHERE username = ?", (username,)).fetchone()
    return None if row is None else row["password"]


@api("auth_user")
def auth_user():
    """Authenticate an user."""
    username = string_param("username", required=False)
    password = string_param("password", required=False)
    if username is None:
        raise ApiError(UNKNOWN_ERROR, "Username undefined")
    if password is None:
        raise ApiError(UNKNOWN_ERROR, "Password undefined")
    stored = user_password(get_db(), username)
    if stored is None:
        raise ApiError(UNKNOWN_ERROR, "Username Not Found")
    if not password_ok(stored, password):
        raise ApiError(UNKNOWN_ERROR, "Password Error")
    return ok()


@api("create_user")
def create_user():
    """Create an user."""
    username = string_param("username", required=False)
    password = string_param("password", required=False)
    if not username or not password:
        raise ApiError(UNKNOWN_ERROR, "Username or password undefined")
    hashed = hash_password(password)
    with transaction() as db:
        try:
            insert_user(db, username, hashed, params().get("tags"))
        except sqlite3.IntegrityError:
            raise ApiError(UNKNOWN_ERROR, char_codes("username already exist")) from None
    return ok()


@api("update_user")
def update_user(name):
    """Update an user."""
    with transaction() as db:
        cur = db.execute("UPDATE users SET tags = ? WHERE username = ?",
                         (json.dumps(params().get("tags")), name))
        if not cur.rowcount:
            raise ApiError(UNKNOWN_ERROR, "username_not_found")
    return ok()


@api("delete_user")
def delete_user(name):
    """Delete an user."""
    if name == "admin":
        raise ApiError(UNKNOWN_ERROR, "Cannot delete admin")
    with transaction() as db:
        if not db.execute("DELETE FROM users WHERE username = ?", (name,)).rowcount:
            raise ApiError(UNKNOWN_ERROR, char_codes("Username Not Found"))
    return ok()


@api("change_pwd")
def change_pwd(username):
    """Change password for an user."""
    old = string_param("old_pwd", required=False)
    if old is None:
        raise ApiError(UNKNOWN_ERROR, "Password undefined")
    with transaction() as db:
        stored = user_password(db, username)
        if stored is None:
            raise ApiError(UNKNOWN_ERROR, "Username Not Found")
        if not password_ok(stored, old):
            raise ApiError(UNKNOWN_ERROR, "Password Error")
        new = string_param("new_pwd")
        if not new:
            raise ApiError(BAD_PARAM, "'new_pwd' must not be empty")
        db.execute("UPDATE users SET password = ? WHERE username = ?",
                   (hash_password(new), username))
    return ok()


def config_type(value):
    """The clique datatype a value would be registered with."""
    if value.lstrip("-").isdigit():
        return "integer"
    if value in ("on", "off", "true", "false"):
        return "flag"
    return "string"


def _set_config(nodes, app_name):
    key = string_param("key")
    value = string_param("value")
    if not key:
        raise ApiError(BAD_PARAM, "'key' must not be empty")
    with transaction() as db:
        # An application the node has: EMQ X itself, or one of its plugins.
        if app_name != "emqx" and db.execute("SELECT 1 FROM plugins WHERE name = ? LIMIT 1",
                                             (app_name,)).fetchone() is None:
            raise not_found()
        if app.config["STRICT"]:  # stock 3.0.1 whitelists no key: clique refuses, exit 1
            raise ApiError(UNKNOWN_ERROR, 1)
        db.executemany(
            "INSERT INTO configs (node, app, key, value, datatpye) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (node, app, key) DO UPDATE SET value = excluded.value,"
            " datatpye = excluded.datatpye",
            [(n, app_name, key, value, config_type(value)) for n in nodes])
    return ok()


@api("update_config")
def update_config(app):
    """Update config of an application in the cluster."""
    return _set_config(running_nodes(), app)


@api("update_node_config")
def update_node_config(node, app):
    """Update config of an application on a node."""
    return _set_config([node_row(node)["name"]], app)


@api("update_plugin_configs")
def update_plugin_configs(node, plugin):
    """Update configurations of a plugin on the node."""
    node = node_row(node)["name"]
    body = request.get_data(cache=True)
    if not body.strip():
        raise missing("<plugin configuration object>")
    submitted = {k: v for k, v in params().items() if k not in request.args}
    if not all(isinstance(v, str) for v in submitted.values()):
        raise ApiError(UNKNOWN_ERROR, "unknown_error")
    with transaction() as db:
        if db.execute("SELECT 1 FROM plugins WHERE node = ? AND name = ?",
                      (node, plugin)).fetchone() is None:
            raise not_found()
        # The stored set is replaced by exactly the submitted keys (as the broker does).
        db.execute("UPDATE plugin_configs SET value = NULL WHERE node = ? AND plugin = ?",
                   (node, plugin))
        top = db.execute("SELECT coalesce(max(position), -1) FROM plugin_configs"
                         " WHERE node = ? AND plugin = ?", (node, plugin)).fetchone()[0]
        for i, (key, value) in enumerate(submitted.items(), start=top + 1):
            db.execute("INSERT INTO plugin_configs (node, plugin, position, key, value)"
                       " VALUES (?, ?, ?, ?, ?) ON CONFLICT (node, plugin, key)"
                       " DO UPDATE SET value = excluded.value", (node, plugin, i, key, value))
    return ok()


# ---------------------------------------------------------------------------
# Command line: init-db (the other commands are in cli.py)
# ---------------------------------------------------------------------------


def seed_with_bar(path, seed, nodes, clients, build):
    """Run `build(progress)` under a progress bar of the devices stored (on a terminal; a
    line per tenth in a log), then say what the database holds."""
    total = nodes * (clients + clients // 10)
    if sys.stdout.isatty():
        with click.progressbar(length=total, label="Seeding devices", show_pos=True) as bar:
            build(bar.update)
    else:
        done, said = 0, 0

        def progress(n):
            nonlocal done, said
            done += n
            if done * 10 // max(total, 1) > said:
                said = done * 10 // max(total, 1)
                click.echo(f"Seeding devices: {done} of {total} ({said * 10}%)")

        click.echo(f"Seeding {path}: {total} devices")
        build(progress)
    click.echo(f"{path}: seed {seed}, {nodes} node(s), {clients} client(s) per node")


@app.cli.command("init-db")
def init_db_command():
    """Create and seed the database (STANDIN_DB) unless it exists already."""
    path = app.config["DATABASE"]
    if os.path.exists(path) and os.path.getsize(path):
        created = ensure_database(path, app.config)
        click.echo(("Created and seeded " if created else "Already initialised: ") + path)
        return
    seed_with_bar(path, app.config["SEED"], app.config["NODES"], app.config["CLIENTS"],
                  lambda progress: ensure_database(path, app.config, progress=progress))


# ---------------------------------------------------------------------------
# The stand-in's own parts, beside the API. Imported last, as in Flask's "large
# applications" pattern: they use what this module defines.
# ---------------------------------------------------------------------------

import cli  # noqa: E402
import seed as seeding  # noqa: E402
import standin  # noqa: E402

app.register_blueprint(standin.bp)
for _command in cli.commands.commands.values():
    app.cli.add_command(_command)
