"""python -m lakeray.jobs.batch_infer --source main.default.docs --output main.default.scored (--endpoint NAME | --model main.default.m [--version 1 | --alias champion])

Batch inference: run a serving endpoint or a registered model over every row of a catalog table
with Ray Data, and write the rows with their predictions to a result table. Run it as a Ray job:

    ray job submit --working-dir . -- python -m lakeray.jobs.batch_infer --source main.default.docs \\
        --output main.default.docs_scored --endpoint chat --prompt-column text --max-tokens 64

- ``--model``: the registered MLflow pyfunc version (``--version`` or ``--alias``; EXECUTE on the
  model) is loaded once per Ray Data actor (``--concurrency`` of them, ``--num-cpus`` each) and
  scores batches of ``--batch-size`` rows (the ``--columns`` chosen, default all). The prediction
  column holds the model's output per row.
- ``--endpoint``: each batch goes through the endpoint like any query (CAN_QUERY; the endpoint's
  AI gateway applies: rate limits, guardrails, usage and inference tables). A pyfunc endpoint gets
  one ``dataframe_records`` call per batch; a language model one chat call per row (the
  ``--prompt-column`` text as the user message, or a ``messages`` column of OpenAI messages); an
  embedding model one call per batch of ``--prompt-column`` texts.

The result table (created if missing, otherwise overwritten) has the source's columns plus
``--output-column`` (default ``prediction``; JSON text for structured outputs, a list of floats
for embeddings). It is written in chunks as Ray Data produces them, so memory stays bounded, and
each write records lineage from the source table and the model or endpoint, with this job's id.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from lakeray.errors import InvalidArgument
from lakeray.job_context import job_id as current_job_id

#: rows per table write: bounded driver memory, a handful of table versions
WRITE_ROWS = 50_000
#: CPUs of a read task and of an endpoint-querying actor: they wait on I/O, and a whole CPU each
#: would starve a small cluster whose CPUs the platform's own actors and replicas share
IO_CPUS = 0.25


def _cell(value):
    """One prediction as a column value: numbers and text as they are, anything else as JSON."""
    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, default=str)


def _column(values: list) -> pa.Array:
    """The prediction column: a consistent Arrow type, JSON text when the values are mixed."""
    cells = [_cell(v) for v in values]
    try:
        return pa.array(cells)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([v if isinstance(v, str) or v is None else json.dumps(v) for v in cells], pa.string())


class ModelScorer:
    """A Ray Data actor: one loaded pyfunc model, batches in, predictions out."""

    def __init__(self, path: str, columns: list[str] | None, output: str):
        import mlflow.pyfunc

        self.model, self.columns, self.output = mlflow.pyfunc.load_model(path), columns, output

    def __call__(self, batch: pa.Table) -> pa.Table:
        frame = batch.to_pandas()
        out = self.model.predict(frame[self.columns] if self.columns else frame)
        values = _rows_of(out, batch.num_rows)
        return batch.append_column(self.output, _column(values))


def _rows_of(out, n: int) -> list:
    """A model output as one value per input row."""
    import pandas as pd

    from lakeray.serving.scoring import jsonable

    if isinstance(out, pd.DataFrame):
        values = out.iloc[:, 0].tolist() if out.shape[1] == 1 else out.to_dict(orient="records")
    else:
        values = jsonable(out)
        if isinstance(values, dict):  # columns -> rows
            keys = list(values)
            values = [dict(zip(keys, row, strict=True)) for row in zip(*values.values(), strict=True)]
    if not isinstance(values, list) or len(values) != n:
        raise InvalidArgument(f"the model returned {len(values) if isinstance(values, list) else 1} outputs "
                              f"for {n} rows")
    return values


class EndpointScorer:
    """A Ray Data actor: batches through a serving endpoint (its AI gateway included)."""

    def __init__(self, connect: dict, endpoint: str, kind: str, columns: list[str] | None, output: str,
                 prompt_column: str | None, generation: dict, threads: int):
        import lakeray

        self.client = lakeray.connect(connect["url"], token=connect["token"])
        self.endpoint, self.kind, self.columns, self.output = endpoint, kind, columns, output
        self.prompt_column, self.generation, self.threads = prompt_column, generation, threads

    def _chat(self, row: dict) -> str:
        if self.prompt_column:
            messages = [{"role": "user", "content": str(row[self.prompt_column])}]
        else:
            messages = row["messages"]
        body = {"messages": messages, **self.generation} if self.kind == "chat" else {
            "prompt": str(row[self.prompt_column]), **self.generation}
        out = self.client.serving.query(self.endpoint, body)
        choice = out["choices"][0]
        return choice["message"]["content"] if self.kind == "chat" else choice["text"]

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        if self.kind in ("chat", "completion"):
            with ThreadPoolExecutor(self.threads) as pool:  # the replica batches concurrent calls
                values = list(pool.map(self._chat, rows))
        elif self.kind == "embedding":
            out = self.client.serving.query(self.endpoint, {"input": [str(r[self.prompt_column]) for r in rows]})
            values = [d["embedding"] for d in sorted(out["data"], key=lambda d: d["index"])]
        else:
            records = [{k: r[k] for k in (self.columns or r)} for r in rows]
            values = _rows_of(self.client.serving.query(self.endpoint, {"dataframe_records": records})["predictions"],
                              len(rows))
        column = pa.array(values, pa.list_(pa.float32())) if self.kind == "embedding" else _column(values)
        return batch.append_column(self.output, column)


def _version_dir(view: dict) -> str:
    """The local directory of a model version (its managed storage, read in place)."""
    from urllib.parse import unquote, urlparse

    location = view["storage_location"]
    if not location.startswith("file://"):
        raise InvalidArgument(f"model version {view['version']} is stored at {location}, which this job "
                              "cannot read in place")
    return unquote(urlparse(location).path)


def _model_path(client, model: str, version: int | None, alias: str | None) -> tuple[str, str]:
    """The local directory of the model version to load, and its lineage node name."""
    view = client.get_model_version_by_alias(model, alias) if alias else client.get_model_version(model, version)
    return _version_dir(view), f"{model}/{view['version']}"


def run(client, source: str, output: str, endpoint: str | None = None, model: str | None = None,
        version: int | None = None, alias: str | None = None, columns: list[str] | None = None,
        output_column: str = "prediction", prompt_column: str | None = None, batch_size: int = 64,
        concurrency: int = 1, generation: dict | None = None, connect: dict | None = None,
        num_cpus: float = 1.0) -> dict:
    """Score ``source`` with the endpoint or model version and write ``output``; returns what was
    written. ``connect`` ({"url", "token"}) is how the Ray Data actors reach the platform;
    ``num_cpus`` is what each model-loading actor reserves."""

    if (endpoint is None) == (model is None):
        raise InvalidArgument("give exactly one of --endpoint or --model")
    if model is not None and (version is None) == (alias is None):
        raise InvalidArgument("with --model, give exactly one of --version or --alias")
    if batch_size < 1 or concurrency < 1 or num_cpus <= 0:
        raise InvalidArgument("--batch-size, --concurrency and --num-cpus must be positive")
    described = client.describe_table(source)
    names = [c["name"] for c in described["columns"]]
    if output_column in names:
        raise InvalidArgument(f"--output-column {output_column!r} is already a column of {source}")
    for col in (columns or []) + ([prompt_column] if prompt_column else []):
        if col not in names:
            raise InvalidArgument(f"{source} has no column {col!r} (it has {', '.join(names)})")
    dataset = client.read_dataset(source, num_cpus=IO_CPUS)
    if model is not None:
        path, node = _model_path(client, model, version, alias)
        scored = dataset.map_batches(ModelScorer, fn_constructor_args=(path, columns, output_column),
                                     batch_size=batch_size, batch_format="pyarrow", concurrency=concurrency,
                                     num_cpus=num_cpus)
        lineage = [f"table:{source}", f"model_version:{node}"]
    else:
        info = client.serving.get(endpoint)
        routes = (info.get("config") or {}).get("served_entities") or []
        if info["state"]["ready"] != "READY" or not routes:
            raise InvalidArgument(f"serving endpoint {endpoint} is not ready")
        kind = _endpoint_kind(client, info)
        if kind in ("chat", "completion", "embedding") and not prompt_column and not (
                kind == "chat" and "messages" in names):
            raise InvalidArgument(f"endpoint {endpoint} serves a {kind} model: give --prompt-column"
                                  + (" (or a messages column)" if kind == "chat" else ""))
        scored = dataset.map_batches(
            EndpointScorer, fn_constructor_args=(connect, endpoint, kind, columns, output_column, prompt_column,
                                                 generation or {}, 8),
            batch_size=batch_size, batch_format="pyarrow", concurrency=concurrency, num_cpus=IO_CPUS)
        lineage = [f"table:{source}", f"serving_endpoint:{endpoint}"]
    return _write(client, scored, output, lineage)


def _endpoint_kind(client, info: dict) -> str:
    """What the endpoint's first served entity is: pyfunc, chat, completion or embedding."""
    from lakeray.serving.replica import model_kind

    entity = info["config"]["served_entities"][0]
    if "external_model" in entity:
        from lakeray.serving.external import TASKS

        return TASKS[entity["external_model"]["task"]]
    name, version = entity["entity_name"], str(entity["entity_version"])
    view = (client.get_model_version(name, int(version)) if version.isdigit()
            else client.get_model_version_by_alias(name, version))
    return model_kind(_version_dir(view))


