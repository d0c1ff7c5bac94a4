"""The synthetic cluster: nodes, listeners, plugins and devices, the same for the same settings.

Nothing here is EMQ X's API: it fills a new database (a connection and settings in, rows
out) with a cluster that looks like one that has been running for a while. No Flask here;
the facts it shares with the API (metric keys, the INSERT statements, the topic rules) are
read from app.py.
"""

import json
import os
import random
import time
from collections import Counter

from app import METRIC_KEYS
from app import RECEIVED_PACKETS
from app import SENT_PACKETS
from app import split_share
from database import CONNECTION_INSERT
from database import hash_password
from database import insert_app
from database import insert_user
from database import SESSION_INSERT
from database import SUBSCRIPTION_INSERT

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



def plugin_configs():
    """{plugin: [(key, value or None, desc)]}: the keys each plugin's .conf sets, in file
    order, then its schema's other keys (plugin_configs.json, read from EMQ X 3.0.1)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugin_configs.json"),
              encoding="utf-8") as f:
        data = json.load(f)
    return {plugin: [tuple(item) for item in items] for plugin, items in data.items()
            if not plugin.startswith("_")}


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

DOC_CLIENTS = (
    # The document's two sample clients, both subscribed to /test.
    ("emqx-api-test:v1", "emqx-api-test:v1", 64594),
    ("mqttjs_406e3f9a", None, 64593),
)
CLIENT_KINDS = ("sensor", "meter", "gateway", "mqttjs", "paho", "esp32", "tracker", "thermostat")
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east")


def node_name(index):
    return f"emqx@127.0.0.{index}"


SUBSCRIPTION_TEMPLATES = (
    # (filter template, qos, shared): a device's own command topic, wildcards, shared groups.
    ("devices/{cid}/commands", 1), ("{kind}/{region}/+/status", 0), ("{kind}/{region}/#", 0),
    ("$share/workers/jobs/new", 1), ("$queue/tasks/ingest", 1), ("alerts/{region}", 2),
    ("firmware/+/available", 1),
)
HEAP_SIZES = (233, 376, 610, 987, 1598)
PROTO_VERS = (3, 4, 4, 4, 5, 5)
KEEPALIVES = (30, 60, 60, 120, 300, 60)
SUB_COUNTS = (0, 1, 1, 2, 2, 3)
CHUNK = 20000
PARALLEL_SEED = 100_000  # devices from which a second process makes the rows
ID_MULTIPLIER = 0x9E3779B97F  # odd, so k -> k * M mod 2**40 is a bijection: ids never collide


def device_chunk(task):
    """Rows of devices start..stop-1 of one node: (sessions, connections, subscriptions,
    tally), tally being what the rows add to the counters recount sets (see `tally`).

    Self-contained (its own Random from the seed, node and start), so chunks can be made
    in another process while SQLite stores the previous ones; same settings, same rows.
    """
    seed, index, start, stop, online, now, started, listeners, mask = task
    rng = random.Random(f"{seed}:{index}:{start}")
    node = node_name(index)
    sessions, connections, subscriptions = [], [], []
    shared = {t: split_share(t) for t, _ in SUBSCRIPTION_TEMPLATES if t.startswith("$")}
    for k in range(start, stop):
        r, r2 = rng.getrandbits(64), rng.getrandbits(64)
        kind = CLIENT_KINDS[r & 7]
        cid = f"{kind}-{(((index << 32 | k) * ID_MULTIPLIER) ^ mask) & 0xFFFFFFFFFF:010x}"
        connected = k < online
        clean = connected and (r >> 3) & 3 != 0
        region = REGIONS[(r >> 5) % 6]
        username = None if (r >> 8) % 10 < 3 else f"{kind}-user-{(r >> 12) % 999 + 1}"
        # Every session and connection is younger than its node: no earlier than `started`.
        created = now - 5 - (r >> 22) % max(1, now - 5 - started)
        n_subs = SUB_COUNTS[(r >> 40) % 6]
        queued = 0 if connected else (r2 >> 40) % 41
        delivered = (r2 >> 50) % 300 if connected else 0
        sessions.append((cid, node, username, int(clean), created, 0 if clean else 7200,
                         HEAP_SIZES[(r >> 43) % 5], 150 + (r2 >> 46) % 90000,
                         queued, queued, n_subs, delivered))
        if connected:
            proto_ver = PROTO_VERS[(r >> 49) % 6]
            keepalive = KEEPALIVES[(r >> 56) % 6]
            listener = listeners[WS_LISTENER if (r >> 52) % 100 < 15 else TCP_LISTENER]
            ip = f"{(10, 172, 192)[(r >> 59) % 3]}.{(r2 >> 8) & 255}.{(r2 >> 16) & 255}." \
                 f"{(r2 >> 24) % 254 + 1}"
            # A persistent session may have reconnected since it began.
            connected_at = created if clean else created + (r2 >> 12) % max(1, now - created)
            connections.append((cid, node, listener, username, ip, 1024 + (r2 >> 32) % 64512,
                                "MQIsdp" if proto_ver == 3 else "MQTT", proto_ver, keepalive,
                                int(clean), connected_at,
                                *connection_stats(r, r2, cid, n_subs, delivered,
                                                  (now - connected_at) // keepalive)))
        picks = list(SUBSCRIPTION_TEMPLATES)
        for j in range(n_subs):
            template, qos = picks.pop((r2 >> (3 * j)) % len(picks))
            if template in shared:
                route, share = shared[template]
                subscriptions.append((cid, node, template, qos, route, share))
            else:
                topic = template.format(cid=cid, kind=kind, region=region)
                subscriptions.append((cid, node, topic, qos, topic, None))
    return sessions, connections, subscriptions, tally(connections, subscriptions)


def tally(connections, subscriptions):
    """What rows of CONNECTION_INSERT and SUBSCRIPTION_INSERT add to the counters
    database.recount would count from them: {"routes": Counter of (topic, node, group or
    ''), "listeners": Counter of listener id}. Counted here, where the rows are made (in
    the second process for a big seed), instead of again from the stored rows."""
    return {"routes": Counter((route, node, share or "")
                              for _cid, node, _topic, _qos, route, share in subscriptions),
            "listeners": Counter(row[2] for row in connections)}


def connection_stats(r, r2, cid, n_subs, delivered, pings):
    """recv_oct .. reductions of a connection that has been up a while, consistent with its
    traffic: its CONNECT and SUBSCRIBEs, what it published, what was delivered to it (the
    session's deliver_msg), a PINGREQ per keepalive."""
    published = (r >> 14) % 200
    recv_pkt = 1 + (n_subs > 0) + published + pings
    send_pkt = 1 + (n_subs > 0) + delivered + pings
    recv_oct = 14 + len(cid) + 24 * n_subs + published * (40 + (r2 >> 20) % 80) + 2 * pings
    send_oct = 4 + 5 * (n_subs > 0) + delivered * (44 + (r2 >> 28) % 90) + 2 * pings
    return (recv_oct, recv_pkt, published, recv_pkt, send_oct, send_pkt, delivered, send_pkt,
            HEAP_SIZES[(r2 >> 36) % 5] * 2, 2000 + (r >> 30) % 400000)


def device_chunks(tasks):
    """Run device_chunk over the tasks, in order; a big seed is made in a second process."""
    if sum(t[3] - t[2] for t in tasks) < PARALLEL_SEED:
        yield from map(device_chunk, tasks)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        yield from pool.imap(device_chunk, tasks)


def seed_cluster(db, seed, nodes, clients, app_id, app_secret, progress=None):
    """Fill an empty database with the synthetic cluster: same settings, same rows.

    The application `app_id`/`app_secret` and the dashboard user admin/public are created
    with it. `progress(n)` is told of every n devices stored (the CLI draws a bar with it).
    Returns the tally of the connections and subscriptions stored (see `tally`).
    """
    rng = random.Random(seed)
    now = int(time.time())
    db.execute("INSERT INTO cluster_stats (id) VALUES (1)")
    for key, value in (("seed", seed), ("nodes", nodes), ("clients", clients),
                       ("created_at", now)):
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
    # The settings the world was created with: what a reset without settings goes back to.
    db.execute("INSERT INTO meta (key, value) VALUES ('origin', ?)",
               (json.dumps({"seed": seed, "nodes": nodes, "clients": clients}),))
    mask = rng.getrandbits(40)
    configs = plugin_configs()
    tasks, totals, counted = [], {}, {"routes": Counter(), "listeners": Counter()}
    for index in range(1, nodes + 1):
        node = node_name(index)
        started = now - rng.randint(3600, 86400 * 4)
        db.execute(
            "INSERT INTO nodes (name, position, started_at, otp_release, version, sysdescr,"
            " max_fds, process_available, process_base, memory_total, memory_base,"
            " load1, load5, load15) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node, index, started, "R21/10.0.5", "3.0",
             "EMQ X Broker", 7168, 262144, rng.randint(300, 360),
             rng.randint(76, 140) * 1048576 + rng.randint(0, 1048575),
             rng.randint(52, 64) * 1048576 + rng.randint(0, 1048575),
             f"{rng.uniform(0.1, 3):.2f}", f"{rng.uniform(0.1, 3):.2f}",
             f"{rng.uniform(0.1, 3):.2f}"))
        db.execute("INSERT INTO node_stats (node) VALUES (?)", (node,))
        listeners = []
        for protocol, listen_on, acceptors, max_conns in LISTENERS:
            shutdown = {}
            if clients and protocol == "mqtt:tcp" and listen_on.startswith("0.0.0.0"):
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
        for plugin, items in configs.items():
            for position, (key, value, desc) in enumerate(items):
                db.execute("INSERT INTO plugin_configs (node, plugin, position, key, value, desc)"
                           " VALUES (?, ?, ?, ?, ?, ?)", (node, plugin, position, key, value, desc))
        samples = DOC_CLIENTS[:clients] if index == 1 else ()
        db.executemany(SESSION_INSERT, [(cid, node, user, 1, now - 3600, 0, 376, 203, 0, 0, 1, 0)
                                        for cid, user, _port in samples])
        connections = [
            (cid, node, listeners[TCP_LISTENER], user, "127.0.0.1", port, "MQTT", 4, 60, 1,
             now - 3600, *connection_stats(0, 0, cid, 1, 0, 60)) for cid, user, port in samples]
        subscriptions = [(cid, node, "/test", 0, "/test", None) for cid, _user, _port in samples]
        db.executemany(CONNECTION_INSERT, connections)
        db.executemany(SUBSCRIPTION_INSERT, subscriptions)
        for key, counts in tally(connections, subscriptions).items():
            counted[key].update(counts)
        online = clients - len(samples)
        total = online + clients // 10  # and a tenth more persistent sessions, offline
        totals[node] = [len(samples)] * 3
        tasks += [(seed, index, start, min(start + CHUNK, total), online, now, started,
                   tuple(listeners), mask) for start in range(0, total, CHUNK)]
    for task, (sessions, connections, subscriptions, chunk_tally) in zip(
            tasks, device_chunks(tasks), strict=True):
        db.executemany(SESSION_INSERT, sessions)
        db.executemany(CONNECTION_INSERT, connections)
        db.executemany(SUBSCRIPTION_INSERT, subscriptions)
        for key, counts in chunk_tally.items():
            counted[key].update(counts)
        node_totals = totals[node_name(task[1])]
        for i, rows in enumerate((sessions, connections, subscriptions)):
            node_totals[i] += len(rows)
        if progress:
            progress(len(sessions))
    for node, (sessions, connections, subscriptions) in totals.items():
        _seed_metrics(db, rng, node, sessions, connections, subscriptions)
    if clients:
        db.execute("INSERT INTO alarms (node, alarm_id, severity, title, summary, timestamp)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   (node_name(1), "cpu_high_watermark", "warning", "cpu_high_watermark",
                    "CPU usage 83% is above the high watermark 80%", now - 600))
    for i in range(min(6, max(nodes * clients // 10, 2)) if clients else 0):
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
    if app_id and app_secret:  # only when asked for: EMQ X 3.0 creates no application
        insert_app(db, app_id, app_secret, "Default", "Application user", True, None)
    insert_user(db, "admin", hash_password("public"), "administrator")
    return counted


def _seed_metrics(db, rng, node, sessions, connections, subs):
    """Counters of a node that has been up a while, consistent with its rows (0 if empty)."""
    values = dict.fromkeys(METRIC_KEYS, 0)
    if not sessions:
        db.executemany("INSERT INTO metrics (node, key, value) VALUES (?, ?, ?)",
                       [(node, k, v) for k, v in values.items()])
        return
    gone = rng.randint(0, 5)
    values["packets/connect"] = values["packets/connack"] = sessions + gone
    values["packets/disconnect/received"] = gone + sessions - connections
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


def world_settings(db):
    """The settings a database was seeded with: {"seed", "nodes", "clients"}."""
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    return {"seed": int(meta["seed"]), "nodes": int(meta["nodes"]),
            "clients": int(meta["clients"])}


def origin_settings(db):
    """The settings the world was first created with (a reset to other settings keeps
    them): {"seed", "nodes", "clients"}."""
    row = db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
    return json.loads(row[0]) if row else world_settings(db)


def set_origin(db, origin):
    db.execute("INSERT INTO meta (key, value) VALUES ('origin', ?) ON CONFLICT (key)"
               " DO UPDATE SET value = excluded.value", (json.dumps(origin),))


def shift_times(db, seconds):
    """Move every seeded time `seconds` later (a world copied from a template made earlier
    looks as if seeded now; times keep adding up)."""
    for table, column in (("nodes", "started_at"), ("sessions", "created_at"),
                          ("connections", "connected_at"), ("alarms", "timestamp"),
                          ("retained", "created_at")):
        db.execute(f"UPDATE {table} SET {column} = {column} + ?", (seconds,))
    db.execute("UPDATE banned SET until = CAST(until AS INTEGER) + ?"
               " WHERE json_type(until) = 'integer'", (seconds,))
    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'created_at'",
               (seconds,))
