"""Table data and volume files over HTTP.

Table data lives under ``/api/lakeray/v1/tables/{full_name}``: JSON rows or Arrow IPC in,
paged JSON or Arrow IPC out. Volume files use the Databricks Files API paths
(``/api/2.0/fs/files/Volumes/...`` and ``/api/2.0/fs/directories/Volumes/...``).
"""

from __future__ import annotations

import json
from email.utils import formatdate

from fastapi import Query, Request, Response

from lakeray.api.app import call
from lakeray.api.routing import PrefixRouter
from lakeray.arrow_wire import ARROW_STREAM, from_ipc, from_rows, to_ipc, to_rows
from lakeray.errors import InvalidArgument
from lakeray.schemas.platform import AppendRows, DeleteRows, ExecuteFunction

router = PrefixRouter(tags=["table data", "files"],
                      prefixes=("/api/lakeray/v1/tables", "/api/lakeray/v1/functions/", "/api/2.0/fs/"))
TABLES = "/api/lakeray/v1/tables"


async def _data(request: Request) -> tuple[object, dict]:
    """The table a write sends (Arrow IPC or JSON ``{"rows": [...]}``) and its options."""
    if request.headers.get("content-type", "").startswith(ARROW_STREAM):
        opts = {k: request.query_params[k] for k in ("request_id", "job_id", "run_id")
                if k in request.query_params}
        if "sources" in request.query_params:
            opts["sources"] = request.query_params.getlist("sources")
        return from_ipc(await request.body()), opts
    try:
        body = AppendRows.model_validate_json(await request.body())
    except ValueError as e:
        raise InvalidArgument(f"expected JSON {{\"rows\": [...]}} or an Arrow IPC stream: {e}") from None
    opts = body.model_dump(exclude={"rows"}, exclude_none=True)
    return from_rows(body.rows), opts


@router.post(TABLES)
async def create_table_from_data(request: Request, full_name: str, comment: str | None = None) -> dict:
    """Create a managed table from an Arrow IPC stream (its schema, and rows if any)."""
    if not request.headers.get("content-type", "").startswith(ARROW_STREAM):
        raise InvalidArgument(f"send the table as {ARROW_STREAM}")
    table = from_ipc(await request.body())
    return await call(request, "create_table", full_name=full_name, schema=table.schema,
                      data=table if table.num_rows else None, comment=comment)


@router.post(TABLES + "/{full_name}/rows")
async def append_rows(full_name: str, request: Request) -> dict:
    """Append rows (MODIFY); returns the new version."""
    table, opts = await _data(request)
    return await call(request, "append_table", full_name=full_name, data=table, **opts)


@router.put(TABLES + "/{full_name}/rows")
async def overwrite_rows(full_name: str, request: Request) -> dict:
    """Replace every row (MODIFY); older versions stay readable."""
    table, opts = await _data(request)
    return await call(request, "overwrite_table", full_name=full_name, data=table, **opts)


@router.post(TABLES + "/{full_name}/delete")
async def delete_rows(full_name: str, body: DeleteRows, request: Request) -> dict:
    """Delete rows matching ``[[column, op, value], ...]`` (MODIFY)."""
    return await call(request, "delete_rows", full_name=full_name, predicate=body.predicate,
                      request_id=body.request_id)


@router.get(TABLES + "/{full_name}/rows")
async def read_rows(full_name: str, request: Request, version: int | None = Query(None, ge=1),
                    page_token: str | None = None, max_rows: int = Query(1000, ge=1, le=10000),
                    columns: list[str] | None = Query(None), predicate: str | None = None,
                    format: str = Query("json", pattern="^(json|arrow)$")):
    """A page of rows (SELECT) pinned to one version; ``format=arrow`` returns Arrow IPC."""
    pred = None
    if predicate:
        try:
            pred = json.loads(predicate)
        except ValueError:
            raise InvalidArgument("predicate must be JSON: [[column, op, value], ...]") from None
    page = await call(request, "read_table_page", full_name=full_name, version=version,
                      page_token=page_token, max_rows=max_rows, columns=columns, predicate=pred)
    headers = {"x-lakeray-version": str(page["version"])}
    if page.get("next_page_token"):
        headers["x-lakeray-next-page-token"] = page["next_page_token"]
    if format == "arrow":
        return Response(to_ipc(page["table"]), media_type=ARROW_STREAM, headers=headers)
    out = {"rows": to_rows(page["table"]), "version": page["version"]}
    if page.get("next_page_token"):
        out["next_page_token"] = page["next_page_token"]
    return out


@router.get(TABLES + "/{full_name}/versions")
async def table_versions(full_name: str, request: Request) -> dict:
    """Every version of the table (time travel targets)."""
    return {"versions": await call(request, "table_versions", full_name=full_name)}


@router.get(TABLES + "/{full_name}/describe")
async def describe_table(full_name: str, request: Request, version: int | None = Query(None, ge=1)) -> dict:
    """Schema, row count and current version."""
    return await call(request, "describe_table", full_name=full_name, version=version)


# -- volume files (Databricks Files API) -----------------------------------------------------
@router.put("/api/2.0/fs/files/{path:path}")
async def upload_file(path: str, request: Request, overwrite: bool = True) -> dict:
    """Upload a file to a volume path ``/Volumes/<catalog>/<schema>/<volume>/<path>``."""
    await call(request, "upload_file", path="/" + path, data=await request.body(), overwrite=overwrite)
    return {}


@router.get("/api/2.0/fs/files/{path:path}")
async def download_file(path: str, request: Request) -> Response:
    data = await call(request, "download_file", path="/" + path)
    return Response(data, media_type="application/octet-stream")


@router.head("/api/2.0/fs/files/{path:path}")
async def file_metadata(path: str, request: Request) -> Response:
    meta = await call(request, "file_metadata", path="/" + path)
    modified = formatdate(meta.get("last_modified", 0) / 1000, usegmt=True)
    return Response(headers={"content-length": str(meta.get("file_size", 0)), "last-modified": modified})


@router.delete("/api/2.0/fs/files/{path:path}")
async def delete_file(path: str, request: Request) -> dict:
    await call(request, "delete_file", path="/" + path)
    return {}


@router.get("/api/2.0/fs/directories/{path:path}")
async def list_directory(path: str, request: Request) -> dict:
    return await call(request, "list_directory", path="/" + path)


@router.put("/api/2.0/fs/directories/{path:path}")
async def create_directory(path: str, request: Request) -> dict:
    await call(request, "create_directory", path="/" + path)
    return {}


@router.delete("/api/2.0/fs/directories/{path:path}")
async def delete_directory(path: str, request: Request, recursive: bool = False) -> dict:
    await call(request, "delete_directory", path="/" + path, recursive=recursive)
    return {}


@router.post("/api/lakeray/v1/functions/{full_name}/execute")
async def execute_function(full_name: str, body: ExecuteFunction, request: Request) -> dict:
    """Run a catalog function (EXECUTE) in a Ray task with a timeout."""
    return await call(request, "execute_function", full_name=full_name, parameters=body.parameters,
                      timeout_s=body.timeout_s)
