"""The AI gateway on the query path of every endpoint (HTTP ingress and Python client alike).

One call, in order: pick a served entity by the traffic split; admit the call against the
endpoint's rate limits (in the gateway actor, so exact across replicas; a 429 names the limits
hit and carries Retry-After); check and mask the input with the guardrails; forward it, and on
a 5xx or timeout fall back to the endpoint's other served entities in order when fallbacks are
on; check and mask the output; then, off the response path, count the tokens against the token
limits and queue the usage and inference-table rows. An endpoint without a gateway config pays
for none of this.

Transports give two coroutines: ``send(route, payload) -> dict`` and ``open_stream(route,
payload) -> async iterator of server-sent events``; their failures are LakerayErrors already
(see :func:`lakeray.serving.routing.served_error`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from lakeray.errors import InvalidArgument, LakerayError, ResourceExhausted, Unavailable, http_status
from lakeray.ids import now_ms
from lakeray.serving import guardrails
from lakeray.serving import openai_api as oa
from lakeray.serving.gateway_log import USAGE_TABLE, inference_table
from lakeray.serving.limits import buckets_for
from lakeray.serving.routing import invocation_api, live_routes, pick_route

GENERATION = ("chat", "completion")
#: how long admission waits for a restarting gateway actor before answering 503
ADMIT_RETRY_S = 10.0
#: the most characters of a request or response kept in an inference table row
MAX_LOGGED_CHARS = 1_000_000

Send = Callable[[dict, dict], Awaitable[dict]]
OpenStream = Callable[[dict, dict], Awaitable[AsyncIterator[str]]]


@dataclass
class Answer:
    """What a call returns: the served entity that answered and a body or an event stream."""

    served_name: str
    body: dict | None = None
    events: AsyncIterator[str] | None = None


@dataclass
class _Call:
    """One call's facts, for the token count and the log rows."""

    target: dict
    api: str
    streaming: bool
    meta: dict
    started: float = field(default_factory=time.monotonic)
    timestamp_ms: int = field(default_factory=now_ms)
    served_name: str = ""
    status: int = 200
    tokens_in: int = 0
    tokens_out: int = 0
    request: object = None
    response: object = None


def _family(kind: str) -> str:
    return "generation" if kind in GENERATION else kind


_gateway_handle = None


def _actor(fresh: bool = False):
    """The gateway actor's handle, looked up once: a lookup is a blocking GCS round trip, and
    the handle stays valid across the actor's restarts (``fresh`` looks again, after a
    ``lakeray down``/``up`` replaced the actor)."""
    global _gateway_handle
    if _gateway_handle is None or fresh:
        from lakeray.actors.base import named
        from lakeray.settings import GATEWAY_ACTOR

        _gateway_handle = named(GATEWAY_ACTOR)
    return _gateway_handle


async def _admit(buckets: list) -> None:
    """Charge the call to its rate-limit buckets, or raise the 429 naming the limits hit."""
    import ray.exceptions as rex

    deadline = time.monotonic() + ADMIT_RETRY_S
    fresh = False
    while True:
        try:
            verdict = await _actor(fresh).admit.remote(buckets)
            break
        except (rex.ActorDiedError, rex.ActorUnavailableError, ValueError) as e:
            if time.monotonic() > deadline:
                raise Unavailable(f"the gateway's rate limiter is not reachable ({type(e).__name__}); "
                                  "retry shortly") from None
            fresh = True
            await asyncio.sleep(0.2)
    if not verdict["admitted"]:
        error = ResourceExhausted("rate limit exceeded: " + "; ".join(verdict["limits"])
                                  + f"; retry after {verdict['retry_after_s']} s")
        error.retry_after_s = verdict["retry_after_s"]
        raise error


def _embedder(config: dict):
    """The topic guardrail's embedding function if a side lists valid topics (None otherwise)."""
    if not any(side and side.get("valid_topics") for side in (config or {}).values()):
        return None
    import ray

    return lambda texts: ray.get(_actor().embed.remote(texts), timeout=60)


