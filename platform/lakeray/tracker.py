"""The tracker: MLflow's tracking API as named operations (see :mod:`lakeray.dispatch`).

Operations are the MLflow REST endpoints of :data:`lakeray.tracking.operations.ENDPOINTS`,
served by :class:`~lakeray.tracking.service.TrackingService`, plus the proxied artifact API.
Artifact locations are shown to clients as ``mlflow-artifacts:/<path under the artifact
root>``, as ``mlflow server --serve-artifacts`` does, so every client — on this machine or
not — reads and writes artifacts through the governed API instead of the server's disk.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from lakeray.catalog import authz
from lakeray.catalog import securables as rows
from lakeray.catalog.audit import AuditLog, denial
from lakeray.catalog.privileges import Privilege, SecurableType
from lakeray.dispatch import Dispatcher, Operation
from lakeray.errors import InvalidArgument, NotFound, PermissionDenied
from lakeray.model_registry.tables import model_versions
from lakeray.principals.service import Caller, PrincipalService
from lakeray.settings import Settings
from lakeray.storage.db import Database
from lakeray.tracking.artifacts import ArtifactStore, parse_relative_path, proxied
from lakeray.tracking.operations import ENDPOINTS
from lakeray.tracking.permissions import EDIT, MANAGE, READ, require, run_with_experiment
from lakeray.tracking.service import TrackingService

#: query-string fields that are integers in MLflow's REST API (GET requests send text).
_INT_FIELDS = ("max_results",)


def _ints(kwargs: dict) -> dict:
    for key in _INT_FIELDS:
        value = kwargs.get(key)
        if isinstance(value, str):
            try:
                kwargs[key] = int(value)
            except ValueError:
                raise InvalidArgument(f"{key} must be an integer, got {value!r}") from None
    return kwargs


class Tracker(Dispatcher):
    """Experiments, runs, metrics, logged models and artifacts on one metadata DB."""


    def __init__(self, settings: Settings):
        settings.ensure_dirs()
        self.settings = settings
        self.db = Database(settings.db_url, sync=settings.sync_writes)
        self.audit = AuditLog(self.db)
        self.principals = PrincipalService(self.db, self.audit)
        self.tracking = TrackingService(self.db, self.audit, settings.artifact_root)
        self.store = ArtifactStore(settings.artifact_root, max_bytes=settings.max_artifact_bytes,
                                   sync=settings.sync_writes)
        self._root_uri = self.store.root.as_uri()
        self.ops = self._operations()

    def writes_in_replica(self, op: str) -> bool:
        # Every tracking write is one database transaction (plus artifact files written
        # atomically): API replicas run them in-process, saving the actor round trip per call.
        return True

    # -- artifact locations: file:// inside, mlflow-artifacts:/ outside ----------------------
    def _artifact_target(self, conn, caller: Caller, path: object, level: str, action: str):
        """(location URI, path inside it) of a proxied artifact path, after the permission check.

        Paths look like ``experiments/<id>/<run_id>/artifacts/<file>`` (run artifacts) or
        ``experiments/<id>/models/<model_id>/artifacts/<file>`` (logged models); the
        experiment's permissions decide. Writes (``level`` above READ) must also name a run or
        logged model of that experiment (see :meth:`_check_artifact_owner`).
        """
        parts = parse_relative_path(path if path else "", "artifact path")
        if parts[:1] == ("models",):
            return self._model_version_target(conn, caller, parts, level, action)
        if len(parts) < 4 or parts[0] != "experiments" or not parts[1].isdigit():
            raise InvalidArgument("artifact paths look like experiments/<id>/<run_id>/artifacts/<path>")
        depth = 5 if parts[2] == "models" else 4
        if len(parts) < depth or parts[depth - 1] != "artifacts":
            raise InvalidArgument("artifact paths look like experiments/<id>/<run_id>/artifacts/<path>")
        experiment = self.tracking._experiment(conn, int(parts[1]))
        require(conn, caller, experiment, level, action, "experiment", parts[1])
        if level != READ:
            self._check_artifact_owner(conn, experiment.experiment_id, parts[2:depth - 1],
                                       active=action == "upload_artifact")
        return self.store.location_uri(*parts[:depth]), "/".join(parts[depth:])

    def _check_artifact_owner(self, conn, experiment_id: int, owner: tuple[str, ...], active: bool) -> None:
        """NotFound unless ``owner`` (``(run_id,)`` or ``("models", model_id)``) is a run or
        logged model of the experiment; with ``active``, a deleted run is InvalidArgument too.

        Why: the path alone names a directory, and files written under a made-up or foreign id
        would be listed by no run and cleaned up by nothing.
        """
        if owner[0] == "models":
            if self.tracking._model(conn, owner[1]).experiment_id != experiment_id:  # NotFound if missing
                raise NotFound(f"Logged model with ID '{owner[1]}' not found in experiment {experiment_id}.")
            return
        run = run_with_experiment(conn, owner[0])
        if run is None or run.experiment_id != experiment_id:
            raise NotFound(f"Run with id={owner[0]} not found in experiment {experiment_id}")
        if active and run.lifecycle_stage != "active":
            raise InvalidArgument(f"The run {owner[0]} must be in the 'active' state. "
                                  f"Current state is {run.lifecycle_stage}.")

    def _model_version_target(self, conn, caller: Caller, parts: tuple[str, ...], level: str, action: str):
        """``models/<model id>/versions/<n>/<path>``: a registered model version's files.

        They are read with EXECUTE on the model (what ``models:/name/1`` downloads need) and
        never written through the proxy: a version's artifacts are fixed when it is created.
        """
        if len(parts) < 4 or parts[2] != "versions" or not parts[3].isdigit():
            raise InvalidArgument("model artifact paths look like models/<model id>/versions/<n>/<path>")
        model = rows.find_by_id(conn, parts[1])
        version = None if model is None else conn.execute(select(model_versions.c.storage_location).where(
            model_versions.c.model_id == model.id, model_versions.c.version == int(parts[3]))).scalar()
        if model is None or model.type != SecurableType.REGISTERED_MODEL or version is None:
            raise NotFound(f"model version artifacts {'/'.join(parts[:4])!r} do not exist")
        try:
            if level != READ:
                raise PermissionDenied("model version artifacts are read-only; register a new version instead")
            authz.require(conn, caller, model, Privilege.EXECUTE)
        except PermissionDenied as e:
            raise denial(e, action, SecurableType.REGISTERED_MODEL.value, model.full_name) from None
        return version, "/".join(parts[4:])

    def upload_artifact(self, caller: Caller, path: str, data: bytes) -> dict:
        """Store one artifact file (EDIT on its experiment)."""
        target = self.artifact_target(caller, path, write=True)
        size = self.store.upload(target["location"], target["path"], data)
        return self.record_artifact_upload(caller, path, size)

    def artifact_target(self, caller: Caller, path: str, write: bool = False) -> dict:
        """Where a proxied artifact path lives, after the permission check (EDIT to write, READ to
        read): ``{"location", "path"}``. API replicas that share the artifact root stream file
        bodies there themselves instead of sending them through this actor."""
        action = "upload_artifact" if write else "download_artifact"
        with self.db.read() as conn:
            location, rel = self._artifact_target(conn, caller, path, EDIT if write else READ, action)
        if write and not rel:
            raise InvalidArgument("give the artifact's file path after .../artifacts/")
        return {"location": location, "path": rel}

    def record_artifact_upload(self, caller: Caller, path: str, size: int) -> dict:
        """Audit a finished upload (EDIT on its experiment, checked again)."""
        self.artifact_target(caller, path, write=True)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidArgument("size must be a non-negative integer")
        self.audit.record(caller.name, "upload_artifact", "experiment", path.split("/")[1],
                          detail={"path": path, "bytes": size})
        return {}

    def download_artifact(self, caller: Caller, path: str) -> bytes:
        """The bytes of one artifact file (READ on its experiment)."""
        with self.db.read() as conn:
            location, rel = self._artifact_target(conn, caller, path, READ, "download_artifact")
        if not self.store.exists(location, rel):
            raise NotFound(f"artifact {path!r} does not exist")
        return self.store.read_bytes(location, rel)

    def list_artifacts(self, caller: Caller, path: str = "") -> dict:
        """``{"files": [...]}`` under a proxied path (READ on its experiment)."""
        with self.db.read() as conn:
            location, rel = self._artifact_target(conn, caller, path, READ, "list_artifacts")
        if not self.store.exists(location, rel):
            return {"files": []}
        # The proxy API names entries relative to the listed directory (the client joins them).
        cut = len(rel.rstrip("/")) + 1 if rel else 0
        return {"files": [dict(f, path=f["path"][cut:]) for f in self.store.list(location, rel)]}

    def delete_artifact(self, caller: Caller, path: str) -> dict:
        """Delete an artifact file or directory (MANAGE on its experiment, as MLflow's auth layer
        asks: EDIT, which everyone holds on the Default experiment, only adds)."""
        with self.db.read() as conn:
            location, rel = self._artifact_target(conn, caller, path, MANAGE, "delete_artifact")
        if not self.store.delete(location, rel):
            raise NotFound(f"artifact {path!r} does not exist")
        self.audit.record(caller.name, "delete_artifact", "experiment", path.split("/")[1],
                          detail={"path": path})
        return {}

    def list_run_artifacts(self, caller: Caller, run_id: str | None = None, run_uuid: str | None = None,
                           path: str | None = None, page_token: str | None = None) -> dict:
        """MLflow's ``artifacts/list`` for a run: ``{"root_uri", "files"}``."""
        uri = self.tracking.run_artifact_location(run_id=run_id, run_uuid=run_uuid)
        rel = path or ""
        files = self.store.list(uri, rel) if self.store.exists(uri, rel) else []
        return {"root_uri": proxied(uri, self._root_uri), "files": files}

    def list_logged_model_artifacts(self, caller: Caller, model_id: str, artifact_directory_path: str = "",
                                    page_token: str | None = None) -> dict:
        """Files of a logged model's artifact directory."""
        uri = self.tracking.logged_model_artifact_location(model_id)
        rel = artifact_directory_path or ""
        files = self.store.list(uri, rel) if self.store.exists(uri, rel) else []
        return {"root_uri": proxied(uri, self._root_uri), "files": files}

    def log_model(self, caller: Caller, run_id: str | None = None, model_json: str | None = None) -> dict:
        """MLflow 2's ``runs/log-model``: record the model's metadata as the run tag clients read."""
        if not isinstance(model_json, str):
            raise InvalidArgument("model_json must be a JSON string")
        try:
            model = json.loads(model_json)
        except ValueError:
            raise InvalidArgument("model_json is not valid JSON") from None
        current = self.tracking.get_run(caller, run_id=run_id)["run"]["data"].get("tags", [])
        history = next((json.loads(tag["value"]) for tag in current if tag["key"] == "mlflow.log-model.history"),
                       [])
        history.append(model)
        return self.tracking.set_tag(caller, run_id=run_id, key="mlflow.log-model.history",
                                     value=json.dumps(history))

    # -- the operation table -----------------------------------------------------------------
    def _operations(self) -> dict[str, Operation]:
        own = {"list_run_artifacts", "list_logged_model_artifacts", "log_model"}

        def wrap(fn):
            def run(caller, **kwargs):
                return fn(caller, **_ints(kwargs))

            run.__signature__ = _signature_of(fn)
            run.__name__ = fn.__name__
            return run

        ops: dict[str, Operation] = {}
        for method, _path, op in ENDPOINTS:
            if op in ops:
                continue
            target = getattr(self, op) if op in own else getattr(self.tracking, op)
            mutating = method != "GET" and not op.startswith(("search_", "get_"))
            ops[op] = Operation(wrap(target), mutating, lenient=True)
        ops["upload_artifact"] = Operation(self.upload_artifact, True)
        ops["artifact_target"] = Operation(self.artifact_target, False)
        ops["record_artifact_upload"] = Operation(self.record_artifact_upload, True)
        ops["delete_artifact"] = Operation(self.delete_artifact, True)
        ops["download_artifact"] = Operation(self.download_artifact, False)
        ops["list_artifacts"] = Operation(self.list_artifacts, False)
        return ops


def _signature_of(fn):
    import inspect

    return inspect.signature(fn)
