"""The serving actor: runs the deployer's loop (:mod:`lakeray.serving.deployer`).

Named ``serving`` in namespace ``lakeray``. It holds no state of its own: the endpoints and
what runs for them are in the metadata DB and in Ray Serve, so a restart picks up where the
last pass left off.
"""

from __future__ import annotations

import logging
import threading

from lakeray import heap
from lakeray.actors.base import named, start
from lakeray.settings import SERVING_ACTOR, Settings

log = logging.getLogger("lakeray.serving")
PASS_INTERVAL_S = 1.0


class ServingActor:
    """Reconciles endpoints with Serve applications, once a second and when poked."""

    def __init__(self, settings: dict):
        from lakeray.registry import Registry
        from lakeray.serving.deployer import Deployer

        self.settings = Settings(**settings)
        self.deployer = Deployer(self.settings, Registry(self.settings, function_runner=None))
        heap.settle()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="serving-deployer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self.deployer.reconcile()
            except Exception:  # noqa: BLE001 - keep reconciling; Serve may be starting
                log.exception("a deployer pass failed")
            self._wake.wait(PASS_INTERVAL_S)
            self._wake.clear()

    def poke(self) -> None:
        """Run the next pass now (after an endpoint was created or changed)."""
        self._wake.set()

    def ping(self) -> dict:
        """Liveness."""
        return {"ok": self._thread.is_alive()}


def handle(settings: Settings, create: bool = False):
    """The serving actor handle; with ``create`` it is started if missing."""
    if not create:
        return named(SERVING_ACTOR)
    return start(ServingActor, SERVING_ACTOR, settings.to_dict(), max_concurrency=4)
