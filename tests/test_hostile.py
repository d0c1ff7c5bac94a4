"""Hostile input on every route of the URL map: the API and every /_standin/ control
(and, for bodies over 1 MiB and wrong methods, the open pages too).

Bodies that are not JSON or not an object, missing, extra and wrongly typed keys, huge and
odd strings (100 KB, 5000-byte topics, emoji, RTL, combining marks, NUL, lone surrogates,
SQL metacharacters), percent-encoding tricks in paths, `_page`/`_limit` edge values, bodies
over 1 MiB, wrong methods, unknown paths. Each answer must be the documented error in the
JSON envelope, never a 5xx, and bad input must change nothing stored: a snapshot of every
list route (times stripped) is compared before and after, and the tables themselves are
fingerprinted after every request, so a failure names the request that changed something.

Every problem of a test is collected and reported together (request, expected, actual).
"""

import hashlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import quote

import pytest

import app as emqx
import database
import traffic
from conftest import AUTH
from conftest import control_sample
from conftest import DEFAULTS
from conftest import NODE
from conftest import SEEDED
from conftest import strip_times
from conftest import url_map_routes

# Cheap dashboard-password hashes (user creation and password checks run many times here).
pytestmark = pytest.mark.usefixtures("fast_hash")

CID = "emqx-api-test:v1"  # a seeded, connected client with a session, subscribed to /test
PLUGIN = "emqx_retainer"  # active
INACTIVE = "emqx_auth_clientid"
ALARM = "cpu_high_watermark"
BAN = "flooder-01"
NOBODY = "hostile-nobody"

# Routes that do not read a body act on their path alone: aim them at objects whose
# change is a no-op or an error, so that ignoring a hostile body changes nothing either.
# (The other path values are real objects of the seeded cluster: conftest.SEEDED.)
HARMLESS = {"kickout_connection": {"clientid": NOBODY}, "del_app": {"appid": NOBODY},
            "delete_user": {"name": NOBODY}, "unload_plugin": {"plugin": INACTIVE}}


@dataclass
class Control:
    """What the sweeps need to know of a /_standin route: its path values (real objects,
    or harmless ones where the body is not read) and whether its view reads the body."""

    values: dict = field(default_factory=dict)
    reads_body: bool = False


# Every /_standin route, by endpoint; a new one missing here fails every sweep.
CONTROLS = {
    "standin.index": Control(),
    "standin.list_worlds": Control(),
    "standin.create_world": Control(reads_body=True),
    "standin.delete_world": Control({"name": "no-such-world"}),
    "standin.list_snapshots": Control(),
    "standin.save_snapshot": Control(reads_body=True),
    "standin.restore_snapshot": Control({"name": "no-such-snapshot"}),
    "standin.delete_snapshot": Control({"name": "no-such-snapshot"}),
    "standin.journal_count": Control(reads_body=True),
    "standin.journal_unmatched": Control(reads_body=True),
    "standin.ready": Control(),
    "standin.openapi_document": Control(),
    "standin.docs": Control(),
    "standin.docs_asset": Control({"filename": "index.css"}),
    "standin.reset": Control(reads_body=True),
    "standin.connect_device": Control(reads_body=True),
    "standin.disconnect_device": Control({"clientid": NOBODY}),
    "standin.device_publish": Control({"clientid": NOBODY}, reads_body=True),
    "standin.raise_alarm": Control(reads_body=True),
    "standin.clear_alarm": Control({"id": ALARM}, reads_body=True),
    "standin.set_node_status": Control({"node": NODE}, reads_body=True),
    "standin.get_faults": Control(),
    "standin.set_faults": Control(reads_body=True),
    "standin.clear_faults": Control(),
    "standin.journal": Control(reads_body=True),
    "standin.clear_journal": Control(),
    "standin.get_traffic": Control(),
    "standin.set_traffic": Control(reads_body=True),
    "standin.stop_traffic": Control(),
    "standin.advance_traffic": Control(reads_body=True),
}

PAGINATED = {"list_connections", "list_node_connections", "list_sessions",
             "list_node_sessions", "list_subscriptions", "list_node_subscriptions",
             "list_routes", "list_banned"}
# Every API route whose view reads parameters (query and JSON body): a body that is not a
# JSON object is a 109 there; the others never look at the body.
API_READS_BODY = PAGINATED | {
    "mqtt_publish", "mqtt_subscribe", "mqtt_unsubscribe", "create_banned", "delete_banned",
    "add_app", "update_app", "auth_user", "create_user", "update_user", "change_pwd",
    "update_config", "update_node_config", "update_plugin_configs"}


def reads_body(route):
    if route.is_control:
        return control_sample(CONTROLS, route).reads_body
    return route.endpoint in API_READS_BODY


def target(route, raw=None):
    """The route's concrete path: seeded or harmless values, `raw` = {param: text as is}."""
    if route.is_control:
        values = control_sample(CONTROLS, route).values
    else:
        values = {**SEEDED, **HARMLESS.get(route.endpoint, {})}
    return route.path(values, raw)


# Every route of the API and of the controls, from the URL map; ALL_ROUTES adds the open
# pages (/status, the overview).
ROUTES = url_map_routes("/api/v3", "/_standin")
ALL_ROUTES = url_map_routes()
BY_NAME = {}
for _route in ROUTES:
    BY_NAME.setdefault(_route.endpoint, _route)

# The lists a snapshot reads (every list route, the node-scoped ones included), times stripped.
SNAPSHOT = [target(r) for r in ROUTES if r.method == "GET" and r.endpoint.startswith(
    ("list_", "get_", "lookup_node_stats")) and "clientid" not in r.params]
SNAPSHOT += [f"/api/v3/subscriptions/{quote(CID, safe='')}", "/api/v3/apps/admin",
             "/api/v3/routes/%2Ftest", "/_standin", "/_standin/faults"]

EXTRA = {"zz_extra": [1, {"a": None}], "__proto__": {"polluted": True}, "": "",
         "code": 5, "data": None, "'; DROP TABLE x;--": "%_"}
