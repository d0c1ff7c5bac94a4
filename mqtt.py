"""The MQTT listener: real MQTT 3.1 and 3.1.1 clients on a TCP port, beside the simulated
devices and under the same broker rules (app.py, "Broker rules").

Off unless asked for: STANDIN_MQTT_PORT=1883 (or `emqx-standin serve --mqtt 1883`) makes
gunicorn's master start it, in a process of its own, before the workers (gunicorn.conf.py);
`python mqtt.py` runs it alone on the same settings. It binds STANDIN_MQTT_HOST (default
STANDIN_HOST, else 127.0.0.1) and serves one node of the cluster (STANDIN_MQTT_NODE, default
the first), whose first mqtt:tcp listener its connections count on.

How it is built:
- One asyncio loop owns the sockets. One thread owns a SQLite connection and makes every
  change in short write transactions (the packets of many clients batched into one, each in
  a savepoint of its own), with app.py's functions (connect_client, publish, subscribe,
  disconnect, bump) in an app context whose g.db is that connection. A real client's
  connection and session are the same rows a simulated device has; the table mqtt_sockets
  says which connection rows a socket owns.
- The gunicorn workers reach the sockets through the database, so any number of workers
  works: app.deliver writes a message for a real client's session into mqtt_outbox; a
  kickout, a takeover or a stopped node deletes the connection row and with it (a foreign
  key) the mqtt_sockets row. The thread looks at the database every POLL_MS when another
  process has committed (PRAGMA data_version), and at once after its own writes: it claims
  the outbox rows of the clients it holds and closes the sockets whose rows are gone.
- Wire format: amqtt's packet classes (amqtt.mqtt.*) decode and encode every packet. The
  frame (fixed header and remaining length) is read first, so nothing larger than
  MAX_PACKET is read, and each decoder sees exactly its own frame.

Supported: MQTT 3.1 (MQIsdp) and 3.1.1. CONNECT (clean and persistent sessions, takeover,
will, username/password when STANDIN_MQTT_USERS is set, bans), PUBLISH QoS 0/1/2 both ways
with retain, SUBSCRIBE/UNSUBSCRIBE ($share/<group>/ and $queue/ included), PINGREQ,
keepalive (1.5 x), DISCONNECT. An MQTT 5 CONNECT is answered CONNACK 0x84 (unsupported
protocol version) in MQTT 5's format.
"""

import asyncio
import collections
import hmac
import json
import logging
import os
import queue
import secrets
import signal
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from dataclasses import field

try:
    import amqtt  # noqa: F401 - the wire format; an optional dependency (the mqtt extra)
except ImportError:
    raise SystemExit("the MQTT listener needs the amqtt package: pip install"
                     " 'emqx-standin[mqtt]' (or pip install 'amqtt>=0.12.1,<0.13')") from None
from amqtt.adapters import ReaderAdapter
from amqtt.adapters import StreamReaderAdapter
from amqtt.errors import MQTTError
from amqtt.errors import NoDataError
from amqtt.mqtt import packet as P
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.pingresp import PingRespPacket
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.pubrec import PubrecPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.mqtt.suback import SubackPacket
from amqtt.mqtt.subscribe import SubscribePacket
from amqtt.mqtt.unsuback import UnsubackPacket
from amqtt.mqtt.unsubscribe import UnsubscribePacket
from flask import g

import app as emqx
import database

log = logging.getLogger("emqx-standin.mqtt")

# CONNACK return codes (MQTT 3.1.1, 3.2.2.3)
ACCEPTED, BAD_VERSION, BAD_CLIENT_ID, UNAVAILABLE, BAD_CREDENTIALS, NOT_AUTHORIZED = range(6)
V5_UNSUPPORTED_VERSION = b"\x20\x03\x00\x84\x00"  # MQTT 5 CONNACK, reason 0x84, no properties
MAX_CLIENT_ID = 1024  # EMQ X's max_clientid_len
MAX_AWAITING_REL = 100  # EMQ X's max_awaiting_rel: QoS 2 messages awaiting their PUBREL
BATCH = 256  # jobs at most in one write transaction
CLAIM = 5000  # outbox rows at most claimed by one look
WRITE_BUFFER = 1 << 20  # bytes waiting for a client before deliveries to it wait too
QUEUE_BYTES = 8 << 20  # payload bytes claimed for one client and not yet written
PENDING_BYTES = 64 << 20  # payload bytes of PUBLISH packets read and not yet routed
PENDING_SOCKETS = 128  # sockets beyond max_conns that may be between accept and CONNECT
FRAME_TIMEOUT = 30.0  # seconds a started packet may take to arrive whole


class Malformed(Exception):
    """A packet that breaks the protocol: its connection is closed (3.1.1, 4.8)."""


@dataclass
class Settings:
    """The listener's settings, from the environment (README, "MQTT listener")."""

    database: str
    host: str = "127.0.0.1"
    port: int = 1883
    node: str | None = None
    max_conns: int = 1000
    max_inflight: int = 32
    max_queue: int = 1000
    max_packet: int = 1 << 20
    users: dict = field(default_factory=dict)
    poll: float = 0.002
    connect_timeout: float = 10.0

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env

        def number(name, default, low, high, kind=int):
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise SystemExit(f"{name}={raw!r} is not a number") from None
            if not low <= value <= high:
                raise SystemExit(f"{name}={raw} must be from {low} to {high}")
            return value

        users = {}
        for pair in filter(None, (p.strip() for p in env.get("STANDIN_MQTT_USERS", "")
                                  .split(","))):
            name, sep, password = pair.partition(":")
            if not sep or not name:
                raise SystemExit("STANDIN_MQTT_USERS must be user:password[,user:password...]")
            users[name] = password
        return cls(
            database=os.path.abspath(env.get("STANDIN_DB", "standin.db")),
            host=env.get("STANDIN_MQTT_HOST") or env.get("STANDIN_HOST") or "127.0.0.1",
            port=number("STANDIN_MQTT_PORT", 1883, 0, 65535),
            node=env.get("STANDIN_MQTT_NODE") or None,
            max_conns=number("STANDIN_MQTT_MAX_CONNS", 1000, 1, 1_000_000),
            max_inflight=number("STANDIN_MQTT_MAX_INFLIGHT", 32, 1, 65535),
            max_queue=number("STANDIN_MQTT_MAX_QUEUE", 1000, 1, 1_000_000),
            max_packet=number("STANDIN_MQTT_MAX_PACKET", 1 << 20, 64, 268_435_455),
            users=users,
            poll=number("STANDIN_MQTT_POLL_MS", 2, 1, 1000) / 1000,
            connect_timeout=number("STANDIN_MQTT_CONNECT_TIMEOUT", 10, 1, 3600, float),
        )


