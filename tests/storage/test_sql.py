"""storage/sql.py on SQLite and PostgreSQL: `among` (an IN list bound as one parameter, also as a
named parameter of a statement built once) and `plain_rows`."""

from __future__ import annotations

from sqlalchemy import select

from lakeray.storage.sql import among, among_param, listed, plain_rows
from lakeray.tracking import tables as t


def _runs(registry, n: int) -> list[str]:
    with registry.db.write() as conn:
        conn.execute(t.experiments.insert(), [{"experiment_id": 9, "name": "among", "artifact_location": "x",
                                               "lifecycle_stage": "active", "creation_time": 0,
                                               "last_update_time": 0, "owner": "admin"}])
        ids = [f"{i:032x}" for i in range(n)]
        conn.execute(t.runs.insert(), [{"run_id": r, "experiment_id": 9, "name": f"r{i}", "user_id": "u",
                                        "status": "RUNNING", "start_time": i, "lifecycle_stage": "active",
                                        "artifact_uri": "x"} for i, r in enumerate(ids)])
    return ids


def test_among_matches_the_listed_values_of_any_length(registry):
    # 40,000 values: past SQLite's 32,766-parameter limit, which an IN list of placeholders hits
    ids = _runs(registry, 40_000)
    runs = t.runs
    with registry.db.read() as conn:
        found = conn.execute(select(runs.c.run_id).where(among(conn, runs.c.run_id, ids))).scalars().all()
        assert sorted(found) == ids
        some = ids[5:8] + ["not-a-run"]
        found = conn.execute(select(runs.c.run_id).where(among(conn, runs.c.run_id, some))).scalars().all()
        assert sorted(found) == ids[5:8]
        assert conn.execute(select(runs.c.run_id).where(among(conn, runs.c.run_id, []))).all() == []


def test_among_takes_integers_and_quotes_nothing_into_the_sql(registry):
    ids = _runs(registry, 3)
    runs, exps = t.runs, t.experiments
    with registry.db.read() as conn:
        assert conn.execute(select(exps.c.name).where(among(conn, exps.c.experiment_id, [9, 10]))).scalars().all() \
            == ["among"]
        assert conn.execute(select(exps.c.name).where(among(conn, exps.c.experiment_id, []))).all() == []
        # values are data, never SQL: quotes, brackets and JSON syntax match nothing and break nothing
        hostile = ["') OR 1=1 --", '"]', "[", "\\", "' || '", ids[0] + "'"]
        assert conn.execute(select(runs.c.run_id).where(among(conn, runs.c.run_id, hostile))).all() == []
        assert conn.execute(select(runs.c.run_id).where(among(conn, runs.c.run_id, [*hostile, ids[1]]))) \
            .scalars().all() == [ids[1]]


def test_among_param_takes_the_list_at_execution(registry):
    ids = _runs(registry, 5)
    runs = t.runs
    dialect = registry.db.dialect
    query = select(runs.c.run_id).where(among_param(dialect, runs.c.run_id, "ids")).order_by(runs.c.run_id)
    with registry.db.read() as conn:  # one statement, several lists
        assert conn.execute(query, {"ids": listed(dialect, ids[:2])}).scalars().all() == ids[:2]
        assert conn.execute(query, {"ids": listed(dialect, [ids[4], "nope"])}).scalars().all() == [ids[4]]
        assert conn.execute(query, {"ids": listed(dialect, [])}).all() == []


def test_plain_rows_are_the_rows_as_tuples(registry):
    ids = _runs(registry, 3)
    runs = t.runs
    query = select(runs.c.run_id, runs.c.name, runs.c.start_time, runs.c.end_time).where(
        runs.c.experiment_id == 9).order_by(runs.c.run_id)
    with registry.db.read() as conn:
        rows = plain_rows(conn, query)
        assert rows == [tuple(r) for r in conn.execute(query).all()]
        assert rows == [(r, f"r{i}", i, None) for i, r in enumerate(ids)]
        assert all(type(row) is tuple for row in rows)
        assert plain_rows(conn, query.where(runs.c.run_id == "none")) == []
