"""openapi.json: a valid OpenAPI 3.0.3 document that describes exactly what the service serves.

- the document passes openapi-spec-validator;
- every URL rule Flask registers is an operation of the document, and every operation is a rule;
- every catalogue entry is described under its route name, with its method and path;
- GET /_standin/openapi.json serves the file with the controls filled in from the URL map
  (a control the file does not know is still listed; summaries come from the docstrings);
- real answers (every read route on a seeded database, a stopped node, error answers, a few
  writes) validate against the schema the document gives for their status and content type.

The 401, 404 and 413 answers are the same on every route: each operation refers to one
component response, and one real answer of each is validated against it here; that every
route gives that answer is swept in test_secrets (401) and test_hostile (404, 405, 413).
"""

import json
import re
from pathlib import Path

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

import app as emqx
import standin
from conftest import AUTH
from conftest import NODE

pytestmark = pytest.mark.usefixtures("fast_hash")

ROOT = Path(__file__).resolve().parent.parent
FILE = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
DOC = standin.build_openapi(emqx.app)  # what GET /_standin/openapi.json serves
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
OPERATIONS = {(m.upper(), path): op for path, item in DOC["paths"].items()
              for m, op in item.items() if m in METHODS}
BY_ID = {op["operationId"]: (method, path) for (method, path), op in OPERATIONS.items()}
OPEN = {("POST", "/api/v3/auth"), ("GET", "/status"), ("GET", "/"), ("GET", "/dashboard"),
        ("GET", "/_standin/ready")}

# Values for the path parameters of the read routes on the default seeded data.
SAMPLES = {"node": NODE, "clientid": "emqx-api-test:v1", "topic": "%2Ftest",
           "appid": "admin", "plugin": "emqx_retainer", "filename": "swagger-ui.css",
           # write routes (error answers only): names that exist nowhere
           "name": "nobody", "username": "nobody", "who": "nobody", "app": "emqx",
           "id": "nobody"}


