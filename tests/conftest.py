"""Shared fixtures: a fresh SQLite file per test, the Flask app bound to it, test clients;
shared helpers (data, metrics, stats, delta, the $share/$queue rule), and the routes of
the app's URL map for the sweeps (url_map_routes, control_sample).

Every client made here refuses to return a 5xx: the contract says "never an HTTP 500",
so any request in any test that gets one fails on the spot.
"""

import json
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

import app as emqx
import database

AUTH = ("admin", "public")
NODE = "emqx@127.0.0.1"
API = "/api/v3"

# Settings pinned for every test, whatever the environment says (STANDIN_* variables).
DEFAULTS = {"SEED": 42, "NODES": 1, "CLIENTS": 50, "APP_ID": "admin", "APP_SECRET": "public",
            "TRAFFIC": "off"}

CONTROLS_PREFIX = "/_standin"
# Path values naming real objects of the seeded cluster, by the API's parameter names.
SEEDED = {"node": NODE, "clientid": "emqx-api-test:v1", "topic": "/test", "appid": "admin",
          "name": "admin", "username": "admin", "who": "flooder-01", "plugin": "emqx_retainer",
          "app": "emqx"}

# Fields whose value follows the wall clock; left out when two answers are compared.
TIME_FIELDS = frozenset(
    {"connected_at", "created_at", "datetime", "uptime", "timestamp", "until"})


def pytest_report_header(config):
    return f"sqlite3.sqlite_version: {sqlite3.sqlite_version}"


class StandinClient(FlaskClient):
    """A test client that applies its own settings before each request and rejects 5xx.

    Several clients (one per database) can live in one test: each request first points
    the shared app's config at this client's database and cluster settings. A database
    that does not exist yet is copied from a seeded template of the same settings (made
    once per session) instead of being seeded again.
    """

    settings = None
    templates = None

    def open(self, *args, **kwargs):
        if self.settings:
            self.application.config.update(self.settings)
        if self.templates is not None:
            self.templates.copy_to(self.application.config["DATABASE"])
        response = super().open(*args, **kwargs)
        assert response.status_code < 500, (
            f"HTTP {response.status_code} for {args} {kwargs}: {response.get_data(as_text=True)}")
        return response


class Templates:
    """Seeded databases, one per set of seeding settings, made on first demand."""

    KEYS = ("SEED", "NODES", "CLIENTS", "APP_ID", "APP_SECRET")

    def __init__(self, root):
        self.root = root
        self.made = {}

    def copy_to(self, path):
        """Put a copy of the template for the app's current settings at `path`, unless a
        file is there already."""
        if os.path.exists(path):
            return
        config = emqx.app.config
        key = (*(config[k] for k in self.KEYS), database.PASSWORD_METHOD)
        if key not in self.made:
            template = str(self.root / f"template-{len(self.made)}.db")
            # closed when made: its WAL is checkpointed into the file
            database.ensure_database(template, config)
            self.made[key] = template
        shutil.copyfile(self.made[key], path)


def _new_client(flask_app, settings=None, templates=None):
    client = StandinClient(flask_app, flask_app.response_class, use_cookies=False)
    client.settings = settings
    client.templates = templates
    return client


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    """The session's seeded templates (see Templates)."""
    return Templates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def db_path(tmp_path):
    """A path for a new SQLite database (the app creates and seeds it on first request)."""
    return str(tmp_path / "standin.db")


@pytest.fixture
def app(db_path, monkeypatch):
    """The Flask app, pointed at this test's database with the pinned cluster settings."""
    flask_app = emqx.app
    monkeypatch.setitem(flask_app.config, "TESTING", True)
    monkeypatch.setitem(flask_app.config, "DATABASE", db_path)
    for key, value in DEFAULTS.items():
        monkeypatch.setitem(flask_app.config, key, value)
    yield flask_app


@pytest.fixture
def fast_hash(monkeypatch):
    """Seed the dashboard user with a one-round PBKDF2 hash (same salted format, ~14 ms less
    per new database). Opt in with `pytestmark = pytest.mark.usefixtures("fast_hash")`."""
    monkeypatch.setattr(database, "PASSWORD_METHOD", "pbkdf2:sha256:1")


