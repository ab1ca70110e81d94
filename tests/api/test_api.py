"""The HTTP API in-process (FastAPI TestClient over a LocalBackend): auth on every route,
the error format, bad inputs that change nothing, body caps, and the OpenAPI snapshot."""

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from lakeray.api.app import PUBLIC_PATHS, build_app, route_inventory
from lakeray.arrow_wire import ARROW_STREAM, from_ipc, to_ipc

SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")
UC = "/api/2.1/unity-catalog"


def test_every_route_needs_a_token_except_the_allowlist(backend):
    app = build_app(backend)
    anon = TestClient(app)
    public, checked = set(), 0
    for method, path in route_inventory(app):
        url = path.replace("{path:path}", "Volumes/main/default/v/f").replace("{", "").replace("}", "")
        for headers in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer"}):
            resp = anon.request(method, url, headers=headers)
            if resp.status_code != 401:
                public.add(path)
            elif method != "HEAD":
                assert resp.json()["error_code"] == "UNAUTHENTICATED"
        checked += 1
    assert public <= PUBLIC_PATHS
    assert PUBLIC_PATHS == {"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
    documented = {p for p in app.openapi()["paths"]}
    assert documented <= {p.replace(":path", "") for _, p in route_inventory(app)}
    assert checked > 60
    assert anon.get("/healthz").status_code == 200


def test_invalid_token_is_401_not_500(api):
    resp = api.get(UC + "/catalogs", headers={"Authorization": "Bearer lr_not-a-real-token"})
    assert resp.status_code == 401 and resp.json()["error_code"] == "UNAUTHENTICATED"


def test_unity_catalog_shapes(api):
    resp = api.post(UC + "/catalogs", json={"name": "web", "comment": "c"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] == "web"
    assert api.post(UC + "/schemas", json={"name": "s", "catalog_name": "web"}).status_code == 200
    table = api.post(UC + "/tables", json={"name": "t", "catalog_name": "web", "schema_name": "s",
                                           "table_type": "MANAGED", "columns": [
                                               {"name": "id", "type_name": "LONG", "position": 0}]})
    assert table.status_code == 200, table.text
    assert table.json()["columns"][0]["type_name"] == "LONG"
    listed = api.get(UC + "/tables", params={"catalog_name": "web", "schema_name": "s"}).json()
    assert [t["name"] for t in listed["tables"]] == ["t"]
    dup = api.post(UC + "/catalogs", json={"name": "web"})
    assert dup.status_code == 409 and dup.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    missing = api.get(UC + "/tables/web.s.nope")
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_table_data_json_and_arrow(api):
    data = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    resp = api.post("/api/lakeray/v1/tables", params={"full_name": "main.default.d"}, content=to_ipc(data),
                    headers={"Content-Type": ARROW_STREAM})
    assert resp.status_code == 200, resp.text
    resp = api.post("/api/lakeray/v1/tables/main.default.d/rows", json={"rows": [{"id": 4, "name": "d"}]})
    assert resp.status_code == 200 and resp.json()["version"] == 2
    page = api.get("/api/lakeray/v1/tables/main.default.d/rows", params={"max_rows": 3}).json()
    assert [r["id"] for r in page["rows"]] == [1, 2, 3] and page["next_page_token"]
    rest = api.get("/api/lakeray/v1/tables/main.default.d/rows",
                   params={"page_token": page["next_page_token"]}).json()
    assert [r["id"] for r in rest["rows"]] == [4] and "next_page_token" not in rest
    arrow = api.get("/api/lakeray/v1/tables/main.default.d/rows", params={"format": "arrow", "version": 1})
    assert from_ipc(arrow.content).num_rows == 3
    gone = api.post("/api/lakeray/v1/tables/main.default.d/delete", json={"predicate": [["id", ">=", 3]]})
    assert gone.json()["num_deleted"] == 2
    bad = api.post("/api/lakeray/v1/tables/main.default.d/rows", json={"rows": [{"id": "x"}]})
    assert bad.status_code == 400


BAD_NAMES = ["..", "%2e%2e", "%252e%252e", "a%00b", "x" * 10_000, "ｍain", "'; DROP TABLE grants;--", "a b",
             "..%2f..%2fetc"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_over_http_are_4xx_and_change_nothing(api, name):
    before = (api.get(UC + "/catalogs").json(), api.get(UC + "/schemas", params={"catalog_name": "main"}).json())
    for method, url, body in (
            ("POST", UC + "/catalogs", {"name": name}),
            ("POST", UC + "/schemas", {"name": name, "catalog_name": "main"}),
            ("GET", UC + f"/catalogs/{name}", None),
            ("GET", UC + f"/tables/main.default.{name}", None),
            ("DELETE", UC + f"/schemas/main.{name}", None),
            ("PATCH", UC + f"/permissions/catalog/{name}", {"changes": [{"principal": "x", "add": ["SELECT"]}]})):
        resp = api.request(method, url, json=body)
        assert 400 <= resp.status_code < 500, (method, url, resp.status_code, resp.text)
        assert set(resp.json()) == {"error_code", "message"}
    after = (api.get(UC + "/catalogs").json(), api.get(UC + "/schemas", params={"catalog_name": "main"}).json())
    assert after == before


@pytest.mark.parametrize("body,ctype", [
    (b'{"name": "x"', "application/json"), (b"\xff\xfe\x00", "application/json"),
    (b"[" * 100_00 + b"]" * 100_00, "application/json"), (b'{"name": 5}', "application/json"),
    (b'{"name": "ok", "surprise": 1}', "application/json"), (b"name=x", "text/plain")])
def test_malformed_bodies_are_400(api, body, ctype):
    before = api.get(UC + "/catalogs").json()
    resp = api.post(UC + "/catalogs", content=body, headers={"Content-Type": ctype})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert api.get(UC + "/catalogs").json() == before


def test_oversize_bodies_are_413(api):
    resp = api.post(UC + "/catalogs", content=b'{"name": "' + b"a" * 100_000 + b'"}',
                    headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"

    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    streamed = api.put("/api/2.0/fs/files/Volumes/main/default/v/big.bin", content=chunks())
    assert streamed.status_code == 413


def test_errors_never_leak_tracebacks(api, registry, monkeypatch):
    def explode(*a, **k):
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(registry.catalog, "get", explode)
    registry.ops = registry._operations()
    resp = api.get(UC + "/catalogs/main")  # the exception ends with the answer: nothing is re-raised
    assert resp.status_code == 500
    assert "secret" not in resp.text and "Traceback" not in resp.text


def test_openapi_snapshot(backend):
    spec = TestClient(build_app(backend)).get("/openapi.json").json()
    text = json.dumps(spec, indent=1, sort_keys=True)
    if os.environ.get("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(text + "\n")
    assert text + "\n" == SNAPSHOT.read_text(), "API changed: rerun with UPDATE_SNAPSHOTS=1 if deliberate"


@pytest.mark.parametrize("raw,logged", [
    (b'{"key": "a", "value": 1.5, "timestamp": 1, "step": 2}', 1.5),
    (b'{"key": "a", "value": NaN, "timestamp": 1, "step": 2}', "NaN"),  # Python's parser takes these
    (b'{"key": "a", "value": -Infinity, "timestamp": 1, "step": 2}', -1.7976931348623157e308)])
def test_mlflow_bodies_parse_as_pythons_json_would(api, raw, logged):
    exp = api.post("/api/2.0/mlflow/experiments/create", json={"name": "parse"}).json()["experiment_id"]
    run = api.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    body = raw[:1] + b'"run_id": "' + run.encode() + b'", ' + raw[1:]
    resp = api.post("/api/2.0/mlflow/runs/log-metric", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    metrics = api.get("/api/2.0/mlflow/runs/get", params={"run_id": run}).json()["run"]["data"]["metrics"]
    assert metrics[0]["value"] == logged
    for bad in (b'{"run_id": ', b'{"run_id": "' + run.encode() + b'", "key": "a", "value": 1, "step": 1e999999}',
                b'{"run_id": "' + run.encode() + b'", "key": "\\ud800", "value": 1}'):
        resp = api.post("/api/2.0/mlflow/runs/log-metric", content=bad, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE", resp.text


def test_mlflow_bodies_nested_too_deep_are_400(api):
    before = api.post("/api/2.0/mlflow/experiments/search", json={"max_results": 1000}).json()
    # deeper than any parser's recursion allows, within the fixture's 64 KiB body cap
    for body in (b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        resp = api.post("/api/2.0/mlflow/experiments/create", content=body,
                        headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE", resp.text
    assert api.post("/api/2.0/mlflow/experiments/search", json={"max_results": 1000}).json() == before


# The names of the parameters between a route and an operation (the route's request, the
# operation's name, the token, the thread pool's function, the caller...).
PLUMBING = {"op": "x", "request": 1, "token": "forged", "fn": 1, "caller": "someone-else", "self": 1}


def test_mlflow_fields_named_like_the_plumbing_are_ignored(api, registry):
    """MLflow ignores fields it does not know; ones named like lakeray's own call parameters
    are no different (no 500, and a ``caller`` field does not choose who acts)."""
    exp = api.post("/api/2.0/mlflow/experiments/create", json={"name": "plumbing", **PLUMBING})
    assert exp.status_code == 200, exp.text
    run = api.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp.json()["experiment_id"], **PLUMBING})
    assert run.status_code == 200, run.text
    info = run.json()["run"]["info"]
    assert info["user_id"] == "admin"
    got = api.get("/api/2.0/mlflow/runs/get", params={"run_id": info["run_id"], **PLUMBING})
    assert got.status_code == 200 and got.json()["run"]["info"] == info


@pytest.mark.parametrize("field", sorted(PLUMBING))
def test_plumbing_names_reach_strict_operations_as_bad_arguments(registry, admin, field):
    """Over the Python API too, a keyword named like a call parameter is the operation's to
    judge: an unknown one is InvalidArgument, never a TypeError from the plumbing."""
    from lakeray.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="bad arguments to create_catalog"):
        registry.call_as(admin, "create_catalog", name="plumbing", **{field: PLUMBING[field]})
    assert "plumbing" not in [c["name"] for c in registry.call_as(admin, "list_catalogs")["catalogs"]]


def test_replacing_an_endpoint_checks_its_config_as_put_config_does(api):
    """``PUT /serving-endpoints/{name}`` takes the body ``PUT .../config`` takes, under
    ``config``: an unknown field there (``name`` too) is a 400, not a clash with the path's name."""
    for config in ({"name": "other"}, {"surprise": 1}, {"served_entities": "not-a-list"}):
        resp = api.put("/api/2.0/serving-endpoints/ep", json={"config": config})
        assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE", resp.text
    resp = api.put("/api/2.0/serving-endpoints/ep", json={"config": {"served_entities": [
        {"entity_name": "main.default.m", "entity_version": "1"}]}})
    assert resp.status_code == 404, resp.text  # a well-formed config reaches the operation


def test_several_authorization_headers_are_400_and_nothing_runs(api, registry, admin):
    """With the last header winning, bob's request with an admin token appended ran as admin:
    a request that carries more than one Authorization header is refused outright."""
    registry.call_as(admin, "create_principal", name="bob", kind="user")
    bob = "Bearer " + registry.call_as(admin, "create_token", principal="bob")["token_value"]
    admin_header = api.headers["Authorization"]
    assert api.get("/api/lakeray/v1/whoami", headers={"Authorization": bob}).json()["name"] == "bob"
    anon = TestClient(api.app)
    for pair in ((bob, admin_header), (admin_header, bob), (admin_header, admin_header)):
        resp = anon.post(UC + "/catalogs", json={"name": "twoheads"},
                         headers=[("Authorization", pair[0]), ("Authorization", pair[1])])
        assert resp.status_code == 400, resp.text
        assert resp.json() == {"error_code": "INVALID_PARAMETER_VALUE",
                               "message": "send one Authorization header, not several"}
    assert "twoheads" not in [c["name"] for c in api.get(UC + "/catalogs").json()["catalogs"]]


def test_json_bodies_sent_as_forms_are_read_as_json(api):
    """`curl -d '{...}'` labels its body a form unless told otherwise; no route takes forms,
    so the body is the JSON it is."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = api.post(UC + "/catalogs", content=b'{"name": "from_curl"}', headers=form)
    assert resp.status_code == 200, resp.text
    assert api.get(UC + "/catalogs/from_curl").json()["name"] == "from_curl"
    resp = api.post(UC + "/catalogs", content=b"name=x", headers=form)
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE", resp.text


def test_lineage_of_a_model_version_over_http(api):
    """A model version's lineage node is ``<model>/<n>``: its slash must reach the operation,
    quoted or not (lakeray's HTTP client quotes it)."""
    created = api.post("/api/lakeray/v1/lineage", json={
        "source_type": "run", "source_name": "r" * 32, "target_type": "model_version",
        "target_name": "main.default.lin/1", "run_id": "r" * 32})
    assert created.status_code == 200, created.text
    for name in ("main.default.lin/1", "main.default.lin%2F1"):
        resp = api.get(f"/api/lakeray/v1/lineage/model_version/{name}")
        assert resp.status_code == 200, resp.text
        assert [e["source"]["name"] for e in resp.json()["edges"]] == ["r" * 32]
