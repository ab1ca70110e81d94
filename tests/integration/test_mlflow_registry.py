"""Contract: the unmodified mlflow client against lakeray's model registry (the catalog)."""

import os

import pytest

pytestmark = pytest.mark.ray

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("mlflow.pyfunc")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


class AddN(mlflow.pyfunc.PythonModel):
    """A tiny pyfunc model: adds ``n`` to every input value."""

    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input, params=None):
        return model_input + self.n


@pytest.fixture
def registry(platform, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", platform.token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    mlflow.set_tracking_uri(platform.url)
    mlflow.set_registry_uri(platform.url)
    yield MlflowClient(platform.url, registry_uri=platform.url)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_pyfunc_log_register_alias_load(registry):
    import pandas as pd

    name = "main.default.contract_addn"
    mlflow.set_experiment("contract-registry")
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=AddN(1), registered_model_name=name)
    assert str(info.registered_model_version) == "1"
    data = pd.DataFrame({"x": [1.0, 2.0]})
    for uri in (info.model_uri, f"runs:/{run.info.run_id}/model", f"models:/{name}/1"):
        assert mlflow.pyfunc.load_model(uri).predict(data)["x"].tolist() == [2.0, 3.0], uri
    # a second version, an alias that moves between them, and loading through the alias
    with mlflow.start_run():
        second = mlflow.pyfunc.log_model(name="model", python_model=AddN(10))
    v2 = mlflow.register_model(second.model_uri, name)
    assert v2.version == "2" and v2.status == "READY"
    registry.set_registered_model_alias(name, "champion", 1)
    assert mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(data)["x"].tolist() == [2.0, 3.0]
    registry.set_registered_model_alias(name, "champion", 2)
    assert registry.get_model_version_by_alias(name, "champion").version == "2"
    assert mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(data)["x"].tolist() == [11.0, 12.0]
    model = registry.get_registered_model(name)
    assert model.aliases == {"champion": "2"}
    registry.delete_registered_model_alias(name, "champion")
    with pytest.raises(MlflowException) as err:
        registry.get_model_version_by_alias(name, "champion")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # searches
    assert [m.name for m in registry.search_registered_models(filter_string="name LIKE 'contract_add%'")] == [name]
    versions = registry.search_model_versions(f"name = '{name}'", order_by=["version_number ASC"])
    assert [v.version for v in versions] == ["1", "2"]
    # deleting a version
    registry.delete_model_version(name, "1")
    assert [v.version for v in registry.search_model_versions(f"name = '{name}'")] == ["2"]
    with pytest.raises(MlflowException) as err:
        registry.get_model_version(name, "1")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_register_run_artifacts_and_tags(registry, tmp_path):
    name = "contract_plain"  # dot-free: lands in the default schema
    mlflow.set_experiment("contract-registry-2")
    with mlflow.start_run() as run:
        mlflow.pyfunc.save_model(str(tmp_path / "m"), python_model=AddN(5))
        mlflow.log_artifacts(str(tmp_path / "m"), artifact_path="exported")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/exported", name, tags={"team": "ml"})
    assert version.name == "main.default.contract_plain" and version.run_id == run.info.run_id
    assert version.tags == {"team": "ml"}
    registry.update_model_version(version.name, version.version, description="five")
    registry.set_registered_model_tag(version.name, "owner", "contract")
    got = registry.get_registered_model(version.name)
    assert got.tags == {"owner": "contract"} and got.latest_versions[0].description == "five"
    registry.rename_registered_model(version.name, "main.default.contract_plain2")
    assert registry.get_model_version("main.default.contract_plain2", "1").version == "1"
    registry.delete_registered_model("main.default.contract_plain2")
    assert registry.search_registered_models(filter_string="name = 'main.default.contract_plain2'") == []


def test_registry_errors(registry):
    with pytest.raises(MlflowException) as err:
        registry.create_registered_model("main.default.bad-name")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    registry.create_registered_model("main.default.contract_errors")
    with pytest.raises(MlflowException) as err:
        registry.create_registered_model("main.default.contract_errors")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    for source in ("file:///etc", "/etc/passwd", "http://example.com/x", "mlflow-artifacts:/../../etc"):
        with pytest.raises(MlflowException) as err:
            registry.create_model_version("main.default.contract_errors", source)
        assert err.value.error_code == "INVALID_PARAMETER_VALUE", source
    assert registry.search_model_versions("name = 'main.default.contract_errors'") == []


