"""The HTTP transport: each registry operation mapped onto its REST route.

Errors come back as the same :mod:`lakeray.errors` classes the Ray transport raises. Writes
carry an ``X-Lakeray-Request-Id`` so a retried request after a connection failure or a 503
lands once.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote

import requests

from lakeray.api.app import REQUEST_ID_HEADER
from lakeray.arrow_wire import ARROW_STREAM, from_ipc, to_ipc
from lakeray.errors import Unavailable, from_wire

UC = "/api/2.1/unity-catalog"
LR = "/api/lakeray/v1"
MLFLOW = "/api/2.0/mlflow"
SERVING = "/api/2.0/serving-endpoints"

# op -> (method, path template, where the remaining kwargs go: "json" | "query" | None)
ROUTES: dict[str, tuple[str, str, str | None]] = {
    "whoami": ("GET", LR + "/whoami", None),
    "create_catalog": ("POST", UC + "/catalogs", "json"),
    "get_catalog": ("GET", UC + "/catalogs/{full_name}", None),
    "list_catalogs": ("GET", UC + "/catalogs", "query"),
    "update_catalog": ("PATCH", UC + "/catalogs/{full_name}", "json"),
    "delete_catalog": ("DELETE", UC + "/catalogs/{full_name}", "query"),
    "create_schema": ("POST", UC + "/schemas", "json"),
    "get_schema": ("GET", UC + "/schemas/{full_name}", None),
    "list_schemas": ("GET", UC + "/schemas", "query"),
    "update_schema": ("PATCH", UC + "/schemas/{full_name}", "json"),
    "delete_schema": ("DELETE", UC + "/schemas/{full_name}", "query"),
    "get_table": ("GET", UC + "/tables/{full_name}", None),
    "list_tables": ("GET", UC + "/tables", "query"),
    "update_table": ("PATCH", UC + "/tables/{full_name}", "json"),
    "delete_table": ("DELETE", UC + "/tables/{full_name}", None),
    "delete_rows": ("POST", LR + "/tables/{full_name}/delete", "json"),
    "table_versions": ("GET", LR + "/tables/{full_name}/versions", None),
    "describe_table": ("GET", LR + "/tables/{full_name}/describe", "query"),
    "create_volume": ("POST", UC + "/volumes", "json"),
    "get_volume": ("GET", UC + "/volumes/{full_name}", None),
    "list_volumes": ("GET", UC + "/volumes", "query"),
    "update_volume": ("PATCH", UC + "/volumes/{full_name}", "json"),
    "delete_volume": ("DELETE", UC + "/volumes/{full_name}", None),
    "list_directory": ("GET", "/api/2.0/fs/directories{path}", None),
    "create_directory": ("PUT", "/api/2.0/fs/directories{path}", None),
    "delete_file": ("DELETE", "/api/2.0/fs/files{path}", None),
    "delete_directory": ("DELETE", "/api/2.0/fs/directories{path}", "query"),
    "create_function": ("POST", UC + "/functions", "json"),
    "get_function": ("GET", UC + "/functions/{full_name}", None),
    "list_functions": ("GET", UC + "/functions", "query"),
    "delete_function": ("DELETE", UC + "/functions/{full_name}", None),
    "execute_function": ("POST", LR + "/functions/{full_name}/execute", "json"),
    "create_registered_model": ("POST", UC + "/models", "json"),
    "get_registered_model": ("GET", UC + "/models/{full_name}", None),
    "list_registered_models": ("GET", UC + "/models", "query"),
    "update_registered_model": ("PATCH", UC + "/models/{full_name}", "json"),
    "delete_registered_model": ("DELETE", UC + "/models/{full_name}", "query"),
    "create_model_version": ("POST", UC + "/models/versions", "json"),
    "get_model_version": ("GET", UC + "/models/{full_name}/versions/{version}", None),
    "list_model_versions": ("GET", UC + "/models/{full_name}/versions", "query"),
    "update_model_version": ("PATCH", UC + "/models/{full_name}/versions/{version}", "json"),
    "delete_model_version": ("DELETE", UC + "/models/{full_name}/versions/{version}", None),
    "set_registered_model_alias": ("PUT", UC + "/models/{full_name}/aliases/{alias}", "json"),
    "delete_registered_model_alias": ("DELETE", UC + "/models/{full_name}/aliases/{alias}", None),
    "get_model_version_by_alias": ("GET", UC + "/models/{full_name}/aliases/{alias}", None),
    "get_permissions": ("GET", UC + "/permissions/{stype}/{full_name}", "query"),
    "update_permissions": ("PATCH", UC + "/permissions/{stype}/{full_name}", "json"),
    "effective_permissions": ("GET", UC + "/effective-permissions/{stype}/{full_name}", None),
    "create_principal": ("POST", LR + "/principals", "json"),
    "get_principal": ("GET", LR + "/principals/{name}", None),
    "list_principals": ("GET", LR + "/principals", "query"),
    "update_principal": ("PATCH", LR + "/principals/{name}", "json"),
    "add_group_member": ("POST", LR + "/principals/{group}/members", "json"),
    "remove_group_member": ("DELETE", LR + "/principals/{group}/members/{member}", None),
    "revoke_token": ("POST", "/api/2.0/token/delete", "json"),
    "query_audit": ("GET", LR + "/audit", "query"),
    "record_lineage": ("POST", LR + "/lineage", "json"),
    "get_lineage": ("GET", LR + "/lineage/{node_type}/{name}", "query"),
    "create_experiment": ("POST", MLFLOW + "/experiments/create", "json"),
    "get_experiment_by_name": ("GET", MLFLOW + "/experiments/get-by-name", "query"),
    "create_run": ("POST", MLFLOW + "/runs/create", "json"),
    "get_run": ("GET", MLFLOW + "/runs/get", "query"),
    "update_run": ("POST", MLFLOW + "/runs/update", "json"),
    "log_batch": ("POST", MLFLOW + "/runs/log-batch", "json"),
    "log_inputs": ("POST", MLFLOW + "/runs/log-inputs", "json"),
    "get_metric_history": ("GET", MLFLOW + "/metrics/get-history", "query"),
    "search_runs": ("POST", MLFLOW + "/runs/search", "json"),
    "create_serving_endpoint": ("POST", SERVING, "json"),
    "get_serving_endpoint": ("GET", SERVING + "/{name}", None),
    "list_serving_endpoints": ("GET", SERVING, None),
    "update_serving_endpoint_config": ("PUT", SERVING + "/{name}/config", "json"),
    "delete_serving_endpoint": ("DELETE", SERVING + "/{name}", None),
    "put_ai_gateway": ("PUT", SERVING + "/{name}/ai-gateway", "json"),
}
SERVING_QUERY = "/serving-endpoints/{name}/invocations"
# Responses wrapped in an envelope by the REST API, unwrapped to match the Ray transport.
_UNWRAP = {"list_principals": "principals", "table_versions": "versions", "list_tokens": "token_infos"}


class HttpTransport:
    """Calls the REST API with a bearer token."""

    kind = "http"

    def __init__(self, url: str, token: str, timeout_s: float = 60.0, retries: int = 3):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    # -- plumbing --------------------------------------------------------------------------
    def request(self, method: str, path: str, mutating: bool, request_id: str | None = None,
                **kwargs) -> requests.Response:
        """Send with retries on connection errors and 503; raise LakerayErrors for 4xx/5xx."""
        headers = kwargs.pop("headers", {})
        if mutating:
            headers[REQUEST_ID_HEADER] = request_id or str(uuid.uuid4())
        attempt = 0
        while True:
            if hasattr(kwargs.get("data"), "seek"):
                kwargs["data"].seek(0)  # a retried file upload sends the whole file again
            try:
                resp = self.session.request(method, self.url + path, headers=headers,
                                            timeout=self.timeout_s, **kwargs)
            except requests.ConnectionError as e:
                attempt += 1
                if attempt > self.retries or (mutating and REQUEST_ID_HEADER not in headers):
                    raise Unavailable(f"cannot reach {self.url}: {e}") from None
                time.sleep(0.5 * attempt)
                continue
            if resp.status_code == 503 and attempt < self.retries:
                attempt += 1
                time.sleep(0.5 * attempt)
                continue
            if resp.status_code >= 400:
                try:
                    body = resp.json()
                except ValueError:
                    body = {}
                raise from_wire(body.get("error_code"), body.get("message") or resp.text[:500], resp.status_code)
            return resp

    def call(self, op: str, mutating: bool = False, **kwargs):
        """Run ``op`` over HTTP with the same arguments the Ray transport takes."""
        special = getattr(self, f"_op_{op}", None)
        if special is not None:
            return special(mutating=mutating, **kwargs)
        method, template, where = ROUTES[op]
        request_id = kwargs.pop("request_id", None) if op != "delete_rows" else kwargs.get("request_id")
        path_args = {}
        for key in list(kwargs):
            if "{" + key + "}" in template:
                value = kwargs.pop(key)
                if hasattr(value, "value"):
                    value = value.value
                # volume paths keep their slashes; everything else is one path segment
                path_args[key] = quote(str(value), safe="/" if key == "path" else "")
        path = template.format(**path_args)
        body = {k: v for k, v in kwargs.items() if v is not None}
        extra = {}
        if where == "json":
            extra["json"] = body
        elif where == "query" and body:
            extra["params"] = body
        resp = self.request(method, path, mutating, request_id, **extra)
        data = resp.json() if resp.content else {}
        return data.get(_UNWRAP[op]) if op in _UNWRAP else (data if data != {} or method != "DELETE" else None)

    # -- operations whose wire form is not plain JSON --------------------------------------
    def _op_query_serving_endpoint(self, mutating, name, body):
        path = SERVING_QUERY.format(name=quote(str(name), safe=""))
        return self.request("POST", path, False, json=body).json()

    def _op_create_table(self, mutating, full_name, schema=None, data=None, comment=None,
                         properties=None, **lineage):
        import pyarrow as pa

        table = data if data is not None else schema.empty_table()
        if schema is not None and data is not None:
            table = pa.Table.from_batches(table.to_batches(), schema=schema) if table.schema != schema else table
        params = {"full_name": full_name, **({"comment": comment} if comment else {})}
        resp = self.request("POST", LR + "/tables", mutating, params=params, data=to_ipc(table),
                            headers={"Content-Type": ARROW_STREAM})
        info = resp.json()
        if properties:
            info = self.call("update_table", mutating=True, full_name=full_name, properties=properties)
        return info

    def _write_rows(self, method, full_name, data, request_id=None, **opts):
        params = {k: v for k, v in opts.items() if v is not None}
        resp = self.request(method, f"{LR}/tables/{quote(full_name, safe='')}/rows", True, request_id,
                            params=params, data=to_ipc(data), headers={"Content-Type": ARROW_STREAM})
        return resp.json()

    def _op_append_table(self, mutating, full_name, data, request_id=None, **opts):
        return self._write_rows("POST", full_name, data, request_id, **opts)

    def _op_overwrite_table(self, mutating, full_name, data, request_id=None, **opts):
        return self._write_rows("PUT", full_name, data, request_id, **opts)

    def _op_read_table_page(self, mutating, full_name, version=None, page_token=None, max_rows=1000,
                            columns=None, predicate=None):
        params = {"format": "arrow", "max_rows": max_rows}
        for key, value in (("version", version), ("page_token", page_token), ("columns", columns)):
            if value is not None:
                params[key] = value
        if predicate is not None:
            params["predicate"] = json.dumps(predicate)
        resp = self.request("GET", f"{LR}/tables/{quote(full_name, safe='')}/rows", False, params=params)
        out = {"table": from_ipc(resp.content), "version": int(resp.headers["x-lakeray-version"])}
        if resp.headers.get("x-lakeray-next-page-token"):
            out["next_page_token"] = resp.headers["x-lakeray-next-page-token"]
        return out

    def _op_upload_file(self, mutating, path, data, overwrite=True):
        self.request("PUT", "/api/2.0/fs/files" + quote(path, safe="/"), True, params={"overwrite": str(overwrite).lower()},
                     data=data, headers={"Content-Type": "application/octet-stream"})

    def _op_upload_artifact(self, mutating, path, data, request_id=None):
        # ``data``: bytes or an open binary file, streamed as the request body
        self.request("PUT", "/api/2.0/mlflow-artifacts/artifacts/" + quote(path, safe="/"), True, request_id,
                     data=data, headers={"Content-Type": "application/octet-stream"})
        return {}

    def _op_download_file(self, mutating, path):
        return self.request("GET", "/api/2.0/fs/files" + quote(path, safe="/"), False).content

    def _op_create_table_from_columns(self, mutating, **body):
        return self.request("POST", UC + "/tables", True, json=body).json()

    def _op_create_token(self, mutating, principal=None, **body):
        if principal is None:
            return self.request("POST", "/api/2.0/token/create", True, json=body).json()
        return self.request("POST", "/api/2.0/token-management/on-behalf-of/tokens", True,
                            json={"application_id": principal, **body}).json()

    def _op_list_tokens(self, mutating, principal=None):
        if principal is None:
            return self.request("GET", "/api/2.0/token/list", False).json()["token_infos"]
        return self.request("GET", "/api/2.0/token-management/tokens", False,
                            params={"created_by_username": principal}).json()["token_infos"]
