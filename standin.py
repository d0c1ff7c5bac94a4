"""The stand-in's own parts: the /_standin/ controls and the pages. Not EMQ X, never in the
catalogue.

A Blueprint registered by app.py: reset, simulated devices, alarms, node stop/start, fault
injection (with its own request hook), the request journal (its own hook, table and file),
the OpenAPI document and its explorer, and the live overview page. Every control answers
in the API's envelope and takes the API's credentials.
"""

import contextlib
import functools
import hashlib
import inspect
import ipaddress
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import threading
import time
from functools import cache
from urllib.parse import unquote

from flask import Blueprint
from flask import current_app
from flask import g
from flask import request
from flask import Response
from flask import send_from_directory

import seed as seeding
from app import alarm_json
from app import bool_param
from app import bump
from app import CATALOGUE
from app import connect_client
from app import CONNECTION_SQL
from app import disconnect
from app import EMQX_VERSION
from app import int_param
from app import local_time
from app import node_filter
from app import node_row
from app import params
from app import publish
from app import qos_param
from app import running_nodes
from app import strict_int
from app import string_param
from app import valid_filter
from app import valid_name
from app import VERSION
from database import build_world
from database import database_path
from database import drop_thread_connection
from database import ensure_database
from database import execute_waiting
from database import get_db
from database import SCHEMA_VERSION
from database import thread_connection
from database import transaction
from minirest import ApiError
from minirest import auth
from minirest import BAD_PARAM
from minirest import BAD_TOPIC
from minirest import caller_of
from minirest import CLIENT_NOT_FOUND
from minirest import error_response
from minirest import may_have_body
from minirest import not_found
from minirest import ok
from minirest import raw_ok
from minirest import UNKNOWN_ERROR
from server import masked_query
from server import SECRET_WORDS

bp = Blueprint("standin", __name__)

SEVERITIES = ("notice", "warning", "error", "critical")
# Clients (all nodes together) a reset may seed within one request: about 5 s on 2 cores,
# well inside the worker timeout. Larger worlds go through the CLI.
MAX_RESET_CLIENTS = 100_000


@bp.record_once
def _settings(state):
    state.app.config.setdefault(
        "JOURNAL_SIZE", int(os.environ.get("STANDIN_JOURNAL_SIZE", "1000")))
    state.app.config.setdefault("MAX_WORLDS", int(os.environ.get("STANDIN_MAX_WORLDS", "64")))


@cache
def api_route_names():
    """Endpoint names of every /api/v3 route (what faults and the journal call a route)."""
    return frozenset(rule.endpoint for rule in current_app.url_map.iter_rules()
                     if rule.rule.startswith("/api/v3"))


def rebuild(db, seed, nodes, clients, progress=None, origin=None):
    """Replace the whole world by a freshly seeded one, atomically: readers in other
    workers see the old world until the commit (WAL snapshots), then the new one, never a
    mix. A small world is copied from a seeded template of the same settings (about a
    millisecond); a large one is seeded. `origin`: the settings the world was created with
    (kept across resets); these settings by default. The file gives space back when the
    new world is much smaller; the journal starts over.
    """
    origin = origin or {"seed": seed, "nodes": nodes, "clients": clients}
    if nodes * (clients + clients // 10) <= TEMPLATE_MAX and progress is None:
        restore_file(db, template(seed, nodes, clients))
        with transaction(db):
            shift_from_template(db)
            seeding.set_origin(db, origin)
    else:
        db.execute("PRAGMA foreign_keys = OFF")  # only takes effect outside a transaction
        try:
            with transaction(db):
                for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type ="
                                          " 'table' AND name NOT LIKE 'sqlite_%'").fetchall():
                    db.execute(f'DROP TABLE "{name}"')
                build_world(db, seed, nodes, clients,
                            (current_app.config["APP_ID"], current_app.config["APP_SECRET"]),
                            progress)
                seeding.set_origin(db, origin)
        finally:
            db.execute("PRAGMA foreign_keys = ON")
    shrink(db)
    clear_journal_table()


# ---------------------------------------------------------------------------
# Templates, worlds and snapshots: whole states, copied as files or with SQLite's backup
# ---------------------------------------------------------------------------

TEMPLATE_MAX = 22_000  # devices of a world kept as a seeded template (a few MB)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def _beside(suffix):
    """A folder beside the default database: standin.db -> standin-<suffix>/."""
    return os.path.splitext(current_app.config["DATABASE"])[0] + "-" + suffix


def template(seed, nodes, clients):
    """A seeded database of these settings, made once (and kept) beside the database."""
    key = hashlib.sha256(repr((SCHEMA_VERSION, seed, nodes, clients,
                               current_app.config["APP_ID"], current_app.config["APP_SECRET"])
                              ).encode()).hexdigest()[:16]
    folder = _beside("templates")
    path = os.path.join(folder, f"{seed}-{nodes}-{clients}-{key}.db")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        made = f"{path}.{os.getpid()}.{threading.get_ident()}.new"
        ensure_database(made, current_app.config, seed, nodes, clients)
        os.replace(made, path)  # whole or not at all, whoever makes it first
    return path


def restore_file(db, path):
    """Replace what `db` holds by the database in `path`, in one write (SQLite's backup)."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        source.backup(db)
    finally:
        source.close()
    db.forget()  # a backup moves neither its data_version nor its total_changes


def shift_from_template(db):
    """A world copied from a template looks seeded now (its times keep adding up)."""
    made = db.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
    if made:
        seeding.shift_times(db, int(time.time()) - int(made[0]))


def _check_name(name, what):
    if not isinstance(name, str) or not NAME.match(name):
        raise ApiError(BAD_PARAM, f"'{what}' must be 1 to 64 letters, digits, '.', '_' or '-',"
                                  " starting with a letter or digit")
    return name


def worlds_folder():
    return _beside("worlds")


def world_file(name):
    return os.path.join(worlds_folder(), name + ".db")


def world_files(path):
    """A database's files: the database, its WAL, its journal, its snapshots."""
    base = os.path.splitext(path)[0]
    return [path + "-wal", path + "-shm", base + "-journal.db", base + "-journal.db-wal",
            base + "-journal.db-shm", path]


def _root_only():
    if request.environ.get("standin.world"):
        raise not_found()  # worlds are made and listed at the root


