"""The model registry's operations, in MLflow's and Unity Catalog's wire shapes.

:data:`MLFLOW_ENDPOINTS` is the MLflow model-registry REST API (``/api/2.0/mlflow/...``); the
routes are generated from it like the tracking ones (:mod:`lakeray.tracking.routes`). The UC
operations back ``/api/2.1/unity-catalog/models`` (:mod:`lakeray.model_registry.routes`) and the
Python client. Both sets run in the registry actor, over one :class:`ModelRegistry`.
"""

from __future__ import annotations

from lakeray.dispatch import Operation
from lakeray.errors import InvalidArgument
from lakeray.model_registry import render
from lakeray.model_registry.service import ModelRegistry
from lakeray.principals.service import Caller
from lakeray.tracking.artifacts import proxied

MLFLOW_ENDPOINTS: list[tuple[str, str, str]] = [
    ("POST", "/registered-models/create", "mlflow_create_registered_model"),
    ("GET", "/registered-models/get", "mlflow_get_registered_model"),
    ("PATCH", "/registered-models/update", "mlflow_update_registered_model"),
    ("POST", "/registered-models/rename", "mlflow_rename_registered_model"),
    ("DELETE", "/registered-models/delete", "mlflow_delete_registered_model"),
    ("GET", "/registered-models/search", "mlflow_search_registered_models"),
    ("POST", "/registered-models/get-latest-versions", "mlflow_get_latest_versions"),
    ("GET", "/registered-models/get-latest-versions", "mlflow_get_latest_versions"),
    ("POST", "/registered-models/set-tag", "mlflow_set_registered_model_tag"),
    ("DELETE", "/registered-models/delete-tag", "mlflow_delete_registered_model_tag"),
    ("POST", "/registered-models/alias", "mlflow_set_registered_model_alias"),
    ("DELETE", "/registered-models/alias", "mlflow_delete_registered_model_alias"),
    ("GET", "/registered-models/alias", "mlflow_get_model_version_by_alias"),
    ("POST", "/model-versions/create", "mlflow_create_model_version"),
    ("GET", "/model-versions/get", "mlflow_get_model_version"),
    ("PATCH", "/model-versions/update", "mlflow_update_model_version"),
    ("DELETE", "/model-versions/delete", "mlflow_delete_model_version"),
    ("GET", "/model-versions/search", "mlflow_search_model_versions"),
    ("GET", "/model-versions/get-download-uri", "mlflow_get_model_version_download_uri"),
    ("POST", "/model-versions/transition-stage", "mlflow_transition_model_version_stage"),
    ("POST", "/model-versions/set-tag", "mlflow_set_model_version_tag"),
    ("DELETE", "/model-versions/delete-tag", "mlflow_delete_model_version_tag"),
]

#: MLflow registry operations that only read.
_MLFLOW_READS = frozenset({op for method, _, op in MLFLOW_ENDPOINTS if method == "GET"} |
                          {"mlflow_get_latest_versions"})


def _order(order_by: object) -> object:
    # A GET query string carries one order_by entry as a plain string.
    return [order_by] if isinstance(order_by, str) else order_by


