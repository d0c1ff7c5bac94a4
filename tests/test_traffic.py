"""Live traffic (traffic.py): GET/PUT/DELETE /_standin/traffic, POST /_standin/traffic/advance.

- the control: defaults, rates kept across PUTs, every bad body refused with a clear 108
  (107, 102) and nothing stored;
- traffic moves every counter through the broker's rules, and the counts add up (metrics
  against traffic's own counts, received against sent, the overview against the lists);
- deterministic: two databases, the same seed and simulated seconds (applied in different
  steps) give the same state; another seed does not;
- bounded: a long run keeps the rows under the pool's bounds, sessions and retained
  statuses expire, the journal is not written;
- off (or nothing due) costs no write and no read of the state past a cached one;
- STANDIN_TRAFFIC=demo starts it, a reset goes back to it, worlds and snapshots carry it;
- live: gunicorn with 2 workers advances it on requests, never applying a tick twice (the
  live state equals an in-process replay of the same simulated seconds).
"""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import app as emqx
import traffic
from conftest import API
from conftest import assert_overview_adds_up
from conftest import assert_received_adds_up
from conftest import AUTH
from conftest import get_json
from conftest import request_json as control
from conftest import strip_times
from live import burst
from live import LiveServer
from live import send

pytestmark = pytest.mark.usefixtures("fast_hash")

ROOT = Path(__file__).resolve().parent.parent
T = "/_standin/traffic"
DEFAULTS = {name: default for name, (default, _, _) in traffic.RATES.items()}


def state(c, base=""):
    return control(c, "GET", base + T, code=0)["data"]


def turn_on(c, base="", **rates):
    """Traffic on with these rates, its clock stopped (only /advance moves it)."""
    return control(c, "PUT", base + T, {"speed": 0, **rates}, code=0)["data"]


def advance(c, seconds, base=""):
    return control(c, "POST", base + T + "/advance", {"seconds": seconds}, code=0)["data"]


def api(c, path):
    body = get_json(c, API + path)
    assert body["code"] == 0, (path, body)
    return body["data"]


def node_metrics(c):
    return {b["node"]: api(c, f"/nodes/{b['node']}/metrics/") for b in api(c, "/brokers/")}


def summed(before, after, key):
    return sum(after[node][key] - before[node][key] for node in before)


def listeners_shutdowns(c):
    """{reason: count} over every listener of every node."""
    out = {}
    for entry in api(c, "/listeners/"):
        for listener in entry["listeners"]:
            for reason, n in (listener["shutdown_count"] or {}).items():  # [] when empty
                out[reason] = out.get(reason, 0) + n
    return out


def world_state(c, base=""):
    """Every read that traffic moves, time fields stripped, and the control's answer."""
    paths = ["/connections/", "/sessions/", "/subscriptions/", "/routes/", "/stats/",
             "/metrics/", "/alarms/", "/listeners/"]
    return {p: strip_times(get_json(c, base + API + p)) for p in paths} | {
        T: state(c, base)}


# --- the control ---------------------------------------------------------------------


def test_off_by_default_with_the_demo_rates(client):
    s = state(client)
    assert s["on"] is False and s["elapsed_s"] == 0 and s["online"] == 0
    assert {k: s[k] for k in DEFAULTS} == DEFAULTS
    assert set(s["counts"]) == set(traffic.COUNTS) and not any(s["counts"].values())


def test_put_turns_it_on_and_keeps_what_it_does_not_name(client):
    s = turn_on(client, publishes_per_s=5)
    assert s["on"] is True and s["publishes_per_s"] == 5 and s["speed"] == 0
    assert s["connects_per_min"] == DEFAULTS["connects_per_min"]
    s = control(client, "PUT", T, {"devices": 50}, code=0)["data"]
    assert (s["devices"], s["publishes_per_s"], s["speed"]) == (50, 5, 0)
    assert state(client) == s
    s = control(client, "DELETE", T, code=0)["data"]
    assert s["on"] is False and s["devices"] == 50
    assert state(client) == s


@pytest.mark.parametrize("body, words", [
    ({"bogus": 1}, "unknown field(s) ['bogus']"),
    ({"speed": 0, "connects": 5}, "unknown field(s) ['connects']"),
    ({"speed": 11}, "'speed' must be an integer from 0 to 10"),
    ({"speed": -1}, "'speed'"), ({"devices": 9}, "'devices' must be an integer from 10"),
    ({"devices": 10000}, "'devices'"), ({"publishes_per_s": 1001}, "'publishes_per_s'"),
    ({"alarms_per_hour": True}, "'alarms_per_hour'"), ({"speed": 1.5}, "'speed'"),
    ({"connects_per_min": "60"}, "'connects_per_min'"), ({"speed": None}, "'speed'"),
    ({"subscribes_per_min": [1]}, "'subscribes_per_min'")])
