"""Micro benchmarks of the stand-in: a paged read, one Basic-auth check, publish and
subscribe, whole states (worlds, snapshots, reset) and the longest writes the limits allow.

Usage (from the repository root):

    .venv/bin/python bench/micro.py [read] [auth] [publish] [worlds] [limits] [options]

    .venv/bin/python bench/micro.py                      # all five parts, defaults (~65 s)
    .venv/bin/python bench/micro.py read --clients 1000,100000
    .venv/bin/python bench/micro.py auth
    .venv/bin/python bench/micro.py publish --sizes 100,100000 --seconds 3
    .venv/bin/python bench/micro.py worlds --worlds 50,10000 --repeat 15

Options:
    --clients 1000[,N...]   read: STANDIN_CLIENTS of each database measured (default 1000)
    --sizes 100,100000      publish: subscriptions in each database measured
    --seconds 3             length of every timed run
    --warmup 1              seconds of untimed load (the same requests) before each timed run
    --concurrency N         request threads (default 8 for read, 4 for publish)
    --calls 5000            auth: calls per cheap check (the PBKDF2 checks make 1/250 of that)
    --worlds 50,10000       worlds: STANDIN_CLIENTS of each served database measured
    --repeat 15             worlds: times each control is called (the median is printed)
    --retained 120000       limits: retained messages in the database

Parts:

read     For each size, seeds a database in-process (1 node, seed 42), serves it with
         gunicorn -w 2 through tests/live.py's LiveServer (the tests' launcher; the repository
         root is the working directory, so gunicorn.conf.py applies, access log to /dev/null)
         and drives GET /api/v3/connections/?_limit=100 closed-loop from CONCURRENCY threads,
         each on its own http.client connection, kept alive between requests (reopened when
         the server closes it). `x first` divides req/s by the first size's.
auth     Times minirest.verify_password in this process, inside one request context, on a
         small database of its own: the app credential (a secret compare), a dashboard user
         with the per-process verification cache warm and with it cleared before every call
         (a PBKDF2 check), and a wrong password both ways. `x app` divides by the app
         credential's cost.
publish  For each size, builds an empty cluster (0 clients) and adds SIZE subscriptions on
         SIZE/2 persistent sessions (half plain filters, a quarter `+`, a quarter `#`), serves
         it with LiveServer (gunicorn -w 2) and drives POST /api/v3/mqtt/publish (topics
         alternate between one that matches one plain filter and one that matches one `+`
         filter, at every size) and POST /api/v3/mqtt/subscribe (a new filter each time).
         Matching must not scan the subscriptions, so the sizes should be close: `x ref`
         divides by the smallest size's figure, measured in the same run.
worlds   For each size, seeds a database in-process (1 node, seed 42) and times it: that is
         the reference, building the same state from scratch. Then serves it with LiveServer
         (gunicorn -w 2) and calls, one at a time from one client, REPEAT times each:
         POST /_standin/worlds {name, clients: SIZE} (then deletes it, untimed), POST
         /_standin/snapshots {name}, POST /_standin/snapshots/<name>/restore and POST
         /_standin/reset. The first world of a size also makes the seeded template (the
         server makes the default one before it serves); it is printed on its own. `x seed`
         divides each median by the seeding time of the same size.
limits   Seeds 1,000 clients, adds RETAINED retained messages straight to the file, serves it
         (gunicorn -w 2) and times, one at a time: a one-topic publish (the reference), a
         subscribe of MAX_TOPICS filters that each match one retained message, a subscribe
         whose filters exhaust the work budget (it must answer 108, having changed nothing),
         a publish to MAX_TOPICS topics (each three times, the median printed), and a reset
         to MAX_RESET_CLIENTS clients (once). `x ref` divides by the reference.

Only answers that are HTTP 200 (and, for publish and subscribe, {"code": 0}) count towards
req/s and the latency percentiles; anything else is counted as an error.
"""

import argparse
import http.client
import itertools
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from base64 import b64encode
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
# The in-process app reads STANDIN_* when imported; LiveServer clears them for its servers.
for _key in [k for k in os.environ if k.startswith("STANDIN_")]:
    del os.environ[_key]

from compare import drive  # noqa: E402

import app  # noqa: E402
import database  # noqa: E402
import live  # noqa: E402
import minirest  # noqa: E402
import seed  # noqa: E402
import standin  # noqa: E402