SURROGATE = "\ud800"  # valid JSON ("\\ud800"), not valid Unicode text
HUGE = "h" * 100_000
LONG_TOPIC = "t/" * 2500  # 5000 bytes


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def send(c, method, path, body=None, raw=None, query="", headers=None, auth=AUTH,
         answer_headers=None):
    """(HTTP status, parsed JSON or None, text); a 5xx comes back as status 500 + message.
    The answer's headers are copied into `answer_headers` (a dict) when given."""
    kwargs = {"auth": auth, "headers": headers or {}}
    if raw is not None:
        kwargs["data"] = raw
        kwargs["content_type"] = "application/json"
    elif body is not None:
        kwargs["data"] = json.dumps(body)  # ensure_ascii: lone surrogates travel as \ud800
        kwargs["content_type"] = "application/json"
    if query:
        path = f"{path}?{query}"
    try:
        r = c.open(path, method=method, **kwargs)
    except AssertionError as e:  # StandinClient refuses any 5xx
        return 500, None, str(e)[:300]
    text = r.get_data(as_text=True)
    r.close()  # file responses (pages, assets) hold their file open until closed
    if answer_headers is not None:
        answer_headers.update(r.headers)
        answer_headers["mimetype"] = r.mimetype
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    return r.status_code, data, text[:300]


def envelope_problem(status, data, text):
    """What is wrong with an answer's shape (None when it is a proper envelope)."""
    if status >= 500:
        return f"HTTP {status}: {text}"
    if not isinstance(data, dict) or not isinstance(data.get("code"), int):
        return f"HTTP {status}, not a JSON envelope: {text!r}"
    if data["code"] != 0 and set(data) != {"code", "message"}:
        return f"error envelope is not {{code, message}}: {text}"
    if status != 200 and data["code"] != status and (status, data["code"]) != (400, 109):
        return f"HTTP {status} with code {data['code']}: {text}"
    return None


