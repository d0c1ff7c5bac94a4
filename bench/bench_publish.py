"""Publish and subscribe throughput with few and with many subscriptions in the database.

Usage: python bench/bench_publish.py [--sizes 100,100000] [--seconds 3] [--concurrency 4]

For each size it builds an empty cluster (STANDIN_CLIENTS=0), adds sessions and that many
subscriptions (half plain filters, a quarter `+` filters, a quarter `#` filters), starts
gunicorn -w 2 on it and drives POST /api/v3/mqtt/publish (publishes alternate between a topic
that matches one plain filter and one that matches one `+` filter, at every size) and
POST /api/v3/mqtt/subscribe over real HTTP. Matching must not scan the subscriptions, so the
two rows should be close.
"""

import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
AUTH = "Basic " + base64.b64encode(b"admin:public").decode()


def build_database(path, size):
    """An empty seeded cluster plus `size` subscriptions on size/2 sessions."""
    import app as standin

    standin.app.config.update(CLIENTS=0, NODES=1, SEED=1)
    standin.ensure_database(path)
    db = standin.open_db(path)
    node = "emqx@127.0.0.1"
    now = int(time.time())
    sessions = max(size // 2, 1)
    with standin.transaction(db):
        db.executemany(
            "INSERT INTO sessions (client_id, node, clean_start, created_at, expiry_interval,"
            " heap_size, reductions) VALUES (?, ?, 0, ?, 7200, 376, 200)",
            [(f"bench-{i}", node, now) for i in range(sessions)])
        rows = []
        for i in range(size):
            cid = f"bench-{i % sessions}"
            k = i // 2
            if i % 2 == 0:
                topic = f"bench/{k}/data"
            elif i % 4 == 1:
                topic = f"fleet/{k}/+/temp"
            else:
                topic = f"site/{k}/#"
            rows.append((cid, node, topic, 1, topic))
        db.executemany("INSERT INTO subscriptions (client_id, node, topic, qos, route_topic)"
                       " VALUES (?, ?, ?, ?, ?)", rows)
    count = db.execute("SELECT count(*) FROM subscriptions").fetchone()[0]
    db.close()
    return count, sessions


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path, port):
    env = dict(os.environ, STANDIN_DB=path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
         "--access-logfile", "/dev/null", "--error-logfile", "/dev/null", "app:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/status")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def drive(port, seconds, concurrency, make_body, path):
    """POST bodies from `make_body(i)` for `seconds`; returns (req/s, p50 ms, p99 ms, errors)."""
    latencies, errors = [], []
    stop = time.time() + seconds
    lock = threading.Lock()

    def worker(wid):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = wid
        mine, bad = [], 0
        while time.time() < stop:
            body = json.dumps(make_body(i))
            t = time.perf_counter()
            conn.request("POST", path, body, {"Authorization": AUTH,
                                              "Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            mine.append(time.perf_counter() - t)
            if response.status != 200 or json.loads(data)["code"] != 0:
                bad += 1
            i += concurrency
        with lock:
            latencies.extend(mine)
            errors.append(bad)

    started = time.time()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 0
    return (len(latencies) / elapsed, statistics.median(latencies) * 1000, p99 * 1000,
            sum(errors))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,100000")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = os.path.join(tmp, f"pub-{size}.db")
            t = time.time()
            count, sessions = build_database(path, size)
            built = time.time() - t
            port = free_port()
            proc = start_server(path, port)
            try:
                pairs = max(size // 4, 1)

                def publish_body(i, pairs=pairs):
                    k = (i % pairs) * 2  # bench/{k}/data and fleet/{k}/x/temp both exist
                    topic = f"bench/{k}/data" if i % 2 else f"fleet/{k}/x/temp"
                    return {"topic": topic, "payload": "21.5", "qos": 1}

                def subscribe_body(i, sessions=sessions):
                    return {"client_id": f"bench-{i % sessions}", "topic": f"new/{i}/+", "qos": 1}

                pub = drive(port, args.seconds, args.concurrency, publish_body,
                            "/api/v3/mqtt/publish")
                sub = drive(port, args.seconds, args.concurrency, subscribe_body,
                            "/api/v3/mqtt/subscribe")
            finally:
                proc.terminate()
                proc.wait(10)
            results.append((count, built, pub, sub))
    print(f"gunicorn -w 2, concurrency {args.concurrency}, {args.seconds:g} s per figure,"
          f" {os.cpu_count()} CPUs")
    print(f"{'subscriptions':>13} | {'build s':>7} | {'publish/s':>9} | {'p50 ms':>6} |"
          f" {'p99 ms':>6} | {'subscribe/s':>11} | {'p50 ms':>6} | {'p99 ms':>6} | errors")
    for count, built, pub, sub in results:
        print(f"{count:>13,} | {built:>7.1f} | {pub[0]:>9.0f} | {pub[1]:>6.2f} | {pub[2]:>6.2f} |"
              f" {sub[0]:>11.0f} | {sub[1]:>6.2f} | {sub[2]:>6.2f} | {pub[3] + sub[3]}")
    if len(results) > 1:
        print(f"publish ratio largest/smallest: {results[-1][2][0] / results[0][2][0]:.2f};"
              f" subscribe ratio: {results[-1][3][0] / results[0][3][0]:.2f}")


if __name__ == "__main__":
    main()