class WorldMiddleware:
    """/worlds/<name>/... is the world <name>: the rest of the path is served as at the
    root, from that world's database (its own apps, users, journal and faults)."""

    def __init__(self, wsgi_app, flask_app):
        self.wsgi_app, self.flask_app = wsgi_app, flask_app

    def __call__(self, environ, start_response):
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        path, _, query = (raw or environ.get("PATH_INFO", "")).partition("?")
        if not path.startswith("/worlds/"):
            return self.wsgi_app(environ, start_response)
        _, _, name, rest = (path + "/").split("/", 3)
        with self.flask_app.app_context():
            database = world_file(name) if NAME.match(name) else None
        if database is None or not os.path.exists(database):
            body = json.dumps({"code": 404, "message": f"no such world: {name}"}).encode()
            start_response("404 NOT FOUND", [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(body)))])
            return [body]
        rest = "/" + rest.rstrip("/") if rest.rstrip("/") else "/"
        environ["standin.world"], environ["standin.database"] = name, database
        environ["PATH_INFO"] = unquote(rest)
        for key in ("RAW_URI", "REQUEST_URI"):
            if key in environ:
                environ[key] = rest + (f"?{query}" if query else "")
        return self.wsgi_app(environ, start_response)


@bp.record_once
def _serve_worlds(state):
    state.app.wsgi_app = WorldMiddleware(state.app.wsgi_app, state.app)


def world_entry(name):
    path = world_file(name)
    entry = {"name": name, "base": f"/worlds/{name}", "size": os.path.getsize(path)}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            entry["settings"] = seeding.world_settings(db)
        finally:
            db.close()
    except (sqlite3.Error, KeyError):
        entry["settings"] = None
    return entry


@bp.get("/_standin/worlds")
def list_worlds():
    """The worlds, each served under its base path (/worlds/<name>/...).

    Each a whole, independent state served under /worlds/<name>/ (api/v3, _standin,
    status), with its own credentials, journal and faults. At the root only."""
    _root_only()
    folder = worlds_folder()
    names = sorted(n[:-3] for n in os.listdir(folder) if n.endswith(".db")
                   and not n.endswith("-journal.db")) if os.path.isdir(folder) else []
    return ok([world_entry(n) for n in names if NAME.match(n)])


@bp.post("/_standin/worlds")
def create_world():
    """Create a world ({name, seed?, nodes?, clients?} or {name, snapshot}), served under
    /worlds/<name>/ with its own state, credentials, journal and faults.

    From a seeded template of the settings (a copy of a file: a few ms), or from a
    snapshot. At the root only; at most STANDIN_MAX_WORLDS."""
    _root_only()
    body = body_object()
    name = _check_name(body.get("name"), "name")
    config = current_app.config
    os.makedirs(worlds_folder(), exist_ok=True)
    count = sum(1 for n in os.listdir(worlds_folder()) if n.endswith(".db")
                and not n.endswith("-journal.db"))
    if count >= config["MAX_WORLDS"]:
        raise ApiError(BAD_PARAM, f"there are {count} worlds, the most STANDIN_MAX_WORLDS"
                                  " allows: delete one first")
    if body.get("snapshot") is not None:
        source = snapshot_file(_check_name(body["snapshot"], "snapshot"))
        if not os.path.exists(source):
            raise not_found()
        settings = None
    else:
        settings = {"seed": int_setting(body, "seed", config["SEED"], -(2 ** 62), 2 ** 62),
                    "nodes": int_setting(body, "nodes", config["NODES"], 1, 64),
                    "clients": int_setting(body, "clients", config["CLIENTS"], 0, 2 ** 31)}
        _check_size(settings["nodes"], settings["clients"])
        source = template(**settings)
    target = world_file(name)
    made = f"{target}.{os.getpid()}.{threading.get_ident()}.new"
    with open(source, "rb") as src, open(made, "wb") as dst:
        shutil.copyfileobj(src, dst)
    try:
        os.link(made, target)  # fails if the name is taken, also by another worker
    except FileExistsError:
        raise ApiError(UNKNOWN_ERROR, f"world {name} exists already") from None
    finally:
        os.remove(made)
    if settings is not None:
        db = sqlite3.connect(target, isolation_level=None)
        try:
            with transaction(db):
                shift_from_template(db)
        finally:
            db.close()
    return ok({"name": name, "base": f"/worlds/{name}"})


@bp.delete("/_standin/worlds/<seg:name>")
def delete_world(name):
    """Remove a world and its files (journal and snapshots included)."""
    _root_only()
    path = world_file(name)
    if not NAME.match(name) or not os.path.exists(path):  # no such world can exist
        raise not_found()
    for file in world_files(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(file)
    shutil.rmtree(os.path.splitext(path)[0] + "-snapshots", ignore_errors=True)
    drop_thread_connection("db", path)
    return ok()


def snapshots_folder():
    return os.path.splitext(database_path())[0] + "-snapshots"


def snapshot_file(name):
    return os.path.join(snapshots_folder(), name + ".db")


@bp.get("/_standin/snapshots")
def list_snapshots():
    """This world's saved snapshots: name, size, time saved."""
    folder = snapshots_folder()
    out = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name) if os.path.isdir(folder) else []:
        if entry.name.endswith(".db") and NAME.match(entry.name[:-3]):
            st = entry.stat()
            out.append({"name": entry.name[:-3], "size": st.st_size,
                        "time": local_time(st.st_mtime), "ts": int(st.st_mtime * 1000)})
    return ok(out)


@bp.post("/_standin/snapshots")
def save_snapshot():
    """Save this world's state under a name ({name}; a name in use is overwritten)."""
    name = _check_name(string_param("name"), "name")
    os.makedirs(snapshots_folder(), exist_ok=True)
    path = snapshot_file(name)
    made = f"{path}.{os.getpid()}.{threading.get_ident()}.new"
    target = sqlite3.connect(made)
    try:
        get_db().backup(target)  # a consistent copy; writers are not held up
    finally:
        target.close()
    os.replace(made, path)
    return ok({"name": name, "size": os.path.getsize(path)})


