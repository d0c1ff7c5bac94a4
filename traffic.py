"""Live traffic: a cluster that behaves like a busy one, for demos and training.

A pool of traffic devices (`tr-<kind>-<nnnn>`, and three services: `tr-ingest-1`,
`tr-ingest-2`, `tr-console`) connects and disconnects, subscribes and publishes, and alarms
rise and clear, all through the broker rules of app.py and the simulated-device rules of
standin.py: a device's publish is a message received, deliveries are messages sent, and every
count the API, the exporters and the overview read moves with them. The user's own clients
and the seeded ones are never touched.

Deterministic: simulated time passes in ticks of one second; tick n draws its events from
Random(f"{seed}:{n}") (seed: the world's), so the same seed, settings and elapsed simulated
time give the same state. There is no background thread (a sync gunicorn worker cannot keep
one): a request that finds whole seconds due advances the world to "now", in one write
transaction (BEGIN IMMEDIATE; the tick counter is in the database, so several workers never
apply a tick twice), for at most CATCHUP_S of work; what remains is caught up by later
requests. With traffic off a request pays one `PRAGMA data_version` and no write.

State: the `traffic` row of `meta` (settings, clock, counts) and the table traffic_offline
(when each pool device went offline), both in the world's own database, so worlds, snapshots
and resets carry it: a database without it (a new world, a reset) starts at the configured
state (STANDIN_TRAFFIC).
"""

import json
import os
import random
import re
import sqlite3
import time

from flask import current_app
from flask import g
from flask import request

import app as emqx
import seed as seeding
import standin

CONTROL_PATH = "/_standin/traffic"
START_STATES = ("off", "demo")
# The rates a PUT may set: (default, lowest, highest). The defaults look alive on a projector.
RATES = {
    "connects_per_min": (180, 0, 6000),  # CONNECTs (takeovers and refusals included)
    "publishes_per_s": (40, 0, 1000),  # PUBLISHes from traffic devices
    "subscribes_per_min": (60, 0, 6000),  # SUBSCRIBEs and UNSUBSCRIBEs after connecting
    "alarms_per_hour": (30, 0, 3600),  # alarms raised (each clears after ~5 minutes)
    "devices": (300, 10, 9999),  # the pool of traffic devices
    "speed": (1, 0, 10),  # simulated seconds per real second; 0: only /advance moves it
}
# What PUT takes, with its bounds: the answer carries them, so a form knows its fields.
LIMITS = {name: {"min": low, "max": high} for name, (_, low, high) in RATES.items()}
COUNTS = ("connects", "refused", "takeovers", "disconnects", "lost", "publishes",
          "subscribes", "unsubscribes", "alarms_raised", "alarms_cleared", "sessions_expired")
MAX_ADVANCE = 600  # simulated seconds one POST /_standin/traffic/advance may ask for
ADVANCE_EVENTS = 40_000  # and the events they may cost (seconds x events per second: ~10 s)
CHUNK_S = 0.25  # wall seconds of ticks in one write transaction (others write in between)
CATCHUP_S = 0.05  # wall seconds of ticks a request pays for before it is served
MAX_LAG = 30  # simulated seconds kept owed; an idle server does not replay the hours it slept
ONLINE_SHARE = 0.75  # the share of the pool that is online, on average
EXPIRY = 7200  # simulated seconds offline after which a session and its status expire
DORMANT = 0.001  # the chance that a device going offline stays away for 2.5 to 4 hours
DORMANCY = (9000, 14400)  # (about a tenth of the pool is away at any time)
ALARM_LIFE = 300  # mean simulated seconds an alarm stays raised
SERVICES = (  # (client id, subscriptions): the backends that consume the devices' traffic
    ("tr-ingest-1", (("$share/ingest/devices/+/telemetry", 0), ("devices/+/events", 1))),
    ("tr-ingest-2", (("$share/ingest/devices/+/telemetry", 0), ("devices/+/events", 1))),
    ("tr-console", (("devices/+/status", 1),)),
)
ALARMS = (  # (alarm id, severity, summary with {n}) as EMQ X's os_mon raises them
    ("cpu_high_watermark", "warning", "CPU usage {n}% is above the high watermark 80%"),
    ("system_memory_high_watermark", "warning",
     "System memory usage {n}% is above the high watermark 70%"),
    ("process_memory_high_watermark", "notice",
     "A process uses {n}% of the memory, above the high watermark 5%"),
    ("too_many_processes", "critical", "{n}% of the process limit is in use"),
)
EVENTS = ("door_open", "door_closed", "low_battery", "motion", "reboot", "overheat")
# Pool devices offline: since (the tick they left), back (the tick they may return).
OFFLINE_DDL = ("CREATE TABLE IF NOT EXISTS traffic_offline (client_id TEXT PRIMARY KEY,"
               " since INTEGER NOT NULL, back INTEGER NOT NULL)")


