"""Load: real gunicorn (4 sync workers, one SQLite file), 64 concurrent clients for ~6 s.

Phase 1 (~1.2 s): mixed traffic while the world is reset twice (POST /_standin/reset); only
"never a 5xx, never `database is locked`" is checked there, since a reset wipes what came
before it. A barrier, a baseline, then phase 2 (~4.5 s): every thread owns its simulated
devices, bans and apps, so it knows what each of its requests must answer (0 or 112) and
what the state must be afterwards; publishes go to a topic nobody subscribes to.
Afterwards every acknowledged write is there, the counters add up, the journal kept its
bound and the database stayed small. Throughput, errors and sizes are printed (pytest -s)
and carried in the assertion messages.
"""

import os
import random
import signal
import threading
import time
from collections import Counter
from urllib.parse import quote

import pytest
import requests

from live import LiveServer

pytestmark = pytest.mark.live

AUTH = ("admin", "public")
NODE = "emqx@127.0.0.1"
WORKERS = 4
THREADS = 64
PHASE1 = 1.2
PHASE2 = 4.5
JOURNAL_SIZE = 400  # well under the API requests of phase 2 (about 800 on a busy machine)
DB_BOUND = 50 * 1024 * 1024
START_TIMEOUT = 15


@pytest.fixture
def server(tmp_path):
    db = tmp_path / "standin.db"
    with LiveServer(db, workers=WORKERS, clients=50, env={"STANDIN_JOURNAL_SIZE": JOURNAL_SIZE},
                    args=["--timeout", "60", "--graceful-timeout", "2", "--backlog", "2048",
                          "--access-logfile", "/dev/null", "--error-logfile", "-"],
                    start_timeout=START_TIMEOUT, stop_signal=signal.SIGINT) as live:
        yield {"base": live.url, "db": db, "log": live.log_path}


def db_size(db):
    return sum(os.path.getsize(p) for p in (str(db), f"{db}-wal") if os.path.exists(p))


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = Counter()  # phase -> requests
        self.errors = []  # (phase, what) : 5xx, locked, exceptions
        self.mismatches = []  # phase 2: an answer the thread's model did not predict

    def error(self, phase, what):
        with self.lock:
            self.errors.append((phase, what))


class Client:
    """One thread's session: every answer is counted and screened for errors."""

    def __init__(self, base, stats, phase):
        self.base = base
        self.stats = stats
        self.phase = phase
        self.http = requests.Session()
        self.http.auth = AUTH
        self.last = None

    def __call__(self, method, path, body=None):
        """The answer's JSON `code` (None when the request failed)."""
        with self.stats.lock:
            self.stats.requests[self.phase] += 1
        try:
            r = self.http.request(method, self.base + path, json=body, timeout=30)
        except requests.RequestException as e:
            self.stats.error(self.phase, f"{method} {path}: {type(e).__name__}: {e}")
            return None
        if r.status_code >= 500 or "database is locked" in r.text:
            self.stats.error(self.phase, f"{method} {path}: HTTP {r.status_code} {r.text[:200]}")
            return None
        if r.status_code != 200:
            self.stats.error(self.phase, f"{method} {path}: HTTP {r.status_code} {r.text[:200]}")
            return None
        try:
            self.last = r.json()
        except ValueError:
            self.stats.error(self.phase, f"{method} {path}: not JSON: {r.text[:200]}")
            return None
        return self.last.get("code")


READS = ["/api/v3/connections/?_limit=20", "/api/v3/stats/", "/api/v3/subscriptions/?_limit=20",
         "/api/v3/banned/?_limit=20", "/api/v3/apps/", f"/api/v3/nodes/{NODE}/metrics/",
         "/api/v3/nodes/", f"/api/v3/nodes/{NODE}/listeners", "/api/v3/routes/?_limit=20",
         "/api/v3/sessions/?_page=2&_limit=10", "/api/v3/brokers/"]


