"""Credentials and secrets.

- Every /api/v3/ and /_standin/ route of the URL map and unknown paths, with every
  method, refuse missing, malformed and wrong credentials: HTTP 401 with WWW-Authenticate
  (only POST /api/v3/auth is open), and such a request changes nothing.
- No dashboard password in clear in the database file (or its WAL), none in the journal.
- Under real gunicorn (4 workers): no password or secret in its log output or the journal;
  a disabled, expired or deleted application, a deleted user or a replaced password is
  refused at once by every worker.
- App secrets are compared in constant time (hmac.compare_digest).
- The per-process cache of password checks stays bounded.
"""

import base64
import inspect
import json
import os
import re
import signal
import time
from pathlib import Path
from urllib.parse import quote

import pytest

import app as emqx
import minirest
from conftest import control_sample
from conftest import NODE
from conftest import SEEDED
from conftest import url_map_routes
from live import burst as live_burst
from live import LiveServer
from live import request
from live import send

CID = "emqx-api-test:v1"
START_TIMEOUT = 15
WORKERS = 4

OPEN = {("POST", "/api/v3/auth"), ("GET", "/_standin/ready")}
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
PROTECTED = ("/api/v3", "/_standin")  # README: every route under these takes credentials
# The path values of each control's request, by endpoint (objects that exist: the request
# must be refused before anything looks at them).
CONTROL_VALUES = {
    "standin.index": {}, "standin.ready": {}, "standin.openapi_document": {},
    "standin.list_worlds": {}, "standin.create_world": {}, "standin.delete_world": {"name": "w"},
    "standin.list_snapshots": {}, "standin.save_snapshot": {},
    "standin.restore_snapshot": {"name": "s"}, "standin.delete_snapshot": {"name": "s"},
    "standin.journal_count": {}, "standin.journal_unmatched": {},
    "standin.docs": {},
    "standin.docs_asset": {"filename": "index.css"}, "standin.reset": {},
    "standin.connect_device": {}, "standin.disconnect_device": {"clientid": CID},
    "standin.device_publish": {"clientid": CID},
    "standin.raise_alarm": {}, "standin.clear_alarm": {"id": "cpu_high_watermark"},
    "standin.set_node_status": {"node": NODE}, "standin.get_faults": {},
    "standin.set_faults": {}, "standin.clear_faults": {}, "standin.journal": {},
    "standin.clear_journal": {}, "standin.get_traffic": {}, "standin.set_traffic": {},
    "standin.stop_traffic": {}, "standin.advance_traffic": {},
}
# Unknown paths (credentials come before routing) and trailing-slash spellings.
OTHER_PATHS = ["/api/v3/nope", "/api/v3/no/such/path", f"/api/v3/nodes/{NODE}/nope",
               "/_standin/nope", "/api/v3/connections/x/acl", "/api/v3", "/api/v3/",
               "/api/v3/brokers/", "/api/v3/connections/", "/api/v3/apps/", "/api/v3/users/"]


def all_paths():
    """A concrete path for every route of the URL map under PROTECTED, then OTHER_PATHS."""
    paths = [route.path(control_sample(CONTROL_VALUES, route) if route.is_control else SEEDED)
             for route in url_map_routes(*PROTECTED)]
    return list(dict.fromkeys(paths + OTHER_PATHS))


def basic(raw):
    return "Basic " + base64.b64encode(raw).decode()


BAD_CREDENTIALS = {
    "missing": None,
    "empty header": "",
    "scheme only": "Basic",
    "scheme and space": "Basic ",
    "bad base64": "Basic !!!not-base64!!!",
    "truncated base64": "Basic YWRtaW46cHVibGlj" [:-3],
    "no colon": basic(b"adminpublic"),
    "empty user": basic(b":public"),
    "empty user and password": basic(b":"),
    "empty password": basic(b"admin:"),
    "not UTF-8": basic(b"\xff\xfe:\xff"),
    "NUL in user": basic(b"admin\x00:public"),
    "Bearer scheme": "Bearer " + base64.b64encode(b"admin:public").decode(),
    "Bearer token": "Bearer 0123456789abcdef",
    "Digest scheme": 'Digest username="admin", realm="minirest-server"',
    "token68 junk": "Basic " + "A" * 5000,
    "wrong password": basic(b"admin:wrong"),
    "wrong user": basic(b"nobody:public"),
    "password with a space": basic(b"admin:public "),
    "case of user": basic(b"ADMIN:public"),
}


