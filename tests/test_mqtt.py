"""The MQTT listener (mqtt.py) with real clients: paho-mqtt, raw sockets, and Debian's
mosquitto_pub / mosquitto_sub.

One real gunicorn (2 workers, one node of 20 synthetic clients) with STANDIN_MQTT_PORT on a
free port serves the module; a second, small one has the limits and credentials
(STANDIN_MQTT_MAX_CONNS, STANDIN_MQTT_MAX_INFLIGHT, STANDIN_MQTT_USERS) and binds 127.0.0.2.
Everything a client does is checked through the API, and everything the API does is checked
on the clients' sockets.

The mosquitto tests need Debian's mosquitto-clients; without them they are skipped, unless
CI is set: there they fail (.ci/run installs the package).
"""

import os
import random
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import paho.mqtt.client as paho
import pytest
import requests
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.connect import ConnectPayload
from amqtt.mqtt.connect import ConnectVariableHeader

from live import alive
from live import children
from live import free_port
from live import LiveServer
from live import ROOT

pytestmark = pytest.mark.live

AUTH = ("admin", "public")
NODE = "emqx@127.0.0.1"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
WAIT = 5.0  # seconds anything the tests wait for may take


# ---------------------------------------------------------------------------
# Servers and helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mqtt")
    port = free_port()
    with LiveServer(tmp / "standin.db", workers=2, clients=20,
                    env={"STANDIN_MQTT_PORT": port, "STANDIN_MQTT_CONNECT_TIMEOUT": 2}) as s:
        s.mqtt_port = port
        s.db_path = tmp / "standin.db"
        yield s


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Limits and credentials, on 127.0.0.2."""
    tmp = tmp_path_factory.mktemp("mqtt-small")
    port = free_port()
    with LiveServer(tmp / "standin.db", workers=1, clients=5, env={
            "STANDIN_MQTT_PORT": port, "STANDIN_MQTT_HOST": "127.0.0.2",
            "STANDIN_MQTT_MAX_CONNS": 3, "STANDIN_MQTT_MAX_INFLIGHT": 2,
            "STANDIN_MQTT_MAX_QUEUE": 5, "STANDIN_MQTT_USERS": "alice:wonder,bob:builder"}) as s:
        s.mqtt_port = port
        s.db_path = tmp / "standin.db"
        yield s


def api(server, method, path, body=None, code=0):
    r = requests.request(method, server.url + "/api/v3" + path, json=body, auth=AUTH,
                         timeout=10)
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    answer = r.json()
    if code is not None:
        assert answer["code"] == code, (method, path, answer)
    return answer


def control(server, method, path, body=None):
    r = requests.request(method, server.url + "/_standin" + path, json=body, auth=AUTH,
                         timeout=10)
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    return r.json()


def metrics(server):
    return api(server, "GET", f"/nodes/{NODE}/metrics/")["data"]


def stats(server):
    return api(server, "GET", f"/nodes/{NODE}/stats/")["data"]


def connection(server, client_id):
    rows = api(server, "GET", f"/connections/{quote(client_id, safe='')}")["data"]
    return rows[0] if rows else None


def until(check, timeout=WAIT, what="the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


class Paho:
    """A paho-mqtt client (MQTT 3.1.1 unless told) that records what happens to it."""

    def __init__(self, server, client_id, clean=True, will=None, username=None,
                 password=None, protocol=paho.MQTTv311, host="127.0.0.1", port=None,
                 keepalive=60):
        self.messages = []
        self.connacks = []
        self.disconnects = []
        self.subacks = []
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=clean if protocol != paho.MQTTv5 else None,
                             protocol=protocol)
        self.c.on_connect = lambda c, u, flags, rc, p: self.connacks.append(
            (flags.session_present, str(rc)))
        self.c.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload, m.qos, m.retain))
        self.c.on_disconnect = lambda c, u, flags, rc, p: self.disconnects.append(str(rc))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.append(
            [r.value for r in rcs])
        self.c.reconnect_delay_set(60, 60)  # no quiet reconnect behind a test's back
        if will:
            self.c.will_set(*will)
        if username:
            self.c.username_pw_set(username, password)
        self.c.connect(host, port or server.mqtt_port, keepalive=keepalive)
        self.c.loop_start()
        until(lambda: self.connacks or self.disconnects, what=f"CONNACK for {client_id}")

    @property
    def accepted(self):
        return bool(self.connacks) and self.connacks[0][1] == "Success"

    def subscribe(self, topic, qos=0):
        n = len(self.subacks)
        self.c.subscribe(topic, qos)
        until(lambda: len(self.subacks) > n, what=f"SUBACK for {topic}")
        return self.subacks[-1]

    def publish(self, topic, payload, qos=0, retain=False):
        info = self.c.publish(topic, payload, qos, retain)
        if qos:
            info.wait_for_publish(WAIT)
            assert info.is_published()

    def wait_messages(self, n, timeout=WAIT):
        until(lambda: len(self.messages) >= n, timeout, f"{n} message(s)")
        return self.messages

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def refused(server, client_id, **kw):
    """The CONNACKs a client that is refused gets (its loop stopped)."""
    c = Paho(server, client_id, **kw)
    c.c.loop_stop()
    return c.connacks


@pytest.fixture
def clients():
    made = []
    yield made
    for c in made:
        try:
            c.close()
        except Exception:  # noqa: BLE001 - already gone
            pass


def connect(server, clients, client_id, **kw):
    c = Paho(server, client_id, **kw)
    clients.append(c)
    return c


def connect_packet(client_id, clean=True, keepalive=60, level=4, name="MQTT", will=None):
    flags = 0x02 if clean else 0
    if will:
        flags |= 0x04 | (will[2] << 3)
    header = ConnectVariableHeader(flags, keepalive, name, level)
    payload = ConnectPayload(client_id, *(will[:2] if will else (None, None)))
    return ConnectPacket(variable_header=header, payload=payload).to_bytes()


RAW_SOCKETS = []


@pytest.fixture(autouse=True)
def close_raw_sockets():
    yield
    while RAW_SOCKETS:
        RAW_SOCKETS.pop().close()


def raw(server, data=b"", port=None, host="127.0.0.1", read=True):
    """A raw socket to the listener that sends `data`; returns (socket, what came back).
    Closed at the end of the test."""
    s = socket.create_connection((host, port or server.mqtt_port), timeout=WAIT)
    RAW_SOCKETS.append(s)
    if data:
        s.sendall(data)
    got = b""
    if read:
        try:
            got = s.recv(4096)
        except (TimeoutError, ConnectionError):
            pass
    return s, got


def closed_by_peer(s, timeout=WAIT):
    """Whether the listener closed `s` within `timeout` (EOF or reset)."""
    s.settimeout(timeout)
    try:
        while s.recv(4096):
            pass
        return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def assert_counts_add_up(server):
    m = metrics(server)
    by_qos = sum(m[f"messages/qos{q}/received"] for q in range(3))
    assert m["messages/received"] == m["packets/publish/received"] == by_qos, m
    assert m["messages/sent"] == sum(m[f"messages/qos{q}/sent"] for q in range(3)), m
    received = ("packets/connect", "packets/publish/received", "packets/puback/received",
                "packets/pubrec/received", "packets/pubrel/received",
                "packets/pubcomp/received", "packets/subscribe", "packets/unsubscribe",
                "packets/pingreq", "packets/disconnect/received", "packets/auth")
    assert m["packets/received"] == sum(m[k] for k in received), m
    listed = api(server, "GET", "/connections/?_limit=10000")
    count = stats(server)["connections/count"]
    mqtt_conns = sum(li["current_conns"] for li in api(server, "GET", f"/nodes/{NODE}/listeners")
                     ["data"] if li["protocol"].startswith("mqtt"))
    assert count == listed["meta"]["count"] == len(listed["data"]) == mqtt_conns


# ---------------------------------------------------------------------------
# paho-mqtt: the API sees the clients, the clients see the API
# ---------------------------------------------------------------------------


def test_connect_subscribe_publish_qos0_qos1_retained_seen_in_the_api(server, clients):
    m0, s0 = metrics(server), stats(server)
    sub = connect(server, clients, "paho-sub")
    assert sub.accepted and sub.connacks[0][0] is False
    assert sub.subscribe("paho/#", 1) == [1]
    pub = connect(server, clients, "paho-pub")
    pub.publish("paho/zero", b"q0", 0)
    pub.publish("paho/one", b"q1", 1)
    pub.publish("paho/kept", b"retained", 1, retain=True)
    got = sub.wait_messages(3)
    assert sorted((t, p, q) for t, p, q, _r in got) == [
        ("paho/kept", b"retained", 1), ("paho/one", b"q1", 1), ("paho/zero", b"q0", 0)]
    conn = connection(server, "paho-pub")
    assert conn["recv_msg"] == 3 and conn["proto_name"] == "MQTT" and conn["proto_ver"] == 4
    assert conn["ipaddress"] == "127.0.0.1" and conn["port"] == pub.c.socket().getsockname()[1]
    assert connection(server, "paho-sub")["send_msg"] == 3
    assert api(server, "GET", "/subscriptions/paho-sub")["data"] == [
        {"client_id": "paho-sub", "node": NODE, "qos": 1, "topic": "paho/#"}]
    m1, s1 = metrics(server), stats(server)
    assert m1["messages/received"] - m0["messages/received"] == 3
    assert m1["messages/qos0/received"] - m0["messages/qos0/received"] == 1
    assert m1["messages/qos1/received"] - m0["messages/qos1/received"] == 2
    assert m1["packets/connect"] - m0["packets/connect"] == 2
    assert m1["messages/sent"] - m0["messages/sent"] == 3
    assert s1["connections/count"] - s0["connections/count"] == 2
    assert s1["retained/count"] - s0["retained/count"] == 1
    # A new subscriber gets the retained message, flagged as retained.
    late = connect(server, clients, "paho-late")
    late.subscribe("paho/kept", 1)
    assert late.wait_messages(1)[0] == ("paho/kept", b"retained", 1, True)
    assert_counts_add_up(server)


def test_api_publish_and_subscribe_reach_the_real_client(server, clients):
    c = connect(server, clients, "paho-api")
    c.subscribe("api/in", 1)
    started = time.monotonic()
    api(server, "POST", "/mqtt/publish", {"topic": "api/in", "payload": "hi", "qos": 1})
    c.wait_messages(1)
    latency = time.monotonic() - started
    assert c.messages[0][:3] == ("api/in", b"hi", 1)
    assert latency < 1.0, latency
    # A subscription made through the API for the real client's session: the listener
    # delivers that topic to it.
    api(server, "POST", "/mqtt/subscribe", {"client_id": "paho-api", "topic": "api/more",
                                            "qos": 0})
    api(server, "POST", "/mqtt/publish", {"topic": "api/more", "payload": "more"})
    assert c.wait_messages(2)[1][:3] == ("api/more", b"more", 0)
    api(server, "POST", "/mqtt/unsubscribe", {"client_id": "paho-api", "topic": "api/more"})
    # A simulated device's publish reaches the real client; the real client's publish
    # reaches the simulated device (its send_msg).
    control(server, "POST", "/clients", {"client_id": "synthetic-1",
                                         "subscriptions": [{"topic": "api/to-synth", "qos": 1}]})
    control(server, "POST", "/clients/synthetic-1/publish", {"topic": "api/in", "qos": 1,
                                                             "payload": "from-synth"})
    assert c.wait_messages(3)[2][:2] == ("api/in", b"from-synth")
    c.publish("api/to-synth", b"to-synth", 1)
    assert connection(server, "synthetic-1")["send_msg"] == 1
    api(server, "POST", "/mqtt/publish", {"topic": "api/more", "payload": "not-any-more"})
    time.sleep(0.2)
    assert len(c.messages) == 3
    assert_counts_add_up(server)


def test_qos2_both_ways(server, clients):
    sub = connect(server, clients, "paho-q2-sub")
    sub.subscribe("q2/#", 2)
    pub = connect(server, clients, "paho-q2-pub")
    m0 = metrics(server)
    pub.publish("q2/x", b"exactly-once", 2)
    assert sub.wait_messages(1) == [("q2/x", b"exactly-once", 2, False)]
    m1 = metrics(server)
    assert m1["messages/qos2/received"] - m0["messages/qos2/received"] == 1
    assert m1["messages/qos2/sent"] - m0["messages/qos2/sent"] == 1
    until(lambda: api(server, "GET", "/sessions/paho-q2-sub")["data"][0]["deliver_msg"] == 1)


def test_shared_subscription_gives_each_message_to_one_member(server, clients):
    a = connect(server, clients, "paho-share-a")
    b = connect(server, clients, "paho-share-b")
    a.subscribe("$share/grp/jobs/run", 1)
    b.subscribe("$queue/jobs/run", 1)
    routes = api(server, "GET", "/routes/jobs%2Frun")["data"]
    assert len(routes) == 2  # a route per group ($share/grp and $queue)
    for i in range(6):
        api(server, "POST", "/mqtt/publish", {"topic": "jobs/run", "payload": str(i), "qos": 1})
    # Each message once to each group: the two groups have one member each.
    until(lambda: len(a.messages) == 6 and len(b.messages) == 6)
    assert api(server, "GET", "/subscriptions/paho-share-a")["data"][0]["topic"] == "jobs/run"


def test_kickout_closes_the_socket_and_publishes_the_will(server, clients):
    watcher = connect(server, clients, "paho-watch")
    watcher.subscribe("will/#", 1)
    victim = connect(server, clients, "paho-victim", will=("will/victim", b"lost", 1))
    before = stats(server)["connections/count"]
    api(server, "DELETE", "/connections/paho-victim")
    until(lambda: victim.disconnects, what="the kicked client to see its socket closed")
    assert watcher.wait_messages(1)[0][:2] == ("will/victim", b"lost")
    assert connection(server, "paho-victim") is None
    assert stats(server)["connections/count"] == before - 1
    assert_counts_add_up(server)


def test_disconnect_discards_the_will_and_ends_a_clean_session(server, clients):
    watcher = connect(server, clients, "paho-watch2")
    watcher.subscribe("will2/#", 1)
    polite = Paho(server, "paho-polite", will=("will2/polite", b"never"))
    assert connection(server, "paho-polite") is not None
    polite.close()
    until(lambda: connection(server, "paho-polite") is None)
    assert api(server, "GET", "/sessions/paho-polite")["data"] == []
    time.sleep(0.2)
    assert watcher.messages == []


def test_takeover_closes_the_old_socket(server, clients):
    first = connect(server, clients, "paho-twin")
    second = connect(server, clients, "paho-twin")
    until(lambda: first.disconnects, what="the first connection to be taken over")
    assert second.accepted
    rows = api(server, "GET", "/connections/paho-twin")["data"]
    assert len(rows) == 1 and rows[0]["port"] == second.c.socket().getsockname()[1]
    # A simulated device takes over a real client too.
    control(server, "POST", "/clients", {"client_id": "paho-twin"})
    until(lambda: second.disconnects, what="the real client to be taken over")


def test_persistent_session_queues_while_offline_and_resumes(server, clients):
    c = Paho(server, "paho-persist", clean=False)
    c.subscribe("persist/#", 1)
    c.close()
    until(lambda: connection(server, "paho-persist") is None)
    for i in range(3):
        api(server, "POST", "/mqtt/publish", {"topic": f"persist/{i}", "payload": f"m{i}",
                                              "qos": 1})
    session = api(server, "GET", "/sessions/paho-persist")["data"][0]
    assert session["mqueue_len"] == 3 and session["clean_start"] is False
    back = connect(server, clients, "paho-persist", clean=False)
    assert back.connacks[0] == (True, "Success")  # session present
    assert [m[:2] for m in back.wait_messages(3)] == [
        ("persist/0", b"m0"), ("persist/1", b"m1"), ("persist/2", b"m2")]
    session = api(server, "GET", "/sessions/paho-persist")["data"][0]
    assert session["mqueue_len"] == 0 and session["deliver_msg"] == 3
    # A clean start discards it.
    back.close()
    fresh = connect(server, clients, "paho-persist", clean=True)
    assert fresh.connacks[0] == (False, "Success")
    assert api(server, "GET", "/subscriptions/paho-persist")["data"] == []


def test_ban_refuses_connect(server, clients):
    api(server, "POST", "/banned/", {"who": "paho-banned", "as": "client_id"})
    m0 = metrics(server)
    s, got = raw(server, connect_packet("paho-banned"))
    assert got == b"\x20\x02\x00\x05"  # CONNACK: not authorized
    assert closed_by_peer(s)
    assert refused(server, "paho-banned") == [(False, "Not authorized")]
    m1 = metrics(server)
    assert m1["packets/connect"] - m0["packets/connect"] == 2
    assert connection(server, "paho-banned") is None
    api(server, "DELETE", "/banned/paho-banned?as=client_id")
    assert connect(server, clients, "paho-banned").accepted


def test_a_stopped_node_drops_its_real_clients(server, clients):
    c = connect(server, clients, "paho-node")
    control(server, "PUT", f"/nodes/{NODE}", {"node_status": "Stopped"})
    try:
        until(lambda: c.disconnects, what="the stopped node to drop its real client")
        assert refused(server, "paho-node-down") == [(False, "Server unavailable")]
    finally:
        control(server, "PUT", f"/nodes/{NODE}", {"node_status": "Running"})
    assert connection(server, "paho-node") is None
    assert connect(server, clients, "paho-node").accepted


def test_keepalive_timeout_closes_and_publishes_the_will(server, clients):
    watcher = connect(server, clients, "paho-watch3")
    watcher.subscribe("will3/#", 0)
    s, got = raw(server, connect_packet("raw-sleepy", keepalive=1,
                                        will=("will3/sleepy", b"timed out", 0)))
    assert got == b"\x20\x02\x00\x00"
    started = time.monotonic()
    assert closed_by_peer(s, timeout=4)
    assert 1.4 < time.monotonic() - started < 3.5
    assert watcher.wait_messages(1)[0][:2] == ("will3/sleepy", b"timed out")
    # PINGREQ keeps a connection alive; it is counted.
    m0 = metrics(server)
    s, got = raw(server, connect_packet("raw-pinger", keepalive=1))
    for _ in range(4):
        s.sendall(b"\xc0\x00")
        assert s.recv(2) == b"\xd0\x00"  # PINGRESP
        time.sleep(0.5)
    assert connection(server, "raw-pinger") is not None
    assert metrics(server)["packets/pingreq"] - m0["packets/pingreq"] == 4
    s.close()


def test_mqtt5_and_unknown_protocols_are_refused_with_the_right_connack(server):
    assert refused(server, "paho-v5", protocol=paho.MQTTv5) == [
        (False, "Unsupported protocol version")]
    s, got = raw(server, connect_packet("raw-v9", level=9))
    assert got == b"\x20\x02\x00\x01"
    s, got = raw(server, connect_packet("raw-31", level=3, name="MQIsdp"))
    assert got == b"\x20\x02\x00\x00"
    assert connection(server, "raw-31")["proto_name"] == "MQIsdp"
    s.close()
    s, got = raw(server, connect_packet("", clean=False))
    assert got == b"\x20\x02\x00\x02"  # an empty client id needs a clean session
    s, got = raw(server, connect_packet("", clean=True))
    assert got == b"\x20\x02\x00\x00"
    s.close()


def test_invariants_hold_after_mixed_real_and_synthetic_traffic(server, clients):
    rng = random.Random(5)
    reals = [connect(server, clients, f"mix-real-{i}", clean=i % 2 == 0) for i in range(4)]
    for i, c in enumerate(reals):
        c.subscribe(rng.choice(["mix/#", "mix/+/x", "$share/m/mix/a/x"]), i % 3)
    for i in range(4):
        control(server, "POST", "/clients", {"client_id": f"mix-synth-{i}", "clean_start": i % 2,
                                             "subscriptions": [{"topic": "mix/#", "qos": 1}]})
    for step in range(40):
        kind = rng.choice(["real", "real", "device", "api", "kick", "reconnect"])
        topic = f"mix/{rng.choice('ab')}/{rng.choice('xy')}"
        qos = rng.randint(0, 2)
        if kind == "real":
            c = rng.choice(reals)
            if c.accepted and not c.disconnects:
                c.publish(topic, b"r", qos, retain=step % 9 == 0)
        elif kind == "device":
            control(server, "POST", f"/clients/mix-synth-{rng.randint(0, 3)}/publish",
                    {"topic": topic, "qos": qos})
        elif kind == "api":
            api(server, "POST", "/mqtt/publish", {"topic": topic, "qos": qos})
        elif kind == "kick":
            requests.delete(f"{server.url}/api/v3/connections/mix-real-{rng.randint(0, 3)}",
                            auth=AUTH, timeout=10)
        else:
            i = rng.randint(0, 3)
            reals[i].close()
            reals[i] = connect(server, clients, f"mix-real-{i}", clean=i % 2 == 0)
    time.sleep(0.3)
    assert_counts_add_up(server)


# ---------------------------------------------------------------------------
# Hostile clients: malformed packets close only their own connection
# ---------------------------------------------------------------------------


MALFORMED = [
    b"\x00\x00",  # packet type 0
    b"\xf0\x00",  # packet type 15
    b"\x30\x03\x00\x01a",  # PUBLISH before CONNECT
    b"\x10\xff\xff\xff\xff\x7f",  # a remaining length of five bytes
    b"\x10\xff\xff\xff\x7f",  # CONNECT announcing 256 MiB
    b"\x10\x0c\x00\x04MQTT\x04\x01\x00\x3c\x00\x00",  # reserved flag set
    b"\x10\x09\x00\x04MQTT\x04\x02\x00",  # truncated variable header
    b"\x12\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd",  # CONNECT with flags
    b"\x10\x10\x00\x04MQTT\x04\x82\x00\x3c\x00\x04abcd",  # user name flag, no user name
]
AFTER_CONNECT = [
    b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",  # a second CONNECT
    b"\x30\x05\x00\x03a/+",  # PUBLISH to a wildcard
    b"\x30\x05\x00\x03\xff\xfe\xfd",  # a topic name that is not UTF-8
    b"\x36\x06\x00\x01a\x00\x01x",  # QoS 3
    b"\x38\x03\x00\x01a",  # DUP at QoS 0
    b"\x32\x03\x00\x01a",  # QoS 1 without a packet id
    b"\x30\x03\x00\x00x",  # an empty topic name
    b"\x80\x06\x00\x01\x00\x01a\x00",  # SUBSCRIBE with flags 0
    b"\x82\x02\x00\x01",  # SUBSCRIBE without topics
    b"\x82\x07\x00\x01\x00\x02a/\x03",  # SUBSCRIBE at QoS 3
    b"\x82\x06\x00\x01\x00\x09a\x00",  # a string longer than its packet
    b"\xa2\x02\x00\x01",  # UNSUBSCRIBE without topics
    b"\xc0\x01\x00",  # PINGREQ with a body
    b"\x20\x02\x00\x00",  # CONNACK from a client
    b"\x30\xff\xff\xff\x7f",  # PUBLISH announcing 256 MiB
    b"\x62\x01\x00",  # PUBREL cut short
]


def test_malformed_packets_and_oversized_frames_close_only_their_connection(server, clients):
    good = connect(server, clients, "paho-survivor")
    good.subscribe("survive/#", 1)
    for frame in MALFORMED:
        s, _ = raw(server, frame, read=False)
        assert closed_by_peer(s), frame
    for i, frame in enumerate(AFTER_CONNECT):
        s, got = raw(server, connect_packet(f"raw-bad-{i}"))
        assert got == b"\x20\x02\x00\x00"
        s.sendall(frame)
        assert closed_by_peer(s), frame
        until(lambda i=i: connection(server, f"raw-bad-{i}") is None, what=f"{frame}: gone")
    # A frame larger than the listener reads (1 MiB) is refused at its header, not read.
    s, got = raw(server, connect_packet("raw-big"))
    s.sendall(b"\x30" + bytes([0x80, 0x80, 0x80, 0x01]) + b"\x00\x01a" + b"x" * 65536)
    assert closed_by_peer(s)
    # Random bytes after a good CONNECT, 150 connections' worth, some at once.
    rng = random.Random(11)
    open_sockets = []
    for i in range(150):
        s, got = raw(server, connect_packet(f"raw-fuzz-{i}"))
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
        try:
            s.sendall(junk)
        except ConnectionError:
            pass
        open_sockets.append(s)
    for s in open_sockets:
        s.close()
    # The good client was not touched, the listener serves, the database is sound.
    api(server, "POST", "/mqtt/publish", {"topic": "survive/x", "payload": "still here",
                                          "qos": 1})
    assert good.wait_messages(1)[0][:2] == ("survive/x", b"still here")
    assert not good.disconnects
    assert connect(server, clients, "paho-after-fuzz").accepted
    db = sqlite3.connect(server.db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    until(lambda: all(connection(server, f"raw-fuzz-{i}") is None for i in range(150)))
    assert_counts_add_up(server)


def test_slow_trickle_and_silence_before_connect_are_cut(server):
    s, _ = raw(server, b"\x10", read=False)  # a CONNECT that never finishes
    started = time.monotonic()
    assert closed_by_peer(s, timeout=6)
    assert 1.5 < time.monotonic() - started < 4  # STANDIN_MQTT_CONNECT_TIMEOUT=2


# ---------------------------------------------------------------------------
# Limits and credentials (the small server)
# ---------------------------------------------------------------------------


def test_binds_where_told_limits_connections_and_checks_credentials(small, clients):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", small.mqtt_port), timeout=2)
    kw = {"host": "127.0.0.2"}
    assert refused(small, "anon", **kw) == [(False, "Not authorized")]
    assert refused(small, "wrong", username="alice", password="nope", **kw) == [
        (False, "Bad user name or password")]
    ok = [connect(small, clients, f"limit-{i}", username="alice", password="wonder", **kw)
          for i in range(3)]
    assert all(c.accepted for c in ok)
    assert refused(small, "limit-3", username="bob", password="builder", **kw) == [
        (False, "Server unavailable")]
    # Inflight: at most 2 unacknowledged QoS 1 messages on the way to a client.
    ok[0].close()
    until(lambda: connection(small, "limit-0") is None)
    user = b"\x00\x05alice\x00\x06wonder"
    body = b"\x00\x04MQTT\x04\xc2\x00\x3c\x00\x08raw-slow" + user
    s, got = raw(small, bytes([0x10, len(body)]) + body, host="127.0.0.2")
    assert got == b"\x20\x02\x00\x00"
    s.sendall(b"\x82\x09\x00\x01\x00\x04slow\x01")
    assert s.recv(5) == b"\x90\x03\x00\x01\x01"  # SUBACK, QoS 1
    for i in range(5):
        api(small, "POST", "/mqtt/publish", {"topic": "slow", "payload": str(i), "qos": 1})
    publishes = read_publishes(s, 2)
    assert [p[2] for p in publishes] == [b"0", b"1"]
    s.settimeout(0.5)
    with pytest.raises(TimeoutError):
        s.recv(1)  # nothing more until one is acknowledged
    s.sendall(b"\x40\x02" + struct.pack("!H", publishes[0][1]))  # PUBACK
    assert read_publishes(s, 1)[0][2] == b"2"
    # Past STANDIN_MQTT_MAX_QUEUE=5 messages waiting for a client that does not acknowledge,
    # the oldest are dropped (as a full mqueue drops): what waits for it stays bounded.
    for i in range(5, 40):
        api(small, "POST", "/mqtt/publish", {"topic": "slow", "payload": str(i), "qos": 1})
    until(lambda: api(small, "GET", "/sessions/raw-slow")["data"][0]["mqueue_dropped"] >= 20)
    db = sqlite3.connect(small.db_path)
    try:
        waiting = db.execute("SELECT count(*) FROM mqtt_outbox WHERE client_id = 'raw-slow'"
                             ).fetchone()[0]
    finally:
        db.close()
    assert waiting <= 2 + 5 + 5  # inflight, claimed, waiting in the outbox
    s.close()


def read_publishes(s, n):
    """(topic, packet id, payload) of the next n QoS 1 PUBLISH packets on a raw socket."""
    s.settimeout(WAIT)
    out, buf = [], b""
    while len(out) < n:
        while len(buf) < 2 or len(buf) < 2 + buf[1]:
            chunk = s.recv(4096)
            assert chunk, "closed"
            buf += chunk
        length = buf[1]
        body, buf = buf[2:2 + length], buf[2 + length:]
        tlen = struct.unpack("!H", body[:2])[0]
        out.append((body[2:2 + tlen].decode(), struct.unpack("!H", body[2 + tlen:4 + tlen])[0],
                    body[4 + tlen:]))
    return out


def listener_pids(master):
    """The master's children that run mqtt.py."""
    out = []
    for pid in children(master):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"mqtt.py" in f.read():
                    out.append(pid)
        except OSError:
            pass
    return out