def test_bad_settings_are_refused_and_change_nothing(client, body, words):
    turn_on(client, publishes_per_s=7)
    before = state(client)
    answer = control(client, "PUT", T, body, code=108)
    assert words in answer["message"], answer
    assert state(client) == before


def test_a_body_that_is_not_an_object_is_refused(client):
    for raw in (b"[1]", b"not json", b"5"):
        r = client.put(T, data=raw, content_type="application/json", auth=AUTH)
        assert (r.status_code, r.get_json()["code"]) == (400, 109), raw
    assert state(client)["on"] is False


def test_advance_is_validated_and_needs_traffic_on(client):
    assert "off" in control(client, "POST", T + "/advance", {"seconds": 5},
                            code=102)["message"]
    turn_on(client)
    control(client, "POST", T + "/advance", {}, code=107)
    for seconds in (0, -3, traffic.MAX_ADVANCE + 1, "5", 2.5, True):
        control(client, "POST", T + "/advance", {"seconds": seconds}, code=108)
    control(client, "PUT", T, {"publishes_per_s": 1000}, code=0)
    answer = control(client, "POST", T + "/advance", {"seconds": 600}, code=108)
    assert "too much for one request" in answer["message"]
    assert state(client)["elapsed_s"] == 0


# --- what it does --------------------------------------------------------------------


def test_traffic_moves_every_counter_through_the_rules_and_the_counts_add_up(make_app):
    c = make_app(nodes=3, clients=20)
    m0, shut0 = node_metrics(c), listeners_shutdowns(c)
    connections0 = get_json(c, API + "/connections/")["meta"]["count"]
    alarms0 = sum(len(n["alarms"]) for n in api(c, "/alarms/"))
    turn_on(c, devices=60, alarms_per_hour=3600)
    s = advance(c, 120)
    assert s["elapsed_s"] == 120 and s["on"] is True
    counts = s["counts"]
    for key in ("connects", "disconnects", "lost", "publishes", "subscribes", "alarms_raised"):
        assert counts[key] > 0, (key, counts)
    m1, shut1 = node_metrics(c), listeners_shutdowns(c)
    # Every CONNECT was counted by the broker's rules, the refused ones too.
    assert summed(m0, m1, "packets/connect") == counts["connects"] + counts["refused"]
    assert summed(m0, m1, "packets/disconnect/received") == counts["disconnects"]
    assert shut1.get("keepalive_timeout", 0) - shut0.get("keepalive_timeout", 0) == \
        counts["lost"]
    assert shut1.get("discarded", 0) - shut0.get("discarded", 0) == counts["takeovers"]
    assert summed(m0, m1, "packets/subscribe") >= counts["subscribes"]
    assert summed(m0, m1, "packets/unsubscribe") == counts["unsubscribes"]
    # Devices' publishes are received, and delivered to the backends as sent.
    assert summed(m0, m1, "messages/received") >= counts["publishes"]
    assert summed(m0, m1, "messages/sent") > 0
    assert_received_adds_up(c)
    assert_overview_adds_up(c, "after traffic")
    # The traffic devices online are the connections that came, the alarms those raised.
    page = get_json(c, API + "/connections/")
    pool = [r for r in page["data"] if traffic.POOL_ID.match(r["client_id"])]
    assert len(pool) == s["online"] > 0
    services = {r["client_id"] for r in page["data"]} & {cid for cid, _ in traffic.SERVICES}
    assert page["meta"]["count"] == connections0 + len(pool) + len(services)
    alarms1 = sum(len(n["alarms"]) for n in api(c, "/alarms/"))
    assert alarms1 == alarms0 + s["alarms"]
    assert counts["alarms_raised"] - counts["alarms_cleared"] == s["alarms"]


def test_the_users_clients_are_left_alone(make_app):
    c = make_app(clients=30)
    before = {r["client_id"]: strip_times(r) for r in api(c, "/connections/")}
    turn_on(c, devices=40, publishes_per_s=20)
    advance(c, 90)
    after = {r["client_id"]: strip_times(r) for r in api(c, "/connections/")}
    assert {cid: after.get(cid) for cid in before} == before


