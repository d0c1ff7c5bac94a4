"""gunicorn settings for the stand-in (picked up from the working directory; flags win).

PORT (default 8080) and WEB_CONCURRENCY (default: two per CPU, at most 8) come from the
environment. Sync workers only: sqlite3 blocks in C, which suits one request per process
and would starve an event-loop worker.
"""

import os

bind = [f"0.0.0.0:{os.environ.get('PORT', '8080')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", str(min(2 * (os.cpu_count() or 1), 8))))
worker_class = "sync"
timeout = 60
graceful_timeout = 10
keepalive = 5
# No client, even on loopback, may set SCRIPT_NAME / PATH_INFO through headers: a stand-in
# has no proxy in front whose word would count (gunicorn trusts 127.0.0.1 by default).
forwarder_headers = ""
limit_request_line = 8190  # long topics and client ids in paths (the most gunicorn allows)
accesslog = "-"
errorlog = "-"
# The Apache combined format, plus the time taken in milliseconds.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'


def when_ready(server):
    """Say where the service is, what it serves and how to log in."""
    from app import app

    config = app.config
    for address in server.cfg.bind:
        host, _, port = address.rpartition(":")
        host = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
        server.log.info("emqx-standin listening on http://%s:%s/api/v3/ (overview: /)",
                        host, port)
    server.log.info("database %s (created and seeded on first use), seed %s, %s node(s),"
                    " %s client(s) per node", config["DATABASE"], config["SEED"],
                    config["NODES"], config["CLIENTS"])
    # A secret of your own (STANDIN_APP_SECRET) is never written to the log.
    secret = "public" if config["APP_SECRET"] == "public" else "<STANDIN_APP_SECRET>"
    server.log.info("log in with the application %s / %s or the dashboard user admin / public"
                    " (defaults; a seeded database keeps its own)", config["APP_ID"], secret)