def _check_401(r, label, problems):
    body = r.get_data(as_text=True)
    header = r.headers.get("WWW-Authenticate", "")
    if r.status_code != 401 or header != 'Basic Realm="minirest-server"':  # minirest's R
        problems.append(f"{label}: HTTP {r.status_code}, WWW-Authenticate {header!r}: {body[:120]}")
    elif r.mimetype != "application/json":
        problems.append(f"{label}: Content-Type {r.mimetype}")
    elif json.loads(body) != {"code": 401, "message": "UNAUTHORIZED"}:
        problems.append(f"{label}: body {body[:120]}")


@pytest.mark.usefixtures("fast_hash")
def test_every_route_and_method_refuses_bad_credentials(make_app, get):
    c = make_app(JOURNAL_SIZE=0)
    paths = all_paths()
    before = [get(c, p) for p in ("/api/v3/connections/", "/api/v3/apps/", "/api/v3/users/",
                                  "/api/v3/banned/", "/_standin")]
    problems = []
    count = 0
    for path in paths:
        for method in METHODS:
            if (method, path.rstrip("/")) in OPEN:
                continue
            for label, header in BAD_CREDENTIALS.items():
                headers = {} if header is None else {"Authorization": header}
                body = {"client_id": CID, "topic": "a", "who": "x", "as": "client_id",
                        "app_id": "x", "username": "x", "password": "x", "node_status":
                        "Stopped", "key": "k", "value": "v", "id": "x"}
                r = c.open(path, method=method, headers=headers, json=body)
                r.close()
                count += 1
                _check_401(r, f"{method} {path} [{label}]", problems)
    assert not problems, f"{len(problems)} of {count} requests:\n" + "\n".join(problems[:60])
    # Refused means refused: nothing was written by any of them.
    after = [get(c, p) for p in ("/api/v3/connections/", "/api/v3/apps/", "/api/v3/users/",
                                 "/api/v3/banned/", "/_standin")]
    assert after == before
    assert count > 2000


@pytest.mark.usefixtures("fast_hash")
def test_no_dashboard_password_in_clear_in_the_database(make_app, get, auth):
    c = make_app()
    first, second = "Zq7-first-Pw-51c0d3", "Xk2-second-Pw-9e7b44"
    assert c.post("/api/v3/users/", auth=auth, json={"username": "clerk", "password": first,
                                                      "tags": "t"}).get_json() == {"code": 0}
    assert c.post("/api/v3/auth", json={"username": "clerk", "password": first}).get_json() \
        == {"code": 0}
    assert c.get("/api/v3/brokers/", auth=("clerk", first)).status_code == 200
    r = c.put("/api/v3/change_pwd/clerk", auth=auth, json={"old_pwd": first, "new_pwd": second})
    assert r.get_json() == {"code": 0}
    assert c.get("/api/v3/brokers/", auth=("clerk", second)).status_code == 200
    assert c.get("/api/v3/brokers/", auth=("clerk", first)).status_code == 401
    # Also a password in a query string (the journal records queries).
    c.post(f"/api/v3/auth?username=clerk&password={second}")
    path = c.settings["DATABASE"]
    files = [p for p in (path, path + "-wal", path + "-shm") if os.path.exists(p)]
    assert path + "-wal" in files  # the app's connection is open: recent pages are in the WAL
    for secret in (first, second):
        for f in files:
            data = Path(f).read_bytes()
            for form in (secret.encode(), secret.encode("utf-16-le"),
                         base64.b64encode(f"clerk:{secret}".encode())):
                assert form not in data, (secret, form, f)
    journal = json.dumps(get(c, "/_standin/journal?limit=1000"))
    assert "clerk" in journal
    assert first not in journal and second not in journal
    # Stored salted and hashed: two users with one password get different hashes.
    c.post("/api/v3/users/", auth=auth, json={"username": "clerk2", "password": second})
    import sqlite3
    db = sqlite3.connect(path)
    rows = dict(db.execute("SELECT username, password FROM users").fetchall())
    db.close()
    assert rows["clerk"] != rows["clerk2"]
    assert all(second not in h for h in rows.values())


def test_app_secret_is_compared_in_constant_time():
    source = inspect.getsource(minirest.verify_password)
    assert "hmac.compare_digest(" in source
    compared = re.findall(r"compare_digest\(([^\n]*)", source)
    assert any("secret" in line for line in compared), compared
    # And nowhere is a secret compared with == / !=.
    assert not re.search(r"secret[\"'\]]*\s*[!=]=|[!=]=\s*\S*secret", inspect.getsource(
        emqx)), "a secret compared with == or !="


