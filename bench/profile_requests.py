"""Where one request's time goes: the stand-in called in-process, phase by phase.

Usage (from the repository root):

    .venv/bin/python bench/profile_requests.py [route ...] [--clients 1000] [-n 1000]
                                               [--warmup 50] [--top [15]]

    .venv/bin/python bench/profile_requests.py          # the first page, 1,000 clients
    .venv/bin/python bench/profile_requests.py first stats lookup publish --clients 100000
    .venv/bin/python bench/profile_requests.py large --clients 100000 -n 20 --top

Routes (default: first):

    first    GET  /api/v3/connections/?_page=1&_limit=100
    last     GET  /api/v3/connections/?_page=LAST&_limit=100
    lookup   GET  /api/v3/connections/:clientid   (a client of the first page)
    stats    GET  /api/v3/nodes/:node/stats/
    nodes    GET  /api/v3/nodes/
    large    GET  /api/v3/connections/   (no _limit: EMQ X's default page of 10,000 rows)
    publish  POST /api/v3/mqtt/publish   {"topic": "/test", "payload": ..., "qos": 1}

The database is a real SQLite file of CLIENTS connections on one node (seed 42), seeded in
this process by the helper bench/micro.py uses; the app (app.app) is called as gunicorn
calls it, one WSGI call per request on a prepared environ (no socket, no test client),
from one thread. For each route, after WARMUP untimed requests, four passes of N requests:

1. plain: the mean and median time per request, nothing added; beside them
   bench/floor_app.py's for one WSGI call (a precomputed page, no hooks, no database),
   measured the same way;
2. phases: every hook the app and its blueprints have registered (before_request,
   after_request, teardown_request, teardown_appcontext, found in those registries, not
   named here) and every view are wrapped with a timer; the rest of the request is Flask
   and Werkzeug (routing, request and response objects, the context);
3. SQL: sqlite3.connect is wrapped from the start so that every connection the app opens
   has a trace callback (set_trace_callback); statements per request, and the distinct
   statements (literals replaced by ?) with their counts;
4. with --top: cProfile, the top functions by cumulative time.

Passes 2-4 cost a little more than pass 1 (the timers, the callback, the profiler): their
totals are printed so that the difference can be seen.
"""

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections import defaultdict
from urllib.parse import quote

from werkzeug.test import EnvironBuilder

# --- SQL trace: every connection opened from now on reports its statements here ---

_trace = {"on": False, "statements": []}
_connect = sqlite3.connect


def _traced_connect(*args, **kwargs):
    db = _connect(*args, **kwargs)
    db.set_trace_callback(_record_statement)
    return db


def _record_statement(sql):
    if _trace["on"]:
        _trace["statements"].append(sql)


sqlite3.connect = _traced_connect  # before the app is imported (micro imports it)

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import micro  # noqa: E402  (puts the repository first on sys.path, clears STANDIN_*)

ROUTES = ("first", "last", "lookup", "stats", "nodes", "large", "publish")
LIMIT = 100

