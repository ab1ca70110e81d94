"""The client interface, written once over a transport (Ray or HTTP).

Every method behaves the same on both transports and raises the same
:mod:`lakeray.errors` classes.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from lakeray.errors import InvalidArgument


def to_arrow(data) -> pa.Table:
    """Arrow from an Arrow table/batch, a pandas DataFrame, a list of row dicts, or a
    ``.parquet``/``.csv`` file path."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, str | Path):
        path = Path(data)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if path.suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
        raise InvalidArgument(f"cannot read {path}: give a .parquet or .csv file")
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise InvalidArgument(f"unsupported data type {type(data).__name__}")


def _pairs(mapping: dict | None) -> list[dict]:
    """``{"k": v}`` as MLflow's ``[{"key": "k", "value": "v"}]``."""
    return [{"key": str(k), "value": str(v)} for k, v in (mapping or {}).items()]


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _three(full_name: str) -> tuple[str, str, str]:
    parts = full_name.split(".") if isinstance(full_name, str) else []
    if len(parts) != 3:
        raise InvalidArgument(f"expected a full name catalog.schema.name, got {full_name!r}")
    return parts[0], parts[1], parts[2]


class Client:
    """Catalog, tables, volumes, functions, models, principals, audit, lineage and tracking."""

    def __init__(self, transport):
        self._t = transport

    @property
    def serving(self):
        """Serving endpoints (:class:`lakeray.client.serving.ServingClient`)."""
        from lakeray.client.serving import ServingClient

        return ServingClient(self)

    @property
    def transport(self) -> str:
        """``"ray"`` or ``"http"``."""
        return self._t.kind

    def _read(self, op: str, **kwargs):
        return self._t.call(op, mutating=False, **kwargs)

    def _write(self, op: str, **kwargs):
        return self._t.call(op, mutating=True, **kwargs)

    def whoami(self) -> dict:
        """The caller: name, kind, admin flag, groups."""
        return self._read("whoami")

    # -- catalogs and schemas --------------------------------------------------------------
    def create_catalog(self, name: str, comment: str | None = None, properties: dict | None = None) -> dict:
        """Create a catalog; you become its owner."""
        return self._write("create_catalog", name=name, comment=comment, properties=properties)

    def get_catalog(self, name: str) -> dict:
        return self._read("get_catalog", full_name=name)

    def list_catalogs(self, max_results: int | None = None, page_token: str | None = None) -> dict:
        return self._read("list_catalogs", max_results=max_results, page_token=page_token)

    def update_catalog(self, name: str, **changes) -> dict:
        """Change comment, properties, tags, owner or name (``new_name``)."""
        return self._write("update_catalog", full_name=name, **changes)

    def delete_catalog(self, name: str, force: bool = False) -> None:
        self._write("delete_catalog", full_name=name, force=force)

    def create_schema(self, catalog_name: str, name: str, comment: str | None = None,
                      properties: dict | None = None) -> dict:
        return self._write("create_schema", catalog_name=catalog_name, name=name, comment=comment,
                           properties=properties)

    def get_schema(self, full_name: str) -> dict:
        return self._read("get_schema", full_name=full_name)

    def list_schemas(self, catalog_name: str, max_results: int | None = None,
                     page_token: str | None = None) -> dict:
        return self._read("list_schemas", catalog_name=catalog_name, max_results=max_results,
                          page_token=page_token)

    def update_schema(self, full_name: str, **changes) -> dict:
        return self._write("update_schema", full_name=full_name, **changes)

    def delete_schema(self, full_name: str, force: bool = False) -> None:
        self._write("delete_schema", full_name=full_name, force=force)

    # -- tables ----------------------------------------------------------------------------
    def create_table(self, full_name: str, data=None, schema: pa.Schema | None = None,
                     comment: str | None = None, properties: dict | None = None) -> dict:
        """Create a managed table from an Arrow schema, or from data (Arrow, pandas, rows,
        a ``.parquet`` or ``.csv`` path)."""
        table = to_arrow(data) if data is not None else None
        return self._write("create_table", full_name=full_name, schema=schema, data=table, comment=comment,
                           properties=properties)

    def get_table(self, full_name: str) -> dict:
        return self._read("get_table", full_name=full_name)

    def list_tables(self, catalog_name: str, schema_name: str, max_results: int | None = None,
                    page_token: str | None = None) -> dict:
        return self._read("list_tables", catalog_name=catalog_name, schema_name=schema_name,
                          max_results=max_results, page_token=page_token)

    def update_table(self, full_name: str, **changes) -> dict:
        """Change comment, properties, tags, owner or name (``new_name``)."""
        return self._write("update_table", full_name=full_name, **changes)

    def delete_table(self, full_name: str) -> None:
        self._write("delete_table", full_name=full_name)

    def append(self, full_name: str, data, request_id: str | None = None, sources: list[str] | None = None,
               job_id: str | None = None, run_id: str | None = None) -> dict:
        """Append rows; returns ``{"version", "num_rows"}``. ``sources`` records lineage."""
        return self._write("append_table", full_name=full_name, data=to_arrow(data), request_id=request_id,
                           sources=sources, job_id=job_id, run_id=run_id)

    def overwrite(self, full_name: str, data, request_id: str | None = None,
                  sources: list[str] | None = None, job_id: str | None = None,
                  run_id: str | None = None) -> dict:
        """Replace every row (older versions stay readable)."""
        return self._write("overwrite_table", full_name=full_name, data=to_arrow(data),
                           request_id=request_id, sources=sources, job_id=job_id, run_id=run_id)

    def delete_rows(self, full_name: str, predicate: list, request_id: str | None = None) -> dict:
        """Delete rows matching ``[[column, op, value], ...]`` (all must hold)."""
        return self._write("delete_rows", full_name=full_name, predicate=predicate, request_id=request_id)

    def read_table(self, full_name: str, version: int | None = None, columns: list[str] | None = None,
                   predicate: list | None = None, page_rows: int = 10_000) -> pa.Table:
        """The whole table (or a version of it) as Arrow, fetched page by page."""
        pages, token = [], None
        while True:
            page = self._read("read_table_page", full_name=full_name, version=version, page_token=token,
                              max_rows=page_rows, columns=columns, predicate=predicate)
            pages.append(page["table"])
            token = page.get("next_page_token")
            if not token:
                return pa.concat_tables(pages) if len(pages) > 1 else pages[0]

    def read_pandas(self, full_name: str, **kwargs):
        """Like :meth:`read_table`, as a pandas DataFrame."""
        return self.read_table(full_name, **kwargs).to_pandas()

    def read_dataset(self, full_name: str, version: int | None = None, columns: list[str] | None = None,
                     num_cpus: float | None = None):
        """A Ray Dataset of the table: read in place over Ray, streamed over HTTP. ``num_cpus``
        per read task (default 1) lets reads run beside training workers that hold the CPUs."""
        import ray.data

        if self._t.kind == "ray":
            loc = self._read("table_location", full_name=full_name, version=version)
            return ray.data.read_lance(loc["uri"], version=loc["version"], columns=columns, num_cpus=num_cpus)
        return ray.data.from_arrow(self.read_table(full_name, version=version, columns=columns))

    def table_versions(self, full_name: str) -> list[dict]:
        """Every version: number, timestamp, row count, operation."""
        return self._read("table_versions", full_name=full_name)

    def describe_table(self, full_name: str, version: int | None = None) -> dict:
        """Columns, row count and version."""
        return self._read("describe_table", full_name=full_name, version=version)

    # -- volumes ---------------------------------------------------------------------------
    def create_volume(self, catalog_name: str, schema_name: str, name: str,
                      comment: str | None = None) -> dict:
        return self._write("create_volume", catalog_name=catalog_name, schema_name=schema_name, name=name,
                           comment=comment)

    def get_volume(self, full_name: str) -> dict:
        return self._read("get_volume", full_name=full_name)

    def list_volumes(self, catalog_name: str, schema_name: str) -> dict:
        return self._read("list_volumes", catalog_name=catalog_name, schema_name=schema_name)

    def delete_volume(self, full_name: str) -> None:
        self._write("delete_volume", full_name=full_name)

    def upload(self, path: str, data: bytes, overwrite: bool = True) -> None:
        """Write a file at ``/Volumes/<catalog>/<schema>/<volume>/<path>``."""
        self._write("upload_file", path=path, data=bytes(data), overwrite=overwrite)

    def download(self, path: str) -> bytes:
        return self._read("download_file", path=path)

    def list_directory(self, path: str) -> dict:
        return self._read("list_directory", path=path)

    def delete_file(self, path: str) -> None:
        self._write("delete_file", path=path)

    # -- functions -------------------------------------------------------------------------
    def create_function(self, function_info: dict) -> dict:
        """Create a Python function from a Unity Catalog ``CreateFunction`` dict."""
        return self._write("create_function", function_info=function_info)

    def get_function(self, full_name: str) -> dict:
        return self._read("get_function", full_name=full_name)

    def list_functions(self, catalog_name: str, schema_name: str) -> dict:
        return self._read("list_functions", catalog_name=catalog_name, schema_name=schema_name)

    def delete_function(self, full_name: str) -> None:
        self._write("delete_function", full_name=full_name)

    def execute_function(self, full_name: str, timeout_s: int | None = None, **parameters):
        """Call a function in a Ray task; returns its value."""
        out = self._write("execute_function", full_name=full_name, parameters=parameters, timeout_s=timeout_s)
        return out["value"]


    # -- registered models (the model registry) -----------------------------------------
    def create_registered_model(self, full_name: str, comment: str | None = None) -> dict:
        """Create ``catalog.schema.model`` (CREATE MODEL on the schema); you become its owner."""
        catalog, schema, name = _three(full_name)
        return self._write("create_registered_model", catalog_name=catalog, schema_name=schema, name=name,
                           comment=comment)

    def get_registered_model(self, full_name: str) -> dict:
        """A registered model with its aliases (EXECUTE)."""
        return self._read("get_registered_model", full_name=full_name)

    def list_registered_models(self, catalog_name: str | None = None, schema_name: str | None = None,
                               max_results: int | None = None, page_token: str | None = None) -> dict:
        """Models you may read, in one schema or everywhere."""
        return self._read("list_registered_models", catalog_name=catalog_name, schema_name=schema_name,
                          max_results=max_results, page_token=page_token)

    def update_registered_model(self, full_name: str, **changes) -> dict:
        """Change ``comment`` or ``owner``, or rename (``new_name``) within the schema."""
        return self._write("update_registered_model", full_name=full_name, **changes)

    def delete_registered_model(self, full_name: str, force: bool = False) -> None:
        """Drop a model; one with versions needs ``force=True``."""
        self._write("delete_registered_model", full_name=full_name, force=force)

    def create_model_version(self, full_name: str, source: str, run_id: str | None = None,
                             comment: str | None = None) -> dict:
        """Register ``source`` (``runs:/<run>/<path>``, ``models:/m-<id>``...) as the next version;
        its artifacts are copied into the model's managed storage."""
        catalog, schema, name = _three(full_name)
        return self._write("create_model_version", catalog_name=catalog, schema_name=schema, model_name=name,
                           source=source, run_id=run_id, comment=comment)

    def get_model_version(self, full_name: str, version: int) -> dict:
        return self._read("get_model_version", full_name=full_name, version=version)

    def list_model_versions(self, full_name: str, max_results: int | None = None,
                            page_token: str | None = None) -> dict:
        """A model's versions, newest first."""
        return self._read("list_model_versions", full_name=full_name, max_results=max_results,
                          page_token=page_token)

    def update_model_version(self, full_name: str, version: int, comment: str) -> dict:
        return self._write("update_model_version", full_name=full_name, version=version, comment=comment)

    def delete_model_version(self, full_name: str, version: int) -> None:
        self._write("delete_model_version", full_name=full_name, version=version)

    def set_model_alias(self, full_name: str, alias: str, version: int) -> dict:
        """Point ``alias`` at a version (moving it if it exists)."""
        return self._write("set_registered_model_alias", full_name=full_name, alias=alias, version_num=version)

    def delete_model_alias(self, full_name: str, alias: str) -> None:
        self._write("delete_registered_model_alias", full_name=full_name, alias=alias)

    def get_model_version_by_alias(self, full_name: str, alias: str) -> dict:
        return self._read("get_model_version_by_alias", full_name=full_name, alias=alias)

    # -- permissions -----------------------------------------------------------------------
    def get_permissions(self, securable_type: str, full_name: str, principal: str | None = None) -> dict:
        return self._read("get_permissions", stype=securable_type, full_name=full_name, principal=principal)

    def update_permissions(self, securable_type: str, full_name: str, changes: list[dict]) -> dict:
        return self._write("update_permissions", stype=securable_type, full_name=full_name, changes=changes)

    def grant(self, securable_type: str, full_name: str, principal: str, *privileges: str) -> dict:
        """Grant privileges, e.g. ``grant("table", "main.default.t", "bob", "SELECT")``."""
        return self.update_permissions(securable_type, full_name,
                                       [{"principal": principal, "add": list(privileges), "remove": []}])

    def revoke(self, securable_type: str, full_name: str, principal: str, *privileges: str) -> dict:
        return self.update_permissions(securable_type, full_name,
                                       [{"principal": principal, "add": [], "remove": list(privileges)}])

    def effective_permissions(self, securable_type: str, full_name: str) -> dict:
        return self._read("effective_permissions", stype=securable_type, full_name=full_name)

    # -- principals and tokens -------------------------------------------------------------
    def create_principal(self, name: str, kind: str = "user", display_name: str | None = None,
                         is_admin: bool = False) -> dict:
        return self._write("create_principal", name=name, kind=kind, display_name=display_name,
                           is_admin=is_admin)

    def get_principal(self, name: str) -> dict:
        return self._read("get_principal", name=name)

    def list_principals(self, kind: str | None = None) -> list[dict]:
        return self._read("list_principals", kind=kind)

    def update_principal(self, name: str, **changes) -> dict:
        return self._write("update_principal", name=name, **changes)

    def add_group_member(self, group: str, member: str) -> dict:
        return self._write("add_group_member", group=group, member=member)

    def remove_group_member(self, group: str, member: str) -> dict:
        return self._write("remove_group_member", group=group, member=member)

    def create_token(self, principal: str | None = None, lifetime_seconds: int | None = None,
                     comment: str | None = None) -> dict:
        """A new token (``token_value`` is shown only here) for you or, as admin, for another."""
        return self._write("create_token", principal=principal, lifetime_seconds=lifetime_seconds,
                           comment=comment)

    def list_tokens(self, principal: str | None = None) -> list[dict]:
        return self._read("list_tokens", principal=principal)

    def revoke_token(self, token_id: str) -> None:
        self._write("revoke_token", token_id=token_id)

    # -- audit and lineage -----------------------------------------------------------------
    def query_audit(self, **filters) -> dict:
        """Audit events newest first (admins): principal, action, securable, result, since_ms, limit."""
        return self._read("query_audit", **filters)

    def record_lineage(self, source_type: str, source_name: str, target_type: str, target_name: str,
                       run_id: str | None = None, job_id: str | None = None) -> dict:
        return self._write("record_lineage", source_type=source_type, source_name=source_name,
                           target_type=target_type, target_name=target_name, run_id=run_id, job_id=job_id)

    def get_lineage(self, node_type: str, name: str, direction: str = "upstream", depth: int = 1) -> dict:
        return self._read("get_lineage", node_type=node_type, name=name, direction=direction, depth=depth)

    # -- tracking: MLflow's experiments, runs, metrics and artifacts --------------------------
    def create_experiment(self, name: str, tags: dict | None = None) -> str:
        """Create an experiment (its artifacts live under the platform's artifact root); returns its id."""
        return self._write("create_experiment", name=name, tags=_pairs(tags))["experiment_id"]

    def get_experiment_by_name(self, name: str) -> dict:
        """The experiment named ``name`` (MLflow's shape); NotFound if there is none."""
        return self._read("get_experiment_by_name", experiment_name=name)["experiment"]

    def set_experiment(self, name: str) -> str:
        """The id of experiment ``name``, created if missing (as ``mlflow.set_experiment``)."""
        from lakeray.errors import AlreadyExists, NotFound

        try:
            return self.get_experiment_by_name(name)["experiment_id"]
        except NotFound:
            try:
                return self.create_experiment(name)
            except AlreadyExists:  # created by someone else in between
                return self.get_experiment_by_name(name)["experiment_id"]

    def create_run(self, experiment_id: str, run_name: str | None = None, tags: dict | None = None,
                   parent_run_id: str | None = None) -> dict:
        """Start a RUNNING run; ``parent_run_id`` nests it. Returns the run's ``info`` dict."""
        tags = dict(tags or {})
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        return self._write("create_run", experiment_id=experiment_id, run_name=run_name,
                           tags=_pairs(tags), start_time=_now_ms())["run"]["info"]

    def get_run(self, run_id: str) -> dict:
        """The run: ``{"info", "data": {"metrics", "params", "tags"}, "inputs"}``."""
        return self._read("get_run", run_id=run_id)["run"]

    def log_batch(self, run_id: str, metrics: dict | None = None, params: dict | None = None,
                  tags: dict | None = None, step: int = 0) -> None:
        """Log metrics (at ``step``), params and tags of a run in one transaction."""
        now = _now_ms()
        points = [{"key": k, "value": float(v), "timestamp": now, "step": int(step)} for k, v in (metrics or {}).items()]
        self._write("log_batch", run_id=run_id, metrics=points,
                    params=[{"key": k, "value": str(v)} for k, v in (params or {}).items()], tags=_pairs(tags))

    def log_metric_steps(self, run_id: str, steps: dict[int, dict]) -> None:
        """Log the metrics of several steps (``{step: {key: value}}``) in one transaction."""
        now = _now_ms()
        points = [{"key": k, "value": float(v), "timestamp": now, "step": int(step)}
                  for step, values in steps.items() for k, v in values.items()]
        self._write("log_batch", run_id=run_id, metrics=points, params=[], tags=[])

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Finish a run as FINISHED, FAILED or KILLED."""
        self._write("update_run", run_id=run_id, status=status, end_time=_now_ms())

    def get_metric_history(self, run_id: str, key: str) -> list[dict]:
        """Every point of one metric: ``[{"key", "value", "timestamp", "step"}]``."""
        return self._read("get_metric_history", run_id=run_id, metric_key=key).get("metrics", [])

    def search_runs(self, experiment_ids: list[str], filter: str | None = None, order_by: list[str] | None = None,
                    max_results: int = 1000) -> list[dict]:
        """Runs matching MLflow's filter grammar (first page of up to ``max_results``)."""
        return self._read("search_runs", experiment_ids=experiment_ids, filter=filter, order_by=order_by,
                          max_results=max_results).get("runs", [])

    def log_inputs(self, run_id: str, datasets: list[dict]) -> None:
        """Record datasets as inputs of a run (MLflow's ``[{"dataset": {...}, "tags": [...]}]``)."""
        self._write("log_inputs", run_id=run_id, datasets=datasets)

    def log_artifact(self, run_id: str, local_path: str | Path, artifact_path: str = "") -> list[str]:
        """Upload a file, or a directory's files, into the run's artifacts under ``artifact_path``;
        returns the artifact paths written."""
        local = Path(local_path)
        if not local.exists():
            raise InvalidArgument(f"{local} does not exist")
        base = self.get_run(run_id)["info"]["artifact_uri"]
        prefix = "mlflow-artifacts:/"
        if not base.startswith(prefix):
            raise InvalidArgument(f"run {run_id} has artifact URI {base!r}, not a proxied one")
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        written = []
        for f in files:
            rel = f.name if local.is_file() else f.relative_to(local).as_posix()
            rel = f"{artifact_path.strip('/')}/{rel}" if artifact_path.strip("/") else rel
            with open(f, "rb") as fh:
                self._write("upload_artifact", path=f"{base[len(prefix):]}/{rel}", data=fh)
            written.append(rel)
        return written
