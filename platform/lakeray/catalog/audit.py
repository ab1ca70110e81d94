"""The audit log: every mutating call and every denied call, queryable by admins."""

from __future__ import annotations

import json

from sqlalchemy import BigInteger, literal, select
from sqlalchemy.engine import Connection

from lakeray.errors import InvalidArgument, PermissionDenied
from lakeray.ids import now_ms
from lakeray.storage.db import Database
from lakeray.storage.models import audit_log

RESULTS = ("ok", "denied", "error")
MAX_INT64 = 2**63 - 1


def denial(error: PermissionDenied, action: str, securable_type: str | None,
           securable: str | None) -> PermissionDenied:
    """Label a PermissionDenied with what was refused; the registry audits it after rollback.

    Denials cannot be written inside the transaction that is being refused (it rolls back,
    and a second writer would wait on it), so they travel with the error instead.
    """
    error.audit = (action, securable_type, securable)
    return error


_APPEND = audit_log.insert()


class AuditLog:
    """Appends audit rows; inside the caller's write transaction when one is given."""

    def __init__(self, db: Database):
        self.db = db

    def record(self, principal: str, action: str, securable_type: str | None = None,
               securable: str | None = None, result: str = "ok", detail: dict | None = None,
               conn: Connection | None = None) -> None:
        """Record one event. With ``conn`` it commits or rolls back with the write it describes."""
        row = dict(ts=now_ms(), principal=principal, action=action, securable_type=securable_type,
                   securable=securable, result=result,
                   detail=json.dumps(detail, default=str) if detail else None)
        # Values as parameters, not .values(): the compiled INSERT is then cached (every write
        # records an event, so this is on the hot path of all of them).
        if conn is not None:
            conn.execute(_APPEND, row)
        else:
            with self.db.write() as c:
                c.execute(_APPEND, row)

    def query(self, principal: str | None = None, action: str | None = None,
              securable: str | None = None, result: str | None = None, since_ms: int | None = None,
              until_ms: int | None = None, limit: int = 100, before_id: int | None = None) -> dict:
        """Newest-first events matching the filters; ``next_page_token`` pages further back."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise InvalidArgument("limit must be between 1 and 10000")
        if result is not None and result not in RESULTS:
            raise InvalidArgument(f"result must be one of {', '.join(RESULTS)}")
        # Filters are checked here, not by the database: PostgreSQL refuses a NUL, a string
        # compared with a number, or an integer beyond 64 bits (SQLite the last one too).
        for what, value in (("principal", principal), ("action", action), ("securable", securable)):
            if value is not None and (not isinstance(value, str) or "\x00" in value):
                raise InvalidArgument(f"{what} must be a string without NUL")
        for what, value in (("since_ms", since_ms), ("until_ms", until_ms), ("before_id", before_id)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not -MAX_INT64 <= value <= MAX_INT64):
                raise InvalidArgument(f"{what} must be a 64-bit integer")
        q = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
        for col, value in ((audit_log.c.principal, principal), (audit_log.c.action, action),
                           (audit_log.c.securable, securable), (audit_log.c.result, result)):
            if value is not None:
                q = q.where(col == value)
        if since_ms is not None:
            q = q.where(audit_log.c.ts >= since_ms)
        if until_ms is not None:
            q = q.where(audit_log.c.ts <= until_ms)
        if before_id is not None:
            q = q.where(audit_log.c.id < literal(before_id, BigInteger))  # id is 32-bit on PostgreSQL
        with self.db.read() as conn:
            rows = conn.execute(q).mappings().all()
        events = [dict(r, detail=json.loads(r["detail"]) if r["detail"] else None) for r in rows[:limit]]
        out: dict = {"events": events}
        if len(rows) > limit:
            out["next_page_token"] = str(events[-1]["id"])
        return out
