"""The controls under real gunicorn (2 workers, sync and threaded, one SQLite file): a fault,
a reset and a credential change made through one worker take effect in both at once; the
journal bound holds across workers.

Bursts go over fresh connections (one requests.get each), so both workers take part; the
access log (`<pid> <request line> <status>`) tells them apart.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from live import burst as _burst
from live import get
from live import LiveServer
from live import PID_ACCESS_FORMAT
from live import send

pytestmark = pytest.mark.live

START_TIMEOUT = 10
JOURNAL_SIZE = 25
TEAPOT = {"status": 429, "code": 429, "message": "injected in every worker"}


@pytest.fixture(scope="module", params=["sync", "gthread"])
def server(tmp_path_factory, request):
    """Sync workers (one connection each), and the default threaded ones (a connection, and
    its caches, per thread)."""
    tmp = tmp_path_factory.mktemp("standin-gunicorn")
    access = tmp / "access.log"
    live = LiveServer(tmp / "standin.db", workers=2, clients=20,
                      env={"STANDIN_JOURNAL_SIZE": JOURNAL_SIZE},
                      args=["--worker-class", request.param, "--timeout", "30",
                            "--graceful-timeout", "2",
                            "--access-logfile", str(access),
                            "--access-logformat", PID_ACCESS_FORMAT],
                      start_timeout=START_TIMEOUT, stop_timeout=5)
    live.start()
    request.addfinalizer(live.stop)
    live.wait_ready()
    # Both workers open the (now seeded) database.
    burst(live.url, ["/api/v3/apps/"] * 40)
    return {"base": live.url, "access": access}


def burst(base, paths, workers=20):
    """Over fresh connections from 20 threads, so both workers take part."""
    return _burst(base, paths, workers=workers)


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
    for path, r in zip(paths, responses, strict=True):
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


def test_credential_changes_take_effect_at_once_in_both_workers(server):
    """Each worker keeps the rows credentials are checked against until the database
    changes: a new password, a disabled application and a deleted user count from the next
    request, in both workers, with the caches warm beforehand."""
    base, access = server["base"], server["access"]
    path = "/api/v3/brokers/?who=credentials"

    def statuses(auth):
        return {r.status_code for r in _burst(base, [path] * 40, workers=20, auth=auth)}

    send(base, "POST", "/api/v3/users/", {"username": "alice", "password": "one", "tags": "t"})
    send(base, "POST", "/api/v3/apps/", {"app_id": "robot", "name": "robot", "status": True})
    secret = get(base, "/api/v3/apps/robot").json()["data"]["secret"]
    for _ in range(5):  # warm both workers' caches with both logins
        assert statuses(("alice", "one")) == {200}
        assert statuses(("robot", secret)) == {200}
        if len(pids_for(access, "/api/v3/brokers/?who=credentials", 200)) == 2:
            break
    assert len(pids_for(access, "/api/v3/brokers/?who=credentials", 200)) == 2

    send(base, "PUT", "/api/v3/change_pwd/alice", {"old_pwd": "one", "new_pwd": "two"})
    assert statuses(("alice", "one")) == {401}
    assert statuses(("alice", "two")) == {200}
    send(base, "PUT", "/api/v3/apps/robot", {"name": "robot", "status": False})
    assert statuses(("robot", secret)) == {401}
    send(base, "DELETE", "/api/v3/users/alice")
    assert statuses(("alice", "two")) == {401}
    send(base, "DELETE", "/api/v3/apps/robot")
    assert statuses(("robot", secret)) == {401}