def test_password_cache_stays_bounded(fast_hash, make_app, monkeypatch):
    """5000 distinct wrong passwords: the cache of password checks never grows past its bound.

    (fast_hash sets PASSWORD_METHOD before the database is created, on the first request.)
    """
    monkeypatch.setattr(minirest, "_verified", {})
    c = make_app(JOURNAL_SIZE=0)
    assert c.get("/api/v3/brokers/", auth=("admin", "public")).status_code == 200
    largest = 0
    refused = 0
    for i in range(5000):
        r = c.get("/api/v3/brokers/", auth=("admin", f"wrong-{i}"))
        refused += r.status_code == 401
        largest = max(largest, len(minirest._verified))
    assert refused == 5000
    # The bound is 4096 entries; it is checked before an entry is added, so 4096 + 1.
    assert largest <= 4097, largest
    assert len(minirest._verified) < 5000
    # The right password still works after the churn.
    assert c.get("/api/v3/brokers/", auth=("admin", "public")).status_code == 200


# ---------------------------------------------------------------------------
# Real gunicorn, 4 workers
# ---------------------------------------------------------------------------

ENV_SECRET = "EnvAppSecret-d41d8cd98f"  # STANDIN_APP_SECRET of the server below
ADMIN = ("admin", ENV_SECRET)
ACCESS_FORMAT = '%(p)s %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secrets-gunicorn")
    with LiveServer(tmp / "standin.db", workers=WORKERS, clients=20,
                    env={"STANDIN_APP_ID": "admin", "STANDIN_APP_SECRET": ENV_SECRET},
                    args=["--timeout", "30", "--graceful-timeout", "2", "--access-logfile", "-",
                          "--error-logfile", "-", "--access-logformat", ACCESS_FORMAT],
                    start_timeout=START_TIMEOUT, stop_signal=signal.SIGINT) as live:  # quick stop
        yield {"base": live.url, "log": live.log_path, "workers": live.wait_workers()}


def call(base, method, path, auth=ADMIN, body=None):
    """One request over a fresh connection."""
    return request(base, method, path, body, auth=auth)


def admin(base, method, path, body=None):
    return send(base, method, path, body, auth=ADMIN)


def served_by(log, path):
    """pid and status of every access-log line for exactly `path` (query included)."""
    out = []
    marker = f" {path} HTTP/"
    for line in log.read_text(errors="replace").splitlines():
        if marker in line:
            m = re.match(r"<?(\d+)>? .*\" (\d{3}) ", line)
            if m:
                out.append((int(m.group(1)), int(m.group(2))))
    return out


def burst(base, path, auth, n, threads=8):
    """The statuses of `n` GETs of `path` over fresh connections from `threads` threads."""
    return [r.status_code for r in live_burst(base, [path] * n, workers=threads, auth=auth)]


def refused_everywhere(server, path, creds, label):
    """30 requests over fresh connections right after the change: all 401; then more, until
    every worker has been seen refusing (all must be 401 too)."""
    base, log = server["base"], server["log"]
    statuses = burst(base, path, creds, 30)
    assert statuses == [401] * 30, (label, statuses)
    workers = server["workers"]
    for _ in range(6):
        seen = {pid for pid, status in served_by(log, path) if status == 401}
        if workers <= seen:
            break
        statuses = burst(base, path, creds, 30)
        assert statuses == [401] * 30, (label, statuses)
        time.sleep(0.05)
    seen = {pid for pid, status in served_by(log, path) if status == 401}
    assert workers <= seen, (label, "workers that refused:", seen, "workers:", workers)


def accepted_everywhere(server, path, creds, label):
    """Warm every worker (caches included) with the credentials while they are valid."""
    base, log = server["base"], server["log"]
    for _ in range(8):
        statuses = burst(base, path, creds, 30)
        assert statuses == [200] * 30, (label, statuses)
        seen = {pid for pid, status in served_by(log, path) if status == 200}
        if server["workers"] <= seen:
            return
    pytest.fail(f"{label}: not every worker answered: {seen} of {server['workers']}")