def _usage_of(body: object) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of an OpenAI-shaped response; zeros otherwise."""
    use = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(use, dict):
        return 0, 0
    return int(use.get("prompt_tokens") or 0), int(use.get("completion_tokens") or 0)


def _candidates(target: dict, first: dict, fallback: bool) -> list[dict]:
    """The routes a call tries: the drawn one, then (with fallbacks) the endpoint's other served
    entities of the same kind, in config order."""
    if not fallback:
        return [first]
    return [first] + [r for r in target["routes"]
                      if r["served_name"] != first["served_name"] and _family(r["kind"]) == _family(first["kind"])]


async def _try_in_turn(routes: list[dict], attempt: Callable[[dict], Awaitable]) -> tuple[dict, object]:
    """Run ``attempt`` on each route until one answers; a 5xx or timeout moves on to the next."""
    for i, route in enumerate(routes):
        try:
            return route, await attempt(route)
        except LakerayError as e:
            if i + 1 == len(routes) or http_status(e) < 500:
                raise
    raise AssertionError("unreachable: routes is never empty")


async def query(target: dict, api: str | None, body, send: Send, open_stream: OpenStream,
                meta: dict | None = None) -> Answer:
    """Answer one call of the endpoint ``target`` (from ``get_serving_routes``); ``api`` None
    decides by the served entity's kind. ``meta`` may carry ``client_request_id``/``trace_id``."""
    config = target.get("gateway") or {}
    route = pick_route(live_routes(target))
    api = api or invocation_api(route["kind"], body)
    streaming = api in GENERATION and isinstance(body, dict) and body.get("stream") is True
    if streaming and route["kind"] not in GENERATION:
        raise InvalidArgument(f"endpoint '{target['name']}' does not serve a language model")
    if not config:
        return await _plain(target, route, api, body, streaming, send, open_stream)
    call = _Call(target, api, streaming, {"trace_id": uuid.uuid4().hex, **(meta or {})}, request=body)
    buckets = buckets_for(target["id"], target["name"], config["rate_limits"], target["caller"])
    try:
        if buckets:
            await _admit(buckets)
    except LakerayError as e:
        call.status = http_status(e)
        _finish(call, [])
        raise
    try:
        answer = await _guarded(call, config, route, body, send, open_stream, buckets)
    except LakerayError as e:
        call.status = http_status(e)
        _finish(call, buckets)
        raise
    except Exception:
        call.status = 500
        _finish(call, buckets)
        raise
    if answer.events is None:
        _finish(call, buckets)
    return answer


async def _plain(target, route, api, body, streaming, send, open_stream) -> Answer:
    payload = {"api": api, "model": target["name"], "body": body}
    if streaming:
        return Answer(route["served_name"], events=await open_stream(route, payload))
    return Answer(route["served_name"], body=await send(route, payload))


async def _guarded(call: _Call, config: dict, route: dict, body, send: Send, open_stream: OpenStream,
                   buckets: list) -> Answer:
    rails = config.get("guardrails") or {}
    embed = _embedder(rails)
    if rails.get("input"):
        body = await asyncio.to_thread(guardrails.apply_request, rails["input"], call.api, body, embed)
        call.request = body
    routes = _candidates(call.target, route, config["fallback_config"]["enabled"])
    # the token limits and logs need the usage of a stream too: ask for it, hide it if unasked
    wants_usage = call.streaming and bool((body.get("stream_options") or {}).get("include_usage"))
    if call.streaming and not wants_usage:
        body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
    payload = {"api": call.api, "model": call.target["name"], "body": body}

    if not call.streaming:
        chosen, result = await _try_in_turn(routes, lambda r: send(r, payload))
        call.served_name = chosen["served_name"]
        call.tokens_in, call.tokens_out = _usage_of(result)
        if rails.get("output"):
            result = await asyncio.to_thread(guardrails.apply_response, rails["output"], call.api, result, embed)
        call.response = result
        return Answer(chosen["served_name"], body=result)

    chosen, events = await _try_in_turn(routes, lambda r: open_stream(r, payload))
    call.served_name = chosen["served_name"]
    if rails.get("output"):
        # the whole output is checked before any of it is sent: a stream that must be blocked
        # ends as a 400 rather than half-delivered
        whole = await _collect(events)
        checked = await asyncio.to_thread(guardrails.apply_response, rails["output"], call.api,
                                          whole.as_response(call.api), embed)
        whole.text = guardrails.response_texts(call.api, checked)[0] if whole.has_choice else whole.text
        events = _replay(whole, call.api)
    return Answer(chosen["served_name"], events=_logged_stream(call, events, buckets, wants_usage))


@dataclass
class _Whole:
    """A collected stream: its text, how it ended and its usage, to check and send again."""

    rid: str = ""
    model: str = ""
    created: int = 0
    text: str = ""
    finish_reason: str | None = None
    usage: dict | None = None
    has_choice: bool = False

    def as_response(self, api: str) -> dict:
        choice = ({"index": 0, "message": {"role": "assistant", "content": self.text}} if api == "chat"
                  else {"index": 0, "text": self.text})
        return {"choices": [choice]}


