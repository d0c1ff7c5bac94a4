"""Made for test suites: worlds, snapshots, a journal to assert on, faults down to the socket.

In-process for what is the application's; a real gunicorn (4 workers) for isolation under
concurrency and for the faults that act on the connection itself.
"""

import json
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import API
from conftest import AUTH
from conftest import get_json
from conftest import request_json
from live import LiveServer

pytestmark = pytest.mark.usefixtures("fast_hash")


def control(c, method, path, body=None, **kw):
    return request_json(c, method, path, body, **kw)


# --- worlds ------------------------------------------------------------------------------


def test_a_world_is_a_whole_state_of_its_own(client):
    made = control(client, "POST", "/_standin/worlds", {"name": "w1", "clients": 10})
    assert made == {"code": 0, "data": {"name": "w1", "base": "/worlds/w1"}}
    root0 = get_json(client, f"{API}/connections/")["meta"]["count"]
    assert get_json(client, f"/worlds/w1{API}/connections/")["meta"]["count"] == 10
    # A write in the world stays there: its data, its journal, its faults, its users.
    control(client, "DELETE", f"/worlds/w1{API}/connections/emqx-api-test:v1", code=0)
    control(client, "PUT", "/worlds/w1/_standin/faults",
            {"error_rate": 1, "routes": ["list_brokers"]}, code=0)
    control(client, "POST", f"/worlds/w1{API}/users/",
            {"username": "w1-only", "password": "pw", "tags": "t"}, code=0)
    assert get_json(client, f"/worlds/w1{API}/connections/")["meta"]["count"] == 9
    assert get_json(client, f"{API}/connections/")["meta"]["count"] == root0
    assert get_json(client, "/_standin/faults")["data"]["faults"] is None
    assert client.get(f"{API}/brokers/", auth=("w1-only", "pw")).status_code == 401
    assert client.get(f"/worlds/w1{API}/nodes/", auth=("w1-only", "pw")).status_code == 200
    routes = [e["route"] for e in get_json(client, "/worlds/w1/_standin/journal")["data"]]
    assert "kickout_connection" in routes
    assert "kickout_connection" not in [
        e["route"] for e in get_json(client, "/_standin/journal")["data"]]
    assert client.get("/worlds/w1/status").data.endswith(b"emqx is running")
    listed = get_json(client, "/_standin/worlds")["data"]
    assert [(w["name"], w["settings"]) for w in listed] == [
        ("w1", {"seed": 42, "nodes": 1, "clients": 10})]
    control(client, "DELETE", "/_standin/worlds/w1", code=0)
    assert client.get(f"/worlds/w1{API}/nodes/", auth=AUTH).get_json() == {
        "code": 404, "message": "no such world: w1"}
    folder = os.path.splitext(client.application.config["DATABASE"])[0] + "-worlds"
    assert not [f for f in os.listdir(folder) if f.startswith("w1")]


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 65, "naïve", 5])
def test_world_names_are_checked(client, name):
    answer = control(client, "POST", "/_standin/worlds", {"name": name})
    assert answer["code"] == 108
    root = os.path.dirname(client.application.config["DATABASE"])
    assert not any("x" * 65 in f or f.startswith(".hidden") for f in os.listdir(root))


def test_worlds_are_bounded_and_names_unique(client, monkeypatch):
    monkeypatch.setitem(client.application.config, "MAX_WORLDS", 2)
    for name in ("a", "b"):
        control(client, "POST", "/_standin/worlds", {"name": name}, code=0)
    assert control(client, "POST", "/_standin/worlds", {"name": "c"})["code"] == 108
    control(client, "DELETE", "/_standin/worlds/b", code=0)
    assert control(client, "POST", "/_standin/worlds", {"name": "a"})["code"] == 102
    assert client.get("/worlds/zz/status").status_code == 404
    assert client.get("/_standin/worlds/x", auth=AUTH).status_code == 405
    # Worlds are made and listed at the root only.
    assert client.get("/worlds/a/_standin/worlds", auth=AUTH).status_code == 404