@bp.post("/_standin/snapshots/<seg:name>/restore")
def restore_snapshot(name):
    """Bring a snapshot back: atomically, a reader sees the old state or the new one.

    Never a mix, also for a page's count and rows (about a millisecond at the default
    size)."""
    path = snapshot_file(name)
    if not NAME.match(name) or not os.path.exists(path):  # no such snapshot can exist
        raise not_found()
    restore_file(get_db(), path)
    return ok({"name": name})


@bp.delete("/_standin/snapshots/<seg:name>")
def delete_snapshot(name):
    """Remove a snapshot."""
    path = snapshot_file(name)
    if not NAME.match(name) or not os.path.exists(path):  # no such snapshot can exist
        raise not_found()
    os.remove(path)
    return ok()


def shrink(db):
    """Give free pages back to the file system once most of the file is free."""
    free, total = (db.execute(f"PRAGMA {p}").fetchone()[0]
                   for p in ("freelist_count", "page_count"))
    page = db.execute("PRAGMA page_size").fetchone()[0]
    if free * page > 8 << 20 and free > total // 2:
        db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def int_setting(body, name, default, low, high):
    """An integer from a control's JSON body, within [low, high] (108 otherwise)."""
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(BAD_PARAM, f"'{name}' must be an integer from {low} to {high}")
    return value


def body_object():
    """The JSON body of a control request ({} when empty)."""
    return {k: v for k, v in params().items() if k not in request.args}


# ---------------------------------------------------------------------------
# Index, OpenAPI
# ---------------------------------------------------------------------------

METHOD_ORDER = ("GET", "POST", "PUT", "DELETE")


def control_rules(flask_app):
    """(rule, method, summary, description) of every /_standin route of `flask_app`'s URL
    map, in the order registered. The view's docstring says it: its first paragraph is the
    summary, the rest the description."""
    for rule in flask_app.url_map.iter_rules():
        if rule.rule != "/_standin" and not rule.rule.startswith("/_standin/"):
            continue
        doc = inspect.cleandoc(flask_app.view_functions[rule.endpoint].__doc__ or "")
        summary, _, details = doc.partition("\n\n")
        for method in sorted(rule.methods & set(METHOD_ORDER), key=METHOD_ORDER.index):
            yield rule, method, " ".join(summary.split()), " ".join(details.split())


def controls():
    """Every /_standin/ route of the URL map, in the order registered: method, path, descr."""
    return [{"method": method, "path": re.sub(r"<(?:\w+:)?(\w+)>", r":\1", rule.rule),
             "descr": summary}
            for rule, method, summary, _ in control_rules(current_app)]


@bp.get("/_standin")
def index():
    """What the controls are and how the stand-in is set up."""
    return ok({"version": VERSION, "emqx_version": EMQX_VERSION,
               "settings": seeding.world_settings(get_db()), "faults": active_faults()[0],
               "journal_size": current_app.config["JOURNAL_SIZE"], "controls": controls()})


@bp.get("/_standin/ready")
def ready():
    """Readiness for health checks (no credentials): 200 once the database is seeded and
    serves, 503 with the reason before.

    A node stopped through PUT /_standin/nodes/{node} does not count (GET /status shows
    that)."""
    get_db()
    return ok({"ready": True})


@bp.get("/_standin/openapi.json")
def openapi_document():
    """The OpenAPI 3 description of the API and the controls."""
    document = build_openapi(current_app)
    return Response(json.dumps(document, ensure_ascii=False), mimetype="application/json")


# The EMQ X document's chapters, in its order (in English: a browser may have no Chinese
# font), then the catalogue's routes it has no chapter for: the explorer's tags. An /api/v3
# operation's tag is the chapter of its path (chapter()).
CHAPTERS = (
    ("api", "The list of the API's routes"),
    ("nodes", "The cluster and its nodes: brokers and nodes"),
    ("connections", "Connected clients: lists and lookups, of the cluster or a node; kick"
                    " out; clean the ACL cache"),
    ("sessions", "Sessions, persistent ones too: lists and lookups, of the cluster or a node"),
    ("subscriptions", "Subscriptions: lists, and a client's, of the cluster or a node"),
    ("routes", "The route table: the list, and the routes of a topic"),
    ("mqtt", "Publish, subscribe and unsubscribe"),
    ("plugins", "Plugins, and their configurations"),
    ("listeners", "Listeners and their connection counts"),
    ("metrics", "Packets and messages sent and received"),
    ("stats", "Connection and session statistics"),
    ("alarms", "Alarms of the cluster or a node"),
    ("banned", "Banned clients, users and addresses"),
    ("apps", "Management applications (in the catalogue, no chapter of the document)"),
    ("users", "Dashboard users and sign-in (in the catalogue, no chapter of the document)"),
    ("configs", "Application configurations (in the catalogue, no chapter of the document)"),
)
# Path words whose routes the document puts in another chapter.
CHAPTER_OF_WORD = {"brokers": "nodes", "auth": "users", "change_pwd": "users",
                   "plugin_configs": "plugins"}


def chapter(path):
    """The chapter (tag) of an /api/v3 path: its first word after /api/v3/, or the one after
    nodes/{node} (/api/v3/nodes/{node}/stats/ is "stats", /api/v3/nodes/{node} "nodes")."""
    words = [w for w in path.split("/")[3:] if w]
    if not words:
        return "api"  # the index
    word = words[2] if words[0] == "nodes" and len(words) > 2 else words[0]
    return CHAPTER_OF_WORD.get(word, word)


def catalogue_path(path):
    """The OpenAPI path of a catalogue path, trailing slash kept as the document prints it:
    `nodes/:node/stats/` -> `/api/v3/nodes/{node}/stats/`; the index is `/api/v3/`."""
    return "/api/v3/" + re.sub(r":(\w+)", r"{\1}", path.lstrip("/"))