def _event_body(event: str) -> dict | None:
    """The JSON of one ``data: ...`` event (None for ``[DONE]`` or anything else)."""
    data = event.strip()
    if not data.startswith("data:") or data.endswith("[DONE]"):
        return None
    return json.loads(data[len("data:"):])


async def _collect(events: AsyncIterator[str]) -> _Whole:
    whole, parts = _Whole(), []
    async for event in events:
        chunk = _event_body(event)
        if chunk is None:
            continue
        whole.rid, whole.model, whole.created = chunk["id"], chunk["model"], chunk["created"]
        if chunk.get("usage"):
            whole.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            whole.has_choice = True
            parts.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
            whole.finish_reason = choice.get("finish_reason") or whole.finish_reason
    whole.text = "".join(parts)
    return whole


async def _replay(whole: _Whole, api: str) -> AsyncIterator[str]:
    """A checked stream sent again: its whole text in one chunk, the ending, the usage (every
    chunk carries ``usage``, as the stream did: it was asked for; see ``_logged_stream``)."""
    def event(text: str | None, reason: str | None, first: bool = False, use: dict | None = None) -> str:
        return oa.chunk_event(api, whole.rid, whole.model, text, reason, first, use, True, whole.created)

    if api == "chat":
        yield event(None, None, first=True)
    yield event(whole.text, None)
    yield event(None, whole.finish_reason or "stop")
    if whole.usage is not None:
        yield event(None, None, use=whole.usage)
    yield oa.DONE


async def _logged_stream(call: _Call, events: AsyncIterator[str], buckets: list,
                         wants_usage: bool) -> AsyncIterator[str]:
    """The stream as the client gets it (usage hidden unless asked for); the call is counted and
    logged when it ends, however it ends."""
    parts, finished = [], False
    try:
        async for event in events:
            # a client may hang up as soon as it reads [DONE]: the call was answered all the same
            finished = finished or event.strip().endswith("[DONE]")
            chunk = _event_body(event)
            if chunk is not None:
                if chunk.get("usage"):
                    call.tokens_in, call.tokens_out = _usage_of(chunk)
                for choice in chunk.get("choices") or []:
                    parts.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
                if not wants_usage:
                    if "usage" in chunk and not chunk.get("choices"):
                        continue  # the usage-only chunk the client did not ask for
                    chunk.pop("usage", None)
                    event = f"data: {json.dumps(chunk)}\n\n"
            yield event
    except LakerayError as e:
        call.status = http_status(e)
        raise
    except BaseException:
        if not finished:
            call.status = 499  # the client went away (or the stream broke) before the end
        raise
    finally:
        call.response = {"streamed_text": "".join(parts)}
        _finish(call, buckets)


def _clip(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_LOGGED_CHARS else text[:MAX_LOGGED_CHARS]


def _finish(call: _Call, buckets: list) -> None:
    """Count the call's tokens and queue its log rows in the gateway actor (not awaited: the
    response does not wait for bookkeeping)."""
    config = call.target.get("gateway") or {}
    latency = int((time.monotonic() - call.started) * 1000)
    caller = call.target["caller"]
    rows: dict[str, list[dict]] = {}
    request_id = uuid.uuid4().hex
    if config.get("usage_tracking_config", {}).get("enabled"):
        rows[USAGE_TABLE] = [{
            "request_id": request_id, "endpoint_name": call.target["name"], "served_entity_name": call.served_name,
            "requester": caller["name"], "requester_kind": caller["kind"], "api": call.api,
            "request_time_ms": call.timestamp_ms, "status_code": call.status, "request_streaming": call.streaming,
            "input_token_count": call.tokens_in, "output_token_count": call.tokens_out, "latency_ms": latency}]
    if config.get("inference_table_config"):
        rows[inference_table(config["inference_table_config"])] = [{
            "request_id": request_id, "client_request_id": call.meta.get("client_request_id"),
            "trace_id": call.meta["trace_id"], "endpoint_name": call.target["name"],
            "served_entity_name": call.served_name, "requester": caller["name"], "api": call.api,
            "timestamp_ms": call.timestamp_ms, "status_code": call.status, "execution_duration_ms": latency,
            "request": _clip(call.request), "response": _clip(call.response)}]
    tokens = call.tokens_in + call.tokens_out
    if not rows and not (tokens and any(b.tokens for b in buckets)):
        return
    try:
        _actor().finish.remote(buckets, tokens, rows)
    except Exception:  # noqa: BLE001 - bookkeeping never fails a call that was answered
        pass