def test_the_same_seed_and_seconds_give_the_same_state(make_app):
    one, two, other = (make_app(nodes=2, clients=20, seed=s) for s in (7, 7, 8))
    for c in (one, two, other):
        turn_on(c, devices=50, alarms_per_hour=600, publishes_per_s=4)
    advance(one, 150)
    advance(two, 40)  # the same seconds in other steps, a read in between
    api(two, "/stats/")
    advance(two, 110)
    advance(other, 150)
    first, second, third = world_state(one), world_state(two), world_state(other)
    assert first[T]["counts"]["publishes"] > 0
    assert first == second
    assert third[T]["counts"] != first[T]["counts"]


def test_a_long_run_stays_bounded_and_expires_sessions(make_app, monkeypatch):
    # Two hours' expiry and a rare dormancy, in a test's simulated 40 minutes.
    monkeypatch.setattr(traffic, "EXPIRY", 300)
    monkeypatch.setattr(traffic, "DORMANT", 0.02)
    c = make_app(nodes=2, clients=10)
    size = 25
    turn_on(c, devices=size, connects_per_min=120, publishes_per_s=4, subscribes_per_min=120,
            alarms_per_hour=3600)
    for _ in range(4):
        s = advance(c, 600)
    assert s["elapsed_s"] == 2400
    assert s["counts"]["sessions_expired"] > 0, s["counts"]
    db = sqlite3.connect(c.settings["DATABASE"])
    try:
        def traffic_rows(table, column="client_id"):
            return db.execute(f"SELECT count(*) FROM {table} WHERE {column} >= 'tr-'"
                              f" AND {column} < 'tr.'").fetchone()[0]

        devices = size + len(traffic.SERVICES)
        assert traffic_rows("sessions") <= devices
        assert traffic_rows("subscriptions") <= devices * 4  # commands and three config/
        assert db.execute("SELECT count(*) FROM retained WHERE topic LIKE 'devices/%'"
                          ).fetchone()[0] <= size
        assert db.execute("SELECT count(*) FROM traffic_offline").fetchone()[0] <= size
        assert db.execute("SELECT count(*) FROM alarms").fetchone()[0] <= \
            len(traffic.ALARMS) * 2 + 1
        # Nobody stays offline past the expiry with a session or a retained status.
        stale = db.execute("SELECT client_id FROM traffic_offline WHERE since <= ?",
                           (s["elapsed_s"] - traffic.EXPIRY - 1,)).fetchall()
        assert not stale
    finally:
        db.close()
    # Traffic journals nothing: only requests are journaled.
    assert control(c, "GET", "/_standin/journal/count", code=0)["data"]["count"] == 0


def test_a_second_past_the_work_bound_turns_it_off_not_the_request(client, monkeypatch):
    turn_on(client, publishes_per_s=50)
    advance(client, 5)
    monkeypatch.setattr(emqx, "WORK_BUDGET", 3)  # fewer deliveries than one second makes
    answer = control(client, "POST", T + "/advance", {"seconds": 5}, code=108)
    assert "too much for one request" in answer["message"]
    assert state(client)["elapsed_s"] == 5  # nothing of it applied
    control(client, "PUT", T, {"speed": 10}, code=0)
    time.sleep(0.3)
    assert api(client, "/stats/")  # the request is served; traffic gave up
    s = state(client)
    assert s["on"] is False and s["elapsed_s"] == 5


# --- cost when off -------------------------------------------------------------------


def test_off_costs_no_write_and_no_state_read(client, monkeypatch):
    api(client, "/stats/")  # the database is made, the state cached
    db = sqlite3.connect(f"file:{client.application.config['DATABASE']}?mode=ro", uri=True)
    reads = []
    real = traffic.read_state
    monkeypatch.setattr(traffic, "read_state", lambda tx: reads.append(1) or real(tx))
    try:
        def writes_during(requests):
            version = db.execute("PRAGMA data_version").fetchone()[0]
            for _ in range(requests):
                api(client, "/stats/")
                api(client, "/connections/?_limit=5")
            return db.execute("PRAGMA data_version").fetchone()[0] != version

        assert not writes_during(20) and len(reads) <= 1  # off
        turn_on(client)  # on, but its clock stopped: nothing due
        reads.clear()
        assert not writes_during(20) and len(reads) <= 1
        control(client, "PUT", T, {"speed": 10}, code=0)  # now seconds fall due
        time.sleep(0.3)
        assert writes_during(3)
        assert state(client)["elapsed_s"] >= 2
    finally:
        db.close()


# --- the setting, reset, worlds, snapshots -------------------------------------------


