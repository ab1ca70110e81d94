"""SQL building blocks shared by the services' queries."""

from __future__ import annotations

import orjson
from sqlalchemy import BigInteger, Text, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement


def among(conn: Connection, column, values: list) -> ColumnElement:
    """``column IN values`` with the whole list bound as one parameter, of any length.

    SQLAlchemy's own ``in_(list)`` renders one placeholder per value and re-renders the
    statement on every call; for a 1,000-run search page that rendering (and chunking the
    list under SQLite's parameter limit) cost more than the queries. Here the statement is
    the same whatever the list, so it is compiled once: SQLite reads the list from a JSON
    array (``json_each``), PostgreSQL takes an array (``= ANY(...)``). ``column`` holds strings
    or integers.
    """
    if conn.dialect.name == "postgresql":
        kind = BigInteger if issubclass(column.type.python_type, int) else Text
        return column == any_(bindparam(None, list(values), type_=ARRAY(kind)))
    listed = func.json_each(bindparam(None, orjson.dumps(list(values)).decode())).table_valued("value")
    return column.in_(select(listed.c.value))