# ---------------------------------------------------------------------------
# Frames and packets (amqtt's packet layer)
# ---------------------------------------------------------------------------

DECODERS = {P.CONNECT: ConnectPacket, P.PUBLISH: PublishPacket, P.PUBACK: PubackPacket,
            P.PUBREC: PubrecPacket, P.PUBREL: PubrelPacket, P.PUBCOMP: PubcompPacket,
            P.SUBSCRIBE: SubscribePacket, P.UNSUBSCRIBE: UnsubscribePacket}
# The fixed header's flags each packet from a client must carry (3.1.1, 2.2.2).
FLAGS = {P.CONNECT: 0, P.PUBACK: 0, P.PUBREC: 0, P.PUBREL: 2, P.PUBCOMP: 0, P.SUBSCRIBE: 2,
         P.UNSUBSCRIBE: 2, P.PINGREQ: 0, P.DISCONNECT: 0}


class FrameReader(ReaderAdapter):
    """One frame's body for amqtt's decoders; it knows how much of it they read."""

    def __init__(self, body):
        self.body = body
        self.pos = 0

    async def read(self, n=-1):
        end = len(self.body) if n < 0 else self.pos + n
        data = self.body[self.pos:end]
        self.pos += len(data)
        return data

    def feed_eof(self):
        pass


async def decode(fixed, body):
    """The packet of a frame, by amqtt; Malformed when it does not decode to exactly the
    frame."""
    cls = DECODERS[fixed.packet_type]
    reader = FrameReader(body)
    try:
        packet = await cls.from_stream(reader, fixed_header=fixed)
    except Exception as e:  # noqa: BLE001 - whatever a decoder trips on, the packet is bad
        raise Malformed(f"{cls.__name__}: {type(e).__name__}: {e}") from None
    if reader.pos != len(body):
        raise Malformed(f"{cls.__name__}: {len(body) - reader.pos} bytes left over")
    return packet


def utf8_ok(text):
    """A string of a packet that may be used: decoded, without U+0000 (3.1.1, 1.5.3). (amqtt
    decodes a string that is not UTF-8 as the repr of its bytes: a topic name is checked on
    the wire instead, see on_publish.)"""
    return text is not None and "\0" not in text


def frame_size(body):
    """Bytes of a whole packet whose remaining part is `body`."""
    n = len(body)
    return 2 + n + (n >= 128) + (n >= 16384) + (n >= 2097152)


def protocol_level(body):
    """The protocol level of a CONNECT's body, or None when its protocol name is unknown."""
    if len(body) < 2:
        return None
    n = int.from_bytes(body[:2], "big")
    if body[2:2 + n] not in (b"MQTT", b"MQIsdp") or len(body) <= 2 + n:
        return None
    return body[2 + n]


# ---------------------------------------------------------------------------
# The database thread: every change, batched; the outbox and the socket rows, watched
# ---------------------------------------------------------------------------


@dataclass
class Job:
    fn: object
    args: tuple
    future: asyncio.Future
    then: object = None  # called in the loop with the result, before the future settles