def test_creating_a_world_copies_the_template_instead_of_seeding(client, monkeypatch):
    """A new world of the default settings is a copy of a seeded template: after the first,
    nothing is seeded again (what makes creating one take milliseconds, which
    bench/micro.py's worlds part times)."""
    import seed

    control(client, "POST", "/_standin/worlds", {"name": "warm"}, code=0)  # the template

    def no_seeding(*args, **kwargs):
        raise AssertionError("a world was seeded instead of copied")

    monkeypatch.setattr(seed, "seed_cluster", no_seeding)
    for i in range(3):
        control(client, "POST", "/_standin/worlds", {"name": f"quick-{i}"}, code=0)
        assert get_json(client, f"/worlds/quick-{i}{API}/connections/")["meta"]["count"] == 50


# --- snapshots and reset ---------------------------------------------------------------


def test_snapshot_save_restore_list_delete(client, untimed):
    before = untimed(get_json(client, f"{API}/sessions/"))
    control(client, "POST", "/_standin/snapshots", {"name": "base"}, code=0)
    control(client, "DELETE", f"{API}/connections/mqttjs_406e3f9a", code=0)
    control(client, "POST", f"{API}/mqtt/subscribe",
            {"client_id": "emqx-api-test:v1", "topic": "snap/t"}, code=0)
    assert untimed(get_json(client, f"{API}/sessions/")) != before
    listed = get_json(client, "/_standin/snapshots")["data"]
    assert [s["name"] for s in listed] == ["base"] and listed[0]["size"] > 0
    control(client, "POST", "/_standin/snapshots/base/restore", code=0)
    assert untimed(get_json(client, f"{API}/sessions/")) == before
    assert get_json(client, f"{API}/routes/snap%2Ft")["data"] == []
    control(client, "DELETE", "/_standin/snapshots/base", code=0)
    assert client.post("/_standin/snapshots/base/restore", auth=AUTH).status_code == 404


def test_a_world_from_a_snapshot(client):
    control(client, "DELETE", f"{API}/connections/mqttjs_406e3f9a", code=0)
    control(client, "POST", "/_standin/snapshots", {"name": "kicked"}, code=0)
    control(client, "POST", "/_standin/worlds", {"name": "copy", "snapshot": "kicked"}, code=0)
    assert get_json(client, f"/worlds/copy{API}/connections/mqttjs_406e3f9a")["data"] == []
    assert control(client, "POST", "/_standin/worlds",
                   {"name": "nope", "snapshot": "missing"}, status=404)["code"] == 404


def test_a_reset_copies_the_template_instead_of_seeding(client, monkeypatch):
    """Resets after the first copy the template it made (bench/micro.py's worlds part times
    them beside save and restore)."""
    import seed

    control(client, "POST", f"{API}/banned/", {"who": "gone", "as": "client_id"}, code=0)
    control(client, "POST", "/_standin/reset", code=0)  # makes the template

    def no_seeding(*args, **kwargs):
        raise AssertionError("the world was seeded again instead of copied")

    monkeypatch.setattr(seed, "seed_cluster", no_seeding)
    for _ in range(3):
        control(client, "POST", f"{API}/banned/", {"who": "gone", "as": "client_id"}, code=0)
        control(client, "POST", "/_standin/reset", code=0)
        assert "gone" not in [b["who"] for b in get_json(client, f"{API}/banned/")["data"]]


# --- the journal -------------------------------------------------------------------------


