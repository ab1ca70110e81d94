"""Where a query goes: a served entity drawn by the traffic split, and which API of its
replica the body is for, and the call into it. Shared by the HTTP ingress and the Python client
over Ray."""

from __future__ import annotations

import asyncio
import random

from lakeray.errors import DeadlineExceeded, InvalidArgument, LakerayError, Unavailable


def live_routes(target: dict) -> list[dict]:
    """The routes that take traffic (Unavailable while nothing runs yet)."""
    routes = [r for r in target["routes"] if r["percent"] > 0]
    if not routes:
        raise Unavailable(f"serving endpoint '{target['name']}' is not ready yet"
                          + (f": {target['message']}" if target["message"] else ""))
    return routes


def pick_route(routes: list[dict], draw: float | None = None) -> dict:
    """The route a query takes: a draw in [0, 100) against the cumulative traffic percentages."""
    draw = random.uniform(0, 100) if draw is None else draw
    total = 0
    for route in routes:
        total += route["percent"]
        if draw < total:
            return route
    return next(r for r in reversed(routes) if r["percent"] > 0)


def invocation_api(kind: str, body) -> str:
    """Which API an invocations body is for, by the served entity's kind and the body's fields."""
    if kind in ("chat", "completion"):
        if isinstance(body, dict) and "messages" in body:
            return "chat"
        if isinstance(body, dict) and "prompt" in body:
            return "completion"
        raise InvalidArgument("this endpoint serves a language model: send 'messages' (chat) or 'prompt'")
    return "embeddings" if kind == "embedding" else "invocations"


def served_error(route: dict, error: BaseException) -> LakerayError | None:
    """A failed call into a served entity as the error to answer with: 504 past its timeout,
    503 with Retry-After when its queue is full, the replica's own LakerayError, a restarting
    replica as 503; None for anything else."""
    import ray.exceptions as rex
    from ray.serve.exceptions import BackPressureError

    if isinstance(error, TimeoutError | rex.GetTimeoutError):
        return DeadlineExceeded(f"the model did not answer within {route['timeout_s']:g} s")
    if isinstance(error, BackPressureError):
        busy = Unavailable(f"served entity {route['served_name']} is at capacity (its queue is full); retry shortly")
        busy.retry_after_s = 1
        return busy
    if isinstance(error, rex.RayTaskError):
        cause = getattr(error, "cause", None)
        if isinstance(cause, LakerayError):
            return type(cause)(cause.message)
        return LakerayError("the served model failed")
    if isinstance(error, rex.ActorDiedError | rex.ActorUnavailableError):
        return Unavailable(f"served entity {route['served_name']} is restarting: {type(error).__name__}")
    return None


async def _mapped(route: dict, awaitable):
    """Await a call into a served entity; its failures as LakerayErrors (see ``served_error``)."""
    try:
        return await awaitable
    except Exception as e:  # noqa: BLE001 - mapped below, or re-raised as it is
        mapped = served_error(route, e)
        if mapped is None:
            raise
        raise mapped from None


async def call_entity(handle, route: dict, payload: dict) -> dict:
    """Send ``payload`` to the route's Serve application (``handle``) within its timeout."""
    return await _mapped(route, asyncio.wait_for(handle.remote(payload), timeout=route["timeout_s"]))


async def stream_entity(handle, route: dict, payload: dict):
    """The server-sent events of a streamed generation. The first is awaited here, before the
    response starts, so a bad request is still a 4xx (and a failing entity can be fallen back from)."""
    generator = handle.options(stream=True, method_name="stream").remote(payload)
    first = await _mapped(route, asyncio.wait_for(generator.__anext__(), timeout=route["timeout_s"]))

    async def events():
        yield first
        async for event in generator:
            yield event

    return events()
