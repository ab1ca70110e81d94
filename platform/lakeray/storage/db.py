"""The metadata database: engine creation, SQLite tuning and versioned migrations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Connection, Engine

from lakeray.errors import InvalidArgument
from lakeray.storage import models


def _migration_1(conn: Connection) -> None:
    models.metadata.create_all(conn, tables=models.V1_TABLES)


#: Ordered schema migrations; append, never edit an applied one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _migration_1),
]


def _tune_sqlite(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; busy_timeout makes a second writer wait for
    # the lock instead of failing with "database is locked". synchronous=NORMAL in WAL mode
    # keeps every committed transaction across a process kill (what an actor restart is).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` (SQLite file or PostgreSQL) and bring its schema up to date."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        event.listen(engine, "connect", _tune_sqlite)

        @event.listens_for(engine, "connect")
        def _no_implicit_begin(dbapi_conn, _record):
            # pysqlite's own implicit BEGIN must be off for the explicit ones below.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction
            # that upgrades from read to write fails at once with "database is locked"
            # instead of waiting out busy_timeout.
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    elif url.startswith(("postgresql", "postgres")):
        engine = create_engine(url.replace("postgres://", "postgresql://", 1), pool_pre_ping=True)
    else:
        raise InvalidArgument(f"unsupported database URL scheme in {url.split(':', 1)[0]!r}")
    migrate(engine)
    return engine


class Database:
    """The metadata DB with two kinds of transaction: :meth:`read` and :meth:`write`."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot under WAL)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed when the block exits without error, else rolled back."""
        with self.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def current_version(conn: Connection) -> int:
    """The highest applied migration (0 on an empty database)."""
    if not conn.dialect.has_table(conn, "schema_version"):
        return 0
    row = conn.execute(select(models.schema_version.c.version).order_by(
        models.schema_version.c.version.desc())).first()
    return row[0] if row else 0


def migrate(engine: Engine) -> int:
    """Apply pending migrations in one transaction each; returns the resulting version."""
    with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            # Parallel first starts must not race each other's DDL.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7007001)")
        models.schema_version.create(conn, checkfirst=True)
        version = current_version(conn)
        for number, step in MIGRATIONS:
            if number > version:
                step(conn)
                conn.execute(models.schema_version.insert().values(
                    version=number, applied_at=int(time.time() * 1000)))
                version = number
    return version
