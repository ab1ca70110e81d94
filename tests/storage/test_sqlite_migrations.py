"""SQLite-only migrations: migration 7 makes run_metrics a WITHOUT ROWID table, keeping its rows."""

from __future__ import annotations

import sqlite3

from lakeray.storage.db import MIGRATIONS, Database, current_version

ROWID_DDL = ("CREATE TABLE run_metrics (run_id VARCHAR(32) NOT NULL, key VARCHAR(250) NOT NULL, "
             "timestamp BIGINT NOT NULL, step BIGINT NOT NULL, value FLOAT NOT NULL, is_nan BOOLEAN NOT NULL, "
             "PRIMARY KEY (run_id, key, timestamp, step, value, is_nan), "
             "FOREIGN KEY(run_id) REFERENCES runs (run_id))")


def _ddl(path) -> str:
    with sqlite3.connect(path) as raw:
        return raw.execute("SELECT sql FROM sqlite_master WHERE name = 'run_metrics'").fetchone()[0]


def test_new_databases_create_run_metrics_without_rowid(tmp_path):
    Database(f"sqlite:///{tmp_path / 'm.db'}").close()
    assert "WITHOUT ROWID" in _ddl(tmp_path / "m.db").upper()


def test_migration_7_rebuilds_an_older_run_metrics_and_keeps_its_rows(tmp_path):
    path = tmp_path / "m.db"
    Database(f"sqlite:///{path}").close()
    rows = [("r1", "loss", 1000 + i, i, 1.0 / (i + 1), 0) for i in range(50)]
    with sqlite3.connect(path) as raw:  # back to a database left at migration 6
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("DROP TABLE run_metrics")
        raw.execute(ROWID_DDL)
        raw.execute("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                    "creation_time, last_update_time, owner) VALUES (1, 'e', 'file:///x', 'active', 0, 0, 'a')")
        raw.execute("INSERT INTO runs (run_id, experiment_id, name, user_id, status, start_time, lifecycle_stage, "
                    "artifact_uri) VALUES ('r1', 1, 'n', 'u', 'RUNNING', 0, 'active', 'file:///x/r1')")
        raw.executemany("INSERT INTO run_metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
        raw.execute("DELETE FROM schema_version WHERE version = 7")
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
