"""Bulk inserts: the SQLite fast path (plain tuples, no SQLAlchemy binding) writes exactly
what the general path writes, skips duplicates, and is taken only for tables whose column
types need no bind processing."""

from __future__ import annotations

import json

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, create_engine, select

from lakeray.tracking import writes


def test_bulk_insert_matches_the_general_path_and_skips_duplicates():
    meta = MetaData()
    plain = Table("plain", meta, Column("k", String(10), primary_key=True), Column("n", Integer))
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    rows = [{"k": f"k{i}", "n": i} for i in range(writes.BULK_ROWS + 10)]
    with engine.begin() as conn:
        writes.insert_ignoring_duplicates(conn, plain, rows)
        writes.insert_ignoring_duplicates(conn, plain, rows + [{"k": "new", "n": -1}] * writes.BULK_ROWS)
        got = conn.execute(select(plain.c.k, plain.c.n).order_by(plain.c.n)).all()
    assert [tuple(r) for r in got] == [("new", -1)] + [(r["k"], r["n"]) for r in rows]


def test_tables_with_processed_types_take_the_general_path():
    meta = MetaData()
    typed = Table("typed", meta, Column("k", String(10), primary_key=True), Column("doc", JSON))
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    assert not writes._plain_columns(typed)
    with engine.begin() as conn:
        writes.insert_ignoring_duplicates(conn, typed, [{"k": f"k{i}", "doc": {"i": i}}
                                                        for i in range(writes.BULK_ROWS)])
        raw = conn.exec_driver_sql("SELECT doc FROM typed WHERE k = 'k3'").scalar()
    assert json.loads(raw) == {"i": 3}  # the JSON type's bind processing ran