def build_openapi(flask_app):
    """openapi.json with what is kept elsewhere filled in, from the one place each is kept:

    - the versions;
    - the /api/v3 paths spelt as the catalogue prints them (`/api/v3/nodes/`, trailing slash
      and all: the canonical URLs, which spec-driven tools then ask for), each operation
      tagged with its chapter of the document (the file keys them without the slash and
      leaves their tags to this);
    - every /_standin route of the URL map as an operation, its summary and description from
      its docstring; the file adds what a docstring cannot say (parameters, bodies, answer
      schemas), and a control the file does not know yet gets a plain entry."""
    with flask_app.open_resource("openapi.json", "rb") as f:
        document = json.load(f)
    document["info"].update({"version": VERSION, "x-emqx-version": EMQX_VERSION})
    document["tags"] = [{"name": name, "description": description}
                        for name, description in CHAPTERS] + document.get("tags", [])
    spelt = {catalogue_path(p).rstrip("/"): catalogue_path(p) for _, _, p, _ in CATALOGUE}
    spelt["/api/v3"] = catalogue_path("")
    document["paths"] = paths = {spelt.get(path, path): item
                                 for path, item in document["paths"].items()}
    for path, item in paths.items():
        if path.startswith("/api/v3/"):
            for op in item.values():
                if isinstance(op, dict) and "operationId" in op:
                    op["tags"] = [chapter(path)]
    taken = {op["operationId"] for item in paths.values() for op in item.values()
             if isinstance(op, dict) and "operationId" in op}
    for rule, method, summary, description in control_rules(flask_app):
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        item = paths.setdefault(path, {})
        op = item.get(method.lower())
        if op is None:
            op = item[method.lower()] = _plain_operation(rule, path, taken)
        if summary:
            op["summary"] = summary
        if description:
            op["description"] = description
    return document


def _plain_operation(rule, path, taken):
    """The entry of a control openapi.json does not describe: its path parameters, the
    envelope, the answers every control can give."""
    operation_id, n = rule.endpoint, 2
    while operation_id in taken:
        operation_id, n = f"{rule.endpoint}_{n}", n + 1
    taken.add(operation_id)
    return {
        "operationId": operation_id, "x-route-name": rule.endpoint, "tags": ["standin"],
        "parameters": [{"name": name, "in": "path", "required": True,
                        "schema": {"type": "string"}}
                       for name in re.findall(r"{(\w+)}", path)],
        "responses": {
            "200": {"description": "The envelope: code 0 and data, or an error code.",
                    "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"code": {"type": "integer"}},
                        "required": ["code"]}}}},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "default": {"$ref": "#/components/responses/ProtocolError"}}}


# ---------------------------------------------------------------------------
# The world: reset, simulated devices, alarms, nodes
# ---------------------------------------------------------------------------


@bp.post("/_standin/reset")
def reset():
    """Rebuild the cluster from scratch ({seed, nodes, clients}; default: the settings the
    world was created with)."""
    body = body_object()
    origin = seeding.origin_settings(get_db())
    seed = int_setting(body, "seed", origin["seed"], -(2 ** 62), 2 ** 62)
    nodes = int_setting(body, "nodes", origin["nodes"], 1, 64)
    clients = int_setting(body, "clients", origin["clients"], 0, 2 ** 31)
    _check_size(nodes, clients)
    rebuild(get_db(), seed, nodes, clients, origin=origin)
    return ok({"seed": seed, "nodes": nodes, "clients": clients})


def _check_size(nodes, clients):
    if nodes * clients > MAX_RESET_CLIENTS:
        raise ApiError(BAD_PARAM, f"{nodes} nodes x {clients} clients is more than"
                                  f" {MAX_RESET_CLIENTS} clients, too many to seed within one"
                                  " request: seed it with `flask --app app seed`")


def _subscriptions(body):
    """The `subscriptions` of a simulated CONNECT: [(filter, qos)]."""
    subs = body.get("subscriptions", [])
    if not isinstance(subs, list) or not all(
            isinstance(s, dict) and isinstance(s.get("topic"), str) for s in subs):
        raise ApiError(BAD_PARAM, "'subscriptions' must be a list of {\"topic\", \"qos\"}")
    subs = [(s["topic"], s.get("qos", 0)) for s in subs]
    if any(isinstance(q, bool) or q not in (0, 1, 2) for _, q in subs):
        raise ApiError(BAD_PARAM, "'qos' of a subscription must be 0, 1 or 2")
    if not all(valid_filter(t) for t, _ in subs):
        raise ApiError(BAD_TOPIC, "bad_topic")
    return subs


@bp.post("/_standin/clients")
def connect_device():
    """A simulated device connects (taking over an existing connection of the same id)."""
    body = body_object()
    client_id = string_param("client_id")
    if not client_id or len(client_id) > 1024 or "\0" in client_id:
        raise ApiError(BAD_PARAM, "'client_id' must be a non-empty string without NUL")
    username = string_param("username", required=False)
    clean = bool_param("clean_start", True)
    proto_ver = body.get("proto_ver", 4)
    if type(proto_ver) is not int or proto_ver not in (3, 4, 5):
        raise ApiError(BAD_PARAM, "'proto_ver' must be 3, 4 or 5")
    keepalive = int_setting(body, "keepalive", 60, 0, 65535)
    port = int_setting(body, "port", random.randint(49152, 65535), 1, 65535)
    ip = string_param("ipaddress", required=False, default="127.0.0.1")
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise ApiError(BAD_PARAM, "'ipaddress' must be an IP address") from None
    subs = _subscriptions(body)
    with transaction() as db:
        if not running_nodes():
            raise ApiError(UNKNOWN_ERROR, "nodedown")
        node = node_row(string_param("node", required=False, default=running_nodes()[0]))["name"]
        if not connect_client(db, node, client_id, username, clean, proto_ver, keepalive, ip,
                              port, subs):
            return error_response(403, "banned", 403)  # the counted CONNECT is committed
        row = db.execute(f"SELECT {CONNECTION_SQL} FROM connections WHERE client_id = ?",
                         (client_id,)).fetchone()
    return raw_ok(row[0])


@bp.delete("/_standin/clients/<tail:clientid>")
def disconnect_device(clientid):
    """A simulated device disconnects on its own: a clean session ends, a persistent one
    stays."""
    with transaction() as db:
        if not device_disconnects(db, clientid):
            raise ApiError(CLIENT_NOT_FOUND, "not_found")
    return ok()


def device_disconnects(db, client_id):
    """A device's own DISCONNECT: its connection closes ("closed"), the packet and its bytes
    are counted. The connection row, or False if it was not connected."""
    conn = disconnect(db, client_id, "closed")
    if conn:
        bump(db, {(conn["node"], "packets/disconnect/received"): 1,
                  (conn["node"], "bytes/received"): 2})
    return conn


