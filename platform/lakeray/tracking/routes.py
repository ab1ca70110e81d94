"""MLflow's REST API (``/api/2.0/mlflow`` and the proxied ``/api/2.0/mlflow-artifacts``).

Routes are generated from :data:`lakeray.tracking.operations.ENDPOINTS` (tracking, served by
the tracker) and :data:`lakeray.model_registry.operations.MLFLOW_ENDPOINTS` (the model
registry, served by the registry): the query parameters and the JSON body (the mlflow client
sends one with POST, PATCH and DELETE) become the keyword arguments of the operation, and its
return value is the response body, as MLflow's server sends it.
"""

# No `from __future__ import annotations` here: the generated endpoints are closures, which
# Ray Serve pickles by value, and string annotations would not resolve in the replica.
import asyncio
import json
import tempfile

import orjson
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from lakeray.api.app import call, json_response
from lakeray.api.routing import PrefixRouter
from lakeray.errors import InvalidArgument
from lakeray.model_registry.operations import MLFLOW_ENDPOINTS
from lakeray.tracking.operations import ENDPOINTS

PREFIX = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
router = PrefixRouter(tags=["mlflow"], prefixes=(PREFIX + "/", ARTIFACTS))
#: uploads larger than this are spooled to a temp file instead of memory.
SPOOL_BYTES = 8 * 1024 * 1024


def _query_args(request: Request) -> dict:
    """Query parameters as keyword arguments; a repeated key becomes a list."""
    out: dict = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        out[key] = values if len(values) > 1 or key.endswith("_ids") else values[0]
    return out


async def _body_args(request: Request) -> dict:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = _parse_json(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise InvalidArgument("malformed JSON body") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the JSON body must be an object")
    return body


def _parse_json(raw: bytes):
    """orjson (a 1,000-metric log_batch: ~0.5 ms instead of ~3 ms, on the event loop); what it
    refuses and Python's parser takes (NaN and Infinity literals, lone surrogate escapes) goes to
    Python's, so both accept the same bodies. orjson reads integers outside [-2**63, 2**64) as
    floats: ``validation.int64`` refuses floats too large to hold an integer's every digit."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _endpoint(method: str, op: str):
    async def endpoint(request: Request) -> dict:
        args = _query_args(request)
        if method != "GET":
            args.update(await _body_args(request))
        for key, value in request.path_params.items():
            args[key] = value
        return json_response(await call(request, op, **args))

    endpoint.__name__ = f"mlflow_{op}_{method.lower()}"
    endpoint.__doc__ = f"MLflow `{op}` (see MLflow's REST API reference)."
    return endpoint


def _resource_routers() -> list[PrefixRouter]:
    """The generated endpoints, one router per resource (``/runs/``, ``/model-versions/``...),
    so a request is tried against its own resource's routes only (see ``api/routing.py``)."""
    groups: dict[str, PrefixRouter] = {}
    for method, path, op in ENDPOINTS + MLFLOW_ENDPOINTS:
        resource = f"{PREFIX}/{path.split('/')[1]}"
        group = groups.setdefault(resource, PrefixRouter(prefixes=(resource,)))
        group.add_api_route(PREFIX + path, _endpoint(method, op), methods=[method])
    return sorted(groups.values(), key=lambda g: g.prefixes[0] not in _BUSIEST)  # stable: runs first


#: tried first: what training loops and registrations call most.
_BUSIEST = (f"{PREFIX}/runs", f"{PREFIX}/metrics", f"{PREFIX}/model-versions")


for _group in _resource_routers():
    router.include_router(_group)


async def _spool(request: Request):
    """The request body in a temp file (in memory up to SPOOL_BYTES), read as it streams in."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        async for chunk in request.stream():
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


@router.put(ARTIFACTS + "/{path:path}")
async def upload_artifact(path: str, request: Request) -> dict:
    """Upload one artifact file (``mlflow-artifacts:/<path>``).

    Where the API replica shares the artifact root (local reads on), the body streams to disk
    here after the permission check, and only the audit record goes to the tracker actor; else
    the bytes go through the actor.
    """
    store = request.app.state.backend.artifact_store()
    if store is None:
        await call(request, "upload_artifact", path=path, data=await request.body())
        return {}
    target = await call(request, "artifact_target", path=path, write=True)
    with await _spool(request) as body:
        size = await asyncio.to_thread(store.upload, target["location"], target["path"], body)
    await call(request, "record_artifact_upload", path=path, size=size)
    return {}


@router.get(ARTIFACTS + "/{path:path}")
async def download_artifact(path: str, request: Request) -> Response:
    """Download one artifact file (streamed from disk where the replica shares the artifact root)."""
    store = request.app.state.backend.artifact_store()
    if store is None:
        data = await call(request, "download_artifact", path=path)
        return Response(data, media_type="application/octet-stream")
    target = await call(request, "artifact_target", path=path)
    chunks = await asyncio.to_thread(store.download, target["location"], target["path"])
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.get(ARTIFACTS)
async def list_artifacts(request: Request, path: str = "") -> dict:
    """List a directory of artifacts: ``{"files": [{"path", "is_dir", "file_size"}]}``."""
    return await call(request, "list_artifacts", path=path)


@router.delete(ARTIFACTS + "/{path:path}")
async def delete_artifact(path: str, request: Request) -> dict:
    """Delete an artifact file or directory."""
    await call(request, "delete_artifact", path=path)
    return {}
