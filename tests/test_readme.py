"""The README is the user's manual: what it shows must work as printed.

- Its shell blocks marked `<!-- runnable -->` run, in order, against a fresh server (the
  port swapped for the test's) and from this checkout.
- Its first command, run in a copy of the checkout, installs the server and serves the API
  on 127.0.0.1; the package, built and installed in a new virtual environment, serves from
  another directory.
- Its compose block is docker-compose.yml, and its Testcontainers example imports cleanly
  (Docker does not run here, so it is not run).
- It names no file that a checkout does not have.
"""

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from live import free_port
from live import LiveServer
from live import ROOT

README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"(?:<!-- (?P<mark>[\w.-]+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
BIN = Path(sys.executable).parent  # what the README calls .venv/bin


def blocks(mark=None, lang=None):
    return [m["body"] for m in BLOCK.finditer(README)
            if (mark is None or m["mark"] == mark) and (lang is None or m["lang"] == lang)]


def tracked_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.split()


@pytest.mark.live
def test_runnable_blocks_run_as_printed(tmp_path):
    runnable = blocks("runnable")
    assert len(runnable) >= 10
    with LiveServer(tmp_path / "standin.db", workers=2, clients=50) as server:
        prelude = ("set -euo pipefail\n"
                   # Any HTTP error fails the block; business errors are HTTP 200.
                   "curl() { command curl -sS --fail-with-body \"$@\"; echo; }\n")
        for body in runnable:
            script = (body.replace("127.0.0.1:8080", f"127.0.0.1:{server.port}")
                      .replace(".venv/bin/", f"{BIN}/")
                      .replace("/tmp/small.db", str(tmp_path / "small.db")))
            out = subprocess.run(["bash", "-c", prelude + script], cwd=ROOT, timeout=120,
                                 capture_output=True, text=True)
            assert out.returncode == 0, (body, out.stdout[-2000:], out.stderr[-2000:])
            assert "Traceback" not in out.stdout + out.stderr, body
        assert "[ERROR]" not in server.log_text()


def _serve_until_answered(cmd, cwd, env, port, timeout):
    """Run `cmd` (which ends by serving on `port`); seconds until the API answered."""
    started = time.monotonic()
    log = Path(cwd).parent / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/v3/brokers/",
                                 auth=("admin", "public"), timeout=1)
                if r.status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            assert time.monotonic() - started < timeout, "not serving in time"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.live
def test_first_command_installs_and_serves_from_a_fresh_copy(tmp_path):
    """The quick start, as printed, in a copy of what a clone holds."""
    first = blocks(lang="sh")[0].strip()
    assert first.startswith("python3 -m venv .venv") and "serve" in first
    clone = tmp_path / "clone"
    for name in tracked_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STANDIN_", "VIRTUAL_ENV", "PYTHON"))}
    env["PORT"] = str(port)
    took = _serve_until_answered(["bash", "-c", first], clone, env, port, timeout=120)
    print(f"\nquick start: installed and serving in {took:.1f} s")
    installed = subprocess.run([str(clone / ".venv/bin/pip"), "list", "--format=freeze"],
                               capture_output=True, text=True).stdout
    assert "pytest" not in installed and "schemathesis" not in installed
    assert (clone / "standin.db").exists()


@pytest.mark.live
def test_package_serves_from_another_directory(tmp_path):
    """pip install of the built wheel into a new environment, then emqx-standin serve in a
    directory that holds an app.py of its own (never taken instead of the stand-in's)."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True,
                   capture_output=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install",
                    "-q", *map(str, wheels.glob("*.whl"))], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "app.py").write_text("raise SystemExit('the wrong app.py')\n")
    script = venv / "bin/emqx-standin"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("emqx-standin 0.")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    _serve_until_answered([str(script), "serve", "--port", str(port), "--clients", "10"],
                          elsewhere, env, port, timeout=60)
    assert (elsewhere / "standin.db").exists()


@pytest.mark.live
def test_pytest_example_runs_as_printed(tmp_path):
    """The README's pytest example, saved as the file it names and run by pytest in a
    folder of its own: the fixtures come with the installed package."""
    (example,) = blocks("pytest-example")
    (tmp_path / "test_with_standin.py").write_text(example)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-W", "error", "test_with_standin.py"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 passed" in out.stdout


def test_compose_block_is_the_file():
    assert blocks("docker-compose.yml") == [(ROOT / "docker-compose.yml").read_text()]


def test_testcontainers_example_imports_cleanly():
    """Imported (warnings are errors here), not run: no Docker engine."""
    (example,) = blocks("testcontainers")
    namespace = {}
    exec(compile(example, "README-testcontainers", "exec"), namespace)
    assert callable(namespace["standin_container"]) and callable(namespace["test_brokers_answer"])
    strategy = namespace["HttpWaitStrategy"](8080, "/_standin/ready").for_status_code(200)
    assert strategy is not None
    names = {node.attr for node in ast.walk(ast.parse(example)) if isinstance(node, ast.Attribute)}
    for method in names & {"with_exposed_ports", "with_env", "waiting_for",
                           "get_container_host_ip", "get_exposed_port"}:
        assert hasattr(namespace["DockerContainer"], method), method


def test_names_no_file_a_checkout_lacks():
    files = set(tracked_files())
    folders = {str(Path(f).parent) for f in files} | {"."}
    made_at_run_time = {"standin.db", "standin-journal.db", ".venv", "bench/node_modules",
                        "conftest.py"}  # (and the user's own conftest.py)
    named = set(re.findall(r"`((?:[\w.-]+/)*[\w.-]+\.(?:py|sql|json|txt|toml|yml|md|png|html|"
                           r"js|css|ini|db))`", README))
    named |= set(re.findall(r"\]\(((?:[\w.-]+/)*[\w.-]+)\)", README))  # links
    missing = sorted(n for n in named
                     if n not in files and n.rstrip("/") not in folders
                     and n not in made_at_run_time and not n.startswith(("/", "http")))
    assert not missing, missing
