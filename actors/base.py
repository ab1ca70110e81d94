"""What every lakeray actor shares: hosting a Dispatcher and being found by name.

Actors are named, detached, in namespace ``lakeray`` and restarted forever. Every fact an
actor acknowledges is already committed to the metadata DB or a table, so a restart (which
reruns ``__init__``) loses nothing.
"""

from __future__ import annotations

import logging
import traceback

import ray

from lakeray.dispatch import describe_error
from lakeray.errors import LakerayError
from lakeray.settings import NAMESPACE

log = logging.getLogger("lakeray.actors")


class DispatchActor:
    """Base of the actors: ``call`` runs one operation of ``self.dispatcher``."""

    dispatcher = None

    def call(self, op: str, token: str | None, request_id: str | None = None, kwargs: dict | None = None):
        """Run operation ``op`` as the owner of ``token``; errors come back as LakerayError."""
        try:
            return self.dispatcher.call(op, token, request_id=request_id, **(kwargs or {}))
        except LakerayError:
            raise
        except Exception as e:  # never leak internals to callers; keep them in the actor log
            log.error("operation %s failed:\n%s", op, traceback.format_exc())
            raise describe_error(e) from None

    def ping(self) -> dict:
        """Liveness."""
        return {"ok": True}


def named(name: str):
    """The handle of a running lakeray actor (ValueError when it does not exist)."""
    return ray.get_actor(name, namespace=NAMESPACE)


def start_all(settings, admin: str = "admin") -> dict:
    """Start (or find) every platform actor; returns their handles by name."""
    from lakeray.actors import gateway, registry, tracker

    # the serving actor starts once Serve runs (see lakeray.lifecycle.deploy)
    return {"registry": registry.handle(settings, create=True, admin=admin),
            "tracker": tracker.handle(settings, create=True),
            "gateway": gateway.handle(settings, create=True)}


def start(cls, name: str, *args, max_concurrency: int = 16):
    """Start (or find) the detached, forever-restarted actor ``name`` of class ``cls``."""
    options = dict(name=name, namespace=NAMESPACE, lifetime="detached", max_restarts=-1,
                   max_concurrency=max_concurrency, num_cpus=0, get_if_exists=True)
    return ray.remote(cls).options(**options).remote(*args)
