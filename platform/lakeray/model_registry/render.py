"""Registered models and versions in MLflow's and Unity Catalog's JSON shapes.

The service returns *views* (see :class:`~lakeray.model_registry.service.ModelRegistry`); MLflow
clients see artifact locations as ``mlflow-artifacts:/...`` (read through the proxied artifact
API), Unity Catalog clients see the ``file://`` storage location, as UC OSS shows it.
"""

from __future__ import annotations

import uuid

from lakeray.catalog.info import render as render_securable


# -- MLflow -----------------------------------------------------------------------------------
def mlflow_version(view: dict) -> dict:
    """MLflow's ``ModelVersion``."""
    out = {
        "name": view["model"].full_name,
        "version": str(view["version"]),
        "creation_timestamp": view["created_at"],
        "last_updated_timestamp": view["updated_at"],
        "user_id": view["created_by"],
        "current_stage": "None",
        "description": view["description"] or "",
        "source": view["source"],
        "run_id": view["run_id"] or "",
        "status": view["status"],
        "status_message": view["status_message"],
        "tags": [{"key": k, "value": v} for k, v in sorted(view["tags"].items())],
        "run_link": view["run_link"],
        "aliases": view["aliases"],
        "model_id": view["logged_model_id"],
    }
    return {k: v for k, v in out.items() if v is not None}


def mlflow_model(view: dict) -> dict:
    """MLflow's ``RegisteredModel`` (``latest_versions`` holds the newest version)."""
    obj = view["model"]
    out = {
        "name": obj.full_name,
        "creation_timestamp": obj.created_at,
        "last_updated_timestamp": obj.updated_at,
        "user_id": obj.owner,
        "description": obj.comment or "",
        "latest_versions": [mlflow_version(view["latest"])] if view["latest"] else [],
        "tags": [{"key": k, "value": v} for k, v in sorted(view["tags"].items())],
        "aliases": [{"alias": a, "version": str(v)} for a, v in view["aliases"].items()],
    }
    return out


# -- Unity Catalog ------------------------------------------------------------------------------
def uc_model(view: dict) -> dict:
    """UC's ``RegisteredModelInfo`` plus Databricks' ``aliases``."""
    out = render_securable(view["model"])
    out["aliases"] = [{"alias_name": a, "version_num": v} for a, v in view["aliases"].items()]
    return out


def uc_version(view: dict) -> dict:
    """UC's ``ModelVersionInfo`` plus Databricks' ``aliases`` and the MLmodel ``signature``."""
    obj = view["model"]
    catalog, schema, name = obj.full_name.split(".")
    out = {
        "model_name": name, "catalog_name": catalog, "schema_name": schema,
        "version": view["version"], "source": view["source"], "run_id": view["run_id"],
        "status": view["status"], "storage_location": view["storage_location"],
        "comment": view["description"], "created_at": view["created_at"], "created_by": view["created_by"],
        "updated_at": view["updated_at"], "updated_by": view["updated_by"],
        "id": str(uuid.uuid5(uuid.UUID(obj.id), str(view["version"]))),
        "aliases": [{"alias_name": a, "version_num": view["version"]} for a in view["aliases"]],
        "signature": view["signature"],
        "tags": view["tags"] or None,
    }
    return {k: v for k, v in out.items() if v is not None}
