"""Side-by-side benchmark: the stand-in at several sizes, a Flask floor under two worker models
and json-server, one run.

Usage:  .venv/bin/python bench/compare.py [--sizes 1000,100000,1000000] [--quick]
            [--seconds 3] [--repeats 3] [--concurrency 8] [--workers N]
            [--generator auto|wrk|python] [--peer-rows 100000] [--tmpdir DIR]

Where one request's time goes (in-process, by hook, with its SQL): bench/profile_requests.py.

Not part of the test suite. Needs bench/node_modules (`cd bench && npm install`, json-server
0.17) and preferably wrk (`apt-get install -y wrk`); without wrk a Python load generator
(threads + http.client) is used for every target, which shares the CPUs with the servers.

Worker model: the stand-in's default, read from gunicorn.conf.py in a clean environment
(WEB_CONCURRENCY workers, default two per CPU; STANDIN_THREADS threads; keep-alive), or
--workers N for both the stand-in and the floors.

For every size it times `flask --app app init-db` (STANDIN_CLIENTS = size, 1 node, seed 42)
into a temporary directory, starts `python -m gunicorn -w WORKERS -b 127.0.0.1:PORT
--access-logfile /dev/null app:app` from the repository root (gunicorn.conf.py applies: its
threaded worker, threads and keep-alive) three times on the existing database (cold start:
launch to the first 200 on /status), and drives:

    list first page   GET  /api/v3/connections/?_page=1&_limit=100
    list last page    GET  /api/v3/connections/?_page=LAST&_limit=100
    lookup            GET  /api/v3/connections/:clientid   (30 real ids, rotated)
    node stats        GET  /api/v3/nodes/:node/stats/
    nodes             GET  /api/v3/nodes/
    publish           POST /api/v3/mqtt/publish   {"topic": "/test", ...} (2 seeded subscribers)
    subscribe         POST /api/v3/mqtt/subscribe {seeded client id, a new topic each time}

each for 1 s of warm-up and then REPEATS x SECONDS at fixed CONCURRENCY; a figure is the median
of the repeats (req/s, p50, p99). Then it reads VmHWM (peak RSS) of the gunicorn workers.

Large page: GET /api/v3/connections/ without _limit (EMQ X's default, 10,000 rows), one client
on a kept-alive connection, LARGE_PAGE_CALLS times, alternating with GET /status (no auth, no
database, no journal: the round trip through gunicorn and Flask). Server time = median page
time - median /status time: what serving the page adds to a trivial request, on the client's
clock (it includes sending the body over loopback, not any parsing on the client's side).

References, measured in the same run with the same generator:
  floors       bench/floor_app.py: a real first page of 100 connections (saved from the
               stand-in), precomputed, auth not checked, under two worker models with the
               stand-in's worker count: sync (`-k sync --threads 1`: a new connection per
               request) and threaded with keep-alive (`-k gthread --threads T --keep-alive K`,
               the stand-in's T and K). Both stay up for the whole run. Each run against the
               stand-in or json-server has a run against one floor before it and one against
               the other after it, swapping every repeat, so each figure has both floors from
               the same minute, measured before and after it (the ratios survive a shared,
               noisy machine). x = ours / the better of the two floors.
  json-server  0.17 on a db.json of PEER_ROWS connection objects taken from the seeded
               database (cycled with a client_id suffix if the largest size is smaller):
               GET /connections?_page=1&_limit=100 and the last page.

Prints the tables and met/missed for each target of issue 17 ("Cheap requests") and of the
earlier issue ("Fast at any size"). Databases are deleted at the end.
"""

import argparse
import base64
import http.client
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
AUTH = "Basic " + base64.b64encode(b"admin:public").decode()
JSON_SERVER = os.path.join(BENCH, "node_modules", ".bin", "json-server")
LIMIT = 100
LARGE_PAGE_CALLS = 10  # large page: timed requests per size
LARGE_PAGE_MS = 50  # issue 17: the default page (10,000 rows) under 50 ms of server time

READ_FIGURES = ("list_first", "list_last", "lookup", "node_stats", "nodes")
WRITE_FIGURES = ("publish", "subscribe")
LABELS = {
    "list_first": "list first page",
    "list_last": "list last page",
    "lookup": "lookup :clientid",
    "node_stats": "nodes/:node/stats",
    "nodes": "nodes/",
    "publish": "mqtt/publish",
    "subscribe": "mqtt/subscribe",
    "floor": "floor (any path)",
    "peer_first": "json-server page 1",
    "peer_last": "json-server last page",
}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, auth=True, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": AUTH} if auth else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post(port, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body, {"Authorization": AUTH,
                                          "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(proc, port, path, timeout=120):
    """Seconds from now until `path` answers 200 (polled every 5 ms)."""
    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering {path}")
        try:
            status, _ = get(port, path, auth=False, timeout=5)
            if status == 200:
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"server did not answer {path} within {timeout} s")


