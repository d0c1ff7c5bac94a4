"""Down to the counters: what a real 3.0.1 would show when someone compares numbers.

- Only a device's PUBLISH is a message received: messages/received ==
  packets/publish/received == the sum of messages/qos*/received, after any writes.
- The dashboard's overview and its list pages agree (topics/count is the route table).
- No connection or session is older than its node (datetime - uptime), also after a
  node restarts.
"""

import random
import re
import time
from urllib.parse import quote

import pytest

from conftest import API
from conftest import assert_overview_adds_up
from conftest import assert_received_adds_up
from conftest import AUTH
from conftest import call_ok
from conftest import data
from conftest import get_json
from conftest import request_json

pytestmark = pytest.mark.usefixtures("fast_hash")

NODES = ["emqx@127.0.0.1", "emqx@127.0.0.2", "emqx@127.0.0.3"]


def metrics(c, node):
    return get_json(c, f"{API}/nodes/{node}/metrics/")["data"]


def test_api_publish_is_not_received_and_a_device_publish_is(make_app):
    c = make_app(nodes=3, clients=20)
    node = NODES[1]
    control = "/_standin/clients"
    request_json(c, "POST", control, {"client_id": "fid-dev", "node": node}, code=0)
    request_json(c, "POST", control, {"client_id": "fid-sub", "node": NODES[2],
                                      "subscriptions": [{"topic": "fid/#", "qos": 2}]}, code=0)
    m0 = metrics(c, node)
    call_ok(c, "POST", "/mqtt/publish", {"topic": "fid/a", "payload": "x", "qos": 1})
    assert metrics(c, node) == m0  # the API's publish landed on the first node, and no
    # node counted it received
    (conn0,) = data(c, "/connections/fid-dev")
    request_json(c, "POST", f"{control}/fid-dev/publish",
                 {"topic": "fid/b", "payload": "hello", "qos": 1}, code=0)
    m1 = metrics(c, node)
    d = {k: m1[k] - m0[k] for k in m0 if m1[k] != m0[k]}
    assert d["messages/received"] == d["messages/qos1/received"] == 1
    assert d["packets/publish/received"] == 1 and d["packets/puback/sent"] == 1
    assert d["messages/forward"] == 1  # to the subscriber's node
    (conn1,) = data(c, "/connections/fid-dev")
    assert conn1["recv_msg"] == conn0["recv_msg"] + 1
    assert conn1["recv_oct"] - conn0["recv_oct"] == d["bytes/received"]
    (sub,) = data(c, "/connections/fid-sub")
    assert sub["send_msg"] == 2  # both messages reached it
    assert_received_adds_up(c)


def test_received_adds_up_after_any_writes(make_app):
    c = make_app(nodes=3, clients=30, seed=3)
    rng = random.Random(7)
    devices = []
    for i in range(12):
        cid = f"inv-{i}"
        request_json(c, "POST", "/_standin/clients", {
            "client_id": cid, "node": NODES[i % 3], "clean_start": i % 2 == 0,
            "subscriptions": [{"topic": rng.choice(["inv/#", "inv/+/x", "$share/g/inv/a"]),
                               "qos": rng.randint(0, 2)}]}, code=0)
        devices.append(cid)
    for step in range(60):
        kind = rng.choice(["device", "api", "kick", "disconnect", "reconnect", "subscribe"])
        cid = rng.choice(devices)
        topic = f"inv/{rng.choice('abc')}/{rng.choice('xy')}"
        if kind == "device":
            request_json(c, "POST", f"/_standin/clients/{cid}/publish",
                         {"topic": topic, "qos": rng.randint(0, 2), "retain": step % 7 == 0})
        elif kind == "api":
            call_ok(c, "POST", "/mqtt/publish", {"topic": topic, "qos": rng.randint(0, 2)})
        elif kind == "kick":
            c.delete(f"{API}/connections/{quote(cid)}", auth=AUTH)
        elif kind == "disconnect":
            c.delete(f"/_standin/clients/{quote(cid)}", auth=AUTH)
        elif kind == "reconnect":
            request_json(c, "POST", "/_standin/clients",
                         {"client_id": cid, "node": rng.choice(NODES), "clean_start": False})
        else:
            c.post(f"{API}/mqtt/subscribe", auth=AUTH,
                   json={"client_id": cid, "topic": topic, "qos": 1})
    assert_received_adds_up(c)


def test_overview_counts_equal_the_list_totals_on_three_nodes(make_app):
    """What the 3.0.1 dashboard shows on its overview (stats) and on its list pages."""
    c = make_app(nodes=3, clients=40)
    call_ok(c, "POST", "/mqtt/subscribe", {"client_id": "emqx-api-test:v1",
                                           "topic": "$share/a/dash/t,$queue/dash/t,dash/t"})
    request_json(c, "PUT", f"/_standin/nodes/{NODES[2]}", {"node_status": "Stopped"}, code=0)
    for attempt in ("one node stopped", "all running"):
        assert_overview_adds_up(c, attempt)
        request_json(c, "PUT", f"/_standin/nodes/{NODES[2]}", {"node_status": "Running"})


def _epoch(text):
    return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


UNITS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def _started(c):
    """Each node's start, from its broker answer: datetime - uptime."""
    out = {}
    for b in get_json(c, f"{API}/brokers/")["data"]:
        up = sum(int(n) * UNITS[u] for n, u in re.findall(r"(\d+) (\w+)", b["uptime"]))
        out[b["node"]] = _epoch(b["datetime"]) - up
    return out


def _assert_no_older_than_its_node(c):
    started = _started(c)
    conns = data(c, "/connections/")
    sessions = data(c, "/sessions/")
    assert conns and sessions
    for row, field in [(r, "connected_at") for r in conns] + [(r, "created_at")
                                                              for r in sessions]:
        assert _epoch(row[field]) >= started[row["node"]] - 1, (row["client_id"], field)


@pytest.mark.parametrize("seed", [1, 42, 99])
def test_nothing_is_older_than_its_node(make_app, seed):
    _assert_no_older_than_its_node(make_app(nodes=3, clients=200, seed=seed))


def test_a_restarted_node_has_a_fresh_uptime_and_its_devices_reconnected(make_app):
    c = make_app(nodes=2, clients=30)
    request_json(c, "PUT", f"/_standin/nodes/{NODES[1]}", {"node_status": "Stopped"}, code=0)
    request_json(c, "PUT", f"/_standin/nodes/{NODES[1]}", {"node_status": "Running"}, code=0)
    assert _started(c)[NODES[1]] > time.time() - 60
    _assert_no_older_than_its_node(c)