def test_the_listener_is_off_unless_asked_for(tmp_path):
    with LiveServer(tmp_path / "standin.db", workers=1, clients=5) as s:
        assert s.wait_workers()
        assert listener_pids(s.proc.pid) == []


def test_a_port_in_use_stops_the_server_with_a_clear_message(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        s = LiveServer(tmp_path / "standin.db", workers=1, clients=5,
                       env={"STANDIN_MQTT_PORT": port}).start()
        assert s.proc.wait(timeout=20) == 1
        assert f"cannot start its MQTT listener: cannot listen on 127.0.0.1:{port}" \
            in s.log_text()
    finally:
        busy.close()


def test_stopping_the_server_stops_the_listener(tmp_path):
    port = free_port()
    s = LiveServer(tmp_path / "standin.db", workers=1, clients=5,
                   env={"STANDIN_MQTT_PORT": port})
    with s:
        listener = listener_pids(s.proc.pid)
        assert len(listener) == 1
        c = Paho(s, "bye", port=port)
        assert c.accepted
    until(lambda: not alive(listener[0]), what="the listener to stop with the server")
    until(lambda: c.disconnects, what="its client to be disconnected")
    c.c.loop_stop()
    db = sqlite3.connect(tmp_path / "standin.db")
    try:
        assert db.execute("SELECT count(*) FROM mqtt_sockets").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM connections WHERE client_id = 'bye'"
                          ).fetchone()[0] == 0
    finally:
        db.close()


