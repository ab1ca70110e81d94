"""The registry actor: a thin shell over :class:`lakeray.registry.Registry`.

Named ``registry`` in namespace ``lakeray``; owns the catalog, grants, principals, audit and
lineage (see :mod:`lakeray.actors.base` for what all actors share).
"""

from __future__ import annotations

from lakeray import heap
from lakeray.actors.base import DispatchActor, named, start
from lakeray.catalog.functions import RayTaskRunner
from lakeray.registry import Registry
from lakeray.settings import REGISTRY_ACTOR, Settings


class RegistryActor(DispatchActor):
    """Hosts the registry and bootstraps the first admin."""

    def __init__(self, settings: dict, admin: str = "admin"):
        self.settings = Settings(**settings)
        self.dispatcher = Registry(self.settings, function_runner=RayTaskRunner(self.settings.function_timeout_s))
        self.dispatcher.bootstrap(admin)
        self.admin = admin
        heap.settle()

    def issue_admin_token(self, comment: str = "created by lakeray up") -> str:
        """Mint a token for the bootstrap admin (used by ``lakeray up`` to write credentials)."""
        principals = self.dispatcher.principals
        return principals.create_token(principals.caller(self.admin), comment=comment)["token_value"]

    def ping(self) -> dict:
        """Liveness and the data location."""
        return {"ok": True, "home": self.settings.home, "database": self.settings.db_url.split("://")[0]}


def handle(settings: Settings, create: bool = False, admin: str = "admin"):
    """The registry actor handle; with ``create`` it is started if missing."""
    if not create:
        return named(REGISTRY_ACTOR)
    return start(RegistryActor, REGISTRY_ACTOR, settings.to_dict(), admin)
