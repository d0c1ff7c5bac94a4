"""Crash safety: kill -9 under write load, restart on the same database, nothing acknowledged
is lost and the file is sound.

Writer threads post subscribes, bans and apps with distinct ids against gunicorn (4 sync
workers), recording each acknowledged one ({"code":0}: the transaction had committed before
the answer left). One worker is killed with SIGKILL mid-run and the writers carry on; then the
master and every worker are killed the same way. gunicorn is started again on the same file:
it must answer /status within a second, `PRAGMA integrity_check` must say "ok", and every
acknowledged write must be there through the API.
"""

import os
import signal
import sqlite3
import threading
import time

import pytest
import requests

from live import alive
from live import LiveServer

pytestmark = pytest.mark.live

AUTH = ("admin", "public")
WORKERS = 4
WRITERS = 12
START_TIMEOUT = 15


def start(db, log, started):
    """gunicorn -w 4 on `db`, all workers forked; returns (server, seconds until /status
    answered)."""
    server = LiveServer(db, workers=WORKERS, log_path=log, clients=50,
                        args=["--timeout", "30", "--graceful-timeout", "2",
                              "--access-logfile", "/dev/null", "--error-logfile", "-"],
                        start_timeout=START_TIMEOUT, poll=0.01, stop_signal=signal.SIGINT)
    started.append(server)
    server.start()
    ready = server.wait_ready()
    server.wait_workers()
    return server, ready


@pytest.fixture
def processes():
    """Every gunicorn started here; each master and every worker seen all gone at the end."""
    started = []
    yield started
    for server in started:
        server.worker_pids()
        server.stop()


def test_kill_9_under_writes_loses_nothing_acknowledged(tmp_path, processes):
    db, log = tmp_path / "standin.db", tmp_path / "gunicorn.log"
    server, _ = start(db, log, processes)
    base = server.url
    workers = server.worker_pids()
    assert len(workers) == WORKERS, workers
    r = requests.get(base + "/api/v3/sessions/", auth=AUTH, timeout=10)
    session_ids = [s["client_id"] for s in r.json()["data"]]
    assert len(session_ids) >= 50

    acked = []  # (kind, key, extra, monotonic time of the answer)
    lock = threading.Lock()
    stop = threading.Event()
    failures = []

    def writer(t):
        http = requests.Session()
        http.auth = AUTH
        i = 0
        while not stop.is_set():
            i += 1
            kind = ("sub", "ban", "app")[i % 3]
            if kind == "sub":
                key = (session_ids[(t * 7 + i) % len(session_ids)], f"crash/{t}/{i}")
                path, body = "/api/v3/mqtt/subscribe", {"client_id": key[0], "topic": key[1],
                                                        "qos": 1}
            elif kind == "ban":
                key = f"crash-ban-{t}-{i}"
                path, body = "/api/v3/banned/", {"who": key, "as": "client_id"}
            else:
                key = f"crash-app-{t}-{i}"
                path, body = "/api/v3/apps/", {"app_id": key, "status": True}
            try:
                r = http.post(base + path, json=body, timeout=5)
            except requests.RequestException:
                time.sleep(0.01)  # a killed worker or master: carry on
                continue
            if r.status_code >= 500 or "database is locked" in r.text:
                with lock:
                    failures.append((path, r.status_code, r.text[:200]))
                continue
            data = r.json() if r.headers.get("content-type", "").startswith(
                "application/json") else {}
            if r.status_code == 200 and data.get("code") == 0:
                extra = data.get("data", {}).get("secret") if kind == "app" else None
                with lock:
                    acked.append((kind, key, extra, time.monotonic()))
        http.close()

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(WRITERS)]
    for th in threads:
        th.start()
    time.sleep(0.8)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    worker_killed = time.monotonic()
    time.sleep(0.9)
    # Everything at once: the master first (no respawning), then every worker it had.
    everyone = server.kill_all()
    all_killed = server.killed_at
    assert not any(alive(pid) for pid in everyone)
    stop.set()
    for th in threads:
        th.join(timeout=10)

    # Every answer left the server before it died (a dead server answers nothing), even when
    # the writer thread noted it a moment after the kill.
    before_kill = list(acked)
    # Well after the worker's death: the service recovered (not an answer already on its way).
    after_worker_kill = [a for a in before_kill if worker_killed + 0.3 < a[3] < all_killed]
    counts = {k: sum(1 for a in before_kill if a[0] == k) for k in ("sub", "ban", "app")}
    summary = (f"acknowledged before the kill: {len(before_kill)} {counts}"
               f" ({len(after_worker_kill)} after one worker was killed)")
    print("\ncrash:", summary)
    assert not failures, (summary, failures[:5])
    assert after_worker_kill, f"no write acknowledged after one worker was killed; {summary}"
    assert all(counts.values()), summary

    # --- restart on the same file ---
    server, ready = start(db, log, processes)
    base = server.url
    summary += f"; restarted: /status answered {ready:.2f} s after starting"
    print("crash:", summary)
    assert ready <= 1.0, summary
    check = sqlite3.connect(db, timeout=30)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert check.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        check.close()

    http = requests.Session()
    http.auth = AUTH

    def get(path):
        r = http.get(base + path, timeout=10)
        assert r.status_code == 200 and r.json()["code"] == 0, (path, r.text[:200])
        return r.json()

    subs = {(s["client_id"], s["topic"]) for s in get("/api/v3/subscriptions/")["data"]}
    bans = {b["who"] for b in get("/api/v3/banned/")["data"]}
    apps = {a["app_id"] for a in get("/api/v3/apps/")["data"]}
    lost = [a[:2] for a in before_kill
            if (a[0] == "sub" and a[1] not in subs) or (a[0] == "ban" and a[1] not in bans)
            or (a[0] == "app" and a[1] not in apps)]
    assert not lost, (f"{len(lost)} acknowledged writes lost; {summary}", lost[:10])
    for _kind, key, secret, _ in [a for a in before_kill if a[0] == "app"][-3:]:
        r = requests.get(base + "/api/v3/brokers/", auth=(key, secret), timeout=10)
        assert r.status_code == 200, key
    for _cid, topic in [a[1] for a in before_kill if a[0] == "sub"][-3:]:
        assert get(f"/api/v3/routes/{requests.utils.quote(topic, safe='')}")["data"]
    # The counters rebuilt from the same file agree with the rows.
    stats = get("/api/v3/nodes/emqx@127.0.0.1/stats/")["data"]
    assert stats["subscriptions/count"] == get("/api/v3/subscriptions/")["meta"]["count"]
    assert stats["connections/count"] == get("/api/v3/connections/")["meta"]["count"]
    text = log.read_text(errors="replace")
    assert "database is locked" not in text
    assert "malformed" not in text
