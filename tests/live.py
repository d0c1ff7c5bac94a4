"""A real gunicorn serving the stand-in, for the tests that need one (plain functions and one
small class, no fixtures: each module keeps its own fixture and its own settings).

    with LiveServer(tmp / "standin.db", workers=2, clients=20) as server:
        requests.get(server.url + "/status")

The server runs `python -m gunicorn -w N -b 127.0.0.1:PORT [args] app:app` in the
repository, on a free localhost port, with STANDIN_DB and the pinned cluster settings
(seed 42, one node) in an environment cleared of every other STANDIN_* variable; its output
(stdout and stderr) is appended to `log_path`.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
AUTH = ("admin", "public")
PID_ACCESS_FORMAT = "%(p)s %(r)s %(s)s"  # access-log lines `<worker pid> <request line> <status>`


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    """The child pids of `pid` (for a gunicorn master: its workers); empty once it is gone."""
    out = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    return out


def alive(pid):
    """Whether `pid` runs (a zombie does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class LiveServer:
    """One gunicorn master on `db_path`; `.start()`, `.wait_ready()`, `.stop()`, or `with`.

    - `clients`: STANDIN_CLIENTS; `env`: further variables (e.g. STANDIN_JOURNAL_SIZE).
    - `args`: gunicorn options between the bind address and `app:app`.
    - `ready_path` / `ready_auth`: what `wait_ready` polls until any non-5xx answer comes.
    - `stop_signal`: SIGTERM (graceful) or SIGINT (quick); SIGKILL if it lingers.
    """

    def __init__(self, db_path, workers=2, env=None, log_path=None, *, clients=20, args=(),
                 port=None, ready_path="/status", ready_auth=None, start_timeout=15,
                 poll=0.05, stop_signal=signal.SIGTERM, stop_timeout=10):
        self.db = Path(db_path)
        self.workers = workers
        self.log_path = Path(log_path) if log_path else self.db.with_name("gunicorn.log")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
        self.env.update(STANDIN_DB=str(self.db), STANDIN_SEED="42", STANDIN_NODES="1",
                        STANDIN_CLIENTS=str(clients), PYTHONUNBUFFERED="1")
        self.env.update({k: str(v) for k, v in (env or {}).items()})
        self.cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers),
                    "-b", f"127.0.0.1:{self.port}", *args, "app:app"]
        self.ready_path, self.ready_auth = ready_path, ready_auth
        self.start_timeout, self.poll = start_timeout, poll
        self.stop_signal, self.stop_timeout = stop_signal, stop_timeout
        self.proc = None
        self.started_at = None
        self.killed_at = None
        self.seen_workers = set()

    # --- running ---

    def start(self):
        self.started_at = time.monotonic()
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def wait_ready(self, timeout=None):
        """Poll `ready_path` until a worker answers (bounded); the seconds since `start()`."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = self.started_at + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                r = requests.get(self.url + self.ready_path, auth=self.ready_auth, timeout=2)
                if r.status_code < 500:
                    return time.monotonic() - self.started_at
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not answer {self.ready_path} within {timeout} s:\n"
                            f"{self.log_text()}")
            time.sleep(self.poll)

    def worker_pids(self):
        """The master's workers right now (each one seen is remembered for `stop`)."""
        pids = children(self.proc.pid)
        self.seen_workers |= pids
        return pids

    def wait_workers(self, timeout=None):
        """Wait (bounded) until every worker has been forked; returns their pids."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while len(self.worker_pids()) < self.workers and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.worker_pids()

    def stop(self):
        """`stop_signal`, then SIGKILL if the master lingers; always reaped. Any worker seen
        that outlived its master is killed too."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.seen_workers:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def kill_all(self, timeout=10):
        """SIGKILL the master first (no respawning), then every worker it had or was seen
        with; waits (bounded) until they are gone. Returns the worker pids killed;
        `killed_at` is the monotonic time the last signal was sent."""
        everyone = self.worker_pids() | self.seen_workers
        os.kill(self.proc.pid, signal.SIGKILL)
        for pid in everyone:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.killed_at = time.monotonic()
        self.proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while any(alive(pid) for pid in everyone) and time.monotonic() < deadline:
            time.sleep(0.02)
        return everyone

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def __enter__(self):
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


# --- HTTP over requests, one fresh connection a call ---


def request(base, method, path, body=None, auth=AUTH, timeout=10):
    """`method base+path` with an optional JSON body; the response, unchecked."""
    return requests.request(method, base + path, json=body, auth=auth, timeout=timeout)


def get(base, path, auth=AUTH):
    return request(base, "GET", path, auth=auth)


def send(base, method, path, body=None, auth=AUTH):
    """A request that must answer HTTP 200 with {"code": 0, ...}; returns the parsed body."""
    r = request(base, method, path, body, auth=auth)
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    body = r.json()
    assert body["code"] == 0, (method, path, body)
    return body


def burst(base, paths, workers=16, auth=AUTH):
    """GET every path at once from `workers` threads; the responses in order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: get(base, p, auth=auth), paths))
