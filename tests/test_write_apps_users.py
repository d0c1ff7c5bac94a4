"""Applications (/apps/) and dashboard users (/users/, /auth, /change_pwd/): the writes and
their effect on listing, lookup and, at once, on who can authenticate."""

import base64
import re
import time

import pytest

from conftest import API
from conftest import call
from conftest import get_json


def status_with(c, credentials):
    return c.get(f"{API}/brokers/", auth=credentials).status_code


def apps(c):
    return get_json(c, f"{API}/apps/")["data"]


def lookup_app(c, app_id):
    return get_json(c, f"{API}/apps/{app_id}")["data"]


def users(c):
    return get_json(c, f"{API}/users/")["data"]


def char_codes(text):
    return [ord(ch) for ch in text]


@pytest.fixture
def c(make_app):
    return make_app(clients=2)


# --- apps ------------------------------------------------------------------------------


def test_add_app_generates_a_broker_shaped_secret_that_authenticates(c):
    body = call(c, "POST", "/apps/", {"app_id": "za-1", "name": "test", "desc": "d",
                                      "status": True})
    assert body["code"] == 0 and list(body["data"]) == ["secret"]
    secret = body["data"]["secret"]
    # base64 (no padding) of a ~35-digit decimal number: about 47 characters.
    assert re.fullmatch(r"[A-Za-z0-9+/]{40,50}", secret), secret
    decoded = base64.b64decode(secret + "=" * (-len(secret) % 4)).decode()
    assert decoded.isdigit() and 30 <= len(decoded) <= 40, decoded
    other = call(c, "POST", "/apps/", {"app_id": "za-2", "status": True})["data"]["secret"]
    assert other != secret

    assert lookup_app(c, "za-1") == {"app_id": "za-1", "secret": secret, "name": "test",
                                     "desc": "d", "status": True, "expired": "undefined"}
    listed = {a["app_id"]: a for a in apps(c)}
    assert listed["za-1"] == {"app_id": "za-1", "name": "test", "desc": "d",
                              "status": True, "expired": "undefined"}
    assert status_with(c, ("za-1", secret)) == 200
    assert status_with(c, ("za-1", secret + "x")) == 401


def test_add_app_with_a_given_secret(c):
    body = call(c, "POST", "/apps/", {"app_id": "za-s", "secret": "s3cret", "status": True})
    assert body == {"code": 0, "data": {"secret": "s3cret"}}
    assert lookup_app(c, "za-s")["secret"] == "s3cret"
    assert status_with(c, ("za-s", "s3cret")) == 200


def test_add_duplicate_app_is_alread_existed_and_keeps_the_first(c):
    secret = call(c, "POST", "/apps/", {"app_id": "za-d", "name": "one",
                                        "status": True})["data"]["secret"]
    before = apps(c)
    assert call(c, "POST", "/apps/", {"app_id": "za-d", "name": "two", "status": False}) == {
        "code": 102, "message": "alread_existed"}
    assert apps(c) == before
    assert lookup_app(c, "za-d")["secret"] == secret
    assert status_with(c, ("za-d", secret)) == 200


def test_app_without_status_true_cannot_authenticate(c):
    secret = call(c, "POST", "/apps/", {"app_id": "za-n"})["data"]["secret"]
    assert lookup_app(c, "za-n")["status"] == "undefined"
    assert status_with(c, ("za-n", secret)) == 401


def test_update_app_overwrites_all_four_fields(c):
    secret = call(c, "POST", "/apps/", {"app_id": "za-u", "name": "n", "desc": "d",
                                        "status": True, "expired": 4102444800})["data"]["secret"]
    assert call(c, "PUT", "/apps/za-u", {"name": "test 2", "status": True}) == {"code": 0}
    assert lookup_app(c, "za-u") == {"app_id": "za-u", "secret": secret, "name": "test 2",
                                     "desc": "undefined", "status": True,
                                     "expired": "undefined"}
    assert status_with(c, ("za-u", secret)) == 200
    # Omitting status breaks authentication at once (undefined status).
    assert call(c, "PUT", "/apps/za-u", {"name": "x"}) == {"code": 0}
    assert lookup_app(c, "za-u")["status"] == "undefined"
    assert status_with(c, ("za-u", secret)) == 401


def test_disabled_or_expired_app_stops_authenticating_at_once(c):
    secret = call(c, "POST", "/apps/", {"app_id": "za-e", "status": True})["data"]["secret"]
    creds = ("za-e", secret)
    assert status_with(c, creds) == 200
    assert call(c, "PUT", "/apps/za-e", {"status": False}) == {"code": 0}
    assert status_with(c, creds) == 401
    assert call(c, "PUT", "/apps/za-e", {"status": True}) == {"code": 0}
    assert status_with(c, creds) == 200
    assert call(c, "PUT", "/apps/za-e", {"status": True,
                                         "expired": int(time.time()) - 10}) == {"code": 0}
    assert status_with(c, creds) == 401
    assert call(c, "PUT", "/apps/za-e", {"status": True,
                                         "expired": int(time.time()) + 3600}) == {"code": 0}
    assert status_with(c, creds) == 200
    # The default app can disable itself; the dashboard user still gets in.
    assert call(c, "PUT", "/apps/admin", {"status": False}, auth=creds) == {"code": 0}
    assert status_with(c, ("admin", "public")) == 200  # admin/public is also a user


