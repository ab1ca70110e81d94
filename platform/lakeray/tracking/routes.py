"""MLflow's REST API (``/api/2.0/mlflow`` and the proxied ``/api/2.0/mlflow-artifacts``).

Routes are generated from :data:`lakeray.tracking.operations.ENDPOINTS` (tracking, served by
the tracker) and :data:`lakeray.model_registry.operations.MLFLOW_ENDPOINTS` (the model
registry, served by the registry): the query parameters and the JSON body (the mlflow client
sends one with POST, PATCH and DELETE) become the keyword arguments of the operation, and its
return value is the response body, as MLflow's server sends it.
"""

# No `from __future__ import annotations` here: the generated endpoints are closures, which
# Ray Serve pickles by value, and string annotations would not resolve in the replica.
import json

from fastapi import APIRouter, Request, Response

from lakeray.api.app import call
from lakeray.errors import InvalidArgument
from lakeray.model_registry.operations import MLFLOW_ENDPOINTS
from lakeray.tracking.operations import ENDPOINTS

router = APIRouter(tags=["mlflow"])
PREFIX = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


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
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("malformed JSON body") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the JSON body must be an object")
    return body


def _endpoint(method: str, op: str):
    async def endpoint(request: Request) -> dict:
        args = _query_args(request)
        if method != "GET":
            args.update(await _body_args(request))
        for key, value in request.path_params.items():
            args[key] = value
        return await call(request, op, **args)

    endpoint.__name__ = f"mlflow_{op}_{method.lower()}"
    endpoint.__doc__ = f"MLflow `{op}` (see MLflow's REST API reference)."
    return endpoint


for _method, _path, _op in ENDPOINTS + MLFLOW_ENDPOINTS:
    router.add_api_route(PREFIX + _path, _endpoint(_method, _op), methods=[_method])


@router.put(ARTIFACTS + "/{path:path}")
async def upload_artifact(path: str, request: Request) -> dict:
    """Upload one artifact file (``mlflow-artifacts:/<path>``)."""
    await call(request, "upload_artifact", path=path, data=await request.body())
    return {}


@router.get(ARTIFACTS + "/{path:path}")
async def download_artifact(path: str, request: Request) -> Response:
    """Download one artifact file."""
    data = await call(request, "download_artifact", path=path)
    return Response(data, media_type="application/octet-stream")


@router.get(ARTIFACTS)
async def list_artifacts(request: Request, path: str = "") -> dict:
    """List a directory of artifacts: ``{"files": [{"path", "is_dir", "file_size"}]}``."""
    return await call(request, "list_artifacts", path=path)


@router.delete(ARTIFACTS + "/{path:path}")
async def delete_artifact(path: str, request: Request) -> dict:
    """Delete an artifact file or directory."""
    await call(request, "delete_artifact", path=path)
    return {}