def phase1(t, call, stop):
    """Anything goes; the world is reset under our feet."""
    rng = random.Random(1000 + t)
    i = 0
    while not stop.is_set():
        i += 1
        cid = f"p1-{t}-{rng.randint(0, 2)}"
        op = rng.random()
        if op < 0.4:
            call("GET", rng.choice(READS))
        elif op < 0.55:
            call("POST", "/_standin/clients", {"client_id": cid, "clean_start": rng.random() < .5})
        elif op < 0.7:
            call("POST", "/api/v3/mqtt/subscribe", {"client_id": cid, "topic": f"p1/{t}/{i % 5}"})
        elif op < 0.8:
            call("POST", "/api/v3/mqtt/publish", {"topic": f"p1/{t}/{i % 5}", "payload": "x"})
        elif op < 0.88:
            call("DELETE", f"/api/v3/connections/{cid}")
        elif op < 0.95:
            call("POST", "/api/v3/banned/", {"who": f"p1-ban-{t}-{i}", "as": "client_id"})
        else:
            call("POST", "/api/v3/apps/", {"app_id": f"p1-app-{t}-{i}", "status": True})


class Device:
    def __init__(self, cid, clean):
        self.cid, self.clean = cid, clean
        self.connected = self.session = False
        self.subs = {}


def phase2(t, call, deadline, stats, out):
    """Mixed traffic on this thread's own objects; every answer checked against the model."""
    rng = random.Random(t)
    devices = [Device(f"ld-{t}-{k}", k == 0) for k in range(3)]
    bans, apps = set(), {}
    acked = Counter()
    pubs = Counter()
    i = 0

    def expect(code, want, what):
        if code is not None and code != want:
            with stats.lock:
                stats.mismatches.append(f"{what}: code {code}, model says {want}")
        return code == want

    while time.monotonic() < deadline:
        i += 1
        d = rng.choice(devices)
        q = quote(d.cid, safe="")
        op = rng.random()
        if op < 0.35:
            expect(call("GET", rng.choice(READS)), 0, "read")
        elif op < 0.45:
            if expect(call("POST", "/_standin/clients", {"client_id": d.cid,
                                                         "clean_start": d.clean}), 0, "connect"):
                if d.clean or not d.session:
                    d.subs = {}
                d.connected = d.session = True
                acked["connect"] += 1
        elif op < 0.55:  # the device leaves (< 0.50) or is kicked out
            what, path = (("disconnect", f"/_standin/clients/{q}") if op < 0.50
                          else ("kick", f"/api/v3/connections/{q}"))
            want = 0 if d.connected else 112
            if expect(call("DELETE", path), want, f"{what} {d.cid}") and want == 0:
                d.connected = False
                if d.clean:
                    d.session, d.subs = False, {}
                acked[what] += 1
        elif op < 0.68:
            topic, qos = f"load/{t}/{rng.randint(0, 7)}", rng.randint(0, 2)
            want = 0 if d.session else 112
            if expect(call("POST", "/api/v3/mqtt/subscribe", {"client_id": d.cid, "topic": topic,
                                                              "qos": qos}), want,
                      f"subscribe {d.cid}") and want == 0:
                d.subs[topic] = qos
                acked["subscribe"] += 1
        elif op < 0.74:
            topic = rng.choice(sorted(d.subs)) if d.subs else f"load/{t}/0"
            want = 0 if d.session else 112
            if expect(call("POST", "/api/v3/mqtt/unsubscribe", {"client_id": d.cid,
                                                                "topic": topic}), want,
                      f"unsubscribe {d.cid}") and want == 0:
                d.subs.pop(topic, None)
                acked["unsubscribe"] += 1
        elif op < 0.84:
            qos = rng.randint(0, 2)
            if expect(call("POST", "/api/v3/mqtt/publish", {"topic": f"loadpub/{t}",
                                                            "payload": f"m{i}", "qos": qos}),
                      0, "publish"):
                pubs[qos] += 1
        elif op < 0.91:
            who = f"lb-{t}-{i}"
            if expect(call("POST", "/api/v3/banned/", {"who": who, "as": "client_id",
                                                       "reason": "load"}), 0, "ban"):
                bans.add(who)
                acked["ban"] += 1
        elif op < 0.95 and bans:
            who = rng.choice(sorted(bans))
            if expect(call("DELETE", f"/api/v3/banned/{who}?as=client_id"), 0, "unban"):
                bans.discard(who)
                acked["unban"] += 1
        else:
            app_id = f"la-{t}-{i}"
            if expect(call("POST", "/api/v3/apps/", {"app_id": app_id, "status": True}), 0,
                      "app"):
                apps[app_id] = call.last["data"]["secret"]
                acked["app"] += 1
    out[t] = {"devices": devices, "bans": bans, "apps": apps, "acked": acked, "pubs": pubs}


