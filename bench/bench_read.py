"""Read benchmark: one paged list under gunicorn -w 2, and the cost of one Basic-auth check.

Usage:  .venv/bin/python bench/bench_read.py [CLIENTS [SECONDS [CONCURRENCY]]]
        (defaults 1000 clients, 5 s, 8 concurrent requests)

Seeds a temporary database (STANDIN_CLIENTS = CLIENTS), starts `python -m gunicorn -w 2` on
it, and drives GET /api/v3/connections/?_limit=100 from CONCURRENCY threads, each with its own
http.client connection (sync workers close it after every response; it is reopened). Then it
times app.verify_password in-process, inside an application context, for the app credential
and for a dashboard-user credential, with and without the per-process verification cache.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/v3/connections/?_limit=100"


def percentile(sorted_values, fraction):
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/status")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("gunicorn did not start")


def load(port, seconds, concurrency, header):
    """Closed-loop load: each thread sends the next request when the last one is answered."""
    latencies, errors = [], []
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine, bad = [], 0
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            try:
                conn.request("GET", PATH, headers={"Authorization": header})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            if ok:
                mine.append(time.perf_counter() - start)
            else:
                bad += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.append(bad)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return len(latencies) / elapsed, latencies, sum(errors)


def time_calls(fn, n):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def auth_costs(app):
    """Microseconds per verify_password call, measured in one application context."""
    rows = []
    with app.app.app_context():
        with app.transaction() as db:
            db.execute("INSERT OR IGNORE INTO users (username, password, tags) VALUES (?, ?, ?)",
                       ("bench", app.generate_password_hash("bench-pw", app.PASSWORD_METHOD),
                        '"viewer"'))
        assert app.verify_password("admin", "public") == {"app_id": "admin"}
        assert app.verify_password("bench", "bench-pw") == {"username": "bench"}
        rows.append(("app admin:public (secret compare)",
                     time_calls(lambda: app.verify_password("admin", "public"), 5000)))
        rows.append(("user bench (cached hash check)",
                     time_calls(lambda: app.verify_password("bench", "bench-pw"), 5000)))

        def uncached():
            app._verified.clear()
            app.verify_password("bench", "bench-pw")

        rows.append((f"user bench (uncached, {app.PASSWORD_METHOD})", time_calls(uncached, 20)))
        rows.append(("wrong password (user lookup + hash)",
                     time_calls(lambda: app.verify_password("bench", "nope"), 20)))
    return rows


def main():
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    tmp = tempfile.TemporaryDirectory(prefix="standin-bench-")
    db_path = os.path.join(tmp.name, "standin.db")
    for key in [k for k in os.environ if k.startswith("STANDIN_")]:
        del os.environ[key]
    os.environ.update(STANDIN_DB=db_path, STANDIN_CLIENTS=str(clients))
    sys.path.insert(0, str(ROOT))
    import app  # noqa: E402  (reads STANDIN_* at import)

    start = time.perf_counter()
    app.ensure_database(db_path)
    seed_seconds = time.perf_counter() - start

    port = free_port()
    log = open(os.path.join(tmp.name, "gunicorn.log"), "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--access-logfile", os.devnull,
         "app:app"],
        cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL)
    try:
        wait_until_up(port, proc)
        header = "Basic " + b64encode(b"admin:public").decode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", PATH, headers={"Authorization": header})
        count = json.loads(conn.getresponse().read())["meta"]["count"]
        conn.close()
        load(port, 1.0, concurrency, header)  # warm-up
        rps, latencies, errors = load(port, seconds, concurrency, header)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()
    costs = auth_costs(app)
    tmp.cleanup()

    print(f"database: {clients} clients/node, 1 node, connections/count {count};"
          f" created and seeded in {seed_seconds:.2f} s")
    print(f"server:   gunicorn -w 2 (sync) on {os.cpu_count()} CPUs, load generator on the same"
          f" machine: {concurrency} threads, {seconds:g} s, GET {PATH}")
    print()
    print(f"{'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
          f" {'max ms':>8}")
    if latencies:
        ms = [1000 * percentile(latencies, f) for f in (0.5, 0.9, 0.99, 1.0)]
        print(f"{len(latencies):>9} {errors:>7} {rps:>8.0f} " + " ".join(f"{v:>8.2f}" for v in ms))
    else:
        print(f"{0:>9} {errors:>7}  (no successful request)")
    print()
    print(f"{'auth check (app.verify_password, in-process)':<46} {'per call':>12}")
    for label, seconds_per_call in costs:
        print(f"{label:<46} {seconds_per_call * 1e6:>9.1f} us")


if __name__ == "__main__":
    main()