@standin.bp.record_once
def _settings(state):
    start = os.environ.get("STANDIN_TRAFFIC", "off").strip().lower() or "off"
    if start not in START_STATES:
        raise ValueError(f"STANDIN_TRAFFIC must be one of {list(START_STATES)}, not {start!r}")
    state.app.config.setdefault("TRAFFIC", start)


# ---------------------------------------------------------------------------
# State: the meta row, cached per connection
# ---------------------------------------------------------------------------


def start_state():
    """The state of a database traffic has never run in: the configured start (demo: on)."""
    return {"on": current_app.config["TRAFFIC"] == "demo",
            **{name: default for name, (default, _, _) in RATES.items()},
            "tick": 0, "anchor": None, "base": 0, "counts": dict.fromkeys(COUNTS, 0),
            "alarms": []}


def read_state(db):
    row = db.execute("SELECT value FROM meta WHERE key = 'traffic'").fetchone()
    return json.loads(row[0]) if row else start_state()


def write_state(db, state):
    db.execute("INSERT INTO meta (key, value) VALUES ('traffic', ?) ON CONFLICT (key)"
               " DO UPDATE SET value = excluded.value", (json.dumps(state),))


def cached_state(db):
    """The traffic state, read again only once the database changed (Connection.remember).
    Callers copy it before changing it: the same object is handed to every request."""
    return db.remember("traffic", read_state)


def due(state, now):
    """Simulated seconds owed at wall time `now`."""
    if not state["on"] or state["anchor"] is None:
        return 0
    return state["base"] + int((now - state["anchor"]) * state["speed"]) - state["tick"]


def rebase(state, now):
    """The wall clock counts from here (a new speed, a lag forgiven)."""
    state["anchor"], state["base"] = now, state["tick"]


# ---------------------------------------------------------------------------
# Advancing: lazily, on requests, and explicitly
# ---------------------------------------------------------------------------

SKIPPED = ("standin.docs", "standin.docs_asset", "standin.openapi_document", "standin.ready")


@standin.bp.before_app_request
def advance_to_now():
    """Bring this database's traffic up to the wall clock before the request is served
    (the API and the controls only; at most CATCHUP_S of work, the rest on later ones)."""
    req = request._get_current_object()
    if (req.endpoint is None or req.endpoint in SKIPPED
            or not req.path.startswith(("/api/v3", "/_standin"))):
        return
    db = emqx.get_db()
    state = cached_state(db)
    if due(state, time.time()) <= 0 and not (state["on"] and state["anchor"] is None):
        return  # off, or nothing due: no write
    try:
        run_ticks(db, wall_budget=CATCHUP_S, wait=False)
    except sqlite3.OperationalError as e:  # another worker is writing: a later request will
        if "locked" not in str(e) and "busy" not in str(e):
            raise
    except emqx.ApiError as e:  # a second needs more than one request's work (spend)
        current_app.logger.warning("live traffic turned off: %s", e.message)
        with emqx.transaction(db):
            write_state(db, {**read_state(db), "on": False})
    finally:
        g.pop("work", None)  # the request's own work budget starts afresh