class Store:
    """The thread that owns the listener's SQLite connection (see the module's docstring)."""

    def __init__(self, settings, owner, loop, listener):
        self.settings = settings
        self.owner = owner
        self.loop = loop
        self.listener = listener
        self.jobs = queue.SimpleQueue()
        self.db = None
        self.ready = False
        self.node = None
        self.owned = {}  # conn_id -> client_id: the rows this listener's sockets own
        self.full = frozenset()  # conn_ids whose clients have no room (set by the loop)
        self.version = None
        self.dirty = False
        self.running = True
        self.thread = threading.Thread(target=self.run, name="mqtt-db", daemon=True)
        self.stopped = threading.Event()

    # --- from the loop ---

    def submit(self, fn, *args, then=None):
        future = self.loop.create_future()
        future.add_done_callback(retrieve)  # a job nobody waits for may fail quietly
        self.jobs.put(Job(fn, args, future, then))
        return future

    def stop(self):
        self.jobs.put(None)

    # --- the thread ---

    def run(self):
        try:
            self.wait_ready()
            if self.stopped.is_set():
                return
            self.forget_stale()
            while True:
                try:
                    first = self.jobs.get(timeout=self.settings.poll)
                except queue.Empty:
                    first = False
                if first is None:
                    break
                batch = [first] if first else []
                while len(batch) < BATCH:
                    try:
                        job = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        self.jobs.put(None)
                        break
                    batch.append(job)
                if batch:
                    self.run_batch(batch)
                try:
                    self.look()
                except sqlite3.Error as e:
                    log.warning("mqtt: looking at the outbox failed (%s); trying again", e)
        except Exception:
            log.exception("mqtt: the database thread failed")
            self.loop.call_soon_threadsafe(self.listener.fatal)
        finally:
            self.shutdown()

    def wait_ready(self):
        """Wait until the database is seeded and of this version (gunicorn may be seeding)."""
        said = False
        while not self.stopped.is_set():
            try:
                if self.db is None:
                    self.db = database.open_db(self.settings.database, timeout=10)
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
                seeded = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                         " AND name = 'meta'").fetchone() and self.db.execute(
                    "SELECT 1 FROM meta WHERE key = 'seed'").fetchone()
                if seeded and version == database.SCHEMA_VERSION:
                    nodes = [r[0] for r in self.db.execute(
                        "SELECT name FROM nodes ORDER BY position")]
                    self.node = self.settings.node or nodes[0]
                    if self.node not in nodes:
                        log.error("mqtt: STANDIN_MQTT_NODE=%s is not a node of the cluster"
                                  " (%s)", self.node, ", ".join(nodes))
                        self.loop.call_soon_threadsafe(self.listener.fatal)
                        self.stopped.set()
                        return
                    self.ready = True
                    return
                if seeded and not said:  # gunicorn refuses it, or rebuilds it (RESEED)
                    log.warning("mqtt: %s", database.outdated_message(self.settings.database,
                                                                   version))
                    said = True
            except sqlite3.Error as e:
                if not said:
                    log.info("mqtt: waiting for the database (%s)", e)
            if not said:
                log.info("mqtt: waiting for %s to be seeded", self.settings.database)
                said = True
            time.sleep(0.05)

    def forget_stale(self):
        """Rows of an earlier listener on this address: their sockets are gone."""
        suffix = self.owner.split("@", 1)[1]
        with emqx.app.app_context():
            g.db = self.db
            with database.transaction(self.db):
                rows = self.db.execute("SELECT conn_id, client_id FROM mqtt_sockets"
                                       " WHERE owner LIKE ?", (f"%@{suffix}",)).fetchall()
                for conn_id, client_id in rows:
                    drop_connection(self.db, conn_id, client_id, "closed")
        if rows:
            log.info("mqtt: %d connection(s) of an earlier listener on %s closed", len(rows),
                     suffix)

    def run_batch(self, batch):
        results = []
        try:
            with emqx.app.app_context():
                g.db = self.db
                with database.transaction(self.db):
                    for job in batch:
                        self.db.execute("SAVEPOINT job")
                        g.pop("work", None)
                        try:
                            result = job.fn(self, self.db, *job.args)
                        except Exception as e:  # noqa: BLE001 - one job's failure is its own
                            self.db.execute("ROLLBACK TO job")
                            self.db.execute("RELEASE job")
                            if not isinstance(e, (emqx.ApiError, sqlite3.Error)):
                                log.exception("mqtt: %s failed", job.fn.__name__)
                            results.append((job, None, e))
                        else:
                            self.db.execute("RELEASE job")
                            results.append((job, result, None))
        except sqlite3.Error as e:
            log.warning("mqtt: a write of %d job(s) failed: %s", len(batch), e)
            results = [(job, None, e) for job in batch]
        self.dirty = True
        for job, result, error in results:
            self.loop.call_soon_threadsafe(settle, job, result, error)

    def look(self):
        """Claim the outbox rows of the clients held here, find the sockets whose rows are
        gone and whether the node still runs; tell the loop."""
        db = self.db
        version = db.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self.version  # another process wrote (its own writes: dirty)
        if not changed and not self.dirty:
            return
        self.version, self.dirty = version, False
        if changed:
            row = db.execute("SELECT node_status FROM nodes WHERE name = ?",
                             (self.node,)).fetchone()
            self.running = row is not None and row[0] == "Running"
        running = self.running
        if not self.owned:
            if changed:
                self.loop.call_soon_threadsafe(self.listener.on_look, running, (), ())
            return
        if not running:  # a stopped node drops its real clients
            with emqx.app.app_context():
                g.db = db
                with database.transaction(db):
                    for conn_id, client_id in self.owned.items():
                        drop_connection(db, conn_id, client_id, "closed")
            gone, self.owned = list(self.owned), {}
            self.loop.call_soon_threadsafe(self.listener.on_look, running, gone, ())
            return
        gone = []
        if changed:  # rows only other processes remove: kickout, takeover, reset
            present = {r[0] for r in db.execute(
                "SELECT conn_id FROM mqtt_sockets WHERE owner = ?", (self.owner,))}
            gone = [c for c in self.owned if c not in present]
            for conn_id in gone:
                del self.owned[conn_id]
        full = self.full
        if full:
            self.trim(full)
        pending = db.execute(
            "SELECT o.id, o.qos FROM mqtt_sockets s JOIN mqtt_outbox o ON o.client_id ="
            " s.client_id AND o.conn_id IS NULL WHERE s.owner = ? AND s.conn_id NOT IN"
            " (SELECT value FROM json_each(?)) ORDER BY o.id LIMIT ?",
            (self.owner, json.dumps(sorted(full)), CLAIM)).fetchall()
        claimed = []
        if pending:
            ids0 = [r[0] for r in pending if r[1] == 0]
            ids = [r[0] for r in pending if r[1] != 0]
            with database.transaction(db):
                # Claimed for the connection that holds the client now; QoS 0 is sent once.
                sql = ("o.id, o.client_id, o.topic, o.payload, o.qos, o.retain, o.created,"
                       " s.conn_id FROM mqtt_outbox o JOIN mqtt_sockets s ON s.client_id ="
                       " o.client_id AND s.owner = ?")
                for chunk in chunks(ids0):
                    claimed += db.execute(f"SELECT {sql} WHERE o.id IN ({qmarks(chunk)})",
                                          (self.owner, *chunk)).fetchall()
                    db.execute(f"DELETE FROM mqtt_outbox WHERE id IN ({qmarks(chunk)})", chunk)
                for chunk in chunks(ids):
                    db.execute(f"UPDATE mqtt_outbox AS u SET conn_id = (SELECT s.conn_id FROM"
                               f" mqtt_sockets s WHERE s.client_id = u.client_id AND s.owner"
                               f" = ?) WHERE id IN ({qmarks(chunk)}) AND conn_id IS NULL",
                               (self.owner, *chunk))
                    claimed += db.execute(f"SELECT {sql} WHERE o.id IN ({qmarks(chunk)})",
                                          (self.owner, *chunk)).fetchall()
            claimed.sort(key=lambda r: r[0])
        if gone or claimed or not running:
            self.loop.call_soon_threadsafe(self.listener.on_look, running, gone,
                                           [tuple(r) for r in claimed])

    def trim(self, full):
        """A client that reads slower than it is sent to keeps its newest max_queue
        messages waiting in the outbox; older ones are dropped, as a full mqueue drops."""
        limit = self.settings.max_queue
        for conn_id in full:
            client_id = self.owned.get(conn_id)
            if client_id is None:
                continue
            waiting = self.db.execute("SELECT count(*) FROM mqtt_outbox WHERE client_id = ?"
                                      " AND conn_id IS NULL", (client_id,)).fetchone()[0]
            if waiting > limit:
                with database.transaction(self.db):
                    self.db.execute(
                        "DELETE FROM mqtt_outbox WHERE id IN (SELECT id FROM mqtt_outbox WHERE"
                        " client_id = ? AND conn_id IS NULL ORDER BY id DESC LIMIT -1 OFFSET ?)",
                        (client_id, limit))
                    self.db.execute("UPDATE sessions SET mqueue_dropped = mqueue_dropped + ?"
                                    " WHERE client_id = ?", (waiting - limit, client_id))

    def shutdown(self):
        """The listener stops: its connections go (their sessions as their clean flag says)."""
        if self.db is None:
            return
        try:
            if self.owned:
                with emqx.app.app_context():
                    g.db = self.db
                    with database.transaction(self.db):
                        for conn_id, client_id in self.owned.items():
                            drop_connection(self.db, conn_id, client_id, "closed")
                self.owned = {}
        except sqlite3.Error as e:
            log.warning("mqtt: could not remove the connections at stop: %s", e)
        finally:
            self.db.close()
            self.db = None
            try:
                self.loop.call_soon_threadsafe(self.listener.store_stopped)
            except RuntimeError:  # the loop has ended already
                pass


