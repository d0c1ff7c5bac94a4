"""PUT /_standin/nodes/:node: a stopped node leaves the cluster views and comes back whole."""

import sqlite3
from urllib.parse import quote

import pytest

from conftest import API
from conftest import AUTH
from conftest import get_json
from conftest import request_json

pytestmark = pytest.mark.usefixtures("fast_hash")

N1, N2, N3 = "emqx@127.0.0.1", "emqx@127.0.0.2", "emqx@127.0.0.3"
NODEDOWN = {"code": 102, "message": "nodedown"}


def set_status(c, node, status):
    return request_json(c, "PUT", f"/_standin/nodes/{node}", {"node_status": status}, code=0)


def node_scoped(node, client_id):
    n = quote(node, safe="@")
    cid = quote(client_id, safe="")
    return [f"{API}{p}" for p in (
        f"/brokers/{n}", f"/nodes/{n}", f"/nodes/{n}/metrics/", f"/nodes/{n}/stats/",
        f"/nodes/{n}/connections/", f"/nodes/{n}/connections/{cid}", f"/nodes/{n}/sessions/",
        f"/nodes/{n}/sessions/{cid}", f"/nodes/{n}/subscriptions/",
        f"/nodes/{n}/subscriptions/{cid}", f"/nodes/{n}/plugins/", f"/nodes/{n}/configs/",
        f"/nodes/{n}/plugin_configs/emqx_retainer", f"/alarms/{n}")]


CLUSTER_READS = [API + p for p in (
    "/brokers/", "/nodes/", "/connections/", "/sessions/", "/subscriptions/", "/routes/",
    "/stats/", "/metrics/", "/listeners/", "/plugins/", "/alarms/", "/configs/", "/banned/",
    "/apps/", "/users/")]


@pytest.fixture
def c(make_app):
    return make_app(nodes=3, clients=10)


def n2_client(c):
    conns = get_json(c, f"{API}/nodes/{N2}/connections/")["data"]
    subs = get_json(c, f"{API}/nodes/{N2}/subscriptions/")["data"]
    subscribed = {s["client_id"] for s in subs}
    for conn in conns:
        if conn["client_id"] in subscribed:
            return conn["client_id"]
    return conns[0]["client_id"]


def everything(c, untimed, client_id):
    paths = CLUSTER_READS + [p for n in (N1, N2, N3) for p in node_scoped(n, client_id)]
    paths += [f"{API}/connections/{quote(client_id, safe='')}",
              f"{API}/sessions/{quote(client_id, safe='')}",
              f"{API}/subscriptions/{quote(client_id, safe='')}"]
    for n in (N1, N2, N3):
        paths.append(f"{API}/nodes/{n}/listeners")
    return {p: untimed(get_json(c, p)) for p in paths}


def test_stopped_node_leaves_and_comes_back_whole(c, untimed):
    cid = n2_client(c)
    n2_subs = get_json(c, f"{API}/nodes/{N2}/subscriptions/")["data"]
    n2_routes = [r for r in get_json(c, API + "/routes/")["data"] if r["node"] == N2]
    assert n2_subs and n2_routes
    db = sqlite3.connect(c.settings["DATABASE"])
    [(n2_shared,)] = db.execute("SELECT count(*) FROM subscriptions WHERE node = ?"
                                " AND share IS NOT NULL", (N2,)).fetchall()
    db.close()
    assert n2_shared
    before = everything(c, untimed, cid)
    counts = {p: get_json(c, API + p)["meta"]["count"]
              for p in ("/connections/", "/sessions/", "/subscriptions/", "/routes/")}
    n2_counts = {p: get_json(c, f"{API}/nodes/{N2}{p}")["meta"]["count"]
                 for p in ("/connections/", "/sessions/", "/subscriptions/")}

    assert set_status(c, N2, "Stopped") == {"code": 0, "data": {"node": N2,
                                                                "node_status": "Stopped"}}

    # /brokers/: gone; /nodes/: name and status only.
    assert [b["node"] for b in get_json(c, API + "/brokers/")["data"]] == [N1, N3]
    nodes = get_json(c, API + "/nodes/")["data"]
    assert [n["name"] for n in nodes] == [N1, N2, N3]
    assert nodes[1] == {"name": N2, "node_status": "Stopped"}
    assert nodes[0]["node_status"] == nodes[2]["node_status"] == "Running"

    # Node-scoped routes answer nodedown; its listeners answer code 0 with an error object.
    for path in node_scoped(N2, cid):
        assert get_json(c, path) == NODEDOWN, path
    assert get_json(c, f"{API}/nodes/{N2}/listeners") == {"code": 0,
                                                          "data": {"error": "nodedown"}}
    # The other nodes answer as before, but for the cluster-wide stats: the stopped node's
    # routes (so topics) and shared subscriptions left the cluster with it.
    left = {"routes/count": len(n2_routes), "topics/count": len(n2_routes),
            "subscriptions/shared/count": n2_shared}
    for n in (N1, N3):
        for path in node_scoped(n, cid):
            answer = untimed(get_json(c, path))
            if path.endswith("/stats/"):
                for key, gone in left.items():
                    assert answer["data"][key] == before[path]["data"][key] - gone, (path, key)
                    answer["data"][key] = before[path]["data"][key]
            assert answer == before[path], path

    # Cluster lists and counts lose the node's rows.
    for path in ("/connections/", "/sessions/", "/subscriptions/"):
        body = get_json(c, API + path)
        assert all(row["node"] != N2 for row in body["data"]), path
        assert body["meta"]["count"] == counts[path] - n2_counts[path], path
        assert len(body["data"]) == body["meta"]["count"], path
    routes = get_json(c, API + "/routes/")
    assert all(r["node"] != N2 for r in routes["data"])
    assert routes["meta"]["count"] == counts["/routes/"] - len(n2_routes)
    for r in n2_routes:
        assert r not in get_json(c, f"{API}/routes/{quote(r['topic'], safe='')}")["data"]
    assert [s["node"] for s in get_json(c, API + "/stats/")["data"]] == [N1, N3]
    assert [m["node"] for m in get_json(c, API + "/metrics/")["data"]] == [N1, N3]
    assert [p["node"] for p in get_json(c, API + "/plugins/")["data"]] == [N1, N3]
    assert [a["node"] for a in get_json(c, API + "/alarms/")["data"]] == [N1, N3]
    assert [x["node"] for x in get_json(c, API + "/configs/")["data"]] == [N1, N3]
    # Its clients are not found in the cluster lookups.
    for kind in ("connections", "sessions", "subscriptions"):
        assert get_json(c, f"{API}/{kind}/{quote(cid, safe='')}")["data"] == [], kind

    # Started again: every answer as before (time fields aside).
    assert set_status(c, N2, "Running")["data"] == {"node": N2, "node_status": "Running"}
    after = everything(c, untimed, cid)
    for path in before:
        assert after[path] == before[path], path