class StoredState:
    """Notices any commit to the database (PRAGMA data_version, through a side connection),
    then compares a digest of every table to tell a real change from an empty commit.

    The clients of these tests run with the journal off (JOURNAL_SIZE=0), so an answer to
    bad input that commits anything at all is a write.
    """

    def __init__(self, path):
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self.version = self._version()
        self.digest = self._digest()

    def _version(self):
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def _digest(self):
        digest = hashlib.sha256()
        tables = [n for (n,) in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'journal' ORDER BY name")]
        for table in tables:
            digest.update(table.encode())
            for row in self.db.execute(f'SELECT * FROM "{table}" ORDER BY 1, 2'):
                digest.update(repr(row).encode())
        return digest.hexdigest()

    def changed(self):
        version = self._version()
        if version == self.version:
            return False
        self.version = version
        digest = self._digest()
        changed, self.digest = digest != self.digest, digest
        return changed

    def close(self):
        self.db.close()


def snapshot(c):
    out = {}
    for path in SNAPSHOT:
        status, data, text = send(c, "GET", path)
        out[path] = (status, strip_times(data))
    return out


def snapshot_diff(before, after):
    return [f"stored state changed: GET {p} differs after the hostile requests"
            for p in before if before[p] != after[p]]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One seeded database (the pinned settings, cheap password hash) that every test copies:
    seeding once instead of per test; every copy starts from the very same stored state."""
    path = str(tmp_path_factory.mktemp("hostile-template") / "template.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(database, "PASSWORD_METHOD", "pbkdf2:sha256:1")
        for key, value in DEFAULTS.items():
            mp.setitem(emqx.app.config, key, value)
        database.ensure_database(path, emqx.app.config)
    assert not os.path.exists(path + "-wal") or not os.path.getsize(path + "-wal")
    return {"path": path, "snapshot": None}


@pytest.fixture
def fresh(make_app, template):
    """fresh(journal=False) -> a client on a new copy of the template database."""

    def factory(journal=False):
        c = make_app(**({} if journal else {"JOURNAL_SIZE": 0}))
        shutil.copyfile(template["path"], c.settings["DATABASE"])
        return c

    return factory


@pytest.fixture
def checker(fresh, template):
    """A Checker on a fresh copy; the snapshot before is the template's (taken once)."""
    made = []

    def factory():
        c = fresh()
        if template["snapshot"] is None:
            template["snapshot"] = snapshot(fresh())
        made.append(Checker(c, template["snapshot"]))
        return made[-1]

    yield factory
    for check in made:
        check.state.close()


@dataclass
class Checker:
    """Sends requests, checks each answer, collects every problem; state checked throughout."""

    c: object
    before: dict
    problems: list = field(default_factory=list)
    count: int = 0

    def __post_init__(self):
        self.state = StoredState(self.c.settings["DATABASE"])

    def expect(self, label, method, path, expected, body=None, raw=None, query="",
               headers=None, data_check=None, auth=AUTH, answer=None, answer_headers=None):
        """`expected`: a set of (HTTP status, code) pairs, any of which is right; `answer`:
        the exact JSON body (sent as application/json), when there is only one."""
        self.count += 1
        answer_headers = {} if answer_headers is None else answer_headers
        status, data, text = send(self.c, method, path, body=body, raw=raw, query=query,
                                  headers=headers, auth=auth, answer_headers=answer_headers)
        where = f"{method} {path[:200]}{'?' + query if query else ''} [{label}]"
        problem = envelope_problem(status, data, text)
        if problem:
            self.problems.append(f"{where}: {problem}")
        elif (status, data["code"]) not in expected:
            self.problems.append(f"{where}: expected (HTTP, code) in {sorted(expected)},"
                                 f" got HTTP {status} {text}")
        elif data_check is not None and data["code"] == 0 and not data_check(data):
            self.problems.append(f"{where}: unexpected data {text}")
        elif answer is not None and (data != answer or list(data) != list(answer)
                                     or answer_headers["mimetype"] != "application/json"):
            self.problems.append(f"{where}: want {answer} as application/json, got {text}"
                                 f" as {answer_headers['mimetype']}")
        if self.state.changed():
            self.problems.append(f"{where}: changed the stored state (bad input must not)")
        return status, data

    def finish(self):
        self.problems += snapshot_diff(self.before, snapshot(self.c))
        assert not self.problems, (f"{len(self.problems)} problem(s) in {self.count}"
                                   " requests:\n" + "\n".join(self.problems[:80]))


def ok_or(code):
    return {(200, code)}


NOT_JSON = {(400, 109)}
NOT_FOUND = {(404, 404)}


# ---------------------------------------------------------------------------
# Bodies that are not a JSON object
# ---------------------------------------------------------------------------

NOT_JSON_BODIES = [b"{", b"not json", b"{'a': 1}", b'{"a": 1,}', b"\xff\xfe\x00",
                   b"\x00", b'{"topic": "a"} trailing', b"NaN-ish {", "é€".encode("latin-1",
                                                                          "replace")]
WRONG_JSON_TYPES = [b"[]", b'[{"topic": "a"}]', b'"a string"', b"null", b"5", b"-1.5e300",
                    b"true", b'"\\ud800"']


def test_body_not_a_json_object_on_every_route(checker):
    """109 (HTTP 400) wherever the body is read; elsewhere the body is ignored entirely:
    the answer is the one without a body."""
    check = checker()
    for route in ROUTES:
        path = target(route)
        if reads_body(route):
            expected = NOT_JSON
        else:
            status, data, text = send(check.c, route.method, path)
            assert status < 500, (route.id, text)
            check.state.changed()
            if not isinstance(data, dict) or "code" not in data:
                # Pages, static files, the OpenAPI document: the same status, whatever the body.
                for raw in NOT_JSON_BODIES + WRONG_JSON_TYPES:
                    got = send(check.c, route.method, path, raw=raw)[0]
                    if got != status:
                        check.problems.append(f"{route.id} body {raw!r}: HTTP {got},"
                                              f" want {status}")
                continue
            expected = {(status, data["code"])}
        for raw in NOT_JSON_BODIES:
            check.expect(f"body {raw[:20]!r}", route.method, path, expected, raw=raw)
        for raw in WRONG_JSON_TYPES:
            check.expect(f"JSON {raw.decode()}", route.method, path, expected, raw=raw)
    check.finish()


# ---------------------------------------------------------------------------
# Keys: missing, wrongly typed, out of range, odd strings that must be refused
# ---------------------------------------------------------------------------

NON_STR = [7, -1, 1.5, [1], {"a": 1}, True, False]


def str_key(missing=None, surrogate=(108,), also=()):
    """A string key: a non-string is 108; null/absent is `missing` (None: optional, skipped);
    a lone surrogate (not text) one of `surrogate`; then the key's own cases."""
    cases = [(v, {108}) for v in NON_STR] + [(SURROGATE, set(surrogate))]
    if missing is not None:
        cases.append((None, {missing}))
    return cases + list(also)


# Refused as topic names and as filters alike.
BAD_TOPICS = [("", {115}), (LONG_TOPIC, {115}), (HUGE, {115}), ("a\x00b", {115}),
              ("a/#/b", {115}), ("a#", {115}), ("+a/b", {115})]
# Refused as filters only (valid topic names otherwise).
BAD_FILTERS = [("$share/g", {115}), ("$share//t", {115}), ("$share/g+/t", {115}),
               ("a,b/#/c", {115})]


def topic_key(filters):
    return str_key(107, (108, 115), BAD_TOPICS + (BAD_FILTERS if filters else []))


QOS = [(None, {108}), ("x", {108}), ("3", {108}), (3, {108}), (-1, {108}), (1.5, {108}),
       ([1], {108}), ({"a": 1}, {108}), (True, {108})]
BOOL = [(None, {108}), ("x", {108}), ("1", {108}), (1, {108}), (0, {108}), ([True], {108}),
        ({"a": 1}, {108})]
STRICT_INT = [(None, {108}), ("x", {108}), ("1", {108}), (1.5, {108}), ([1], {108}),
              ({"a": 1}, {108}), (True, {108}), (2 ** 70, {108}), (-(2 ** 70), {108})]


@dataclass
class Spec:
    valid: dict
    keys: dict  # key -> [(bad value, {codes})]
    missing: dict = field(default_factory=dict)  # key dropped -> code
    cases: list = field(default_factory=list)  # (label, body, {codes}) whole bodies
    status: dict = field(default_factory=dict)  # code -> HTTP status when not 200


SPECS = {
    "mqtt_publish": Spec(
        {"topic": "hostile/pub", "payload": "p", "qos": 1, "retain": False, "client_id": CID},
        {"topic": topic_key(False) + [(",", {115}), ("a/+", {115})],
         "payload": str_key(), "qos": QOS, "retain": BOOL, "client_id": str_key()},
        {"topic": 107}, [("topics not a string", {"topics": 5}, {108})]),
    "mqtt_subscribe": Spec(
        {"client_id": CID, "topic": "hostile/sub", "qos": 1},
        {"client_id": str_key(107, (108, 112), [(HUGE, {112}), ("", {112}), ("a\x00b", {112})]),
         "topic": topic_key(True), "qos": QOS},
        {"client_id": 107, "topic": 107}),
    "mqtt_unsubscribe": Spec(
        {"client_id": CID, "topic": "/test"},
        {"client_id": str_key(107, (108, 112), [(HUGE, {112})]), "topic": topic_key(True)},
        {"client_id": 107, "topic": 107}),
    "create_banned": Spec(
        {"who": "hostile-ban", "as": "client_id", "reason": "r", "by": "b", "desc": "d",
         "until": int(time.time()) + 3600},
        {"who": str_key(107, also=[("", {108})]),
         "as": str_key(107, also=[("x", {108}), ("CLIENT_ID", {108}), ("", {108})]),
         "until": [("x", {108}), ("1.5", {108}), ("-5", {108}), (1.5, {108}), ([1], {108}),
                   ({"a": 1}, {108}), (True, {108})]},
        {"who": 107, "as": 107},
        [("ip_address not an IP", {"who": "x", "as": "ip_address"}, {108}),
         ("ip_address out of range", {"who": "1.2.3.999", "as": "ip_address"}, {108})]),
    "delete_banned": Spec(
        {"as": "client_id"},
        {"as": str_key(107, also=[("x", {108}), ("", {108})])}, {"as": 107},
        [("ip_address, who not an IP", {"as": "ip_address"}, {108})]),
    "add_app": Spec(
        {"app_id": "hostile-app", "secret": "s3cr3t", "name": "n", "status": True},
        {"app_id": str_key(107, also=[("", {108})]), "secret": str_key()}, {"app_id": 107}),
    "auth_user": Spec(
        {"username": "admin", "password": "public"},
        {"username": str_key(102, (102, 108), [("", {102}), (NOBODY, {102})]),
         "password": str_key(102, (102, 108), [("", {102}), ("wrong", {102})])},
        {"username": 102, "password": 102}),
    "create_user": Spec(
        {"username": "hostile-user", "password": "pw", "tags": "t"},
        {"username": str_key(102, (102, 108), [("", {102}), ("admin", {102})]),
         "password": str_key(102, (102, 108), [("", {102})])},
        {"username": 102, "password": 102}),
    "change_pwd": Spec(
        {"old_pwd": "public", "new_pwd": "public2"},
        {"old_pwd": str_key(102, (102, 108), [("wrong", {102}), ("", {102})]),
         "new_pwd": str_key(107, also=[("", {108})])},
        {"old_pwd": 102, "new_pwd": 107}),
    "update_config": Spec(
        {"key": "hostile.key", "value": "v"},
        {"key": str_key(107, also=[("", {108})]), "value": str_key(107)},
        {"key": 107, "value": 107}),
    "update_plugin_configs": Spec(
        {"retainer.storage_type": "disc"}, {},
        cases=[(f"value {v!r}", {"k": v}, {102}) for v in [7, None, [1], {"a": 1}, True]]
        + [("one good one bad", {"retainer.storage_type": "disc", "k": 7}, {102}),
           ("surrogate value", {"k": SURROGATE}, {102, 108}),
           ("surrogate key", {SURROGATE: "v"}, {102, 108})]),
    "standin.reset": Spec(
        {}, {"seed": STRICT_INT + [(2 ** 62 + 1, {108})],
             "nodes": STRICT_INT + [(0, {108}), (65, {108})],
             "clients": STRICT_INT + [(-1, {108}), (2_000_001, {108})]}),
    "standin.connect_device": Spec(
        {"client_id": "hostile-dev", "username": "u", "clean_start": True, "proto_ver": 4,
         "keepalive": 60, "port": 50000, "ipaddress": "10.0.0.1",
         "subscriptions": [{"topic": "a/b", "qos": 1}]},
        {"client_id": str_key(107, also=[("", {108}), ("a\x00b", {108}), ("c" * 1025, {108}),
                                         (HUGE, {108})]),
         "username": str_key(), "clean_start": BOOL,
         "proto_ver": [(None, {108}), ("4", {108}), (2, {108}), (6, {108}), (True, {108}),
                       ([4], {108}), ({"a": 1}, {108})],
         "keepalive": STRICT_INT + [(-1, {108}), (65536, {108})],
         "port": STRICT_INT + [(0, {108}), (65536, {108})],
         "ipaddress": str_key(also=[("x", {108}), ("999.0.0.1", {108}), ("", {108})]),
         "subscriptions": [(None, {108}), ("x", {108}), (5, {108}), ([1], {108}),
                           ({"topic": "a"}, {108}), ([{"topic": 5}], {108}),
                           ([{"qos": 1}], {108}), ([{"topic": "a", "qos": 3}], {108}),
                           ([{"topic": "a", "qos": True}], {108}),
                           ([{"topic": "a/#/b"}], {115}), ([{"topic": "a\x00"}], {115}),
                           ([{"topic": LONG_TOPIC}], {115})],
         "node": [(7, {108}), ("emqx@nowhere", {404})]},
        {"client_id": 107}),
    "standin.raise_alarm": Spec(
        {"id": "hostile-alarm", "severity": "warning", "title": "t", "summary": "s",
         "node": NODE},
        {"id": str_key(107), "severity": str_key(also=[("x", {108}), ("WARNING", {108})]),
         "title": str_key(), "summary": str_key(),
         "node": str_key(also=[("emqx@nowhere", {404})])},
        {"id": 107}),
    "standin.clear_alarm": Spec(
        {"node": NODE},
        # `node` selects which rows go; a value no node has removes nothing (404).
        {"node": [(v, {404, 108}) for v in NON_STR + [SURROGATE]]
         + [("emqx@nowhere", {404})]}),
    "standin.set_node_status": Spec(
        {"node_status": "Running"},
        {"node_status": str_key(107, also=[("x", {108}), ("running", {108}), ("", {108})])},
        {"node_status": 107}),
    "standin.set_faults": Spec(
        {"latency_ms": 0, "error_rate": 0, "routes": ["list_brokers"], "seed": 1},
        {"latency_ms": [(None, {108}), ("x", {108}), (-1, {108}), (60001, {108}),
                        (1.5, {108}), (True, {108}), ([1], {108}),
                        ({"min": 5, "max": 1}, {108}), ({"min": "x"}, {108}),
                        ({"min": -1}, {108}), ({"max": 60001}, {108})],
         "error_rate": [(None, {108}), ("x", {108}), (-0.1, {108}), (1.5, {108}),
                        (True, {108}), ([1], {108})],
         "error": [(None, {108}), ("x", {108}), ([1], {108}), (7, {108}),
                   ({"status": 600}, {108}), ({"status": 199}, {108}),
                   ({"status": "x"}, {108}), ({"status": True}, {108}),
                   ({"code": "x"}, {108}), ({"code": 1.5}, {108}), ({"message": 5}, {108})],
         "routes": [("x", {108}), ([1], {108}), (["nope"], {108}), ({"a": 1}, {108}),
                    (7, {108})],
         "seed": [(None, {108}), ("x", {108}), (1.5, {108}), (True, {108})]}),
    "standin.journal": Spec(
        {"limit": 10},
        {"limit": [(None, {108}), ("x", {108}), (0, {108}), (-1, {108}), (1.5, {108}),
                   (True, {108}), ([1], {108}), (2 ** 63, {108}), ("\u0661", {108}),
                   ("", {108})]}),
    "standin.set_traffic": Spec(
        {"connects_per_min": 10, "speed": 0},
        {name: STRICT_INT + [(low - 1, {108}), (high + 1, {108})]
         for name, (_, low, high) in traffic.RATES.items()}),
    "standin.advance_traffic": Spec(  # valid, but traffic is off: 102, nothing moves
        {"seconds": 1},
        {"seconds": [(v, {108}) for v, _ in STRICT_INT[1:]] + [(0, {108}), (601, {108})]},
        {"seconds": 107}),
}
SPECS["update_node_config"] = SPECS["update_config"]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_missing_extra_and_wrongly_typed_keys(checker, name):
    """Every documented key of every write, each wrong type and value in turn: the
    documented error, extra keys change nothing about it, and nothing is stored."""
    check = checker()
    route = BY_NAME[name]
    routes = [r for r in ROUTES if r.endpoint == name]
    spec = SPECS[name]
    for r in routes:
        path = target(r)
        for key, cases in spec.keys.items():
            for n, (value, codes) in enumerate(cases):
                body = {**spec.valid, key: value}
                expected = {(404 if code == 404 else 200, code) for code in codes}
                check.expect(f"{key}={value!r:.40}", r.method, path, expected, body=body)
                if n == 0:  # extra keys beside a bad one: the same answer
                    check.expect(f"{key}={value!r:.40} + extra keys", r.method, path,
                                 expected, body={**EXTRA, **body})
        for key, code in spec.missing.items():
            body = {k: v for k, v in spec.valid.items() if k != key}
            check.expect(f"without {key}", r.method, path, ok_or(code), body=body)
            check.expect(f"without {key} + extra keys", r.method, path, ok_or(code),
                         body={**EXTRA, **body})
        if spec.missing:
            first = next(iter(spec.missing.values()))
            check.expect("empty object", r.method, path, ok_or(first), body={})
            check.expect("extra keys only", r.method, path, ok_or(first), body=EXTRA)
        for label, body, codes in spec.cases:
            expected = {(404 if code == 404 else 200, code) for code in codes}
            check.expect(label, r.method, path, expected, body=body)
    if name == "update_plugin_configs":
        check.expect("no body at all", route.method, target(route), ok_or(107))
    check.finish()


# ---------------------------------------------------------------------------
# Paths: percent-encoding tricks in every path parameter
# ---------------------------------------------------------------------------

# Tricks that still decode to some (unknown) text value.
DECODABLE = ["%2F", "%00", "%25", "%252F", "%zz", "%2e%2e", "..%2F..%2F", "a%20b",
             "%E2%80%AE", "%0D%0AX-Injected:%201", "%27%3B%20DROP%20TABLE%20x%3B--", "_",
             "%25_%25", "%F0%9F%A6%84", "L" * 5000]
# Bytes that are not UTF-8 (overlong `/`, an encoded surrogate, a bare 0xFF): no such path.
UNDECODABLE = ["%C0%AF", "%ED%A0%80", "%FF", "a%C0%AFb", "%E2%82"]

# The answer for a parameter naming nothing that exists: (HTTP, code), and whether to send
# the route's valid body (else none, so that a write cannot succeed on a new name).
UNKNOWN_TARGET = {
    "node": NOT_FOUND,
    "clientid": {"lookup_connections": ok_or(0), "lookup_node_connections": ok_or(0),
                 "lookup_session": ok_or(0), "lookup_node_session": ok_or(0),
                 "lookup_client_subscriptions": ok_or(0),
                 "lookup_client_subscriptions_with_node": ok_or(0),
                 "kickout_connection": ok_or(112), "clean_acl_cache": ok_or(112),
                 "standin.disconnect_device": ok_or(112), "standin.device_publish": ok_or(112)},
    "topic": {"lookup_routes": ok_or(0), "clean_acl_cache": ok_or(0)},
    "appid": {"lookup_app": ok_or(0), "update_app": ok_or(102), "del_app": ok_or(0)},
    "name": {"update_user": ok_or(102), "delete_user": ok_or(102),
             "standin.delete_world": NOT_FOUND, "standin.restore_snapshot": NOT_FOUND,
             "standin.delete_snapshot": NOT_FOUND},
    "username": {"change_pwd": ok_or(102)},
    "who": {"delete_banned": ok_or(0)},
    "plugin": {"get_plugin_configs": NOT_FOUND, "load_plugin": ok_or(102),
               "unload_plugin": ok_or(102), "update_plugin_configs": NOT_FOUND},
    "app": {"update_config": ok_or(107), "update_node_config": ok_or(107)},
    "id": {"standin.clear_alarm": NOT_FOUND},
    "filename": {"standin.docs_asset": NOT_FOUND},
}
VALID_BODY = {"update_app": {"name": "n", "status": True}, "update_user": {"tags": "t"},
              "change_pwd": {"old_pwd": "public", "new_pwd": "x"},
              "delete_banned": {"as": "client_id"}, "standin.device_publish": {"topic": "t"},
              "update_plugin_configs": {"k": "v"}, "standin.set_node_status": {"node_status":
                                                                           "Running"},
              "update_node_config": {"key": "k", "value": "v"}}


def _empty_data(data):
    return data["data"] in ([], None) if "data" in data else True


def test_percent_encoding_tricks_in_every_path_parameter(checker):
    check = checker()
    for route, param in [(r, p) for r in ROUTES for p in r.params]:
        body = VALID_BODY.get(route.endpoint)
        expected_unknown = UNKNOWN_TARGET[param]
        if isinstance(expected_unknown, dict):
            expected_unknown = expected_unknown[route.endpoint]
        if param == "app":  # a new app name is a valid target: send no body, get 107
            body = None
        answer = NOT_FOUND_ANSWER if expected_unknown == NOT_FOUND else None
        for raw in DECODABLE:
            check.expect(f"{param}={raw}", route.method, target(route, {param: raw}),
                         expected_unknown, body=body, data_check=_empty_data, answer=answer)
        for raw in UNDECODABLE:
            check.expect(f"{param}={raw} (not UTF-8)", route.method,
                         target(route, {param: raw}), NOT_FOUND, body=body,
                         answer=NOT_FOUND_ANSWER)
    check.finish()


def test_traversal_never_serves_files(fresh):
    """The docs assets route joins a file name: no way out of its folder."""
    c = fresh()
    for path in ["/_standin/docs/..%2F..%2F..%2Fapp.py", "/_standin/docs/%2e%2e/app.py",
                 "/_standin/docs/..%5C..%5Capp.py", "/_standin/docs/%2Fetc%2Fpasswd",
                 "/_standin/docs/..%252F..%252Fapp.py", "/_standin/docs/%00",
                 "/_standin/docs/index.css%00.py"]:
        status, data, text = send(c, "GET", path)
        assert status == 404 and data == {"code": 404, "message": "not found"}, (path, text)


# ---------------------------------------------------------------------------
# _page / _limit edge values
# ---------------------------------------------------------------------------

HUGE_INT = str(2 ** 62)
PAGE_CASES = [
    # (query, expected codes, data must be empty when accepted)
    ("_page=0", {0}, False), ("_page=-1", {0}, False), (f"_page=-{HUGE_INT}", {0}, False),
    (f"_page={HUGE_INT}", {0}, True), (f"_page={2 ** 62 + 1}", {108}, None),
    ("_page=" + "9" * 40, {108}, None), ("_page=-" + "9" * 40, {108}, None),
    ("_page=1.5", {108}, None), ("_page=", {108}, None), ("_page=1e3", {108}, None),
    ("_page=0x10", {108}, None), ("_page=NaN", {108}, None), ("_page=inf", {108}, None),
    ("_page=%D9%A1", {108}, None), ("_page=%EF%BC%91", {108}, None),  # Arabic-Indic, fullwidth 1
    ("_page=%C2%B2", {108}, None), ("_page=%00", {108}, None), ("_page=1%00", {108}, None),
    ("_page=%C0%AF", {108}, None), ("_page=%zz", {108}, None), ("_page", {108}, None),
    ("_limit=0", {108}, None), ("_limit=-1", {108}, None), (f"_limit={HUGE_INT}", {0}, False),
    (f"_limit={2 ** 62 + 1}", {108}, None), ("_limit=" + "9" * 40, {108}, None),
    ("_limit=1.5", {108}, None), ("_limit=", {108}, None), ("_limit=%D9%A1", {108}, None),
    ("_limit=%EF%BC%91", {108}, None), ("_limit=%00", {108}, None),
    # Offsets far beyond any row (and beyond SQLite's 64-bit integers): an empty page.
    (f"_page={HUGE_INT}&_limit={HUGE_INT}", {0}, True),
    (f"_page={2 ** 40}&_limit={2 ** 40}", {0}, True),
    (f"_page=2&_limit={HUGE_INT}", {0}, True),
]
PAGE_BODIES = [({"_page": 1.5}, {108}), ({"_page": True}, {108}), ({"_page": None}, {108}),
               ({"_page": [1]}, {108}), ({"_page": 2 ** 70}, {108}), ({"_limit": 0}, {108}),
               ({"_limit": -5}, {108}), ({"_limit": "x"}, {108}), ({"_limit": {}}, {108}),
               ({"_page": 2 ** 62, "_limit": 2 ** 62}, {0})]


def test_page_and_limit_edge_values(checker):
    check = checker()
    for route in [r for r in ROUTES if r.endpoint in PAGINATED]:
        path = target(route)
        for query, codes, empty in PAGE_CASES:
            check.expect(query, "GET", path, {(200, code) for code in codes}, query=query,
                         data_check=(lambda d: d["data"] == []) if empty else None)
        for body, codes in PAGE_BODIES:
            check.expect(f"body {body}", "GET", path, {(200, code) for code in codes},
                         body=body)
    journal = target(BY_NAME["standin.journal"])
    for query, codes in [("limit=0", {108}), ("limit=-1", {108}), ("limit=1.5", {108}),
                         ("limit=", {108}), ("limit=%D9%A1", {108}), (f"limit={HUGE_INT}", {0}),
                         (f"limit={2 ** 62 + 1}", {108}), ("limit=%00", {108})]:
        check.expect(query, "GET", journal, {(200, code) for code in codes}, query=query)
    check.finish()


# ---------------------------------------------------------------------------
# Over 1 MiB, wrong methods, unknown paths
# ---------------------------------------------------------------------------


TOO_LARGE = {"code": 413, "message": "request body too large"}
NOT_FOUND_ANSWER = {"code": 404, "message": "not found"}
NOT_ALLOWED = {"code": 405, "message": "method not allowed"}
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def test_body_over_1mib_is_413_everywhere(checker):
    """A body over 1 MiB gets HTTP 413 in the envelope, on every route of the URL map (the
    open pages too), with and without credentials, and changes nothing."""
    check = checker()
    big = b'{"topic": "' + b"x" * (1024 * 1024) + b'"}'
    for route in ALL_ROUTES:
        path = target(route) if route in ROUTES else route.path({})
        for auth in (AUTH, None):
            check.expect(f"1 MiB + 13 bytes, {'with' if auth else 'without'} credentials",
                         route.method, path, {(413, 413)}, raw=big, auth=auth,
                         answer=TOO_LARGE)
    check.finish()


def _allowed(path):
    """The methods some rule of the URL map takes at `path` (as routing sees it: raw)."""
    return set(emqx.app.url_map.bind("localhost").allowed_methods(path)) - {"HEAD", "OPTIONS"}


def test_wrong_method_is_405_and_unknown_path_404(checker):
    """Every method a route's path does not take: on the API a JSON 404, as minirest has no
    method fallback (a JSON 400 on the API root, as 3.0.1); on the stand-in's own paths a
    JSON 405 naming the ones it does (Allow). With or without a trailing slash. Unknown
    paths are a JSON 404 whatever the method; none of it changes anything."""
    check = checker()
    for route in ALL_ROUTES:
        path = target(route) if route in ROUTES else route.path({})
        allowed = _allowed(path)
        assert route.method in allowed, (route.id, path, allowed)
        for method, spelling in [(m, p) for m in sorted(set(METHODS) - allowed)
                                 for p in dict.fromkeys([path, path.rstrip("/") + "/"])]:
            if path.rstrip("/") == "/api/v3":
                check.expect(method, method, spelling, {(400, 400)},
                             answer={"code": 400, "message": "bad request"})
            elif path.startswith("/api/v3"):
                headers = {}
                check.expect(method, method, spelling, NOT_FOUND, answer=NOT_FOUND_ANSWER,
                             answer_headers=headers)
                if "Allow" in headers:
                    check.problems.append(f"{method} {spelling}: an Allow header on a 404")
                continue
            if path.startswith("/api/v3") or path == "/status":
                continue
            headers = {}
            check.expect(method, method, spelling, {(405, 405)}, answer=NOT_ALLOWED,
                         answer_headers=headers)
            got = {m.strip() for m in headers.get("Allow", "").split(",")} - {"HEAD", "OPTIONS"}
            if got != allowed:
                check.problems.append(f"{method} {spelling}: Allow {headers.get('Allow')!r},"
                                      f" want {sorted(allowed)}")
    for path in ["/api/v3/nope", f"/api/v3/nodes/{NODE}/nope", f"/api/v3/nodes/{NODE}/unknown",
                 f"/api/v3/nodes/{NODE}/stats/x",
                 "/api/v3/%00", "/api/v3/%C0%AF", "/_standin/nope", "/_standin/nothing-here",
                 "/_standin/%2e%2e/app.py", "/api/v3/brokers/x/y", "/api/v3/BROKERS",
                 "/api/v3/connection/", "/api/v4/brokers", "/nothing"]:
        for method in METHODS:
            check.expect("unknown path", method, path, NOT_FOUND, answer=NOT_FOUND_ANSWER)
    # A 5000-byte node name: a known route, an unknown node.
    check.expect("long node name", "GET", "/api/v3/nodes/" + "n" * 5000 + "/stats", NOT_FOUND,
                 answer=NOT_FOUND_ANSWER)
    check.finish()


# ---------------------------------------------------------------------------
# Odd but valid strings: stored and read back exactly, nothing else harmed
# ---------------------------------------------------------------------------

ODD = {
    "emoji": "🦄💥🔥",
    "rtl": "\u202eשלום/سلام",
    "combining": "e\u0301\u0308\u20dd",
    "zwj": "👩\u200d👩\u200d👧",
    "sql-drop": "'; DROP TABLE x;--",
    "sql-drop-banned": "x'); DROP TABLE banned;--",
    "sql-like": "%_%",
    "percent": "%",
    "underscore": "_",
    "quotes": "\"'\\`",
    "crlf": "a\r\nb",
    "nul": "a\x00b",
    "huge": HUGE,
}


def _get(c, path, query=""):
    status, data, text = send(c, "GET", path, query=query)
    assert status == 200 and data["code"] == 0, (path, text)
    return data["data"]


@pytest.mark.parametrize("label", ODD)
def test_odd_strings_round_trip(fresh, label):
    """Every string a write stores comes back byte for byte, through bodies and paths
    (journal on: it records each of these requests too)."""
    c = fresh(journal=True)
    v = ODD[label]
    q = quote(v, safe="")
    problems = []

    def write(method, path, body, want):
        status, data, text = send(c, method, path, body=body)
        if envelope_problem(status, data, text) or data["code"] != want:
            problems.append(f"{method} {path[:80]} {str(body)[:80]}: want code {want},"
                            f" got HTTP {status} {text[:200]}")
            return False
        return want == 0

    def same(what, got, want):
        if got != want:
            problems.append(f"{what}: read back {str(got)[:120]!r}, want {str(want)[:120]!r}")

    fits_topic = "\0" not in v and len(v.encode()) <= 4096
    # Subscribe / publish / unsubscribe, topic `v`.
    if write("POST", "/api/v3/mqtt/subscribe", {"client_id": CID, "topic": v, "qos": 1},
             0 if fits_topic else 115):
        subs = _get(c, f"/api/v3/subscriptions/{quote(CID, safe='')}")
        same("subscription topic", sorted(s["topic"] for s in subs), sorted(["/test", v]))
        same("route", _get(c, f"/api/v3/routes/{q}"), [{"node": NODE, "topic": v}])
        before = _get(c, f"/api/v3/sessions/{quote(CID, safe='')}")[0]["deliver_msg"]
        write("POST", "/api/v3/mqtt/publish", {"topic": v, "payload": v, "qos": 1}, 0)
        after = _get(c, f"/api/v3/sessions/{quote(CID, safe='')}")[0]["deliver_msg"]
        same("delivered to the subscriber", after, before + 1)
        write("POST", "/api/v3/mqtt/unsubscribe", {"client_id": CID, "topic": v}, 0)
        same("after unsubscribe", _get(c, f"/api/v3/routes/{q}"), [])
    # A payload of any text is published.
    write("POST", "/api/v3/mqtt/publish", {"topic": "/test", "payload": v}, 0)
    # Bans: who and reason stored as sent, deleted through the path.
    if write("POST", "/api/v3/banned/", {"who": v, "as": "client_id", "reason": v}, 0):
        bans = {b["who"]: b for b in _get(c, "/api/v3/banned/")}
        same("ban reason", bans.get(v, {}).get("reason"), v)
        write("DELETE", f"/api/v3/banned/{q}?as=client_id", None, 0)
        same("bans after delete", sorted(b["who"] for b in _get(c, "/api/v3/banned/")),
             sorted([BAN, "guest", "192.168.66.6"]))
    # Apps: id, secret and name; lookup and delete through the path.
    if write("POST", "/api/v3/apps/", {"app_id": v, "secret": v, "name": v, "status": True}, 0):
        found = _get(c, f"/api/v3/apps/{q}")
        same("app", found, {"app_id": v, "secret": v, "name": v, "desc": "undefined",
                            "status": True, "expired": "undefined"})
        write("DELETE", f"/api/v3/apps/{q}", None, 0)
        same("apps after delete", [a["app_id"] for a in _get(c, "/api/v3/apps/")], ["admin"])
    # Users: name and password; authenticate, delete through the path.
    if write("POST", "/api/v3/users/", {"username": v, "password": v, "tags": v}, 0):
        users = {u["username"]: u for u in _get(c, "/api/v3/users/")}
        same("user tags", users.get(v, {}).get("tags"), v)
        write("POST", "/api/v3/auth", {"username": v, "password": v}, 0)
        write("DELETE", f"/api/v3/users/{q}", None, 0)
        same("users after delete", [u["username"] for u in _get(c, "/api/v3/users/")],
             ["admin"])
    # Configs: key and value.
    if write("PUT", "/api/v3/configs/emqx", {"key": v, "value": v}, 0):
        configs = _get(c, f"/api/v3/nodes/{NODE}/configs/")
        same("config", [(x["key"], x["value"], x["app"]) for x in configs], [(v, v, "emqx")])
    # Plugin configs: the submitted set replaces the stored one.
    if write("PUT", f"/api/v3/nodes/{NODE}/plugin_configs/{PLUGIN}", {v: v}, 0):
        items = {x["key"]: x["value"] for x in
                 _get(c, f"/api/v3/nodes/{NODE}/plugin_configs/{PLUGIN}")}
        same("plugin config", items.get(v), v)
    # A simulated device: client id and username; looked up and kicked through the path.
    fits_id = "\0" not in v and len(v) <= 1024
    if write("POST", "/_standin/clients", {"client_id": v, "username": v}, 0 if fits_id else 108):
        conns = _get(c, f"/api/v3/connections/{q}")
        same("connection", [(x["client_id"], x["username"]) for x in conns], [(v, v)])
        write("DELETE", f"/api/v3/connections/{q}", None, 0)
        same("after kickout", _get(c, f"/api/v3/connections/{q}"), [])
    # Alarms: raised and cleared through the path.
    if write("POST", "/_standin/alarms", {"id": v, "summary": v}, 0):
        alarms = _get(c, f"/api/v3/alarms/{NODE}")
        same("alarm", [(a["id"], a["summary"]) for a in alarms if a["id"] == v], [(v, v)])
        write("DELETE", f"/_standin/alarms/{q}", None, 0)
        same("alarms after clear", [a["id"] for a in _get(c, f"/api/v3/alarms/{NODE}")],
             [ALARM])
    # Nothing else harmed: every list still answers, the seeded rows are all there.
    for path in SNAPSHOT:
        status, data, text = send(c, "GET", path)
        if envelope_problem(status, data, text) or data["code"] != 0:
            problems.append(f"GET {path} after the writes: HTTP {status} {text}")
    same("connections", len(_get(c, "/api/v3/connections/")), 50)
    assert not problems, f"{label!r}:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------
# Extra keys beside a valid body are ignored
# ---------------------------------------------------------------------------


def test_valid_writes_with_extra_keys_succeed(fresh):
    c = fresh(journal=True)
    problems = []

    def write(method, path, body):
        status, data, text = send(c, method, path, body={**EXTRA, **body})
        if envelope_problem(status, data, text) or data["code"] != 0:
            problems.append(f"{method} {path} + extra keys: HTTP {status} {text}")
        return data

    write("POST", "/api/v3/mqtt/subscribe", {"client_id": CID, "topic": "x/y", "qos": 2})
    write("POST", "/api/v3/mqtt/publish", {"topic": "x/y", "payload": "p", "qos": 1})
    write("POST", "/api/v3/banned/", {"who": "xb", "as": "username"})
    secret = (write("POST", "/api/v3/apps/", {"app_id": "xa", "status": True}) or {}).get(
        "data", {}).get("secret")
    write("PUT", "/api/v3/apps/xa", {"name": "renamed", "status": True})
    write("POST", "/api/v3/users/", {"username": "xu", "password": "pw"})
    write("PUT", "/api/v3/users/xu", {"tags": "t"})
    write("PUT", "/api/v3/change_pwd/xu", {"old_pwd": "pw", "new_pwd": "pw2"})
    write("POST", "/api/v3/auth", {"username": "xu", "password": "pw2"})
    write("PUT", "/api/v3/configs/emqx", {"key": "k", "value": "1"})
    write("PUT", f"/api/v3/nodes/{NODE}/configs/emqx", {"key": "k2", "value": "on"})
    write("POST", "/_standin/clients", {"client_id": "xc", "clean_start": False})
    write("POST", "/_standin/alarms", {"id": "xal"})
    write("PUT", f"/_standin/nodes/{NODE}", {"node_status": "Running"})
    write("PUT", "/_standin/faults", {"error_rate": 0})
    write("GET", "/_standin/journal", {"limit": 3})
    write("GET", "/api/v3/connections/", {"_limit": 5})
    assert not problems, "\n".join(problems)
    subs = {(s["client_id"], s["topic"]): s["qos"] for s in _get(c, "/api/v3/subscriptions/")}
    assert subs[(CID, "x/y")] == 2
    assert "xb" in [b["who"] for b in _get(c, "/api/v3/banned/")]
    assert _get(c, "/api/v3/apps/xa")["name"] == "renamed"
    assert secret and send(c, "GET", "/api/v3/brokers/", auth=("xa", secret))[0] == 200
    assert {"username": "xu", "tags": "t"} in _get(c, "/api/v3/users/")
    assert [x["key"] for x in _get(c, f"/api/v3/nodes/{NODE}/configs/")] == ["k", "k2"]
    assert _get(c, "/api/v3/connections/xc")[0]["clean_start"] is False
    assert "xal" in [a["id"] for a in _get(c, f"/api/v3/alarms/{NODE}")]
    # None of the extra keys became a setting or a config anywhere.
    faults = _get(c, "/_standin/faults")["faults"]
    assert set(faults) == {"latency_ms", "error_rate", "error", "routes", "seed", "kind",
                           "times", "match"}