def retrieve(future):
    if not future.cancelled():
        future.exception()


def settle(job, result, error):
    if job.then is not None and error is None:
        try:
            job.then(result)
        except Exception:
            log.exception("mqtt: answering a packet failed")
    if not job.future.done():
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)


def chunks(ids, size=500):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def qmarks(items):
    return ",".join("?" * len(items))


def drop_connection(db, conn_id, client_id, reason):
    """Remove a real connection's row whatever its node's state (a clean session with it),
    its unacknowledged deliveries back to waiting."""
    row = db.execute("SELECT id, listener_id, clean_start FROM connections WHERE id = ?",
                     (conn_id,)).fetchone()
    db.execute("UPDATE mqtt_outbox SET conn_id = NULL WHERE conn_id = ?", (conn_id,))
    db.execute("DELETE FROM mqtt_sockets WHERE conn_id = ?", (conn_id,))
    if row is not None:
        emqx.close_connection(db, row, client_id, reason)


def traffic(db, conn_id, recv_pkt=0, recv_oct=0, send_pkt=0, send_oct=0):
    """A real connection's own stats: the packets and bytes the rules do not count."""
    db.execute("UPDATE connections SET recv_cnt = recv_cnt + ?1, recv_pkt = recv_pkt + ?1,"
               " recv_oct = recv_oct + ?2, send_cnt = send_cnt + ?3, send_pkt = send_pkt + ?3,"
               " send_oct = send_oct + ?4 WHERE id = ?5",
               (recv_pkt, recv_oct, send_pkt, send_oct, conn_id))


# ---------------------------------------------------------------------------
# Jobs: each runs in the database thread, in a savepoint, with (store, db, ...)
# ---------------------------------------------------------------------------


def job_connect(store, db, c):
    """A CONNECT that passed the listener's own checks, under the broker's rules."""
    node = store.node
    row = db.execute("SELECT node_status FROM nodes WHERE name = ?", (node,)).fetchone()
    counts = {(node, "packets/connect"): 1, (node, "packets/connack"): 1,
              (node, "bytes/received"): c.connect_size, (node, "bytes/sent"): 4}
    if row is None or row[0] != "Running":
        emqx.bump(db, counts)
        return UNAVAILABLE, None, False, ()
    if len(store.owned) >= store.settings.max_conns:
        emqx.bump(db, counts)
        return UNAVAILABLE, None, False, ()
    before = db.execute("SELECT clean_start FROM sessions WHERE client_id = ?",
                        (c.client_id,)).fetchone()
    estimate = 14 + len(c.client_id.encode()) + len((c.username or "").encode())
    correction = {(node, "bytes/received"): c.connect_size - estimate}
    if not emqx.connect_client(db, node, c.client_id, c.username, c.clean, c.proto_ver,
                               c.keepalive, c.ip, c.port):
        emqx.bump(db, correction)
        return NOT_AUTHORIZED, None, False, ()  # banned: EMQ X 3.0 answers 5 to 3.1.1
    emqx.bump(db, correction)
    conn_id = db.execute("SELECT id FROM connections WHERE client_id = ?",
                         (c.client_id,)).fetchone()[0]
    db.execute("UPDATE connections SET recv_oct = recv_oct + ? WHERE id = ?",
               (c.connect_size - estimate, conn_id))
    taken = [cid for cid, client_id in store.owned.items() if client_id == c.client_id
             or cid == conn_id]
    for cid in taken:  # taken over: what its connection had not acknowledged waits again
        del store.owned[cid]
        db.execute("UPDATE mqtt_outbox SET conn_id = NULL WHERE conn_id = ?", (cid,))
    db.execute("INSERT OR REPLACE INTO mqtt_sockets (conn_id, client_id, owner) VALUES (?, ?, ?)",
               (conn_id, c.client_id, store.owner))
    db.execute("INSERT OR IGNORE INTO mqtt_sessions (client_id) VALUES (?)", (c.client_id,))
    store.owned[conn_id] = c.client_id
    present = not c.clean and before is not None
    return ACCEPTED, conn_id, present, taken


def job_refused(store, db, connect_size, sent):
    """A CONNECT refused before the rules were asked (protocol, credentials, client id)."""
    node = store.node
    emqx.bump(db, {(node, "packets/connect"): 1, (node, "packets/connack"): 1,
                   (node, "bytes/received"): connect_size, (node, "bytes/sent"): sent})


def owned(store, db, conn_id):
    return conn_id in store.owned


def job_publish(store, db, conn_id, client_id, topic, payload, qos, retain):
    """A client's PUBLISH: a message received from a device, routed as any."""
    if not owned(store, db, conn_id):
        return False
    emqx.publish(db, topic, payload, qos, retain, store.node, device=client_id)
    return True