def test_64_clients_mixed_load_with_resets(server):
    base, db = server["base"], server["db"]
    stats = Stats()
    main = Client(base, stats, "main")
    assert main("GET", "/api/v3/brokers/") == 0
    size_before = db_size(db)

    stop1 = threading.Event()
    barrier = threading.Barrier(THREADS + 1, timeout=120)
    deadline = [0.0]
    out = {}

    def run(t):
        call = Client(base, stats, "phase 1")
        try:
            phase1(t, call, stop1)
        except Exception as e:  # noqa: BLE001 - recorded, the barrier must still be reached
            stats.error("phase 1", f"thread {t}: {e!r}")
        barrier.wait()
        barrier.wait()
        call.phase = "phase 2"
        try:
            phase2(t, call, deadline[0], stats, out)
        except Exception as e:  # noqa: BLE001
            stats.error("phase 2", f"thread {t}: {e!r}")
        finally:
            call.http.close()

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(THREADS)]
    started = time.monotonic()
    for th in threads:
        th.start()
    resets = []
    for pause in (0.3, 0.45):
        time.sleep(pause)
        resets.append(main("POST", "/_standin/reset", {}))
    time.sleep(max(0.0, PHASE1 - (time.monotonic() - started)))
    stop1.set()
    barrier.wait()
    phase1_elapsed = time.monotonic() - started
    assert resets == [0, 0], (resets, stats.errors[:5])

    # --- baseline, with every thread waiting ---
    def get(path):
        assert main("GET", path) == 0, (path, getattr(main, "last", None))
        return main.last

    m0 = get(f"/api/v3/nodes/{NODE}/metrics/")["data"]
    s0 = get(f"/api/v3/nodes/{NODE}/stats/")["data"]
    bans0 = {b["who"] for b in get("/api/v3/banned/")["data"]}
    apps0 = {a["app_id"] for a in get("/api/v3/apps/")["data"]}
    requests_phase1 = stats.requests["phase 1"]

    deadline[0] = time.monotonic() + PHASE2
    started2 = time.monotonic()
    barrier.wait()
    for th in threads:
        th.join(timeout=60)
    phase2_elapsed = time.monotonic() - started2
    assert not any(th.is_alive() for th in threads)
    requests_phase2 = stats.requests["phase 2"]

    # --- what the checked phase acknowledged ---
    acked = sum((o["acked"] for o in out.values()), Counter())
    pubs = sum((o["pubs"] for o in out.values()), Counter())
    devices = [d for o in out.values() for d in o["devices"]]
    bans = set().union(*(o["bans"] for o in out.values()))
    apps = {k: v for o in out.values() for k, v in o["apps"].items()}
    rps1 = requests_phase1 / phase1_elapsed
    rps2 = requests_phase2 / phase2_elapsed
    size_after = db_size(db)
    journal = get("/_standin/journal?limit=100000")["data"]
    journal_size = get("/_standin")["data"]["journal_size"]
    summary = (f"phase 1: {requests_phase1} requests in {phase1_elapsed:.1f} s ({rps1:.0f} req/s),"
               f" 2 resets; phase 2: {requests_phase2} requests in {phase2_elapsed:.1f} s"
               f" ({rps2:.0f} req/s); errors: {len(stats.errors)}; model mismatches:"
               f" {len(stats.mismatches)}; acknowledged writes: {dict(acked)},"
               f" publishes {sum(pubs.values())} {dict(pubs)}; database {size_before} ->"
               f" {size_after} bytes (file + wal); journal {len(journal)}/{journal_size}")
    print("\nload:", summary)
    assert len(out) == THREADS, summary
    assert not stats.errors, f"{summary}\n" + "\n".join(map(str, stats.errors[:20]))
    assert not stats.mismatches, f"{summary}\n" + "\n".join(stats.mismatches[:20])
    assert len(journal) <= journal_size == JOURNAL_SIZE, summary
    assert len(journal) == journal_size, summary  # far more requests than the bound
    assert size_after < DB_BOUND, summary
    assert requests_phase2 > 500, summary

    # --- every acknowledged write is there ---
    conns = get("/api/v3/connections/")
    sessions = get("/api/v3/sessions/")
    subs = get("/api/v3/subscriptions/")
    conn_ids = {c["client_id"] for c in conns["data"]}
    sess_ids = {s["client_id"] for s in sessions["data"]}
    sub_pairs = {(s["client_id"], s["topic"]): s["qos"] for s in subs["data"]}
    wrong = []
    for d in devices:
        if (d.cid in conn_ids) != d.connected:
            wrong.append(f"{d.cid}: connected {d.cid in conn_ids}, model {d.connected}")
        if (d.cid in sess_ids) != d.session:
            wrong.append(f"{d.cid}: session {d.cid in sess_ids}, model {d.session}")
        got = {topic: qos for (cid, topic), qos in sub_pairs.items() if cid == d.cid}
        if got != d.subs:
            wrong.append(f"{d.cid}: subscriptions {got}, model {d.subs}")
    assert not wrong, f"{summary}\n" + "\n".join(wrong[:20])
    banned = {b["who"] for b in get("/api/v3/banned/")["data"]}
    assert bans <= banned, (summary, sorted(bans - banned)[:10])
    own = {b for b in banned if b.startswith("lb-")}
    assert own == bans, (summary, sorted(own - bans)[:10])
    assert banned - own == bans0, summary
    app_ids = {a["app_id"] for a in get("/api/v3/apps/")["data"]}
    assert set(apps) <= app_ids and app_ids == apps0 | set(apps), summary
    for app_id, secret in list(apps.items())[:5]:
        r = requests.get(base + "/api/v3/brokers/", auth=(app_id, secret), timeout=10)
        assert r.status_code == 200, (app_id, r.status_code)

    # --- the counters add up ---
    m1 = get(f"/api/v3/nodes/{NODE}/metrics/")["data"]
    s1 = get(f"/api/v3/nodes/{NODE}/stats/")["data"]
    dm = {k: m1[k] - m0[k] for k in m1}
    n_pubs = sum(pubs.values())
    # API publishes are not messages received (only devices' PUBLISH packets are).
    assert dm["messages/received"] == 0, (summary, dm["messages/received"])
    for qos in range(3):
        assert dm[f"messages/qos{qos}/received"] == 0, (summary, qos)
    assert dm["messages/dropped"] == n_pubs, summary  # nobody subscribes to loadpub/*
    assert dm["messages/sent"] == 0, summary
    assert dm["packets/connect"] == acked["connect"], summary
    assert dm["packets/disconnect/sent"] == acked["kick"], summary
    assert dm["packets/disconnect/received"] == acked["disconnect"], summary
    connected = sum(d.connected for d in devices)
    with_session = [d for d in devices if d.session]
    assert s1["connections/count"] == s0["connections/count"] + connected, summary
    assert s1["connections/count"] == conns["meta"]["count"] == len(conns["data"]), summary
    assert s1["sessions/count"] == s0["sessions/count"] + len(with_session), summary
    assert s1["sessions/count"] == sessions["meta"]["count"] == len(sessions["data"]), summary
    assert s1["subscriptions/count"] == (s0["subscriptions/count"]
                                         + sum(len(d.subs) for d in with_session)), summary
    assert s1["subscriptions/count"] == subs["meta"]["count"] == len(subs["data"]), summary
    listeners = get(f"/api/v3/nodes/{NODE}/listeners")["data"]
    mqtt = sum(x["current_conns"] for x in listeners if x["protocol"].startswith("mqtt:"))
    assert mqtt == s1["connections/count"], (summary, mqtt)
    assert get(f"/api/v3/nodes/{NODE}")["data"]["connections"] == s1["connections/count"]
    routes = get("/api/v3/routes/")
    assert s1["routes/count"] == routes["meta"]["count"] == len(routes["data"]), summary

    log = server["log"].read_text(errors="replace")
    assert "database is locked" not in log, summary
    assert "Traceback" not in log, (summary, log[-3000:])
