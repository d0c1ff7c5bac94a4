"""Database access, for every part of the stand-in: SQLite connections (one per thread and
database, kept across requests), this request's connection, write transactions, the tables
of schema.sql and their version, seeding a new file once, the counters recount sets, the
INSERT statements several places share, and the seek of deep pages.
"""

import json
import os
import sqlite3
import threading
import time
import weakref
from bisect import bisect_right
from contextlib import contextmanager
from itertools import accumulate

from flask import current_app
from flask import g
from flask import has_app_context
from flask import has_request_context
from flask import request
from werkzeug.security import generate_password_hash

PASSWORD_METHOD = "pbkdf2:sha256:60000"  # how dashboard passwords are stored
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.sql")


class NotReady(Exception):
    """The database cannot serve the API yet, or any more (the message says why)."""


class Connection(sqlite3.Connection):
    """A SQLite connection that carries what is cached about its database, so a cache can
    never outlive, nor be mistaken for, the connection it belongs to."""

    MEMO_SIZE = 256  # entries kept between changes (credentials, settings, block totals)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._memo, self._memo_version = {}, None
        self._seen, self._seen_in = None, None  # data_version, and the context it was read in

    def remember(self, key, load):
        """`load(self)`, read again only once the database has changed: PRAGMA data_version
        moves on every other connection's commit (in any process), total_changes on this
        one's. Outside a transaction data_version is read once per request (app context):
        the request's hooks see the database as it was when it began. In a transaction it
        is read each time, the transaction's snapshot's, so what is remembered agrees with
        what the transaction reads. The caller keys by everything `load` depends on.
        """
        here = g._get_current_object() if has_app_context() else None
        if self.in_transaction or here is None or self._seen_in is None \
                or self._seen_in() is not here:
            self._seen = self.execute("PRAGMA data_version").fetchone()[0]
            # (weakly: a request's globals may hold its answer, megabytes for a big page)
            self._seen_in = None if self.in_transaction or here is None else weakref.ref(here)
        version = self._seen, self.total_changes
        if version != self._memo_version or len(self._memo) >= self.MEMO_SIZE:
            self._memo.clear()
            self._memo_version = version
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = load(self)
            return value

    def forget(self):
        """Drop what is remembered: for a change neither counter sees (SQLite's backup
        writing into this connection, as a snapshot is restored)."""
        self._memo.clear()
        self._memo_version = self._seen_in = None


LOCK_WAIT_FIRST, LOCK_WAIT_MOST = 0.00002, 0.002  # seconds: 20 us at first, doubling to 2 ms


def execute_waiting(db, sql, args=(), patience=0.1):
    """db.execute on a connection whose busy timeout is 0, waiting here for another
    connection's lock: from 20 us, doubling to 2 ms, `patience` seconds in all (then
    "database is locked", as SQLite's own wait ends). SQLite's own busy handler sleeps whole
    milliseconds from the first wait: four busy workers made one journal entry in twenty wait
    a millisecond or more for a lock held some 20 us."""
    delay, waited = LOCK_WAIT_FIRST, 0.0
    while True:
        try:
            return db.execute(sql, args)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or waited >= patience:
                raise
        time.sleep(delay)
        waited += delay
        delay = min(2 * delay, LOCK_WAIT_MOST)


def open_db(path, timeout=30):
    """Open a connection with the settings every connection needs; it remembers which
    file it opened (file_id), so a file replaced or deleted underneath is noticed."""
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, factory=Connection)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA synchronous = NORMAL")
    db.file_id = _file_id(path)
    return db