def openapi_path(rule):
    """`/api/v3/nodes/<seg:node>/stats` -> `/api/v3/nodes/{node}/stats`."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def printed(path):
    """A catalogue path as the document prints it, under /api/v3 (`nodes/:node/stats/` ->
    `/api/v3/nodes/{node}/stats/`): what the OpenAPI document must call it."""
    return "/api/v3/" + re.sub(r":(\w+)", r"{\1}", path.lstrip("/"))


# The Flask rule of each catalogue entry -> its path as the document prints it; the index's
# is `GET api/v3/` in the document.
SPELT = {openapi_path(emqx._rule(path)): printed(path) for _, _, path, _ in emqx.CATALOGUE}
SPELT["/api/v3"] = "/api/v3/"


def doc_path(rule):
    """The OpenAPI path of a Flask rule."""
    path = openapi_path(rule)
    return SPELT.get(path, path)


def flask_rules():
    out = {}
    for rule in emqx.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out[(method, doc_path(rule.rule))] = rule
    return out


def resolve(ref_or_obj):
    """Follow a local `$ref` (responses, parameters) to the object it names."""
    while "$ref" in ref_or_obj:
        node = DOC
        for part in ref_or_obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        ref_or_obj = node
    return ref_or_obj


def validate_body(schema, body):
    """Validate `body` against a schema of the document (its local $refs resolved)."""
    OAS30Validator({**schema, "components": DOC["components"]}).validate(body)


def check_response(method, path, response):
    """The answer matches what the document says for its operation, status and content type."""
    try:
        return _check_response(method, path, response)
    finally:
        response.close()  # files (pages, assets) are streamed: close them


def _check_response(method, path, response):
    op = OPERATIONS[(method, path)]
    status = str(response.status_code)
    assert status in op["responses"], (
        f"{method} {path}: HTTP {status} not documented ({sorted(op['responses'])}): "
        f"{response.get_data(as_text=True)[:300]}")
    spec = resolve(op["responses"][status])
    assert response.mimetype in spec["content"], (method, path, status, response.mimetype)
    schema = spec["content"][response.mimetype]["schema"]
    if response.mimetype == "application/json":
        body = json.loads(response.get_data(as_text=True))
    elif schema.get("format") == "binary":
        return response.get_data()
    else:
        body = response.get_data(as_text=True)
    validate_body(schema, body)
    for header in spec.get("headers", {}):
        assert header in response.headers, (method, path, status, header)
    return body


def fill(path, **values):
    values = {**SAMPLES, **values}
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path)


# ---------------------------------------------------------------------------
# The document itself
# ---------------------------------------------------------------------------


def test_document_is_valid_openapi_3_0_3():
    assert DOC["openapi"] == "3.0.3"
    validate_spec(DOC)


def test_every_flask_rule_is_described():
    described = set(OPERATIONS)
    missing = sorted(set(flask_rules()) - described)
    assert not missing, f"routes served but not described: {missing}"


def test_every_described_operation_is_served():
    extra = sorted(set(OPERATIONS) - set(flask_rules()))
    assert not extra, f"operations described but not served: {extra}"


def test_operation_ids_are_the_flask_endpoints():
    """`x-route-name` = the Flask endpoint (the catalogue's route name); operationId = the
    same, except that an endpoint with several paths (get_all_configs, the overview page)
    needs a distinct operationId for all but its first path."""
    rules = flask_rules()
    by_endpoint = {}
    for key, op in OPERATIONS.items():
        assert op["x-route-name"] == rules[key].endpoint, key
        by_endpoint.setdefault(rules[key].endpoint, []).append(op["operationId"])
    for endpoint, ids in by_endpoint.items():
        assert endpoint in ids, (endpoint, ids)
        assert all(i.startswith(endpoint) for i in ids), (endpoint, ids)
    assert len(BY_ID) == len(OPERATIONS)  # unique operationIds


def test_every_catalogue_entry_is_described():
    assert len(emqx.CATALOGUE) == 55
    for name, method, path, descr in emqx.CATALOGUE:
        key = (method, printed(path))
        assert key in OPERATIONS, (name, key)
        assert OPERATIONS[key]["x-route-name"] == name
        assert OPERATIONS[key]["summary"] == descr
    api_ops = [k for k in OPERATIONS if k[1].startswith("/api/v3")]
    assert len(api_ops) == 56  # the 55 entries and the index


def test_security_basic_everywhere_but_auth_and_status():
    assert DOC["components"]["securitySchemes"]["basicAuth"] == {
        **DOC["components"]["securitySchemes"]["basicAuth"], "type": "http", "scheme": "basic"}
    assert DOC["security"] == [{"basicAuth": []}]
    for key, op in OPERATIONS.items():
        if key in OPEN:
            assert op["security"] == [], key
            assert "401" not in op["responses"], key
        else:
            assert "security" not in op, key
            assert op["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}, key


def test_route_independent_errors_refer_to_their_components():
    """413 on every operation, 404 on every one with a node or a plugin in its path: each the
    one component response (validated against a real answer below)."""
    for (_, path), op in OPERATIONS.items():
        assert op["responses"]["413"] == {"$ref": "#/components/responses/TooLarge"}, path
        if "{node}" in path or "{plugin}" in path:
            assert op["responses"]["404"] == {"$ref": "#/components/responses/NotFound"}, path


def test_path_parameters_match_the_path():
    for (method, path), op in OPERATIONS.items():
        names = re.findall(r"{(\w+)}", path)
        params = [resolve(p) for p in op.get("parameters", [])]
        in_path = [p["name"] for p in params if p["in"] == "path"]
        assert in_path == names, (method, path)
        assert all(p["required"] for p in params if p["in"] == "path")


def test_api_paths_are_spelt_as_the_catalogue_prints_them():
    """The canonical URLs: `/api/v3/nodes/` and `/api/v3/nodes/{node}/stats/` end in a slash
    as the catalogue prints them, `/api/v3/nodes/{node}/listeners` does not; so Prism or
    schemathesis ask for the URLs a client of EMQ X asks for. The controls have none."""
    api = {p for p in DOC["paths"] if p.startswith("/api/v3")}
    assert api == {printed(path) for _, _, path, _ in emqx.CATALOGUE} | {"/api/v3/"}
    assert "/api/v3/nodes/" in api and "/api/v3/nodes/{node}/listeners" in api
    assert "/api/v3/nodes/{node}/stats/" in api and "/api/v3/mqtt/publish" in api
    assert not [p for p in DOC["paths"] if p.startswith("/_standin") and p.endswith("/")]
    # The file keys them as Flask's rules do: the slash comes from the catalogue alone.
    assert not [p for p in FILE["paths"] if p != "/" and p.endswith("/")]


def test_operations_are_tagged_with_the_documents_chapters():
    """Every /api/v3 operation has one tag, its chapter of the document, so the explorer's
    filter box finds "connections"; every tag is declared, every declared tag is used."""
    tags = {}
    for (method, path), op in OPERATIONS.items():
        assert len(op["tags"]) == 1, (method, path)
        tags.setdefault(op["tags"][0], set()).add(op["operationId"])
    declared = [t["name"] for t in DOC["tags"]]
    assert len(declared) == len(set(declared)) and set(declared) == set(tags)
    # The document's chapters, as it groups its routes (an oracle written from it).
    assert tags["connections"] == {
        "list_connections", "list_node_connections", "lookup_connections",
        "lookup_node_connections", "kickout_connection", "clean_acl_cache"}
    assert tags["sessions"] == {"list_sessions", "list_node_sessions", "lookup_session",
                                "lookup_node_session"}
    assert tags["subscriptions"] == {
        "list_subscriptions", "list_node_subscriptions", "lookup_client_subscriptions",
        "lookup_client_subscriptions_with_node"}
    assert tags["routes"] == {"list_routes", "lookup_routes"}
    assert tags["nodes"] == {"list_brokers", "get_broker", "list_nodes", "get_node"}
    assert tags["mqtt"] == {"mqtt_publish", "mqtt_subscribe", "mqtt_unsubscribe"}
    assert tags["plugins"] == {"list_all_plugins", "list_node_plugins", "load_plugin",
                               "unload_plugin", "get_plugin_configs", "update_plugin_configs"}
    assert tags["listeners"] == {"list_listeners", "list_node_listeners"}
    assert tags["metrics"] == {"list_all_metrics", "list_node_metrics"}
    assert tags["stats"] == {"list_stats", "lookup_node_stats"}
    assert tags["alarms"] == {"list_all_alarms", "list_node_alarms"}
    assert tags["banned"] == {"list_banned", "create_banned", "delete_banned"}
    assert tags["users"] == {"auth_user", "change_pwd", "create_user", "delete_user",
                             "list_users", "update_user"}
    assert tags["api"] == {"list_api"}
    # The document's chapter order first; then the stand-in's own.
    assert declared[:13] == ["api", "nodes", "connections", "sessions", "subscriptions",
                             "routes", "mqtt", "plugins", "listeners", "metrics", "stats",
                             "alarms", "banned"]
    assert declared[-2:] == ["standin", "pages"]


def test_the_file_leaves_the_api_tags_to_the_chapters():
    for path, item in FILE["paths"].items():
        if path.startswith("/api/v3"):
            for method, op in item.items():
                assert "tags" not in op, (method, path)


def test_entity_key_sets():
    """The fixed key sets of the entities (counted, closed with additionalProperties)."""
    schemas = DOC["components"]["schemas"]
    sizes = {"Connection": 28, "Session": 21, "Subscription": 4, "Route": 2, "Broker": 7,
             "BrokerLookup": 6, "NodeListItem": 15, "NodeLookup": 14, "Listener": 6,
             "Metrics": 43, "Stats": 18, "NodeStats": 19, "Alarm": 5, "Plugin": 4,
             "Banned": 6, "App": 5, "AppWithSecret": 6, "User": 2, "ConfigItem": 4,
             "PluginConfigItem": 4, "Meta": 3, "Error": 2, "Ok": 1}
    for name, size in sizes.items():
        schema = schemas[name]
        assert len(schema["properties"]) == size, name
        assert sorted(schema["required"]) == sorted(schema["properties"]), name
        assert schema["additionalProperties"] is False, name
    assert set(schemas["Metrics"]["properties"]) == set(emqx.METRIC_KEYS)
    assert set(schemas["Stats"]["properties"]) == {k for k, _ in emqx.STATS_KEYS}


def test_writes_document_business_errors_in_their_200():
    """A write's 200 is oneOf success / error (business errors come with HTTP 200)."""
    always_ok = {"del_app", "standin.clear_faults", "standin.clear_journal",  # {"code":0}
                 "standin.delete_world", "standin.delete_snapshot",  # or an HTTP 404
                 "standin.restore_snapshot", "standin.stop_traffic"}
    for (method, path), op in OPERATIONS.items():
        if method == "GET":
            continue
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ("oneOf" in schema) == (op["operationId"] not in always_ok), (method, path)


# ---------------------------------------------------------------------------
# The document as served
# ---------------------------------------------------------------------------


def test_served_document_is_the_file_with_the_controls_filled_in(client):
    response = client.get("/_standin/openapi.json", auth=AUTH)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    served = json.loads(response.get_data(as_text=True))
    assert served == DOC
    # The versions, from the one place they are kept.
    assert served["info"]["version"] == emqx.VERSION
    assert served["info"]["x-emqx-version"] == emqx.EMQX_VERSION == "3.0.1"
    # Everything else the file says is served as it is.
    document = json.loads(json.dumps(FILE))
    for path, item in served["paths"].items():
        for method, op in item.items():
            if path.startswith("/_standin"):
                mine = document["paths"][path][method]
                assert {k: v for k, v in op.items() if k not in ("summary", "description")} \
                    == mine, (method, path)
    # A control's summary is its docstring's first paragraph, as the /_standin index says.
    index = get_controls(client)
    for entry in index:
        path = re.sub(r":(\w+)", r"{\1}", entry["path"])
        assert served["paths"][path][entry["method"].lower()]["summary"] == entry["descr"]


def get_controls(client):
    return client.get("/_standin", auth=AUTH).get_json()["data"]["controls"]


def test_the_file_leaves_the_controls_words_to_their_docstrings():
    for path, item in FILE["paths"].items():
        if path.startswith("/_standin"):
            for method, op in item.items():
                assert "summary" not in op and "description" not in op, (method, path)


def test_a_control_the_file_does_not_know_is_served_all_the_same():
    """The list of controls is derived from the URL map: a new control is in the document
    (and so in the explorer) before anyone describes it in openapi.json."""
    from flask import Flask

    fresh = Flask("fresh", root_path=str(ROOT))

    @fresh.post("/_standin/widgets/<name>/polish")
    def polish_widget(name):
        """Polish a widget
        until it shines.

        Widgets are not part of EMQ X."""

    fresh.add_url_rule("/_standin/reset", "reset", methods=["POST"],
                       view_func=lambda: None)
    document = standin.build_openapi(fresh)
    op = document["paths"]["/_standin/widgets/{name}/polish"]["post"]
    assert op["summary"] == "Polish a widget until it shines."
    assert op["description"] == "Widgets are not part of EMQ X."
    assert op["operationId"] == "polish_widget"
    assert [p["name"] for p in op["parameters"]] == ["name"]
    assert op["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
    validate_spec(document)
    # A control the file describes keeps its schemas; its words come from the docstring.
    assert document["paths"]["/_standin/reset"]["post"]["requestBody"] == \
        FILE["paths"]["/_standin/reset"]["post"]["requestBody"]
    assert "summary" not in document["paths"]["/_standin/reset"]["post"]  # no docstring


def test_served_document_needs_credentials(client):
    response = client.get("/_standin/openapi.json")
    check_response("GET", "/_standin/openapi.json", response)
    assert response.status_code == 401


# ---------------------------------------------------------------------------
# Real answers against the document
# ---------------------------------------------------------------------------

READS = sorted(key for key in OPERATIONS if key[0] == "GET")


@pytest.mark.parametrize("key", READS, ids=["GET " + p for _, p in READS])
def test_read_answers_match_the_document(client, key):
    method, path = key
    auth = None if key in OPEN else AUTH
    response = client.get(fill(path), auth=auth)
    assert response.status_code == 200
    body = check_response(method, path, response)
    if response.mimetype == "application/json" and path != "/_standin/openapi.json":
        assert body["code"] == 0, body


@pytest.mark.parametrize("path", ["/api/v3/connections/", "/api/v3/sessions/",
                                  "/api/v3/subscriptions/", "/api/v3/routes/", "/api/v3/banned/"])
def test_paged_answers_match_the_document(client, path):
    body = check_response("GET", path, client.get(path + "?_page=2&_limit=3", auth=AUTH))
    assert body["meta"] == {**body["meta"], "page": 2, "limit": 3}
    body = check_response("GET", path, client.get(path + "?_page=abc", auth=AUTH))
    assert body["code"] == 108


@pytest.mark.parametrize("appid", ["admin", "no-such-app"])
def test_lookup_app_both_shapes(client, appid):
    body = check_response("GET", "/api/v3/apps/{appid}",
                          client.get(f"/api/v3/apps/{appid}", auth=AUTH))
    assert (body["data"] == []) == (appid != "admin")


def test_stopped_node_answers_match_the_document(make_app):
    """Two nodes, the second stopped: node lists, nodedown errors, listeners' error object."""
    client = make_app(nodes=2, clients=5)
    node = "emqx@127.0.0.2"
    response = client.put(f"/_standin/nodes/{node}", json={"node_status": "Stopped"}, auth=AUTH)
    check_response("PUT", "/_standin/nodes/{node}", response)
    for method, path in READS:
        if method != "GET" or "{" not in path or not path.startswith("/api/v3"):
            continue
        body = check_response(method, path, client.get(fill(path, node=node), auth=AUTH))
        if "{node}" in path:
            assert body["code"] == (0 if path.endswith("/listeners") else 102), (path, body)
    for path in ("/api/v3/nodes/", "/api/v3/listeners/"):
        check_response("GET", path, client.get(path, auth=AUTH))


@pytest.mark.parametrize("key", sorted(OPERATIONS), ids=[f"{m} {p}" for m, p in
                                                          sorted(OPERATIONS)])
def test_error_answers_match_the_document(client, key):
    """An open route answers without credentials; a body that is not JSON is a 400 exactly
    where the document says so (the routes that read it): each answer in its schema."""
    method, path = key
    op = OPERATIONS[key]
    if key in OPEN:
        response = client.open(fill(path), method=method)
        assert response.status_code == 200
        check_response(method, path, response)
    response = client.open(fill(path, clientid="nobody", appid="nobody"),
                           method=method, data="not json", auth=AUTH)
    check_response(method, path, response)
    assert (response.status_code == 400) == ("400" in op["responses"]), (
        method, path, response.status_code)


def check_component(name, response):
    """The answer matches the document's component response `name` (body and headers)."""
    try:
        spec = DOC["components"]["responses"][name]
        assert response.mimetype in spec["content"], (name, response.mimetype)
        validate_body(spec["content"][response.mimetype]["schema"], response.get_json())
        for header in spec.get("headers", {}):
            assert header in response.headers, (name, header)
    finally:
        response.close()


LARGE = b'{"a":"' + b"x" * (1024 * 1024) + b'"}'


def test_unauthorized_is_the_documented_401(client):
    response = client.get("/api/v3/brokers", auth=("admin", "wrong"))
    assert response.status_code == 401
    check_component("Unauthorized", response)


def test_unknown_node_is_the_documented_404(client):
    response = client.get("/api/v3/nodes/emqx@10.0.0.9/stats", auth=AUTH)
    assert response.status_code == 404
    check_component("NotFound", response)


def test_body_over_1mib_is_the_documented_413(client):
    response = client.post("/api/v3/mqtt/publish", data=LARGE, auth=AUTH)
    assert response.status_code == 413
    check_component("TooLarge", response)


def test_method_not_allowed_is_the_documented_405(client):
    response = client.post("/_standin/faults", auth=AUTH)
    assert response.status_code == 405
    check_component("MethodNotAllowed", response)
    assert "GET" in response.headers["Allow"]
    # The API has no method fallback (minirest): another method is a 404, as documented.
    response = client.post("/api/v3/brokers", auth=AUTH)
    assert response.status_code == 404 and "Allow" not in response.headers
    check_component("NotFound", response)


# A few writes through their success and error branches (every 200 body in its schema).
WRITES = [
    ("POST", "/api/v3/mqtt/publish", {"topic": "a/b", "payload": "x", "qos": 1}, 0),
    ("POST", "/api/v3/mqtt/publish", {"topic": "a/#"}, 115),
    ("POST", "/api/v3/mqtt/publish", {"payload": "x"}, 107),
    ("POST", "/api/v3/mqtt/publish", {"topic": "a", "qos": 7}, 108),
    ("POST", "/api/v3/mqtt/subscribe", {"client_id": "emqx-api-test:v1", "topic": "x/+"}, 0),
    ("POST", "/api/v3/mqtt/subscribe", {"client_id": "nobody", "topic": "x"}, 112),
    ("POST", "/api/v3/mqtt/unsubscribe", {"client_id": "emqx-api-test:v1", "topic": "x/+"}, 0),
    ("POST", "/api/v3/banned", {"who": "c1", "as": "client_id", "reason": {"r": [1]}}, 0),
    ("POST", "/api/v3/banned", {"who": "c1", "as": "nope"}, 108),
    ("POST", "/api/v3/apps", {"app_id": "a1", "name": "n", "status": True}, 0),
    ("POST", "/api/v3/apps", {"app_id": "a1"}, 102),
    ("PUT", "/api/v3/apps/a1", {"name": "m", "status": True}, 0),
    ("PUT", "/api/v3/apps/nobody", {}, 102),
    ("POST", "/api/v3/users", {"username": "u1", "password": "p1", "tags": ["t"]}, 0),
    ("POST", "/api/v3/users", {"username": "u1", "password": "p1"}, 102),  # char codes
    ("PUT", "/api/v3/change_pwd/u1", {"old_pwd": "p1"}, 107),
    ("PUT", "/api/v3/change_pwd/u1", {"old_pwd": "p1", "new_pwd": "p2"}, 0),
    ("DELETE", "/api/v3/users/nobody", None, 102),  # char codes
    ("DELETE", "/api/v3/users/admin", None, 102),
    ("POST", "/api/v3/auth", {"username": "admin", "password": "public"}, 0),
    ("POST", "/api/v3/auth", {"username": "admin", "password": "nope"}, 102),
    ("PUT", "/api/v3/configs/emqx", {"key": "k", "value": "1"}, 0),
    ("PUT", f"/api/v3/nodes/{NODE}/configs/emqx", {"key": "k"}, 107),
    ("PUT", f"/api/v3/nodes/{NODE}/plugin_configs/emqx_retainer", {"a.b": 1}, 102),
    ("PUT", f"/api/v3/nodes/{NODE}/plugins/emqx_retainer/load", None, 102),
    ("PUT", f"/api/v3/nodes/{NODE}/plugins/emqx_sn/load", None, 0),
    ("DELETE", "/api/v3/connections/emqx-api-test:v1/acl/a%2Fb", None, 0),
    ("DELETE", "/api/v3/connections/emqx-api-test:v1", None, 0),
    ("DELETE", "/api/v3/connections/emqx-api-test:v1", None, 112),
    ("DELETE", "/api/v3/banned/c1?as=client_id", None, 0),
    ("DELETE", "/api/v3/apps/a1", None, 0),
    ("POST", "/_standin/clients", {"client_id": "dev-1", "subscriptions": [{"topic": "a/+"}]}, 0),
    ("POST", "/_standin/clients", {"client_id": "flooder-01"}, 403),
    ("POST", "/_standin/clients", {"client_id": "dev-2", "node": "emqx@10.0.0.9"}, 404),
    ("DELETE", "/_standin/clients/dev-1", None, 0),
    ("POST", "/_standin/alarms", {"id": "a1", "severity": "critical"}, 0),
    ("DELETE", "/_standin/alarms/a1", None, 0),
    ("DELETE", "/_standin/alarms/a1", None, 404),
    ("PUT", "/_standin/faults", {"latency_ms": {"min": 0, "max": 1}, "routes": ["list_nodes"]}, 0),
    ("GET", "/_standin", None, 0),
    ("DELETE", "/_standin/faults", None, 0),
    ("PUT", "/_standin/faults", {"error_rate": 2}, 108),
    ("GET", "/_standin/journal?limit=0", None, 108),
    ("DELETE", "/_standin/journal", None, 0),
    ("PUT", "/_standin/traffic", {"speed": 0, "devices": 20}, 0),
    ("PUT", "/_standin/traffic", {"speed": 0, "bogus": 1}, 108),
    ("POST", "/_standin/traffic/advance", {"seconds": 5}, 0),
    ("POST", "/_standin/traffic/advance", {}, 107),
    ("GET", "/_standin/traffic", None, 0),
    ("DELETE", "/_standin/traffic", None, 0),
    ("POST", "/_standin/traffic/advance", {"seconds": 5}, 102),
    ("POST", "/_standin/reset", {"clients": 3}, 0),
]


def _template(method, url):
    """The documented operation a concrete URL belongs to (via Flask's routing)."""
    path = url.split("?", 1)[0]
    adapter = emqx.app.url_map.bind("localhost")
    rule, _ = adapter.match(path, method=method, return_rule=True)
    return doc_path(rule.rule)


def test_write_answers_match_the_document(client):
    """In order, on one database: each answer validates, with the expected `code`."""
    for method, url, body, code in WRITES:
        kwargs = {"json": body} if body is not None else {}
        response = client.open(url, method=method, auth=AUTH, **kwargs)
        answer = check_response(method, _template(method, url), response)
        assert answer["code"] == code, (method, url, body, answer)