@bp.post("/_standin/clients/<tail:clientid>/publish")
def device_publish(clientid):
    """A simulated device publishes ({topic, payload?, qos?, retain?}): a message received
    from it (unlike an API publish), then routed as any.

    Counted as received (messages/received, messages/qos<N>/received,
    packets/publish/received, bytes and the acknowledgement; its connection's recv_*
    stats), then routed and delivered as any. An API publish (POST /api/v3/mqtt/publish) is
    not a message received."""
    topic = string_param("topic")
    payload = string_param("payload", required=False, default="").encode()
    qos = qos_param()
    retain = bool_param("retain")
    if not valid_name(topic):
        raise ApiError(BAD_TOPIC, "bad_topic")
    with transaction() as db:
        where, args = node_filter()
        conn = db.execute(f"SELECT node FROM connections WHERE client_id = ? AND {where}",
                          (clientid, *args)).fetchone()
        if conn is None:
            raise ApiError(CLIENT_NOT_FOUND, "not_found")
        publish(db, topic, payload, qos, retain, conn["node"], device=clientid)
    return ok()


@bp.post("/_standin/alarms")
def raise_alarm():
    """Raise an alarm on a node (newest first in both alarm routes)."""
    alarm_id = string_param("id")
    severity = string_param("severity", required=False, default="warning")
    if severity not in SEVERITIES:
        raise ApiError(BAD_PARAM, f"'severity' must be one of: {list(SEVERITIES)}")
    title = string_param("title", required=False, default=alarm_id)
    summary = string_param("summary", required=False, default="")
    with transaction() as db:
        node = node_row(string_param("node", required=False,
                                     default=seeding.node_name(1)))["name"]
        row = insert_alarm(db, node, alarm_id, severity, title, summary)
    return ok({"node": node, **alarm_json(row)})


def insert_alarm(db, node, alarm_id, severity, title, summary):
    """Raise an alarm on `node` now; its row."""
    cur = db.execute("INSERT INTO alarms (node, alarm_id, severity, title, summary, timestamp)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
                     (node, alarm_id, severity, title, summary, int(time.time())))
    return db.execute("SELECT * FROM alarms WHERE id = ?", (cur.lastrowid,)).fetchone()


@bp.delete("/_standin/alarms/<tail:id>")
def clear_alarm(id):  # the path parameter is named as the index shows it (:id)
    """Clear an alarm (on every node, or on ?node=)."""
    node = string_param("node", required=False)
    with transaction() as db:
        if node is None:
            cur = db.execute("DELETE FROM alarms WHERE alarm_id = ?", (id,))
        else:
            cur = db.execute("DELETE FROM alarms WHERE alarm_id = ? AND node = ?", (id, node))
        if not cur.rowcount:
            raise not_found()
    return ok()


@bp.put("/_standin/nodes/<seg:node>")
def set_node_status(node):
    """Stop or start a node ({node_status: Stopped|Running})."""
    status = string_param("node_status")
    if status not in ("Running", "Stopped"):
        raise ApiError(BAD_PARAM, "'node_status' must be \"Running\" or \"Stopped\"")
    with transaction() as db:
        name = node_row(node, running=False)["name"]
        was = db.execute("SELECT node_status FROM nodes WHERE name = ?", (name,)).fetchone()[0]
        db.execute("UPDATE nodes SET node_status = ? WHERE name = ?", (status, name))
        if status == "Running" and was != "Running":
            # A restarted node has a fresh uptime, and its devices connected again since.
            now = int(time.time())
            db.execute("UPDATE nodes SET started_at = ? WHERE name = ?", (now, name))
            db.execute("UPDATE connections SET connected_at = ? WHERE node = ?", (now, name))
            db.execute("UPDATE sessions SET created_at = ? WHERE node = ?", (now, name))
    return ok({"node": name, "node_status": status})


# ---------------------------------------------------------------------------
# Faults: latency and errors on the API, the same in every worker
# ---------------------------------------------------------------------------


def _validate_faults(body):
    """Check a fault description; returns it normalised."""
    out = {}
    latency = body.get("latency_ms", 0)
    if isinstance(latency, dict):
        low, high = latency.get("min", 0), latency.get("max", 0)
    else:
        low = high = latency
    if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 60000
           for v in (low, high)) or low > high:
        raise ApiError(BAD_PARAM, "'latency_ms' must be an integer or {\"min\", \"max\"}"
                                  " from 0 to 60000, min <= max")
    out["latency_ms"] = {"min": low, "max": high}
    rate = body.get("error_rate", 0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ApiError(BAD_PARAM, "'error_rate' must be a number from 0 to 1")
    out["error_rate"] = rate
    error = body.get("error", {})
    if not isinstance(error, dict):
        raise ApiError(BAD_PARAM, "'error' must be an object {status, code, message}")
    status = error.get("status", 503)
    code = error.get("code", UNKNOWN_ERROR)
    message = error.get("message", "injected fault")
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ApiError(BAD_PARAM, "'error.status' must be an HTTP status from 200 to 599")
    if isinstance(code, bool) or not isinstance(code, int):
        raise ApiError(BAD_PARAM, "'error.code' must be an integer")
    if not isinstance(message, str):
        raise ApiError(BAD_PARAM, "'error.message' must be a string")
    out["error"] = {"status": status, "code": code, "message": message}
    routes = body.get("routes")
    if routes is not None:
        if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
            raise ApiError(BAD_PARAM, "'routes' must be a list of route names")
        unknown = sorted(set(routes) - api_route_names())
        if unknown:
            raise ApiError(BAD_PARAM, f"'routes' has unknown route names: {unknown}")
    out["routes"] = routes
    seed = body.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ApiError(BAD_PARAM, "'seed' must be an integer")
    out["seed"] = seed
    kind = body.get("kind", "error")
    if kind not in FAULT_KINDS:
        raise ApiError(BAD_PARAM, f"'kind' must be one of: {list(FAULT_KINDS)}")
    out["kind"] = kind
    if kind != "error" and "error_rate" not in body:
        out["error_rate"] = 1  # a connection-level fault hits every matching request
    times = body.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int)
                              or not 1 <= times <= 1_000_000):
        raise ApiError(BAD_PARAM, "'times' must be an integer from 1 to 1000000")
    out["times"] = times
    headers = error.get("headers", {})
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k.isascii() and k.replace("-", "")
            .isalnum() and "\r" not in v and "\n" not in v for k, v in headers.items()):
        raise ApiError(BAD_PARAM, "'error.headers' must be an object of header names to"
                                  " string values")
    out["error"]["headers"] = headers
    match = body.get("match", {})
    if not isinstance(match, dict) or set(match) - {"caller"} or not all(
            isinstance(v, str) for v in match.values()):
        raise ApiError(BAD_PARAM, "'match' must be {\"caller\": an app id or user name}")
    out["match"] = match
    return out