def test_journal_filters_count_and_unmatched(client):
    control(client, "DELETE", "/_standin/journal", code=0)
    client.get(f"{API}/brokers/", auth=AUTH)
    first = get_json(client, "/_standin/journal")["data"][0]["id"]
    client.get(f"{API}/nodes/", auth=AUTH)
    client.get(f"{API}/connections/?_limit=2&password=hunter2", auth=AUTH)
    client.post(f"{API}/apps/", json={"app_id": "j-app", "secret": "hunter2"}, auth=AUTH)
    client.get(f"{API}/no/such/route", auth=AUTH)
    client.get(f"{API}/nodes/", auth=("nobody", "x"))

    def count(query=""):
        return get_json(client, f"/_standin/journal/count{query}")["data"]["count"]

    assert count() == 6
    assert count("?route=list_nodes") == 2
    assert count("?method=post") == 1
    assert count("?status=401") == 1 and count("?status=200") == 4
    assert count("?code=0") == 4
    assert count("?caller=admin") == 5
    assert count(f"?since={first}") == 5
    assert count("?path=/api/v3/nodes") == 2
    assert count("?path=/api/v3/no*") == 3
    entries = get_json(client, "/_standin/journal?route=add_app")["data"]
    (entry,) = entries
    assert entry["ts"] >= 1_000_000_000_000 and entry["time"].count(".") == 1
    assert "hunter2" not in json.dumps(entry) and json.loads(entry["response"])["code"] == 0
    assert "hunter2" not in json.dumps(get_json(client, "/_standin/journal")["data"])
    ids = [e["id"] for e in get_json(client, "/_standin/journal")["data"]]
    assert ids == sorted(ids, reverse=True)
    (unmatched,) = get_json(client, "/_standin/journal/unmatched")["data"]
    assert unmatched["path"] == "/api/v3/no/such/route" and unmatched["route"] is None
    assert control(client, "GET", "/_standin/journal?status=x")["code"] == 108


# --- faults ------------------------------------------------------------------------------


def test_a_fault_for_the_next_n_requests_then_clears_itself(client):
    control(client, "PUT", "/_standin/faults", {"error_rate": 1, "times": 2,
                                                 "error": {"status": 429, "code": 429,
                                                           "message": "slow down",
                                                           "headers": {"Retry-After": "3"}}})
    plain = client.application.test_client()
    answers = [plain.get(f"{API}/brokers/", auth=AUTH) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 200, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert get_json(client, "/_standin/faults")["data"]["faults"] is None


def test_a_fault_only_for_one_caller(client):
    control(client, "POST", f"{API}/users/", {"username": "victim", "password": "pw"}, code=0)
    control(client, "PUT", "/_standin/faults", {"error_rate": 1, "match": {"caller": "victim"}})
    plain = client.application.test_client()
    assert plain.get(f"{API}/brokers/", auth=("victim", "pw")).status_code == 503
    assert plain.get(f"{API}/brokers/", auth=AUTH).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("worlds") / "standin.db", workers=4, clients=20,
                    start_timeout=30) as live:
        yield live


@pytest.mark.live
def test_every_fault_kind_seen_by_a_real_client(server):
    base = server.url
    put = requests.put
    try:
        put(f"{base}/_standin/faults", json={"kind": "drop", "times": 1}, auth=AUTH, timeout=5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/api/v3/brokers/", auth=AUTH, timeout=5)
        put(f"{base}/_standin/faults", json={"kind": "hang", "latency_ms": 300, "times": 1},
            auth=AUTH, timeout=5)
        started = time.monotonic()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/api/v3/brokers/", auth=AUTH, timeout=5)
        assert time.monotonic() - started >= 0.25
        put(f"{base}/_standin/faults", json={"kind": "hang", "latency_ms": 3000, "times": 1},
            auth=AUTH, timeout=5)
        with pytest.raises(requests.ReadTimeout):
            requests.get(f"{base}/api/v3/brokers/", auth=AUTH, timeout=1)
        put(f"{base}/_standin/faults", json={"kind": "garbage", "times": 1}, auth=AUTH,
            timeout=5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/api/v3/brokers/", auth=AUTH, timeout=5)
        put(f"{base}/_standin/faults", json={"error_rate": 1, "times": 1, "error": {
            "status": 429, "code": 429, "message": "later", "headers": {"Retry-After": "1"}}},
            auth=AUTH, timeout=5)
        r = requests.get(f"{base}/api/v3/brokers/", auth=AUTH, timeout=5)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        # Every one cleared itself: the next requests answer.
        assert requests.get(f"{base}/api/v3/brokers/", auth=AUTH, timeout=5).status_code == 200
    finally:
        requests.delete(f"{base}/_standin/faults", auth=AUTH, timeout=5)
    assert "Traceback" not in server.log_text()


@pytest.mark.live
def test_times_is_exact_under_concurrency(server):
    base = server.url
    requests.put(f"{base}/_standin/faults", json={"error_rate": 1, "times": 25}, auth=AUTH,
                 timeout=5)
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: requests.get(f"{base}/api/v3/nodes/", auth=AUTH,
                                                     timeout=10).status_code, range(80)))
    assert codes.count(503) == 25 and codes.count(200) == 55


