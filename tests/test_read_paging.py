"""Pagination on exactly the eight paginated routes; every other read ignores _page/_limit."""

import json

import pytest

from conftest import get_json
from conftest import NODE
from conftest import strip_times

pytestmark = pytest.mark.usefixtures("fast_hash")

API = "/api/v3"
PAGINATED = [
    "/connections/", f"/nodes/{NODE}/connections/", "/sessions/", f"/nodes/{NODE}/sessions/",
    "/subscriptions/", f"/nodes/{NODE}/subscriptions/", "/routes/", "/banned/",
]
NOT_PAGINATED = [
    "/brokers/", f"/brokers/{NODE}", "/nodes/", f"/nodes/{NODE}",
    "/connections/emqx-api-test:v1", f"/nodes/{NODE}/connections/emqx-api-test:v1",
    "/sessions/emqx-api-test:v1", f"/nodes/{NODE}/sessions/emqx-api-test:v1",
    "/subscriptions/emqx-api-test:v1", f"/nodes/{NODE}/subscriptions/emqx-api-test:v1",
    "/routes/%2Ftest", "/listeners/", f"/nodes/{NODE}/listeners", "/metrics/",
    f"/nodes/{NODE}/metrics/", "/stats/", f"/nodes/{NODE}/stats/", "/alarms/", f"/alarms/{NODE}",
    "/plugins/", f"/nodes/{NODE}/plugins/", "/apps/", "/apps/admin", "/users/", "/configs/",
    f"/nodes/{NODE}/configs/", f"/nodes/{NODE}/plugin_configs/emqx_retainer",
]
INVALID = [
    ("_page", "abc"), ("_page", "1.5"), ("_page", ""), ("_page", "1e3"), ("_page", "0x10"),
    ("_limit", "abc"), ("_limit", "1.5"), ("_limit", ""), ("_limit", "0"), ("_limit", "-1"),
]


def _page(client, path, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return get_json(client, f"{API}{path}?{query}" if query else API + path)


def _key(item):
    return json.dumps(item, sort_keys=True)


@pytest.mark.parametrize("path", PAGINATED)
def test_paginated_defaults_page_1_limit_10000(client, path):
    body = _page(client, path)
    assert list(body) == ["code", "data", "meta"]
    assert body["meta"] == {"page": 1, "limit": 10000, "count": len(body["data"])}
    assert list(body["meta"]) == ["page", "limit", "count"]


@pytest.mark.parametrize("path", PAGINATED)
def test_paginated_count_is_all_rows_not_page_size(client, path):
    total = len(_page(client, path)["data"])
    assert total >= 2
    body = _page(client, path, _page=1, _limit=1)
    assert len(body["data"]) == 1
    assert body["meta"] == {"page": 1, "limit": 1, "count": total}


@pytest.mark.parametrize("path", PAGINATED)
def test_paginated_page_past_end_is_empty(client, path):
    total = len(_page(client, path)["data"])
    body = _page(client, path, _page=total + 1, _limit=1)
    assert body["data"] == []
    assert body["meta"] == {"page": total + 1, "limit": 1, "count": total}
    assert _page(client, path, _page=2)["data"] == []


@pytest.mark.parametrize("path", PAGINATED)
def test_paginated_pages_concatenate_to_full_list(client, path):
    full = _page(client, path)["data"]
    limit = max(1, len(full) // 3)
    pages, number = [], 1
    while True:
        chunk = _page(client, path, _page=number, _limit=limit)["data"]
        if not chunk:
            break
        assert len(chunk) <= limit
        pages.extend(chunk)
        number += 1
    assert number - 1 == -(-len(full) // limit)
    assert [_key(i) for i in pages] == [_key(i) for i in full]
    assert len({_key(i) for i in pages}) == len(pages)


@pytest.mark.parametrize("path", PAGINATED)
def test_paginated_order_is_stable(client, path):
    assert _page(client, path)["data"] == _page(client, path)["data"]


@pytest.mark.parametrize("page", ["0", "-1", "-7"])
def test_paginated_page_below_1_is_first_page_echoed(client, page):
    for path in PAGINATED:
        body = _page(client, path, _page=page, _limit=2)
        assert body["data"] == _page(client, path, _page=1, _limit=2)["data"], path
        assert body["meta"]["page"] == int(page), path
        assert body["meta"]["limit"] == 2, path


@pytest.mark.parametrize("path", PAGINATED)
def test_paginated_plus_sign_accepted(client, path):
    body = _page(client, path, _page="%2B1", _limit="%2B2")
    assert body["meta"]["page"] == 1
    assert body["meta"]["limit"] == 2


@pytest.mark.parametrize("path", PAGINATED)
def test_paginated_limit_above_default_echoed(client, path):
    body = _page(client, path, _limit=50000)
    assert body["meta"]["limit"] == 50000
    assert body["data"] == _page(client, path)["data"]


@pytest.mark.parametrize(("param", "value"), INVALID)
def test_paginated_invalid_param_is_code_108(client, param, value):
    for path in PAGINATED:
        body = get_json(client, f"{API}{path}?{param}={value}")
        assert list(body) == ["code", "message"], (path, body)
        assert body["code"] == 108, (path, body)
        assert param in body["message"], (path, body)


@pytest.mark.parametrize("param", ["_page", "_limit"])
@pytest.mark.parametrize("path", ["/connections/", "/routes/"])
def test_paginated_bare_param_is_code_108(client, path, param):
    body = get_json(client, f"{API}{path}?{param}")
    assert body["code"] == 108
    assert param in body["message"]


@pytest.mark.parametrize("path", ["/connections/", "/sessions/", "/banned/"])
def test_paginated_params_from_json_body(client, auth, path):
    response = client.get(API + path, auth=auth, json={"_page": "2", "_limit": "1"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["meta"]["page"] == 2
    assert body["meta"]["limit"] == 1
    assert body["data"] == _page(client, path, _page=2, _limit=1)["data"]


def test_paginated_query_wins_over_body(client, auth):
    response = client.get(API + "/connections/?_limit=3", auth=auth, json={"_limit": "1"})
    assert response.get_json()["meta"]["limit"] == 3


@pytest.mark.parametrize("path", NOT_PAGINATED)
def test_not_paginated_ignores_page_params_and_has_no_meta(client, path):
    plain = get_json(client, API + path)
    body = get_json(client, f"{API}{path}?_page=abc&_limit=0")
    assert "meta" not in plain
    assert list(body) == ["code", "data"]
    assert strip_times(body) == strip_times(plain)


@pytest.mark.parametrize("path", ["/connections/emqx-api-test:v1", "/routes/%2Ftest"])
def test_not_paginated_lookup_ignores_valid_page_params(client, path):
    assert get_json(client, f"{API}{path}?_page=5&_limit=1") == get_json(client, API + path)