def run_ticks(db, wall_budget, extra=0, wait=True):
    """Apply the ticks owed (plus `extra` simulated seconds), in write transactions of at
    most CHUNK_S each, until done or `wall_budget` seconds are spent. `wait`: whether to
    wait for another writer's lock (a request's catch-up does not)."""
    started = time.perf_counter()
    target = None
    while True:
        with _write(db, wait) as tx:
            state = read_state(tx)
            if not state["on"]:
                return state
            read = json.dumps(state)
            now = time.time()
            if state["anchor"] is None:
                rebase(state, now)
            if target is None:  # the explicit seconds move the wall clock's origin too
                state["base"] += extra
                target = state["tick"] + extra
            owed = due(state, now)
            if owed > MAX_LAG + extra:
                state["base"] -= owed - MAX_LAG - extra  # forgiven, not replayed
            goal = max(target, state["base"] + int((now - state["anchor"]) * state["speed"]))
            chunk_end = time.perf_counter() + min(CHUNK_S, wall_budget)
            while state["tick"] < goal and time.perf_counter() < chunk_end:
                tick(tx, state)
            if json.dumps(state) != read:  # (another worker may have done it all)
                write_state(tx, state)
        if state["tick"] >= goal or time.perf_counter() - started > wall_budget:
            return state


class _write:
    """A write transaction (app.transaction's), optionally without waiting for the lock;
    the request's work budget is its own."""

    def __init__(self, db, wait):
        self.db, self.wait = db, wait

    def __enter__(self):
        if not self.wait:
            self.db.execute("PRAGMA busy_timeout = 0")
        try:
            self.tx = emqx.transaction(self.db)
            db = self.tx.__enter__()
        finally:
            if not self.wait:
                self.db.execute(
                    f"PRAGMA busy_timeout = {int(current_app.config['BUSY_TIMEOUT_MS'])}")
        self.work = g.pop("work", None)
        db.execute(OFFLINE_DDL)
        return db

    def __exit__(self, *exc):
        g.work = self.work or 0
        return self.tx.__exit__(*exc)


# ---------------------------------------------------------------------------
# One simulated second
# ---------------------------------------------------------------------------


def draw(rng, mean):
    """A whole number of events whose average is `mean`."""
    whole = int(mean)
    return whole + (rng.random() < mean - whole)


POOL_ID = re.compile(r"tr-[a-z0-9]+-\d{4}\Z")


def device(seed, index):
    """Pool device `index`: (client id, attributes), the same for the same seed."""
    rng = random.Random(f"{seed}:device:{index}")
    kind = rng.choice(seeding.CLIENT_KINDS)
    return f"tr-{kind}-{index:04d}", {
        "kind": kind, "index": index, "clean": rng.random() >= 0.3,
        "username": None if rng.random() < 0.3 else f"{kind}-user-{rng.randint(1, 40)}",
        "proto_ver": rng.choice((3, 4, 4, 4)), "keepalive": rng.choice((30, 60, 60, 120)),
        "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"}


_pools = {}


def pool(seed, size):
    """{client id: attributes} of the pool of `size` devices, in index order (made once per
    process for a seed and size)."""
    key = (seed, size)
    if key not in _pools:
        if len(_pools) > 8:
            _pools.clear()
        _pools[key] = dict(device(seed, i) for i in range(size))
    return _pools[key]