@pytest.mark.live
def test_eight_worlds_driven_at_once_never_see_each_other(server):
    """8 threads, one world each, through 4 workers: kickouts, subscribes, publishes, resets
    and faults. Each world ends exactly as its own writes say; nothing crosses over."""
    base = server.url
    names = [f"iso-{i}" for i in range(8)]
    for name in names:
        r = requests.post(f"{base}/_standin/worlds", json={"name": name, "clients": 20},
                          auth=AUTH, timeout=10)
        assert r.json()["code"] == 0, r.text
    problems, results = [], {}

    def drive(i, name):
        http = requests.Session()
        http.auth = AUTH
        w = f"{base}/worlds/{name}"

        def call(method, path, body=None, ok=(0,)):
            r = http.request(method, w + path, json=body, timeout=10)
            code = r.json().get("code") if r.headers.get("Content-Type", "").startswith(
                "application/json") else None
            if r.status_code >= 500 or code not in ok:
                problems.append((name, method, path, r.status_code, r.text[:200]))
            return r

        call("POST", "/_standin/reset")
        call("PUT", "/_standin/faults", {"error_rate": 1, "routes": ["list_all_alarms"],
                                         "error": {"status": 418, "code": 418 + i}})
        conns = call("GET", "/api/v3/connections/").json()["data"]
        kicked = [c["client_id"] for c in conns[: 2 + i % 3]]
        for cid in kicked:
            call("DELETE", f"/api/v3/connections/{requests.utils.quote(cid, safe='')}")
        topic = f"iso/{name}"
        subscriber = conns[-1]["client_id"]
        call("POST", "/api/v3/mqtt/subscribe", {"client_id": subscriber, "topic": topic})
        for _ in range(3 + i):
            call("POST", "/api/v3/mqtt/publish", {"topic": topic, "payload": name})
        r = http.get(f"{w}/api/v3/alarms/", timeout=10)
        if r.status_code != 418 or r.json()["code"] != 418 + i:
            problems.append((name, "fault", r.status_code, r.text[:100]))
        results[name] = {"kicked": kicked, "subscriber": subscriber, "publishes": 3 + i,
                         "topic": topic}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda a: drive(*a), enumerate(names)))
    assert not problems, problems[:10]
    http = requests.Session()
    http.auth = AUTH
    for i, name in enumerate(names):
        w = f"{base}/worlds/{name}"
        mine = results[name]
        count = http.get(f"{w}/api/v3/connections/", timeout=10).json()["meta"]["count"]
        assert count == 20 - len(mine["kicked"]), name
        session = http.get(f"{w}/api/v3/sessions/{requests.utils.quote(mine['subscriber'])}",
                           timeout=10).json()["data"][0]
        assert session["deliver_msg"] >= mine["publishes"], name
        for other in names:
            routes = http.get(f"{w}/api/v3/routes/{requests.utils.quote(f'iso/{other}')}",
                              timeout=10).json()["data"]
            assert bool(routes) == (other == name), (name, other)
        journal = http.get(f"{w}/_standin/journal?route=mqtt_publish", timeout=10).json()
        assert len(journal["data"]) == mine["publishes"], name
        assert {json.loads(e["body"])["payload"] for e in journal["data"]} == {name}
        faults = http.get(f"{w}/_standin/faults", timeout=10).json()["data"]["faults"]
        assert faults["error"]["code"] == 418 + i
    assert http.get(f"{base}/_standin/faults", timeout=10).json()["data"]["faults"] is None
    assert "Traceback" not in server.log_text()


