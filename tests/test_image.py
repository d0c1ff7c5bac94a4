"""The Docker image, run the way the image runs it, without Docker (no engine runs here).

The test reads the Dockerfile and does what the image does:
- a virtual environment of Debian's Python 3.11 with exactly requirements-lock.txt installed
  (the image: python:3.11-slim, `pip install -r requirements-lock.txt`);
- the files its COPY lines name, in a folder standing for WORKDIR (/app): owned by root and
  not writable, and HOME points there (the image's user has /app as its home);
- a folder standing for the volume /data, owned by the image's user;
- the ENV lines as environment (with /app and /data mapped to those folders);
- its CMD, run as its USER (uid 10001) when the tests run as root, from WORKDIR.

Checked: no ERROR line in the log, the HEALTHCHECK's own command succeeds, /status says
running, the API answers, SIGTERM stops it within gunicorn's grace period, and what was
written before the stop is there after a restart. A second instance run by the same user
beside it logs no error either (gunicorn's control socket is off).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from live import free_port
from live import ROOT

pytestmark = pytest.mark.live

DEBIAN_PYTHON = "/usr/bin/python3"
AUTH = ("admin", "public")
GRACE = 10  # gunicorn.conf.py graceful_timeout


def dockerfile():
    """The Dockerfile's instructions as (KEYWORD, argument text), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def image_spec():
    spec = {"env": {}, "copy": [], "workdir": "/", "user": None, "cmd": None, "health": None}
    for keyword, rest in dockerfile():
        if keyword == "ENV":
            for name, value in re.findall(r'(\w+)=("[^"]*"|\S+)', rest):
                spec["env"][name] = value.strip('"')
        elif keyword == "WORKDIR":
            spec["workdir"] = rest
        elif keyword == "COPY":
            *sources, dest = rest.split()
            spec["copy"].append((sources, dest))
        elif keyword == "USER":
            spec["user"] = int(rest.split(":")[0])
        elif keyword == "CMD":
            spec["cmd"] = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            spec["health"] = json.loads(rest.split(" CMD ", 1)[1])
    return spec


@pytest.fixture(scope="module")
def image():
    """The image's files, environment and Python, laid out in a temporary folder that the
    image's user can reach (pytest's own temporary folders are private to root)."""
    if not os.access(DEBIAN_PYTHON, os.X_OK):
        pytest.skip(f"{DEBIAN_PYTHON} is missing")
    spec = image_spec()
    base = Path(tempfile.mkdtemp(prefix="standin-image-"))
    base.chmod(0o755)
    venv = base / "venv"
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                          "install", "-q", "--disable-pip-version-check", "-r",
                          str(ROOT / "requirements-lock.txt")], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    app_dir = base / "app"
    app_dir.mkdir()
    for sources, dest in spec["copy"]:  # destinations relative to WORKDIR
        target = app_dir / dest
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target / Path(source).name)
    for path in [app_dir, *app_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield {"spec": spec, "base": base, "venv": venv, "app": app_dir}
    shutil.rmtree(base, ignore_errors=True)


class Container:
    """One run of the image's CMD: its own data folder and port."""

    def __init__(self, image, data, port):
        spec = image["spec"]
        self.image, self.data, self.port = image, data, port
        self.env = {"PATH": f"{image['venv'] / 'bin'}:/usr/bin:/bin", "HOME": str(image["app"]),
                    "LANG": "C.UTF-8"}
        for name, value in spec["env"].items():
            self.env[name] = value.replace("/data", str(data)).replace(
                spec["workdir"], str(image["app"]))
        self.env["PORT"] = str(port)
        self.user = spec["user"] if os.geteuid() == 0 else None
        self.log = data.parent / f"log-{port}.txt"
        self.proc = None

    def _as_user(self):
        if self.user is not None:
            os.setgid(self.user)
            os.setuid(self.user)

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.image["spec"]["cmd"], cwd=self.image["app"],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=self._as_user)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.text()
            try:
                if requests.get(self.url("/_standin/ready"), timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.1)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def healthcheck(self):
        return subprocess.run(self.image["spec"]["health"], cwd=self.image["app"], env=self.env,
                              preexec_fn=self._as_user, capture_output=True, timeout=10)

    def stop(self):
        """SIGTERM, as `docker stop` sends it; the seconds it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=GRACE + 5)
        return time.monotonic() - started

    def text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def data_folder(image, name):
    data = image["base"] / name
    data.mkdir()
    if os.geteuid() == 0:
        os.chown(data, image["spec"]["user"], image["spec"]["user"])
    return data


def test_image_starts_serves_stops_cleanly_and_keeps_its_data(image):
    data = data_folder(image, "data")
    files = sorted(image["app"].rglob("*"))
    port = free_port()
    first = Container(image, data, port).start()
    other = Container(image, data_folder(image, "data-2"), free_port()).start()
    try:
        assert first.healthcheck().returncode == 0
        status = requests.get(first.url("/status"), timeout=5).text
        assert status == "Node emqx@127.0.0.1 is started\nemqx is running"
        assert requests.get(first.url("/api/v3/brokers/"), auth=AUTH, timeout=5).json()["code"] == 0
        made = requests.post(first.url("/api/v3/banned/"), auth=AUTH, timeout=5,
                             json={"who": "kept-after-stop", "as": "client_id"}).json()
        assert made["code"] == 0
        # A stopped node is a test's business: the health check stays green.
        requests.put(first.url("/_standin/nodes/emqx@127.0.0.1"), auth=AUTH, timeout=5,
                     json={"node_status": "Stopped"})
        assert first.healthcheck().returncode == 0
    finally:
        took = first.stop()
        other.stop()
    assert took < GRACE, took
    second = Container(image, data, port).start()
    try:
        bans = requests.get(second.url("/api/v3/banned/"), auth=AUTH, timeout=5).json()["data"]
        assert "kept-after-stop" in {b["who"] for b in bans}
    finally:
        second.stop()
    for container in (first, other, second):
        errors = [line for line in container.text().splitlines()
                  if "[ERROR]" in line or "Traceback" in line]
        assert not errors, container.text()
    if os.geteuid() == 0:
        assert os.stat(data / "standin.db").st_uid == image["spec"]["user"]
    assert sorted(image["app"].rglob("*")) == files  # nothing written next to the code