PARTS = ("read", "auth", "publish", "worlds", "limits")
HEADERS = {"Authorization": "Basic " + b64encode(b"admin:public").decode()}
READ_PATH = "/api/v3/connections/?_limit=100"
QUIET = ("--access-logfile", os.devnull)  # flags win over gunicorn.conf.py
NODE = seed.node_name(1)


# --- load generation ---


def status_ok(status, data):
    return status == 200


def code_ok(status, data):
    return status == 200 and json.loads(data).get("code") == 0


def measure(server, args, concurrency, make_request, accept):
    """One warm-up (untimed, if asked for) and one timed run against `server`."""
    if args.warmup > 0:
        drive(server.port, args.warmup, concurrency, make_request, accept, HEADERS)
    return drive(server.port, args.seconds, concurrency, make_request, accept, HEADERS)


def serve(db_path, clients):
    """The tests' launcher: gunicorn -w 2 on `db_path`, log beside it, access log off."""
    return live.LiveServer(db_path, workers=2, clients=clients, args=QUIET,
                           log_path=Path(db_path).with_suffix(".log"), start_timeout=60)


def seeded_database(tmp, stem, clients):
    """A new database of `clients` (1 node, seed 42) seeded in this process: (path, seconds)."""
    path = os.path.join(tmp, f"{stem}-{clients}.db")
    started = time.perf_counter()
    database.ensure_database(path, app.app.config, seed=42, nodes=1, clients=clients)
    return path, time.perf_counter() - started


# --- read: one paged list under gunicorn -w 2 ---


def read_part(args, tmp):
    concurrency = args.concurrency or 8
    rows = []
    for clients in args.clients:
        path, seeded = seeded_database(tmp, "read", clients)
        with serve(path, clients) as server:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", READ_PATH, headers=HEADERS)
            count = json.loads(conn.getresponse().read())["meta"]["count"]
            conn.close()
            run = measure(server, args, concurrency, lambda n: ("GET", READ_PATH, None),
                          status_ok)
        rows.append((clients, count, seeded, run))

    print(f"read: GET {READ_PATH} on gunicorn -w 2 (threaded workers), {concurrency} threads,"
          f" {args.seconds:g} s per figure after {args.warmup:g} s warm-up")
    print(f"{'clients':>10} {'count':>10} {'seed s':>7} {'requests':>9} {'errors':>6}"
          f" {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'x first':>7}")
    first = rows[0][3].rate
    for clients, count, seeded, run in rows:
        ratio = run.rate / first if first else float("nan")
        print(f"{clients:>10,} {count:>10,} {seeded:>7.2f} {len(run.latencies):>9}"
              f" {run.errors:>6} {run.rate:>7.0f} {run.ms(0.5):>7.2f} {run.ms(0.99):>7.2f}"
              f" {ratio:>7.2f}")


# --- auth: one Basic-auth check, in-process ---