@pytest.mark.live
def test_a_reader_sees_the_old_state_or_the_new_never_a_mix(server):
    """While a snapshot is restored again and again, readers of /stats/ and the lists see
    one state or the other: the counts always agree with each other."""
    base = server.url
    requests.post(f"{base}/_standin/worlds", json={"name": "atomic", "clients": 200},
                  auth=AUTH, timeout=10)
    w = f"{base}/worlds/atomic"
    requests.post(f"{w}/_standin/snapshots", json={"name": "full"}, auth=AUTH, timeout=10)
    requests.post(f"{w}/_standin/reset", json={"clients": 20}, auth=AUTH, timeout=10)
    requests.post(f"{w}/_standin/snapshots", json={"name": "small"}, auth=AUTH, timeout=10)
    stop, seen, bad = threading.Event(), set(), []

    def read():
        http = requests.Session()
        http.auth = AUTH
        while not stop.is_set():
            page = http.get(f"{w}/api/v3/connections/?_limit=1000", timeout=10).json()
            if page["meta"]["count"] != len(page["data"]):
                bad.append(page["meta"])
            seen.add(page["meta"]["count"])

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(60):
        name = ("full", "small")[i % 2]
        r = requests.post(f"{w}/_standin/snapshots/{name}/restore", auth=AUTH, timeout=10)
        assert r.json()["code"] == 0
    stop.set()
    for t in readers:
        t.join()
    assert not bad, bad[:5]
    assert seen <= {200, 20} and seen


def test_world_files_stay_inside_the_data_folder(client):
    control(client, "POST", "/_standin/worlds", {"name": "inside"}, code=0)
    root = os.path.dirname(client.application.config["DATABASE"])
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            assert os.path.realpath(os.path.join(dirpath, f)).startswith(os.path.realpath(root))
    db = sqlite3.connect(os.path.join(root, "standin-worlds", "inside.db"))
    assert db.execute("SELECT value FROM meta WHERE key = 'seed'").fetchone() == ("42",)
    db.close()


def test_a_restore_takes_effect_on_credentials_and_faults_at_once(client):
    """A snapshot restored through the connection that serves the next request replaces the
    rows it remembered (logins, faults): the restored ones count from that request on."""
    control(client, "POST", f"{API}/users/", {"username": "bob", "password": "one", "tags": ""},
            code=0)
    control(client, "POST", "/_standin/snapshots", {"name": "before"}, code=0)
    control(client, "PUT", f"{API}/change_pwd/bob", {"old_pwd": "one", "new_pwd": "two"},
            code=0)
    control(client, "PUT", "/_standin/faults",
            {"error_rate": 1, "routes": ["list_brokers"],
             "error": {"status": 429, "code": 429, "message": "slow down"}}, code=0)
    assert client.get(f"{API}/brokers/", auth=AUTH).status_code == 429  # (counts a draw)
    assert client.get(f"{API}/nodes/", auth=("bob", "two")).status_code == 200  # remembered
    control(client, "POST", "/_standin/snapshots/before/restore", code=0)
    assert client.get(f"{API}/nodes/", auth=("bob", "one")).status_code == 200
    assert client.get(f"{API}/nodes/", auth=("bob", "two")).status_code == 401
    assert client.get(f"{API}/brokers/", auth=AUTH).status_code == 200