def active_faults():
    """(fault settings or None, draws so far), read again only once the data changed."""

    def load(db):
        row = db.execute("SELECT config, draws FROM faults WHERE id = 1").fetchone()
        return (json.loads(row["config"]), row["draws"]) if row else (None, 0)

    return get_db().remember("faults", load)


@bp.get("/_standin/faults")
def get_faults():
    """The active faults (null when none)."""
    faults, draws = active_faults()
    return ok({"faults": faults, "draws": draws})


@bp.put("/_standin/faults")
def set_faults():
    """Inject faults on the named API routes (all when omitted): latency, error answers,
    dropped connections, hangs, garbage.

    While faults are active, an affected /api/v3 request may be delayed, answered with the
    configured status and {code, message} instead of its documented answer, or not answered
    properly at all; `times` and `match` narrow which requests are affected."""
    faults = _validate_faults(body_object())
    with transaction() as db:
        db.execute("INSERT INTO faults (id, config, draws) VALUES (1, ?, 0) ON CONFLICT (id)"
                   " DO UPDATE SET config = excluded.config, draws = 0", (json.dumps(faults),))
    return ok({"faults": faults, "draws": 0})


@bp.delete("/_standin/faults")
def clear_faults():
    """Remove every injected fault."""
    with transaction() as db:
        db.execute("DELETE FROM faults")
    return ok()


@bp.before_app_request
def inject_faults():
    """Apply the active faults to an API request, the same way in every worker.

    Runs after the API's own hooks (credentials first). The n-th affected request (counted
    in the database) draws from Random(f"{seed}:{n}"), so a given seed gives the same
    sequence of delays and errors run after run; with `times`, the fault is gone after the
    n-th (exactly, whichever workers serve them).
    """
    if not request.path.startswith("/api/v3"):
        return None
    faults, _ = active_faults()
    if faults is None or request.endpoint not in api_route_names():
        return None
    if faults["routes"] is not None and request.endpoint not in faults["routes"]:
        return None
    caller = faults.get("match", {}).get("caller")
    if caller is not None:
        user = auth.current_user() or {}
        if caller not in (user.get("app_id"), user.get("username")):
            return None
    with transaction() as db:  # the count, and the fault's end, in one step
        row = db.execute("UPDATE faults SET draws = draws + 1 WHERE id = 1"
                         " RETURNING draws").fetchone()
        if row is None:  # cleared meanwhile
            return None
        n = row[0]
        if faults.get("times") is not None and n >= faults["times"]:
            db.execute("DELETE FROM faults WHERE id = 1")
    rng = random.Random(f"{faults['seed']}:{n}")
    latency = faults["latency_ms"]
    delay = rng.randint(latency["min"], latency["max"])
    kind = faults.get("kind", "error")
    if delay and kind != "hang":
        time.sleep(delay / 1000)
    if rng.random() >= faults["error_rate"]:
        return None
    if kind == "error":
        error = faults["error"]
        response = error_response(error["code"], error["message"], error["status"])
        response.headers.update(error.get("headers", {}))
        return response
    return connection_fault(kind, delay)


FAULT_KINDS = ("error", "drop", "hang", "garbage")


def connection_fault(kind, delay_ms):
    """What a broken server or network does to a request: no answer (drop), no answer for
    a while then none (hang), or an answer that is not HTTP (garbage)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:  # the test client has no socket to act on
        raise ApiError(UNKNOWN_ERROR, f"a {kind} fault needs a real connection (gunicorn)",
                       503)
    if kind == "hang":
        time.sleep(delay_ms / 1000)
    elif kind == "garbage":
        with contextlib.suppress(OSError):
            sock.sendall(b"HTTP/1.1 2OO OK\r\nContent-Length: x\r\n\r\n\x00\xff\xfe garbage")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # gunicorn's own write of the answer then fails quietly
    return Response(b"", status=200)


# ---------------------------------------------------------------------------
# Journal: every /api/v3 request, in a SQLite file of its own beside the database
# ---------------------------------------------------------------------------

JOURNAL_VERSION = 2  # PRAGMA user_version of a journal file of this layout
JOURNAL_DDL = """CREATE TABLE IF NOT EXISTS journal (
    id          INTEGER PRIMARY KEY,
    time        REAL NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    query       TEXT NOT NULL,
    route       TEXT,
    status      INTEGER NOT NULL,
    code        INTEGER,
    duration_ms REAL NOT NULL,
    caller      TEXT,
    body        TEXT,
    response    TEXT
)"""


def _prepare_journal(db):
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        db.execute("PRAGMA journal_mode = WAL")
    # A record, not state: a power cut may lose its last entries (a damaged file is started
    # anew, get_journal), and no entry waits for the disk. Half the cost of an entry.
    db.execute("PRAGMA synchronous = OFF")
    if db.execute("PRAGMA user_version").fetchone()[0] != JOURNAL_VERSION:
        db.execute("DROP TABLE IF EXISTS journal")  # an older layout: the journal starts over
        db.execute(f"PRAGMA user_version = {JOURNAL_VERSION}")
    db.execute(JOURNAL_DDL)
    db.execute("PRAGMA busy_timeout = 0")  # from here on, locks are waited for by journal_sql


@functools.lru_cache(maxsize=256)
def _journal_beside(database):
    return os.path.splitext(database)[0] + "-journal.db"


def journal_path():
    """`standin.db` -> `standin-journal.db`, beside the database: recording a read never
    writes to, nor waits on, the cluster's database."""
    return _journal_beside(database_path())