# ---------------------------------------------------------------------------
# Debian's mosquitto_pub and mosquitto_sub
# ---------------------------------------------------------------------------

MOSQUITTO_MISSING = [b for b in ("mosquitto_pub", "mosquitto_sub") if not shutil.which(b)]


@pytest.fixture
def mosquitto_clients():
    if MOSQUITTO_MISSING:
        if IN_CI:
            pytest.fail(f"CI is set but Debian's mosquitto-clients are missing:"
                        f" {MOSQUITTO_MISSING}")
        pytest.skip(f"needs Debian's mosquitto-clients: {MOSQUITTO_MISSING}")


def mosquitto(server, tool, *args, timeout=10):
    return subprocess.run([tool, "-h", "127.0.0.1", "-p", str(server.mqtt_port), *args],
                          capture_output=True, timeout=timeout, text=True)


def test_mosquitto_pub_and_sub(server, mosquitto_clients):
    out = {}

    def subscriber():
        out["sub"] = mosquitto(server, "mosquitto_sub", "-i", "mosq-sub", "-t", "mosq/#",
                               "-q", "1", "-v", "-C", "4", "-W", "8")

    t = threading.Thread(target=subscriber)
    t.start()
    until(lambda: api(server, "GET", "/subscriptions/mosq-sub")["data"],
          what="mosquitto_sub to subscribe")
    assert connection(server, "mosq-sub")["proto_ver"] == 4
    m0 = metrics(server)
    for args in (["-t", "mosq/zero", "-m", "q0"], ["-t", "mosq/one", "-m", "q1", "-q", "1"],
                 ["-t", "mosq/kept", "-m", "kept", "-q", "1", "-r"]):
        r = mosquitto(server, "mosquitto_pub", "-i", "mosq-pub", *args)
        assert r.returncode == 0, r.stderr
    api(server, "POST", "/mqtt/publish", {"topic": "mosq/api", "payload": "from-api"})
    t.join(10)
    assert out["sub"].returncode == 0, out["sub"].stderr
    assert out["sub"].stdout.splitlines() == ["mosq/zero q0", "mosq/one q1", "mosq/kept kept",
                                              "mosq/api from-api"]
    m1 = metrics(server)
    assert m1["messages/received"] - m0["messages/received"] == 3
    assert m1["packets/connect"] - m0["packets/connect"] == 3
    r = mosquitto(server, "mosquitto_sub", "-i", "mosq-late", "-t", "mosq/kept", "-C", "1",
                  "-W", "5", "-F", "%t %p %r")
    assert r.stdout.strip() == "mosq/kept kept 1"  # the retained message, flagged
    assert_counts_add_up(server)


