"""The Ray transport: operations go straight to the actor that owns them."""

from __future__ import annotations

import time
import uuid

from lakeray.errors import InvalidArgument, Unavailable
from lakeray.settings import Settings


class RayTransport:
    """Calls the owning actor (registry or tracker), retrying across actor restarts.

    Writes carry a request id so a call resent after the actor died lands once.
    """

    kind = "ray"

    def __init__(self, token: str, settings: Settings, retry_s: float = 60.0):
        import ray

        if not ray.is_initialized():
            ray.init(address=settings.ray_address or "auto", namespace="lakeray",
                     log_to_driver=False, logging_level="ERROR")
        self.token = token
        self.settings = settings
        self.retry_s = retry_s
        self._actors: dict[str, object] = {}

    def _handle(self, op: str):
        from lakeray.actors.base import named
        from lakeray.dispatch import actor_of

        name = actor_of(op)
        if name not in self._actors:
            self._actors[name] = named(name)
        return self._actors[name]

    def call(self, op: str, mutating: bool = False, **kwargs):
        """Run ``op`` on the actor that owns it; LakerayErrors surface as themselves."""
        import ray
        import ray.exceptions as rex

        if op == "query_serving_endpoint":
            return self._query_serving_endpoint(**kwargs)
        if op == "upload_artifact" and hasattr(kwargs.get("data"), "read"):
            kwargs["data"] = kwargs["data"].read()  # actor calls carry bytes, not open files
        request_id = kwargs.pop("request_id", None) or (str(uuid.uuid4()) if mutating else None)
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                return ray.get(self._handle(op).call.remote(op, self.token, request_id, kwargs))
            except rex.RayTaskError as e:
                cause = e.cause if hasattr(e, "cause") else None
                if isinstance(cause, Exception):
                    raise cause from None
                raise
            except (rex.ActorDiedError, rex.ActorUnavailableError, rex.GetTimeoutError, ValueError) as e:
                if time.monotonic() > deadline:
                    raise Unavailable(f"the registry actor is not reachable: {e}") from None
                self._actors.clear()
                time.sleep(0.25)

    def _query_serving_endpoint(self, name: str, body: dict):
        """The ingress's path without HTTP: the routes (CAN_QUERY checked), then the endpoint's AI
        gateway calling the served entities' deployment handles."""
        from ray import serve

        from lakeray.serving import gateway
        from lakeray.serving.routing import call_entity

        target = self.call("get_serving_routes", name=name)

        async def send(route: dict, payload: dict) -> dict:
            return await call_entity(serve.get_app_handle(route["app"]), route, payload)

        async def no_stream(route: dict, payload: dict):
            raise InvalidArgument("stream: streamed answers need the HTTP API (the openai client, or "
                                  "POST /serving-endpoints/{name}/invocations)")

        return _run(gateway.query(target, None, body, send, no_stream)).body


def _run(coroutine):
    """Run a coroutine to its end from sync code, also where this thread already runs an event
    loop (a notebook): then in a thread of its own."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