def get_journal():
    """The journal's connection. Best effort: it waits at most 100 ms for a lock, and a
    damaged journal file is replaced by a new one."""
    path = journal_path()
    try:
        return thread_connection("journal", path, _prepare_journal, timeout=0.1)
    except sqlite3.DatabaseError as e:
        if "malformed" not in str(e) and "not a database" not in str(e):
            raise
        current_app.logger.warning("journal %s is damaged (%s): starting a new one", path, e)
        drop_thread_connection("journal", path)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + suffix)
        return thread_connection("journal", path, _prepare_journal, timeout=0.1)


def journal_sql(sql, args=()):
    """A statement on the journal; another worker's lock is waited for at most 100 ms, in
    steps of microseconds (database.execute_waiting)."""
    return execute_waiting(get_journal(), sql, args)


def clear_journal_table():
    """Empty the journal; it never fails the caller (a reset, say)."""
    try:
        journal_sql("DELETE FROM journal")
    except sqlite3.Error:
        current_app.logger.exception("journal could not be cleared")


@bp.before_app_request
def start_clock():
    g.started = time.perf_counter()


@bp.after_app_request
def journal_request(response):
    """Every /api/v3/ request lands in the journal (controls, /status and the overview
    page's own polling, marked X-Standin-Overview, do not)."""
    req = request._get_current_object()  # (read here once, not through the proxy each time)
    if req.path.startswith("/api/v3") and "HTTP_X_STANDIN_OVERVIEW" not in req.environ:
        try:
            record_request(req, response)
        except sqlite3.OperationalError as e:  # busy or full: this entry is skipped
            current_app.logger.warning("journal entry skipped: %s", e)
        except Exception:  # the journal never costs the caller its answer
            current_app.logger.exception("journal write failed")
    return response


JOURNAL_TEXT = 1024  # characters kept of a request's or an answer's body
_TOKEN = re.compile(r'[ \t\n\r]*(?:("(?:[^"\\\x00-\x1f]|\\.)*")|(-?(?:0|[1-9]\d*)'
                    r'(?:\.\d+)?(?:[eE][+-]?\d+)?)|(true|false|null)|([{}\[\],:]))')
_SEPARATOR = {",": ", ", ":": ": "}


def _bounded_json(raw):
    """A body as the journal keeps it: JSON (json.dumps' layout) with the values of secret
    keys masked, cut at JOURNAL_TEXT characters; "<not JSON>" for what is not JSON.

    The text is read token by token and only as far as the cut: a 50 KB page costs what its
    first kilobyte costs (parsing it whole cost more than serving it)."""
    if not raw:
        return None
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return "<not JSON>"
    out, size, stack, at = [], 0, [], 0
    expect = "value"  # what may come next: value, key, colon, comma (or a close), end
    closable = False  # right after { or [: a close may come instead of a key or value
    mask_next = False  # the next value is a secret key's
    skip = 0  # depth inside a masked object or array (nothing of it is written)
    while size <= JOURNAL_TEXT:
        if expect == "end":
            if text[at:].strip(" \t\n\r"):
                return "<not JSON>"
            break
        match = _TOKEN.match(text, at)
        if match is None:
            return "<not JSON>"
        at = match.end()
        string, number, literal, mark = match.groups()
        hidden, piece = skip > 0, None
        if mark in ("{", "[") and expect == "value":
            piece = mark
            if skip:
                skip += 1
            elif mask_next:
                skip, piece, mask_next = 1, '"******"', False
            stack.append(mark)
            expect, closable = ("key" if mark == "{" else "value"), True
            out.append(piece if not hidden else "")
            size += 0 if hidden else len(piece)
            continue
        if mark in ("}", "]") and stack and stack[-1] == ("{" if mark == "}" else "[") and (
                expect == "comma" or closable):
            stack.pop()
            skip -= 1 if skip else 0
            piece, expect = mark, "comma" if stack else "end"
        elif mark == ":" and expect == "colon":
            piece, expect = ": ", "value"
        elif mark == "," and expect == "comma":
            piece, expect = ", ", "key" if stack[-1] == "{" else "value"
        elif string is not None and expect == "key":
            key, piece, expect = string[1:-1], string, "colon"
            if "\\" in string:
                key = json.loads(string)
                piece = json.dumps(key, ensure_ascii=False)
            mask_next = not skip and any(word in key.lower() for word in SECRET_WORDS)
        elif mark is None and expect == "value":
            token = string or number or literal
            if "\\" in token or (number and not number.lstrip("-").isdigit()):
                token = json.dumps(json.loads(token), ensure_ascii=False)  # json.dumps' way
            piece = token
            if mask_next:
                piece, mask_next = '"******"', False
            expect = "comma" if stack else "end"
        else:
            return "<not JSON>"
        closable = False
        if not hidden:
            out.append(piece)
            size += len(piece)
    body = "".join(out)
    return body if len(body) <= JOURNAL_TEXT else body[:JOURNAL_TEXT] + "…"


# What may lie outside the strings of compact JSON without fractions or exponents, a word
# cut by the end included (one character or word per step: no nested repeats to backtrack).
_COMPACT_OUTSIDE = re.compile(r"(?:[\[\]{},:0-9-]|true|false|null)*"
                              r"(?:t|tr|tru|f|fa|fal|fals|n|nu|nul)?")


def _laid_out(data):
    """_bounded_json of a body the JSON writer made (valid and compact), without reading it
    token by token, when its first JOURNAL_TEXT characters hold nothing that needs more
    than spacing: no escapes, no fractions or exponents, no secret key; else None.

    Without backslashes a string is what lies between two quotes, so the text outside
    strings is every other piece of text.split('"'): ", " and ": " are spaced there."""
    text = data[:4 * (JOURNAL_TEXT + 1)].decode(errors="ignore")[:JOURNAL_TEXT + 1]
    lowered = text.lower()
    if "\\" in text or any(word in lowered for word in SECRET_WORDS):
        return None
    pieces = text.split('"')
    outside = pieces[0::2]
    if not _COMPACT_OUTSIDE.fullmatch("".join(outside)):
        return None
    # Spaced in one pass: NUL (which the pattern leaves out) marks where strings were.
    pieces[0::2] = "\0".join(outside).replace(",", ", ").replace(":", ": ").split("\0")
    body = '"'.join(pieces)
    return body if len(body) <= JOURNAL_TEXT else body[:JOURNAL_TEXT] + "…"


