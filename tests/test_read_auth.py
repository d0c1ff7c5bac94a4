"""Basic auth on every /api/v3/ path (known or not), the open /auth, and /status."""

import base64

import pytest

from conftest import get_json
from conftest import NODE

pytestmark = pytest.mark.usefixtures("fast_hash")

API = "/api/v3"


def _basic(raw):
    return "Basic " + base64.b64encode(raw).decode()


BAD_HEADERS = {
    "no_header": None,
    "wrong_password": _basic(b"admin:wrong"),
    "unknown_user": _basic(b"nobody:public"),
    "empty_username": _basic(b":public"),
    "empty_password": _basic(b"admin:"),
    "bearer_token": "Bearer 0123456789abcdef",
    # Another scheme carrying base64("admin:public"): still not Basic, so still 401.
    "bearer_scheme_valid_pair": "Bearer YWRtaW46cHVibGlj",
    "scheme_only": "Basic",
    "malformed_base64": "Basic !!!not-base64!!!",
    "no_colon": _basic(b"adminpublic"),
    "not_utf8": _basic(b"\xff\xfe:\xff"),
}
PROTECTED = ["/", "/brokers/", f"/nodes/{NODE}", "/connections/", "/apps/", "/users/",
             "/no/such/path", f"/nodes/{NODE}/nothing"]


def _assert_401(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert "realm=" in response.headers["WWW-Authenticate"].lower()
    body = response.get_json()
    assert set(body) == {"code", "message"}
    assert body["code"] == 401


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_auth_bad_credentials_is_401(client, case):
    header = BAD_HEADERS[case]
    headers = {"Authorization": header} if header else {}
    _assert_401(client.get(API + "/brokers/", headers=headers))


@pytest.mark.parametrize("path", PROTECTED)
def test_auth_missing_is_401_on_every_path(client, path):
    _assert_401(client.get(API + path))


@pytest.mark.parametrize("path", ["/no/such/path", "/brokers/"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_auth_checked_before_routing(client, path, method):
    _assert_401(client.open(API + path, method=method))


def test_auth_api_root_without_slash_is_401(client):
    _assert_401(client.get(API))


def test_auth_wrong_password_body_is_json(client):
    response = client.get(API + "/brokers/", auth=("admin", "wrong"))
    assert response.mimetype == "application/json"


def test_auth_default_admin_public_works(client):
    assert get_json(client, API + "/brokers/", auth=("admin", "public"))["code"] == 0


def test_auth_basic_scheme_case_insensitive(client):
    header = "basic " + base64.b64encode(b"admin:public").decode()
    assert client.get(API + "/brokers/", headers={"Authorization": header}).status_code == 200


def test_auth_default_app_credentials_work(make_app):
    client = make_app(APP_ID="ops-app", APP_SECRET="s3cret-value")
    assert get_json(client, API + "/brokers/", auth=("ops-app", "s3cret-value"))["code"] == 0


def test_auth_dashboard_user_admin_works_beside_other_app(make_app):
    # With the app renamed, admin/public can only be the dashboard user.
    client = make_app(APP_ID="ops-app", APP_SECRET="s3cret-value")
    assert get_json(client, API + "/brokers/", auth=("admin", "public"))["code"] == 0


def test_auth_app_secret_is_not_a_user_password(make_app):
    client = make_app(APP_ID="ops-app", APP_SECRET="s3cret-value")
    _assert_401(client.get(API + "/brokers/", auth=("admin", "s3cret-value")))
    _assert_401(client.get(API + "/brokers/", auth=("ops-app", "public")))


def test_lookup_app_configured_id_and_secret(make_app):
    client = make_app(APP_ID="ops-app", APP_SECRET="s3cret-value")
    data = get_json(client, API + "/apps/ops-app", auth=("ops-app", "s3cret-value"))["data"]
    assert (data["app_id"], data["secret"], data["status"]) == ("ops-app", "s3cret-value", True)


@pytest.mark.parametrize("path", [API + "/auth", API + "/auth/"])
def test_auth_user_route_needs_no_credentials(client, path):
    """POST /auth is open: it checks the body's username and password, not the header."""
    response = client.post(path, json={"username": "admin", "password": "public"})
    assert response.status_code == 200
    assert response.get_json() == {"code": 0}
    response = client.post(path, json={"username": "admin", "password": "nope"})
    assert response.status_code == 200
    assert response.get_json() == {"code": 102, "message": "Password Error"}


def test_auth_user_route_get_still_protected(client):
    response = client.get(API + "/auth")
    assert response.status_code == 401


def test_status_needs_no_credentials(client):
    response = client.get("/status")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Node emqx@127.0.0.1 is started\nemqx is running"


def test_status_ignores_bad_credentials(client):
    response = client.get("/status", auth=("admin", "wrong"))
    assert response.status_code == 200
