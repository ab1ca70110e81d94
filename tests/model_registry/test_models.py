"""The model registry without Ray or HTTP: registered models as catalog securables, versions
copied into managed storage, aliases, tags, search, permissions, sources (MLflow's CVE list),
lineage, drops and restarts (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import select

from lakeray.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from lakeray.model_registry.tables import model_versions
from lakeray.registry import Registry
from lakeray.tracker import Tracker

M = "main.default.churn"
MLMODEL = "artifact_path: model\nflavors:\n  python_function: {}\nsignature:\n  inputs: '[{\"type\": \"double\"}]'\n"


@pytest.fixture
def tracker(settings, registry):
    return Tracker(settings)


@pytest.fixture
def users(registry, admin):
    for name in ("bob", "carol"):
        registry.call_as(admin, "create_principal", name=name)
    return registry.principals.caller("bob"), registry.principals.caller("carol")


def logged_run(tracker, caller, files: dict[str, bytes] | None = None) -> tuple[str, str]:
    """A run holding a model directory ``model/`` (MLmodel + weights); returns (run_id, experiment path)."""
    exp = tracker.call_as(caller, "create_experiment", name=f"exp-{os.urandom(4).hex()}")["experiment_id"]
    run = tracker.call_as(caller, "create_run", experiment_id=exp)["run"]["info"]
    base = run["artifact_uri"][len("mlflow-artifacts:/"):]
    for name, data in (files or {"model/MLmodel": MLMODEL.encode(), "model/weights.bin": b"\x00\x01"}).items():
        tracker.call_as(caller, "upload_artifact", path=f"{base}/{name}", data=data)
    return run["run_id"], base


def mlflow(registry, caller, op, **kwargs):
    return registry.call_as(caller, f"mlflow_{op}", **kwargs)


def test_register_load_alias_roundtrip(registry, tracker, admin):
    run_id, base = logged_run(tracker, admin)
    created = mlflow(registry, admin, "create_registered_model", name=M, description="churn",
                     tags=[{"key": "team", "value": "ml"}])["registered_model"]
    assert created["name"] == M and created["tags"] == [{"key": "team", "value": "ml"}]
    assert registry.call_as(admin, "get_registered_model", full_name=M)["full_name"] == M  # a catalog securable
    v1 = mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model",
                run_id=run_id)["model_version"]
    assert v1["version"] == "1" and v1["status"] == "READY" and v1["run_id"] == run_id
    v2 = mlflow(registry, admin, "create_model_version", name=M, source=f"mlflow-artifacts:/{base}/model")
    assert v2["model_version"]["version"] == "2" and v2["model_version"]["run_id"] == run_id
    # artifacts were copied into the model's managed storage and are read through the proxy
    uri = mlflow(registry, admin, "get_model_version_download_uri", name=M, version="1")["artifact_uri"]
    assert uri.startswith("mlflow-artifacts:/models/") and uri.endswith("/versions/1")
    listed = tracker.call_as(admin, "list_artifacts", path=uri[len("mlflow-artifacts:/"):])["files"]
    assert {f["path"] for f in listed} == {"MLmodel", "weights.bin"}
    assert tracker.call_as(admin, "download_artifact", path=uri[len("mlflow-artifacts:/"):] + "/weights.bin") \
        == b"\x00\x01"
    # later changes to the run's artifacts do not change the version
    tracker.call_as(admin, "upload_artifact", path=f"{base}/model/weights.bin", data=b"changed")
    assert tracker.call_as(admin, "download_artifact", path=uri[len("mlflow-artifacts:/"):] + "/weights.bin") \
        == b"\x00\x01"
    # aliases: set, move, read, delete
    mlflow(registry, admin, "set_registered_model_alias", name=M, alias="Champion", version="1")
    assert mlflow(registry, admin, "get_model_version_by_alias", name=M, alias="champion")["model_version"][
        "version"] == "1"
    mlflow(registry, admin, "set_registered_model_alias", name=M, alias="champion", version="2")
    got = mlflow(registry, admin, "get_registered_model", name=M)["registered_model"]
    assert got["aliases"] == [{"alias": "champion", "version": "2"}]
    assert got["latest_versions"][0]["version"] == "2" and got["latest_versions"][0]["aliases"] == ["champion"]
    mlflow(registry, admin, "delete_registered_model_alias", name=M, alias="champion")
    with pytest.raises(NotFound):
        mlflow(registry, admin, "get_model_version_by_alias", name=M, alias="champion")
    # signature from the MLmodel file, UC shape
    uc = registry.call_as(admin, "get_model_version", full_name=M, version=1)
    assert uc["signature"] == {"inputs": '[{"type": "double"}]'} and uc["status"] == "READY"
    assert uc["storage_location"].startswith("file://") and uc["model_name"] == "churn"


def test_version_files_are_hard_links_and_leftovers_are_replaced(registry, tracker, admin):
    """Registering links the run's files instead of copying them (the store never writes a
    file in place, so the version keeps its bytes); a half-made directory left by a copy whose
    transaction never committed is replaced, not a conflict."""
    from urllib.parse import urlparse

    run_id, base = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=M)
    mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    v1 = registry.call_as(admin, "get_model_version", full_name=M, version=1)
    weights = os.path.join(urlparse(v1["storage_location"]).path, "weights.bin")
    assert os.stat(weights).st_nlink == 2
    tracker.call_as(admin, "delete_artifact", path=f"{base}/model")
    assert os.stat(weights).st_nlink == 1
    with open(weights, "rb") as f:
        assert f.read() == b"\x00\x01"
    # a crash between the copy and the commit left version 2's directory behind
    run_id, _ = logged_run(tracker, admin)
    stale = os.path.join(os.path.dirname(urlparse(v1["storage_location"]).path), "2")
    os.makedirs(stale)
    with open(os.path.join(stale, "stray.bin"), "wb") as f:
        f.write(b"half")
    mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    assert sorted(os.listdir(stale)) == ["MLmodel", "weights.bin"]


def test_lineage_run_to_version(registry, tracker, admin):
    run_id, _ = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=M)
    mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    edges = registry.call_as(admin, "get_lineage", node_type="model_version", name=f"{M}/1")["edges"]
    assert [(e["source"]["type"], e["source"]["name"]) for e in edges] == [("run", run_id)]


def test_logged_model_source(registry, tracker, admin):
    exp = tracker.call_as(admin, "create_experiment", name="lm")["experiment_id"]
    model = tracker.call_as(admin, "create_logged_model", experiment_id=exp, name="m")["model"]["info"]
    base = model["artifact_uri"][len("mlflow-artifacts:/"):]
    tracker.call_as(admin, "upload_artifact", path=f"{base}/MLmodel", data=MLMODEL.encode())
    mlflow(registry, admin, "create_registered_model", name="churn")  # dot-free: the default schema
    v = mlflow(registry, admin, "create_model_version", name="churn", source=f"models:/{model['model_id']}",
               model_id=model["model_id"])["model_version"]
    assert v["name"] == M and v["model_id"] == model["model_id"]
    with pytest.raises(InvalidArgument, match="does not match"):
        mlflow(registry, admin, "create_model_version", name=M, source=f"models:/{model['model_id']}",
               model_id="m-" + "0" * 32)


@pytest.mark.parametrize("source", [
    "/etc", "file:///etc", "file://host/share/x", "http://evil/x", "s3://bucket/x", "dbfs:/x",
    "mlflow-artifacts:/../../etc", "mlflow-artifacts:/experiments/%2e%2e/x", "mlflow-artifacts:/a%252e/x",
    "runs:/../x", "runs:/" + "a" * 32 + "/../../x", "runs:/" + "a" * 32 + "/x\\..\\y", "models:/churn/1",
    "models:/m-" + "0" * 32 + "#x", "mlflow-artifacts:/experiments/1/x?y", "mlflow-artifacts:/tables/x",
    "runs:/" + "a" * 32 + "/model\x00", "runs:/" + "a" * 32 + "/m;x", "",
])
def test_bad_sources_are_refused_and_change_nothing(registry, admin, source):
    mlflow(registry, admin, "create_registered_model", name=M)
    with pytest.raises((InvalidArgument, NotFound)):
        mlflow(registry, admin, "create_model_version", name=M, source=source)
    assert mlflow(registry, admin, "search_model_versions", filter=f"name='{M}'")["model_versions"] == []
    models_dir = registry.store.root / "models"
    assert not models_dir.exists() or not any(p.is_file() for p in models_dir.rglob("*"))


def test_symlinked_source_is_refused(registry, tracker, admin, tmp_path):
    run_id, base = logged_run(tracker, admin)
    secret = tmp_path / "secret"
    secret.write_text("s")
    os.symlink(secret, registry.store.root.joinpath(*base.split("/"), "model", "leak"))
    mlflow(registry, admin, "create_registered_model", name=M)
    with pytest.raises(InvalidArgument, match="link"):
        mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")


def test_permissions(registry, tracker, admin, users):
    bob, carol = users
    with pytest.raises(PermissionDenied):
        mlflow(registry, bob, "create_registered_model", name=M)
    registry.call_as(admin, "update_permissions", stype="schema", full_name="main.default",
                     changes=[{"principal": "bob", "add": ["USE SCHEMA", "CREATE MODEL"]},
                              {"principal": "carol", "add": ["USE SCHEMA"]}])
    registry.call_as(admin, "update_permissions", stype="catalog", full_name="main",
                     changes=[{"principal": "bob", "add": ["USE CATALOG"]},
                              {"principal": "carol", "add": ["USE CATALOG"]}])
    mlflow(registry, bob, "create_registered_model", name=M)  # bob owns it
    run_id, _ = logged_run(tracker, bob)
    mlflow(registry, bob, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    # carol: nothing without EXECUTE, not even in searches
    with pytest.raises(PermissionDenied):
        mlflow(registry, carol, "get_model_version", name=M, version="1")
    assert mlflow(registry, carol, "search_registered_models")["registered_models"] == []
    registry.call_as(bob, "update_permissions", stype="registered_model", full_name=M,
                     changes=[{"principal": "carol", "add": ["EXECUTE"]}])
    assert mlflow(registry, carol, "get_model_version", name=M, version="1")["model_version"]["version"] == "1"
    assert [m["name"] for m in mlflow(registry, carol, "search_registered_models")["registered_models"]] == [M]
    uri = mlflow(registry, carol, "get_model_version_download_uri", name=M, version="1")["artifact_uri"]
    assert tracker.call_as(carol, "list_artifacts", path=uri[len("mlflow-artifacts:/"):])["files"]
    # EXECUTE is not enough to change anything
    for op, kwargs in [("set_registered_model_alias", {"alias": "prod", "version": "1"}),
                       ("create_model_version", {"source": f"runs:/{run_id}/model"}),
                       ("delete_model_version", {"version": "1"}),
                       ("update_model_version", {"version": "1", "description": "x"}),
                       ("set_model_version_tag", {"version": "1", "key": "k", "value": "v"}),
                       ("delete_registered_model", {})]:
        with pytest.raises(PermissionDenied):
            mlflow(registry, carol, op, name=M, **kwargs)
    # the proxy never writes into a version
    with pytest.raises(PermissionDenied):
        tracker.call_as(bob, "upload_artifact", path=uri[len("mlflow-artifacts:/"):] + "/x", data=b"x")
    # MANAGE lets carol move aliases
    registry.call_as(bob, "update_permissions", stype="registered_model", full_name=M,
                     changes=[{"principal": "carol", "add": ["MANAGE"]}])
    mlflow(registry, carol, "set_registered_model_alias", name=M, alias="prod", version="1")
    denied = registry.call_as(admin, "query_audit", result="denied", principal="carol")["events"]
    assert any(e["action"] == "get_model_version" for e in denied)


def test_search_filters_order_and_paging(registry, tracker, admin):
    run_id, _ = logged_run(tracker, admin)
    for name in ("alpha", "beta", "gamma"):
        mlflow(registry, admin, "create_registered_model", name=f"main.default.{name}",
               tags=[{"key": "kind", "value": "tree" if name != "beta" else "linear"}])
    for _ in range(3):
        mlflow(registry, admin, "create_model_version", name="main.default.alpha", source=f"runs:/{run_id}/model",
               tags=[{"key": "stage", "value": "ok"}])
    names = lambda r: [m["name"] for m in r["registered_models"]]  # noqa: E731
    assert names(mlflow(registry, admin, "search_registered_models", filter="name LIKE '%a'")) == [
        "main.default.alpha", "main.default.beta", "main.default.gamma"]
    assert names(mlflow(registry, admin, "search_registered_models", filter="name = 'beta'")) == ["main.default.beta"]
    assert names(mlflow(registry, admin, "search_registered_models", filter="tags.kind = 'tree'",
                        order_by=["name DESC"])) == ["main.default.gamma", "main.default.alpha"]
    first = mlflow(registry, admin, "search_registered_models", max_results=2)
    assert len(first["registered_models"]) == 2 and first["next_page_token"]
    rest = mlflow(registry, admin, "search_registered_models", max_results=2, page_token=first["next_page_token"])
    assert names(rest) == ["main.default.gamma"] and "next_page_token" not in rest
    versions = mlflow(registry, admin, "search_model_versions", filter=f"name = 'alpha' AND run_id = '{run_id}'",
                      order_by="version_number ASC")["model_versions"]
    assert [v["version"] for v in versions] == ["1", "2", "3"]
    assert len(mlflow(registry, admin, "search_model_versions", filter="tags.stage = 'ok'",
                      max_results=2)["model_versions"]) == 2
    for bad in ("name = 'a' OR name = 'b'", "metrics.x > 1", "name = ", "drop table x"):
        with pytest.raises(InvalidArgument):
            mlflow(registry, admin, "search_model_versions", filter=bad)
    latest = mlflow(registry, admin, "get_latest_versions", name="main.default.alpha")["model_versions"]
    assert [v["version"] for v in latest] == ["3"]


def test_versions_delete_numbering_and_model_drop(registry, tracker, admin):
    run_id, _ = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=M)
    for _ in range(2):
        mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    mlflow(registry, admin, "set_registered_model_alias", name=M, alias="prod", version="2")
    storage = registry.call_as(admin, "get_model_version", full_name=M, version=2)["storage_location"]
    mlflow(registry, admin, "delete_model_version", name=M, version="2")
    assert not registry.store.exists(storage)
    assert mlflow(registry, admin, "get_registered_model", name=M)["registered_model"]["aliases"] == []
    v3 = mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    assert v3["model_version"]["version"] == "3"  # numbers are never reused
    with pytest.raises(Conflict):  # UC: a model with versions drops only with force
        registry.call_as(admin, "delete_registered_model", full_name=M)
    registry.call_as(admin, "delete_registered_model", full_name=M, force=True)
    with registry.db.read() as conn:
        assert conn.execute(select(model_versions)).all() == []
    # a new model of the same name starts afresh
    mlflow(registry, admin, "create_registered_model", name=M)
    assert mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")[
        "model_version"]["version"] == "1"
    with pytest.raises(AlreadyExists):
        mlflow(registry, admin, "create_registered_model", name=M)


def test_bad_inputs_change_nothing(registry, tracker, admin):
    run_id, _ = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=M)
    mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    before = mlflow(registry, admin, "get_registered_model", name=M)
    cases = [
        ("create_registered_model", {"name": "main.default.bad-name"}),
        ("create_registered_model", {"name": "a.b"}),
        ("create_registered_model", {"name": "main.nope.x"}),
        ("set_registered_model_alias", {"name": M, "alias": "latest", "version": "1"}),
        ("set_registered_model_alias", {"name": M, "alias": "v3", "version": "1"}),
        ("set_registered_model_alias", {"name": M, "alias": "a b", "version": "1"}),
        ("set_registered_model_alias", {"name": M, "alias": "prod", "version": "9"}),
        ("set_registered_model_alias", {"name": M, "alias": "prod", "version": "-1"}),
        ("get_model_version", {"name": M, "version": "abc"}),
        ("create_model_version", {"name": M, "source": f"runs:/{run_id}/model", "run_id": "f" * 32}),
        ("create_model_version", {"name": M, "source": f"runs:/{run_id}/nothing-here"}),
        ("create_model_version", {"name": "main.default.missing", "source": f"runs:/{run_id}/model"}),
        ("set_model_version_tag", {"name": M, "version": "1", "key": "", "value": "v"}),
        ("delete_registered_model_tag", {"name": M, "key": "absent"}),
        ("transition_model_version_stage", {"name": M, "version": "1", "stage": "Production"}),
        ("rename_registered_model", {"name": M, "new_name": "other.default.x"}),
        ("search_registered_models", {"max_results": 100000}),
        ("search_registered_models", {"page_token": "garbage"}),
    ]
    for op, kwargs in cases:
        with pytest.raises((InvalidArgument, NotFound)):
            mlflow(registry, admin, op, **kwargs)
    after = mlflow(registry, admin, "get_registered_model", name=M)
    assert after == before


def test_unknown_mlflow_fields_are_ignored(registry, admin):
    # MLflow's server parses requests with ignore_unknown_fields; newer clients send newer fields.
    created = mlflow(registry, admin, "create_registered_model", name=M, some_future_field=1)
    assert created["registered_model"]["name"] == M
    with pytest.raises(InvalidArgument):  # the UC API stays strict
        registry.call_as(admin, "get_registered_model", full_name=M, extra=1)


def test_rename_keeps_versions_and_grants(registry, tracker, admin):
    run_id, _ = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=M)
    mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    renamed = mlflow(registry, admin, "rename_registered_model", name=M, new_name="main.default.churn2")
    assert renamed["registered_model"]["name"] == "main.default.churn2"
    assert mlflow(registry, admin, "get_model_version", name="main.default.churn2", version="1")
    with pytest.raises(NotFound):
        mlflow(registry, admin, "get_registered_model", name=M)


def test_survives_restart(settings, registry, tracker, admin):
    run_id, _ = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=M)
    mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    mlflow(registry, admin, "set_registered_model_alias", name=M, alias="prod", version="1")
    again = Registry(settings)
    got = again.call_as(admin, "mlflow_get_model_version_by_alias", name=M, alias="prod")["model_version"]
    assert got["version"] == "1" and json.loads(json.dumps(got))["status"] == "READY"


def test_uc_shapes(registry, tracker, admin):
    run_id, _ = logged_run(tracker, admin)
    info = registry.call_as(admin, "create_registered_model", catalog_name="main", schema_name="default",
                            name="churn", comment="c")
    assert info["full_name"] == M and info["storage_location"].startswith("file://") and info["aliases"] == []
    v = registry.call_as(admin, "create_model_version", catalog_name="main", schema_name="default",
                         model_name="churn", source=f"runs:/{run_id}/model", comment="first")
    assert v["version"] == 1 and v["comment"] == "first" and v["run_id"] == run_id
    registry.call_as(admin, "set_registered_model_alias", full_name=M, alias="prod", version_num=1)
    assert registry.call_as(admin, "get_registered_model", full_name=M)["aliases"] == [
        {"alias_name": "prod", "version_num": 1}]
    assert registry.call_as(admin, "get_model_version_by_alias", full_name=M, alias="prod")["version"] == 1
    listed = registry.call_as(admin, "list_registered_models", catalog_name="main", schema_name="default")
    assert [m["full_name"] for m in listed["registered_models"]] == [M]
    assert registry.call_as(admin, "list_model_versions", full_name=M)["model_versions"][0]["version"] == 1
    assert registry.call_as(admin, "finalize_model_version", full_name=M, version=1)["status"] == "READY"
    updated = registry.call_as(admin, "update_model_version", full_name=M, version=1, comment="better")
    assert updated["comment"] == "better"
    registry.call_as(admin, "delete_model_version", full_name=M, version=1)
    registry.call_as(admin, "delete_registered_model", full_name=M)
    with pytest.raises(NotFound):
        registry.call_as(admin, "get_registered_model", full_name=M)


def test_missing_tag_is_not_equal(registry, admin):
    # what mlflow 3 appends to every registered-model search to hide prompts
    mlflow(registry, admin, "create_registered_model", name=M)
    mlflow(registry, admin, "create_registered_model", name="main.default.prompt",
           tags=[{"key": "mlflow.prompt.is_prompt", "value": "true"}])
    found = mlflow(registry, admin, "search_registered_models",
                   filter="name LIKE 'ch%' AND tag.`mlflow.prompt.is_prompt` != 'true'")
    assert [m["name"] for m in found["registered_models"]] == [M]
    found = mlflow(registry, admin, "search_registered_models", filter="tag.`mlflow.prompt.is_prompt` != 'true'")
    assert [m["name"] for m in found["registered_models"]] == [M]


# -- copying a version (MlflowClient.copy_model_version: source models:/<name>/<version>) ---------
DEV, PROD = "dev.ml.churn", "prod.ml.churn"


def two_catalogs(registry, admin) -> None:
    for catalog in ("dev", "prod"):
        registry.call_as(admin, "create_catalog", name=catalog)
        registry.call_as(admin, "create_schema", catalog_name=catalog, name="ml")


def version_files(registry, storage_location: str) -> dict[str, bytes]:
    from urllib.parse import urlparse

    root = urlparse(storage_location).path
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(root) for f in files}


def assert_no_new_version(registry, admin, name=PROD):
    assert mlflow(registry, admin, "search_model_versions", filter=f"name='{name}'")["model_versions"] == []
    model_dir = registry.store.location_path(registry.call_as(admin, "get_registered_model",
                                                              full_name=name)["storage_location"])
    assert not model_dir.exists() or not any(p.is_file() for p in model_dir.rglob("*"))


def test_copy_model_version_across_catalogs(registry, tracker, admin):
    """dev.ml.churn 1 -> prod.ml.churn: what the mlflow client sends, the UC API and a dot-free name."""
    two_catalogs(registry, admin)
    run_id, base = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=DEV)
    src = mlflow(registry, admin, "create_model_version", name=DEV, source=f"runs:/{run_id}/model", run_id=run_id,
                 tags=[{"key": "team", "value": "ml"}], description="trained")["model_version"]
    mlflow(registry, admin, "create_registered_model", name=PROD)
    copy = mlflow(registry, admin, "create_model_version", name=PROD, source=f"models:/{DEV}/1", run_id=run_id,
                  tags=src["tags"], run_link=None, description="trained", model_id=None)["model_version"]
    assert copy["name"] == PROD and copy["version"] == "1" and copy["status"] == "READY"
    assert copy["source"] == f"models:/{DEV}/1" and copy["run_id"] == run_id
    assert copy["tags"] == [{"key": "team", "value": "ml"}] and copy["description"] == "trained"
    with pytest.raises(InvalidArgument, match="does not match"):  # the run is the source version's
        mlflow(registry, admin, "create_model_version", name=PROD, source=f"models:/{DEV}/1", run_id="f" * 32)
    got_src = registry.call_as(admin, "get_model_version", full_name=DEV, version=1)
    got = registry.call_as(admin, "get_model_version", full_name=PROD, version=1)
    assert got["signature"] == got_src["signature"] == {"inputs": '[{"type": "double"}]'}
    # the files are the source version's, in the destination model's own storage (hard links)
    prod_model = registry.call_as(admin, "get_registered_model", full_name=PROD)
    assert got["storage_location"] == prod_model["storage_location"] + "/versions/1"
    files = version_files(registry, got["storage_location"])
    assert files == version_files(registry, got_src["storage_location"]) and set(files) == {"MLmodel", "weights.bin"}
    assert os.stat(registry.store.resolve(got["storage_location"], "weights.bin")).st_nlink == 3  # run, dev, prod
    uri = mlflow(registry, admin, "get_model_version_download_uri", name=PROD, version="1")["artifact_uri"]
    assert tracker.call_as(admin, "download_artifact", path=uri[len("mlflow-artifacts:/"):] + "/weights.bin") \
        == b"\x00\x01"
    # lineage: the run -> the copy (as for any version) and the source version -> the copy
    edges = registry.call_as(admin, "get_lineage", node_type="model_version", name=f"{PROD}/1")["edges"]
    assert sorted((e["source"]["type"], e["source"]["name"]) for e in edges) == [
        ("model_version", f"{DEV}/1"), ("run", run_id)]
    down = registry.call_as(admin, "get_lineage", node_type="run", name=run_id, direction="downstream")["edges"]
    assert {e["target"]["name"] for e in down} == {f"{DEV}/1", f"{PROD}/1"}
    found = mlflow(registry, admin, "search_model_versions", filter=f"run_id = '{run_id}'")["model_versions"]
    assert sorted((v["name"], v["version"]) for v in found) == [(DEV, "1"), (PROD, "1")]
    # the copy does not depend on the source: deleting the source version leaves it whole
    mlflow(registry, admin, "delete_model_version", name=DEV, version="1")
    assert version_files(registry, got["storage_location"]) == files
    # the Unity Catalog API's create-version goes through the same source check
    mlflow(registry, admin, "create_model_version", name=DEV, source=f"runs:/{run_id}/model")
    uc = registry.call_as(admin, "create_model_version", catalog_name="prod", schema_name="ml", model_name="churn",
                          source=f"models:/{DEV}/2", comment="promoted")
    assert uc["version"] == 2 and uc["source"] == f"models:/{DEV}/2" and uc["run_id"] == run_id
    # a dot-free MLflow name is the default schema's model, as everywhere else
    mlflow(registry, admin, "create_registered_model", name="churn")
    mlflow(registry, admin, "create_model_version", name="churn", source=f"runs:/{run_id}/model")
    v3 = mlflow(registry, admin, "create_model_version", name=PROD, source="models:/churn/1")["model_version"]
    assert v3["version"] == "3" and v3["source"] == "models:/churn/1"
    edges = registry.call_as(admin, "get_lineage", node_type="model_version", name=f"{PROD}/3")["edges"]
    assert ("model_version", f"{M}/1") in [(e["source"]["type"], e["source"]["name"]) for e in edges]
    assert version_files(registry, registry.call_as(admin, "get_model_version", full_name=PROD,
                                                    version=3)["storage_location"]) == files


def test_copy_model_version_keeps_logged_model_id(registry, tracker, admin):
    """What the client sends back (model_id of the source version) matches; another one is refused."""
    exp = tracker.call_as(admin, "create_experiment", name="lm-copy")["experiment_id"]
    model = tracker.call_as(admin, "create_logged_model", experiment_id=exp, name="m")["model"]["info"]
    tracker.call_as(admin, "upload_artifact", path=f"{model['artifact_uri'][len('mlflow-artifacts:/'):]}/MLmodel",
                    data=MLMODEL.encode())
    mlflow(registry, admin, "create_registered_model", name=M)
    mlflow(registry, admin, "create_model_version", name=M, source=f"models:/{model['model_id']}")
    mlflow(registry, admin, "create_registered_model", name="main.default.copy")
    copy = mlflow(registry, admin, "create_model_version", name="main.default.copy", source=f"models:/{M}/1",
                  model_id=model["model_id"])["model_version"]
    assert copy["model_id"] == model["model_id"]
    with pytest.raises(InvalidArgument, match="does not match"):
        mlflow(registry, admin, "create_model_version", name="main.default.copy", source=f"models:/{M}/1",
               model_id="m-" + "0" * 32)


def test_copy_model_version_needs_execute_on_the_source(registry, tracker, admin, users):
    bob, carol = users
    two_catalogs(registry, admin)
    run_id, _ = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=DEV)
    mlflow(registry, admin, "create_model_version", name=DEV, source=f"runs:/{run_id}/model")
    registry.call_as(admin, "update_permissions", stype="catalog", full_name="prod",
                     changes=[{"principal": "bob", "add": ["USE CATALOG"]}])
    registry.call_as(admin, "update_permissions", stype="schema", full_name="prod.ml",
                     changes=[{"principal": "bob", "add": ["USE SCHEMA", "CREATE MODEL"]}])
    mlflow(registry, bob, "create_registered_model", name=PROD)  # bob owns the destination
    source = f"models:/{DEV}/1"
    # nothing on dev; then USE CATALOG/SCHEMA but no EXECUTE: 403 and nothing created, either API
    for grant in (None, ("catalog", "dev", "USE CATALOG"), ("schema", "dev.ml", "USE SCHEMA")):
        if grant:
            registry.call_as(admin, "update_permissions", stype=grant[0], full_name=grant[1],
                             changes=[{"principal": "bob", "add": [grant[2]]}])
        with pytest.raises(PermissionDenied):
            mlflow(registry, bob, "create_model_version", name=PROD, source=source, run_id=run_id)
        with pytest.raises(PermissionDenied):
            registry.call_as(bob, "create_model_version", catalog_name="prod", schema_name="ml", model_name="churn",
                             source=source)
        assert_no_new_version(registry, admin)
    # without EXECUTE a missing version is a 403 too: version numbers cannot be probed
    with pytest.raises(PermissionDenied):
        mlflow(registry, bob, "create_model_version", name=PROD, source=f"models:/{DEV}/99")
    denied = registry.call_as(admin, "query_audit", result="denied", principal="bob")["events"]
    assert any(e["action"] == "create_model_version" and e["securable"] == DEV for e in denied)
    # EXECUTE (what loading the model needs) is enough on the source
    registry.call_as(admin, "update_permissions", stype="registered_model", full_name=DEV,
                     changes=[{"principal": "bob", "add": ["EXECUTE"]}])
    copy = mlflow(registry, bob, "create_model_version", name=PROD, source=source, run_id=run_id)["model_version"]
    assert copy["version"] == "1" and copy["run_id"] == run_id and copy["source"] == source
    # EXECUTE on the source does not replace ownership or MANAGE on the destination
    registry.call_as(admin, "update_permissions", stype="catalog", full_name="dev",
                     changes=[{"principal": "carol", "add": ["USE CATALOG"]}])
    registry.call_as(admin, "update_permissions", stype="schema", full_name="dev.ml",
                     changes=[{"principal": "carol", "add": ["USE SCHEMA"]}])
    registry.call_as(admin, "update_permissions", stype="registered_model", full_name=DEV,
                     changes=[{"principal": "carol", "add": ["EXECUTE"]}])
    registry.call_as(admin, "update_permissions", stype="catalog", full_name="prod",
                     changes=[{"principal": "carol", "add": ["USE CATALOG"]}])
    registry.call_as(admin, "update_permissions", stype="schema", full_name="prod.ml",
                     changes=[{"principal": "carol", "add": ["USE SCHEMA"]}])
    registry.call_as(bob, "update_permissions", stype="registered_model", full_name=PROD,
                     changes=[{"principal": "carol", "add": ["EXECUTE"]}])
    with pytest.raises(PermissionDenied):
        mlflow(registry, carol, "create_model_version", name=PROD, source=source)
    assert [v["version"] for v in mlflow(registry, admin, "search_model_versions",
                                         filter=f"name='{PROD}'")["model_versions"]] == ["1"]


def test_copy_model_version_missing_source_is_404(registry, tracker, admin):
    two_catalogs(registry, admin)
    run_id, _ = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=DEV)
    mlflow(registry, admin, "create_model_version", name=DEV, source=f"runs:/{run_id}/model")
    mlflow(registry, admin, "create_model_version", name=DEV, source=f"runs:/{run_id}/model")
    mlflow(registry, admin, "delete_model_version", name=DEV, version="2")
    mlflow(registry, admin, "create_registered_model", name=PROD)
    for source, message in [("models:/dev.ml.nope/1", "dev.ml.nope not found"),
                            ("models:/nope/1", "main.default.nope not found"),  # dot-free: the default schema
                            ("models:/nocat.ml.churn/1", "not found"),
                            (f"models:/{DEV}/2", "version=2"),  # deleted
                            (f"models:/{DEV}/3", "version=3")]:
        with pytest.raises(NotFound, match=message):
            mlflow(registry, admin, "create_model_version", name=PROD, source=source)
        with pytest.raises(NotFound):
            registry.call_as(admin, "create_model_version", catalog_name="prod", schema_name="ml",
                             model_name="churn", source=source)
    assert_no_new_version(registry, admin)


@pytest.mark.parametrize("source", [
    "models:/x/notanumber", "models:/x/0", "models:/../x/1", "models:/a.b.c.d/1", "models:/a.b/1",
    f"models:/{DEV}/0", f"models:/{DEV}/01", f"models:/{DEV}/-1", f"models:/{DEV}/2147483648",
    f"models:/{DEV}/99999999999", f"models:/{DEV}/latest", f"models:/{DEV}/Production", f"models:/{DEV}@champion",
    f"models:/{DEV}/1@x", f"models:/{DEV}", f"models:/{DEV}/", f"models:/{DEV}/1/", f"models:/{DEV}/1/MLmodel",
    f"models:/{DEV}/1/../../x", f"models://{DEV}/1", f"models:{DEV}/1", f"models:/{DEV}/1#x", f"models:/{DEV}/1?x",
    "models:/dev..churn/1", "models:/.dev.ml.churn/1", "models:/dev.ml.ch-urn/1", "models:/dev.ml.churn%2f/1",
    "models:/%2e%2e/x/1", "models:/dev.ml.churn/1\x00", "models:/dev.ml.chürn/1", "models:/ /1", "models://1",
    "MODELS:/dev.ml.churn/1", "models:/dev/ml/churn/1",
])
def test_copy_model_version_malformed_source_is_400(registry, tracker, admin, source):
    two_catalogs(registry, admin)
    run_id, _ = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=DEV)
    mlflow(registry, admin, "create_model_version", name=DEV, source=f"runs:/{run_id}/model")
    mlflow(registry, admin, "create_registered_model", name=PROD)
    with pytest.raises(InvalidArgument):
        mlflow(registry, admin, "create_model_version", name=PROD, source=source)
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "create_model_version", catalog_name="prod", schema_name="ml", model_name="churn",
                         source=source)
    assert_no_new_version(registry, admin)


def test_registered_version_sources_are_the_registrys_alone(registry):
    """The artifact-level check classifies models:/<name>/<n> only when the registry asks."""
    from lakeray.tracking.artifacts import check_model_source

    assert check_model_source(f"models:/{DEV}/3", registry.store, registered_versions=True) == {
        "kind": "model_version", "name": DEV, "version": 3, "path": ""}
    assert check_model_source("models:/churn/2147483647", registry.store, registered_versions=True)["version"] \
        == 2**31 - 1
    with pytest.raises(InvalidArgument, match="not sources here"):
        check_model_source(f"models:/{DEV}/3", registry.store)
    with pytest.raises(InvalidArgument, match="alias"):
        check_model_source(f"models:/{DEV}@prod", registry.store, registered_versions=True)