def test_execute_needed_to_load(platform, registry):
    admin = platform.client("http")
    admin.create_principal("model_reader")
    token = admin.create_token(principal="model_reader")["token_value"]
    name = "main.default.contract_private"
    mlflow.set_experiment("contract-registry-3")
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="model", python_model=AddN(2), registered_model_name=name)
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        with pytest.raises(MlflowException) as err:
            mlflow.pyfunc.load_model(f"models:/{name}/1")
        assert err.value.error_code == "PERMISSION_DENIED"
    finally:
        os.environ["MLFLOW_TRACKING_TOKEN"] = platform.token
    for securable, full_name, privileges in (("catalog", "main", ["USE CATALOG"]),
                                             ("schema", "main.default", ["USE SCHEMA"]),
                                             ("registered_model", name, ["EXECUTE"])):
        admin.update_permissions(securable, full_name, [{"principal": "model_reader", "add": privileges}])
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        import pandas as pd

        model = mlflow.pyfunc.load_model(f"models:/{name}/1")
        assert model.predict(pd.DataFrame({"x": [1.0]}))["x"].tolist() == [3.0]
        with pytest.raises(MlflowException) as err:
            MlflowClient(platform.url, registry_uri=platform.url).set_registered_model_alias(name, "prod", 1)
        assert err.value.error_code == "PERMISSION_DENIED"
    finally:
        os.environ["MLFLOW_TRACKING_TOKEN"] = platform.token


def test_sklearn_autolog(registry):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LinearRegression

    assert sklearn
    mlflow.set_experiment("contract-autolog")
    mlflow.sklearn.autolog(log_models=True, registered_model_name="main.default.contract_linear")
    try:
        with mlflow.start_run() as run:
            LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
    finally:
        mlflow.sklearn.autolog(disable=True)
    got = registry.get_run(run.info.run_id)
    assert got.data.params["fit_intercept"] == "True"
    assert "training_score" in got.data.metrics
    versions = registry.search_model_versions("name = 'main.default.contract_linear'")
    assert [v.version for v in versions] == ["1"]
    model = mlflow.sklearn.load_model("models:/main.default.contract_linear/1")
    assert model.predict([[3.0]])[0] == pytest.approx(7.0)


def test_same_models_through_uc_sdk_and_lakeray_client(platform, registry, tmp_path):
    import asyncio

    from unitycatalog.client import ApiClient, Configuration, ModelVersionsApi, RegisteredModelsApi
    from unitycatalog.client.models import CreateModelVersion, CreateRegisteredModel, UpdateRegisteredModel

    mlflow.set_experiment("contract-registry-uc")
    with mlflow.start_run() as run:
        mlflow.pyfunc.save_model(str(tmp_path / "m"), python_model=AddN(3))
        mlflow.log_artifacts(str(tmp_path / "m"), artifact_path="model")
    source = f"runs:/{run.info.run_id}/model"

    async def scenario():
        config = Configuration(host=platform.url + "/api/2.1/unity-catalog")
        async with ApiClient(config, header_name="Authorization", header_value=f"Bearer {platform.token}") as api:
            models, versions = RegisteredModelsApi(api), ModelVersionsApi(api)
            made = await models.create_registered_model(CreateRegisteredModel(
                name="uc_model", catalog_name="main", schema_name="default", comment="from UC"))
            assert made.full_name == "main.default.uc_model" and made.owner == "admin"
            v = await versions.create_model_version(CreateModelVersion(
                model_name="uc_model", catalog_name="main", schema_name="default", source=source,
                run_id=run.info.run_id))
            assert v.version == 1 and v.status.value == "READY" and v.storage_location.startswith("file://")
            assert (await versions.finalize_model_version("main.default.uc_model", 1)).status.value == "READY"
            listed = await models.list_registered_models(catalog_name="main", schema_name="default")
            assert "main.default.uc_model" in [m.full_name for m in listed.registered_models]
            assert [x.version for x in (await versions.list_model_versions("main.default.uc_model")).model_versions] \
                == [1]
            renamed = await models.update_registered_model("main.default.uc_model",
                                                           UpdateRegisteredModel(new_name="uc_model2"))
            assert renamed.full_name == "main.default.uc_model2"

    asyncio.run(scenario())
    # the lakeray client (both transports) and the mlflow client see the same model
    for via in ("http", "ray"):
        client = platform.client(via)
        assert client.get_model_version("main.default.uc_model2", 1)["run_id"] == run.info.run_id
        client.set_model_alias("main.default.uc_model2", "prod", 1)
        assert client.get_model_version_by_alias("main.default.uc_model2", "prod")["version"] == 1
        client.delete_model_alias("main.default.uc_model2", "prod")
    assert mlflow.pyfunc.load_model("models:/main.default.uc_model2/1").predict(
        __import__("pandas").DataFrame({"x": [1.0]}))["x"].tolist() == [4.0]
    client = platform.client("http")
    import lakeray

    with pytest.raises(lakeray.Conflict):
        client.delete_registered_model("main.default.uc_model2")
    client.delete_registered_model("main.default.uc_model2", force=True)
    with pytest.raises(lakeray.NotFound):
        client.get_registered_model("main.default.uc_model2")