_LITERALS = re.compile(r"[xX]?'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def statement_shape(sql):
    """A statement with its literal values replaced by ?, so repeated ones count as one."""
    return " ".join(_LITERALS.sub("?", sql).split())


# --- requests as WSGI calls ---


class Call:
    """One request, prepared once and sent to a WSGI app as often as needed."""

    def __init__(self, method, path, body=None):
        self.method, self.path = method, path
        self.body = json.dumps(body).encode() if body is not None else b""
        headers = {**micro.HEADERS, "Host": "127.0.0.1:8080"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        builder = EnvironBuilder(path=path, method=method, headers=headers, data=self.body,
                                 environ_base={"REMOTE_ADDR": "127.0.0.1",
                                               "REMOTE_PORT": "40000", "RAW_URI": path})
        self.environ = builder.get_environ()
        builder.close()

    def __call__(self, wsgi):
        """(status, body) of one call."""
        environ = dict(self.environ)
        environ["wsgi.input"] = io.BytesIO(self.body)
        answer = []
        iterable = wsgi(environ, lambda status, headers, exc_info=None: answer.append(status))
        try:
            data = b"".join(iterable)
        finally:
            if hasattr(iterable, "close"):
                iterable.close()
        return int(answer[0].split()[0]), data


def check(call, wsgi):
    status, data = call(wsgi)
    if status != 200 or json.loads(data).get("code") != 0:
        raise SystemExit(f"{call.method} {call.path} answered {status}: {data[:300]!r}")
    return json.loads(data)


def per_request_us(call, wsgi, n):
    """(mean, median) microseconds of `n` calls, each timed (the median shrugs off the
    moments another job on a shared machine takes the CPU)."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call(wsgi)
        times.append(time.perf_counter() - started)
    return statistics.mean(times) * 1e6, statistics.median(times) * 1e6


# --- phases: the hooks and views the app has, wrapped with timers ---


def hook_name(func, scope):
    name = f"{func.__module__}.{func.__qualname__}"
    return name if scope is None else f"{name} [blueprint {scope}]"


class Phases:
    """Timers around every registered hook and view of a Flask app, removable."""

    REGISTRIES = (("before", "before_request_funcs"), ("after", "after_request_funcs"),
                  ("teardown", "teardown_request_funcs"))

    def __init__(self, flask_app):
        self.app = flask_app
        self.spent = defaultdict(float)  # (phase, name) -> seconds
        self.calls = Counter()
        self.registered = []  # (phase, name), in the order Flask runs them
        self._undo = []

    def _timed(self, phase, name, func):
        key = (phase, name)
        self.registered.append(key)

        @functools.wraps(func)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.spent[key] += time.perf_counter() - started
                self.calls[key] += 1
        return timed

    def install(self):
        for phase, attribute in self.REGISTRIES:
            for scope, funcs in getattr(self.app, attribute).items():
                original = list(funcs)
                funcs[:] = [self._timed(phase, hook_name(f, scope), f) for f in original]
                self._undo.append((funcs, original))
        funcs = self.app.teardown_appcontext_funcs
        original = list(funcs)
        funcs[:] = [self._timed("teardown", hook_name(f, None), f) for f in original]
        self._undo.append((funcs, original))
        views = self.app.view_functions
        original_views = dict(views)
        for endpoint, view in original_views.items():
            views[endpoint] = self._timed("view", endpoint, view)
        self._undo.append((views, original_views))

    def remove(self):
        for target, original in reversed(self._undo):
            if isinstance(target, dict):
                target.clear()
                target.update(original)
            else:
                target[:] = original
        self._undo.clear()


# --- one route ---


def mean_us(call, wsgi, n):
    """n requests back to back: the mean, in us per request (whatever is installed)."""
    started = time.perf_counter()
    for _ in range(n):
        call(wsgi)
    return (time.perf_counter() - started) / n * 1e6


def profile_route(label, call, args, floor_us):
    flask_app = micro.app.app
    wsgi = flask_app
    for _ in range(args.warmup):
        call(wsgi)
    n = args.n
    plain, median = per_request_us(call, wsgi, n)
    print()
    print(f"== {label}: {call.method} {call.path}")
    print(f"mean {plain:.1f} us per request, median {median:.1f} ({n} requests; floor_app:"
          f" mean {floor_us[0]:.1f}, median {floor_us[1]:.1f}; x{plain / floor_us[0]:.1f} by"
          " the means)")

    phases = Phases(flask_app)
    phases.install()
    try:
        total = mean_us(call, wsgi, n)
    finally:
        phases.remove()
    print()
    print(f"{'phase':<9} {'name':<56} {'us/request':>10} {'share':>6}")
    hooks = 0.0
    order = {"before": 0, "view": 1, "after": 2, "teardown": 3}
    ran = sorted({key for key in phases.registered if phases.calls[key]},
                 key=lambda k: (order[k[0]], phases.registered.index(k)))
    for key in ran:
        us = phases.spent[key] / n * 1e6
        hooks += us
        print(f"{key[0]:<9} {key[1]:<56} {us:>10.1f} {us / total:>6.1%}")
    rest = total - hooks
    print(f"{'rest':<9} {'Flask and Werkzeug (routing, request, response, context)':<56}"
          f" {rest:>10.1f} {rest / total:>6.1%}")
    print(f"{'total':<9} {'(this pass, with the timers)':<56} {total:>10.1f}")
    idle = [name for phase, name in phases.registered
            if phase != "view" and not phases.calls[(phase, name)]]
    if idle:
        print(f"registered, not run for this route: {', '.join(idle)}")

    _trace["statements"].clear()
    _trace["on"] = True
    try:
        traced = mean_us(call, wsgi, n)
    finally:
        _trace["on"] = False
    shapes = Counter(statement_shape(s) for s in _trace["statements"])
    count = sum(shapes.values())
    print()
    print(f"SQL statements: {count / n:.2f} per request ({count} in {n} requests,"
          f" {len(shapes)} distinct; this pass {traced:.1f} us per request)")
    for shape, times in shapes.most_common():
        text = shape if len(shape) <= 150 else shape[:147] + "..."
        print(f"{times / n:>8.2f}  {text}")

    if args.top:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            call(wsgi)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats("cumulative").print_stats(
            args.top)
        body = out.getvalue()
        print()
        print(f"cProfile, top {args.top} by cumulative time ({n} requests):")
        print(body[body.index("   ncalls"):].rstrip())


def calls_for(routes):
    """The Call of each route name, on the seeded database (ids read from it)."""
    wsgi = micro.app.app
    first = check(Call("GET", f"/api/v3/connections/?_page=1&_limit={LIMIT}"), wsgi)
    count = first["meta"]["count"]
    last = max(1, -(-count // LIMIT))
    rows = first["data"]
    client = rows[len(rows) // 2]["client_id"] if rows else "emqx-api-test:v1"
    made = {
        "first": Call("GET", f"/api/v3/connections/?_page=1&_limit={LIMIT}"),
        "last": Call("GET", f"/api/v3/connections/?_page={last}&_limit={LIMIT}"),
        "lookup": Call("GET", "/api/v3/connections/" + quote(client, safe="")),
        "stats": Call("GET", f"/api/v3/nodes/{micro.NODE}/stats/"),
        "nodes": Call("GET", "/api/v3/nodes/"),
        "large": Call("GET", "/api/v3/connections/"),
        "publish": Call("POST", "/api/v3/mqtt/publish",
                        {"topic": "/test", "payload": "hello from profile_requests.py", "qos": 1}),
    }
    out = []
    for name in routes:
        check(made[name], wsgi)
        out.append((name, made[name]))
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench/profile_requests.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"routes: {', '.join(ROUTES)} (default: first)")
    parser.add_argument("routes", nargs="*", metavar="route", help=", ".join(ROUTES))
    parser.add_argument("--clients", type=int, default=1000,
                        help="STANDIN_CLIENTS of the seeded database (default 1000)")
    parser.add_argument("-n", type=int, default=1000,
                        help="requests per pass (default 1000)")
    parser.add_argument("--warmup", type=int, default=50,
                        help="untimed requests before the passes (default 50)")
    parser.add_argument("--top", type=int, nargs="?", const=15, default=0,
                        help="also cProfile: the top TOP functions by cumulative time"
                             " (15 when given without a number)")
    args = parser.parse_args(argv)
    unknown = [r for r in args.routes if r not in ROUTES]
    if unknown:
        parser.error(f"unknown route {unknown[0]!r} (choose from {', '.join(ROUTES)})")
    if args.n < 1 or args.clients < 0 or args.warmup < 0:
        parser.error("-n must be > 0, --clients and --warmup >= 0")
    args.routes = args.routes or ["first"]
    return args


def main(argv=None):
    args = parse_args(argv)
    import floor_app  # its synthesized page (FLOOR_PAGE unset): the same shape, 100 rows

    with tempfile.TemporaryDirectory(prefix="standin-profile-") as tmp:
        path, seeded = micro.seeded_database(tmp, "profile", args.clients)
        micro.app.app.config["DATABASE"] = path
        floor_call = Call("GET", f"/api/v3/connections/?_page=1&_limit={LIMIT}")
        for _ in range(args.warmup):
            floor_call(floor_app.app)
        floor_us = per_request_us(floor_call, floor_app.app, args.n)
        print(f"emqx-standin in-process profile: {args.clients:,} clients on 1 node (seeded in"
              f" {seeded:.2f} s), {args.n} requests per pass after {args.warmup} warm-up,"
              f" one WSGI call each (no socket); floor_app: mean {floor_us[0]:.1f},"
              f" median {floor_us[1]:.1f} us per request")
        for name, call in calls_for(args.routes):
            profile_route(name, call, args, floor_us)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