def _file_id(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


_local = threading.local()
_ready = set()  # database paths this process has found seeded and current
_ready_lock = threading.Lock()


THREAD_CONNECTIONS = 16  # per thread and slot: the databases a thread keeps open


def _pool(slot):
    """This thread's open connections in `slot`, {path: connection}, least recent first.
    Made inside the worker (the pid is checked), never carried across gunicorn's fork."""
    pools = _local.__dict__.setdefault("pools", {})
    if pools.get("pid") != os.getpid():
        pools.clear()
        pools["pid"] = os.getpid()
    return pools.setdefault(slot, {})


def thread_connection(slot, path, prepare=None, timeout=30):
    """This thread's connection to `path` in `slot`, kept across requests.

    Opening is cheap, but closing the last connection to a WAL database checkpoints it,
    which cost ~3 ms per request; a thread keeps a few (one per world it serves).
    """
    pool = _pool(slot)
    db = pool.pop(path, None)
    if db is None:
        db = open_db(path, timeout)
        if prepare:
            prepare(db)
        if len(pool) >= THREAD_CONNECTIONS:
            pool.pop(next(iter(pool))).close()
    pool[path] = db  # now the most recent
    return db


def drop_thread_connection(slot, path=None):
    """Close this thread's connection to `path` in `slot` (all of the slot's when None)."""
    pool = _pool(slot)
    for key in [path] if path is not None else list(pool):
        db = pool.pop(key, None)
        if db is not None:
            db.close()


def database_path():
    """The SQLite file of this request: the default one, unless the request names its own
    (a world of standin.py, served under /worlds/<name>/)."""
    if has_request_context():
        world = request._get_current_object().environ.get("standin.database")
        if world:
            return world
    return current_app.config["DATABASE"]


def get_db():
    """This request's connection, to a database that is seeded, current and still there."""
    db = g._get_current_object().__dict__.get("db")  # (once through the proxy: it is called often)
    if db is not None:
        return db
    path = database_path()
    timeout = current_app.config["BUSY_TIMEOUT_MS"] / 1000
    db = thread_connection("db", path, timeout=timeout)
    current = _file_id(path)
    if current != db.file_id:
        if current is None:  # acknowledged writes would go to a file nobody sees again
            _ready.discard(path)  # (the connection stays: it keeps telling)
            raise NotReady(f"the database file {path} was deleted while the service ran:"
                           " restart the service")
        drop_thread_connection("db", path)  # replaced: serve the new file
        _ready.discard(path)
        db = thread_connection("db", path, timeout=timeout)
    if path not in _ready:
        _make_ready(db, path)
    g.db = db
    return db


def database_state(db):
    """("seeded", version), ("empty", None) or ("busy", None): by reading only, unless the
    database is not seeded."""
    db.execute("PRAGMA busy_timeout = 50")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        seeded = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                            " AND name = 'meta'").fetchone() and db.execute(
            "SELECT 1 FROM meta WHERE key = 'seed'").fetchone()
        if not seeded:  # a seed in progress holds the write lock from its first row on
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
    except sqlite3.OperationalError as e:
        if "locked" not in str(e) and "busy" not in str(e):
            raise
        return "busy", None
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(current_app.config['BUSY_TIMEOUT_MS'])}")
    return ("seeded", version) if seeded else ("empty", None)


def _make_ready(db, path):
    """Find the database seeded and of this version (reading only), or seed a small world."""
    state, version = database_state(db)
    if state == "seeded":
        if version != SCHEMA_VERSION:
            raise NotReady(outdated_message(path, version))
        _ready.add(path)
        return
    if state == "busy":
        raise NotReady("the cluster is being seeded: retry in a moment")
    settings = current_app.config
    if settings["NODES"] * settings["CLIENTS"] * 1.1 > settings["INLINE_SEED_MAX"]:
        raise NotReady(f"the database {path} is not seeded: gunicorn seeds it at start,"
                       " or run `flask --app app init-db`")
    with _ready_lock:
        ensure_database(path, settings)
        _ready.add(path)


def outdated_message(path, version):
    return (f"the database {path} was made by another version of the stand-in (schema"
            f" {version}, this one reads {SCHEMA_VERSION}): rebuild it with"
            " `flask --app app reset` (or STANDIN_RESEED=1), or delete the file")


def release_db(exc=None):
    """Hand the connection back clean: no transaction survives a request."""
    db = g.pop("db", None)
    if db is not None and db.in_transaction:
        db.execute("ROLLBACK")


@contextmanager
def transaction(db=None):
    """A write transaction: BEGIN IMMEDIATE, so concurrent workers serialize, never upgrade."""
    db = db or get_db()
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def schema_statements():
    """The statements of schema.sql, one by one."""
    with open(SCHEMA_FILE, encoding="utf-8") as f:
        script = f.read()
    statement = ""
    for line in script.splitlines(keepends=True):
        if not statement and (not line.strip() or line.lstrip().startswith("--")):
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


# The version of the tables (PRAGMA user_version): a database of another version is refused
# with a message naming the fix, never answered from (it would fail on a missing column).
SCHEMA_VERSION = 3  # 3: the MQTT listener's tables (mqtt_sockets, mqtt_sessions, mqtt_outbox)

# The lists whose rows are counted per block of 1024 ids in page_blocks (by the triggers of
# schema.sql and by recount): their deep pages seek instead of walking every row.
PAGED_TABLES = ("connections", "sessions", "subscriptions", "routes")
NODE_ID_INDEXED = ("connections", "sessions", "subscriptions")  # schema.sql: <table>_node


