"""gunicorn settings for the stand-in (picked up from the working directory; flags win).

STANDIN_HOST (default 127.0.0.1; 0.0.0.0 to serve other machines), PORT (default 8080;
with STANDIN_STRICT=1 also DASHBOARD_PORT, default 18083),
WEB_CONCURRENCY (worker processes, default two per CPU, at most 8) and STANDIN_THREADS
(threads per worker, default 8) come from the environment.
"""

import os
import sqlite3
import sys

import server as standin_server

_host = os.environ.get("STANDIN_HOST", "127.0.0.1")
bind = [f"{_host}:{os.environ.get('PORT', '8080')}"]
if os.environ.get("STANDIN_STRICT") == "1":  # 3.0.1's two listeners: management, dashboard
    bind.append(f"{_host}:{os.environ.get('DASHBOARD_PORT', '18083')}")
workers = int(os.environ.get("WEB_CONCURRENCY", str(min(2 * (os.cpu_count() or 1), 8))))
# Threaded workers with keep-alive: a slow or idle client costs a thread (or nothing, while
# it waits in the poller), never a whole worker. Each thread keeps its own SQLite connection.
worker_class = "server.Worker"
threads = int(os.environ.get("STANDIN_THREADS", "8"))
worker_connections = 1000  # open connections per worker (idle ones close after keepalive)
timeout = 60
graceful_timeout = 10
keepalive = 5
# No client, even on loopback, may set SCRIPT_NAME / PATH_INFO through headers: a stand-in
# has no proxy in front whose word would count (gunicorn trusts 127.0.0.1 by default).
forwarder_headers = ""
limit_request_line = 8190  # long topics and client ids in paths (the most gunicorn allows)
# gunicorn's control socket (for gunicornc) is not used, and its default path in $HOME is
# not writable in the image; two instances run by one user would share it.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
logger_class = "server.AccessLogger"  # masks secrets in query strings
# The Apache combined format, plus the time taken in milliseconds.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'


def on_starting(server):
    """Before any worker serves: the database must be usable, and a new one is seeded."""
    from app import app
    from database import outdated_message
    from database import SCHEMA_VERSION

    path = app.config["DATABASE"]
    problem = standin_server.check_database(path, SCHEMA_VERSION, outdated_message)
    if problem:
        server.log.error("emqx-standin cannot start: %s", problem)
        sys.exit(1)
    standin_server.warm_template()  # the first world and reset are then quick too
    # The MQTT listener (mqtt.py), when STANDIN_MQTT_PORT asks for it: a process of its own,
    # listening before the workers start (it waits for a seed in progress by itself).
    if os.environ.get("STANDIN_MQTT_PORT"):
        try:
            import mqtt
        except (ImportError, SystemExit) as e:  # not installed (the image), or no amqtt
            server.log.error("emqx-standin cannot start its MQTT listener: %s", e)
            sys.exit(1)
        server.standin_mqtt = mqtt.start_from_master(server.log)
    if not standin_server.needs_seed(path):
        return
    config = app.config
    if config["NODES"] * config["CLIENTS"] * 1.1 <= config["INLINE_SEED_MAX"]:
        standin_server.seed_now(path)  # a second or less; the workers find it ready
        server.log.info("seeded %s", path)
        return
    server.log.info("seeding %s before the API serves (GET /status says 'starting',"
                    " GET /_standin/ready answers 503, until it is done)", path)
    server.standin_seeder = standin_server.start_seeding(path)


def when_ready(server):
    """Say what runs where, what the database holds and how to log in."""
    from app import app
    from app import EMQX_VERSION
    from app import VERSION

    config = app.config
    server.log.info("emqx-standin %s: the EMQ X %s management API", VERSION, EMQX_VERSION)
    for address in server.cfg.bind:
        host, _, port = address.rpartition(":")
        shown = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
        server.log.info("listening on http://%s:%s/api/v3/ (overview: /)%s",
                        shown, port, " on every interface" if host in ("0.0.0.0", "[::]")
                        else "")
    wanted = {"seed": config["SEED"], "nodes": config["NODES"], "clients": config["CLIENTS"]}
    held = _database_settings(config["DATABASE"])
    if held is None:
        server.log.info("database %s: seed %s, %s node(s), %s client(s) per node (seeding)",
                        config["DATABASE"], *wanted.values())
    else:
        server.log.info("database %s holds seed %s, %s node(s), %s client(s) per node",
                        config["DATABASE"], *held.values())
        for key, value in wanted.items():
            if f"STANDIN_{key.upper()}" in os.environ and held[key] != value:
                server.log.warning(
                    "STANDIN_%s=%s, but the database holds %s: it is kept as it is; set"
                    " STANDIN_RESEED=1 to rebuild it from the settings (or POST"
                    " /_standin/reset)", key.upper(), value, held[key])
    line = "log in with the dashboard user admin / public (a seeded database keeps its own)"
    if config["APP_ID"] and config["APP_SECRET"]:
        # A secret of your own is never written to the log.
        line += f", or the application {config['APP_ID']} / <STANDIN_APP_SECRET>"
    server.log.info(line)


def _database_settings(path):
    """The settings a seeded database holds, or None (new, or still being seeded)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
        return {key: int(meta[key]) for key in ("seed", "nodes", "clients")}
    except (sqlite3.Error, KeyError, ValueError):
        return None


def on_exit(server):
    """A seed still running stops with the server."""
    seeder = getattr(server, "standin_seeder", None)
    if seeder is not None and seeder.poll() is None:
        seeder.terminate()
    if getattr(server, "standin_mqtt", None) is not None:  # the MQTT listener, with it
        import mqtt

        mqtt.stop_from_master(server.standin_mqtt)