def _journal_body(req):
    length = req.content_length if may_have_body(req.environ) else None
    if length is None and "chunked" not in req.environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None  # no body (a GET): nothing to read
    if (length or 0) > current_app.config["MAX_CONTENT_LENGTH"]:
        return f"<{length} bytes: too large, not read>"
    return _bounded_json(req.get_data(cache=True))


def _journal_response(response, answer):
    if answer is response:  # the writer's own answer, as it made it: compact JSON
        data = response.get_data()
        laid_out = _laid_out(data)
        return laid_out if laid_out is not None else _bounded_json(data)
    if response.direct_passthrough or response.mimetype != "application/json":
        return None if response.direct_passthrough else (
            response.get_data(as_text=True)[:JOURNAL_TEXT] or None)
    return _bounded_json(response.get_data())


def record_request(req, response):
    """Append this API request to the bounded journal."""
    size = current_app.config["JOURNAL_SIZE"]
    if size <= 0:
        return
    here = g._get_current_object()
    user = caller_of(here)
    started = here.get("started", time.perf_counter())
    query = masked_query(req.environ.get("QUERY_STRING", ""))  # (request.query_string's text)
    cur = journal_sql(
        "INSERT INTO journal (time, method, path, query, route, status, code,"
        " duration_ms, caller, body, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (time.time(), req.method, req.path, query, req.endpoint,
         response.status_code, here.get("answer_code"),
         round((time.perf_counter() - started) * 1000, 3),
         user.get("app_id") or user.get("username"), _journal_body(req),
         _journal_response(response, here.get("answer"))))
    if cur.lastrowid % JOURNAL_TRIM == 0:
        journal_sql("DELETE FROM journal WHERE id <= ?", (cur.lastrowid - size,))


# Entries written between two trims of the oldest ones: deleting one old entry per request
# cost twice the entry's own INSERT. Reads see only the newest JOURNAL_SIZE (journal_window).
JOURNAL_TRIM = 64


def journal_window():
    """SQL condition and argument: the newest JOURNAL_SIZE entries, the journal's bound (up
    to JOURNAL_TRIM older ones wait in the file for the next trim)."""
    return ("id > (SELECT coalesce(max(id), 0) FROM journal) - ?",
            current_app.config["JOURNAL_SIZE"])


def journal_filter():
    """SQL condition and arguments from ?route, method, path (exact, or a prefix ending in
    *), status, code, caller, since (an id: the entries after it)."""
    window, size = journal_window()
    where, args = [window], [size]
    p = params()
    for name in ("route", "method", "caller"):
        if p.get(name) is not None:
            value = string_param(name)
            where.append(f"{name} = ?")
            args.append(value.upper() if name == "method" else value)
    if p.get("path") is not None:
        path = string_param("path")
        if path.endswith("*"):
            where.append("substr(path, 1, ?) = ?")
            args += [len(path) - 1, path[:-1]]
        else:
            where.append("path = ?")
            args.append(path.rstrip("/") or "/")
    for name, column in (("status", "status"), ("code", "code"), ("since", "id")):
        if p.get(name) is not None:
            where.append(f"{column} {'>' if name == 'since' else '='} ?")
            args.append(strict_int(p[name], name))
    return " AND ".join(where), args


def journal_entry(r):
    return {"id": r["id"], "time": local_time(r["time"]) + f".{int(r['time'] * 1000) % 1000:03d}",
            "ts": int(r["time"] * 1000), "method": r["method"], "path": r["path"],
            "query": r["query"], "route": r["route"], "status": r["status"], "code": r["code"],
            "duration_ms": r["duration_ms"], "caller": r["caller"], "body": r["body"],
            "response": r["response"]}


@bp.get("/_standin/journal")
def journal():
    """The most recent API requests, newest first, filtered by ?route, method, path (a
    prefix with *), status, code, caller, since (an id); ?limit (default 100)."""
    limit = int_param("limit", 100, 1)
    where, args = journal_filter()
    rows = journal_sql(f"SELECT * FROM journal WHERE {where} ORDER BY id DESC LIMIT ?",
                       (*args, limit)).fetchall()
    return ok([journal_entry(r) for r in rows])


@bp.get("/_standin/journal/count")
def journal_count():
    """How many journaled requests match the filters of GET /_standin/journal."""
    where, args = journal_filter()
    count = journal_sql(f"SELECT count(*) FROM journal WHERE {where}", args).fetchone()[0]
    return ok({"count": count})


@bp.get("/_standin/journal/unmatched")
def journal_unmatched():
    """The journaled requests that matched no route, newest first (?limit, default 100)."""
    limit = int_param("limit", 100, 1)
    window, size = journal_window()
    rows = journal_sql(f"SELECT * FROM journal WHERE route IS NULL AND {window}"
                       " ORDER BY id DESC LIMIT ?", (size, limit)).fetchall()
    return ok([journal_entry(r) for r in rows])


@bp.delete("/_standin/journal")
def clear_journal():
    """Forget the recorded requests."""
    clear_journal_table()
    return ok()


# ---------------------------------------------------------------------------
# Pages: the live overview (/) and the API explorer (/_standin/docs)
# ---------------------------------------------------------------------------


@bp.get("/")
@bp.get("/dashboard")
def overview():
    """The live overview page; it logs in through POST /api/v3/auth, then reads the API."""
    return current_app.send_static_file("index.html")


@bp.get("/_standin/docs")
def docs():
    """Swagger UI over /_standin/openapi.json (assets from the flask-swagger-ui package)."""
    return current_app.send_static_file("docs.html")


@bp.get("/_standin/docs/<path:filename>")
def docs_asset(filename):
    """Swagger UI's own files, served from the installed package (nothing from the internet).

    flask-swagger-ui ships Swagger UI's release files in its dist/ folder (VERSION says
    which release); only those files are used, not its blueprint."""
    import importlib.util

    spec = importlib.util.find_spec("flask_swagger_ui")
    if spec is None or spec.origin is None:
        raise not_found()
    return send_from_directory(os.path.join(os.path.dirname(spec.origin), "dist"), filename)


# Live traffic (traffic.py) adds its control and its request hook to this Blueprint.
import traffic  # noqa: E402, F401
