"""Experiment permissions: READ < EDIT < MANAGE, as MLflow's auth layer names them.

- every authenticated caller may read every experiment and run (READ is implicit);
- creating runs and logged models, logging to them and tagging needs EDIT;
- renaming, deleting and restoring (experiments, runs, logged models) and managing the
  permissions themselves need MANAGE;
- the experiment's creator and metastore admins hold MANAGE; anyone holds EDIT on the
  Default experiment (id 0), which the mlflow client logs to when none is set;
- grants go to users, service principals or groups (a caller gets the best level among
  its name and its groups, see ``Caller.identities``).

Nothing is cached: a grant or a revocation applies to the next call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection

from lakeray.catalog import names
from lakeray.catalog.audit import AuditLog, denial
from lakeray.errors import InvalidArgument, NotFound, PermissionDenied
from lakeray.ids import now_ms
from lakeray.principals.service import Caller
from lakeray.storage.db import Database
from lakeray.storage.models import principals
from lakeray.tracking import tables as t
from lakeray.tracking import validation

READ, EDIT, MANAGE = "READ", "EDIT", "MANAGE"
LEVELS = {READ: 1, EDIT: 2, MANAGE: 3}
#: what a ``permission`` argument of None or this removes a grant.
NO_PERMISSIONS = "NO_PERMISSIONS"
DEFAULT_EXPERIMENT_ID = 0


def effective(conn: Connection, caller: Caller, experiment) -> str:
    """The caller's level on an experiment row."""
    if caller.is_admin or experiment.owner == caller.name:
        return MANAGE
    best = LEVELS[EDIT] if experiment.experiment_id == DEFAULT_EXPERIMENT_ID else LEVELS[READ]
    ep = t.experiment_permissions
    for level in conn.execute(select(ep.c.permission).where(
            ep.c.experiment_id == experiment.experiment_id,
            ep.c.principal.in_(sorted(caller.identities)))).scalars():
        best = max(best, LEVELS.get(level, 0))
    return next(name for name, rank in LEVELS.items() if rank == best)


# One statement, built once: a run with what a permission check reads of its experiment.
_RUN_WITH_EXPERIMENT = (select(t.runs.c.run_id, t.runs.c.experiment_id, t.runs.c.lifecycle_stage,
                               t.runs.c.artifact_uri, t.experiments.c.name, t.experiments.c.owner)
                        .join(t.experiments, t.experiments.c.experiment_id == t.runs.c.experiment_id)
                        .where(t.runs.c.run_id == bindparam("run_id")))


def run_with_experiment(conn: Connection, run_id: str):
    """A run's ``run_id``, ``experiment_id``, ``lifecycle_stage`` and ``artifact_uri`` with its
    experiment's ``name`` and ``owner`` (what :func:`require` reads), or None; one query."""
    return conn.execute(_RUN_WITH_EXPERIMENT, {"run_id": run_id}).first()


def require(conn: Connection, caller: Caller, experiment, level: str, action: str,
            securable_type: str = "experiment", securable: str | None = None) -> None:
    """PermissionDenied (labelled for the denial audit) unless the caller holds ``level``
    (``experiment``: a row with the experiment's ``experiment_id``, ``name`` and ``owner``)."""
    held = effective(conn, caller, experiment)
    if LEVELS[held] < LEVELS[level]:
        what = f"experiment {experiment.experiment_id} ({experiment.name!r})"
        raise denial(PermissionDenied(f"{action.replace('_', ' ')} needs {level} on {what}; "
                                      f"{caller.name} holds {held}"),
                     action, securable_type, securable or str(experiment.experiment_id))


class ExperimentPermissions:
    """Service methods reading and changing experiment permissions (mixed into the service)."""

    db: Database
    audit: AuditLog

    # Provided by TrackingService, which mixes this class in.
    _experiment: Callable[..., Any]

    def _permissions_of(self, conn: Connection, experiment) -> dict:
        ep = t.experiment_permissions
        rows = conn.execute(select(ep).where(ep.c.experiment_id == experiment.experiment_id)
                            .order_by(ep.c.principal)).all()
        return {
            "experiment_id": str(experiment.experiment_id),
            "owner": experiment.owner,
            "permissions": [{"principal": r.principal, "permission": r.permission, "granted_by": r.granted_by,
                             "granted_at": r.granted_at} for r in rows],
        }

    def get_experiment_permission(self, caller: Caller, experiment_id: str) -> dict:
        """The caller's own level on an experiment: ``{"experiment_id", "permission"}``."""
        exp_id = validation.experiment_id(experiment_id)
        with self.db.read() as conn:
            experiment = self._experiment(conn, exp_id)
            return {"experiment_id": str(exp_id), "permission": effective(conn, caller, experiment)}

    def get_experiment_permissions(self, caller: Caller, experiment_id: str) -> dict:
        """Every grant on an experiment, with its owner (MANAGE holders only)."""
        exp_id = validation.experiment_id(experiment_id)
        with self.db.read() as conn:
            experiment = self._experiment(conn, exp_id)
            require(conn, caller, experiment, MANAGE, "get_experiment_permissions")
            return self._permissions_of(conn, experiment)

    def set_experiment_permission(self, caller: Caller, experiment_id: str, principal: str,
                                  permission: str | None) -> dict:
        """Grant ``principal`` (user, service principal or group) READ, EDIT or MANAGE on an
        experiment, replacing its previous grant; None or NO_PERMISSIONS removes the grant.
        MANAGE holders only. Returns the experiment's permissions."""
        exp_id = validation.experiment_id(experiment_id)
        name = names.principal(principal)
        if permission is not None and permission != NO_PERMISSIONS and (not isinstance(permission, str)
                                                                       or permission not in LEVELS):
            raise InvalidArgument(f"permission must be one of READ, EDIT, MANAGE or NO_PERMISSIONS, got {permission!r}")
        ep = t.experiment_permissions
        with self.db.write() as conn:
            experiment = self._experiment(conn, exp_id)
            require(conn, caller, experiment, MANAGE, "set_experiment_permission")
            if conn.execute(select(principals.c.name).where(principals.c.name == name)).first() is None:
                raise NotFound(f"principal {name!r} does not exist")
            conn.execute(delete(ep).where(ep.c.experiment_id == exp_id, ep.c.principal == name))
            if permission in LEVELS:
                conn.execute(ep.insert().values(experiment_id=exp_id, principal=name, permission=permission,
                                                granted_by=caller.name, granted_at=now_ms()))
            self.audit.record(caller.name, "set_experiment_permission", "experiment", str(exp_id), conn=conn,
                              detail={"principal": name, "permission": permission or NO_PERMISSIONS})
            return self._permissions_of(conn, experiment)
