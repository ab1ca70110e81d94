"""The registry actor: a thin shell over :class:`lakeray.registry.Registry`.

Named ``registry`` in namespace ``lakeray``, detached, restarted forever. Every fact it
acknowledges is already committed to the metadata DB or a Lance table, so a restart (which
reruns ``__init__``) loses nothing.
"""

from __future__ import annotations

import logging
import traceback

import ray

from lakeray.catalog.functions import RayTaskRunner
from lakeray.errors import LakerayError
from lakeray.registry import Registry, describe_error
from lakeray.settings import NAMESPACE, REGISTRY_ACTOR, Settings

log = logging.getLogger("lakeray.registry")


class RegistryActor:
    """Hosts the registry; ``call`` is the only entry point for operations."""

    def __init__(self, settings: dict, admin: str = "admin"):
        self.settings = Settings(**settings)
        self.registry = Registry(self.settings, function_runner=RayTaskRunner(self.settings.function_timeout_s))
        self.registry.bootstrap(admin)
        self.admin = admin

    def call(self, op: str, token: str | None, request_id: str | None = None, kwargs: dict | None = None):
        """Run operation ``op`` as the owner of ``token``; errors come back as LakerayError."""
        try:
            return self.registry.call(op, token, request_id=request_id, **(kwargs or {}))
        except LakerayError:
            raise
        except Exception as e:  # never leak internals to callers; keep them in the actor log
            log.error("operation %s failed:\n%s", op, traceback.format_exc())
            raise describe_error(e) from None

    def issue_admin_token(self, comment: str = "created by lakeray up") -> str:
        """Mint a token for the bootstrap admin (used by ``lakeray up`` to write credentials)."""
        caller = self.registry.principals.caller(self.admin)
        return self.registry.principals.create_token(caller, comment=comment)["token_value"]

    def ping(self) -> dict:
        """Liveness and the data location."""
        return {"ok": True, "home": self.settings.home, "database": self.settings.db_url.split("://")[0]}


def handle(settings: Settings, create: bool = False, admin: str = "admin"):
    """The registry actor handle; with ``create`` it is started if missing."""
    if not create:
        return ray.get_actor(REGISTRY_ACTOR, namespace=NAMESPACE)
    options = dict(name=REGISTRY_ACTOR, namespace=NAMESPACE, lifetime="detached", max_restarts=-1,
                   max_concurrency=16, num_cpus=0, get_if_exists=True)
    return ray.remote(RegistryActor).options(**options).remote(settings.to_dict(), admin)