def tick(db, state):
    """Apply the next simulated second to `db` (inside its write transaction)."""
    n = state["tick"]
    seed = int(db.execute("SELECT value FROM meta WHERE key = 'seed'").fetchone()[0])
    rng = random.Random(f"{seed}:{n}")
    counts = state["counts"]
    nodes = emqx.running_nodes()
    state["tick"] = n + 1
    if not nodes:
        return  # a stopped cluster: the devices cannot reach it
    devices = pool(seed, state["devices"])
    ids = list(devices)
    where, args = emqx.node_filter()  # a stopped node's devices wait for it
    online = [cid for (cid,) in db.execute(
        "SELECT client_id FROM connections WHERE client_id >= 'tr-' AND client_id < 'tr.'"
        f" AND {where} ORDER BY client_id", args)]
    services = dict(SERVICES)
    live = [cid for cid in online if cid in devices]
    live_set = set(live)
    # Devices of a larger pool than this one's (`devices` was lowered) leave, a few a second.
    for cid in [cid for cid in online if cid not in devices and cid not in services
                and POOL_ID.match(cid)][:20]:
        leave(db, rng, cid, False, n, counts)

    expire(db, n, counts)
    away = {cid for (cid,) in db.execute("SELECT client_id FROM traffic_offline WHERE back > ?",
                                         (n,))}
    for cid, subscriptions in SERVICES:  # the backends come back when they are gone
        if cid not in online and rng.random() < 0.2:
            connect(db, cid, nodes[0], False, None, 4, 60, "10.0.0.10", rng, subscriptions)
            counts["connects"] += 1
    # Disconnects pull the online share back towards ONLINE_SHARE of the pool.
    mean = state["connects_per_min"] / 60 * len(live) / (ONLINE_SHARE * len(devices))
    for _ in range(draw(rng, mean)):
        if not live:
            break
        cid = live.pop(rng.randrange(len(live)))
        live_set.discard(cid)
        leave(db, rng, cid, rng.random() < 0.15, n, counts)
    offline = [cid for cid in ids if cid not in live_set and cid not in away]
    for _ in range(draw(rng, state["connects_per_min"] / 60)):
        roll = rng.random()
        if roll < 0.02:  # the seeded flooder tries again, and its ban refuses it
            if emqx.banned_now(db, "client_id", "flooder-01"):
                emqx.connect_client(db, nodes[0], "flooder-01", None, True, 4, 60,
                                    "192.168.66.6", rng.randint(49152, 65535))
                counts["refused"] += 1
            continue
        takeover = roll < 0.05 or not offline
        if takeover and not live:
            continue
        cid = rng.choice(live) if takeover else offline.pop(rng.randrange(len(offline)))
        a = devices[cid]
        home = nodes[rng.randrange(len(nodes))] if takeover else nodes[a["index"] % len(nodes)]
        if connect(db, cid, home, a["clean"], a["username"], a["proto_ver"], a["keepalive"],
                   a["ip"], rng, ((f"devices/{cid}/commands", 1),)):
            counts["connects"] += 1
            counts["takeovers"] += takeover
            db.execute("DELETE FROM traffic_offline WHERE client_id = ?", (cid,))
            device_says(db, cid, f"devices/{cid}/status", b"online", 1, True)
            if not takeover:
                live.append(cid)
                live_set.add(cid)
        else:
            counts["refused"] += 1  # banned by the user
    for _ in range(draw(rng, state["publishes_per_s"])):
        if not live:
            break
        counts["publishes"] += publish_one(db, rng, rng.choice(live), ids, n)
    for _ in range(draw(rng, state["subscribes_per_min"] / 60)):
        if not live:
            break
        cid = rng.choice(live)
        topic = f"config/{devices[cid]['kind']}/{rng.choice(('#', 'interval', 'thresholds'))}"
        if rng.random() < 0.7:
            subscribe(db, cid, topic, rng.choice((0, 1)))
            counts["subscribes"] += 1
        elif unsubscribe(db, cid):
            counts["unsubscribes"] += 1
    alarms(db, state, rng, nodes, counts)


def connect(db, cid, node, clean, username, proto_ver, keepalive, ip, rng, subscriptions):
    """A CONNECT through the rules of POST /_standin/clients; False if a ban refused it."""
    return emqx.connect_client(db, node, cid, username, clean, proto_ver, keepalive, ip,
                               rng.randint(49152, 65535), subscriptions)


def device_says(db, cid, topic, payload, qos, retain):
    """A connected device's PUBLISH, through the rules of POST /_standin/clients/:id/publish;
    False if it is not connected."""
    node = db.execute("SELECT node FROM connections WHERE client_id = ?", (cid,)).fetchone()
    if node is not None:
        emqx.publish(db, topic, payload, qos, retain, node[0], device=cid)
    return node is not None


def leave(db, rng, cid, lost, n, counts):
    """A device goes: its DISCONNECT (after its retained status), or a lost connection
    (keepalive timeout) whose will the broker publishes; now and then for hours."""
    if lost:
        conn = emqx.disconnect(db, cid, "keepalive_timeout")
        if conn:
            emqx.publish(db, f"devices/{cid}/status", b"offline", 1, True, conn["node"])
            counts["lost"] += 1
    else:
        device_says(db, cid, f"devices/{cid}/status", b"offline", 1, True)
        conn = standin.device_disconnects(db, cid)
        counts["disconnects"] += bool(conn)
    if conn:
        back = n + rng.randint(*DORMANCY) if rng.random() < DORMANT else n
        db.execute("INSERT INTO traffic_offline (client_id, since, back) VALUES (?, ?, ?)"
                   " ON CONFLICT (client_id) DO UPDATE SET since = excluded.since,"
                   " back = excluded.back", (cid, n, back))