def mlflow_operations(models: ModelRegistry, root_uri: str) -> dict[str, Operation]:
    """The MLflow model-registry operations (request fields in, response body out)."""
    m = models

    def create_registered_model(caller: Caller, name=None, tags=None, description=None,
                                deployment_job_id=None) -> dict:
        if deployment_job_id:
            raise InvalidArgument("deployment jobs are not supported")
        return {"registered_model": render.mlflow_model(m.create_model(caller, name, description, tags))}

    def get_registered_model(caller: Caller, name=None) -> dict:
        return {"registered_model": render.mlflow_model(m.get_model(caller, name))}

    def update_registered_model(caller: Caller, name=None, description=None, deployment_job_id=None) -> dict:
        if deployment_job_id:
            raise InvalidArgument("deployment jobs are not supported")
        return {"registered_model": render.mlflow_model(m.update_model(caller, name, description=description))}

    def rename_registered_model(caller: Caller, name=None, new_name=None) -> dict:
        if new_name is None:
            raise InvalidArgument("new_name is required")
        return {"registered_model": render.mlflow_model(m.update_model(caller, name, new_name=new_name))}

    def delete_registered_model(caller: Caller, name=None) -> dict:
        m.delete_model(caller, name, force=True)
        return {}

    def search_registered_models(caller: Caller, filter=None, max_results=None, order_by=None,
                                 page_token=None) -> dict:
        found, token = m.search_models(caller, filter, max_results, _order(order_by), page_token)
        out: dict = {"registered_models": [render.mlflow_model(v) for v in found]}
        if token:
            out["next_page_token"] = token
        return out

    def get_latest_versions(caller: Caller, name=None, stages=None) -> dict:
        stages = [stages] if isinstance(stages, str) else stages
        return {"model_versions": [render.mlflow_version(v) for v in m.latest_versions(caller, name, stages)]}

    def set_registered_model_tag(caller: Caller, name=None, key=None, value=None) -> dict:
        m.set_model_tag(caller, name, key, value)
        return {}

    def delete_registered_model_tag(caller: Caller, name=None, key=None) -> dict:
        m.delete_model_tag(caller, name, key)
        return {}

    def set_registered_model_alias(caller: Caller, name=None, alias=None, version=None) -> dict:
        m.set_alias(caller, name, alias, version)
        return {}

    def delete_registered_model_alias(caller: Caller, name=None, alias=None) -> dict:
        m.delete_alias(caller, name, alias)
        return {}

    def get_model_version_by_alias(caller: Caller, name=None, alias=None) -> dict:
        return {"model_version": render.mlflow_version(m.get_version_by_alias(caller, name, alias))}

    def create_model_version(caller: Caller, name=None, source=None, run_id=None, tags=None, run_link=None,
                             description=None, model_id=None) -> dict:
        view = m.create_version(caller, name, source, run_id=run_id, description=description, tags=tags,
                                run_link=run_link, logged_model_id=model_id)
        return {"model_version": render.mlflow_version(view)}

    def get_model_version(caller: Caller, name=None, version=None) -> dict:
        return {"model_version": render.mlflow_version(m.get_version(caller, name, version))}

    def update_model_version(caller: Caller, name=None, version=None, description=None) -> dict:
        return {"model_version": render.mlflow_version(m.update_version(caller, name, version, description))}

    def delete_model_version(caller: Caller, name=None, version=None) -> dict:
        m.delete_version(caller, name, version)
        return {}

    def search_model_versions(caller: Caller, filter=None, max_results=None, order_by=None,
                              page_token=None) -> dict:
        found, token = m.search_versions(caller, filter, max_results, _order(order_by), page_token)
        out: dict = {"model_versions": [render.mlflow_version(v) for v in found]}
        if token:
            out["next_page_token"] = token
        return out

    def get_model_version_download_uri(caller: Caller, name=None, version=None) -> dict:
        view = m.get_version(caller, name, version)
        return {"artifact_uri": proxied(view["storage_location"], root_uri)}

    def transition_model_version_stage(caller: Caller, name=None, version=None, stage=None,
                                       archive_existing_versions=None) -> dict:
        raise InvalidArgument("model stages are not supported: lakeray's registry is Unity Catalog's; "
                              "use aliases (set_registered_model_alias) instead")

    def set_model_version_tag(caller: Caller, name=None, version=None, key=None, value=None) -> dict:
        m.set_version_tag(caller, name, version, key, value)
        return {}

    def delete_model_version_tag(caller: Caller, name=None, version=None, key=None) -> dict:
        m.delete_version_tag(caller, name, version, key)
        return {}

    local = locals()
    return {op: Operation(local[op[len("mlflow_"):]], op not in _MLFLOW_READS, lenient=True)
            for _, _, op in MLFLOW_ENDPOINTS}


