"""The Ray Serve ingress deployment that carries the HTTP API."""

from __future__ import annotations

from ray import serve

from lakeray.api.app import build_app
from lakeray.api.backend import ActorBackend, HybridBackend
from lakeray.settings import Settings


def _actor_getter():
    def get(name: str):
        from lakeray.actors.base import named

        return named(name)

    return get


def ingress_app(settings: Settings, num_replicas: int = 1):
    """A Serve application running the FastAPI app; each replica opens its backend as it starts
    (the backend is shipped with the app, unresolved). With
    ``settings.http_front == "replica"`` each replica serves ``host:port`` itself."""
    getter = _actor_getter()
    backend = HybridBackend(settings, getter) if settings.local_reads else ActorBackend(getter)
    app = build_app(backend=backend, max_body_bytes=settings.max_body_bytes,
                    max_artifact_bytes=settings.max_artifact_bytes)

    direct = settings.http_front == "replica"
    host, port = settings.host, settings.port

    @serve.deployment(name="api", num_replicas=num_replicas, max_ongoing_requests=256,
                      ray_actor_options={"num_cpus": 0})
    @serve.ingress(app)
    class APIIngress:
        """The HTTP API; all state lives in the actors and the stores. With the replica front
        (the default) the replica listens on the platform's port itself (see ``front``)."""

        async def __init__(self):
            from lakeray import heap
            from lakeray.api.front import Front

            # The stores open before the replica takes requests, so the startup heap they
            # make is frozen with the rest (lakeray.heap).
            app.state.backend.open()
            self._front = Front(app, host, port) if direct else None
            heap.settle()

        async def check_health(self):
            # Serve restarts a replica whose front has stopped serving.
            if self._front is not None and not self._front.running:
                raise RuntimeError("the HTTP front of this replica has stopped")

        async def __del__(self):
            if self._front is not None:
                await self._front.stop()

    return APIIngress.bind()