def expire(db, n, counts):
    """Devices offline for EXPIRY simulated seconds: their persistent session expires and
    their retained status goes (the retainer's expiry), as on a broker."""
    gone = db.execute("SELECT client_id FROM traffic_offline WHERE since <= ? ORDER BY since,"
                      " client_id LIMIT 200", (n - EXPIRY,)).fetchall()
    for (cid,) in gone:
        if not db.execute("SELECT 1 FROM connections WHERE client_id = ?", (cid,)).fetchone():
            counts["sessions_expired"] += db.execute(
                "DELETE FROM sessions WHERE client_id = ?", (cid,)).rowcount
            db.execute("DELETE FROM retained WHERE topic = ?", (f"devices/{cid}/status",))
        db.execute("DELETE FROM traffic_offline WHERE client_id = ?", (cid,))


def publish_one(db, rng, cid, ids, n):
    """One PUBLISH of the mix: telemetry (most), an event, or a command from a backend;
    False if its publisher is not connected."""
    roll = rng.random()
    if roll < 0.85:
        payload = {"seq": n, "temp": round(rng.gauss(21, 3), 1),
                   "hum": rng.randint(25, 70), "bat": rng.randint(5, 100)}
        return device_says(db, cid, f"devices/{cid}/telemetry", json.dumps(payload).encode(),
                           0 if rng.random() < 0.9 else 1, False)
    if roll < 0.93:
        payload = {"event": rng.choice(EVENTS), "seq": n}
        return device_says(db, cid, f"devices/{cid}/events", json.dumps(payload).encode(), 1,
                           False)
    # A backend commands any device of the pool (an offline one's session queues it).
    target = ids[rng.randrange(len(ids))]
    payload = {"cmd": rng.choice(("set_interval", "reboot", "ping")), "value": rng.randint(1, 60)}
    return device_says(db, SERVICES[rng.randrange(2)][0], f"devices/{target}/commands",
                       json.dumps(payload).encode(), 1, False)


def subscribe(db, cid, topic, qos):
    """A connected device's SUBSCRIBE (as POST /_standin/clients counts its subscriptions)."""
    node = db.execute("SELECT node FROM connections WHERE client_id = ?", (cid,)).fetchone()[0]
    emqx.bump(db, {(node, "packets/subscribe"): 1, (node, "packets/suback"): 1})
    emqx.subscribe(db, {"client_id": cid, "node": node}, topic, qos)


def unsubscribe(db, cid):
    """A connected device's UNSUBSCRIBE of one of its config/ filters; False if it has none."""
    row = db.execute("SELECT s.topic, c.node FROM subscriptions s JOIN connections c"
                     " ON c.client_id = s.client_id WHERE s.client_id = ? AND s.topic > 'config/'"
                     " AND s.topic < 'config0' ORDER BY s.id LIMIT 1", (cid,)).fetchone()
    if row is None:
        return False
    emqx.bump(db, {(row["node"], "packets/unsubscribe"): 1,
                   (row["node"], "packets/unsuback"): 1})
    db.execute("DELETE FROM subscriptions WHERE client_id = ? AND topic = ?", (cid, row["topic"]))
    return True


def alarms(db, state, rng, nodes, counts):
    """Traffic's alarms clear after ALARM_LIFE seconds on average; new ones rise at the
    configured rate (one of each id per node at a time). The user's alarms are left alone."""
    kept = []
    for row_id in state["alarms"]:
        if rng.random() < 1 / ALARM_LIFE:
            counts["alarms_cleared"] += db.execute("DELETE FROM alarms WHERE id = ?",
                                                   (row_id,)).rowcount
        elif db.execute("SELECT 1 FROM alarms WHERE id = ?", (row_id,)).fetchone():
            kept.append(row_id)  # (cleared by the user meanwhile: forgotten)
    state["alarms"] = kept
    for _ in range(draw(rng, state["alarms_per_hour"] / 3600)):
        node = nodes[rng.randrange(len(nodes))]
        alarm_id, severity, summary = ALARMS[rng.randrange(len(ALARMS))]
        if db.execute(f"SELECT 1 FROM alarms WHERE node = ? AND alarm_id = ? AND id IN"
                      f" ({','.join('?' * len(kept))})", (node, alarm_id, *kept)).fetchone():
            continue
        row = standin.insert_alarm(db, node, alarm_id, severity, alarm_id,
                                   summary.format(n=rng.randint(81, 97)))
        kept.append(row["id"])
        counts["alarms_raised"] += 1


