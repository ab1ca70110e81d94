"""The serving-endpoints REST API (Databricks' shapes) and the query route.

Control plane: ``/api/2.0/serving-endpoints[/{name}[/config|/tags|/ai-gateway]]``. Queries:
``POST /serving-endpoints/{name}/invocations`` and the OpenAI routes (``/v1/chat/completions``,
``/v1/completions``, ``/v1/embeddings``, ``model`` = endpoint name) pick a served entity by the
traffic split and go through the endpoint's AI gateway (:mod:`lakeray.serving.gateway`) to its
Serve application, reached through a deployment handle (no HTTP hop); streamed generations come
back as server-sent events.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from lakeray.api.app import call
from lakeray.api.routing import PrefixRouter
from lakeray.errors import InvalidArgument
from lakeray.schemas.serving import (
    CreateServingEndpoint,
    PatchServingEndpointTags,
    PutAiGateway,
    ReplaceServingEndpoint,
    UpdateServingEndpointConfig,
)
from lakeray.serving import gateway
from lakeray.serving.routing import call_entity, stream_entity

router = PrefixRouter(tags=["serving"], prefixes=("/api/2.0/serving-endpoints", "/serving-endpoints/", "/v1/"))
API = "/api/2.0/serving-endpoints"
#: the response header naming the served entity that answered
SERVED_ENTITY_HEADER = "x-lakeray-served-entity"


def _poke() -> None:
    """Ask the serving actor for a deployer pass now (it runs one every second anyway)."""
    try:
        import ray

        if not ray.is_initialized():
            return
        from lakeray.actors.base import named
        from lakeray.settings import SERVING_ACTOR

        named(SERVING_ACTOR).poke.remote()
    except Exception:  # noqa: BLE001 - the next pass comes within a second
        pass


@router.post(API)
async def create_serving_endpoint(body: CreateServingEndpoint, request: Request) -> dict:
    """Create an endpoint; its served entities start deploying at once (see ``state``)."""
    out = await call(request, "create_serving_endpoint", **body.model_dump(exclude_none=True))
    _poke()
    return out


@router.get(API)
async def list_serving_endpoints(request: Request) -> dict:
    """Every endpoint the caller may view."""
    return await call(request, "list_serving_endpoints")


@router.get(API + "/{name}")
async def get_serving_endpoint(name: str, request: Request) -> dict:
    """One endpoint: running config, pending config, state (CAN_VIEW)."""
    return await call(request, "get_serving_endpoint", name=name)


@router.put(API + "/{name}/config")
async def update_serving_endpoint_config(name: str, body: UpdateServingEndpointConfig, request: Request) -> dict:
    """Replace the config; it rolls out beside the running one (CAN_MANAGE)."""
    out = await call(request, "update_serving_endpoint_config", name=name, **body.model_dump(exclude_none=True))
    _poke()
    return out


@router.put(API + "/{name}")
async def replace_serving_endpoint(name: str, body: ReplaceServingEndpoint, request: Request) -> dict:
    """The same as ``PUT .../config`` with the config under ``config``."""
    out = await call(request, "update_serving_endpoint_config", name=name,
                     **body.config.model_dump(exclude_none=True))
    _poke()
    return out


@router.patch(API + "/{name}/tags")
async def patch_serving_endpoint_tags(name: str, body: PatchServingEndpointTags, request: Request) -> list:
    """Add or replace tags, delete tags by key (CAN_MANAGE)."""
    return await call(request, "update_serving_endpoint_tags", name=name, **body.model_dump(exclude_none=True))


@router.put(API + "/{name}/ai-gateway")
async def put_ai_gateway(name: str, body: PutAiGateway, request: Request) -> dict:
    """Replace the endpoint's AI gateway config: rate limits, usage tracking, inference table,
    guardrails, fallbacks (CAN_MANAGE). Takes effect on the next call."""
    return await call(request, "put_ai_gateway", name=name, **body.model_dump(exclude_none=True))


@router.delete(API + "/{name}")
async def delete_serving_endpoint(name: str, request: Request) -> dict:
    """Drop the endpoint; its Serve applications are removed after in-flight requests end."""
    await call(request, "delete_serving_endpoint", name=name)
    _poke()
    return {}


def _meta(request: Request) -> dict:
    """The caller's request id and W3C trace id, when it sends them (for the inference table)."""
    meta = {}
    if request.headers.get("x-request-id"):
        meta["client_request_id"] = request.headers["x-request-id"][:128]
    parent = request.headers.get("traceparent", "").split("-")
    if len(parent) == 4 and len(parent[1]) == 32:
        meta["trace_id"] = parent[1]
    return meta


async def _query(request: Request, name: str, api: str | None, body) -> Response:
    """Answer one query of endpoint ``name`` through its AI gateway; ``api`` None means: decide by
    the served entity's kind."""
    target = await call(request, "get_serving_routes", name=name)

    async def send(route: dict, payload: dict) -> dict:
        return await call_entity(_handle(request, route), route, payload)

    async def open_stream(route: dict, payload: dict):
        return await stream_entity(_handle(request, route), route, payload)

    answer = await gateway.query(target, api, body, send, open_stream, _meta(request))
    headers = {SERVED_ENTITY_HEADER: answer.served_name}
    if answer.events is not None:
        return StreamingResponse(answer.events, media_type="text/event-stream", headers=headers)
    return JSONResponse(answer.body, headers=headers)


@router.post("/serving-endpoints/{name}/invocations")
async def invocations(name: str, request: Request):
    """Query an endpoint: MLflow scoring formats (``dataframe_split``, ``dataframe_records``,
    ``instances``, ``inputs``) for pyfunc models, OpenAI bodies for language and embedding
    models; needs CAN_QUERY."""
    return await _query(request, name, None, await request.json())


def _model_of(body) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidArgument("model: the name of the serving endpoint to query is required")
    return body["model"]


@router.post("/v1/chat/completions")
async def chat_completions(request: Request):
    """OpenAI chat completions; ``model`` is the endpoint's name (CAN_QUERY)."""
    body = await request.json()
    return await _query(request, _model_of(body), "chat", body)


@router.post("/v1/completions")
async def completions(request: Request):
    """OpenAI text completions; ``model`` is the endpoint's name (CAN_QUERY)."""
    body = await request.json()
    return await _query(request, _model_of(body), "completion", body)


@router.post("/v1/embeddings")
async def embeddings(request: Request):
    """OpenAI embeddings; ``model`` is the endpoint's name (CAN_QUERY)."""
    body = await request.json()
    return await _query(request, _model_of(body), "embeddings", body)


@router.get("/v1/models")
async def models(request: Request) -> dict:
    """The endpoints the caller may view, as OpenAI models."""
    listed = await call(request, "list_serving_endpoints")
    return {"object": "list", "data": [{"id": e["name"], "object": "model", "created": e["creation_timestamp"] // 1000,
                                        "owned_by": e["creator"]} for e in listed["endpoints"]]}


def _handle(request: Request, route: dict):
    """The deployment handle of a route's Serve application (kept per ingress replica)."""
    from ray import serve

    handles = request.app.state.__dict__.setdefault("serve_handles", {})
    handle = handles.get(route["app"])
    if handle is None:
        handle = handles[route["app"]] = serve.get_app_handle(route["app"])
    return handle
