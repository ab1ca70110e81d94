"""Lineage: edges from a source securable to a target securable, with the run or job that made them."""

from __future__ import annotations

from sqlalchemy import or_, select

from lakeray.catalog import names
from lakeray.catalog.audit import AuditLog
from lakeray.errors import InvalidArgument
from lakeray.ids import now_ms
from lakeray.principals.service import Caller
from lakeray.storage.db import Database
from lakeray.storage.models import lineage_edges

#: node types an edge may name: catalog securables plus things outside the catalog.
NODE_TYPES = ("table", "volume", "function", "registered_model", "model_version", "vector_index",
              "serving_endpoint", "run", "job", "path", "external")
MAX_DEPTH = 10


def _node(stype: object, name: object) -> tuple[str, str]:
    if stype not in NODE_TYPES:
        raise InvalidArgument(f"lineage node type must be one of {', '.join(NODE_TYPES)}, got {stype!r}")
    if not isinstance(name, str) or not name or len(name) > 800 or "\x00" in name:
        raise InvalidArgument("lineage node name must be a string of 1-800 characters")
    if stype in ("table", "volume", "function", "registered_model", "vector_index"):
        name = ".".join(names.full_name(name, 3, f"{stype} name"))
    return stype, name


def check_edge_args(sources: object, run_id: object, job_id: object) -> None:
    """Validate the lineage arguments of a write before the write happens."""
    if sources is not None:
        if not isinstance(sources, list) or len(sources) > 100:
            raise InvalidArgument("sources must be a list of at most 100 'type:name' strings")
        for source in sources:
            if not isinstance(source, str):
                raise InvalidArgument("each source must be a string like 'table:main.default.t'")
            stype, _, name = source.rpartition(":") if ":" in source else ("table", ":", source)
            _node(stype or "table", name)
    for what, value in (("run_id", run_id), ("job_id", job_id)):
        if value is not None:
            if not value:
                raise InvalidArgument(f"{what} must not be empty")
            names.text(value, what, 128)


class LineageService:
    """Records edges and walks them upstream or downstream."""

    def __init__(self, db: Database, audit: AuditLog):
        self.db = db
        self.audit = audit

    def record(self, caller: Caller, source_type: str, source_name: str, target_type: str,
               target_name: str, run_id: str | None = None, job_id: str | None = None) -> dict:
        """Store one edge source -> target (idempotent: the same edge and run is kept once)."""
        (st, sn), (tt, tn) = _node(source_type, source_name), _node(target_type, target_name)
        check_edge_args(None, run_id, job_id)
        edge = dict(source_type=st, source_name=sn, target_type=tt, target_name=tn, run_id=run_id,
                    job_id=job_id)
        with self.db.write() as conn:
            q = select(lineage_edges.c.id).where(*[lineage_edges.c[k] == v if v is not None
                                                   else lineage_edges.c[k].is_(None) for k, v in edge.items()])
            if conn.execute(q).first() is None:
                conn.execute(lineage_edges.insert().values(**edge, created_at=now_ms(), created_by=caller.name))
                self.audit.record(caller.name, "record_lineage", tt, tn, conn=conn,
                                  detail={"source": f"{st}:{sn}", "run_id": run_id, "job_id": job_id})
        return edge

    def walk(self, caller: Caller, node_type: str, name: str, direction: str = "upstream",
             depth: int = 1) -> dict:
        """Edges reachable from a node going ``upstream`` (sources) or ``downstream`` (targets)."""
        node = _node(node_type, name)
        if direction not in ("upstream", "downstream"):
            raise InvalidArgument("direction must be 'upstream' or 'downstream'")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
            raise InvalidArgument(f"depth must be an integer between 1 and {MAX_DEPTH}")
        near, far = (("target", "source") if direction == "upstream" else ("source", "target"))
        seen = {node}
        frontier = [node]
        edges = []
        with self.db.read() as conn:
            for _ in range(depth):
                if not frontier:
                    break
                cond = or_(*[(lineage_edges.c[f"{near}_type"] == t) & (lineage_edges.c[f"{near}_name"] == n)
                             for t, n in frontier])
                found = conn.execute(select(lineage_edges).where(cond).order_by(lineage_edges.c.id)).mappings()
                frontier = []
                for row in found:
                    edges.append({"source": {"type": row["source_type"], "name": row["source_name"]},
                                  "target": {"type": row["target_type"], "name": row["target_name"]},
                                  "run_id": row["run_id"], "job_id": row["job_id"],
                                  "created_at": row["created_at"], "created_by": row["created_by"]})
                    nxt = (row[f"{far}_type"], row[f"{far}_name"])
                    if nxt not in seen:
                        seen.add(nxt)
                        frontier.append(nxt)
        return {"node": {"type": node[0], "name": node[1]}, "direction": direction, "edges": edges}
