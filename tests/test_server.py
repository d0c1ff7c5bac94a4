"""The stand-in under real gunicorn: two sync workers, one SQLite file, plain HTTP.

Each server is a `python -m gunicorn` subprocess on a free localhost port, started on a
database file that does not exist yet, with the repository's gunicorn.conf.py.
"""

import json
import sqlite3
from contextlib import contextmanager

import pytest
import requests

from live import burst
from live import free_port
from live import get
from live import LiveServer
from live import PID_ACCESS_FORMAT
from live import ROOT

pytestmark = pytest.mark.live

CLIENTS = 20
START_TIMEOUT = 20
BROKER_KEYS = {"datetime", "node", "node_status", "otp_release", "sysdescr", "uptime", "version"}
NODE_KEYS = {"connections", "load1", "load15", "load5", "max_fds", "memory_total", "memory_used",
             "name", "node", "node_status", "otp_release", "process_available", "process_used",
             "uptime", "version"}
# Reads whose bodies hold no wall-clock values (brokers and nodes carry datetime/uptime).
STABLE_READS = (
    "/api/v3/connections/?_limit=100", "/api/v3/sessions/", "/api/v3/subscriptions/",
    "/api/v3/routes/", "/api/v3/stats/", "/api/v3/metrics/", "/api/v3/listeners/",
    "/api/v3/plugins/", "/api/v3/alarms/", "/api/v3/banned/", "/api/v3/apps/",
    "/api/v3/users/", "/api/v3/configs/",
)


@contextmanager
def gunicorn(db, log_dir):
    """Run gunicorn -w 2 on `db`; yields (base URL, access log path). Always stopped.

    Ready once a path that needs no database answers, so the first database requests are
    the test's own."""
    port = free_port()
    access = log_dir / f"access-{port}.log"
    args = ["--config", str(ROOT / "gunicorn.conf.py"), "--access-logfile", str(access),
            "--access-logformat", PID_ACCESS_FORMAT]
    with LiveServer(db, workers=2, log_path=log_dir / f"gunicorn-{port}.log", clients=CLIENTS,
                    args=args, port=port, ready_path="/not-an-api-path",
                    start_timeout=START_TIMEOUT, stop_timeout=15) as server:
        yield server.url, access


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module, on a new database that two workers race to create."""
    tmp = tmp_path_factory.mktemp("server")
    db = tmp / "standin.db"
    assert not db.exists()
    with gunicorn(db, tmp) as (base, access):
        # The first requests that touch the database arrive at both workers together.
        first = burst(base, ["/api/v3/apps/"] * 32)
        yield {"base": base, "db": db, "access": access, "first": first}


def test_status_answers_without_credentials(server):
    r = requests.get(server["base"] + "/status", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == "Node emqx@127.0.0.1 is started\nemqx is running"


def test_list_brokers_shape(server):
    r = get(server["base"], "/api/v3/brokers/")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert list(body) == ["code", "data"]
    assert body["code"] == 0
    assert [b["node"] for b in body["data"]] == ["emqx@127.0.0.1"]
    broker = body["data"][0]
    assert set(broker) == BROKER_KEYS
    assert broker["node_status"] == "Running"
    assert broker["sysdescr"] == "EMQ X Broker"


def test_list_nodes_shape(server):
    body = get(server["base"], "/api/v3/nodes/").json()
    assert body["code"] == 0
    assert len(body["data"]) == 1
    node = body["data"][0]
    assert set(node) == NODE_KEYS
    assert node["name"] == node["node"] == "emqx@127.0.0.1"
    assert node["connections"] == CLIENTS
    assert isinstance(node["memory_used"], str) and node["memory_used"].endswith("M")


def test_connections_count_matches_stats(server):
    page = get(server["base"], "/api/v3/connections/?_limit=100").json()
    stats = get(server["base"], "/api/v3/stats/").json()
    assert page["code"] == 0
    assert page["meta"] == {"page": 1, "limit": 100, "count": CLIENTS}
    assert len(page["data"]) == CLIENTS
    assert stats["data"][0]["connections/count"] == page["meta"]["count"]


def test_missing_credentials_is_401(server):
    for auth in (None, ("admin", "wrong"), ("nobody", "public")):
        r = get(server["base"], "/api/v3/brokers/", auth=auth)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic Realm="minirest-server"'  # sic
        assert r.json() == {"code": 401, "message": "UNAUTHORIZED"}


def test_unknown_path_is_json_404(server):
    r = get(server["base"], "/api/v3/no/such/route")
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"code": 404, "message": "not found"}


def test_new_database_seeded_exactly_once(server):
    first = server["first"]
    assert {r.status_code for r in first} == {200}
    assert len({r.content for r in first}) == 1
    apps = first[0].json()["data"]
    assert apps == []  # EMQ X 3.0 creates no application (the contract, since turn 2)
    users = get(server["base"], "/api/v3/users/").json()["data"]
    assert users == [{"username": "admin", "tags": "administrator"}]
    with sqlite3.connect(server["db"]) as conn:
        assert conn.execute("SELECT count(*) FROM meta WHERE key = 'seed'").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM connections").fetchone() == (CLIENTS,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_concurrent_reads_spread_over_both_workers(server):
    paths = ["/api/v3/connections/?_limit=100", "/api/v3/subscriptions/"] * 100
    responses = burst(server["base"], paths)
    assert [r.status_code for r in responses] == [200] * len(paths)
    for path in set(paths):
        assert len({r.content for r, p in zip(responses, paths, strict=True) if p == path}) == 1
    pids = {line.split()[0] for line in server["access"].read_text().splitlines()}
    assert len(pids) == 2


def test_state_survives_restart(tmp_path):
    db = tmp_path / "standin.db"
    with gunicorn(db, tmp_path) as (base, _):
        before = {path: get(base, path).content for path in STABLE_READS}
    # Changed while nothing runs: the next server must open the file, not seed it again.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO banned (who, kind, reason, by, desc, until)"
                     " VALUES ('restart-marker', 'client_id', '\"test\"', NULL, NULL,"
                     " '4102444800')")
    conn.close()
    with gunicorn(db, tmp_path) as (base, _):
        after = {path: get(base, path).content for path in STABLE_READS}
        banned = get(base, "/api/v3/banned/").json()
    banned_before = json.loads(before.pop("/api/v3/banned/"))
    del after["/api/v3/banned/"]
    assert after == before
    assert banned["meta"]["count"] == banned_before["meta"]["count"] + 1
    assert banned["data"] == banned_before["data"] + [
        {"as": "client_id", "by": "undefined", "desc": "undefined", "reason": "test",
         "until": 4102444800, "who": "restart-marker"}]