def job_subscribe(store, db, conn_id, client_id, topics, recv_oct, send_oct):
    if not owned(store, db, conn_id):
        return None
    node = store.node
    emqx.bump(db, {(node, "packets/subscribe"): 1, (node, "packets/suback"): 1,
                   (node, "bytes/received"): recv_oct, (node, "bytes/sent"): send_oct})
    traffic(db, conn_id, 1, recv_oct, 1, send_oct)
    session = {"client_id": client_id, "node": node}
    codes = []
    for i, (topic, qos) in enumerate(topics):
        if i >= emqx.MAX_TOPICS or not emqx.valid_filter(topic):  # the API's bound too
            codes.append(0x80)
            continue
        emqx.subscribe(db, session, topic, qos)
        codes.append(qos)
    return codes


def job_unsubscribe(store, db, conn_id, client_id, topics, recv_oct):
    if not owned(store, db, conn_id):
        return False
    node = store.node
    emqx.bump(db, {(node, "packets/unsubscribe"): 1, (node, "packets/unsuback"): 1,
                   (node, "bytes/received"): recv_oct, (node, "bytes/sent"): 4})
    traffic(db, conn_id, 1, recv_oct, 1, 4)
    db.executemany("DELETE FROM subscriptions WHERE client_id = ? AND topic = ?",
                   [(client_id, t) for t in topics])
    return True


def job_ping(store, db, conn_id):
    if not owned(store, db, conn_id):
        return False
    node = store.node
    emqx.bump(db, {(node, "packets/pingreq"): 1, (node, "packets/pingresp"): 1,
                   (node, "bytes/received"): 2, (node, "bytes/sent"): 2})
    traffic(db, conn_id, 1, 2, 1, 2)
    return True


def job_acked(store, db, outbox_ids):
    """Deliveries the client acknowledged (PUBACK, PUBCOMP): counted when routed, gone now."""
    for chunk in chunks(outbox_ids):
        db.execute(f"DELETE FROM mqtt_outbox WHERE id IN ({qmarks(chunk)})", chunk)


def job_release(store, db, rows):
    db.executemany("UPDATE mqtt_outbox SET conn_id = NULL WHERE id = ? AND conn_id = ?", rows)


def job_missed(store, db, key):
    emqx.bump(db, {(store.node, key): 1})


def job_dropped(store, db, client_id, outbox_ids):
    """Deliveries past the client's queue: dropped, as a full mqueue drops."""
    job_acked(store, db, outbox_ids)
    db.execute("UPDATE sessions SET mqueue_dropped = mqueue_dropped + ? WHERE client_id = ?",
               (len(outbox_ids), client_id))


def job_disconnect(store, db, conn_id, client_id):
    """The client's DISCONNECT: its will is discarded."""
    if not owned(store, db, conn_id):
        return False
    del store.owned[conn_id]
    node = store.node
    drop_connection(db, conn_id, client_id, "closed")
    emqx.bump(db, {(node, "packets/disconnect/received"): 1, (node, "bytes/received"): 2})
    return True


def job_lost(store, db, conn_id, client_id, reason, will):
    """A connection that ended without DISCONNECT (or was kicked out): its row goes, if it
    is still there, and its will is published."""
    if owned(store, db, conn_id):
        del store.owned[conn_id]
        drop_connection(db, conn_id, client_id, reason)
    else:
        db.execute("UPDATE mqtt_outbox SET conn_id = NULL WHERE conn_id = ?", (conn_id,))
    if will is not None:
        row = db.execute("SELECT node_status FROM nodes WHERE name = ?", (store.node,)).fetchone()
        if row is not None and row[0] == "Running":
            topic, payload, qos, retain = will
            emqx.publish(db, topic, payload, qos, retain, store.node)
    return True


# ---------------------------------------------------------------------------
# The sockets
# ---------------------------------------------------------------------------