def per_call(fn, calls):
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def auth_part(args, tmp):
    path = os.path.join(tmp, "auth.db")
    database.ensure_database(path, app.app.config, seed=42, nodes=1, clients=20)
    db = database.open_db(path)
    with database.transaction(db):
        database.insert_app(db, "admin", "public", status=True)  # none by default when served
        database.insert_user(db, "bench", database.hash_password("bench-pw"), "viewer")
    db.close()
    app.app.config["DATABASE"] = path
    cheap, dear = args.calls, max(1, args.calls // 250)

    def uncached(username, password):
        def call():
            minirest._verified.clear()
            minirest.verify_password(username, password)
        return call

    rows = []
    with app.app.test_request_context("/api/v3/brokers/"):  # which listener: the request's
        assert minirest.verify_password("admin", "public") == {"app_id": "admin"}
        assert minirest.verify_password("bench", "bench-pw") == {"username": "bench"}
        assert minirest.verify_password("bench", "wrong") is None
        rows.append(("app admin:public (secret compare)", cheap,
                     per_call(lambda: minirest.verify_password("admin", "public"), cheap)))
        rows.append(("user bench, cache warm", cheap,
                     per_call(lambda: minirest.verify_password("bench", "bench-pw"), cheap)))
        rows.append((f"user bench, cache cleared ({database.PASSWORD_METHOD})", dear,
                     per_call(uncached("bench", "bench-pw"), dear)))
        minirest.verify_password("bench", "wrong")
        rows.append(("wrong password, cache warm", cheap,
                     per_call(lambda: minirest.verify_password("bench", "wrong"), cheap)))
        rows.append(("wrong password, cache cleared", dear,
                     per_call(uncached("bench", "wrong"), dear)))
    minirest._verified.clear()

    print("auth: minirest.verify_password in this process, inside one request context")
    print(f"{'check':<48} {'calls':>6} {'per call':>11} {'x app':>8}")
    reference = rows[0][2]
    for label, calls, seconds in rows:
        print(f"{label:<48} {calls:>6} {seconds * 1e6:>8.1f} us {seconds / reference:>8.1f}")


# --- publish: publish and subscribe with few and with many subscriptions ---


def build_subscriptions(path, size):
    """An empty cluster, then `size` subscriptions on size/2 persistent sessions: even i a
    plain filter bench/K/data, i % 4 == 1 fleet/K/+/temp, i % 4 == 3 site/K/# (K = i // 2)."""
    database.ensure_database(path, app.app.config, seed=42, nodes=1, clients=0)
    sessions = max(size // 2, 1)
    now = int(time.time())
    db = database.open_db(path)
    with database.transaction(db):
        db.executemany(
            "INSERT INTO sessions (client_id, node, clean_start, created_at, expiry_interval,"
            " heap_size, reductions) VALUES (?, ?, 0, ?, 7200, 376, 200)",
            ((f"bench-{s}", NODE, now) for s in range(sessions)))

        def rows():
            for i in range(size):
                k = i // 2
                if i % 2 == 0:
                    topic = f"bench/{k}/data"
                elif i % 4 == 1:
                    topic = f"fleet/{k}/+/temp"
                else:
                    topic = f"site/{k}/#"
                yield f"bench-{i % sessions}", NODE, topic, 1, topic, None

        db.executemany(database.SUBSCRIPTION_INSERT, rows())
    count = db.execute("SELECT count(*) FROM subscriptions").fetchone()[0]
    db.close()
    return count, sessions


def publish_part(args, tmp):
    concurrency = args.concurrency or 4
    rows = []
    for size in sorted(args.sizes):
        path = os.path.join(tmp, f"publish-{size}.db")
        started = time.perf_counter()
        count, sessions = build_subscriptions(path, size)
        built = time.perf_counter() - started
        # K = 2m (m < size/4) has both a plain filter bench/K/data and fleet/K/+/temp.
        pairs = max(size // 4, 1)

        def publish(n, pairs=pairs):
            k = (n // 2 % pairs) * 2
            topic = f"bench/{k}/data" if n % 2 else f"fleet/{k}/x/temp"
            body = {"topic": topic, "payload": "21.5", "qos": 1}
            return "POST", "/api/v3/mqtt/publish", json.dumps(body).encode()

        fresh = itertools.count()  # a filter never subscribed before, warm-up included

        def subscribe(n, sessions=sessions, fresh=fresh):
            body = {"client_id": f"bench-{n % sessions}", "topic": f"new/{next(fresh)}/+",
                    "qos": 1}
            return "POST", "/api/v3/mqtt/subscribe", json.dumps(body).encode()

        with serve(path, 0) as server:
            pub = measure(server, args, concurrency, publish, code_ok)
            sub = measure(server, args, concurrency, subscribe, code_ok)
        rows.append((count, built, pub, sub))

    print("publish: POST /api/v3/mqtt/publish and /mqtt/subscribe on gunicorn -w 2 (threaded"
          f" workers), {concurrency} threads, {args.seconds:g} s per figure after {args.warmup:g} s"
          " warm-up each")
    print(f"{'subscriptions':>13} {'build s':>7} | {'publish/s':>9} {'p50 ms':>7} {'p99 ms':>7}"
          f" {'x ref':>5} | {'subscribe/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'x ref':>5}"
          f" | errors")
    ref_pub, ref_sub = rows[0][2].rate, rows[0][3].rate
    for count, built, pub, sub in rows:
        x_pub = pub.rate / ref_pub if ref_pub else float("nan")
        x_sub = sub.rate / ref_sub if ref_sub else float("nan")
        print(f"{count:>13,} {built:>7.2f} | {pub.rate:>9.0f} {pub.ms(0.5):>7.2f}"
              f" {pub.ms(0.99):>7.2f} {x_pub:>5.2f} | {sub.rate:>11.0f} {sub.ms(0.5):>7.2f}"
              f" {sub.ms(0.99):>7.2f} {x_sub:>5.2f} | {pub.errors + sub.errors}")
    print(f"(x ref: divided by the {rows[0][0]:,}-subscription database, same run)")


# --- worlds: whole states through the controls, beside seeding from scratch ---


def call(conn, method, path, body=None, code=0):
    """One call on a kept connection; its time in seconds (it must answer HTTP 200 and
    `code`, unless that is None)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {**HEADERS, "Content-Type": "application/json"}
    started = time.perf_counter()
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    answer = response.read()
    took = time.perf_counter() - started
    if response.status != 200 or code is not None and json.loads(answer).get("code") != code:
        raise RuntimeError(f"{method} {path}: {response.status} {answer[:200]!r}")
    return took


def repeat(conn, times, method, route, body=None, after=None):
    """The times of `times` calls; {i} in the route and in body strings is the call's number;
    `after(i)` names an untimed call made after each."""
    out = []
    for i in range(times):
        filled = {k: v.format(i=i) if isinstance(v, str) else v
                  for k, v in body.items()} if body else None
        out.append(call(conn, method, route.format(i=i), filled))
        if after:
            call(conn, *after(i))
    return out


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def worlds_part(args, tmp):
    rows = []
    for clients in args.worlds:
        path, seeded = seeded_database(tmp, "worlds", clients)
        timings = {}
        with serve(path, clients) as server:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)

            first = call(conn, "POST", "/_standin/worlds", {"name": "first", "clients": clients})
            call(conn, "DELETE", "/_standin/worlds/first")
            n = args.repeat
            timings["create"] = repeat(conn, n, "POST", "/_standin/worlds",
                                       {"name": "w{i}", "clients": clients},
                                       after=lambda i: ("DELETE", f"/_standin/worlds/w{i}"))
            timings["save"] = repeat(conn, n, "POST", "/_standin/snapshots", {"name": "s{i}"})
            timings["restore"] = repeat(conn, n, "POST", "/_standin/snapshots/s{i}/restore")
            timings["reset"] = repeat(conn, n, "POST", "/_standin/reset")
            conn.close()
        rows.append((clients, seeded, first, {k: median(v) for k, v in timings.items()}))

    print("worlds: the controls on gunicorn -w 2 (threaded workers), one client, median of"
          f" {args.repeat} calls each; seed = ensure_database on a new file in this process")
    labels = ("create", "save", "restore", "reset")
    print(f"{'clients':>8} {'seed ms':>9} {'1st world':>9} | "
          + " | ".join(f"{label + ' ms':>10} {'x seed':>7}" for label in labels))
    for clients, seeded, first, medians in rows:
        cells = " | ".join(f"{medians[label] * 1e3:>10.2f} {medians[label] / seeded:>7.3f}"
                           for label in labels)
        print(f"{clients:>8,} {seeded * 1e3:>9.1f} {first * 1e3:>9.1f} | {cells}")
    print("(create: POST /_standin/worlds; save/restore: a snapshot; reset: POST /_standin/reset"
          " to the settings the database was created with)")


# --- limits: the longest writes the validated limits let one request make ---


def retain_many(path, count):
    """`count` retained messages fleet/<i % 100>/<i>/state, written straight to the file."""
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO retained (topic, payload, qos, created_at)"
                       " VALUES (?, x'7b7d', 1, 0)",
                       ((f"fleet/{i % 100}/{i}/state",) for i in range(count)))
    db.close()


LIMIT_RUNS = 3  # calls of each write (a budget that runs out takes seconds)


def limits_part(args, tmp):
    path, _ = seeded_database(tmp, "limits", 1000)
    retain_many(path, args.retained)
    one_each = [f"fleet/{i % 100}/{i}/+" for i in range(app.MAX_TOPICS // 2)]
    one_each += [f"fleet/{i % 100}/{i}/state" for i in range(app.MAX_TOPICS // 2, app.MAX_TOPICS)]
    cases = [  # label, method, path, body, code; the first is the reference
        ("publish, one topic (the reference)", "POST", "/api/v3/mqtt/publish",
         {"topic": "fleet/1/1/state", "payload": "x", "qos": 1}, 0),
        (f"subscribe {app.MAX_TOPICS} filters, one retained match each", "POST",
         "/api/v3/mqtt/subscribe", {"client_id": "emqx-api-test:v1", "qos": 1,
                                    "topic": ",".join(one_each)}, 0),
        ("subscribe 100 filters +/i/+/state: the budget runs out", "POST",
         "/api/v3/mqtt/subscribe", {"client_id": "emqx-api-test:v1", "qos": 1,
                                    "topic": ",".join(f"+/{i}/+/state" for i in range(100))},
         app.BAD_PARAM if args.retained >= 100_000 else None),  # with fewer it may not
        (f"publish to {app.MAX_TOPICS} topics at once", "POST", "/api/v3/mqtt/publish",
         {"topic": ",".join(f"fleet/{i % 100}/{i}/state" for i in range(app.MAX_TOPICS)),
          "payload": "x", "qos": 1}, 0),
        (f"reset to {standin.MAX_RESET_CLIENTS:,} clients (the largest in a request)",
         "POST", "/_standin/reset", {"clients": standin.MAX_RESET_CLIENTS}, 0),
    ]
    rows = []
    with serve(path, 1000) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        for label, method, route, body, code in cases:
            runs = 1 if route == "/_standin/reset" else LIMIT_RUNS
            rows.append((label, runs, median(
                [call(conn, method, route, body, code) for _ in range(runs)])))
        conn.close()
    print(f"limits: the longest writes one request may make, on gunicorn -w 2 (threaded"
          f" workers), 1,000 clients and {args.retained:,} retained messages; median of"
          f" {LIMIT_RUNS} calls (the reset: one)")
    print(f"{'write':<62} {'calls':>5} {'ms':>9} {'x ref':>8}")
    reference = rows[0][2]
    for label, runs, seconds in rows:
        print(f"{label:<62} {runs:>5} {seconds * 1e3:>9.1f} {seconds / reference:>8.0f}")
    print(f"(limits: {app.MAX_TOPICS} topics a request, a budget of {app.WORK_BUDGET:,} rows"
          " examined, resets above the largest refused with 108)")


# --- entry point ---


def numbers(text):
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"need one or more sizes >= 0: {text!r}")
    return values


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return value
    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench/micro.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="parts: read, auth, publish, worlds, limits (default: all five, in that order)")
    parser.add_argument("parts", nargs="*", metavar="part",
                        help="read, auth, publish, worlds or limits")
    parser.add_argument("--clients", type=numbers, default=[1000],
                        help="read: STANDIN_CLIENTS per database (default 1000)")
    parser.add_argument("--sizes", type=numbers, default=[100, 100000],
                        help="publish: subscriptions per database (default 100,100000)")
    parser.add_argument("--seconds", type=positive(float), default=3.0,
                        help="each timed run (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="untimed load before each timed run (default 1; 0 for none)")
    parser.add_argument("--concurrency", type=positive(int), default=None,
                        help="threads (default 8 for read, 4 for publish)")
    parser.add_argument("--calls", type=positive(int), default=5000,
                        help="auth: calls per cheap check (default 5000)")
    parser.add_argument("--worlds", type=numbers, default=[50, 10000],
                        help="worlds: STANDIN_CLIENTS per database (default 50,10000)")
    parser.add_argument("--repeat", type=positive(int), default=15,
                        help="worlds: calls of each control (default 15)")
    parser.add_argument("--retained", type=numbers, default=[120000],
                        help="limits: retained messages in the database (default 120000)")
    args = parser.parse_intermixed_args(argv)
    args.retained = args.retained[0]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r} (choose from {', '.join(PARTS)})")
    args.parts = [p for p in PARTS if p in args.parts] or list(PARTS)
    return args


def banner(what):
    """The first line of a benchmark's output: what it is and the machine it ran on."""
    print(f"emqx-standin {what}: {os.cpu_count()} CPUs, Python {platform.python_version()},"
          f" SQLite {sqlite3.sqlite_version}; the load generator runs on the same machine")


def main(argv=None):
    args = parse_args(argv)
    began = time.monotonic()
    banner("micro benchmarks")
    with tempfile.TemporaryDirectory(prefix="standin-micro-") as tmp:
        for part in args.parts:
            print()
            {"read": read_part, "auth": auth_part, "publish": publish_part,
             "worlds": worlds_part, "limits": limits_part}[part](args, tmp)
            sys.stdout.flush()
    print(f"\n(took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
