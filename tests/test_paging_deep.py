"""Deep pages jump to their block (page_blocks) instead of walking rows: same answers.

The expected pages never go through that code: they are cut from the whole list read as
one page (offset 0, DEEP_OFFSET beyond any offset), whose rows are checked against a straight
SQL query of the test's SQLite file in id order. The pages under test are then served with
DEEP_OFFSET = 0, so that every one of them is sought through page_blocks.
"""

import sqlite3
from urllib.parse import quote

import pytest

import app as emqx
from conftest import API
from conftest import AUTH
from conftest import get_json

NODE1, NODE2 = "emqx@127.0.0.1", "emqx@127.0.0.2"
LISTS = ["/connections/", "/sessions/", "/subscriptions/", "/routes/",
         f"/nodes/{NODE1}/connections/", f"/nodes/{NODE2}/sessions/",
         f"/nodes/{NODE2}/subscriptions/"]
# What identifies a row of each list, as (entity keys, SQL columns of its table).
IDENTITY = {"connections": (("client_id", "node"), "client_id, node"),
            "sessions": (("client_id", "node"), "client_id, node"),
            # A shared subscription is shown without its $share/<group>/ prefix.
            "subscriptions": (("client_id", "topic"), "client_id, route_topic"),
            "routes": (("topic", "node"), "topic, node")}


def _pages(client, path, limit):
    """Every page of a list, in order, until an empty one: (pages, meta count)."""
    pages, page = [], 1
    while True:
        body = get_json(client, f"{API}{path}?_limit={limit}&_page={page}")
        if not body["data"]:
            return pages, body["meta"]["count"]
        pages.append(body["data"])
        page += 1


def _in_id_order(db_path, path):
    """The identities of a list's rows straight from SQLite, in id order (no app code)."""
    parts = path.strip("/").split("/")
    table, where, args = parts[-1], "", ()
    if parts[0] == "nodes":
        where, args = " WHERE node = ?", (parts[1],)
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in db.execute(
            f"SELECT {IDENTITY[table][1]} FROM {table}{where} ORDER BY id", args)]
    finally:
        db.close()


def _expected_pages(client, monkeypatch, path, limit):
    """(pages, count) a list must serve, computed without page_blocks: the whole list as one
    page at offset 0 (with DEEP_OFFSET beyond any offset), checked row by row against
    SQLite in id order, then cut into pages of `limit`."""
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 2 ** 62)
    body = get_json(client, f"{API}{path}?_limit=1000000&_page=1")
    rows, count = body["data"], body["meta"]["count"]
    keys = IDENTITY[path.strip("/").split("/")[-1]][0]
    assert [tuple(r[k] for k in keys) for r in rows] == _in_id_order(
        client.settings["DATABASE"], path), path
    assert len(rows) == count, path
    return [rows[i:i + limit] for i in range(0, len(rows), limit)], count


def _churn(client):
    """Leave gaps in the ids: kick clients, unsubscribe, add new rows at the end."""
    conns = get_json(client, f"{API}/connections/")["data"]
    for conn in conns[3:200:3]:
        client.delete(f"{API}/connections/{quote(conn['client_id'], safe='')}", auth=AUTH)
    for i in range(40):
        client.post("/_standin/clients", auth=AUTH, json={
            "client_id": f"late-{i}", "node": NODE2,
            "subscriptions": [{"topic": f"late/{i}/#", "qos": 1}]})


@pytest.mark.parametrize("limit", [7, 100])
def test_deep_pages_equal_the_whole_list_cut_into_pages(make_app, monkeypatch, limit):
    """With every offset taken through page_blocks, page n is rows (n-1)*limit.. of the list."""
    client = make_app(nodes=2, clients=1500)
    _churn(client)
    expected = {path: _expected_pages(client, monkeypatch, path, limit) for path in LISTS}
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 0)
    for path in LISTS:
        pages, count = _pages(client, path, limit)
        assert count == expected[path][1], path
        assert len(pages) == len(expected[path][0]), path
        for n, (got, want) in enumerate(zip(pages, expected[path][0], strict=True), start=1):
            assert got == want, (path, "page", n)
        rows = [r for page in pages for r in page]
        assert len(rows) == count, path
        assert len({repr(r) for r in rows}) == len(rows), path


def test_deep_page_past_the_end_is_empty(make_app, monkeypatch):
    client = make_app(nodes=1, clients=3000)
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 0)
    body = get_json(client, f"{API}/connections/?_limit=1000&_page=4")
    assert body["data"] == []
    assert body["meta"] == {"page": 4, "limit": 1000, "count": 3000}
    last = get_json(client, f"{API}/connections/?_limit=1000&_page=3")["data"]
    assert len(last) == 1000


def test_deep_pages_skip_a_stopped_node(make_app, monkeypatch):
    client = make_app(nodes=2, clients=1200)
    client.put(f"/_standin/nodes/{NODE1}", json={"node_status": "Stopped"}, auth=AUTH)
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 2 ** 62)
    whole = get_json(client, f"{API}/sessions/?_limit=1000000")
    plain, count = whole["data"], whole["meta"]["count"]
    assert len(plain) == count
    assert {r["node"] for r in plain} == {NODE2}
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 0)
    pages, deep_count = _pages(client, "/sessions/", 50)
    assert deep_count == count
    assert pages == [plain[i:i + 50] for i in range(0, count, 50)]