class Client:
    """One socket, from accept to close."""

    def __init__(self, listener, reader, writer):
        self.listener = listener
        self.store = listener.store
        self.settings = listener.settings
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        self.ip, self.port = peer[0], peer[1]
        self.conn_id = None
        self.client_id = None
        self.username = None
        self.clean = True
        self.proto_ver = 4
        self.keepalive = 0
        self.connect_size = 0
        self.will = None
        self.closed = False
        self.gone = False  # its row is gone already (kicked, taken over, node stopped)
        self.reason = "closed"
        self.last_packet = time.monotonic()
        self.frame_started = None
        self.queue = collections.deque()  # outbox rows waiting for the inflight window
        self.queue_bytes = 0
        self.inflight = {}  # packet id -> [outbox id, qos, stage]
        self.next_id = 0
        self.awaiting_rel = set()
        self.pending = collections.deque()  # futures of jobs not answered yet
        self.done = asyncio.Event()

    # --- reading ---

    async def read_frame(self):
        fixed = await P.MQTTFixedHeader.from_stream(StreamReaderAdapter(self.reader))
        if fixed is None:
            return None, None
        self.frame_started = time.monotonic()
        if fixed.remaining_length > self.settings.max_packet:
            raise Malformed(f"a packet of {fixed.remaining_length} bytes, over the"
                            f" {self.settings.max_packet}-byte limit")
        body = await self.reader.readexactly(fixed.remaining_length)
        self.frame_started = None
        self.last_packet = time.monotonic()
        return fixed, body

    async def run(self):
        try:
            fixed, body = await self.read_frame()
            if fixed is None:
                return
            if fixed.packet_type != P.CONNECT:
                raise Malformed("the first packet is not CONNECT")
            if not await self.on_connect(fixed, body):
                return
            while not self.closed:
                fixed, body = await self.read_frame()
                if fixed is None:
                    break
                await self.on_packet(fixed, body)
                if len(self.pending) > 64:  # a client that sends faster than it is served
                    await asyncio.wait([self.pending[-1]])
                await self.listener.room.wait()  # PUBLISH bytes read and not yet routed
                while self.pending and self.pending[0].done():
                    self.pending.popleft()
        except Malformed as e:
            log.info("mqtt: %s:%s (%s) closed: %s", self.ip, self.port, self.client_id, e)
            self.reason = "protocol_error"
        except (asyncio.IncompleteReadError, ConnectionError, MQTTError, NoDataError,
                TimeoutError, OSError):
            pass
        finally:
            await self.close()

    def watchdog(self, now):
        """Called every second: keepalive (1.5 x), CONNECT and frame deadlines."""
        if self.closed:
            return
        if self.conn_id is None:
            late = now - self.last_packet > self.settings.connect_timeout
        else:
            late = self.keepalive and now - self.last_packet > 1.5 * self.keepalive
        if late or (self.frame_started is not None and now - self.frame_started > FRAME_TIMEOUT):
            self.reason = "keepalive_timeout"
            self.abort()

    # --- CONNECT ---

    async def on_connect(self, fixed, body):
        self.connect_size = frame_size(body)
        if fixed.flags != 0:
            raise Malformed("CONNECT with reserved flags set")
        level = protocol_level(body)
        if level == 5:
            return await self.refuse(None, V5_UNSUPPORTED_VERSION)
        if level not in (3, 4):
            return await self.refuse(BAD_VERSION)
        packet = await decode(fixed, body)
        vh, pl = packet.variable_header, packet.payload
        expected = "MQIsdp" if vh.proto_level == 3 else "MQTT"
        if vh.proto_name != expected:
            return await self.refuse(BAD_VERSION)
        if vh.reserved_flag:
            raise Malformed("CONNECT with the reserved flag set")
        if vh.will_flag:
            if vh.will_qos > 2 or pl.will_topic is None or pl.will_message is None:
                raise Malformed("a bad will")
            if not emqx.valid_name(pl.will_topic) or not utf8_ok(pl.will_topic):
                raise Malformed("a bad will topic")
            self.will = (pl.will_topic, bytes(pl.will_message), vh.will_qos,
                         vh.will_retain_flag)
        elif vh.will_qos or vh.will_retain_flag:
            raise Malformed("will QoS or retain without a will")
        if vh.username_flag and pl.username is None:
            raise Malformed("no user name")
        if vh.password_flag and (pl.password is None or (vh.proto_level == 4
                                                         and not vh.username_flag)):
            raise Malformed("a password without a user name")
        self.proto_ver, self.keepalive, self.clean = vh.proto_level, vh.keep_alive, \
            vh.clean_session_flag
        self.username = pl.username if vh.username_flag else None
        if pl.client_id_is_random:
            if not self.clean:
                return await self.refuse(BAD_CLIENT_ID)
            pl.client_id = f"emqx_{secrets.token_hex(10)}"  # the broker names it
        self.client_id = pl.client_id
        if (len(self.client_id) > MAX_CLIENT_ID or not utf8_ok(self.client_id)
                or (self.username is not None and not utf8_ok(self.username))):
            return await self.refuse(BAD_CLIENT_ID)
        users = self.settings.users
        if users:
            if self.username is None:
                return await self.refuse(NOT_AUTHORIZED)
            password = pl.password if vh.password_flag else None
            known = users.get(self.username)
            if known is None or password is None or not hmac.compare_digest(
                    known.encode(), password.encode()):
                return await self.refuse(BAD_CREDENTIALS)
        # Waits for a database being seeded; answered in connected(), before any delivery.
        future = self.store.submit(job_connect, self, then=self.connected)
        await asyncio.wait([future], timeout=self.settings.connect_timeout)
        if not future.done():  # the database is slow: the client is told so, and the row,
            self.closed = True  # if one is made after all, goes again (connected)
            return await self.refuse(UNAVAILABLE, count=False)
        try:
            code = future.result()[0]
        except Exception as e:  # noqa: BLE001 - the database said no (busy, full)
            log.warning("mqtt: CONNECT of %s failed: %s", self.client_id, e)
            return await self.refuse(UNAVAILABLE, count=False)
        if code != ACCEPTED:
            return await self.refuse(code, count=False)
        return self.conn_id is not None

    def connected(self, result):
        """The CONNECT's answer, in the loop, before the outbox is looked at again."""
        code, conn_id, present, taken = result
        for old in taken:
            self.listener.taken_over(old)
        if code != ACCEPTED:
            return
        if self.closed:  # given up on meanwhile
            self.store.submit(job_lost, conn_id, self.client_id, "closed", None)
            return
        self.conn_id = conn_id
        self.listener.clients[conn_id] = self
        self.send(ConnackPacket.build(int(present), ACCEPTED).to_bytes())

    async def refuse(self, code, raw=None, count=True):
        data = raw or ConnackPacket.build(0, code).to_bytes()
        self.send(data)
        if count:
            self.store.submit(job_refused, self.connect_size, len(data))
        self.gone = True
        return False

    # --- after CONNECT ---

    async def on_packet(self, fixed, body):
        kind = fixed.packet_type
        if kind in FLAGS and fixed.flags != FLAGS[kind]:
            raise Malformed(f"packet type {kind} with flags {fixed.flags}")
        if kind == P.PUBLISH:
            await self.on_publish(fixed, body)
        elif kind in (P.PUBACK, P.PUBREC, P.PUBCOMP):
            self.on_ack(kind, (await decode(fixed, body)).packet_id)
        elif kind == P.PUBREL:
            packet_id = (await decode(fixed, body)).packet_id
            self.awaiting_rel.discard(packet_id)
            self.send(PubcompPacket.build(packet_id).to_bytes())  # counted with the PUBLISH
        elif kind == P.SUBSCRIBE:
            await self.on_subscribe(fixed, body)
        elif kind == P.UNSUBSCRIBE:
            packet = await decode(fixed, body)
            topics = packet.payload.topics
            if not topics or not all(utf8_ok(t) and t for t in topics):
                raise Malformed("UNSUBSCRIBE without topics")
            ack = UnsubackPacket.build(packet.variable_header.packet_id).to_bytes()
            self.job(job_unsubscribe, self.conn_id, self.client_id, topics, frame_size(body),
                     then=lambda ok: ok and self.send(ack))
        elif kind == P.PINGREQ:
            if body:
                raise Malformed("PINGREQ with a body")
            pong = PingRespPacket.build().to_bytes()
            self.job(job_ping, self.conn_id, then=lambda ok: ok and self.send(pong))
        elif kind == P.DISCONNECT:
            if body:
                raise Malformed("DISCONNECT with a body")
            self.will = None
            self.gone = True
            await asyncio.wait([self.job(job_disconnect, self.conn_id, self.client_id)])
            self.closed = True
        else:
            raise Malformed(f"packet type {kind} from a client")

    def job(self, fn, *args, then=None):
        future = self.store.submit(fn, *args, then=then)
        self.pending.append(future)
        return future

    async def on_publish(self, fixed, body):
        qos = (fixed.flags >> 1) & 3
        if qos == 3 or (qos == 0 and fixed.flags & 8):
            raise Malformed("PUBLISH with QoS 3, or DUP at QoS 0")
        packet = await decode(fixed, body)
        topic = packet.variable_header.topic_name
        packet_id = packet.variable_header.packet_id
        try:
            body[2:2 + int.from_bytes(body[:2], "big")].decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("PUBLISH to a topic name that is not UTF-8") from None
        if not emqx.valid_name(topic) or not utf8_ok(topic):
            raise Malformed(f"PUBLISH to a bad topic name {topic[:64]!r}")
        if qos and not packet_id:
            raise Malformed("PUBLISH without a packet id")
        payload = bytes(packet.payload.data or b"")
        retain = bool(fixed.flags & 1)
        if qos == 2:
            if packet_id in self.awaiting_rel:  # a resent message: acknowledged, not routed
                self.send(PubrecPacket.build(packet_id).to_bytes())
                return
            if len(self.awaiting_rel) >= MAX_AWAITING_REL:
                log.info("mqtt: %s has %d messages awaiting PUBREL: dropped", self.client_id,
                         MAX_AWAITING_REL)
                return
            self.awaiting_rel.add(packet_id)
        ack = (None, PubackPacket, PubrecPacket)[qos]
        ack = ack.build(packet_id).to_bytes() if ack else None
        listener = self.listener
        listener.pending_bytes += len(payload)
        if listener.pending_bytes > PENDING_BYTES:
            listener.room.clear()

        def routed(ok):
            listener.routed(len(payload))
            if ok and ack:
                self.send(ack)

        future = self.job(job_publish, self.conn_id, self.client_id, topic, payload, qos,
                          retain, then=routed)
        future.add_done_callback(lambda f: f.exception() and listener.routed(len(payload)))

    async def on_subscribe(self, fixed, body):
        packet = await decode(fixed, body)
        topics = packet.payload.topics
        if not topics:
            raise Malformed("SUBSCRIBE without topics")
        for topic, qos in topics:
            if not isinstance(qos, int) or qos > 2 or not utf8_ok(topic):
                raise Malformed("SUBSCRIBE with a bad QoS or topic")
        packet_id = packet.variable_header.packet_id
        send_oct = 4 + len(topics)

        def answer(codes):
            if codes is not None:
                self.send(SubackPacket.build(packet_id, codes).to_bytes())

        self.job(job_subscribe, self.conn_id, self.client_id, list(topics), frame_size(body),
                 send_oct, then=answer)

    # --- deliveries (from the outbox) ---

    def deliver(self, row):
        """An outbox row claimed for this connection: sent now, or when the window opens."""
        if len(self.queue) >= self.settings.max_queue:
            self.listener.drop(self.client_id, row)
            return
        self.queue.append(row)
        self.queue_bytes += len(row[3])

    def full(self):
        """No room for more deliveries now: they wait in the outbox (see Store.trim)."""
        return (len(self.queue) >= self.settings.max_queue or self.queue_bytes >= QUEUE_BYTES
                or self.writer.transport.get_write_buffer_size() >= WRITE_BUFFER)

    def pump(self):
        if self.closed:
            return
        transport = self.writer.transport
        while self.queue and transport.get_write_buffer_size() < WRITE_BUFFER:
            outbox_id, _cid, topic, payload, qos, retain, created, _conn = self.queue[0]
            if qos and len(self.inflight) >= self.settings.max_inflight:
                break
            self.queue.popleft()
            self.queue_bytes -= len(payload)
            packet_id = None
            if qos:
                packet_id = self.new_packet_id()
                self.inflight[packet_id] = [outbox_id, qos, 1]
            self.send(PublishPacket.build(topic, payload, packet_id, False, qos,
                                          bool(retain)).to_bytes())
            self.listener.latency.append(time.time() - created)

    def new_packet_id(self):
        for _ in range(65535):
            self.next_id = self.next_id % 65535 + 1
            if self.next_id not in self.inflight:
                return self.next_id
        raise Malformed("no packet id free")

    def on_ack(self, kind, packet_id):
        entry = self.inflight.get(packet_id)
        expected = {P.PUBACK: (1, 1), P.PUBREC: (2, 1), P.PUBCOMP: (2, 2)}[kind]
        if entry is None or (entry[1], entry[2]) != expected:
            key = {P.PUBACK: "packets/puback/missed", P.PUBREC: "packets/pubrec/missed",
                   P.PUBCOMP: "packets/pubcomp/missed"}[kind]
            self.job(job_missed, key)
            return
        if kind == P.PUBREC:
            entry[2] = 2
            self.send(PubrelPacket.build(packet_id).to_bytes())  # counted when routed
            return
        del self.inflight[packet_id]
        self.listener.ack(entry[0])
        self.pump()

    # --- writing and closing ---

    def send(self, data):
        if not self.writer.is_closing():
            self.writer.write(data)

    def abort(self):
        """Close from outside the read loop (kicked, taken over, timed out, stopping)."""
        if not self.closed:
            self.closed = True
            self.writer.close()

    async def close(self):
        self.closed = True
        try:
            if not self.writer.is_closing():
                self.writer.close()
        except Exception:  # noqa: BLE001 - already gone
            pass
        if self.conn_id is not None and self.listener.clients.get(self.conn_id) is self:
            del self.listener.clients[self.conn_id]
            if not self.gone:
                try:
                    await self.store.submit(job_lost, self.conn_id, self.client_id,
                                            self.reason, self.will)
                except Exception as e:  # noqa: BLE001 - logged; the row is fixed at restart
                    log.warning("mqtt: closing %s failed: %s", self.client_id, e)
        self.done.set()


