"""How gunicorn runs the stand-in: a worker that cannot be starved and an access log that
keeps credentials out. Used by gunicorn.conf.py; not EMQ X's API.

Worker: gunicorn's threaded worker (keep-alive, one SQLite connection per thread), with
- a short wait for a new connection's first bytes: an idle socket waits in the poller, not
  in a thread, so a browser's speculative pre-connections cost nothing;
- a deadline on reading a request (headers and body): a client that trickles its request
  gives up its thread after READ_TIMEOUT seconds, as if it had hung up;
- gunicorn's own protocol errors (400, 414, 431, ...) answered in the API's JSON envelope
  instead of an HTML page.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from urllib.parse import parse_qsl
from urllib.parse import quote

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.workers import gthread

FIRST_BYTES_WAIT = 0.1  # seconds a new connection may hold a thread before sending anything
READ_TIMEOUT = 10.0  # seconds to receive a whole request (headers and body)
WRITE_TIMEOUT = 30.0  # seconds a client may take to accept each piece of an answer
SECRET_WORDS = ("password", "pwd", "secret", "token")


class _Deadline:
    """A client socket whose reads stop at a deadline, set when a request starts (gthread
    makes the socket blocking at the start of every request). A read past it ends like a
    client that hung up, so gunicorn closes the connection quietly."""

    def __init__(self, sock):
        self._sock = sock
        self._deadline = None

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def setblocking(self, flag):
        self._deadline = time.monotonic() + READ_TIMEOUT if flag else None
        self._sock.setblocking(flag)

    def _bounded(self):
        if self._deadline is not None:
            self._sock.settimeout(max(self._deadline - time.monotonic(), 0.001))

    def recv(self, *args):
        self._bounded()
        try:
            return self._sock.recv(*args)
        except TimeoutError:
            return b""

    def recv_into(self, *args):
        self._bounded()
        try:
            return self._sock.recv_into(*args)
        except TimeoutError:
            return 0

    def sendall(self, data):
        self._sock.settimeout(WRITE_TIMEOUT)
        return self._sock.sendall(data)

    def send(self, data):
        self._sock.settimeout(WRITE_TIMEOUT)
        return self._sock.send(data)


def _json_error(sock, status_int, reason, mesg):
    """gunicorn's error page, in the API's envelope: {"code": status, "message": ...}."""
    body = json.dumps({"code": status_int, "message": mesg or reason},
                      ensure_ascii=False, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class Worker(gthread.ThreadWorker):
    """gunicorn's gthread worker with the deadlines above."""

    def init_process(self):
        # gunicorn has no setting for its error pages; its worker writes them with this.
        util.write_error = _json_error
        super().init_process()

    def enqueue_req(self, conn):
        if not isinstance(conn.sock, _Deadline):
            conn.sock = _Deadline(conn.sock)
        super().enqueue_req(conn)

    def handle(self, conn):
        if not conn.initialized and not conn.data_ready:
            if not conn.wait_for_data(FIRST_BYTES_WAIT):
                return gthread._DEFER  # back to the poller until it sends something
            conn.data_ready = True
        return super().handle(conn)


# key=value pairs of unreserved characters only: what masked_query would write back as it is
_PAIR = r"[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]*"
_PLAIN_QUERY = re.compile(f"{_PAIR}(?:&{_PAIR})*")


def masked_query(query):
    """A query string with the values of secret-looking keys replaced (keys decoded first,
    so `pass%77ord=` is caught too)."""
    if not query or (_PLAIN_QUERY.fullmatch(query)
                     and not any(word in query.lower() for word in SECRET_WORDS)):
        return query  # nothing to decode, encode or mask (`_page=1&_limit=100`)
    out = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        secret = any(word in key.lower() for word in SECRET_WORDS)
        out.append(f"{quote(key, safe='')}={'******' if secret else quote(value, safe='')}")
    return "&".join(out)