def standin_worker_model():
    """The stand-in's default worker model, as gunicorn.conf.py computes it in a clean
    environment: {"workers", "threads", "keepalive", "worker_class"}."""
    code = ("import json, runpy; c = runpy.run_path('gunicorn.conf.py'); print(json.dumps("
            "{k: c[k] for k in ('workers', 'threads', 'keepalive', 'worker_class')}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def start_gunicorn(module, env, logfile, workers, flags=()):
    """`python -m gunicorn -w WORKERS [flags]` from the repository root (gunicorn.conf.py
    applies; flags win over it).

    Returns (process, port, seconds from launch to the first 200 on /status).
    """
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
         *flags, "--access-logfile", "/dev/null", "--error-logfile", logfile, module],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    wait_ready(proc, port, "/status")
    return proc, port, time.perf_counter() - start


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def peak_rss_mb(pid):
    """VmHWM (peak resident set) of a process, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker_rss(master):
    return [peak_rss_mb(pid) for pid in children(master)]


def child_env(**settings):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STANDIN_") and k not in ("PORT", "WEB_CONCURRENCY", "FLOOR_PAGE")}
    env.update({k: str(v) for k, v in settings.items()})
    return env


# ---------------------------------------------------------------------------
# Load generators (one of them drives every target of a run)
# ---------------------------------------------------------------------------


class Scenario:
    """Requests to rotate through: one method, paths and bodies; `{n}` in a body is replaced by
    a counter unique to the request (new topics for subscribe)."""

    def __init__(self, method, paths, bodies=None, auth=True):
        self.method = method
        self.paths = list(paths)
        self.bodies = list(bodies) if bodies else None
        self.auth = auth
        self.counter = bool(self.bodies) and any("{n}" in b for b in self.bodies)

    def first_request(self):
        body = self.bodies[0].replace("{n}", "check") if self.bodies else None
        return self.method, self.paths[0], body


def parse_duration(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def lua_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class WrkGenerator:
    name = "wrk"

    def __init__(self, tmp, concurrency, threads):
        self.tmp = tmp
        self.concurrency = concurrency
        self.threads = max(1, min(threads, concurrency))
        self.scripts = 0

    def describe(self):
        return f"wrk -t{self.threads} -c{self.concurrency} (closed loop)"

    def script(self, scenario):
        headers = {"Content-Type": "application/json"} if scenario.bodies else {}
        if scenario.auth:
            headers["Authorization"] = AUTH
        lines = [
            f"local method = {lua_string(scenario.method)}",
            "local paths = {" + ", ".join(lua_string(p) for p in scenario.paths) + "}",
            "local bodies = " + ("{" + ", ".join(lua_string(b) for b in scenario.bodies) + "}"
                                 if scenario.bodies else "nil"),
            f"local counter = {'true' if scenario.counter else 'false'}",
            "local headers = {" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}"
                                            for k, v in headers.items()) + "}",
            """
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local i = 0
local cache = {}