def test_copy_model_version_across_catalogs(platform, registry):
    """Databricks' way to promote a model: ``copy_model_version`` from dev to prod (the client
    resolves the alias and sends ``source=models:/<name>/<version>``), then load the copy."""
    import pandas as pd
    from mlflow.models import infer_signature

    admin = platform.client("http")
    for catalog in ("copy_dev", "copy_prod"):
        admin.create_catalog(catalog)
        admin.create_schema(catalog, "ml")
    src, dst = "copy_dev.ml.churn", "copy_prod.ml.churn"
    data = pd.DataFrame({"x": [1.0, 2.0]})
    mlflow.set_experiment("contract-registry-copy")
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=AddN(7), registered_model_name=src,
                                signature=infer_signature(data, data + 7))
    registry.set_registered_model_alias(src, "champion", 1)
    copy = registry.copy_model_version(f"models:/{src}@champion", dst)  # creates the destination model
    assert copy.name == dst and copy.version == "1" and copy.status == "READY"
    assert copy.source == f"models:/{src}/1" and copy.run_id == run.info.run_id
    assert registry.get_model_version(dst, "1").source == f"models:/{src}/1"
    model = mlflow.pyfunc.load_model(f"models:/{dst}/1")
    assert model.predict(data)["x"].tolist() == [8.0, 9.0]
    assert model.metadata.signature == mlflow.pyfunc.load_model(f"models:/{src}/1").metadata.signature
    assert model.metadata.signature is not None
    edges = platform.client("ray").get_lineage("model_version", f"{dst}/1")["edges"]
    assert sorted((e["source"]["type"], e["source"]["name"]) for e in edges) == [
        ("model_version", f"{src}/1"), ("run", run.info.run_id)]
    # into an existing model: the next version
    assert registry.copy_model_version(f"models:/{src}/1", dst).version == "2"
    # the server's own answers to such sources
    for source, code in ((f"models:/{src}/9", "RESOURCE_DOES_NOT_EXIST"),
                         ("models:/copy_dev.ml.nope/1", "RESOURCE_DOES_NOT_EXIST"),
                         (f"models:/{src}/0", "INVALID_PARAMETER_VALUE"),
                         (f"models:/{src}/notanumber", "INVALID_PARAMETER_VALUE"),
                         ("models:/../x/1", "INVALID_PARAMETER_VALUE"),
                         ("models:/a.b.c.d/1", "INVALID_PARAMETER_VALUE")):
        with pytest.raises(MlflowException) as err:
            registry.create_model_version(dst, source)
        assert err.value.error_code == code, source
    # without EXECUTE on the source (what loading it needs) nothing is copied
    admin.create_principal("model_copier")
    admin.update_permissions("catalog", "copy_prod", [{"principal": "model_copier", "add": ["USE CATALOG"]}])
    admin.update_permissions("schema", "copy_prod.ml",
                             [{"principal": "model_copier", "add": ["USE SCHEMA", "CREATE MODEL"]}])
    token = admin.create_token(principal="model_copier")["token_value"]
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        copier = MlflowClient(platform.url, registry_uri=platform.url)
        copier.create_registered_model("copy_prod.ml.mine")
        with pytest.raises(MlflowException) as err:
            copier.create_model_version("copy_prod.ml.mine", f"models:/{src}/1", run_id=run.info.run_id)
        assert err.value.error_code == "PERMISSION_DENIED"
        assert copier.search_model_versions("name = 'copy_prod.ml.mine'") == []
    finally:
        os.environ["MLFLOW_TRACKING_TOKEN"] = platform.token
    assert [v.version for v in registry.search_model_versions(f"name = '{dst}'", order_by=["version_number ASC"])] \
        == ["1", "2"]