class AccessLogger(Logger):
    """gunicorn's logger; the query string in the access log has its secrets masked."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        query = environ.get("QUERY_STRING") or ""
        if query:
            safe = masked_query(query)
            atoms["q"] = safe
            atoms["r"] = atoms["r"].replace(environ.get("RAW_URI", ""),
                                            environ.get("RAW_URI", "").split("?", 1)[0]
                                            + "?" + safe)
        return atoms


# ---------------------------------------------------------------------------
# Before serving (in gunicorn's master, before the workers fork)
# ---------------------------------------------------------------------------

QUICK_CHECK_MAX = 256 << 20  # bytes: larger files get the light checks only (start stays fast)


def check_database(path, schema_version, outdated_message):
    """What would make every request fail, found before serving: a message, or None.

    A missing or empty file is fine (it is seeded). Otherwise the file must open as SQLite,
    be readable and writable with its directory (WAL keeps files beside it) on a writable
    file system, pass a quick check when it is not huge, and be of this version of the
    tables. Reading only: another process's write lock does not stop the start.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        return (f"the database's directory {folder} is missing or not writable by this user"
                " (SQLite keeps -wal and -shm files beside the database)")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    if not os.access(path, os.R_OK | os.W_OK):
        return f"the database {path} is not readable and writable by this user"
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return f"the database's directory {folder} is on a read-only file system"
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5, isolation_level=None)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if os.path.getsize(path) <= QUICK_CHECK_MAX:
                result = db.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    return (f"the database {path} is damaged ({result}): restore it, or"
                            " delete it to start from a new seeded one")
        finally:
            db.close()
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):  # a long write of another process is no reason to stop
            return (f"the database {path} cannot be used ({e}): restore it, or delete it to"
                    " start from a new seeded one")
        version = schema_version
    except sqlite3.DatabaseError as e:
        return (f"the database {path} cannot be used ({e}): restore it, or delete it to start"
                " from a new seeded one")
    if version != schema_version and os.environ.get("STANDIN_RESEED") != "1":
        return outdated_message(path, version)
    return None


def needs_seed(path):
    """A new or empty file, or STANDIN_RESEED=1: seed before the API serves."""
    return (not os.path.exists(path) or os.path.getsize(path) == 0
            or os.environ.get("STANDIN_RESEED") == "1")


def seed_now(path):
    """Seed (or with STANDIN_RESEED=1, rebuild) a small world here and now. Every
    connection is closed again before gunicorn forks its workers."""
    import app
    import database
    import standin

    if not os.path.exists(path) or os.path.getsize(path) == 0:
        database.ensure_database(path, app.app.config)
        return
    config = app.app.config
    db = database.open_db(path)
    try:
        with app.app.app_context():
            standin.rebuild(db, config["SEED"], config["NODES"], config["CLIENTS"])
            database.drop_thread_connection("journal")
    finally:
        db.close()


def warm_template():
    """Make the seeded template of the default settings (if small) before serving."""
    import app
    import standin

    config = app.app.config
    if config["NODES"] * config["CLIENTS"] * 1.1 <= standin.TEMPLATE_MAX:
        with app.app.app_context():
            standin.template(config["SEED"], config["NODES"], config["CLIENTS"])


def start_seeding(path):
    """Seed in a child process whose progress lines go to the log; the workers start at once
    and answer /status ("starting") and 503 on the API until it is done."""
    command = "seed" if os.path.exists(path) and os.path.getsize(path) else "init-db"
    env = {**os.environ, "STANDIN_DB": path}
    env.pop("STANDIN_RESEED", None)
    return subprocess.Popen([sys.executable, launcher(), command], env=env,
                            stdin=subprocess.DEVNULL)


def launcher():
    """The emqx-standin command's file: __main__.py in a checkout, main.py in the wheel."""
    here = os.path.dirname(os.path.abspath(__file__))
    checkout = os.path.join(here, "__main__.py")
    return checkout if os.path.exists(checkout) else os.path.join(here, "main.py")
