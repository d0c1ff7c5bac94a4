"""Concurrent writes against real gunicorn (4 sync workers, one SQLite file).

Over 200 writes of mixed kinds fired from 32 threads; every acknowledged ({"code":0}) write
must then be visible through the API, and the counters must add up exactly.
"""

import json
import random
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests

from live import LiveServer

pytestmark = pytest.mark.live

AUTH = ("admin", "public")
NODE = "emqx@127.0.0.1"
START_TIMEOUT = 15
DOC_CLIENTS = ("emqx-api-test:v1", "mqttjs_406e3f9a")  # both subscribed to /test only


@pytest.fixture
def server(tmp_path, request):
    """gunicorn -w 4 on a new database with 50 clients; stopped in a finalizer."""
    live = LiveServer(tmp_path / "standin.db", workers=4, clients=50,
                      args=["--access-logfile", "-"], start_timeout=START_TIMEOUT, poll=0.1)
    live.start()
    request.addfinalizer(live.stop)
    live.wait_ready()
    return {"base": live.url, "log": live.log_path, "db": live.db}


def test_concurrent_mixed_writes_are_all_visible_and_counters_add_up(server):
    base = server["base"]
    http = requests.Session()
    http.auth = AUTH

    def get(path):
        r = http.get(base + "/api/v3" + path, timeout=10)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    # --- the seeded state the writes are planned on ---
    conns = {x["client_id"]: x for x in get("/connections/")["data"]}
    sessions = {x["client_id"]: x for x in get("/sessions/")["data"]}
    subs0 = get("/subscriptions/")["data"]
    m0 = get(f"/nodes/{NODE}/metrics/")["data"]
    s0 = get(f"/nodes/{NODE}/stats/")["data"]
    assert len(conns) == 50 and s0["connections/count"] == 50
    assert [s["topic"] for s in subs0 if s["client_id"] in DOC_CLIENTS] == ["/test", "/test"]
    # Nothing else matches /test (no `#`, `+` or `/#`-style seeded filters cover it).
    assert all(not s["topic"].startswith(("#", "+", "/")) or s["topic"] == "/test"
               for s in subs0)

    others = [cid for cid in conns if cid not in DOC_CLIENTS]
    kick_ids = others[:20]
    stay_ids = [cid for cid in sessions if cid not in kick_ids]  # online or offline sessions
    # Unsubscribe seeded plain subscriptions of clients that stay (not the doc clients'); a
    # shared one is listed without its $share/ prefix, so the file says which are plain.
    shared_pairs = set(_sql(server, "SELECT client_id, route_topic FROM subscriptions"
                                    " WHERE share IS NOT NULL"))
    unsub_rows = [s for s in subs0 if s["client_id"] in stay_ids
                  and s["client_id"] not in DOC_CLIENTS
                  and (s["client_id"], s["topic"]) not in shared_pairs][:20]
    sub_rows = [(stay_ids[i % len(stay_ids)], f"conc/sub/{i}", i % 3) for i in range(60)]

    jobs = []
    for cid in kick_ids:
        jobs.append(("kick", cid, ("DELETE", f"/connections/{quote(cid, safe='')}", None)))
    for cid, topic, qos in sub_rows:
        jobs.append(("sub", (cid, topic, qos), ("POST", "/mqtt/subscribe",
                                                {"client_id": cid, "topic": topic, "qos": qos})))
    for s in unsub_rows:
        jobs.append(("unsub", (s["client_id"], s["topic"]),
                     ("POST", "/mqtt/unsubscribe", {"client_id": s["client_id"],
                                                    "topic": s["topic"]})))
    for i in range(50):
        qos = i % 2
        jobs.append(("pub", qos, ("POST", "/mqtt/publish",
                                  {"topic": "/test", "payload": f"m{i}", "qos": qos})))
    for i in range(30):
        jobs.append(("ban", f"conc-ban-{i}", ("POST", "/banned/",
                                              {"who": f"conc-ban-{i}", "as": "client_id",
                                               "reason": "load"})))
    for i in range(30):
        jobs.append(("app", f"conc-app-{i}", ("POST", "/apps/",
                                              {"app_id": f"conc-app-{i}", "name": "load",
                                               "status": True})))
    assert len(jobs) >= 200
    # Interleave kinds so that every kind runs alongside every other.
    random.Random(42).shuffle(jobs)

    def fire(job):
        kind, key, (method, path, body) = job
        s = requests.Session()
        s.auth = AUTH
        r = s.request(method, base + "/api/v3" + path, json=body, timeout=30)
        s.close()
        return kind, key, r.status_code, r.text

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(fire, jobs))
    elapsed = time.monotonic() - started

    bad = [(k, key, st, text) for k, key, st, text in results
           if st >= 500 or "database is locked" in text]
    assert not bad, bad[:5]
    acked = {}
    for kind, key, status, text in results:
        assert status == 200, (kind, key, status, text)
        body = json.loads(text)
        if body.get("code") == 0:
            acked.setdefault(kind, []).append((key, body))
    # Every write here is valid and targets a distinct, existing object: all succeed.
    counts = Counter(kind for kind, *_ in results)
    assert {k: len(v) for k, v in acked.items()} == dict(counts), [
        r for r in results if '"code":0' not in r[3]][:5]
    assert elapsed < 20, elapsed

    # --- every acknowledged write is visible ---
    conns1 = get("/connections/")
    sessions1 = get("/sessions/")
    subs1 = get("/subscriptions/")
    routes1 = get("/routes/")
    m1 = get(f"/nodes/{NODE}/metrics/")["data"]
    s1 = get(f"/nodes/{NODE}/stats/")["data"]
    conn_ids = {x["client_id"] for x in conns1["data"]}
    sess_by_id = {x["client_id"]: x for x in sessions1["data"]}
    sub_pairs = {(x["client_id"], x["topic"]): x["qos"] for x in subs1["data"]}

    kicked = [key for key, _ in acked["kick"]]
    for cid in kicked:
        assert cid not in conn_ids
        assert get(f"/connections/{quote(cid, safe='')}")["data"] == []
        if sessions[cid]["clean_start"]:
            assert cid not in sess_by_id
            assert not any(c == cid for c, _ in sub_pairs)
        else:
            assert cid in sess_by_id
    for (cid, topic, qos), _ in acked["sub"]:
        assert sub_pairs.get((cid, topic)) == qos, (cid, topic)
        assert get(f"/routes/{quote(topic, safe='')}")["data"] == [{"node": NODE,
                                                                      "topic": topic}]
    for (cid, topic), _ in acked["unsub"]:
        assert (cid, topic) not in sub_pairs
    banned = {b["who"] for b in get("/banned/")["data"]}
    for who, body in acked["ban"]:
        assert who in banned and body["data"]["who"] == who
    apps = {a["app_id"] for a in get("/apps/")["data"]}
    for app_id, body in acked["app"]:
        assert app_id in apps
        r = requests.get(base + "/api/v3/brokers/", auth=(app_id, body["data"]["secret"]),
                         timeout=10)
        assert r.status_code == 200, app_id

    # --- counters add up exactly ---
    pubs = [qos for qos, _ in acked["pub"]]
    dm = {k: m1[k] - m0[k] for k in m1}
    # API publishes are not messages received (3.0.1 counts devices' PUBLISH packets only).
    for key in ("messages/received", "messages/qos0/received", "messages/qos1/received"):
        assert dm[key] == 0, key
    # /test has exactly the two doc clients (never kicked or unsubscribed) as subscribers,
    # and the new conc/sub/* filters match no retained message.
    assert dm["messages/sent"] == 2 * len(pubs)
    assert dm["packets/publish/sent"] == 2 * len(pubs)
    # They subscribe at QoS 0, so every delivery is QoS 0 whatever was published.
    assert dm["messages/qos0/sent"] == 2 * len(pubs)
    assert dm["messages/qos1/sent"] == 0
    assert dm["messages/dropped"] == 0
    assert dm["packets/disconnect/sent"] == len(kicked)
    for cid in DOC_CLIENTS:
        assert sess_by_id[cid]["deliver_msg"] == sessions[cid]["deliver_msg"] + len(pubs)

    assert s1["connections/count"] == s0["connections/count"] - len(kicked)
    assert s1["connections/count"] == conns1["meta"]["count"] == len(conns1["data"])
    assert s1["sessions/count"] == sessions1["meta"]["count"] == len(sessions1["data"])
    clean_kicked = [cid for cid in kicked if sessions[cid]["clean_start"]]
    assert s1["sessions/count"] == s0["sessions/count"] - len(clean_kicked)
    assert s1["sessions/persistent/count"] == s0["sessions/persistent/count"]
    assert s1["subscriptions/count"] == subs1["meta"]["count"] == len(subs1["data"])
    lost_with_sessions = sum(1 for s in subs0 if s["client_id"] in clean_kicked)
    assert s1["subscriptions/count"] == (s0["subscriptions/count"] + len(acked["sub"])
                                         - len(acked["unsub"]) - lost_with_sessions)
    [(shared,)] = _sql(server, "SELECT count(*) FROM subscriptions WHERE share IS NOT NULL")
    assert s1["subscriptions/shared/count"] == shared
    for sess in sessions1["data"]:
        n = sum(1 for c, _ in sub_pairs if c == sess["client_id"])
        assert sess["subscriptions_count"] == n, sess["client_id"]
    # One route per destination: (topic, node) for the plain subscribers, one per group.
    expected_routes = Counter((t, n) for t, n, _ in _sql(
        server, "SELECT DISTINCT route_topic, node, coalesce(share, '') FROM subscriptions"))
    got_routes = Counter((r["topic"], r["node"]) for r in routes1["data"])
    assert got_routes == expected_routes
    assert s1["routes/count"] == routes1["meta"]["count"] == sum(got_routes.values())
    assert s1["topics/count"] == s1["routes/count"]
    for key in ("connections", "sessions", "subscriptions", "routes", "topics"):
        assert s1[f"{key}/max"] >= s1[f"{key}/count"]
        assert s1[f"{key}/max"] >= s0[f"{key}/max"]

    listeners = get(f"/nodes/{NODE}/listeners")["data"]
    mqtt = [x for x in listeners if x["protocol"].startswith("mqtt:")]
    assert sum(x["current_conns"] for x in mqtt) == s1["connections/count"]
    node = get(f"/nodes/{NODE}")["data"]
    assert node["connections"] == s1["connections/count"]
    assert get("/banned/")["meta"]["count"] == len(get("/banned/")["data"])

    log = server["log"].read_text(errors="replace")
    assert "database is locked" not in log
    assert "Traceback" not in log


def _sql(server, query):
    """Rows straight from the server's SQLite file (an oracle the API does not show)."""
    db = sqlite3.connect(server["db"])
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()
