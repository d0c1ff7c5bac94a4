"""GET/DELETE /_standin/journal: recent /api/v3/ requests, newest first, bounded, masked."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import API
from conftest import AUTH
from conftest import get_json
from conftest import NODE
from conftest import request_json

pytestmark = pytest.mark.usefixtures("fast_hash")

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"time", "method", "path", "query", "route", "status", "code", "duration_ms", "caller"}


def journal(c, limit=None):
    path = "/_standin/journal" + ("" if limit is None else f"?limit={limit}")
    return get_json(c, path)["data"]


def clear(c):
    request_json(c, "DELETE", "/_standin/journal", code=0)


def test_lists_calls_newest_first(client):
    get_json(client, API + "/brokers/")  # the database exists
    clear(client)
    assert journal(client) == []
    client.get(API + "/brokers/", auth=AUTH)
    client.get(API + "/connections/?_page=2&_limit=5", auth=AUTH)
    client.post(API + "/mqtt/publish", json={"topic": "j/1", "payload": "p"}, auth=AUTH)
    client.get(API + "/nodes/emqx%40127.0.0.1", auth=AUTH)
    client.delete(API + "/connections/no-such-client", auth=AUTH)
    entries = journal(client)
    assert len(entries) == 5
    for e in entries:
        assert FIELDS <= set(e), e
        assert isinstance(e["duration_ms"], (int, float)) and e["duration_ms"] >= 0
        assert isinstance(e["time"], str) and e["time"]
        assert e["caller"] == "admin"
    assert [(e["method"], e["route"], e["status"], e["code"]) for e in entries] == [
        ("DELETE", "kickout_connection", 200, 112),
        ("GET", "get_node", 200, 0),
        ("POST", "mqtt_publish", 200, 0),
        ("GET", "list_connections", 200, 0),
        ("GET", "list_brokers", 200, 0),
    ]
    assert entries[3]["path"].rstrip("/") == API + "/connections"
    assert entries[3]["query"] == "_page=2&_limit=5"
    assert entries[4]["path"].rstrip("/") == API + "/brokers"
    assert entries[4]["query"] == ""
    assert entries[0]["path"] == API + "/connections/no-such-client"


def test_limit(client):
    clear(client)
    for _ in range(6):
        client.get(API + "/stats/", auth=AUTH)
    client.get(API + "/nodes/", auth=AUTH)
    entries = journal(client, limit=2)
    assert [e["route"] for e in entries] == ["list_nodes", "list_stats"]
    assert len(journal(client, limit=100)) == 7
    assert journal(client, limit=1)[0]["route"] == "list_nodes"


def test_bad_limit(client):
    for value in ("0", "-1", "x"):
        r = client.get(f"/_standin/journal?limit={value}", auth=AUTH)
        assert r.status_code < 500 and r.get_json()["code"] != 0, value


def test_controls_and_status_are_not_journaled(client):
    clear(client)
    client.get("/_standin", auth=AUTH)
    client.get("/_standin/faults", auth=AUTH)
    client.post("/_standin/clients", json={"client_id": "j-dev"}, auth=AUTH)
    client.get("/status")
    client.get(API + "/brokers/", auth=AUTH)
    entries = journal(client)
    assert [e["route"] for e in entries] == ["list_brokers"]
    assert all(e["path"].startswith("/api/v3") for e in journal(client))


def test_unknown_paths_and_errors_are_journaled(client):
    clear(client)
    client.get(API + "/no/such/route", auth=AUTH)
    client.get(API + "/brokers/")  # no credentials
    entries = journal(client)
    assert [e["status"] for e in entries] == [401, 404]
    assert entries[1]["path"] == API + "/no/such/route"
    assert entries[1]["code"] == 404


def test_bounded_by_config(make_app):
    c = make_app(clients=5, JOURNAL_SIZE=5)
    get_json(c, API + "/brokers/")
    clear(c)
    for i in range(12):
        c.get(f"{API}/connections/?_limit={i + 1}", auth=AUTH)
    entries = journal(c, limit=1000)
    assert len(entries) == 5
    assert [e["query"] for e in entries] == [f"_limit={i}" for i in (12, 11, 10, 9, 8)]
    assert get_json(c, "/_standin")["data"]["journal_size"] == 5


def test_bound_holds_for_every_read_and_the_file_between_trims(make_app):
    """The oldest entries are deleted every JOURNAL_TRIM entries, not one per request: the
    list, the count and the unmatched list still see exactly the newest JOURNAL_SIZE, and
    the file never holds more than JOURNAL_SIZE + JOURNAL_TRIM."""
    import standin

    c = make_app(clients=5, JOURNAL_SIZE=5)
    clear(c)
    largest = 0
    for i in range(3 * standin.JOURNAL_TRIM + 7):
        c.get(f"{API}/no/such/{i}" if i % 2 else f"{API}/connections/?_limit={i + 1}",
              auth=AUTH)
        path = os.path.splitext(c.application.config["DATABASE"])[0] + "-journal.db"
        with sqlite3.connect(path) as j:
            largest = max(largest, j.execute("SELECT count(*) FROM journal").fetchone()[0])
    last = 3 * standin.JOURNAL_TRIM + 6
    entries = journal(c, limit=1000)
    assert len(entries) == 5
    assert [e["path"] for e in entries[:1]] == [f"{API}/connections"]
    assert [e["query"] for e in entries[::2]] == [f"_limit={i + 1}" for i in (last, last - 2,
                                                                          last - 4)]
    assert get_json(c, "/_standin/journal/count")["data"]["count"] == 5
    assert get_json(c, "/_standin/journal/count?route=list_connections")["data"]["count"] == 3
    unmatched = get_json(c, "/_standin/journal/unmatched?limit=1000")["data"]
    assert [e["path"] for e in unmatched] == [f"{API}/no/such/{i}" for i in (last - 1,
                                                                               last - 3)]
    assert 5 < largest <= 5 + standin.JOURNAL_TRIM


def test_bounded_by_monkeypatched_config(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "JOURNAL_SIZE", 3)
    for _ in range(10):
        client.get(API + "/brokers/", auth=AUTH)
    client.get(API + "/nodes/", auth=AUTH)
    entries = journal(client, limit=50)
    assert [e["route"] for e in entries] == ["list_nodes", "list_brokers", "list_brokers"]


@pytest.mark.parametrize("env,expected", [(None, 1000), ("7", 7)])
def test_bound_from_environment(env, expected):
    """Default 1000; STANDIN_JOURNAL_SIZE sets it (read when the app is imported)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    if env is not None:
        environ["STANDIN_JOURNAL_SIZE"] = env
    out = subprocess.run(
        [sys.executable, "-c", "import app; print(app.app.config['JOURNAL_SIZE'])"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == str(expected)


def test_secrets_are_masked(client):
    get_json(client, API + "/brokers/")
    clear(client)
    secrets = ("pw-hunter2", "new-pw-zebra", "app-secret-42", "qs-secret-77")
    client.post(API + "/users/", json={"username": "jo", "password": "pw-hunter2",
                                       "tags": "ops"}, auth=AUTH)
    client.put(API + "/change_pwd/jo", json={"old_pwd": "pw-hunter2",
                                             "new_pwd": "new-pw-zebra"}, auth=AUTH)
    client.post(API + "/apps/", json={"app_id": "japp", "secret": "app-secret-42",
                                      "name": "n"}, auth=AUTH)
    client.post(API + "/auth", json={"username": "jo", "password": "new-pw-zebra"})
    client.get(API + "/brokers/?password=qs-secret-77&x=1", auth=AUTH)
    # The caller's own password (Basic auth) is not recorded either.
    client.get(API + "/brokers/", auth=("jo", "new-pw-zebra"))
    entries = journal(client)
    assert len(entries) == 6
    text = json.dumps(entries)
    for secret in secrets:
        assert secret not in text, secret
    # The non-secret parts stay readable.
    bodies = {e["route"]: e.get("body") for e in entries}
    assert "jo" in (bodies["create_user"] or "")
    assert "japp" in (bodies["add_app"] or "")
    assert "x=1" in entries[1]["query"]
    assert "password" in entries[1]["query"]
    assert entries[0]["caller"] == "jo"


def test_large_bodies_are_cut(client):
    clear(client)
    payload = "A" * 200_000
    r = client.post(API + "/mqtt/publish", json={"topic": "j/big", "payload": payload},
                    auth=AUTH)
    assert r.status_code == 200
    (entry,) = journal(client)
    assert entry["route"] == "mqtt_publish"
    assert len(entry.get("body") or "") <= 4096


def _whole(raw):
    """The reference: parse the whole body, mask every secret key's value, cut the text."""
    def masked(value):
        if isinstance(value, dict):
            return {k: "******" if any(w in k.lower() for w in ("password", "pwd", "secret",
                                                                "token")) else masked(v)
                    for k, v in value.items()}
        return [masked(v) for v in value] if isinstance(value, list) else value
    try:
        text = json.dumps(masked(json.loads(raw)), ensure_ascii=False)
    except ValueError:
        return "<not JSON>"
    return text if len(text) <= 1024 else text[:1024] + "…"


def _document(rng, depth=0):
    pick = rng.random()
    if depth > 4 or pick < 0.3:
        return rng.choice([1, -2.5, 1e-7, 10 ** 18, "t\u00e9\"x\\\n", "", None, True, False])
    if pick < 0.65:
        return [_document(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["a", "Password", "old_pwd", "app_secret", "tokens", "b" * 300]):
            _document(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_bodies_read_only_up_to_the_cut_read_as_if_read_whole():
    """The journal reads a body token by token up to its cut; what it keeps is what parsing
    the whole body would keep: masked secrets (at any depth, whole objects too), json.dumps'
    layout, the cut, and <not JSON> for broken or trailing text."""
    import random

    from standin import _bounded_json

    rng = random.Random(7)
    for _ in range(3000):
        doc = _document(rng)
        for separators in ((",", ":"), (", ", ": ")):
            raw = json.dumps(doc, separators=separators)
            assert _bounded_json(raw.encode()) == _whole(raw), raw
    broken = ['{"a":1,}', "[1,]", '{"a"}', "{,}", "[,1]", '{"a":1', "[1 2]", '{"a":1}x', "01",
              "]", "[{\"a\":1]}", '{"a":1}}', "NaN", " ", '"\x01"', '{"a" "b"}', "[1:2]"]
    for raw in broken:
        assert _bounded_json(raw.encode()) == "<not JSON>", raw
    assert _bounded_json(b"\xff") == "<not JSON>"
    # A list page of many rows: the cut comes early, and later secrets never matter.
    page = {"code": 0, "data": [{"client_id": f"c{i}", "password": "x" * i} for i in range(5000)]}
    raw = json.dumps(page, separators=(",", ":"))
    assert _bounded_json(raw.encode()) == _whole(raw)
    assert "xxx" not in _bounded_json(raw.encode())


def test_answers_laid_out_without_parsing_read_as_the_token_reader_reads_them(client):
    """The journal lays out the writer's own answers (compact JSON) by spacing the text
    between strings; whenever it does, it keeps exactly what the token reader keeps, for
    random documents and for every read answer of the seeded cluster."""
    import random

    from minirest import dumps
    from standin import _bounded_json
    from standin import _laid_out

    rng = random.Random(11)
    bodies = [dumps(_document(rng)).encode() for _ in range(3000)]
    bodies += [dumps({"code": 0, "data": [{"n": i, "t": "a,b:c", "ok": True, "x": None}
                                          for i in range(n)]}).encode() for n in range(0, 90, 7)]
    bodies += [client.get(API + path, auth=AUTH).data for path in (
        "/connections/", "/sessions/", "/subscriptions/", "/routes/", "/nodes/", "/brokers/",
        "/stats/", "/metrics/", "/listeners/", "/plugins/", "/alarms/", "/configs/",
        "/users/", "/apps/", "/banned/", "/nonexistent")]
    laid = 0
    for body in bodies:
        fast = _laid_out(body)
        if fast is not None:
            laid += 1
            assert fast == _bounded_json(body), body[:200]
    assert laid > len(bodies) // 4, laid  # the spacing path is the usual one, not a rarity


def test_clear(client):
    client.get(API + "/brokers/", auth=AUTH)
    assert journal(client)
    clear(client)
    assert journal(client) == []
    client.get(API + "/nodes/", auth=AUTH)
    assert [e["route"] for e in journal(client)] == ["list_nodes"]


def test_journal_needs_auth(client):
    for method in ("GET", "DELETE"):
        r = client.open("/_standin/journal", method=method)
        assert r.status_code == 401
    client.get(API + "/brokers/", auth=AUTH)
    assert journal(client)


def test_node_names_and_topics_in_paths(client):
    clear(client)
    client.get(f"{API}/nodes/{NODE}/stats/", auth=AUTH)
    client.get(f"{API}/routes/%2Ftest", auth=AUTH)
    entries = journal(client)
    assert [e["route"] for e in entries] == ["lookup_routes", "lookup_node_stats"]


def test_overview_page_polling_is_not_journaled(client):
    """The overview marks its own reads; the journal keeps only the caller's requests."""
    client.delete("/_standin/journal", auth=AUTH)
    client.get("/api/v3/stats/", auth=AUTH, headers={"X-Standin-Overview": "1"})
    client.get("/api/v3/nodes/", auth=AUTH)
    entries = get_json(client, "/_standin/journal")["data"]
    assert [e["path"] for e in entries] == ["/api/v3/nodes"]


def test_an_entry_waits_microseconds_for_another_workers_lock_and_is_skipped_past_100_ms(
        client):
    """Another worker's write lock on the journal: an entry waits for it in short steps (it
    lands a few milliseconds after the lock goes, not a SQLite sleep later) and, held past
    100 ms, the entry is skipped while the answer still goes out."""
    import threading
    import time

    clear(client)
    path = os.path.splitext(client.application.config["DATABASE"])[0] + "-journal.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    released = []

    def hold(seconds):
        other.execute("BEGIN IMMEDIATE")

        def release():
            other.execute("COMMIT")
            released.append(time.perf_counter())

        threading.Timer(seconds, release).start()

    hold(0.035)
    assert client.get(f"{API}/brokers/", auth=AUTH).status_code == 200
    late = time.perf_counter() - released[0]
    # SQLite's own handler sleeps 1, 2, 5, 10, 15, 20 ms: it would look again at 53 ms.
    assert late < 0.012, late
    assert [e["route"] for e in journal(client)] == ["list_brokers"]

    hold(0.3)
    assert client.get(f"{API}/nodes/", auth=AUTH).status_code == 200
    time.sleep(0.35)
    assert [e["route"] for e in journal(client)] == ["list_brokers"]
    other.close()
