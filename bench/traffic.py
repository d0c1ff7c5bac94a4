"""Live traffic's cost: the API's request rate with traffic off and on, side by side in one
run, and the database's size after a simulated hour of traffic.

Usage (from the repository root):

    .venv/bin/python bench/traffic.py [options]          # about a minute

Options:
    --clients 1000      STANDIN_CLIENTS of each database (1 node, seed 42)
    --seconds 2         each timed run
    --warmup 0.5        untimed load (the same requests) before each timed run
    --concurrency 8     request threads
    --hours 1           simulated hours of traffic for the size part
    --rounds 1          rate: off/on pairs per path; each figure is the best of them (on a
                        machine others use too, 3 gives steadier ratios)

Parts:

rate    Seeds a database in-process and serves it with gunicorn -w 2 (tests/live.py's
        LiveServer, access log off, as bench/micro.py does). For each path, drives it
        closed-loop from CONCURRENCY threads (bench/micro.py's drive: kept-alive
        connections, only HTTP 200 answers count) with traffic off, then with traffic on at
        the demo rates and speed 1, so the timed requests themselves advance it. `on/off`
        divides the two rates: traffic must not take the API below half its rate (0.50).
        `sim s` is the simulated seconds traffic applied during the timed runs with it on
        (about their length: it really ran). With --rounds N, off and on alternate N times
        and each figure is the best run.
size    A new database of the same size, served the same way: traffic on at the demo rates
        with its clock stopped, then POST /_standin/traffic/advance 600 simulated seconds at
        a time, up to HOURS hours. Prints the file's size (after a checkpoint) before and
        after, the rows of the tables traffic writes, what it did and the wall time it took.
"""

import argparse
import os
import sqlite3
import sys
import tempfile
import time

import micro  # bench/micro.py: it puts the repository and tests/ first on the path

from live import request

PATHS = ("/api/v3/connections/?_page=1&_limit=100", "/api/v3/stats/")
CONTROL = "/_standin/traffic"
ADVANCE = 600  # simulated seconds per POST /_standin/traffic/advance (its most)
TABLES = ("connections", "sessions", "subscriptions", "routes", "retained", "alarms",
          "traffic_offline")


def send(base, method, path, body=None):
    """A control call that must answer HTTP 200 and code 0 (an advance may take seconds)."""
    r = request(base, method, path, body, timeout=120)
    answer = r.json()
    if r.status_code != 200 or answer["code"] != 0:
        raise RuntimeError(f"{method} {path}: HTTP {r.status_code} {r.text[:200]}")
    return answer


def rate_part(args, tmp):
    path, _ = micro.seeded_database(tmp, "rate", args.clients)
    rows = []
    with micro.serve(path, args.clients) as server:
        for target in PATHS:
            def request(n, target=target):
                return "GET", target, None

            offs, ons, simulated = [], [], 0
            for _ in range(args.rounds):
                offs.append(micro.measure(server, args, args.concurrency, request,
                                          micro.status_ok))
                send(server.url, "PUT", CONTROL, {"speed": 1})
                if args.warmup > 0:
                    micro.drive(server.port, args.warmup, args.concurrency, request,
                                micro.status_ok, micro.HEADERS)
                before = send(server.url, "GET", CONTROL)["data"]["elapsed_s"]
                ons.append(micro.drive(server.port, args.seconds, args.concurrency, request,
                                       micro.status_ok, micro.HEADERS))
                simulated += send(server.url, "DELETE", CONTROL)["data"]["elapsed_s"] - before
            best = max(offs, key=lambda run: run.rate), max(ons, key=lambda run: run.rate)
            rows.append((target, *best, sum(r.errors for r in offs + ons), simulated))

    print(f"rate: GET on gunicorn -w 2, {args.clients:,} clients, {args.concurrency} threads,"
          f" {args.seconds:g} s per run after {args.warmup:g} s warm-up, best of"
          f" {args.rounds}; traffic on at the demo rates, speed 1")
    print(f"{'path':<42} {'off req/s':>9} {'on req/s':>9} {'on/off':>6} {'p99 off':>7}"
          f" {'p99 on':>7} {'errors':>6} {'sim s':>5}")
    worst = None
    for target, off, on, errors, simulated in rows:
        ratio = on.rate / off.rate if off.rate else float("nan")
        worst = ratio if worst is None else min(worst, ratio)
        print(f"{target:<42} {off.rate:>9.0f} {on.rate:>9.0f} {ratio:>6.2f}"
              f" {off.ms(0.99):>7.2f} {on.ms(0.99):>7.2f} {errors:>6}"
              f" {simulated:>5}")
    verdict = "at least half: ok" if worst is not None and worst >= 0.5 else "BELOW HALF"
    print(f"lowest on/off: {worst:.2f} ({verdict})")


def file_size(path):
    """Bytes of the database file once its WAL is checkpointed into it."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = {}
        for table in TABLES:
            try:
                rows[table] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            except sqlite3.OperationalError:  # traffic_offline: made when traffic first runs
                rows[table] = 0
    finally:
        db.close()
    return os.path.getsize(path), rows


def size_part(args, tmp):
    path, _ = micro.seeded_database(tmp, "size", args.clients)
    size0, rows0 = file_size(path)
    goal = round(args.hours * 3600)
    with micro.serve(path, args.clients) as server:
        send(server.url, "PUT", CONTROL, {"speed": 0})
        started = time.monotonic()
        state = send(server.url, "GET", CONTROL)["data"]
        while state["elapsed_s"] < goal:
            state = send(server.url, "POST", f"{CONTROL}/advance",
                         {"seconds": min(ADVANCE, goal - state["elapsed_s"])})["data"]
        took = time.monotonic() - started
        send(server.url, "DELETE", CONTROL)
    size1, rows1 = file_size(path)
    print(f"size: {args.clients:,} clients, traffic at the demo rates for {goal:,} simulated"
          f" seconds ({goal / 3600:g} h) through POST {CONTROL}/advance: {took:.1f} s of wall"
          f" time ({1000 * took / goal:.1f} ms a simulated second)")
    print(f"{'':<16} {'file MB':>8} " + " ".join(f"{t:>15}" for t in TABLES))
    for label, size, rows in (("seeded", size0, rows0), ("after", size1, rows1)):
        print(f"{label:<16} {size / 1e6:>8.2f} " + " ".join(f"{rows[t]:>15,}" for t in TABLES))
    counts = ", ".join(f"{k} {v:,}" for k, v in state["counts"].items())
    print(f"traffic did: {counts}; online at the end {state['online']}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench/traffic.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=micro.positive(int), default=1000,
                        help="STANDIN_CLIENTS of each database (default 1000)")
    parser.add_argument("--seconds", type=micro.positive(float), default=2.0,
                        help="each timed run (default 2)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="untimed load before each timed run (default 0.5; 0 for none)")
    parser.add_argument("--concurrency", type=micro.positive(int), default=8,
                        help="request threads (default 8)")
    parser.add_argument("--rounds", type=micro.positive(int), default=1,
                        help="rate: off/on pairs per path, the best of each kept (default 1)")
    parser.add_argument("--hours", type=micro.positive(float), default=1.0,
                        help="simulated hours of traffic for the size part (default 1)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    began = time.monotonic()
    micro.banner("live traffic")
    with tempfile.TemporaryDirectory(prefix="standin-traffic-") as tmp:
        for part in (rate_part, size_part):
            print()
            part(args, tmp)
            sys.stdout.flush()
    print(f"\n(took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
