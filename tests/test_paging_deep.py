"""Deep pages jump to their block (page_blocks) instead of walking rows: same answers."""

from urllib.parse import quote

import pytest

import app as emqx
from conftest import AUTH
from conftest import get_json

API = "/api/v3"
LISTS = ["/connections/", "/sessions/", "/subscriptions/", "/routes/",
         "/nodes/emqx@127.0.0.1/connections/", "/nodes/emqx@127.0.0.2/sessions/",
         "/nodes/emqx@127.0.0.2/subscriptions/"]


def _pages(client, path, limit):
    """Every page of a list, in order, until an empty one."""
    rows, page = [], 1
    while True:
        body = get_json(client, f"{API}{path}?_limit={limit}&_page={page}")
        if not body["data"]:
            return rows, body["meta"]["count"]
        rows += body["data"]
        page += 1


def _churn(client):
    """Leave gaps in the ids: kick clients, unsubscribe, add new rows at the end."""
    conns = get_json(client, f"{API}/connections/")["data"]
    for conn in conns[3:200:3]:
        client.delete(f"{API}/connections/{quote(conn['client_id'], safe='')}", auth=AUTH)
    for i in range(40):
        client.post("/_standin/clients", auth=AUTH, json={
            "client_id": f"late-{i}", "node": "emqx@127.0.0.2",
            "subscriptions": [{"topic": f"late/{i}/#", "qos": 1}]})


@pytest.mark.parametrize("limit", [7, 100])
def test_deep_pages_equal_plain_offset_paging(make_app, monkeypatch, limit):
    """With every offset taken through page_blocks, pages still tile the whole list."""
    client = make_app(nodes=2, clients=1500)
    _churn(client)
    plain = {path: _pages(client, path, limit) for path in LISTS}
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 0)
    for path in LISTS:
        rows, count = _pages(client, path, limit)
        assert (rows, count) == plain[path], path
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
    client.put("/_standin/nodes/emqx@127.0.0.1", json={"node_status": "Stopped"}, auth=AUTH)
    plain, count = _pages(client, "/sessions/", 50)
    monkeypatch.setattr(emqx, "DEEP_OFFSET", 0)
    assert _pages(client, "/sessions/", 50) == (plain, count)
    assert {r["node"] for r in plain} == {"emqx@127.0.0.2"}