def test_demo_starts_on_and_a_reset_goes_back_to_it(make_app):
    c = make_app(clients=10, TRAFFIC="demo")
    s = state(c)
    assert s["on"] is True and {k: s[k] for k in DEFAULTS} == DEFAULTS
    control(c, "PUT", T, {"speed": 0}, code=0)
    assert advance(c, 30)["elapsed_s"] >= 30
    control(c, "POST", "/_standin/reset", {}, code=0)
    s = state(c)
    assert s["on"] is True and s["speed"] == 1 and s["elapsed_s"] <= 2
    assert s["counts"]["publishes"] <= 2 * DEFAULTS["publishes_per_s"]


def test_off_by_setting_a_reset_turns_it_off(client):
    turn_on(client)
    advance(client, 20)
    control(client, "POST", "/_standin/reset", {}, code=0)
    s = state(client)
    assert s["on"] is False and s["elapsed_s"] == 0


def test_a_bad_setting_stops_the_start():
    env = {**os.environ, "STANDIN_TRAFFIC": "loud", "STANDIN_DB": "/nonexistent/x.db"}
    out = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "STANDIN_TRAFFIC must be one of ['off', 'demo']" \
        in out.stderr, out.stderr[-500:]


def test_each_world_has_its_own_traffic(client):
    control(client, "POST", "/_standin/worlds", {"name": "tw", "clients": 5}, code=0)
    base = "/worlds/tw"
    turn_on(client, base, devices=20)
    assert advance(client, 60, base)["online"] > 0
    assert state(client)["on"] is False and state(client)["elapsed_s"] == 0
    assert get_json(client, API + "/connections/")["meta"]["count"] == 50
    assert get_json(client, base + API + "/connections/")["meta"]["count"] > 5


def test_snapshots_carry_the_traffic_state(client):
    control(client, "POST", "/_standin/snapshots", {"name": "quiet"}, code=0)
    turn_on(client, devices=20)
    advance(client, 30)
    control(client, "POST", "/_standin/snapshots", {"name": "busy"}, code=0)
    advance(client, 30)
    assert state(client)["elapsed_s"] == 60
    control(client, "POST", "/_standin/snapshots/busy/restore", code=0)
    assert state(client)["elapsed_s"] == 30 and state(client)["on"] is True
    # Restored under a connection that had cached "off": the clock runs from the snapshot.
    control(client, "PUT", T, {"speed": 10}, code=0)
    control(client, "POST", "/_standin/snapshots", {"name": "running"}, code=0)
    control(client, "DELETE", T, code=0)
    api(client, "/stats/")
    control(client, "POST", "/_standin/snapshots/running/restore", code=0)
    time.sleep(0.3)
    api(client, "/stats/")
    assert state(client)["elapsed_s"] > 30
    control(client, "POST", "/_standin/snapshots/quiet/restore", code=0)
    s = state(client)
    assert s["on"] is False and s["elapsed_s"] == 0 and s["online"] == 0


# --- live: real gunicorn -------------------------------------------------------------


@pytest.mark.live
def test_two_workers_advance_it_on_requests_and_never_apply_a_tick_twice(tmp_path, make_app):
    with LiveServer(tmp_path / "live.db", workers=2, env={"STANDIN_TRAFFIC": "demo"}) as server:
        started = time.monotonic()
        first = send(server.url, "GET", T)["data"]
        assert first["on"] is True
        send(server.url, "PUT", T, {"speed": 10})
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # many requests at once, on both workers
            for r in burst(server.url, [API + "/stats/", T, API + "/connections/?_limit=5"] * 8):
                assert r.status_code == 200, r.text
        done = send(server.url, "DELETE", T)["data"]
        wall = time.monotonic() - started
        live = {p: strip_times(send(server.url, "GET", API + p)) for p in
                ("/connections/", "/sessions/", "/subscriptions/", "/stats/")}
        assert "Traceback" not in server.log_text()
    elapsed = done["elapsed_s"]
    assert 20 <= elapsed <= wall * 10 + 1, (elapsed, wall)
    assert done["counts"]["publishes"] > 0
    # The same seconds, replayed in this process on the same seeded world: the same state.
    c = make_app(clients=20, seed=42)
    turn_on(c)
    replay = state(c)
    while replay["elapsed_s"] < elapsed:
        replay = advance(c, min(600, elapsed - replay["elapsed_s"]))
    assert replay["counts"] == done["counts"]
    assert {p: strip_times(get_json(c, API + p)) for p in live} == live