def uc_operations(models: ModelRegistry) -> dict[str, Operation]:
    """Unity Catalog's registered-model and model-version operations (also the Python client's)."""
    m = models

    def create_registered_model(caller: Caller, catalog_name: str, schema_name: str, name: str,
                                comment: str | None = None) -> dict:
        full = m.full_name(f"{catalog_name}.{schema_name}.{name}")
        return render.uc_model(m.create_model(caller, full, comment))

    def get_registered_model(caller: Caller, full_name: str) -> dict:
        return render.uc_model(m.get_model(caller, _three_part(full_name)))

    def list_registered_models(caller: Caller, catalog_name: str | None = None, schema_name: str | None = None,
                               max_results: int | None = None, page_token: str | None = None) -> dict:
        if (catalog_name is None) != (schema_name is None):
            raise InvalidArgument("give both catalog_name and schema_name, or neither")
        schema = None if catalog_name is None else ".".join(
            m.full_name(f"{catalog_name}.{schema_name}.x").split(".")[:2])
        found, token = m.search_models(caller, None, max_results or None, None, page_token, schema=schema)
        out: dict = {"registered_models": [render.uc_model(v) for v in found]}
        if token:
            out["next_page_token"] = token
        return out

    def update_registered_model(caller: Caller, full_name: str, comment: str | None = None,
                                new_name: str | None = None, owner: str | None = None) -> dict:
        full = _three_part(full_name)
        target = None if new_name is None else f"{full.rsplit('.', 1)[0]}.{new_name}"
        return render.uc_model(m.update_model(caller, full, description=comment, new_name=target, owner=owner))

    def delete_registered_model(caller: Caller, full_name: str, force: bool = False) -> None:
        m.delete_model(caller, _three_part(full_name), force=force)

    def create_model_version(caller: Caller, catalog_name: str, schema_name: str, model_name: str, source: str,
                             run_id: str | None = None, comment: str | None = None) -> dict:
        full = m.full_name(f"{catalog_name}.{schema_name}.{model_name}")
        return render.uc_version(m.create_version(caller, full, source, run_id=run_id, description=comment))

    def list_model_versions(caller: Caller, full_name: str, max_results: int | None = None,
                            page_token: str | None = None) -> dict:
        found, token = m.list_versions(caller, _three_part(full_name), max_results or None, page_token)
        out: dict = {"model_versions": [render.uc_version(v) for v in found]}
        if token:
            out["next_page_token"] = token
        return out

    def get_model_version(caller: Caller, full_name: str, version: int) -> dict:
        return render.uc_version(m.get_version(caller, _three_part(full_name), version))

    def update_model_version(caller: Caller, full_name: str, version: int, comment: str | None = None) -> dict:
        return render.uc_version(m.update_version(caller, _three_part(full_name), version, comment))

    def delete_model_version(caller: Caller, full_name: str, version: int) -> None:
        m.delete_version(caller, _three_part(full_name), version)

    def finalize_model_version(caller: Caller, full_name: str, version: int) -> dict:
        # Versions are copied server-side and READY when created; finalizing one is a no-op.
        return render.uc_version(m.get_version(caller, _three_part(full_name), version))

    def set_registered_model_alias(caller: Caller, full_name: str, alias: str, version_num: int) -> dict:
        m.set_alias(caller, _three_part(full_name), alias, version_num)
        return {"alias_name": alias.lower(), "version_num": version_num}

    def delete_registered_model_alias(caller: Caller, full_name: str, alias: str) -> None:
        m.delete_alias(caller, _three_part(full_name), alias)

    def get_model_version_by_alias(caller: Caller, full_name: str, alias: str) -> dict:
        return render.uc_version(m.get_version_by_alias(caller, _three_part(full_name), alias))

    reads = {"get_registered_model", "list_registered_models", "list_model_versions", "get_model_version",
             "get_model_version_by_alias"}
    local = {k: v for k, v in locals().items() if callable(v) and k not in ("m", "reads")}
    return {name: Operation(fn, name not in reads) for name, fn in local.items()}


def _three_part(full_name: object) -> str:
    """UC routes name models by full name only (no default-schema mapping)."""
    if not isinstance(full_name, str) or full_name.count(".") != 2:
        raise InvalidArgument(f"registered model full name must look like catalog.schema.model, got {full_name!r}")
    return full_name
