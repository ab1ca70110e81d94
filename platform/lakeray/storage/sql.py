"""SQL building blocks shared by the services' queries."""

from __future__ import annotations

import orjson
from sqlalchemy import BigInteger, Text, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter, ColumnElement


def among(conn: Connection, column, values: list) -> ColumnElement:
    """``column IN values`` with the whole list bound as one parameter, of any length.

    SQLAlchemy's own ``in_(list)`` renders one placeholder per value and re-renders the
    statement on every call; for a 1,000-run search page that rendering (and chunking the
    list under SQLite's parameter limit) cost more than the queries. Here the statement is
    the same whatever the list, so it is compiled once: SQLite reads the list from a JSON
    array (``json_each``), PostgreSQL takes an array (``= ANY(...)``). ``column`` holds strings
    or integers.
    """
    dialect = conn.dialect.name
    return _member(dialect, column, bindparam(None, listed(dialect, values), type_=_list_type(dialect, column)))


def among_param(dialect: str, column, name: str) -> ColumnElement:
    """``column IN`` the list bound at execution as parameter ``name`` (its value made by
    :func:`listed`): :func:`among` for statements built once and run many times, where
    building the statement would cost more than running it (a search page's queries)."""
    return _member(dialect, column, bindparam(name, type_=_list_type(dialect, column)))


def listed(dialect: str, values) -> str | list:
    """The bound value of a list of strings or integers on ``dialect`` (see :func:`among`)."""
    return list(values) if dialect == "postgresql" else orjson.dumps(list(values)).decode()


def _list_type(dialect: str, column):
    if dialect == "postgresql":
        return ARRAY(BigInteger if issubclass(column.type.python_type, int) else Text)
    return None


def _member(dialect: str, column, values: BindParameter) -> ColumnElement:
    if dialect == "postgresql":
        return column == any_(values)
    return column.in_(select(func.json_each(values).table_valued("value").c.value))


def plain_rows(conn: Connection, statement, parameters: dict | None = None) -> list[tuple]:
    """All rows of a SELECT as the driver's own tuples, for results of thousands of rows.

    SQLAlchemy's Row objects cost several times the fetch itself (a 1,000-run search page:
    ~20 M instructions of 100 M). Nothing is converted on the way, so the columns must be
    ones the driver returns as they are meant (text, integers, floats; booleans come back
    as 0/1 from SQLite).
    """
    result = conn.execute(statement, parameters)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()
