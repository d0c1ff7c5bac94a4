-- Tables of the EMQ X 3.0 stand-in. Idempotent: safe to run on every start, never drops data.
-- A new database is seeded before the indexes of the big tables and the triggers exist.
-- Counters that the API shows (stats, listener current_conns, session subscriptions_count,
-- routes) are kept by the triggers at the end, so every write keeps every read consistent.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS nodes (
    name              TEXT PRIMARY KEY,
    position          INTEGER NOT NULL UNIQUE,
    node_status       TEXT NOT NULL DEFAULT 'Running',
    started_at        INTEGER NOT NULL,
    otp_release       TEXT NOT NULL,
    version           TEXT NOT NULL,
    sysdescr          TEXT NOT NULL,
    max_fds           INTEGER NOT NULL,
    process_available INTEGER NOT NULL,
    process_base      INTEGER NOT NULL,
    memory_total      INTEGER NOT NULL,
    memory_base       INTEGER NOT NULL,
    load1             TEXT NOT NULL,
    load5             TEXT NOT NULL,
    load15            TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS listeners (
    id             INTEGER PRIMARY KEY,
    node           TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    protocol       TEXT NOT NULL,
    listen_on      TEXT NOT NULL,
    acceptors      INTEGER NOT NULL,
    max_conns      INTEGER NOT NULL,
    current_conns  INTEGER NOT NULL DEFAULT 0,
    shutdown_count TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS listeners_node ON listeners(node);

CREATE TABLE IF NOT EXISTS sessions (
    id                INTEGER PRIMARY KEY,
    client_id         TEXT NOT NULL,
    node              TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    username          TEXT,
    clean_start       INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    expiry_interval   INTEGER NOT NULL,
    awaiting_rel_len  INTEGER NOT NULL DEFAULT 0,
    deliver_msg       INTEGER NOT NULL DEFAULT 0,
    enqueue_msg       INTEGER NOT NULL DEFAULT 0,
    heap_size         INTEGER NOT NULL,
    inflight_len      INTEGER NOT NULL DEFAULT 0,
    mailbox_len       INTEGER NOT NULL DEFAULT 0,
    max_awaiting_rel  INTEGER NOT NULL DEFAULT 100,
    max_inflight      INTEGER NOT NULL DEFAULT 32,
    max_mqueue        INTEGER NOT NULL DEFAULT 1000,
    max_subscriptions INTEGER NOT NULL DEFAULT 0,
    mqueue_dropped    INTEGER NOT NULL DEFAULT 0,
    mqueue_len        INTEGER NOT NULL DEFAULT 0,
    reductions        INTEGER NOT NULL,
    subscriptions_count INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS sessions_client ON sessions(client_id);
CREATE INDEX IF NOT EXISTS sessions_node ON sessions(node, id);

CREATE TABLE IF NOT EXISTS connections (
    id           INTEGER PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES sessions(client_id) ON DELETE CASCADE,
    node         TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    listener_id  INTEGER NOT NULL REFERENCES listeners(id),
    username     TEXT,
    ipaddress    TEXT NOT NULL,
    port         INTEGER NOT NULL,
    proto_name   TEXT NOT NULL,
    proto_ver    INTEGER NOT NULL,
    keepalive    INTEGER NOT NULL,
    clean_start  INTEGER NOT NULL,
    is_bridge    INTEGER NOT NULL DEFAULT 0,
    is_super     INTEGER NOT NULL DEFAULT 0,
    mountpoint   TEXT,
    zone         TEXT NOT NULL DEFAULT 'external',
    peercert     TEXT NOT NULL DEFAULT 'nossl',
    connected_at INTEGER NOT NULL,   -- unix seconds, shown in local time
    -- The connection process's stats, as 3.0.1 shows them once its stats timer has run:
    -- what it received and sent (bytes, packets, messages), its heap and reductions.
    recv_oct     INTEGER NOT NULL DEFAULT 0,
    recv_cnt     INTEGER NOT NULL DEFAULT 0,
    recv_msg     INTEGER NOT NULL DEFAULT 0,
    recv_pkt     INTEGER NOT NULL DEFAULT 0,
    send_oct     INTEGER NOT NULL DEFAULT 0,
    send_cnt     INTEGER NOT NULL DEFAULT 0,
    send_msg     INTEGER NOT NULL DEFAULT 0,
    send_pend    INTEGER NOT NULL DEFAULT 0,
    send_pkt     INTEGER NOT NULL DEFAULT 0,
    heap_size    INTEGER NOT NULL DEFAULT 376,
    mailbox_len  INTEGER NOT NULL DEFAULT 0,
    reductions   INTEGER NOT NULL DEFAULT 0,
    -- The connection object as the API shows it (keys in the broker's alphabetical order),
    -- built when the row is stored or changes, around the one field that is formatted when
    -- read: connected_at, in the local time of the reader (see app.CONNECTION_SQL).
    doc_head     TEXT GENERATED ALWAYS AS (substr(json_object(
        'clean_start', json(iif(clean_start, 'true', 'false')), 'client_id', client_id), 1,
        length(json_object('clean_start', json(iif(clean_start, 'true', 'false')),
                           'client_id', client_id)) - 1) || ',"connected_at":"') STORED,
    doc_tail     TEXT GENERATED ALWAYS AS ('",' || substr(json_object(
        'heap_size', heap_size, 'ipaddress', ipaddress,
        'is_bridge', json(iif(is_bridge, 'true', 'false')),
        'is_super', json(iif(is_super, 'true', 'false')), 'keepalive', keepalive,
        'mailbox_len', mailbox_len, 'mountpoint', coalesce(mountpoint, 'undefined'),
        'node', node, 'peercert', peercert, 'port', port, 'proto_name', proto_name,
        'proto_ver', proto_ver, 'recv_cnt', recv_cnt, 'recv_msg', recv_msg,
        'recv_oct', recv_oct, 'recv_pkt', recv_pkt, 'reductions', reductions,
        'send_cnt', send_cnt, 'send_msg', send_msg, 'send_oct', send_oct,
        'send_pend', send_pend, 'send_pkt', send_pkt,
        'username', coalesce(username, 'undefined'),
        -- 3.0 GA no longer emits will_topic; the document shows it, so it is kept.
        'will_topic', 'undefined', 'zone', zone), 2)) STORED
);
CREATE UNIQUE INDEX IF NOT EXISTS connections_client ON connections(client_id);
CREATE INDEX IF NOT EXISTS connections_node ON connections(node, id);

-- One row per (client, topic filter). route_topic is the filter without any $share/<group>/
-- or $queue/ prefix: the key of the route it needs.
CREATE TABLE IF NOT EXISTS subscriptions (
    id          INTEGER PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES sessions(client_id) ON DELETE CASCADE,
    node        TEXT NOT NULL,
    topic       TEXT NOT NULL,
    qos         INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),
    route_topic TEXT NOT NULL,
    share       TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_client ON subscriptions(client_id, topic);
CREATE INDEX IF NOT EXISTS subscriptions_node ON subscriptions(node, id);
CREATE INDEX IF NOT EXISTS subscriptions_route ON subscriptions(route_topic, node);

-- The route table: one row per destination of a topic filter, as 3.0.1 keeps it: the node
-- for its plain subscribers, and one per shared group on that node (grp; '' for plain).
CREATE TABLE IF NOT EXISTS routes (
    id    INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    node  TEXT NOT NULL,
    grp   TEXT NOT NULL DEFAULT '',
    refs  INTEGER NOT NULL DEFAULT 1,
    UNIQUE (topic, node, grp)
);

CREATE TABLE IF NOT EXISTS retained (
    topic      TEXT PRIMARY KEY,
    payload    BLOB NOT NULL,
    qos        INTEGER NOT NULL,
    client_id  TEXT,
    created_at INTEGER NOT NULL,
    -- How many levels the topic has, and its last level: a filter that starts with a
    -- wildcard finds its retained messages among the topics of its depth (and last level),
    -- not among all of them.
    levels     INTEGER GENERATED ALWAYS AS (length(topic) - length(replace(topic, '/', '')) + 1)
               VIRTUAL,
    last_level TEXT GENERATED ALWAYS AS (substr(topic,
                   length(rtrim(topic, replace(topic, '/', ''))) + 1)) VIRTUAL
);
CREATE INDEX IF NOT EXISTS retained_levels ON retained(levels, last_level);

CREATE TABLE IF NOT EXISTS metrics (
    node  TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node, key)
) WITHOUT ROWID;

-- Per-node stats (the node-local tables of a broker).
CREATE TABLE IF NOT EXISTS node_stats (
    node                       TEXT PRIMARY KEY REFERENCES nodes(name) ON DELETE CASCADE,
    connections_count          INTEGER NOT NULL DEFAULT 0,
    connections_max            INTEGER NOT NULL DEFAULT 0,
    sessions_count             INTEGER NOT NULL DEFAULT 0,
    sessions_max               INTEGER NOT NULL DEFAULT 0,
    sessions_persistent_count  INTEGER NOT NULL DEFAULT 0,
    sessions_persistent_max    INTEGER NOT NULL DEFAULT 0,
    subscriptions_count        INTEGER NOT NULL DEFAULT 0,
    subscriptions_max          INTEGER NOT NULL DEFAULT 0,
    subscribers_count          INTEGER NOT NULL DEFAULT 0,   -- subscriptions that are not shared
    subscribers_max            INTEGER NOT NULL DEFAULT 0,
    subscriptions_shared_count INTEGER NOT NULL DEFAULT 0    -- this node's share of the cluster's
);

-- Cluster-wide stats (replicated tables: every node reports the same value). As in 3.0.1,
-- topics/count is the size of the route table, as routes/count is.
CREATE TABLE IF NOT EXISTS cluster_stats (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    routes_count   INTEGER NOT NULL DEFAULT 0,
    routes_max     INTEGER NOT NULL DEFAULT 0,
    retained_count INTEGER NOT NULL DEFAULT 0,
    retained_max   INTEGER NOT NULL DEFAULT 0,
    subscriptions_shared_count INTEGER NOT NULL DEFAULT 0,
    subscriptions_shared_max   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS alarms (
    id        INTEGER PRIMARY KEY,
    node      TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    alarm_id  TEXT NOT NULL,
    severity  TEXT NOT NULL,
    title     TEXT NOT NULL,
    summary   TEXT NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alarms_node ON alarms(node, id);

CREATE TABLE IF NOT EXISTS plugins (
    node        TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    description TEXT NOT NULL,
    active      INTEGER NOT NULL,
    PRIMARY KEY (node, name)
) WITHOUT ROWID;

-- What a plugin's schema knows (desc) and what its .conf file sets (value, required).
CREATE TABLE IF NOT EXISTS plugin_configs (
    node     TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    plugin   TEXT NOT NULL,
    position INTEGER NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT,
    desc     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (node, plugin, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS configs (
    id       INTEGER PRIMARY KEY,
    node     TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    app      TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    datatpye TEXT NOT NULL DEFAULT 'string',
    UNIQUE (node, app, key)
);

-- `who` as sent; ip_address entries are stored in dotted form.
CREATE TABLE IF NOT EXISTS banned (
    id       INTEGER PRIMARY KEY,
    who      TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('client_id', 'username', 'ip_address')),
    reason   TEXT,
    by       TEXT,
    desc     TEXT,
    until    TEXT,
    UNIQUE (who, kind)
);

-- Values that may be any JSON (status, expired, name, desc) are stored as JSON text.
CREATE TABLE IF NOT EXISTS apps (
    id      INTEGER PRIMARY KEY,
    app_id  TEXT NOT NULL UNIQUE,
    secret  TEXT NOT NULL,
    name    TEXT NOT NULL DEFAULT 'null',
    desc    TEXT NOT NULL DEFAULT 'null',
    status  TEXT NOT NULL DEFAULT 'null',
    expired TEXT NOT NULL DEFAULT 'null'
);

CREATE TABLE IF NOT EXISTS users (
    id       INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    tags     TEXT NOT NULL DEFAULT 'null'
);

-- Rows per block of 1024 ids, per list and node: finds the row at a deep page offset
-- without walking every row before it.
CREATE TABLE IF NOT EXISTS page_blocks (
    tbl   TEXT NOT NULL,
    node  TEXT NOT NULL,
    block INTEGER NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (tbl, node, block)
) WITHOUT ROWID;

-- Triggers: the counters every read shows follow the rows they count. A new database is
-- seeded before they exist (its counters are computed once, in bulk); from then on they
-- keep every counter in step with every write.

CREATE TRIGGER IF NOT EXISTS connection_added AFTER INSERT ON connections BEGIN
    UPDATE node_stats SET connections_count = connections_count + 1,
        connections_max = max(connections_max, connections_count + 1)
        WHERE node = NEW.node;
    UPDATE listeners SET current_conns = current_conns + 1 WHERE id = NEW.listener_id;
    INSERT INTO page_blocks (tbl, node, block, n) VALUES ('connections', NEW.node, NEW.id >> 10, 1)
        ON CONFLICT (tbl, node, block) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER IF NOT EXISTS connection_removed AFTER DELETE ON connections BEGIN
    UPDATE node_stats SET connections_count = connections_count - 1 WHERE node = OLD.node;
    UPDATE listeners SET current_conns = current_conns - 1 WHERE id = OLD.listener_id;
    UPDATE page_blocks SET n = n - 1
        WHERE tbl = 'connections' AND node = OLD.node AND block = OLD.id >> 10;
END;

CREATE TRIGGER IF NOT EXISTS session_added AFTER INSERT ON sessions BEGIN
    UPDATE node_stats SET sessions_count = sessions_count + 1,
        sessions_max = max(sessions_max, sessions_count + 1),
        sessions_persistent_count = sessions_persistent_count + (NEW.clean_start = 0),
        sessions_persistent_max = max(sessions_persistent_max,
                                      sessions_persistent_count + (NEW.clean_start = 0))
        WHERE node = NEW.node;
    INSERT INTO page_blocks (tbl, node, block, n) VALUES ('sessions', NEW.node, NEW.id >> 10, 1)
        ON CONFLICT (tbl, node, block) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER IF NOT EXISTS session_removed AFTER DELETE ON sessions BEGIN
    UPDATE node_stats SET sessions_count = sessions_count - 1,
        sessions_persistent_count = sessions_persistent_count - (OLD.clean_start = 0)
        WHERE node = OLD.node;
    UPDATE page_blocks SET n = n - 1
        WHERE tbl = 'sessions' AND node = OLD.node AND block = OLD.id >> 10;
END;

CREATE TRIGGER IF NOT EXISTS subscription_added AFTER INSERT ON subscriptions BEGIN
    UPDATE node_stats SET subscriptions_count = subscriptions_count + 1,
        subscriptions_max = max(subscriptions_max, subscriptions_count + 1),
        subscribers_count = subscribers_count + (NEW.share IS NULL),
        subscribers_max = max(subscribers_max, subscribers_count + (NEW.share IS NULL)),
        subscriptions_shared_count = subscriptions_shared_count + (NEW.share IS NOT NULL)
        WHERE node = NEW.node;
    UPDATE cluster_stats SET
        subscriptions_shared_count = subscriptions_shared_count + (NEW.share IS NOT NULL),
        subscriptions_shared_max = max(subscriptions_shared_max,
                                       subscriptions_shared_count + (NEW.share IS NOT NULL));
    UPDATE sessions SET subscriptions_count = subscriptions_count + 1
        WHERE client_id = NEW.client_id;
    INSERT INTO routes (topic, node, grp) VALUES (NEW.route_topic, NEW.node, coalesce(NEW.share, ''))
        ON CONFLICT (topic, node, grp) DO UPDATE SET refs = refs + 1;
    INSERT INTO page_blocks (tbl, node, block, n) VALUES ('subscriptions', NEW.node, NEW.id >> 10, 1)
        ON CONFLICT (tbl, node, block) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER IF NOT EXISTS subscription_removed AFTER DELETE ON subscriptions BEGIN
    UPDATE node_stats SET subscriptions_count = subscriptions_count - 1,
        subscribers_count = subscribers_count - (OLD.share IS NULL),
        subscriptions_shared_count = subscriptions_shared_count - (OLD.share IS NOT NULL)
        WHERE node = OLD.node;
    UPDATE cluster_stats SET
        subscriptions_shared_count = subscriptions_shared_count - (OLD.share IS NOT NULL);
    UPDATE sessions SET subscriptions_count = subscriptions_count - 1
        WHERE client_id = OLD.client_id;
    UPDATE routes SET refs = refs - 1
        WHERE topic = OLD.route_topic AND node = OLD.node AND grp = coalesce(OLD.share, '');
    DELETE FROM routes
        WHERE topic = OLD.route_topic AND node = OLD.node AND grp = coalesce(OLD.share, '')
        AND refs <= 0;
    UPDATE page_blocks SET n = n - 1
        WHERE tbl = 'subscriptions' AND node = OLD.node AND block = OLD.id >> 10;
END;

CREATE TRIGGER IF NOT EXISTS route_added AFTER INSERT ON routes BEGIN
    UPDATE cluster_stats SET routes_count = routes_count + 1,
        routes_max = max(routes_max, routes_count + 1);
    INSERT INTO page_blocks (tbl, node, block, n) VALUES ('routes', NEW.node, NEW.id >> 10, 1)
        ON CONFLICT (tbl, node, block) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER IF NOT EXISTS route_removed AFTER DELETE ON routes BEGIN
    UPDATE cluster_stats SET routes_count = routes_count - 1;
    UPDATE page_blocks SET n = n - 1
        WHERE tbl = 'routes' AND node = OLD.node AND block = OLD.id >> 10;
END;

CREATE TRIGGER IF NOT EXISTS retained_added AFTER INSERT ON retained BEGIN
    UPDATE cluster_stats SET retained_count = retained_count + 1,
        retained_max = max(retained_max, retained_count + 1);
END;

CREATE TRIGGER IF NOT EXISTS retained_removed AFTER DELETE ON retained BEGIN
    UPDATE cluster_stats SET retained_count = retained_count - 1;
END;

-- Test-environment controls (/_standin/): the active fault settings, shared by every worker.
-- (The request journal lives in a file of its own; its table is defined in standin.py.)
CREATE TABLE IF NOT EXISTS faults (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    config TEXT NOT NULL,
    draws  INTEGER NOT NULL DEFAULT 0
);

-- The MQTT listener (mqtt.py): real MQTT clients beside the simulated devices. A real
-- client's connection and session are ordinary rows; these tables say which rows a socket
-- owns and carry what the API's workers hand to those sockets.
-- A connection whose socket is held by the listener `owner` (its pid@host:port); the row
-- goes with its connection (kickout, takeover, node stop), which tells the listener to close.
CREATE TABLE IF NOT EXISTS mqtt_sockets (
    conn_id   INTEGER PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    owner     TEXT NOT NULL
);
-- A session a real client began: messages routed to it go through the outbox.
CREATE TABLE IF NOT EXISTS mqtt_sessions (
    client_id TEXT PRIMARY KEY REFERENCES sessions(client_id) ON DELETE CASCADE,
    begun_at  INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);
-- The outbox: a message for a real client's session (app.deliver writes it), sent by the
-- listener while the client is connected (conn_id: the connection it was handed to, NULL
-- while waiting), deleted once acknowledged (QoS 1/2) or written (QoS 0).
CREATE TABLE IF NOT EXISTS mqtt_outbox (
    id        INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES mqtt_sessions(client_id) ON DELETE CASCADE,
    topic     TEXT NOT NULL,
    payload   BLOB NOT NULL,
    qos       INTEGER NOT NULL,
    retain    INTEGER NOT NULL DEFAULT 0,
    created   REAL NOT NULL,     -- unix time it was routed (the latency starts here)
    conn_id   INTEGER
);
CREATE INDEX IF NOT EXISTS mqtt_outbox_client ON mqtt_outbox(client_id, conn_id, id);
CREATE INDEX IF NOT EXISTS mqtt_sockets_client ON mqtt_sockets(client_id);