class Listener:
    """The TCP server and its clients; see the module's docstring."""

    def __init__(self, settings, ready_fd=None):
        self.settings = settings
        self.ready_fd = ready_fd
        self.loop = None
        self.store = None
        self.server = None
        self.sockets = set()
        self.clients = {}  # conn_id -> Client
        self.running = True
        self.acks = []
        self.latency = collections.deque(maxlen=10000)
        self.pending_bytes = 0
        self.room = asyncio.Event()
        self.room.set()
        self.stopping = None

    async def serve(self):
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        try:
            self.server = await asyncio.start_server(self.accept, self.settings.host,
                                                     self.settings.port, backlog=1024,
                                                     reuse_address=True)
        except OSError as e:
            self.report(f"error: cannot listen on {self.settings.host}:{self.settings.port}:"
                        f" {e.strerror or e}")
            raise SystemExit(2) from None
        port = self.server.sockets[0].getsockname()[1]
        owner = f"{os.getpid()}@{self.settings.host}:{port}"
        self.store = Store(self.settings, owner, self.loop, self)
        self.store.thread.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.stopping.set)
        log.info("mqtt: listening on %s:%s (MQTT 3.1/3.1.1), database %s", self.settings.host,
                 port, self.settings.database)
        self.report(f"ok {port}")
        watchdog = asyncio.create_task(self.watch())
        await self.stopping.wait()
        watchdog.cancel()
        self.server.close()
        for client in list(self.sockets):
            client.gone = True  # the store removes their rows at its stop
            client.abort()
        self.store.stopped.set()
        self.store.stop()
        await asyncio.sleep(0)
        for _ in range(100):
            if not self.store.thread.is_alive():
                break
            await asyncio.sleep(0.05)
        log.info("mqtt: stopped")

    def report(self, line):
        if self.ready_fd is not None:
            try:
                os.write(self.ready_fd, (line + "\n").encode())
                os.close(self.ready_fd)
            except OSError:
                pass
            self.ready_fd = None
        elif line.startswith("error"):
            log.error("mqtt: %s", line)

    async def accept(self, reader, writer):
        if len(self.sockets) >= self.settings.max_conns + PENDING_SOCKETS:
            writer.transport.abort()
            return
        client = Client(self, reader, writer)
        self.sockets.add(client)
        try:
            await client.run()
        except Exception:
            log.exception("mqtt: a connection failed")
        finally:
            self.sockets.discard(client)

    async def watch(self):
        while True:
            await asyncio.sleep(1)
            now = time.monotonic()
            for client in list(self.sockets):
                client.watchdog(now)
                if client.queue:
                    client.pump()  # a slow reader's buffer may have drained
            self.update_full()

    # --- from the store (in the loop) ---

    def on_look(self, running, gone, claimed):
        self.running = running
        for conn_id in gone:
            client = self.clients.get(conn_id)
            if client is not None:
                client.gone = True  # kicked out, taken over or its node stopped
                del self.clients[conn_id]
                if running and client.will is not None:
                    self.store.submit(job_lost, conn_id, client.client_id, "kicked", client.will)
                else:
                    self.store.submit(job_lost, conn_id, client.client_id, "kicked", None)
                client.abort()
        touched, orphans = set(), []
        for row in claimed:
            client = self.clients.get(row[7])
            if client is None or client.closed:
                if row[4]:  # not for a socket here any more: waits again
                    orphans.append((row[0], row[7]))
                continue
            client.deliver(row)
            touched.add(client)
        if orphans:
            self.store.submit(job_release, orphans)
        for client in touched:
            client.pump()
        self.update_full()

    def update_full(self):
        self.store.full = frozenset(c.conn_id for c in self.clients.values() if c.full())

    def routed(self, size):
        self.pending_bytes -= size
        if self.pending_bytes <= PENDING_BYTES:
            self.room.set()

    def taken_over(self, conn_id):
        client = self.clients.pop(conn_id, None)
        if client is not None:
            client.gone = True
            client.will = None
            client.abort()

    def ack(self, outbox_id):
        if not self.acks:
            self.loop.call_soon(self.flush_acks)
        self.acks.append(outbox_id)

    def flush_acks(self):
        acks, self.acks = self.acks, []
        if acks:
            self.store.submit(job_acked, acks)

    def drop(self, client_id, row):
        self.store.submit(job_dropped, client_id, [row[0]])

    def fatal(self):
        if self.stopping is not None:
            self.stopping.set()

    def store_stopped(self):
        if self.stopping is not None:
            self.stopping.set()


