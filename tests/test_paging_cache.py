"""The deep-page block totals belong to one database, and every paged table keeps them.

Deep pages (offset >= DEEP_OFFSET) of the tables in PAGED_TABLES seek through page_blocks
with running totals cached on the connection. A cache that outlives its connection (keyed
by id(db)) can serve another database's totals once CPython reuses the address; a table
added to PAGED_TABLES without page_blocks triggers answers empty pages past row 4,096.
"""

import sqlite3

import pytest

import app as emqx
from conftest import get_json

pytestmark = pytest.mark.usefixtures("fast_hash")

API = "/api/v3"
LIMIT = 100
PAGE = 15  # offset 1,400: past DEEP_OFFSET once it is lowered below


def _first_id_expected(path, offset):
    """The id of row `offset` of the connections, straight from the file."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT client_id FROM connections ORDER BY id LIMIT 1 OFFSET ?",
                          (offset,)).fetchone()[0]
    finally:
        db.close()


def _gaps(path, below):
    """Remove the connections with the lowest ids from the file, behind the app's back."""
    db = sqlite3.connect(path)
    try:
        ids = [r[0] for r in db.execute("SELECT id FROM connections ORDER BY id LIMIT ?",
                                        (below,))]
        with db:
            db.executemany("DELETE FROM connections WHERE id = ?", [(i,) for i in ids])
    finally:
        db.close()


def test_block_totals_never_cross_databases(make_app, monkeypatch):
    """Switching between two databases in one thread: every deep page is its own file's."""
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 0)
    gapped, plain = make_app(clients=3000), make_app(clients=3000)
    get_json(gapped, f"{API}/nodes/")  # both files exist and are seeded
    get_json(plain, f"{API}/nodes/")
    gapped_path, plain_path = (c.settings["DATABASE"] for c in (gapped, plain))
    _gaps(gapped_path, 500)
    offset = (PAGE - 1) * LIMIT
    expected = {gapped_path: _first_id_expected(gapped_path, offset),
                plain_path: _first_id_expected(plain_path, offset)}
    assert expected[gapped_path] != expected[plain_path]
    # Each switch closes one connection and opens another: the address of a freed
    # connection is soon reused, with the same fresh (data_version, total_changes).
    for _ in range(6):
        for c in (gapped, plain):
            body = get_json(c, f"{API}/connections/?_limit={LIMIT}&_page={PAGE}")
            assert body["data"][0]["client_id"] == expected[c.settings["DATABASE"]]


def test_every_paged_table_has_its_page_block_triggers(client):
    """Inserts and deletes of every table in PAGED_TABLES keep page_blocks in step."""
    get_json(client, f"{API}/nodes/")
    db = sqlite3.connect(client.application.config["DATABASE"])
    try:
        triggers = db.execute("SELECT tbl_name, sql FROM sqlite_master"
                              " WHERE type = 'trigger'").fetchall()
    finally:
        db.close()
    for table in emqx.PAGED_TABLES:
        sql = [s for t, s in triggers if t == table and "page_blocks" in s]
        assert any("AFTER INSERT" in s and "n + 1" in s for s in sql), table
        assert any("AFTER DELETE" in s and "n - 1" in s for s in sql), table


def test_deep_pages_of_every_paged_table_are_complete(make_app, monkeypatch):
    """Past the first blocks, every paged list still tiles: the triggers' counts are right
    after writes (a table without them answers empty pages past row 4,096)."""
    c = make_app(clients=5000)
    get_json(c, f"{API}/nodes/")
    for i in range(30):  # rows added after seeding are counted by the triggers alone
        c.post("/_standin/clients", auth=("admin", "public"), json={
            "client_id": f"late-{i}", "clean_start": False,
            "subscriptions": [{"topic": f"late/{i}", "qos": 0}]})
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 0)
    for path in ("/connections/", "/sessions/", "/subscriptions/", "/routes/"):
        count = get_json(c, f"{API}{path}?_limit=1")["meta"]["count"]
        last_page = (count - 1) // 1000 + 1
        body = get_json(c, f"{API}{path}?_limit=1000&_page={last_page}")
        assert len(body["data"]) == count - (last_page - 1) * 1000, path


def test_deep_pages_of_a_table_without_page_blocks(make_app, monkeypatch):
    """Bans are not in PAGED_TABLES: their deep pages walk the rows and are complete."""
    c = make_app(clients=10)
    get_json(c, f"{API}/banned/")
    db = sqlite3.connect(c.settings["DATABASE"])
    with db:
        db.executemany("INSERT INTO banned (who, kind) VALUES (?, 'client_id')",
                       [(f"deep-ban-{i}",) for i in range(5000)])
    db.close()
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 0)
    body = get_json(c, f"{API}/banned/?_limit=1000&_page=5")
    assert body["meta"]["count"] == 5003
    assert len(body["data"]) == 1000
    assert body["data"][-1]["who"] == "deep-ban-4996"


def test_block_totals_follow_a_restored_snapshot(make_app, monkeypatch):
    """A snapshot restored under the thread's connection replaces its rows without moving
    its data_version or total_changes: the totals it cached go with the old rows."""
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 0)
    c = make_app(clients=3000)
    get_json(c, f"{API}/nodes/")
    path = c.settings["DATABASE"]
    auth = ("admin", "public")
    assert c.post("/_standin/snapshots", auth=auth, json={"name": "plain"}).status_code == 200
    _gaps(path, 500)
    assert c.post("/_standin/snapshots", auth=auth, json={"name": "gapped"}).status_code == 200
    offset = (PAGE - 1) * LIMIT
    expected = {"gapped": _first_id_expected(path, offset)}
    c.post("/_standin/snapshots/plain/restore", auth=auth)
    expected["plain"] = _first_id_expected(path, offset)
    assert expected["plain"] != expected["gapped"]
    for name in ("plain", "gapped") * 3:
        assert c.post(f"/_standin/snapshots/{name}/restore", auth=auth).status_code == 200
        body = get_json(c, f"{API}/connections/?_limit={LIMIT}&_page={PAGE}")
        assert body["data"][0]["client_id"] == expected[name], name
