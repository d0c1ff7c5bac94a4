"""Side-by-side benchmark of the MQTT listener (mqtt.py) and Debian's mosquitto broker, one
run, one machine, one load generator (asyncio, raw MQTT 3.1.1 packets) for both.

Usage:  .venv/bin/python bench/mqtt_compare.py [--quick] [--connects 600] [--messages 20000]
            [--latency-samples 300] [--concurrency 8] [--workers 2]

Not part of the test suite. Needs Debian's mosquitto (`apt-get install -y mosquitto`).

Targets, each started on a free localhost port in a temporary directory:
  stand-in   python -m gunicorn -w WORKERS (gunicorn.conf.py, STANDIN_CLIENTS=50, one node,
             STANDIN_MQTT_PORT): the API and the listener, as `emqx-standin serve --mqtt`
  mosquitto  /usr/sbin/mosquitto -c <a file with: listener PORT 127.0.0.1,
             allow_anonymous true, persistence false, max_inflight_messages 32>

Figures (each broker the same way, the median of REPEATS runs):
  connect rate       CONNECT + CONNACK + DISCONNECT on a new TCP connection, CONCURRENCY
                     clients at once, CONNECTS in all: connections per second
  publish QoS 0      one publisher pipelines MESSAGES QoS 0 PUBLISH packets (64-byte payload)
                     to a topic one subscriber has: messages per second through the broker
                     (from the first sent to the last received by the subscriber)
  publish QoS 1      the same at QoS 1 (publisher keeps 32 unacknowledged), subscriber QoS 1
                     (it acknowledges each)
  pub -> sub         one message at a time, QoS 0, publisher to subscriber: latency p50/p99
  API -> socket      (stand-in only) POST /api/v3/mqtt/publish to the subscriber's socket:
                     latency p50/p99, and the HTTP request's own time beside it (what the
                     outbox adds is the difference)
The ratio column is stand-in / mosquitto (above 1 is slower for latency).
"""

import argparse
import asyncio
import base64
import http.client
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from compare import free_port  # noqa: E402  (bench/compare.py: the same helpers)
from compare import log  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
AUTH = "Basic " + base64.b64encode(b"admin:public").decode()


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout} s")


# ---------------------------------------------------------------------------
# A minimal MQTT 3.1.1 client (the load generator)
# ---------------------------------------------------------------------------


def packet(kind_flags, body):
    n, length = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (128 if n else 0))
        if not n:
            return bytes([kind_flags]) + bytes(length) + body


def string(text):
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def connect_packet(client_id, clean=True, keepalive=60):
    return packet(0x10, string("MQTT") + bytes([4, 2 if clean else 0])
                  + struct.pack("!H", keepalive) + string(client_id))


def publish_packet(topic, payload, qos=0, packet_id=0):
    return packet(0x30 | (qos << 1), string(topic) + (struct.pack("!H", packet_id) if qos else b"")
                  + payload)


async def read_packet(reader):
    first = (await reader.readexactly(1))[0]
    length, mult = 0, 1
    while True:
        b = (await reader.readexactly(1))[0]
        length += (b & 127) * mult
        if not b & 128:
            break
        mult *= 128
    return first, await reader.readexactly(length)


class Client:
    def __init__(self, port, client_id):
        self.port, self.client_id = port, client_id

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(connect_packet(self.client_id))
        first, body = await read_packet(self.reader)
        assert first == 0x20 and body[1] == 0, (first, body)
        return self

    async def subscribe(self, topic, qos):
        self.writer.write(packet(0x82, struct.pack("!H", 1) + string(topic) + bytes([qos])))
        first, body = await read_packet(self.reader)
        assert first == 0x90 and body[2] == qos, (first, body)

    async def close(self):
        self.writer.write(b"\xe0\x00")
        await self.writer.drain()
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def connect_rate(port, total, concurrency, tag):
    counter = iter(range(total))

    async def worker():
        for i in counter:
            c = await Client(port, f"{tag}-conn-{i}").connect()
            await c.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def throughput(port, messages, qos, tag):
    sub = await Client(port, f"{tag}-sub").connect()
    await sub.subscribe(f"bench/{tag}", qos)
    pub = await Client(port, f"{tag}-pub").connect()
    payload = b"x" * 64
    done = asyncio.get_running_loop().create_future()

    async def receive():
        got = 0
        while got < messages:
            first, body = await read_packet(sub.reader)
            if first >> 4 == 3:
                got += 1
                if (first >> 1) & 3:
                    tlen = struct.unpack("!H", body[:2])[0]
                    sub.writer.write(b"\x40\x02" + body[2 + tlen:4 + tlen])
        done.set_result(time.perf_counter())

    receiver = asyncio.create_task(receive())
    started = time.perf_counter()
    if qos == 0:
        for i in range(messages):
            pub.writer.write(publish_packet(f"bench/{tag}", payload))
            if i % 200 == 0:
                await pub.writer.drain()
        await pub.writer.drain()
    else:
        window = asyncio.Semaphore(32)

        async def acks():
            for _ in range(messages):
                first, _body = await read_packet(pub.reader)
                window.release()

        acker = asyncio.create_task(acks())
        for i in range(messages):
            await window.acquire()
            pub.writer.write(publish_packet(f"bench/{tag}", payload, 1, i % 65535 + 1))
        await acker
    try:
        finished = await asyncio.wait_for(done, 120)
    finally:
        receiver.cancel()
    await pub.close()
    await sub.close()
    return messages / (finished - started)