@pytest.mark.live
def test_revoked_credentials_are_refused_at_once_by_every_worker(server):
    base = server["base"]
    assert len(server["workers"]) == WORKERS, server["workers"]
    now = int(time.time())
    scenarios = []
    # Applications: disabled, expired, deleted.
    for app_id, create, change in (
            ("rev-disabled", {"status": True}, ("PUT", {"status": False})),
            ("rev-expired", {"status": True, "expired": now + 3600},
             ("PUT", {"status": True, "expired": now - 1})),
            ("rev-deleted", {"status": True}, ("DELETE", None))):
        secret = f"sec-{app_id}-8d1f"
        admin(base, "POST", "/api/v3/apps/", {"app_id": app_id, "secret": secret, **create})
        scenarios.append((app_id, (app_id, secret),
                          (change[0], f"/api/v3/apps/{app_id}", change[1]), None))
    # Dashboard users: deleted; password replaced (the old one refused, the new accepted).
    admin(base, "POST", "/api/v3/users/", {"username": "rev-user-del", "password": "pw-del-1"})
    scenarios.append(("rev-user-del", ("rev-user-del", "pw-del-1"),
                      ("DELETE", "/api/v3/users/rev-user-del", None), None))
    admin(base, "POST", "/api/v3/users/", {"username": "rev-user-pw", "password": "pw-old-1"})
    scenarios.append(("rev-user-pw", ("rev-user-pw", "pw-old-1"),
                      ("PUT", "/api/v3/change_pwd/rev-user-pw",
                       {"old_pwd": "pw-old-1", "new_pwd": "pw-new-2"}),
                      ("rev-user-pw", "pw-new-2")))
    for n, (label, creds, (method, path, body), replacement) in enumerate(scenarios):
        probe = f"/api/v3/nodes/{quote(NODE)}/stats"
        accepted_everywhere(server, f"{probe}?before={n}", creds, label)
        admin(base, method, path, body)
        refused_everywhere(server, f"{probe}?after={n}", creds, label)
        if replacement:
            assert burst(base, "/api/v3/brokers/", replacement, 16) == [200] * 16, label


@pytest.mark.live
def test_no_password_or_secret_in_log_or_journal(server):
    base, log = server["base"], server["log"]
    user_pw = ["UsrPw-one-6b1e9a", "UsrPw-two-03c7d2", "UsrPw-wrong-f45a1b"]
    app_secret = "AppSec-given-9a7c31"
    admin(base, "POST", "/api/v3/users/", {"username": "logged", "password": user_pw[0]})
    assert call(base, "POST", "/api/v3/auth", auth=None,
                body={"username": "logged", "password": user_pw[0]}).json() == {"code": 0}
    admin(base, "PUT", "/api/v3/change_pwd/logged", {"old_pwd": user_pw[0],
                                                     "new_pwd": user_pw[1]})
    for _ in range(8):
        assert call(base, "GET", "/api/v3/brokers/", auth=("logged", user_pw[1])).status_code \
            == 200
        assert call(base, "GET", "/api/v3/brokers/", auth=("logged", user_pw[2])).status_code \
            == 401
    generated = admin(base, "POST", "/api/v3/apps/", {"app_id": "logged-app", "status": True})
    generated = generated["data"]["secret"]
    admin(base, "POST", "/api/v3/apps/", {"app_id": "logged-app2", "secret": app_secret,
                                           "status": True})
    for creds in (("logged-app", generated), ("logged-app2", app_secret), ADMIN):
        assert call(base, "GET", "/api/v3/brokers/", auth=creds).status_code == 200
    admin(base, "PUT", "/api/v3/apps/logged-app2", {"status": True, "name": "renamed"})
    journal = json.dumps(admin(base, "GET", "/_standin/journal?limit=100000")["data"])
    assert "/api/v3/change_pwd/logged" in journal and "logged-app2" in journal
    time.sleep(0.2)  # the last access-log lines
    text = log.read_text(errors="replace")
    assert "/api/v3/change_pwd/logged" in text  # the log is the one we think
    secrets = {"user password": user_pw[0], "changed password": user_pw[1],
               "wrong password": user_pw[2], "given app secret": app_secret,
               "generated app secret": generated, "STANDIN_APP_SECRET": ENV_SECRET}
    leaks = []
    for label, secret in secrets.items():
        forms = [secret, base64.b64encode(f"logged:{secret}".encode()).decode(),
                 base64.b64encode(f"admin:{secret}".encode()).decode()]
        for where, haystack in (("gunicorn log", text), ("journal", journal)):
            for form in forms:
                if form in haystack:
                    lines = [ln for ln in haystack.splitlines() if form in ln][:2]
                    leaks.append(f"{label} ({form}) in the {where}: {lines}")
    assert not leaks, "\n".join(leaks)
