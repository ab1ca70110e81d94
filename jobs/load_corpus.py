"""python -m lakeray.jobs.load_corpus --table main.default.package_docs

Load a real text corpus into a catalog table: the long descriptions (READMEs) that installed
Python packages ship in their METADATA (ray, pyarrow, pandas, fastapi, ...). Run it as a Ray
job too:

    ray job submit --working-dir . -- python -m lakeray.jobs.load_corpus --table main.default.package_docs

The table is created if missing and otherwise overwritten; the write records lineage from
``external:python-package-metadata`` to the table with this job's id.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md

import pyarrow as pa

from lakeray.job_context import job_id

MIN_CHARS = 200  # skip packages whose description is a one-liner


def corpus(min_chars: int = MIN_CHARS) -> pa.Table:
    """One row per installed distribution with a real long description."""
    rows, seen = [], set()
    for dist in md.distributions():
        meta = dist.metadata
        name = (meta.get("Name") or "").lower()
        body = dist.metadata.get_payload() if hasattr(meta, "get_payload") else None
        text = (body or meta.get("Description") or "").strip()
        if not name or name in seen or len(text) < min_chars:
            continue
        seen.add(name)
        rows.append({"package": name, "version": meta.get("Version") or "", "summary": meta.get("Summary") or "",
                     "license": (meta.get("License-Expression") or meta.get("License") or "")[:200],
                     "content_type": meta.get("Description-Content-Type") or "text/plain",
                     "text": text, "num_chars": len(text)})
    rows.sort(key=lambda r: r["package"])
    schema = pa.schema([("package", pa.string()), ("version", pa.string()), ("summary", pa.string()),
                        ("license", pa.string()), ("content_type", pa.string()), ("text", pa.string()),
                        ("num_chars", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


def load(client, table: str) -> dict:
    """Create or overwrite ``table`` with the corpus through ``client``; returns what was written."""
    import lakeray

    data = corpus()
    source = ["external:python-package-metadata"]
    try:
        client.get_table(table)
        out = client.overwrite(table, data, sources=source, job_id=job_id())
    except lakeray.NotFound:
        client.create_table(table, data=data, comment="READMEs of installed Python packages (METADATA)")
        out = {"version": 1, "num_rows": data.num_rows}
        client.record_lineage("external", "python-package-metadata", "table", table, job_id=job_id())
    return {"table": table, **out}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, connect (over Ray by default, or --url) and load."""
    import lakeray

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default="main.default.package_docs")
    p.add_argument("--url", default=None, help="http://host:port to write over HTTP instead of Ray")
    args = p.parse_args(argv)
    client = lakeray.connect(args.url)
    result = load(client, args.table)
    print(f"loaded {result['num_rows']} package descriptions into {result['table']} (version {result['version']})")


if __name__ == "__main__":
    main()