def test_app_stops_authenticating_when_its_expiry_passes_with_nothing_written(c, monkeypatch):
    """A worker remembers the logins it let in until the database changes; an application's
    expiry is a time, not a change: the clock alone ends it."""
    now = time.time()
    secret = call(c, "POST", "/apps/", {"app_id": "za-t", "status": True,
                                        "expired": int(now) + 60})["data"]["secret"]
    creds = ("za-t", secret)
    assert status_with(c, creds) == 200
    assert status_with(c, creds) == 200  # (from the worker's memory of the first)
    monkeypatch.setattr(time, "time", lambda: now + 120)
    assert status_with(c, creds) == 401
    assert status_with(c, ("admin", "public")) == 200


def test_update_unknown_app_is_ont_found(c):
    before = apps(c)
    assert call(c, "PUT", "/apps/za-none", {"name": "x", "status": True}) == {
        "code": 102, "message": "ont_found"}
    assert apps(c) == before
    assert lookup_app(c, "za-none") == []


def test_delete_app_stops_authentication_and_lookup(c):
    secret = call(c, "POST", "/apps/", {"app_id": "za-x", "status": True})["data"]["secret"]
    assert status_with(c, ("za-x", secret)) == 200
    assert call(c, "DELETE", "/apps/za-x") == {"code": 0}
    assert status_with(c, ("za-x", secret)) == 401
    assert get_json(c, f"{API}/apps/za-x") == {"code": 0, "data": []}
    assert "za-x" not in {a["app_id"] for a in apps(c)}
    assert call(c, "DELETE", "/apps/za-x") == {"code": 0}  # already gone: still 0


def test_documented_apps_sequence(c):
    """emqx_mgmt_api_SUITE apps."""
    assert call(c, "POST", "/apps/", {"app_id": "123456", "name": "test",
                                      "status": True})["code"] == 0
    assert any(a["app_id"] == "123456" for a in apps(c))
    assert lookup_app(c, "123456")["name"] == "test"
    assert call(c, "PUT", "/apps/123456", {"name": "test 2", "status": True}) == {"code": 0}
    assert lookup_app(c, "123456")["name"] == "test 2"
    assert call(c, "DELETE", "/apps/123456") == {"code": 0}
    assert [a["app_id"] for a in apps(c)] == ["admin"]


@pytest.mark.parametrize("body,code", [({"name": "x"}, 107), ({"app_id": 5}, 108),
                                       ({"app_id": ["a"]}, 108), ({"app_id": None}, 107)])
def test_add_app_with_missing_or_bad_app_id(c, body, code):
    before = apps(c)
    got = call(c, "POST", "/apps/", body)
    assert got["code"] == code and "app_id" in got["message"], got
    assert apps(c) == before


# --- users -----------------------------------------------------------------------------


def test_create_user_lists_it_and_it_authenticates(c):
    assert call(c, "POST", "/users/", {"username": "zu-1", "password": "pw1",
                                       "tags": "viewer"}) == {"code": 0}
    assert {"username": "zu-1", "tags": "viewer"} in users(c)
    assert status_with(c, ("zu-1", "pw1")) == 200
    assert status_with(c, ("zu-1", "wrong")) == 401
    # POST /auth needs no credentials.
    r = c.post(f"{API}/auth", json={"username": "zu-1", "password": "pw1"})
    assert r.status_code == 200 and r.get_json() == {"code": 0}
    r = c.post(f"{API}/auth", json={"username": "zu-1", "password": "nope"})
    assert r.get_json() == {"code": 102, "message": "Password Error"}
    r = c.post(f"{API}/auth", json={"username": "zu-none", "password": "x"})
    assert r.get_json() == {"code": 102, "message": "Username Not Found"}


def test_create_user_without_tags_lists_undefined(c):
    assert call(c, "POST", "/users/", {"username": "zu-t", "password": "p"}) == {"code": 0}
    assert {"username": "zu-t", "tags": "undefined"} in users(c)


def test_create_existing_user_answers_char_codes_and_keeps_the_password(c):
    assert call(c, "POST", "/users/", {"username": "zu-d", "password": "p1"}) == {"code": 0}
    before = users(c)
    assert call(c, "POST", "/users/", {"username": "zu-d", "password": "p2"}) == {
        "code": 102, "message": char_codes("username already exist")}
    assert users(c) == before
    assert status_with(c, ("zu-d", "p1")) == 200
    assert status_with(c, ("zu-d", "p2")) == 401