local function body_at(k)
  if bodies == nil then return nil end
  return bodies[(k % #bodies) + 1]
end

function init(args)
  local n = #paths
  if bodies ~= nil and #bodies > n then n = #bodies end
  for k = 0, n - 1 do
    cache[k + 1] = wrk.format(method, paths[(k % #paths) + 1], headers, body_at(k))
  end
end

function request()
  i = i + 1
  if counter then
    local body = (string.gsub(body_at(i), "{n}", tostring(tid) .. "x" .. tostring(i)))
    return wrk.format(method, paths[(i % #paths) + 1], headers, body)
  end
  return cache[(i % #cache) + 1]
end
"""]
        self.scripts += 1
        path = os.path.join(self.tmp, f"scenario-{self.scripts}.lua")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        return path

    def run(self, port, scenario, seconds, script=None):
        script = script or self.script(scenario)
        out = subprocess.run(
            ["wrk", f"-t{self.threads}", f"-c{self.concurrency}", f"-d{seconds:g}s",
             "--timeout", "30s", "--latency", "-s", script, f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        pct = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)", out, re.M))
        errors = 0
        match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        if match:
            errors += int(match.group(1))
        match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                          out)
        if match:
            errors += sum(int(x) for x in match.groups())
        return rps, parse_duration(pct["50"]), parse_duration(pct["99"]), errors


class Run:
    """The outcome of one timed run: successful latencies (sorted), errors, wall time."""

    def __init__(self, latencies, errors, elapsed):
        self.latencies = sorted(latencies)
        self.errors = errors
        self.elapsed = elapsed

    @property
    def rate(self):
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def ms(self, fraction):
        """Nearest-rank percentile of the successful requests, in milliseconds."""
        if not self.latencies:
            return float("nan")
        rank = min(len(self.latencies), max(1, math.ceil(len(self.latencies) * fraction)))
        return 1000 * self.latencies[rank - 1]


def drive(port, seconds, concurrency, make_request, accept, headers):
    """Closed loop for `seconds`: each of `concurrency` threads sends its next request once the
    last is answered. `make_request(n)` gives (method, path, body bytes or None) for the n-th
    request of the run (numbered across threads); `accept(status, data)` judges the answer;
    `headers` go with every request (and a JSON Content-Type with a body)."""
    numbers = itertools.count()
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()
    latencies, errors = [], []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad = [], 0
        while time.monotonic() < stop_at:
            method, path, body = make_request(next(numbers))
            sent = headers if body is None else {**headers, "Content-Type": "application/json"}
            started = time.perf_counter()
            try:
                conn.request(method, path, body, sent)
                response = conn.getresponse()
                data = response.read()
                ok = accept(response.status, data)
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            if ok:
                mine.append(time.perf_counter() - started)
            else:
                bad += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.append(bad)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Run(latencies, sum(errors), time.monotonic() - began)


class PythonGenerator:
    name = "python"

    def __init__(self, concurrency):
        self.concurrency = concurrency

    def describe(self):
        return f"Python threads x{self.concurrency} + http.client (closed loop)"

    def script(self, scenario):
        return None

    def run(self, port, scenario, seconds, script=None):
        def make_request(n):
            body = None
            if scenario.bodies:
                body = scenario.bodies[n % len(scenario.bodies)].replace("{n}", f"x{n}")
            return scenario.method, scenario.paths[n % len(scenario.paths)], body

        run = drive(port, seconds, self.concurrency, make_request,
                    lambda status, data: 200 <= status < 400,
                    {"Authorization": AUTH} if scenario.auth else {})
        return run.rate, run.ms(0.5), run.ms(0.99), run.errors


def check(port, scenario, envelope=True):
    """One request before the load: the scenario must answer 200 (and code 0 for the API)."""
    method, path, body = scenario.first_request()
    if method == "GET":
        status, data = get(port, path, auth=scenario.auth)
    else:
        status, data = post(port, path, body)
    if status != 200:
        raise SystemExit(f"{method} {path} answered {status}: {data[:200]!r}")
    if envelope:
        code = json.loads(data).get("code")
        if code != 0:
            raise SystemExit(f"{method} {path} answered code {code}: {data[:200]!r}")


def summary(runs):
    return {"rps": statistics.median(r[0] for r in runs),
            "p50": statistics.median(r[1] for r in runs),
            "p99": statistics.median(r[2] for r in runs),
            "errors": sum(r[3] for r in runs),
            "runs": [r[0] for r in runs]}


FLOOR_SCENARIO = Scenario("GET", [f"/api/v3/connections/?_page=1&_limit={LIMIT}"])


FLOOR_MODELS = ("sync", "gthread")  # bench/floor_app.py under each (see start_floors)


def measure(gen, port, scenario, args, envelope=True, floors=None):
    """Warm up 1 s, then the median of `repeats` runs: dict(rps, p50, p99, errors, runs).

    With `floors` ({model: port}), each run has a run against one floor before it and one
    against the other after it (same length, same generator), the order swapped every
    repeat, so every figure has both floors measured in the same minute, before and after
    it: returns (ours, {model: floor figure}). The machine is shared; pairing keeps a slow
    minute from passing for a slow service.
    """
    check(port, scenario, envelope)
    script = gen.script(scenario)
    gen.run(port, scenario, 1, script)
    runs = []
    floor_runs = {model: [] for model in floors or ()}
    floor_script = gen.script(FLOOR_SCENARIO) if floors else None

    def run_floor(model):
        floor_runs[model].append(gen.run(floors[model], FLOOR_SCENARIO, args.seconds,
                                          floor_script))

    for k in range(args.repeats):
        order = FLOOR_MODELS[k % 2:] + FLOOR_MODELS[:k % 2]  # sync first, then gthread first
        if floors:
            run_floor(order[0])
        runs.append(gen.run(port, scenario, args.seconds, script))
        if floors:
            run_floor(order[1])
    if floors:
        return summary(runs), {model: summary(r) for model, r in floor_runs.items()}
    return summary(runs)


def better_floor(floors):
    """The faster of the floors measured with one figure (its req/s divides ours)."""
    model = max(floors, key=lambda m: floors[m]["rps"])
    return dict(floors[model], model=model)


def server_time(port, path, calls):
    """The large-page figure: (median ms of `path`, median ms of GET /status, rows), one
    client on one kept-alive connection, the two requests alternating `calls` times each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    times = {"page": [], "status": []}
    rows = None
    try:
        for i in range(calls + 1):  # the first round warms up, untimed
            for kind, target, headers in (("status", "/status", {}),
                                          ("page", path, {"Authorization": AUTH})):
                started = time.perf_counter()
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                data = response.read()
                took = time.perf_counter() - started
                if response.status != 200:
                    raise SystemExit(f"GET {target} answered {response.status}: {data[:200]!r}")
                if kind == "page":
                    rows = len(json.loads(data)["data"])
                if i:
                    times[kind].append(took * 1000)
    finally:
        conn.close()
    return statistics.median(times["page"]), statistics.median(times["status"]), rows


# ---------------------------------------------------------------------------
# The stand-in at one size
# ---------------------------------------------------------------------------


def seed(db_path, size):
    env = child_env(STANDIN_DB=db_path, STANDIN_CLIENTS=size, STANDIN_NODES=1, STANDIN_SEED=42)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "init-db"], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    size_mb = sum(os.path.getsize(db_path + s) for s in ("", "-wal")
                  if os.path.exists(db_path + s)) / 1048576
    return env, seconds, size_mb


def fetch_connections(port, count):
    """The first `count` connection objects, in pages of 10,000."""
    rows, page = [], 1
    while len(rows) < count:
        status, data = get(port, f"/api/v3/connections/?_page={page}&_limit=10000")
        batch = json.loads(data)["data"]
        if status != 200 or not batch:
            break
        rows.extend(batch)
        page += 1
    return rows[:count]


def bench_size(size, args, gen, tmp, state):
    db_path = os.path.join(tmp, f"standin-{size}.db")
    log(f"size {size:,}: seeding")
    env, seed_s, db_mb = seed(db_path, size)
    log(f"size {size:,}: seeded in {seed_s:.1f} s ({db_mb:.0f} MB); cold starts")
    errlog = os.path.join(tmp, f"gunicorn-{size}.log")
    colds = []
    for attempt in range(3):
        proc, port, cold = start_gunicorn("app:app", env, errlog, args.model["workers"])
        colds.append(cold)
        if attempt < 2:
            stop(proc)
    result = {"size": size, "seed_s": seed_s, "db_mb": db_mb, "cold_s": statistics.median(colds),
              "colds": colds, "figures": {}, "floor": {}, "floors": {}}
    try:
        status, data = get(port, f"/api/v3/connections/?_page=1&_limit={LIMIT}")
        first = json.loads(data)
        count = first["meta"]["count"]
        if "floor" not in state:
            state["floor"] = start_floors(data, tmp, args.model)  # the real first page
        floors = {model: f["port"] for model, f in state["floor"].items()}
        last = max(1, -(-count // LIMIT))
        _, data = get(port, f"/api/v3/connections/?_page={last}&_limit={LIMIT}")
        last_rows = json.loads(data)["data"]
        _, data = get(port, f"/api/v3/connections/?_page={max(1, last // 2)}&_limit={LIMIT}")
        middle_rows = json.loads(data)["data"]
        ids = [r["client_id"] for rows in (first["data"], middle_rows, last_rows)
               for r in rows[:10]]
        node = json.loads(get(port, "/api/v3/nodes/")[1])["data"][0]["node"]
        topic = "/test"
        routes = json.loads(get(port, "/api/v3/routes/" + quote(topic, safe=""))[1])["data"]
        if not routes:  # fall back to the first plain subscribed topic
            subs = json.loads(get(port, "/api/v3/subscriptions/?_limit=50")[1])["data"]
            topic = next(s["topic"] for s in subs
                         if "+" not in s["topic"] and "#" not in s["topic"]
                         and not s["topic"].startswith("$"))
        result.update(count=count, last_page=last, topic=topic, node=node)
        sub_ids = [r["client_id"] for r in first["data"][:20]]
        scenarios = {
            "list_first": Scenario("GET", [f"/api/v3/connections/?_page=1&_limit={LIMIT}"]),
            "list_last": Scenario("GET", [f"/api/v3/connections/?_page={last}&_limit={LIMIT}"]),
            "lookup": Scenario("GET", ["/api/v3/connections/" + quote(c, safe="") for c in ids]),
            "node_stats": Scenario("GET", [f"/api/v3/nodes/{quote(node, safe='@')}/stats/"]),
            "nodes": Scenario("GET", ["/api/v3/nodes/"]),
            "publish": Scenario("POST", ["/api/v3/mqtt/publish"], [json.dumps(
                {"topic": topic, "payload": "hello from compare.py", "qos": 1})]),
            "subscribe": Scenario("POST", ["/api/v3/mqtt/subscribe"], [json.dumps(
                {"client_id": c, "topic": "bench/new/{n}", "qos": 1}) for c in sub_ids]),
        }
        for name, scenario in scenarios.items():
            log(f"size {size:,}: {LABELS[name]}")
            ours, both = measure(gen, port, scenario, args, floors=floors)
            result["figures"][name], result["floors"][name] = ours, both
            result["floor"][name] = better_floor(both)
            log(f"  {ours['rps']:.0f} req/s (runs {', '.join(f'{r:.0f}' for r in ours['runs'])})"
                + "".join(f"; floor {m} {f['rps']:.0f} (runs"
                            f" {', '.join(f'{r:.0f}' for r in f['runs'])})"
                            for m, f in both.items()))
        result["rss"] = worker_rss(proc.pid)
        log(f"size {size:,}: large page (GET /api/v3/connections/, no _limit)")
        page_ms, status_ms, rows = server_time(port, "/api/v3/connections/", args.large_calls)
        result["large"] = {"page_ms": page_ms, "status_ms": status_ms, "rows": rows}
        log(f"  {page_ms:.1f} ms per page of {rows:,} rows; /status {status_ms:.2f} ms")
        result["rss_large"] = worker_rss(proc.pid)
        want_peer = "peer_rows" not in state and (count >= args.peer_rows
                                                  or size == args.sizes[-1])
        if want_peer:
            log(f"size {size:,}: taking {min(count, args.peer_rows):,} connections for json-server")
            state["peer_rows"] = fetch_connections(port, min(count, args.peer_rows))
            state["peer_source"] = size
    finally:
        stop(proc)
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(db_path + suffix):
                os.remove(db_path + suffix)
    return result


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------


def start_floors(page, tmp, model):
    """bench/floor_app.py serving `page`, under sync workers and under threaded workers
    with keep-alive, with the stand-in's worker count (and its threads and keep-alive for
    the threaded one); both run to the end: {model: {proc, port, cold_s, bytes}}."""
    page_path = os.path.join(tmp, "floor-page.json")
    with open(page_path, "wb") as f:
        f.write(page)
    flags = {  # gunicorn turns sync into gthread when threads > 1 (gunicorn.conf.py sets 8)
        "sync": ("-k", "sync", "--threads", "1"),
        "gthread": ("-k", "gthread", "--threads", str(model["threads"]),
                    "--keep-alive", str(model["keepalive"])),
    }
    floors = {}
    for name in FLOOR_MODELS:
        # gunicorn.conf.py checks (and seeds) STANDIN_DB before any app starts: a file of its own.
        env = child_env(FLOOR_PAGE=page_path,
                        STANDIN_DB=os.path.join(tmp, f"floor-{name}-standin.db"))
        log(f"floor: starting bench.floor_app under gunicorn -w {model['workers']}"
            f" {' '.join(flags[name])} (kept running, idle between runs)")
        proc, port, cold = start_gunicorn("bench.floor_app:app", env,
                                          os.path.join(tmp, f"gunicorn-floor-{name}.log"),
                                          model["workers"], flags[name])
        floors[name] = {"proc": proc, "port": port, "cold_s": cold, "bytes": len(page),
                        "flags": " ".join(flags[name])}
        _, body = get(port, f"/api/v3/connections/?_page=1&_limit={LIMIT}")
        assert body == page
    return floors


def bench_peer(args, gen, tmp, state):
    rows = state["peer_rows"]
    n = args.peer_rows
    if len(rows) < n:  # cycle the real rows; client ids stay unique
        rows = [dict(r, client_id=f"{r['client_id']}~{k // len(rows)}") if k >= len(rows) else r
                for k, r in ((k, rows[k % len(rows)]) for k in range(n))]
    path = os.path.join(tmp, "db.json")
    with open(path, "w") as f:
        json.dump({"connections": rows}, f, separators=(",", ":"), ensure_ascii=False)
    db_mb = os.path.getsize(path) / 1048576
    port = free_port()
    log(f"json-server: {n:,} connections ({db_mb:.0f} MB db.json)")
    proc = subprocess.Popen([JSON_SERVER, "--quiet", "--host", "127.0.0.1", "--port", str(port),
                             path], cwd=tmp, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        start = time.perf_counter()
        wait_ready(proc, port, "/connections?_page=1&_limit=1")
        cold = time.perf_counter() - start
        last = -(-n // LIMIT)
        figures, floors, both = {}, {}, {}
        for name, page in (("peer_first", 1), ("peer_last", last)):
            status, data = get(port, f"/connections?_page={page}&_limit={LIMIT}")
            assert status == 200 and len(json.loads(data)) > 0, (status, data[:200])
            figures[name], both[name] = measure(gen, port, Scenario(
                "GET", [f"/connections?_page={page}&_limit={LIMIT}"]), args, envelope=False,
                floors={model: f["port"] for model, f in state["floor"].items()})
            floors[name] = better_floor(both[name])
            log(f"  {LABELS[name]} {figures[name]['rps']:.0f} req/s; floor"
                f" {floors[name]['rps']:.0f} ({floors[name]['model']})")
        return {"figures": figures, "floor": floors, "floors": both, "cold_s": cold,
                "rss": [peak_rss_mb(proc.pid)], "rows": n, "source": state["peer_source"]}
    finally:
        stop(proc)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def fmt_size(n):
    return f"{n:,}"


ISSUE_SIZES = (100_000, 1_000_000)  # issue 17 judges its ratios at these sizes
ISSUE_RATIOS = (("list_first", 0.6), ("list_last", 0.5), ("node_stats", 0.7), ("lookup", 0.7))
ISSUE_MAX_FALL = 0.15  # from the smallest size to the largest, no figure falls more
EARLIER_RATIOS = (("list_first", 0.5), ("list_last", 0.4), ("lookup", 0.5), ("node_stats", 0.5),
                  ("nodes", 0.5))


def judged_sizes(results):
    """The results issue 17's ratios are judged at: 100,000 and above, else the largest."""
    return [r for r in results if r["size"] >= min(ISSUE_SIZES)] or results[-1:]


def report(args, gen, results, floor, peer, started):
    small, large = results[0], results[-1]
    cols = [fmt_size(r["size"]) for r in results]
    (b1, b5, b15), (a1, a5, a15) = args.load
    model = args.model
    print(f"emqx-standin side by side: {os.cpu_count()} CPUs, {gen.describe()},"
          f" {args.repeats} x {args.seconds:g} s per figure (median), 1 s warm-up;"
          f" run took {(time.time() - started) / 60:.1f} min;"
          f" load average {b1:.1f} before, {a1:.1f} after")
    print(f"sizes = STANDIN_CLIENTS on 1 node. The stand-in: python -m gunicorn -w"
          f" {model['workers']} (gunicorn.conf.py: {model['worker_class']}, {model['threads']}"
          f" threads, keep-alive {model['keepalive']} s). Floors (bench/floor_app.py), -w"
          f" {model['workers']}: sync = {floor['sync']['flags']} (a new connection per request),"
          f" gthread = {floor['gthread']['flags']}. json-server 0.17 ({peer['rows']:,} rows) on"
          f" node {node_version()}.")
    print("Each run against the stand-in or json-server has a run against one floor before it"
          " and the other after it (same length, same generator, order swapped every repeat);"
          " x = ours / the better of the two floors.")
    print()

    def ratio(r, name):
        return r["figures"][name]["rps"] / r["floor"][name]["rps"]

    def rps_cell(fig, width):
        text = f"{fig['rps']:.0f}"
        if fig["errors"]:
            text += f"[{fig['errors']}]"
        return f"{text:>{width}}"

    def group(fig, floors):
        best = better_floor(floors)
        return (f" {rps_cell(fig, 6)} {floors['sync']['rps']:>5.0f}"
                f" {floors['gthread']['rps']:>5.0f} {fig['rps'] / best['rps']:>4.2f} ")

    names = READ_FIGURES + WRITE_FIGURES
    peer_for = {"list_first": "peer_first", "list_last": "peer_last"}
    width = 25
    print("Throughput, req/s (errors in brackets, if any); sync, gthread: the two floors")
    head1 = f"{'':<18}|" + "|".join(f"{c:^{width}}" for c in ["json-server"] + cols)
    head1 += f"| {'big / small':^15}"
    head2 = f"{'figure':<18}|" + "|".join(
        f" {'req/s':>6} {'sync':>5} {'gthrd':>5} {'x':>4} " for _ in range(len(cols) + 1))
    head2 += f"| {'raw':>6} {'vs floor':>8}"
    print(head1)
    print(head2)
    print("-" * len(head2))
    for name in names:
        if name in peer_for:
            pe = group(peer["figures"][peer_for[name]], peer["floors"][peer_for[name]])
        else:
            pe = " " * width
        row = f"{LABELS[name]:<18}|{pe}|" + "|".join(
            group(r["figures"][name], r["floors"][name]) for r in results)
        raw = large["figures"][name]["rps"] / small["figures"][name]["rps"]
        row += f"| {raw:>6.2f} {ratio(large, name) / ratio(small, name):>8.2f}"
        print(row)
    for m, f in floor.items():
        runs = f["all_runs"]
        print(f"floor {m:<7} runs over the whole benchmark: median {statistics.median(runs):.0f},"
              f" min {min(runs):.0f}, max {max(runs):.0f} req/s ({len(runs)} runs,"
              f" {f['bytes']:,}-byte page)")
    wins = [r["floor"][n]["model"] for r in results for n in names]
    wins += [peer["floor"][n]["model"] for n in peer["floor"]]
    print("the better floor: " + ", ".join(f"{m} {wins.count(m)} times" for m in FLOOR_MODELS)
          + f" of {len(wins)}")
    print()
    print("Latency, ms p50 / p99 (ours; json-server and the better floor paired with it)")
    lw = 15
    head = f"{'figure':<18} {'json-server':>{lw}} {'floor':>{lw}} " + " ".join(
        f"{c:>{lw}}" for c in cols)
    print(head)
    print("-" * len(head))

    def lat(fig):
        return f"{fig['p50']:.1f} / {fig['p99']:.1f}".rjust(lw)

    for name in names:
        pe = lat(peer["figures"][peer_for[name]]) if name in peer_for else " " * lw
        fl = lat(large["floor"][name])
        print(f"{LABELS[name]:<18} {pe} {fl} " + " ".join(
            lat(r["figures"][name]) for r in results))
    print(f"(floor column: the better floor paired with the {fmt_size(large['size'])} figure)")
    print()
    print(f"Large page: GET /api/v3/connections/ without _limit, one client, kept-alive"
          f" connection, median of {args.large_calls}; server time = page - GET /status"
          " (alternating, same connection)")
    head = (f"{'size':>11} {'rows':>8} {'page ms':>9} {'/status ms':>11} {'server ms':>10}"
            f" {'target':>8}")
    print(head)
    print("-" * len(head))
    for r in results:
        lg = r["large"]
        print(f"{fmt_size(r['size']):>11} {lg['rows']:>8,} {lg['page_ms']:>9.1f}"
              f" {lg['status_ms']:>11.2f} {lg['page_ms'] - lg['status_ms']:>10.1f}"
              f" {'< ' + str(LARGE_PAGE_MS):>8}")
    print()
    print("Start, seed, memory")
    head = (f"{'size':>13} {'rows':>11} {'seed s':>7} {'db MB':>7} {'cold start s':>13}"
            f" {'peak RSS per worker MB':>27} {'after the large page':>27}")
    print(head)
    print("-" * len(head))

    def rss_text(values):
        return " / ".join(f"{m:.1f}" for m in values)

    for r in results:
        print(f"{fmt_size(r['size']):>13} {fmt_size(r['count']):>11} {r['seed_s']:>7.1f}"
              f" {r['db_mb']:>7.0f} {r['cold_s']:>13.2f} {rss_text(r['rss']):>27}"
              f" {rss_text(r['rss_large']):>27}")
    for m, f in floor.items():
        print(f"{'floor ' + m:>13} {'':>11} {'':>7} {'':>7} {f['cold_s']:>13.2f}"
              f" {rss_text(f['rss']):>27}")
    print(f"{'json-server':>13} {fmt_size(peer['rows']):>11} {'':>7} {'':>7}"
          f" {peer['cold_s']:>13.2f} {rss_text(peer['rss']):>27}")
    print("(seed: `flask --app app init-db` as a subprocess; cold start: launch to the first 200"
          " on /status, median of 3, existing database (json-server: to its first page);"
          " floors: one start; RSS: VmHWM after the throughput figures, and again after the"
          " large page)")
    print()

    big, little = fmt_size(large["size"]), fmt_size(small["size"])
    sections = {"Issue 17 (Cheap requests)": [], "Earlier targets (Fast at any size)": []}
    issue, earlier = sections.values()
    for r in judged_sizes(results):
        at = fmt_size(r["size"])
        for name, need in ISSUE_RATIOS:
            issue.append((ratio(r, name) >= need, f"{LABELS[name]} @{at} >= {need}x floor",
                          f"{ratio(r, name):.3f}x"))
    def fall(name, most):
        """The figure `name` from the smallest size to the largest, against the floor."""
        norm = ratio(large, name) / ratio(small, name)
        raw = large["figures"][name]["rps"] / small["figures"][name]["rps"]
        return (norm >= 1 - most, f"{LABELS[name]} falls <= {most:.0%} {little} -> {big}",
                f"{norm:.3f}x vs floor (raw {raw:.3f}x)")

    issue += [fall(name, ISSUE_MAX_FALL) for name in names]
    for r in judged_sizes(results):
        server_ms = r["large"]["page_ms"] - r["large"]["status_ms"]
        issue.append((server_ms < LARGE_PAGE_MS,
                      f"page of {r['large']['rows']:,} (no _limit) @{fmt_size(r['size'])}"
                      f" < {LARGE_PAGE_MS} ms server time", f"{server_ms:.1f} ms"))

    for name, need in EARLIER_RATIOS:
        earlier.append((ratio(large, name) >= need, f"{LABELS[name]} @{big} >= {need}x floor",
                        f"{ratio(large, name):.3f}x"))
    earlier += [fall(name, 0.2) for name in READ_FIGURES]
    near = min(results, key=lambda r: abs(r["size"] - peer["rows"]))
    pf, pfl = peer["figures"]["peer_first"], peer["floor"]["peer_first"]
    raw = near["figures"]["list_first"]["rps"] / pf["rps"]
    norm = ratio(near, "list_first") / (pf["rps"] / pfl["rps"])
    earlier.append((norm >= 30, f"list first page @{fmt_size(near['size'])} >= 30x json-server"
                    f" ({fmt_size(peer['rows'])} rows)", f"{norm:.1f}x vs floor (raw {raw:.1f}x)"))
    worst = max(results, key=lambda r: r["cold_s"])
    earlier.append((worst["cold_s"] < 1, "cold start on an existing DB < 1 s (every size)",
                    f"{worst['cold_s']:.2f} s max (@{fmt_size(worst['size'])})"))
    earlier.append((large["seed_s"] < 30, f"create + seed @{big} < 30 s",
                    f"{large['seed_s']:.1f} s"))
    rss = max((m, r["size"]) for r in results for m in r["rss"])
    earlier.append((rss[0] < 80, "peak RSS per worker < 80 MB (every size)",
                    f"{rss[0]:.1f} MB max (@{fmt_size(rss[1])}; before the large page)"))
    for name in WRITE_FIGURES:
        norm = ratio(large, name) / ratio(small, name)
        raw = large["figures"][name]["rps"] / small["figures"][name]["rps"]
        earlier.append((norm >= 0.5, f"{LABELS[name]} @{big} >= 0.5x @{little}",
                        f"{norm:.3f}x vs floor (raw {raw:.3f}x)"))
    print("Targets (ratios of req/s against the better floor; 'vs floor' divides each side by"
          " its own floor first)")
    if [r["size"] for r in judged_sizes(results)] != [s for s in ISSUE_SIZES
                                                      if s in args.sizes]:
        print(f"  (issue 17 names {' and '.join(fmt_size(s) for s in ISSUE_SIZES)}; this run"
              f" judges @{', '.join(fmt_size(r['size']) for r in judged_sizes(results))})")
    total = failed = 0
    for title, lines in sections.items():
        print(f"  {title}")
        for ok, text, value in lines:
            print(f"    {'met   ' if ok else 'MISSED'}  {text:<58} {value}")
        total += len(lines)
        failed += sum(not ok for ok, _, _ in lines)
    print(f"{total - failed} of {total} targets met")


def node_version():
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000",
                        help="STANDIN_CLIENTS values, comma-separated (smallest first)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: sizes 1000,20000, 2 x 1 s per figure")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers of the stand-in and the floors (default: the"
                        " stand-in's default from gunicorn.conf.py)")
    parser.add_argument("--large-calls", type=int, default=LARGE_PAGE_CALLS,
                        help="large page: timed requests per size (and as many of /status)")
    parser.add_argument("--peer-rows", type=int, default=100_000)
    parser.add_argument("--tmpdir", default=None, help="where the databases go (default: $TMPDIR)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.seconds, args.repeats = "1000,20000", 1, 2
    args.sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    if not os.path.exists(JSON_SERVER):
        raise SystemExit(f"{JSON_SERVER} is missing: run `npm install` in {BENCH}")
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    if args.generator == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")

    started = time.time()
    args.model = standin_worker_model()
    if args.workers:
        args.model["workers"] = args.workers
    tmp = tempfile.mkdtemp(prefix="standin-compare-", dir=args.tmpdir)
    need_mb = max(args.sizes) * 800 / 1048576 + 200
    free_mb = shutil.disk_usage(tmp).free / 1048576
    if free_mb < need_mb:
        shutil.rmtree(tmp)
        raise SystemExit(f"{tmp}: {free_mb:.0f} MB free, about {need_mb:.0f} MB needed")
    gen = WrkGenerator(tmp, args.concurrency, args.wrk_threads) if use_wrk \
        else PythonGenerator(args.concurrency)
    log(f"temporary directory {tmp}; generator {gen.describe()}; sqlite {sqlite3.sqlite_version};"
        f" worker model {args.model}")
    state = {}
    load_before = os.getloadavg()
    try:
        results = [bench_size(size, args, gen, tmp, state) for size in args.sizes]
        peer = bench_peer(args, gen, tmp, state)
        floor = state["floor"]
        for model, f in floor.items():
            f["rss"] = worker_rss(f["proc"].pid)
            f["all_runs"] = [x for r in results + [peer] for both in r["floors"].values()
                             for x in both[model]["runs"]]
    finally:
        for f in state.get("floor", {}).values():
            stop(f["proc"])
        shutil.rmtree(tmp, ignore_errors=True)
    args.load = (load_before, os.getloadavg())
    report(args, gen, results, floor, peer, started)


if __name__ == "__main__":
    main()