@pytest.fixture
def client(app, templates):
    return _new_client(app, templates=templates)


@pytest.fixture
def auth():
    return AUTH


@pytest.fixture
def make_app(tmp_path, monkeypatch, templates):
    """Factory: make_app(nodes=1, clients=50, seed=42, **config) -> a client on a new database.

    Each call gets its own database file; extra upper-case config keys (APP_ID, APP_SECRET)
    are applied with the cluster settings before each of that client's requests.
    """
    flask_app = emqx.app
    for key in ("TESTING", "DATABASE", *DEFAULTS):
        monkeypatch.setitem(flask_app.config, key, flask_app.config.get(key))
    counter = iter(range(1_000_000))

    def factory(nodes=1, clients=50, seed=42, **config):
        path = str(tmp_path / f"standin-{next(counter)}.db")
        settings = {**DEFAULTS, "TESTING": True, "DATABASE": path, "SEED": seed,
                    "NODES": nodes, "CLIENTS": clients, **config}
        for key in config:  # registered with monkeypatch so the test's end restores them
            monkeypatch.setitem(flask_app.config, key, flask_app.config.get(key, config[key]))
        return _new_client(flask_app, settings, templates)

    return factory


def get_json(client, path, auth=AUTH, **kw):
    """GET `path`, assert HTTP 200 with a JSON body, return the parsed body."""
    response = client.get(path, auth=auth, **kw)
    assert response.status_code == 200, (path, response.status_code, response.data)
    assert response.mimetype == "application/json", (path, response.mimetype)
    return json.loads(response.get_data(as_text=True), object_pairs_hook=no_duplicates)


def request_json(c, method, path, body=None, auth=AUTH, status=200, code=None, **kw):
    """`method path` (the whole path) with an optional JSON body: assert the HTTP `status`,
    a JSON answer and, when given, its `code`; return the parsed body."""
    if body is not None:
        kw["json"] = body
    r = c.open(path, method=method, auth=auth, **kw)
    assert r.status_code == status, (method, path, r.status_code, r.data)
    assert r.mimetype == "application/json", (method, path, r.mimetype)
    answer = r.get_json()
    if code is not None:
        assert answer["code"] == code, (method, path, answer)
    return answer


def call(c, method, path, body=None, auth=AUTH, **kw):
    """An API call (`path` under /api/v3) answered HTTP 200 with a JSON body; the body."""
    return request_json(c, method, API + path, body, auth=auth, **kw)


def call_ok(c, method, path, body=None, auth=AUTH, **kw):
    """An API call answered HTTP 200 with {"code": 0, ...}; the body."""
    return call(c, method, path, body, auth=auth, code=0, **kw)


@pytest.fixture
def get():
    """The `get_json(client, path, **kw)` helper as a fixture."""
    return get_json


def no_duplicates(pairs):
    """json object_pairs_hook: a dict in document order, refusing repeated keys."""
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys in {keys}"
    return dict(pairs)


def data(client, path, auth=AUTH):
    """GET API + `path`: HTTP 200, a JSON body with code 0; its `data`."""
    body = get_json(client, API + path, auth=auth)
    assert body["code"] == 0, (path, body)
    return body["data"]


def metrics(client, node=NODE):
    """The node's 43 metrics."""
    return data(client, f"/nodes/{node}/metrics/")


def stats(client, node=NODE):
    """The node's 18 stats."""
    return data(client, f"/nodes/{node}/stats/")


def assert_received_adds_up(c):
    """On every running node, only a device's PUBLISH is a message received:
    messages/received == packets/publish/received == the sum of messages/qos*/received,
    and messages/sent is the sum of messages/qos*/sent."""
    for node in [b["node"] for b in data(c, "/brokers/")]:
        m = metrics(c, node)
        by_qos = sum(m[f"messages/qos{q}/received"] for q in range(3))
        assert m["messages/received"] == m["packets/publish/received"] == by_qos, (node, m)
        sent = sum(m[f"messages/qos{q}/sent"] for q in range(3))
        assert m["messages/sent"] == sent, (node, m)


