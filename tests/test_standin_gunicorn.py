"""The controls under real gunicorn (2 sync workers, one SQLite file): a fault and a reset
set through one worker take effect in both at once; the journal bound holds across workers.

Bursts go over fresh connections (one requests.get each), so both workers take part; the
access log (`<pid> <request line> <status>`) tells them apart.
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
START_TIMEOUT = 10
JOURNAL_SIZE = 25
TEAPOT = {"status": 429, "code": 429, "message": "injected in every worker"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("standin-gunicorn")
    port = _free_port()
    access = tmp / "access.log"
    log = tmp / "gunicorn.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    env.update(STANDIN_DB=str(tmp / "standin.db"), STANDIN_SEED="42", STANDIN_NODES="1",
               STANDIN_CLIENTS="20", STANDIN_JOURNAL_SIZE=str(JOURNAL_SIZE),
               PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
           "--worker-class", "sync", "--timeout", "30", "--graceful-timeout", "2",
           "--access-logfile", str(access), "--access-logformat", "%(p)s %(r)s %(s)s",
           "app:app"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

    def stop():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    request.addfinalizer(stop)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{log.read_text()}")
        try:
            requests.get(base + "/status", timeout=2)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text()}")
            time.sleep(0.05)
    # Both workers open the (now seeded) database.
    burst(base, ["/api/v3/apps/"] * 40)
    return {"base": base, "access": access}


def get(base, path, auth=AUTH):
    return requests.get(base + path, auth=auth, timeout=10)


def send(base, method, path, body=None):
    r = requests.request(method, base + path, json=body, auth=AUTH, timeout=10)
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    assert r.json()["code"] == 0, r.json()
    return r.json()


def burst(base, paths, workers=20):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: get(base, p), paths))


def pids_for(access, fragment, status):
    pids = set()
    for line in access.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and fragment in line and parts[-1] == str(status):
            pids.add(parts[0])
    return pids


def test_fault_applies_in_both_workers(server):
    base, access = server["base"], server["access"]
    send(base, "PUT", "/_standin/faults",
         {"error_rate": 1, "error": TEAPOT, "routes": ["list_brokers"]})
    pids = set()
    for _ in range(5):
        responses = burst(base, ["/api/v3/brokers/"] * 40)
        assert [r.status_code for r in responses] == [429] * 40
        assert all(r.json() == {"code": 429, "message": "injected in every worker"}
                   for r in responses)
        pids = pids_for(access, "/api/v3/brokers/", 429)
        if len(pids) == 2:
            break
    assert len(pids) == 2, pids
    # Only that route: the others answer in both workers.
    others = burst(base, ["/api/v3/nodes/", "/api/v3/connections/"] * 20)
    assert [r.status_code for r in others] == [200] * 40
    # Cleared through one worker, gone in both.
    send(base, "DELETE", "/_standin/faults")
    responses = burst(base, ["/api/v3/brokers/"] * 40)
    assert [r.status_code for r in responses] == [200] * 40


def test_reset_applies_in_both_workers(server):
    base, access = server["base"], server["access"]
    before = get(base, "/api/v3/connections/?_limit=100").json()
    assert before["meta"]["count"] == 20
    # Change the world, then reset it to another one through one worker.
    send(base, "POST", "/api/v3/banned/", {"who": "gunicorn-ban", "as": "client_id"})
    answer = send(base, "POST", "/_standin/reset", {"seed": 5, "nodes": 2, "clients": 7})
    assert answer["data"] == {"seed": 5, "nodes": 2, "clients": 7}

    paths = ["/api/v3/connections/?_limit=100", "/api/v3/nodes/", "/api/v3/banned/",
             "/api/v3/stats/"] * 10
    responses = burst(base, paths)
    assert [r.status_code for r in responses] == [200] * 40
    by_path = {}
    for path, r in zip(paths, responses):
        by_path.setdefault(path, []).append(r.json())
    conns = by_path["/api/v3/connections/?_limit=100"]
    assert all(c["meta"]["count"] == 14 and len(c["data"]) == 14 for c in conns)
    assert len({str(c) for c in conns}) == 1
    for nodes in by_path["/api/v3/nodes/"]:
        assert [n["name"] for n in nodes["data"]] == ["emqx@127.0.0.1", "emqx@127.0.0.2"]
    for banned in by_path["/api/v3/banned/"]:
        assert "gunicorn-ban" not in [b["who"] for b in banned["data"]]
    for stats in by_path["/api/v3/stats/"]:
        assert [s["connections/count"] for s in stats["data"]] == [7, 7]
    assert len(pids_for(access, "/api/v3/connections/?_limit=100", 200)) == 2
    assert get(base, "/_standin").json()["data"]["settings"] == {
        "seed": 5, "nodes": 2, "clients": 7}


def test_journal_bound_holds_across_workers(server):
    base = server["base"]
    send(base, "DELETE", "/_standin/journal")
    responses = burst(base, ["/api/v3/brokers/"] * 60)
    assert [r.status_code for r in responses] == [200] * 60
    entries = get(base, "/_standin/journal?limit=1000").json()["data"]
    assert len(entries) == JOURNAL_SIZE
    assert {e["route"] for e in entries} == {"list_brokers"}


def test_reset_is_atomic_for_concurrent_readers(server):
    """Readers in both workers see the old world or the new one, never a mix."""
    base = server["base"]
    worlds = ({"seed": 1, "nodes": 1, "clients": 12}, {"seed": 2, "nodes": 2, "clients": 5})
    send(base, "POST", "/_standin/reset", worlds[0])
    with ThreadPoolExecutor(max_workers=12) as pool:
        reads = [pool.submit(get, base, "/api/v3/connections/?_limit=100") for _ in range(60)]
        started = time.perf_counter()
        for i in range(6):
            send(base, "POST", "/_standin/reset", worlds[(i + 1) % 2])
        elapsed = time.perf_counter() - started
        answers = [f.result() for f in reads]
    assert [r.status_code for r in answers] == [200] * 60
    for r in answers:
        body = r.json()
        count = body["meta"]["count"]
        assert count in (12, 10), count
        assert len(body["data"]) == count
        nodes = {c["node"] for c in body["data"]}
        assert nodes == ({"emqx@127.0.0.1"} if count == 12
                         else {"emqx@127.0.0.1", "emqx@127.0.0.2"})
    # Six resets of a small world: fast.
    assert elapsed < 6, elapsed
