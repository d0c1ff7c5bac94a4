"""pytest fixtures for code that talks to EMQ X 3.0's management API: a stand-in for the
session, a fresh world of it for every test.

Installed with the package, pytest finds them by itself (the `pytest11` entry point);
from a checkout, add `pytest_plugins = ["standin_pytest"]` to a conftest.py.

    def test_kickout(emqx_world):
        emqx_world.post("/_standin/clients", json={"client_id": "dev-1"})
        assert emqx_world.delete("/api/v3/connections/dev-1").json() == {"code": 0}

- `emqx_standin` (session): starts `emqx-standin serve` on a free port of 127.0.0.1 in a
  subprocess, waits for it to answer, stops it at the end. With EMQX_STANDIN_URL set, uses
  that running stand-in instead. Its `.url` is the base URL; `.client()` a requests session.
- `emqx_world` (each test): a new world of the stand-in (its own state, journal, faults),
  removed after the test; a requests session whose relative URLs (`/api/v3/...`,
  `/_standin/...`) go to that world, logged in as the dashboard user admin/public. Its
  `.base` is the world's full URL (for the code under test).
"""

import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
AUTH = ("admin", "public")
_worlds = itertools.count(1)


def _launcher():
    """The emqx-standin command's file: __main__.py in a checkout, main.py in the wheel."""
    checkout = os.path.join(HERE, "__main__.py")
    return checkout if os.path.exists(checkout) else os.path.join(HERE, "main.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Standin:
    """A stand-in served by a subprocess (or one already running at `url`)."""

    def __init__(self, url=None, workers=2, clients=20):
        self.url, self.proc, self.folder = url, None, None
        self.workers, self.clients = workers, clients

    def start(self, timeout=30):
        import requests

        if self.url is None:
            port = _free_port()
            self.folder = tempfile.mkdtemp(prefix="emqx-standin-")
            self.url = f"http://127.0.0.1:{port}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
            self.log = open(os.path.join(self.folder, "server.log"), "wb")
            self.proc = subprocess.Popen(
                [sys.executable, _launcher(), "serve", "--port",
                 str(port), "--workers", str(self.workers), "--clients", str(self.clients),
                 "--db", os.path.join(self.folder, "standin.db")],
                cwd=self.folder, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"emqx-standin exited with {self.proc.returncode}")
            try:
                if requests.get(f"{self.url}/status", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"emqx-standin did not answer {self.url}/status in time")
            time.sleep(0.1)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()

    def client(self, base=None):
        """A requests session logged in as admin/public; relative URLs go to `base` (the
        stand-in's root by default)."""
        import requests

        class Client(requests.Session):
            def request(self, method, url, *args, **kwargs):
                if url.startswith("/"):
                    url = self.base + url
                kwargs.setdefault("timeout", 30)
                return super().request(method, url, *args, **kwargs)

        session = Client()
        session.base = base or self.url
        session.auth = AUTH
        return session


@pytest.fixture(scope="session")
def emqx_standin():
    """A running stand-in for the session (EMQX_STANDIN_URL: one already running)."""
    standin = Standin(os.environ.get("EMQX_STANDIN_URL")).start()
    yield standin
    standin.stop()


@pytest.fixture
def emqx_world(emqx_standin):
    """A fresh world for this test, removed after it; a session bound to it."""
    admin = emqx_standin.client()
    name = f"t{os.getpid()}-{next(_worlds)}"
    made = admin.post("/_standin/worlds", json={"name": name}).json()
    if made.get("code") != 0:
        raise RuntimeError(f"could not create a world: {made}")
    world = emqx_standin.client(emqx_standin.url + made["data"]["base"])
    yield world
    world.close()
    admin.delete(f"/_standin/worlds/{name}")
    admin.close()
