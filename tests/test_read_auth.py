"""Basic auth: the credentials that work, the open /auth, and /status.

That every route and unknown path, with every method, refuses missing, malformed and wrong
credentials is swept in test_secrets.test_every_route_and_method_refuses_bad_credentials.
"""

import base64

import pytest

from conftest import get_json

pytestmark = pytest.mark.usefixtures("fast_hash")

API = "/api/v3"


def _assert_401(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert "realm=" in response.headers["WWW-Authenticate"].lower()
    body = response.get_json()
    assert set(body) == {"code", "message"}
    assert body["code"] == 401


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


def test_status_needs_no_credentials(client):
    response = client.get("/status")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Node emqx@127.0.0.1 is started\nemqx is running"


def test_status_ignores_bad_credentials(client):
    response = client.get("/status", auth=("admin", "wrong"))
    assert response.status_code == 200
