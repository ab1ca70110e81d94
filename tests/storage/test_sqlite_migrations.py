"""SQLite-only migrations: 7 and 8 make the per-run tracking tables WITHOUT ROWID tables, keeping their rows."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError

from lakeray.storage.db import MIGRATIONS, Database, current_version

ROWID_DDL = ("CREATE TABLE run_metrics (run_id VARCHAR(32) NOT NULL, key VARCHAR(250) NOT NULL, "
             "timestamp BIGINT NOT NULL, step BIGINT NOT NULL, value FLOAT NOT NULL, is_nan BOOLEAN NOT NULL, "
             "PRIMARY KEY (run_id, key, timestamp, step, value, is_nan), "
             "FOREIGN KEY(run_id) REFERENCES runs (run_id))")


#: the per-run tables as migration 3 created them, before 8 (a rowid beside the key).
ROWID_RUN_TABLES = {
    "run_latest_metrics": ("CREATE TABLE run_latest_metrics (run_id VARCHAR(32) NOT NULL, key VARCHAR(250) NOT NULL, "
                           "value FLOAT NOT NULL, timestamp BIGINT NOT NULL, step BIGINT NOT NULL, "
                           "is_nan BOOLEAN NOT NULL, PRIMARY KEY (run_id, key), "
                           "FOREIGN KEY(run_id) REFERENCES runs (run_id))"),
    "run_params": ("CREATE TABLE run_params (run_id VARCHAR(32) NOT NULL, key VARCHAR(250) NOT NULL, "
                   "value TEXT NOT NULL, PRIMARY KEY (run_id, key), FOREIGN KEY(run_id) REFERENCES runs (run_id))"),
    "run_tags": ("CREATE TABLE run_tags (run_id VARCHAR(32) NOT NULL, key VARCHAR(250) NOT NULL, "
                 "value TEXT NOT NULL, PRIMARY KEY (run_id, key), FOREIGN KEY(run_id) REFERENCES runs (run_id))"),
}


def _ddl(path, table: str = "run_metrics") -> str:
    with sqlite3.connect(path) as raw:
        return raw.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]


def _add_run(raw) -> None:
    raw.execute("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                "creation_time, last_update_time, owner) VALUES (1, 'e', 'file:///x', 'active', 0, 0, 'a')")
    raw.execute("INSERT INTO runs (run_id, experiment_id, name, user_id, status, start_time, lifecycle_stage, "
                "artifact_uri) VALUES ('r1', 1, 'n', 'u', 'RUNNING', 0, 'active', 'file:///x/r1')")


def test_new_databases_create_the_per_run_tables_without_rowid(tmp_path):
    Database(f"sqlite:///{tmp_path / 'm.db'}").close()
    for table in ("run_metrics", *ROWID_RUN_TABLES):
        assert "WITHOUT ROWID" in _ddl(tmp_path / "m.db", table).upper(), table


def test_migration_7_rebuilds_an_older_run_metrics_and_keeps_its_rows(tmp_path):
    path = tmp_path / "m.db"
    Database(f"sqlite:///{path}").close()
    rows = [("r1", "loss", 1000 + i, i, 1.0 / (i + 1), 0) for i in range(50)]
    with sqlite3.connect(path) as raw:  # back to a database left at migration 6
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("DROP TABLE run_metrics")
        raw.execute(ROWID_DDL)
        _add_run(raw)
        raw.executemany("INSERT INTO run_metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
        raw.execute("DELETE FROM schema_version WHERE version >= 7")
    assert "WITHOUT ROWID" not in _ddl(path).upper()

    db = Database(f"sqlite:///{path}")
    try:
        with db.read() as conn:
            assert current_version(conn) == MIGRATIONS[-1][0] >= 7
            stored = conn.exec_driver_sql("SELECT run_id, key, timestamp, step, value, is_nan FROM run_metrics "
                                          "ORDER BY step").all()
        assert [tuple(r) for r in stored] == rows
        assert "WITHOUT ROWID" in _ddl(path).upper()
        with db.write() as conn:  # the whole row is still the key: a repeat is skipped
            conn.exec_driver_sql("INSERT INTO run_metrics VALUES ('r1', 'loss', 1000, 0, 1.0, 0) "
                                 "ON CONFLICT DO NOTHING")
            assert conn.exec_driver_sql("SELECT count(*) FROM run_metrics").scalar() == 50
    finally:
        db.close()


def test_migration_8_rebuilds_older_run_tables_and_keeps_their_rows(tmp_path):
    path = tmp_path / "m.db"
    Database(f"sqlite:///{path}").close()
    rows = {
        "run_latest_metrics": [("r1", f"m{i}", i / 3, 1000 + i, i, 0) for i in range(20)],
        "run_params": [("r1", f"p{i}", str(i)) for i in range(20)],
        "run_tags": [("r1", f"t{i}", "v" * i) for i in range(20)],
    }
    with sqlite3.connect(path) as raw:  # back to a database left at migration 7
        raw.execute("PRAGMA foreign_keys=ON")
        _add_run(raw)
        for table, ddl in ROWID_RUN_TABLES.items():
            raw.execute(f"DROP TABLE {table}")
            raw.execute(ddl)
            marks = ", ".join("?" * len(rows[table][0]))
            raw.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[table])
        raw.execute("DROP INDEX ix_runs_experiment_page")
        raw.execute("CREATE INDEX ix_runs_experiment_start ON runs (experiment_id, start_time)")
        raw.execute("DELETE FROM schema_version WHERE version = 8")
    assert all("WITHOUT ROWID" not in _ddl(path, table).upper() for table in ROWID_RUN_TABLES)

    db = Database(f"sqlite:///{path}")
    try:
        with db.read() as conn:
            assert current_version(conn) == MIGRATIONS[-1][0] >= 8
            for table, expected in rows.items():
                stored = conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY key").all()
                assert sorted(tuple(r) for r in stored) == sorted(expected), table
                assert "WITHOUT ROWID" in _ddl(path, table).upper(), table
            assert "WITHOUT ROWID" in _ddl(path).upper()  # migration 7's table is left as it was
            indexes = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index' "
                                           "AND tbl_name = 'runs' AND sql IS NOT NULL").scalars().all()
            assert indexes == ["ix_runs_experiment_page"]
        with db.write() as conn:  # (run_id, key) is still the key, and run_id still a foreign key
            with pytest.raises(IntegrityError):
                conn.exec_driver_sql("INSERT INTO run_params VALUES ('r1', 'p1', 'again')")
        with pytest.raises(IntegrityError), db.write() as conn:
            conn.exec_driver_sql("INSERT INTO run_tags VALUES ('no-such-run', 'k', 'v')")
    finally:
        db.close()


def test_a_default_run_search_reads_runs_in_index_order(tmp_path):
    # search_runs' default order (start_time DESC, run_id) is the page index's order: no sort
    # step, and the filters' per-run lookups are primary key searches.
    from sqlalchemy import select

    from lakeray.tracking import filters, search
    from lakeray.tracking import tables as t

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        source, order = filters.run_order([])
        comparisons = search.parse_filter(search.RUNS, "metrics.score > 0.5 and params.model = 'a'")
        query = (select(t.runs).select_from(source)
                 .where(t.runs.c.experiment_id.in_([1]), t.runs.c.lifecycle_stage.in_(["active"]),
                        *filters.run_conditions(comparisons, "sqlite"))
                 .order_by(*order).limit(1001))
        with db.read() as conn:
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    finally:
        db.close()
    assert "USING INDEX ix_runs_experiment_page" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    assert plan.count("USING PRIMARY KEY") == 2, plan
