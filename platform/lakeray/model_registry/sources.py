"""Where a model version's artifacts come from: checking and resolving its ``source``.

A source names a run's artifacts (``runs:/<run_id>/<path>``), an MLflow 3 logged model
(``models:/m-<id>``) or a directory under the platform artifact root, written either as the
``mlflow-artifacts:/<path>`` URI clients see or as the ``file://`` URI inside. Whatever the
spelling, the directory must belong to a run or logged model (READ on its experiment) or to
another model version (EXECUTE on its model); anything else is refused (MLflow's registry
once accepted any path and copied the server's own files: CVE-2023-1177 and friends).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from lakeray.catalog import authz
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
    """A checked source: the artifact location and the directory inside it to copy."""

    location: str
    path: str
    run_id: str | None = None
    logged_model_id: str | None = None


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


def _version_source(conn: Connection, caller: Caller, parts: tuple[str, ...]) -> Source:
    """``models/<model id>/versions/<n>/<path>``: another version's artifacts (EXECUTE on it)."""
    from lakeray.model_registry.tables import model_versions as mv

    row = conn.execute(select(mv).where(mv.c.model_id == parts[1], mv.c.version == int(parts[3]))).first()
    model = rows.find_by_id(conn, parts[1]) if row is not None else None
    if model is None or model.type != SecurableType.REGISTERED_MODEL:
        raise NotFound("the model version named by the source does not exist")
    try:
        authz.require(conn, caller, model, Privilege.EXECUTE)
    except PermissionDenied as e:
        raise denial(e, "create_model_version", "registered_model", model.full_name) from None
    return Source(row.storage_location, "/".join(parts[4:]), run_id=row.run_id,
                  logged_model_id=row.logged_model_id)


def resolve_source(conn: Connection, caller: Caller, store: ArtifactStore, source: object) -> Source:
    """Check ``source`` and the caller's right to read it; returns what to copy."""
    if isinstance(source, str) and source.startswith(PROXY_SCHEME):
        rest = source[len(PROXY_SCHEME):]
        if not rest.startswith("/") or rest.startswith("//"):
            raise InvalidArgument(f"{PROXY_SCHEME} sources look like {PROXY_SCHEME}/<path>: {source[:80]!r}")
        parse_relative_path(rest[1:], "model version source")
        source = store.root.as_uri() + rest
    checked = check_model_source(source, store)
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
