"""The Ray transport: operations go straight to the actor that owns them."""

from __future__ import annotations

import time
import uuid

from lakeray.errors import Unavailable
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
        """The ingress's path without HTTP: the routes (CAN_QUERY checked), a traffic draw, the
        served entity's deployment handle."""
        from ray import serve

        from lakeray.serving.routing import invocation_api, live_routes, pick_route, served_error

        target = self.call("get_serving_routes", name=name)
        route = pick_route(live_routes(target))
        payload = {"api": invocation_api(route["kind"], body), "model": target["name"], "body": body}
        try:
            return serve.get_app_handle(route["app"]).remote(payload).result(timeout_s=route["timeout_s"])
        except Exception as e:  # noqa: BLE001 - mapped below, or re-raised as it is
            mapped = served_error(route, e)
            if mapped is None:
                raise
            raise mapped from None
