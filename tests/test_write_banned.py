"""POST /banned/ and DELETE /banned/:who, seen through GET /banned/ and the connections."""

import time

import pytest

from conftest import API
from conftest import call
from conftest import get_json
from conftest import NODE

BAD_AS = "value of 'as' must be one of: ['client_id', 'username', 'ip_address']"


def ban(c, **body):
    return call(c, "POST", "/banned/", body)


def banned(c):
    body = get_json(c, f"{API}/banned/")
    assert body["meta"]["count"] == len(body["data"])
    return body


def entry(c, who, kind):
    found = [b for b in banned(c)["data"] if b["who"] == who and b["as"] == kind]
    assert len(found) <= 1
    return found[0] if found else None


@pytest.fixture
def c(make_app):
    return make_app(clients=5)


def test_create_echoes_parameters_and_lists_the_entry(c):
    until = int(time.time()) + 3600
    body = {"who": "zb-client", "as": "client_id", "reason": "test", "by": "dashboard",
            "desc": "hello world", "until": until}
    n0 = banned(c)["meta"]["count"]
    assert ban(c, **body) == {"code": 0, "data": body}
    assert entry(c, "zb-client", "client_id") == {
        "as": "client_id", "by": "dashboard", "desc": "hello world", "reason": "test",
        "until": until, "who": "zb-client"}
    assert banned(c)["meta"]["count"] == n0 + 1


def test_omitted_optional_fields_are_undefined(c):
    assert ban(c, who="zb-user", **{"as": "username"}) == {
        "code": 0, "data": {"who": "zb-user", "as": "username"}}
    assert entry(c, "zb-user", "username") == {
        "as": "username", "by": "undefined", "desc": "undefined", "reason": "undefined",
        "until": "undefined", "who": "zb-user"}


def test_reposting_the_same_who_and_as_overwrites(c):
    n0 = banned(c)["meta"]["count"]
    assert ban(c, who="zb-dup", reason="first", **{"as": "client_id"})["code"] == 0
    assert ban(c, who="zb-dup", reason="second", by="ops", **{"as": "client_id"})["code"] == 0
    assert banned(c)["meta"]["count"] == n0 + 1
    got = entry(c, "zb-dup", "client_id")
    assert got["reason"] == "second" and got["by"] == "ops"
    # Same who under another kind is another entry.
    assert ban(c, who="zb-dup", **{"as": "username"})["code"] == 0
    assert banned(c)["meta"]["count"] == n0 + 2
    assert entry(c, "zb-dup", "client_id")["reason"] == "second"


def test_until_in_the_past_is_expired_and_not_listed(c):
    before = banned(c)
    past = int(time.time()) - 60
    assert ban(c, who="zb-old", until=past, **{"as": "client_id"})["code"] == 0
    assert entry(c, "zb-old", "client_id") is None
    assert banned(c) == before
    # Overwriting it with a future until brings it back.
    assert ban(c, who="zb-old", until=past + 7200, **{"as": "client_id"})["code"] == 0
    assert entry(c, "zb-old", "client_id")["until"] == past + 7200


def test_delete_with_as_in_query_or_body(c):
    for who in ("zb-q", "zb-b"):
        assert ban(c, who=who, **{"as": "client_id"})["code"] == 0
    n0 = banned(c)["meta"]["count"]
    assert call(c, "DELETE", "/banned/zb-q?as=client_id") == {"code": 0}
    assert entry(c, "zb-q", "client_id") is None
    assert call(c, "DELETE", "/banned/zb-b", {"as": "client_id"}) == {"code": 0}
    assert entry(c, "zb-b", "client_id") is None
    assert banned(c)["meta"]["count"] == n0 - 2
    # Nothing to delete still answers 0 and changes nothing.
    before = banned(c)
    assert call(c, "DELETE", "/banned/zb-b?as=client_id") == {"code": 0}
    assert banned(c) == before


def test_delete_only_removes_the_named_kind(c):
    assert ban(c, who="zb-two", **{"as": "client_id"})["code"] == 0
    assert ban(c, who="zb-two", **{"as": "username"})["code"] == 0
    assert call(c, "DELETE", "/banned/zb-two?as=username") == {"code": 0}
    assert entry(c, "zb-two", "username") is None
    assert entry(c, "zb-two", "client_id") is not None


