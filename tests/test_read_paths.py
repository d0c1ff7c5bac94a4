"""URL details: optional trailing slashes, decoded topics and client ids, node spellings,
and no 5xx for odd paths (the client fixture rejects any 5xx).

The JSON 404 of unknown paths and the JSON 405 (with Allow) of every route's other methods
are swept in test_hostile.test_wrong_method_is_405_and_unknown_path_404."""

from urllib.parse import quote

import pytest

from conftest import data
from conftest import get_json
from conftest import NODE
from conftest import strip_times

pytestmark = pytest.mark.usefixtures("fast_hash")

API = "/api/v3"
NODE_ENC = NODE.replace("@", "%40")


# ---------------------------------------------------------------------------
# Trailing slashes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/brokers", f"/brokers/{NODE}", "/nodes", f"/nodes/{NODE}", "/connections",
    f"/nodes/{NODE}/connections", "/connections/emqx-api-test:v1", "/sessions",
    f"/nodes/{NODE}/sessions", "/sessions/mqttjs_406e3f9a", "/subscriptions",
    f"/nodes/{NODE}/subscriptions", "/subscriptions/emqx-api-test:v1",
    f"/nodes/{NODE}/subscriptions/emqx-api-test:v1", "/routes", "/routes/%2Ftest",
    "/listeners", f"/nodes/{NODE}/listeners", "/metrics", f"/nodes/{NODE}/metrics",
    "/stats", f"/nodes/{NODE}/stats", "/alarms", f"/alarms/{NODE}", "/plugins",
    f"/nodes/{NODE}/plugins", "/banned", "/apps", "/apps/admin", "/users", "/configs",
    f"/nodes/{NODE}/configs", f"/nodes/{NODE}/plugin_configs/emqx_retainer",
])
def test_trailing_slash_optional(client, path):
    without = get_json(client, API + path)
    with_slash = get_json(client, API + path + "/")
    assert strip_times(without) == strip_times(with_slash)
    assert without["code"] == 0


def test_trailing_slash_list_brokers(client):
    assert strip_times(get_json(client, API + "/brokers")) == strip_times(
        get_json(client, API + "/brokers/"))


def test_trailing_slash_node_listeners(client):
    assert get_json(client, f"{API}/nodes/{NODE}/listeners") == get_json(
        client, f"{API}/nodes/{NODE}/listeners/")


# ---------------------------------------------------------------------------
# Topics in /routes/:topic
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/routes/%2Ftest", "/routes//test", "/routes/%2ftest"])
def test_lookup_routes_leading_slash_topic(client, path):
    assert data(client, path) == [{"node": NODE, "topic": "/test"}]


def test_lookup_routes_every_listed_topic_percent_encoded(client):
    routes = data(client, "/routes/")
    for topic in sorted({r["topic"] for r in routes}):
        assert data(client, "/routes/" + quote(topic, safe="")) == [
            r for r in routes if r["topic"] == topic], topic


def test_lookup_routes_hash_as_percent_23(client):
    routes = data(client, "/routes/")
    topic = next(r["topic"] for r in routes if r["topic"].endswith("/#"))
    path = "/routes/" + topic.replace("#", "%23")
    assert data(client, path) == [r for r in routes if r["topic"] == topic]


def test_lookup_routes_plus_stays_plus(client):
    routes = data(client, "/routes/")
    topic = next(r["topic"] for r in routes if "+" in r["topic"])
    assert data(client, "/routes/" + topic) == [r for r in routes if r["topic"] == topic]
    assert data(client, "/routes/" + topic.replace("+", "%2B")) == data(client, "/routes/" + topic)


def test_lookup_routes_raw_multilevel_topic(client):
    # CONTRACT: a raw `/routes/a/b` must resolve to topic `a/b`.
    routes = data(client, "/routes/")
    topic = next(r["topic"] for r in routes
                 if "/" in r["topic"] and "#" not in r["topic"] and not r["topic"].startswith("/"))
    assert data(client, "/routes/" + topic) == [r for r in routes if r["topic"] == topic]


def test_lookup_routes_encoded_trailing_slash_is_part_of_topic(client):
    assert data(client, "/routes/%2Ftest%2F") == []


def test_lookup_routes_space_and_plus_not_confused(client):
    assert data(client, "/routes/a%20b") == []


# ---------------------------------------------------------------------------
# Client ids and node names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["connections", "sessions", "subscriptions"])
@pytest.mark.parametrize("client_id", ["emqx-api-test:v1", "emqx-api-test%3Av1",
                                       "emqx-api-test%3av1"])
def test_lookup_client_id_colon_raw_or_encoded(client, kind, client_id):
    items = data(client, f"/{kind}/{client_id}")
    assert [i["client_id"] for i in items] == ["emqx-api-test:v1"]


@pytest.mark.parametrize("kind", ["connections", "sessions", "subscriptions"])
def test_lookup_node_client_id_colon_raw(client, kind):
    items = data(client, f"/nodes/{NODE}/{kind}/emqx-api-test:v1")
    assert [i["client_id"] for i in items] == ["emqx-api-test:v1"]


@pytest.mark.parametrize("path", [
    "/brokers/{n}", "/nodes/{n}", "/nodes/{n}/connections/", "/nodes/{n}/sessions/",
    "/nodes/{n}/subscriptions/", "/nodes/{n}/subscriptions/emqx-api-test:v1",
    "/nodes/{n}/listeners", "/nodes/{n}/metrics/", "/nodes/{n}/stats/", "/alarms/{n}",
    "/nodes/{n}/plugins/", "/nodes/{n}/configs/", "/nodes/{n}/plugin_configs/emqx_retainer",
])
def test_node_name_percent_40_same_as_raw(client, path):
    raw = get_json(client, API + path.format(n=NODE))
    encoded = get_json(client, API + path.format(n=NODE_ENC))
    assert strip_times(raw) == strip_times(encoded)


def test_node_name_is_case_sensitive(client, auth):
    response = client.get(f"{API}/nodes/EMQX@127.0.0.1", auth=auth)
    assert response.status_code == 404


@pytest.mark.parametrize("client_id", ["a%2Fb", "a/b", "%00", "%zz", "x%20y", "%E2%9C%93"])
def test_lookup_odd_client_ids_are_empty(client, client_id):
    for kind in ("connections", "sessions", "subscriptions"):
        assert data(client, f"/{kind}/{client_id}") == [], kind


# ---------------------------------------------------------------------------
# Error envelopes and odd paths
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/connections/%E0%A4", "/sessions/%FF", "/subscriptions/%C3", "/routes/%E0",
    "/nodes/%E0%A4/stats/", f"/nodes/{NODE}/connections/%80", "/apps/%FF", "/routes/%",
    "/connections/%%", "/routes/%2",
])
def test_invalid_percent_encoding_is_not_a_500(client, auth, path):
    response = client.get(API + path, auth=auth)
    assert response.mimetype == "application/json"
    assert response.get_json()["code"] in (0, 404, 108)


@pytest.mark.parametrize("path", ["/routes/" + "a" * 5000, "/connections/" + "c" * 5000])
def test_very_long_path_segment_answers(client, auth, path):
    response = client.get(API + path, auth=auth)
    assert response.status_code in (200, 404, 414)


def test_head_on_read_route_has_no_body(client, auth):
    response = client.head(API + "/brokers/", auth=auth)
    assert response.status_code == 200
    assert response.data == b""


def test_query_string_ignored_on_lookup(client):
    assert data(client, "/connections/emqx-api-test:v1?foo=bar") == data(
        client, "/connections/emqx-api-test:v1")