def build_world(db, seed, nodes, clients, credentials, progress=None):
    """Create the tables, seed them in bulk, index and count once, then arm the triggers.
    `credentials` is the (AppID, AppSecret) of an application to create, or (None, None).

    Building indexes after a bulk load sorts once instead of inserting at random.
    """
    import seed as seeding  # here: seed.py uses the INSERT statements of this module

    statements = list(schema_statements())
    later = [s for s in statements if s.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX"))]
    triggers = [s for s in statements if s.startswith("CREATE TRIGGER")]
    for statement in statements:
        if statement not in later and statement not in triggers:
            db.execute(statement)
    # The seeded rows meet the CHECK constraints by construction; checking them costs more
    # than storing the row (subscriptions' `qos IN (0, 1, 2)` builds a lookup table for
    # every row). Checked again from the seed on, on this connection too.
    checks = db.execute("PRAGMA ignore_check_constraints").fetchone()[0]
    db.execute("PRAGMA ignore_check_constraints = ON")
    try:
        seeded = seeding.seed_cluster(db, seed, nodes, clients, *credentials, progress)
    finally:
        db.execute(f"PRAGMA ignore_check_constraints = {int(checks)}")
    for statement in later:
        db.execute(statement)
    recount(db, seeded)
    for statement in triggers:
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def recount(db, seeded=None):
    """Set every maintained counter from the rows themselves (high-water marks = counts).

    `seeded`: seed.tally of every connection and subscription, made as the rows were (a
    new world's): the routes and the listeners' connections are taken from it instead of
    sorting every subscription and reading every connection again (a tenth of the seed).
    """
    db.execute("DELETE FROM routes")
    if seeded is not None:  # in the order of the GROUP BY below (Python's str order is
        # SQLite's BINARY order), so every route gets the id it would have
        db.executemany("INSERT INTO routes (topic, node, grp, refs) VALUES (?, ?, ?, ?)",
                       [(*key, n) for key, n in sorted(seeded["routes"].items())])
    else:
        db.execute("INSERT INTO routes (topic, node, grp, refs) SELECT route_topic, node,"
                   " coalesce(share, ''), count(*) FROM subscriptions"
                   " GROUP BY route_topic, node, coalesce(share, '')")
    db.execute("DELETE FROM page_blocks")
    for table in PAGED_TABLES:
        if table in NODE_ID_INDEXED:
            # Every block from a node's first row to its last, counted by a range of the
            # (node, id) index: no sort of every row (half the time or less at a million).
            db.execute(
                f"INSERT INTO page_blocks (tbl, node, block, n) WITH RECURSIVE"
                f" span(node, block, last) AS (SELECT node, min(id) >> 10, max(id) >> 10"
                f" FROM {table} GROUP BY node UNION ALL SELECT node, block + 1, last FROM span"
                f" WHERE block < last), counted AS MATERIALIZED (SELECT node, block,"
                f" (SELECT count(*) FROM {table} WHERE node = span.node AND id BETWEEN"
                f" block << 10 AND block << 10 | 1023) AS n FROM span)"
                f" SELECT '{table}', node, block, n FROM counted WHERE n > 0")
        else:
            db.execute(f"INSERT INTO page_blocks (tbl, node, block, n) SELECT '{table}',"
                       f" node, id >> 10, count(*) FROM {table} GROUP BY node, id >> 10")
    if seeded is not None:
        db.execute("UPDATE listeners SET current_conns = (protocol = 'http:dashboard')")
        db.executemany("UPDATE listeners SET current_conns = current_conns + ? WHERE id = ?",
                       [(n, listener) for listener, n in seeded["listeners"].items()])
    else:
        db.execute("UPDATE listeners SET current_conns = (protocol = 'http:dashboard')"
                   " + coalesce((SELECT n FROM (SELECT listener_id, count(*) AS n FROM"
                   " connections GROUP BY listener_id) WHERE listener_id = listeners.id), 0)")
    for column, sql in (
            ("connections", "SELECT node, count(*) FROM connections GROUP BY node"),
            ("sessions", "SELECT node, count(*) FROM sessions GROUP BY node"),
            ("sessions_persistent",
             "SELECT node, count(*) FROM sessions WHERE clean_start = 0 GROUP BY node"),
            ("subscriptions", "SELECT node, count(*) FROM subscriptions GROUP BY node"),
            ("subscribers", "SELECT node, count(*) FROM subscriptions"
                            " WHERE share IS NULL GROUP BY node"),
            ("subscriptions_shared", "SELECT node, count(*) FROM subscriptions"
                                     " WHERE share IS NOT NULL GROUP BY node")):
        db.execute(f"UPDATE node_stats SET {column}_count = 0")
        db.executemany(f"UPDATE node_stats SET {column}_count = ? WHERE node = ?",
                       [(n, node) for node, n in db.execute(sql).fetchall()])
        if column != "subscriptions_shared":  # its high-water mark is the cluster's
            db.execute(f"UPDATE node_stats SET {column}_max = max({column}_max,"
                       f" {column}_count)")
    db.execute("UPDATE cluster_stats SET routes_count = (SELECT count(*) FROM routes),"
               " retained_count = (SELECT count(*) FROM retained),"
               " subscriptions_shared_count = (SELECT count(*) FROM subscriptions"
               " WHERE share IS NOT NULL)")
    db.execute("UPDATE cluster_stats SET routes_max = max(routes_max, routes_count),"
               " retained_max = max(retained_max, retained_count),"
               " subscriptions_shared_max = max(subscriptions_shared_max,"
               " subscriptions_shared_count)")


def ensure_database(path, settings, seed=None, nodes=None, clients=None, progress=None):
    """Create the tables and seed the cluster once; safe when several workers race here.
    `settings` (the app's config) gives the cluster's size and application unless given.

    The first process to take the write lock builds everything in one transaction; the
    others wait on the lock and then find the database seeded. A new file is seeded with
    SQLite's rollback journal (pages go straight to the file, not twice through a WAL) and
    switched to WAL once seeded.
    """
    db = open_db(path)
    try:
        db.execute("PRAGMA busy_timeout = 600000")
        db.execute("PRAGMA foreign_keys = OFF")  # bulk seeding; the rows are consistent
        db.execute("PRAGMA synchronous = OFF")  # a crash mid-seed leaves nothing committed
        db.execute("PRAGMA cache_size = -400000")  # seeding a million rows stays in memory
        db.execute("PRAGMA temp_store = MEMORY")
        with transaction(db):
            seeded = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
            created = not (seeded and db.execute(
                "SELECT 1 FROM meta WHERE key = 'seed'").fetchone())
            if created:
                build_world(
                    db,
                    settings["SEED"] if seed is None else seed,
                    settings["NODES"] if nodes is None else nodes,
                    settings["CLIENTS"] if clients is None else clients,
                    (settings["APP_ID"], settings["APP_SECRET"]),
                    progress,
                )
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        return created
    finally:
        db.close()


# One statement per kind of row that several places make.
SESSION_INSERT = (
    "INSERT INTO sessions (client_id, node, username, clean_start, created_at, expiry_interval,"
    " heap_size, reductions, enqueue_msg, mqueue_len, subscriptions_count, deliver_msg)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
CONNECTION_INSERT = (
    "INSERT INTO connections (client_id, node, listener_id, username, ipaddress, port,"
    " proto_name, proto_ver, keepalive, clean_start, connected_at, recv_oct, recv_cnt,"
    " recv_msg, recv_pkt, send_oct, send_cnt, send_msg, send_pkt, heap_size, reductions)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
SUBSCRIPTION_INSERT = (
    "INSERT INTO subscriptions (client_id, node, topic, qos, route_topic, share)"
    " VALUES (?, ?, ?, ?, ?, ?)")


def insert_app(db, app_id, secret, name=None, desc=None, status=None, expired=None):
    """Store an application; the four free fields may be any JSON and are kept as JSON."""
    db.execute("INSERT INTO apps (app_id, secret, name, desc, status, expired)"
               " VALUES (?, ?, ?, ?, ?, ?)",
               (app_id, secret, *(json.dumps(v) for v in (name, desc, status, expired))))


def hash_password(password):
    """A dashboard password as stored: salted PBKDF2 (checked once per worker, then cached)."""
    return generate_password_hash(password, PASSWORD_METHOD)


def insert_user(db, username, password_hash, tags):
    """Store a dashboard user (hash the password before the write transaction)."""
    db.execute("INSERT INTO users (username, password, tags) VALUES (?, ?, ?)",
               (username, password_hash, json.dumps(tags)))



def seek(db, table, where, args, offset):
    """(first id of the block holding row number `offset`, offset left within it).

    The running totals of the blocks are kept on the connection until the database
    changes (Connection.remember).
    """

    def load(db):
        rows = db.execute(f"SELECT block, sum(n) FROM page_blocks WHERE tbl = ? AND {where}"
                          " GROUP BY block ORDER BY block", (table, *args)).fetchall()
        return [b for b, _ in rows], list(accumulate(n for _, n in rows))

    blocks, totals = db.remember(("page_blocks", table, where, args), load)
    i = bisect_right(totals, offset)
    if i == len(totals):
        return None, 0
    return blocks[i] << 10, offset - (totals[i - 1] if i else 0)