def test_mosquitto_sub_kicked_out_and_banned(server, mosquitto_clients):
    with subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(server.mqtt_port),
                           "-i", "mosq-kick", "-t", "kick/#", "-W", "20"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            until(lambda: connection(server, "mosq-kick"), what="mosquitto_sub to connect")
            api(server, "POST", "/banned/", {"who": "mosq-kick", "as": "client_id"})
            api(server, "DELETE", "/connections/mosq-kick")
            # mosquitto_sub reconnects on its own; the ban refuses it.
            until(lambda: proc.poll() is not None, what="mosquitto_sub to give up")
            assert "not authorised" in proc.stderr.read().lower()
            assert connection(server, "mosq-kick") is None
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
            api(server, "DELETE", "/banned/mosq-kick?as=client_id")
    r = mosquitto(server, "mosquitto_pub", "-i", "mosq-kick", "-t", "kick/x", "-m", "ok")
    assert r.returncode == 0


def test_mosquitto_sub_persistent_session_queues_while_offline(server, mosquitto_clients):
    first = mosquitto(server, "mosquitto_sub", "-i", "mosq-persist", "-c", "-q", "1", "-t",
                      "mosqp/#", "-W", "1")
    assert first.returncode in (0, 27), first.stderr  # 27: timed out, as asked
    until(lambda: connection(server, "mosq-persist") is None)
    assert api(server, "GET", "/subscriptions/mosq-persist")["data"][0]["topic"] == "mosqp/#"
    for i in range(2):
        api(server, "POST", "/mqtt/publish", {"topic": f"mosqp/{i}", "payload": f"m{i}",
                                              "qos": 1})
    assert api(server, "GET", "/sessions/mosq-persist")["data"][0]["mqueue_len"] == 2
    back = mosquitto(server, "mosquitto_sub", "-i", "mosq-persist", "-c", "-q", "1", "-t",
                     "mosqp/#", "-v", "-C", "2", "-W", "5")
    assert back.stdout.splitlines() == ["mosqp/0 m0", "mosqp/1 m1"], back.stderr


def test_serve_mqtt_flag_starts_the_listener(tmp_path):
    """`emqx-standin serve --mqtt PORT` (the package's command, as `python .` runs it)."""
    port, mqtt_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    with open(tmp_path / "serve.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, ".", "serve", "--port", str(port), "--mqtt",
                                 str(mqtt_port), "--workers", "1", "--clients", "5", "--db",
                                 str(tmp_path / "standin.db")], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        until(lambda: proc.poll() is not None or port_open(mqtt_port), timeout=20,
              what="the listener of serve --mqtt")
        c = socket.create_connection(("127.0.0.1", mqtt_port), timeout=WAIT)
        RAW_SOCKETS.append(c)
        c.sendall(connect_packet("serve-flag"))
        assert c.recv(4) == b"\x20\x02\x00\x00"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert "mqtt: listening on 127.0.0.1:" in (tmp_path / "serve.log").read_text()


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