def test_ip_bans_are_created_listed_and_deleted(c):
    n0 = banned(c)["meta"]["count"]
    assert ban(c, who="10.1.2.3", reason="scan", **{"as": "ip_address"}) == {
        "code": 0, "data": {"who": "10.1.2.3", "reason": "scan", "as": "ip_address"}}
    assert entry(c, "10.1.2.3", "ip_address")["reason"] == "scan"
    assert banned(c)["meta"]["count"] == n0 + 1
    assert call(c, "DELETE", "/banned/10.1.2.3?as=ip_address") == {"code": 0}
    assert entry(c, "10.1.2.3", "ip_address") is None
    assert banned(c)["meta"]["count"] == n0


def test_documented_banned_sequence(make_app):
    """emqx_mgmt_api_SUITE banned, on a cluster seeded without bans."""
    c = make_app(clients=0)
    assert banned(c)["data"] == []
    body = {"who": "myclient", "as": "client_id", "reason": "test", "by": "dashboard",
            "desc": "hello world", "until": int(time.time()) + 10}
    assert ban(c, **body)["code"] == 0
    data = banned(c)["data"]
    assert len(data) == 1 and data[0]["who"] == "myclient"
    assert call(c, "DELETE", "/banned/myclient", {"as": "client_id"}) == {"code": 0}
    assert banned(c)["data"] == []


def test_banning_a_connected_client_does_not_kick_it(c):
    conns = get_json(c, f"{API}/connections/")["data"]
    target = conns[0]
    s0 = get_json(c, f"{API}/nodes/{NODE}/stats/")["data"]
    assert ban(c, who=target["client_id"], **{"as": "client_id"})["code"] == 0
    if target["username"] != "undefined":
        assert ban(c, who=target["username"], **{"as": "username"})["code"] == 0
    assert ban(c, who=target["ipaddress"], **{"as": "ip_address"})["code"] == 0
    still = get_json(c, f"{API}/connections/{target['client_id']}")["data"]
    assert [x["client_id"] for x in still] == [target["client_id"]]
    assert get_json(c, f"{API}/connections/")["data"] == conns
    assert get_json(c, f"{API}/nodes/{NODE}/stats/")["data"] == s0


@pytest.mark.parametrize("body", [
    {"as": "client_id"},
    {"who": "zb-x"},
    {},
    {"reason": "no keys"},
])
def test_create_missing_who_or_as_is_107(c, body):
    before = banned(c)
    assert ban(c, **body) == {"code": 107, "message": "missing mandatory params: ['who', 'as']"}
    assert banned(c) == before


@pytest.mark.parametrize("kind", ["clientid", "CLIENT_ID", "", "ip"])
def test_create_with_bad_as_is_108(c, kind):
    before = banned(c)
    assert ban(c, who="zb-x", **{"as": kind}) == {"code": 108, "message": BAD_AS}
    assert banned(c) == before


def test_create_with_unparsable_ip_is_108_naming_who(c):
    before = banned(c)
    body = ban(c, who="not-an-ip", **{"as": "ip_address"})
    assert body["code"] == 108 and "who" in body["message"]
    assert banned(c) == before


def test_create_with_non_integer_until_is_108_naming_until(c):
    before = banned(c)
    body = ban(c, who="zb-x", until="tomorrow", **{"as": "client_id"})
    assert body["code"] == 108 and "until" in body["message"]
    assert banned(c) == before


def test_delete_without_as_is_107_and_bad_as_is_108(c):
    before = banned(c)
    assert call(c, "DELETE", "/banned/flooder-01") == {
        "code": 107, "message": "missing mandatory params: ['as']"}
    assert call(c, "DELETE", "/banned/flooder-01?as=nope") == {"code": 108, "message": BAD_AS}
    assert call(c, "DELETE", "/banned/flooder-01", {"as": "nope"}) == {
        "code": 108, "message": BAD_AS}
    assert banned(c) == before
