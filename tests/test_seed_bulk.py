"""Bulk seeding and the counters the triggers keep afterwards.

A new database is loaded without triggers (rows, then indexes, then one recount, then the
triggers), big ones with a second process making the rows. These tests pin down that none of
that changes the answers: the same world either way, and counters that still equal a fresh
count of the rows after a mix of writes.
"""

import sqlite3
from urllib.parse import quote

import database
import seed
from conftest import AUTH
from conftest import get_json

API = "/api/v3"
LISTS = ("/connections/", "/sessions/", "/subscriptions/", "/routes/", "/stats/", "/metrics/",
         "/listeners/", "/nodes/emqx@127.0.0.2/sessions/")
# Past one chunk on the first node, so the rows come from several chunks.
BIG = seed.CHUNK + 1500


def _world(client, untimed):
    return {path: untimed(get_json(client, API + path)) for path in LISTS}


def test_rows_made_in_a_second_process_equal_rows_made_inline(make_app, monkeypatch, untimed):
    """CHUNK is part of what the data is; whether a second process makes it is not."""
    inline = _world(make_app(nodes=2, clients=BIG, seed=5), untimed)
    monkeypatch.setattr(seed, "PARALLEL_SEED", 0)
    assert _world(make_app(nodes=2, clients=BIG, seed=5), untimed) == inline


COUNTERS = (
    "SELECT node, connections_count, sessions_count, sessions_persistent_count,"
    " subscriptions_count, subscribers_count, subscriptions_shared_count FROM node_stats"
    " ORDER BY node",
    "SELECT routes_count, retained_count, subscriptions_shared_count FROM cluster_stats",
    "SELECT id, current_conns FROM listeners ORDER BY id",
    "SELECT topic, node, grp, refs FROM routes ORDER BY topic, node, grp",
    "SELECT tbl, node, block, n FROM page_blocks WHERE n > 0 ORDER BY tbl, node, block",
)


def _counters(db):
    return [db.execute(sql).fetchall() for sql in COUNTERS]


def _churn(client):
    """Kickouts, device connects and disconnects, subscribes, unsubscribes, retained publishes."""
    conns = get_json(client, f"{API}/connections/")["data"]
    for conn in conns[2:40:4]:
        client.delete(f"{API}/connections/{quote(conn['client_id'], safe='')}", auth=AUTH)
    for i in range(30):
        client.post("/_standin/clients", auth=AUTH, json={
            "client_id": f"churn-{i}", "clean_start": i % 2 == 0,
            "node": f"emqx@127.0.0.{1 + i % 2}",
            "subscriptions": [{"topic": f"churn/{i % 7}/#", "qos": 1},
                              {"topic": "$share/g/churn/all", "qos": 0}]})
    for i in range(0, 30, 3):
        client.delete(f"/_standin/clients/churn-{i}", auth=AUTH)
    for conn in conns[41:60]:
        client.post(f"{API}/mqtt/subscribe", auth=AUTH, json={
            "client_id": conn["client_id"], "topic": "sensor/+/x,alerts/#", "qos": 2})
        client.post(f"{API}/mqtt/unsubscribe", auth=AUTH, json={
            "client_id": conn["client_id"], "topic": "alerts/#"})
    for i in range(12):
        client.post(f"{API}/mqtt/publish", auth=AUTH, json={
            "topic": f"churn/{i}/state", "payload": "" if i % 4 == 0 else "on", "retain": True})


def test_counters_equal_a_fresh_count_after_writes(make_app, tmp_path):
    client = make_app(nodes=2, clients=400)
    _churn(client)
    path = client.settings["DATABASE"]
    live = sqlite3.connect(path)
    kept = _counters(live)
    per_session = live.execute(
        "SELECT s.client_id, s.subscriptions_count, (SELECT count(*) FROM subscriptions u"
        " WHERE u.client_id = s.client_id) FROM sessions s").fetchall()
    assert all(kept_n == counted for _, kept_n, counted in per_session)

    copy = sqlite3.connect(tmp_path / "recount.db")
    live.backup(copy)
    live.close()
    database.recount(copy)
    assert _counters(copy) == kept


def test_the_counts_a_seed_tallies_equal_a_fresh_count(make_app, monkeypatch, tmp_path):
    """A new world's routes and listener counts come from seed.tally, counted as the rows
    were made (here in a second process); recount from the rows finds the same counters
    and gives every route the same id."""
    monkeypatch.setattr(seed, "PARALLEL_SEED", 0)
    client = make_app(nodes=3, clients=700, seed=11)
    get_json(client, API + "/routes/")  # seeds it
    live = sqlite3.connect(client.settings["DATABASE"])
    routes = "SELECT id, topic, node, grp, refs FROM routes ORDER BY id"
    seeded = _counters(live), live.execute(routes).fetchall()
    assert len(seeded[1]) > 700
    copy = sqlite3.connect(tmp_path / "recount.db")
    live.backup(copy)
    live.close()
    database.recount(copy)
    assert (_counters(copy), copy.execute(routes).fetchall()) == seeded