def test_update_user_tags(c):
    assert call(c, "POST", "/users/", {"username": "zu-u", "password": "p",
                                       "tags": "a"}) == {"code": 0}
    assert call(c, "PUT", "/users/zu-u", {"tags": "b"}) == {"code": 0}
    assert {"username": "zu-u", "tags": "b"} in users(c)
    assert call(c, "PUT", "/users/zu-u", {}) == {"code": 0}
    assert {"username": "zu-u", "tags": "undefined"} in users(c)
    before = users(c)
    assert call(c, "PUT", "/users/zu-none", {"tags": "x"}) == {
        "code": 102, "message": "username_not_found"}
    assert users(c) == before


def test_delete_user_stops_authentication_at_once(c):
    assert call(c, "POST", "/users/", {"username": "zu-x", "password": "p"}) == {"code": 0}
    assert status_with(c, ("zu-x", "p")) == 200
    assert call(c, "DELETE", "/users/zu-x") == {"code": 0}
    assert status_with(c, ("zu-x", "p")) == 401
    assert "zu-x" not in {u["username"] for u in users(c)}
    assert call(c, "DELETE", "/users/zu-x") == {
        "code": 102, "message": char_codes("Username Not Found")}


def test_admin_cannot_be_deleted(c):
    before = users(c)
    assert call(c, "DELETE", "/users/admin") == {"code": 102, "message": "Cannot delete admin"}
    assert users(c) == before
    assert status_with(c, ("admin", "public")) == 200


def test_change_pwd(c):
    assert call(c, "POST", "/users/", {"username": "zu-p", "password": "old"}) == {"code": 0}
    assert call(c, "PUT", "/change_pwd/zu-p", {"old_pwd": "bad", "new_pwd": "new"}) == {
        "code": 102, "message": "Password Error"}
    assert status_with(c, ("zu-p", "old")) == 200
    assert call(c, "PUT", "/change_pwd/zu-none", {"old_pwd": "x", "new_pwd": "y"}) == {
        "code": 102, "message": "Username Not Found"}
    assert call(c, "PUT", "/change_pwd/zu-p", {"old_pwd": "old", "new_pwd": "new"}) == {
        "code": 0}
    assert status_with(c, ("zu-p", "old")) == 401
    assert status_with(c, ("zu-p", "new")) == 200
    r = c.post(f"{API}/auth", json={"username": "zu-p", "password": "new"})
    assert r.get_json() == {"code": 0}
    r = c.post(f"{API}/auth", json={"username": "zu-p", "password": "old"})
    assert r.get_json() == {"code": 102, "message": "Password Error"}


@pytest.mark.parametrize("body,code", [({"old_pwd": "old"}, 107),
                                       ({"old_pwd": "old", "new_pwd": 5}, 108)])
def test_change_pwd_with_missing_or_bad_new_pwd_changes_nothing(c, body, code):
    assert call(c, "POST", "/users/", {"username": "zu-v", "password": "old"}) == {"code": 0}
    got = call(c, "PUT", "/change_pwd/zu-v", body)
    assert got["code"] == code and "new_pwd" in got["message"], got
    assert status_with(c, ("zu-v", "old")) == 200


def test_admin_password_change_takes_effect_for_the_admin_user(make_app):
    # Default app id differs from the user name so only the user can match.
    c = make_app(clients=0, APP_ID="app0", APP_SECRET="sec0")
    creds = ("app0", "sec0")
    assert call(c, "PUT", "/change_pwd/admin", {"old_pwd": "public", "new_pwd": "p2"},
                auth=creds) == {"code": 0}
    assert status_with(c, ("admin", "public")) == 401
    assert status_with(c, ("admin", "p2")) == 200


def test_documented_dashboard_admins_sequence(c):
    """emqx_dashboard_SUITE admins."""
    assert call(c, "POST", "/users/", {"username": "username", "password": "password",
                                       "tags": "tag"}) == {"code": 0}
    assert call(c, "POST", "/users/", {"username": "username1", "password": "password1",
                                       "tags": "tag"}) == {"code": 0}
    assert len(users(c)) == 3
    assert call(c, "DELETE", "/users/username1") == {"code": 0}
    assert len(users(c)) == 2
    assert call(c, "PUT", "/change_pwd/username", {"old_pwd": "password",
                                                   "new_pwd": "pwd"}) == {"code": 0}
    assert status_with(c, ("username", "pwd")) == 200
    assert call(c, "DELETE", "/users/username") == {"code": 0}
    assert status_with(c, ("username", "pwd")) == 401


@pytest.mark.parametrize("body", [{"username": 5, "password": "p"},
                                  {"username": "zu-b", "password": ["p"]}])
def test_create_user_with_non_string_credentials_is_108(c, body):
    before = users(c)
    got = call(c, "POST", "/users/", body)
    assert got["code"] == 108, got
    assert ("username" if not isinstance(body["username"], str) else "password") in got["message"]
    assert users(c) == before