def _write(client, scored, output: str, sources: list[str]) -> dict:
    """Stream the scored rows into ``output``: created by the first chunk if missing, otherwise
    overwritten by it; later chunks append. Every write records lineage."""
    import lakeray

    job_id = current_job_id()
    written, version, first = 0, None, True
    pending: list[pa.Table] = []

    def flush(chunk: pa.Table) -> None:
        nonlocal first, version
        if first:
            try:
                client.get_table(output)
                version = client.overwrite(output, chunk, sources=sources, job_id=job_id)["version"]
            except lakeray.NotFound:
                client.create_table(output, data=chunk, comment=f"Batch inference over {sources[0][6:]}")
                for source in sources:
                    stype, _, name = source.partition(":")
                    client.record_lineage(stype, name, "table", output, job_id=job_id)
                version = 1
            first = False
        else:
            version = client.append(output, chunk, sources=sources, job_id=job_id)["version"]

    for batch in scored.iter_batches(batch_format="pyarrow", batch_size=None):
        pending.append(batch)
        if sum(t.num_rows for t in pending) >= WRITE_ROWS:
            chunk = pa.concat_tables(pending)
            flush(chunk)
            written += chunk.num_rows
            pending = []
    if pending or first:
        chunk = pa.concat_tables(pending) if pending else None
        if chunk is None:
            raise InvalidArgument("the source table is empty: nothing to score")
        flush(chunk)
        written += chunk.num_rows
    return {"table": output, "num_rows": written, "version": version}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, connect (over Ray by default, or --url) and score."""
    import lakeray
    from lakeray.client.credentials import resolve_token
    from lakeray.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="the table to score (catalog.schema.table)")
    p.add_argument("--output", required=True, help="the result table (created or overwritten)")
    p.add_argument("--endpoint", help="a serving endpoint to query")
    p.add_argument("--model", help="a registered model (catalog.schema.model) to load")
    p.add_argument("--version", type=int, help="the model version (with --model)")
    p.add_argument("--alias", help="the model alias (with --model)")
    p.add_argument("--columns", help="comma-separated input columns (default: all)")
    p.add_argument("--prompt-column", help="the text column for language and embedding models")
    p.add_argument("--output-column", default="prediction")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=1, help="Ray Data actors scoring in parallel")
    p.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per model-loading actor (with --model)")
    p.add_argument("--max-tokens", type=int, help="for language models")
    p.add_argument("--temperature", type=float, help="for language models")
    p.add_argument("--url", default=None, help="http://host:port to work over HTTP instead of Ray")
    args = p.parse_args(argv)
    token = resolve_token(None, Settings.from_env())
    client = lakeray.connect(args.url, token=token)
    generation = {k: v for k, v in (("max_tokens", args.max_tokens), ("temperature", args.temperature))
                  if v is not None}
    result = run(client, args.source, args.output, endpoint=args.endpoint, model=args.model,
                 version=args.version, alias=args.alias,
                 columns=args.columns.split(",") if args.columns else None, output_column=args.output_column,
                 prompt_column=args.prompt_column, batch_size=args.batch_size, concurrency=args.concurrency,
                 generation=generation, connect={"url": args.url, "token": token}, num_cpus=args.num_cpus)
    print(f"wrote {result['num_rows']} scored rows into {result['table']} (version {result['version']})")


if __name__ == "__main__":
    main()