# ---------------------------------------------------------------------------
# Starting it: alone, or from gunicorn's master
# ---------------------------------------------------------------------------


def main(argv=None):
    """`python mqtt.py`: the listener on the settings of the environment."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    settings = Settings.from_env()
    emqx.app.config["DATABASE"] = settings.database
    fd = os.environ.get("STANDIN_MQTT_READY_FD")
    listener = Listener(settings, int(fd) if fd else None)
    try:
        asyncio.run(listener.serve())
    except KeyboardInterrupt:
        pass
    return 0


def start_from_master(server_log, env=None, timeout=20.0):
    """Start the listener (gunicorn's master, before the workers): a process of its own on
    the master's settings. Returns the process, or None when STANDIN_MQTT_PORT is unset;
    exits the master when it cannot listen."""
    import subprocess

    env = dict(os.environ if env is None else env)
    if not env.get("STANDIN_MQTT_PORT"):
        return None
    env["STANDIN_DB"] = emqx.app.config["DATABASE"]
    read_end, write_end = os.pipe()
    env["STANDIN_MQTT_READY_FD"] = str(write_end)
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)], env=env,
                            stdin=subprocess.DEVNULL, pass_fds=(write_end,))
    os.close(write_end)
    answer = b""
    deadline = time.monotonic() + timeout
    import select

    while b"\n" not in answer and time.monotonic() < deadline:
        ready, _, _ = select.select([read_end], [], [], 0.1)
        if ready:
            chunk = os.read(read_end, 1024)
            if not chunk:
                break
            answer += chunk
        elif proc.poll() is not None:
            break
    os.close(read_end)
    line = answer.decode(errors="replace").strip()
    if not line.startswith("ok"):
        if proc.poll() is None:
            proc.terminate()
        server_log.error("emqx-standin cannot start its MQTT listener: %s",
                         line.removeprefix("error: ") or "it did not start")
        sys.exit(1)
    return proc


def stop_from_master(proc, timeout=10.0):
    """Stop the listener with the server: its connections are closed and removed."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except Exception:  # noqa: BLE001 - it lingers: killed
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
