"""Bulk inserts: the SQLite fast path (plain tuples, no SQLAlchemy binding) writes exactly
what the general path writes, skips duplicates, and is taken only for tables whose column
types need no bind processing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, create_engine, select

from lakeray.tracking import writes


@pytest.mark.parametrize("count", [3, writes.BULK_ROWS + 10], ids=["general", "bulk"])
def test_insert_writes_the_rows_and_skips_duplicates(count):
    meta = MetaData()
    plain = Table("plain", meta, Column("k", String(10), primary_key=True), Column("n", Integer))
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    rows = [(f"k{i}", i) for i in range(count)]
    with engine.begin() as conn:
        writes.insert_ignoring_duplicates(conn, plain, ("k", "n"), rows)
        writes.insert_ignoring_duplicates(conn, plain, ("k", "n"), rows + [("new", -1)] * count)
        got = conn.execute(select(plain.c.k, plain.c.n).order_by(plain.c.n)).all()
    assert [tuple(r) for r in got] == [("new", -1)] + rows


@pytest.mark.parametrize("count", [3, writes.BULK_ROWS + 10], ids=["general", "bulk"])
def test_columns_named_out_of_the_tables_order_land_in_their_columns(count):
    meta = MetaData()
    plain = Table("plain", meta, Column("k", String(10), primary_key=True), Column("n", Integer),
                  Column("s", String(10)))
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    with engine.begin() as conn:
        writes.insert_ignoring_duplicates(conn, plain, ("s", "n", "k"), [(f"s{i}", i, f"k{i}") for i in range(count)])
        got = conn.execute(select(plain.c.k, plain.c.n, plain.c.s).order_by(plain.c.n)).all()
    assert [tuple(r) for r in got] == [(f"k{i}", i, f"s{i}") for i in range(count)]


def test_tables_with_processed_types_take_the_general_path():
    meta = MetaData()
    typed = Table("typed", meta, Column("k", String(10), primary_key=True), Column("doc", JSON))
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    assert not writes._plain_columns(typed)
    with engine.begin() as conn:
        writes.insert_ignoring_duplicates(conn, typed, ("k", "doc"), [(f"k{i}", {"i": i})
                                                                      for i in range(writes.BULK_ROWS)])
        raw = conn.exec_driver_sql("SELECT doc FROM typed WHERE k = 'k3'").scalar()
    assert json.loads(raw) == {"i": 3}  # the JSON type's bind processing ran