def assert_overview_adds_up(c, attempt=""):
    """The dashboard's overview (stats) agrees with its list pages: topics/count is the
    route table, shared subscriptions are cluster-wide, each list's count is the sum of
    the nodes' counts."""
    stats_ = data(c, "/stats/")
    first = stats_[0]
    routes = get_json(c, f"{API}/routes/")["meta"]["count"]
    assert first["topics/count"] == first["routes/count"] == routes, attempt
    assert all(s["topics/count"] == routes for s in stats_), attempt
    assert len({s["subscriptions/shared/count"] for s in stats_}) == 1, attempt
    for kind in ("connections", "sessions", "subscriptions"):
        total = get_json(c, f"{API}/{kind}/")["meta"]["count"]
        assert total == sum(s[f"{kind}/count"] for s in stats_), (attempt, kind)


def delta(before, after):
    """What changed between two answers: {key: after - before} of the numeric fields that
    differ (the others are left out)."""
    return {k: after[k] - before[k] for k in after
            if isinstance(after[k], int) and not isinstance(after[k], bool)
            and after[k] != before.get(k)}


SHARED_PREFIXES = ("$share/", "$queue/")


def is_shared(topic):
    """A shared subscription's filter: `$share/<group>/<topic>` or `$queue/<topic>`."""
    return topic.startswith(SHARED_PREFIXES)


def route_topic(topic):
    """The route a subscription's filter needs: `$share/<group>/` or `$queue/` dropped."""
    if topic.startswith("$share/"):
        return topic.split("/", 2)[2]
    return topic.removeprefix("$queue/")


def strip_times(value):
    """`value` without the clock-dependent fields (recursively)."""
    if isinstance(value, dict):
        return {k: strip_times(v) for k, v in value.items() if k not in TIME_FIELDS}
    if isinstance(value, list):
        return [strip_times(v) for v in value]
    return value


@pytest.fixture
def untimed():
    """The `strip_times(value)` helper as a fixture."""
    return strip_times


# ---------------------------------------------------------------------------
# Routes, from the app's URL map
# ---------------------------------------------------------------------------

RULE_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@dataclass(frozen=True)
class Route:
    """One method of one URL rule: `template` is the rule with `:name` for `<conv:name>`."""

    endpoint: str
    method: str
    template: str

    @property
    def id(self):
        return f"{self.method} {self.template}"

    @property
    def params(self):
        return [p[1:] for p in self.template.split("/") if p.startswith(":")]

    @property
    def is_control(self):
        return self.template.startswith(CONTROLS_PREFIX)

    def path(self, values, raw=None):
        """The template filled in: values[name] percent-encoded, or raw[name] as it is."""
        raw = raw or {}
        return "/".join(
            (raw[p[1:]] if p[1:] in raw else quote(values[p[1:]], safe=""))
            if p.startswith(":") else p for p in self.template.split("/"))


def url_map_routes(*prefixes):
    """Every (endpoint, method, template) of the app's URL map, in the order the rules were
    added (HEAD and OPTIONS left out, and the static files); only the rules under
    `prefixes` when given."""
    routes = []
    for rule in emqx.app.url_map.iter_rules():
        if rule.endpoint == "static" or (prefixes and not rule.rule.startswith(prefixes)):
            continue
        template = RULE_PARAM.sub(r":\1", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append(Route(rule.endpoint, method, template))
    return routes


def control_sample(samples, route):
    """A sweep's sample for a /_standin route (values, body, ...), kept by endpoint in
    `samples`: a control the sweep has no sample for fails it, so that a new control
    cannot silently escape the sweeps."""
    if route.endpoint not in samples:
        pytest.fail(f"{route.id} ({route.endpoint}) is a /_standin route this sweep has no"
                    " sample for: add one, keyed by its endpoint")
    return samples[route.endpoint]
