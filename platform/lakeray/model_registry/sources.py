"""Where a model version's artifacts come from: checking and resolving its ``source``.

A source names a run's artifacts (``runs:/<run_id>/<path>``), an MLflow 3 logged model
(``models:/m-<id>``), another registered model's version (``models:/<name>/<version>``, what
``MlflowClient.copy_model_version`` sends to promote a version, e.g. from ``dev.ml.churn`` to
``prod.ml.churn``; a dot-free name maps to the default schema; aliases are refused, the client
resolves them first) or a directory under the platform artifact root, written either as the
``mlflow-artifacts:/<path>`` URI clients see or as the ``file://`` URI inside. Whatever the
spelling, the directory must belong to a run or logged model (READ on its experiment) or to
another model version (EXECUTE on its model, what loading it needs); anything else is refused
(MLflow's registry once accepted any path and copied the server's own files: CVE-2023-1177 and
friends).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from lakeray.catalog import authz, names
from lakeray.catalog import securables as rows
from lakeray.catalog.audit import denial
from lakeray.catalog.privileges import Privilege, SecurableType
from lakeray.errors import InvalidArgument, NotFound, PermissionDenied
from lakeray.principals.service import Caller
from lakeray.tracking import tables as t
from lakeray.tracking.artifacts import PROXY_SCHEME, ArtifactStore, check_model_source, parse_relative_path
from lakeray.tracking.permissions import READ, require, run_with_experiment


@dataclass(frozen=True)
class Source:
    """A checked source: the artifact location and the directory inside it to copy (and, for
    another version, ``model_version``: ``<full name>/<n>``, the lineage node it is)."""

    location: str
    path: str
    run_id: str | None = None
    logged_model_id: str | None = None
    model_version: str | None = None


def _experiment(conn: Connection, experiment_id: int):
    row = conn.execute(select(t.experiments).where(t.experiments.c.experiment_id == experiment_id)).first()
    if row is None:
        raise NotFound(f"experiment {experiment_id} does not exist")
    return row


def _run_source(conn: Connection, caller: Caller, run_id: str, path: str) -> Source:
    run = run_with_experiment(conn, run_id)
    if run is None or run.lifecycle_stage != "active":
        raise NotFound(f"Run with id={run_id} not found")
    require(conn, caller, run, READ, "create_model_version")  # the row carries the experiment's name and owner
    return Source(run.artifact_uri, path, run_id=run_id)


def _logged_model_source(conn: Connection, caller: Caller, model_id: str, path: str = "") -> Source:
    model = conn.execute(select(t.logged_models).where(t.logged_models.c.model_id == model_id)).first()
    if model is None or model.lifecycle_stage != "active":
        raise NotFound(f"Logged model with ID '{model_id}' not found.")
    require(conn, caller, _experiment(conn, model.experiment_id), READ, "create_model_version")
    return Source(model.artifact_location, path, run_id=model.source_run_id, logged_model_id=model_id)


def _require_execute(conn: Connection, caller: Caller, model: rows.Securable) -> None:
    """EXECUTE on the source model (with USE CATALOG/SCHEMA): what loading it needs."""
    try:
        authz.require(conn, caller, model, Privilege.EXECUTE)
    except PermissionDenied as e:
        raise denial(e, "create_model_version", "registered_model", model.full_name) from None


def _version_source(conn: Connection, caller: Caller, parts: tuple[str, ...]) -> Source:
    """``models/<model id>/versions/<n>/<path>``: another version's artifacts (EXECUTE on it)."""
    from lakeray.model_registry.tables import model_versions as mv

    row = conn.execute(select(mv).where(mv.c.model_id == parts[1], mv.c.version == int(parts[3]))).first()
    model = rows.find_by_id(conn, parts[1]) if row is not None else None
    if model is None or model.type != SecurableType.REGISTERED_MODEL:
        raise NotFound("the model version named by the source does not exist")
    _require_execute(conn, caller, model)
    return Source(row.storage_location, "/".join(parts[4:]), run_id=row.run_id,
                  logged_model_id=row.logged_model_id, model_version=f"{model.full_name}/{row.version}")


def _registered_version_source(conn: Connection, caller: Caller, full_name: str, number: int) -> Source:
    """``models:/<name>/<n>``: all of another version's artifacts (EXECUTE on its model; the
    version is looked up only after that, so numbers cannot be probed without it)."""
    from lakeray.model_registry.tables import model_versions as mv

    model = rows.find(conn, SecurableType.REGISTERED_MODEL, full_name)
    if model is None:
        raise NotFound(f"Registered Model with name={full_name} not found")
    _require_execute(conn, caller, model)
    row = conn.execute(select(mv).where(mv.c.model_id == model.id, mv.c.version == number)).first()
    if row is None:
        raise NotFound(f"Model Version (name={full_name}, version={number}) not found")
    return Source(row.storage_location, "", run_id=row.run_id, logged_model_id=row.logged_model_id,
                  model_version=f"{model.full_name}/{number}")


def resolve_source(conn: Connection, caller: Caller, store: ArtifactStore, source: object,
                   model_name: Callable[[object], str] | None = None) -> Source:
    """Check ``source`` and the caller's right to read it; returns what to copy.

    ``model_name`` maps a registered model name of a ``models:/<name>/<version>`` source to its
    full name (the registry's: a dot-free name lands in the default schema); without it the
    name must be ``catalog.schema.model``.
    """
    if isinstance(source, str) and source.startswith(PROXY_SCHEME):
        rest = source[len(PROXY_SCHEME):]
        if not rest.startswith("/") or rest.startswith("//"):
            raise InvalidArgument(f"{PROXY_SCHEME} sources look like {PROXY_SCHEME}/<path>: {source[:80]!r}")
        parse_relative_path(rest[1:], "model version source")
        source = store.root.as_uri() + rest
    checked = check_model_source(source, store, registered_versions=True)
    if checked["kind"] == "model_version":
        full = model_name(checked["name"]) if model_name is not None else \
            ".".join(names.full_name(checked["name"], 3, "registered model name"))
        return _registered_version_source(conn, caller, full, checked["version"])
    if checked["kind"] == "run":
        return _run_source(conn, caller, checked["run_id"], checked["path"])
    if checked["kind"] == "logged_model":
        return _logged_model_source(conn, caller, checked["model_id"])
    parts = tuple(checked["path"].split("/"))
    if len(parts) >= 4 and parts[0] == "experiments" and parts[1].isdigit() and parts[3] == "artifacts":
        return _run_source(conn, caller, parts[2], "/".join(parts[4:]))
    if len(parts) >= 5 and parts[0] == "experiments" and parts[1].isdigit() and parts[2] == "models" \
            and parts[4] == "artifacts":
        return _logged_model_source(conn, caller, parts[3], "/".join(parts[5:]))
    if len(parts) >= 4 and parts[0] == "models" and parts[2] == "versions" and parts[3].isdigit():
        return _version_source(conn, caller, parts)
    raise InvalidArgument("a model version source must be a run's or logged model's artifacts or another "
                          f"model version, not {checked['path'][:80]!r}")