# ---------------------------------------------------------------------------
# The control: GET, PUT, DELETE /_standin/traffic, POST /_standin/traffic/advance
# ---------------------------------------------------------------------------


def answer(db, state):
    """What the control answers: on, the rates, the simulated seconds, the counts, the
    traffic devices online now, and the rates' bounds (what PUT takes)."""
    seed = int(db.execute("SELECT value FROM meta WHERE key = 'seed'").fetchone()[0])
    devices = pool(seed, state["devices"])
    online = sum(1 for (cid,) in db.execute(
        "SELECT client_id FROM connections WHERE client_id >= 'tr-' AND client_id < 'tr.'")
        if cid in devices)
    return emqx.ok({"on": state["on"], **{name: state[name] for name in RATES},
                    "elapsed_s": state["tick"], "online": online,
                    "alarms": len(state["alarms"]), "counts": state["counts"],
                    "limits": LIMITS})


@standin.bp.get(CONTROL_PATH)
def get_traffic():
    """Live traffic: on or off, its rates, the simulated seconds so far, what it did."""
    db = emqx.get_db()
    return answer(db, read_state(db))


def rates_body():
    """The rates of a PUT body: integers in their ranges; an unknown field is refused."""
    body = standin.body_object()
    unknown = sorted(set(body) - set(RATES))
    if unknown:
        raise emqx.ApiError(emqx.BAD_PARAM, f"unknown field(s) {unknown}: a traffic setting is"
                                            f" one of {list(RATES)}")
    return {name: standin.int_setting(body, name, None, low, high)
            for name, (_, low, high) in RATES.items() if name in body}


@standin.bp.put(CONTROL_PATH)
def set_traffic():
    """Turn live traffic on, with these rates ({connects_per_min, publishes_per_s,
    subscribes_per_min, alarms_per_hour, devices, speed}; missing ones keep their values).

    Traffic devices (tr-*) connect, disconnect, subscribe and publish, and alarms rise and
    clear, through the same rules as the API and the simulated-device controls, in simulated
    seconds that follow the wall clock at `speed` (0: only POST /_standin/traffic/advance
    moves them). Deterministic: the same seed, settings and simulated seconds give the same
    state."""
    rates = rates_body()
    with emqx.transaction() as db:
        db.execute(OFFLINE_DDL)
        state = read_state(db)
        state.update(rates, on=True)
        rebase(state, time.time())  # from now, at the new speed
        write_state(db, state)
    return answer(db, state)


@standin.bp.delete(CONTROL_PATH)
def stop_traffic():
    """Turn live traffic off (the traffic devices stay as they are)."""
    with emqx.transaction() as db:
        state = read_state(db)
        state["on"] = False
        write_state(db, state)
    return answer(db, state)


@standin.bp.post(f"{CONTROL_PATH}/advance")
def advance_traffic():
    """Advance live traffic by {seconds} simulated seconds now (1 to 3600), for tests and
    benchmarks; it must be on."""
    body = standin.body_object()
    if body.get("seconds") is None:
        raise emqx.missing("seconds")
    seconds = standin.int_setting(body, "seconds", None, 1, MAX_ADVANCE)
    db = emqx.get_db()
    state = read_state(db)
    if not state["on"]:
        raise emqx.ApiError(emqx.UNKNOWN_ERROR, "traffic is off: turn it on first"
                                                " (PUT /_standin/traffic)")
    per_second = sum(state[name] / scale for name, scale in (
        ("connects_per_min", 60 / 3), ("publishes_per_s", 1), ("subscribes_per_min", 60)))
    if seconds * per_second > ADVANCE_EVENTS:
        raise emqx.ApiError(emqx.BAD_PARAM, f"too much for one request: {seconds} s at these"
                                            f" rates is over {ADVANCE_EVENTS} events; advance"
                                            " fewer seconds at a time")
    state = run_ticks(db, wall_budget=float("inf"), extra=seconds)
    return answer(db, state)