def test_stopped_node_is_skipped_by_writes_and_deliveries(c):
    cid = n2_client(c)
    set_status(c, N2, "Stopped")
    r = c.delete(f"{API}/connections/{quote(cid, safe='')}", auth=AUTH)
    assert r.get_json()["code"] != 0
    r = c.post(f"{API}/mqtt/subscribe", json={"client_id": cid, "topic": "nd/x"}, auth=AUTH)
    assert r.get_json()["code"] != 0
    set_status(c, N2, "Running")
    assert len(get_json(c, f"{API}/connections/{quote(cid, safe='')}")["data"]) == 1


def test_simulated_client_on_a_stopped_node_vanishes_and_returns(c):
    r = c.post("/_standin/clients", auth=AUTH, json={
        "client_id": "nd-dev", "node": N3, "subscriptions": [{"topic": "nd/dev", "qos": 1}]})
    assert r.status_code == 200 and r.get_json()["code"] == 0
    conn = r.get_json()["data"]
    set_status(c, N3, "Stopped")
    assert get_json(c, f"{API}/connections/nd-dev")["data"] == []
    assert get_json(c, f"{API}/routes/nd%2Fdev")["data"] == []
    set_status(c, N3, "Running")
    assert get_json(c, f"{API}/connections/nd-dev")["data"] == [conn]
    assert get_json(c, f"{API}/routes/nd%2Fdev")["data"] == [{"node": N3, "topic": "nd/dev"}]


def test_all_nodes_stopped(make_app, untimed):
    c = make_app(nodes=1, clients=10)
    before = untimed(get_json(c, API + "/connections/"))
    set_status(c, N1, "Stopped")
    assert get_json(c, API + "/brokers/")["data"] == []
    assert get_json(c, API + "/nodes/")["data"] == [{"name": N1, "node_status": "Stopped"}]
    body = get_json(c, API + "/connections/")
    assert body["data"] == [] and body["meta"]["count"] == 0
    assert get_json(c, f"{API}/nodes/{N1}/stats/") == NODEDOWN
    set_status(c, N1, "Running")
    assert untimed(get_json(c, API + "/connections/")) == before


def test_stop_twice_and_start_a_running_node(c, untimed):
    before = untimed(get_json(c, API + "/nodes/"))
    set_status(c, N2, "Stopped")
    set_status(c, N2, "Stopped")
    set_status(c, N2, "Running")
    set_status(c, N2, "Running")
    assert untimed(get_json(c, API + "/nodes/")) == before


def test_bad_node_requests(c):
    r = c.put("/_standin/nodes/emqx@10.0.0.99", json={"node_status": "Stopped"}, auth=AUTH)
    assert r.status_code == 404
    assert r.get_json() == {"code": 404, "message": "not found"}
    for body in ({}, {"node_status": "stopped"}, {"node_status": "Paused"},
                 {"node_status": 1}):
        r = c.put(f"/_standin/nodes/{N2}", json=body, auth=AUTH)
        assert r.status_code < 500 and r.get_json()["code"] != 0, (body, r.get_json())
    assert all(n["node_status"] == "Running" for n in get_json(c, API + "/nodes/")["data"])


def test_node_name_percent_encoded(c):
    set_status(c, "emqx%40127.0.0.2", "Stopped")
    assert get_json(c, API + "/nodes/")["data"][1] == {"name": N2, "node_status": "Stopped"}
