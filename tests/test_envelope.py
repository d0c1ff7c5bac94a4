"""One writer for each JSON shape, byte for byte.

Every answer in the API's envelope, success or error, from the views, the hooks, routing,
the body-size limit, authentication, fault injection and the last-resort handler, is compact
UTF-8 JSON (`,` and `:` without spaces, non-ASCII kept), `application/json`, and ends at
its closing brace. The journal records each answer's `code` as the body says it.
"""

import json

import pytest

import app as emqx
from conftest import API
from conftest import AUTH
from conftest import get_json
from conftest import NODE

pytestmark = pytest.mark.usefixtures("fast_hash")


def canonical(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def assert_envelope(r, status, expected=None):
    """The answer is `expected` (when given), written as the one writer writes it."""
    assert r.status_code == status, (r.status_code, r.data)
    assert r.mimetype == "application/json"
    body = json.loads(r.data)
    assert r.data == canonical(body), r.data
    assert r.data.endswith(b"}")
    if expected is not None:
        assert body == expected
    return body


# (method, path, JSON body or raw bytes, credentials, HTTP status, expected body)
ERRORS = [
    ("GET", "/sessions/nobody", None, AUTH, 200, {"code": 0, "data": []}),
    ("POST", "/mqtt/subscribe", {"client_id": "nobody", "topic": "t"}, AUTH, 200,
     {"code": 112, "message": "session_not_found"}),
    ("POST", "/mqtt/publish", b"{not json", AUTH, 400,
     {"code": 109, "message": "request parameter is not a json"}),
    ("POST", "/mqtt/publish", {"qos": 1}, AUTH, 200,
     {"code": 107, "message": "missing mandatory params: ['topic']"}),
    ("POST", "/mqtt/publish", {"topic": "t", "qos": 7}, AUTH, 200,
     {"code": 108, "message": "'qos' must be 0, 1 or 2"}),
    ("POST", "/mqtt/publish", {"topic": "a/#"}, AUTH, 200, {"code": 115, "message": "bad_topic"}),
    ("GET", "/connections/?_limit=0", None, AUTH, 200,
     {"code": 108, "message": "'_limit' must be at least 1"}),
    ("GET", "/brokers/", None, ("admin", "wrong"), 401,
     {"code": 401, "message": "UNAUTHORIZED"}),
    ("GET", "/no/such/route", None, AUTH, 404, {"code": 404, "message": "not found"}),
    ("GET", "/nodes/emqx@nowhere", None, AUTH, 404, {"code": 404, "message": "not found"}),
    ("PATCH", "/brokers/", None, AUTH, 404, {"code": 404, "message": "not found"}),
    ("POST", "/", None, AUTH, 400, {"code": 400, "message": "bad request"}),
    ("POST", "/users/", {"username": "admin", "password": "x"}, AUTH, 200,
     {"code": 102, "message": [ord(c) for c in "username already exist"]}),
    ("POST", "/apps/", {"app_id": "ünïcødé-应用"}, AUTH, 200, None),
]


@pytest.mark.parametrize(("method", "path", "body", "auth", "status", "expected"), ERRORS,
                         ids=[f"{m} {p} {s}" for m, p, _, _, s, _ in ERRORS])
def test_every_answer_is_written_by_the_one_writer(client, method, path, body, auth, status,
                                                  expected):
    kw = {"data": body} if isinstance(body, bytes) else {"json": body}
    r = client.open(API + path, method=method, auth=auth, **kw)
    answer = assert_envelope(r, status, expected)
    if method == "PATCH":  # minirest has no method fallback: a 404, naming nothing
        assert "Allow" not in r.headers
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    journal = get_json(client, "/_standin/journal?limit=1")["data"][0]
    assert journal["path"] == (API + path.split("?")[0]).rstrip("/")
    assert journal["code"] == answer["code"]


def test_success_shapes_byte_for_byte(client):
    for path in ("/connections/?_limit=2", "/brokers/", f"/nodes/{NODE}", "/apps/admin",
                 "/routes/%2Ftest"):
        assert_envelope(client.get(API + path, auth=AUTH), 200)
    r = client.delete(API + "/apps/nobody", auth=AUTH)
    assert r.data == b'{"code":0}'
    assert assert_envelope(client.get(API + "/apps/admin", auth=AUTH), 200)["data"]["secret"]


def test_non_ascii_text_is_kept_as_utf8(client):
    r = client.post(API + "/apps/", auth=AUTH, json={"app_id": "app-ü", "name": "名前"})
    assert_envelope(r, 200)
    r = client.get(API + "/apps/app-%C3%BC", auth=AUTH)
    assert "名前".encode() in r.data


def test_body_too_large(client):
    r = client.post(API + "/mqtt/publish", auth=AUTH, data=b"x" * (1024 * 1024 + 1),
                    content_type="application/json")
    assert_envelope(r, 413, {"code": 413, "message": "request body too large"})


def test_injected_error(client):
    client.put("/_standin/faults", auth=AUTH, json={
        "error_rate": 1, "routes": ["list_brokers"],
        "error": {"status": 503, "code": 150, "message": "ünavailable"}})
    r = client.application.test_client().get(API + "/brokers/", auth=AUTH)  # a 5xx on purpose
    assert_envelope(r, 503, {"code": 150, "message": "ünavailable"})
    client.delete("/_standin/faults", auth=AUTH)
    assert get_json(client, "/_standin/journal?limit=1")["data"][0]["code"] == 150


def test_refused_connect(client):
    r = client.post("/_standin/clients", auth=AUTH, json={"client_id": "flooder-01"})
    assert_envelope(r, 403, {"code": 403, "message": "banned"})


def test_control_error(client):
    r = client.post("/_standin/reset", auth=AUTH, json={"nodes": 0})
    assert_envelope(r, 200, {"code": 108, "message": "'nodes' must be an integer from 1 to 64"})


def test_unexpected_error_is_a_plain_envelope(app, monkeypatch):
    """The last-resort handler: HTTP 500 in the same envelope, nothing about the cause."""
    def broken(node):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(emqx, "node_stats", broken)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    plain = app.test_client()
    r = plain.get(API + f"/nodes/{NODE}/stats/", auth=AUTH)
    assert_envelope(r, 500, {"code": 102, "message": "internal error"})
    assert b"secret detail" not in r.data