async def pub_sub_latency(port, samples, tag):
    sub = await Client(port, f"{tag}-lsub").connect()
    await sub.subscribe(f"lat/{tag}", 0)
    pub = await Client(port, f"{tag}-lpub").connect()
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        pub.writer.write(publish_packet(f"lat/{tag}", b"ping"))
        while True:
            first, _body = await read_packet(sub.reader)
            if first >> 4 == 3:
                break
        out.append((time.perf_counter() - started) * 1000)
    await pub.close()
    await sub.close()
    return out


async def api_latency(port, http_port, samples):
    sub = await Client(port, "api-lsub").connect()
    await sub.subscribe("lat/api", 0)
    loop = asyncio.get_running_loop()
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    body = json.dumps({"topic": "lat/api", "payload": "ping", "qos": 0})
    headers = {"Authorization": AUTH, "Content-Type": "application/json"}

    def post():
        conn.request("POST", "/api/v3/mqtt/publish", body, headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        return time.perf_counter()

    delivered, answered = [], []
    for _ in range(samples):
        started = time.perf_counter()
        reply = loop.run_in_executor(None, post)
        while True:
            first, _body = await read_packet(sub.reader)
            if first >> 4 == 3:
                break
        got = time.perf_counter()
        done = await reply
        delivered.append((got - started) * 1000)
        answered.append((done - started) * 1000)
    conn.close()
    await sub.close()
    return delivered, answered


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------


def start_standin(tmp, workers, poll_ms):
    port, mqtt_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    env.update(STANDIN_DB=os.path.join(tmp, "standin.db"), STANDIN_CLIENTS="50",
               STANDIN_NODES="1", STANDIN_MQTT_PORT=str(mqtt_port),
               STANDIN_MQTT_MAX_CONNS="100000", STANDIN_MQTT_POLL_MS=str(poll_ms))
    out = open(os.path.join(tmp, "standin.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(workers), "-b",
                             f"127.0.0.1:{port}", "--access-logfile", "/dev/null", "app:app"],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_port(port)
    wait_port(mqtt_port)
    return proc, mqtt_port, port


def start_mosquitto(tmp):
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_inflight_messages 32\nlog_dest none\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(port, args, tag):
    figures = {}
    runs = [await connect_rate(port, args.connects, args.concurrency, f"{tag}{r}")
            for r in range(args.repeats)]
    figures["connect"] = statistics.median(runs)
    for qos in (0, 1):
        runs = [await throughput(port, args.messages, qos, f"{tag}{qos}{r}")
                for r in range(args.repeats)]
        figures[f"qos{qos}"] = statistics.median(runs)
    figures["latency"] = await pub_sub_latency(port, args.latency_samples, tag)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connects", type=int, default=600)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-ms", type=int, default=2, help="STANDIN_MQTT_POLL_MS")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts, once")
    args = parser.parse_args()
    if args.quick:
        args.connects, args.messages, args.latency_samples, args.repeats = 100, 2000, 50, 1
    if not os.path.exists(MOSQUITTO):
        raise SystemExit("needs Debian's mosquitto: apt-get install -y mosquitto")
    started = time.time()
    load = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc, mqtt_port, http_port = start_standin(tmp, args.workers, args.poll_ms)
        try:
            log(f"stand-in: MQTT {mqtt_port}, API {http_port}")
            results["stand-in"] = asyncio.run(measure(mqtt_port, args, "s"))
            delivered, answered = asyncio.run(api_latency(mqtt_port, http_port,
                                                          args.latency_samples))
            results["api"] = (delivered, answered)
        finally:
            stop(proc)
        proc, port = start_mosquitto(tmp)
        try:
            log(f"mosquitto: {port}")
            results["mosquitto"] = asyncio.run(measure(port, args, "m"))
        finally:
            stop(proc)
    version = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True).stdout
    version = version.splitlines()[0] if version else "mosquitto"
    ours, theirs = results["stand-in"], results["mosquitto"]
    print(f"MQTT side by side: {os.cpu_count()} CPUs, {version}, stand-in gunicorn -w"
          f" {args.workers} + listener (poll {args.poll_ms} ms); load average {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; run took {time.time() - started:.0f} s")
    print(f"{args.connects} connects ({args.concurrency} at once), {args.messages} messages"
          f" per throughput run, median of {args.repeats}; {args.latency_samples} latency"
          " samples\n")
    print(f"{'figure':<28}{'stand-in':>14}{'mosquitto':>14}{'ratio':>10}")
    print("-" * 66)
    for key, label in (("connect", "connect rate (conn/s)"),
                       ("qos0", "publish QoS 0 (msg/s)"), ("qos1", "publish QoS 1 (msg/s)")):
        print(f"{label:<28}{ours[key]:>14,.0f}{theirs[key]:>14,.0f}"
              f"{ours[key] / theirs[key]:>10.3f}")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        a, b = pct(ours["latency"], q), pct(theirs["latency"], q)
        print(f"{'pub -> sub ' + name + ' (ms)':<28}{a:>14.2f}{b:>14.2f}{a / b:>10.1f}")
    delivered, answered = results["api"]
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        print(f"{'API -> socket ' + name + ' (ms)':<28}{pct(delivered, q):>14.2f}"
              f"{'-':>14}{'-':>10}")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        print(f"{'  (HTTP answer ' + name + ', ms)':<28}{pct(answered, q):>14.2f}"
              f"{'-':>14}{'-':>10}")
    added = [d - a for d, a in zip(delivered, answered, strict=True)]
    print(f"\nAPI -> socket minus the HTTP answer (what the outbox adds): median"
          f" {statistics.median(added):.2f} ms, p99 {pct(added, 0.99):.2f} ms")


if __name__ == "__main__":
    main()
