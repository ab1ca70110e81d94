"""The metadata database: engine creation, SQLite tuning and versioned migrations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import create_engine, event, select, update
from sqlalchemy.engine import Connection, Engine

from lakeray.errors import InvalidArgument
from lakeray.storage import models

#: How long a writer waits for the write lock before failing (SQLite busy_timeout, PostgreSQL
#: lock_timeout).
LOCK_TIMEOUT_S = 60
#: Key of the PostgreSQL advisory lock that serialises writers and migrations.
PG_WRITE_LOCK = 7007001


def _migration_1(conn: Connection) -> None:
    models.metadata.create_all(conn, tables=models.V1_TABLES)


def _migration_2(conn: Connection) -> None:
    # Lists are ordered and paged by name. PostgreSQL compares text with the database's
    # locale, and a language locale (en_US.UTF-8, ICU) ignores punctuation ('a_b' < 'a1',
    # 'a-b' < 'a+b'); the C collation compares bytes, as SQLite and Python's sorted() do.
    if conn.dialect.name != "postgresql":
        return
    for table, column, length in (("securables", "name", 255), ("principals", "name", 255)):
        conn.exec_driver_sql(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE VARCHAR({length}) COLLATE "C"')


def _migration_3(conn: Connection) -> None:
    from lakeray.tracking.tables import TRACKING_TABLES

    models.metadata.create_all(conn, tables=TRACKING_TABLES)


def _migration_4(conn: Connection) -> None:
    from lakeray.model_registry.tables import REGISTRY_TABLES

    models.metadata.create_all(conn, tables=REGISTRY_TABLES)


def _migration_5(conn: Connection) -> None:
    from lakeray.serving.tables import SERVING_TABLES

    models.metadata.create_all(conn, tables=SERVING_TABLES)


def _migration_6(conn: Connection) -> None:
    from lakeray.secrets.tables import SECRET_TABLES

    models.metadata.create_all(conn, tables=SECRET_TABLES)


def _without_rowid(conn: Connection, *tables) -> None:
    """On SQLite, rebuild each of ``tables`` (declared ``sqlite_with_rowid=False``) that still
    has a rowid as a WITHOUT ROWID table, keeping its rows: a rename, a fresh table and a copy,
    inside the migration's transaction. Nothing references these tables, so the rename
    rewrites no other table's foreign keys."""
    if conn.dialect.name != "sqlite":
        return
    for table in tables:
        ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                   (table.name,)).scalar()
        if ddl is None or "WITHOUT ROWID" in ddl.upper():
            continue
        conn.exec_driver_sql(f"ALTER TABLE {table.name} RENAME TO {table.name}_rowid")
        table.create(conn)
        columns = ", ".join(f'"{c.name}"' for c in table.columns)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {table.name}_rowid")
        conn.exec_driver_sql(f"DROP TABLE {table.name}_rowid")


def _migration_7(conn: Connection) -> None:
    # run_metrics keyed by its whole row, without a rowid beside it (see tracking/tables.py).
    from lakeray.tracking.tables import run_metrics

    _without_rowid(conn, run_metrics)


def _migration_8(conn: Connection) -> None:
    # Shaped for search_runs (see tracking/tables.py). The per-run tables it looks up by
    # (run_id, key), clustered on that key on SQLite: a lookup is one B-tree search instead
    # of an index search and a table fetch. Runs are paged from an index in search order.
    from lakeray.tracking.tables import run_latest_metrics, run_params, run_tags, runs

    _without_rowid(conn, run_latest_metrics, run_params, run_tags)
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_runs_experiment_start")
    for index in runs.indexes:
        index.create(conn, checkfirst=True)


#: Ordered schema migrations; append, never edit an applied one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _migration_1),
    (2, _migration_2),
    (3, _migration_3),
    (4, _migration_4),
    (5, _migration_5),
    (6, _migration_6),
    (7, _migration_7),
    (8, _migration_8),
]


def _tune_sqlite(dbapi_conn, sync: bool) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; busy_timeout makes a second writer wait for
    # the lock instead of failing with "database is locked". synchronous=NORMAL in WAL mode
    # keeps every committed transaction across a process kill (what an actor restart is);
    # FULL (durability "power") also syncs each commit, for power cuts and OS crashes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={LOCK_TIMEOUT_S * 1000}")
    cur.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def normalise_url(url: str) -> str:
    """``url`` as SQLAlchemy should get it: a plain ``postgresql://`` (or ``postgres://``) URL,
    as libpq and most hosting services print it, is sent to the psycopg 3 driver (the
    ``postgres`` extra); a URL naming its driver (``postgresql+psycopg2://``) is kept."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def _tune_postgresql(dbapi_conn, _record) -> None:
    # Like SQLite's busy_timeout: a writer waits up to 60 s for the write lock (or any row or
    # table lock) and then fails, instead of waiting forever.
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    cur = dbapi_conn.cursor()
    cur.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
    cur.close()
    dbapi_conn.autocommit = autocommit


def make_engine(url: str, sync: bool = False) -> Engine:
    """Create an engine for ``url`` (SQLite file or PostgreSQL) and bring its schema up to date.

    ``sync``: SQLite syncs every commit to disk (see ``Settings.durability``).
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": LOCK_TIMEOUT_S})
        event.listen(engine, "connect", lambda dbapi_conn, _record: _tune_sqlite(dbapi_conn, sync))

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
            # On the driver's connection: SQLAlchemy's exec_driver_sql would cost more than
            # the rest of opening and committing the transaction (~0.1 ms of every request).
            conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    elif url.startswith("postgresql"):
        engine = create_engine(url, pool_pre_ping=True)
        event.listen(engine, "connect", _tune_postgresql)
    else:
        raise InvalidArgument(f"unsupported database URL scheme in {url.split(':', 1)[0]!r}")
    migrate(engine)
    return engine


class AlreadyApplied(Exception):
    """Raised inside a claimed write when its request id was already applied (a retry)."""


@dataclass
class Claim:
    """A request id that the next committed write transaction records as applied."""

    request_id: str
    operation: str
    principal: str
    recorded: bool = False


class Database:
    """The metadata DB with two kinds of transaction: :meth:`read` and :meth:`write`.

    Both backends give the same guarantees, which the services rely on: a read sees one
    consistent snapshot, and write transactions run one at a time, so a check followed by
    an insert ("does this name exist?") cannot race another writer. SQLite gets this from
    WAL and ``BEGIN IMMEDIATE``; PostgreSQL from REPEATABLE READ read-only reads and a
    transaction-scoped advisory lock every writer takes first.
    """

    def __init__(self, url: str, sync: bool = False):
        self.url = url
        self.engine = make_engine(url, sync)
        self.dialect = self.engine.dialect.name
        self._claim: ContextVar[Claim | None] = ContextVar(f"lakeray_claim_{id(self)}", default=None)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot)."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed when the block exits without error, else rolled back."""
        with self.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            lock_writes(conn)
            claim = self._claim.get()
            if claim is not None and not claim.recorded:
                # Under the write lock: a retry (or a racing duplicate) of an applied request
                # stops here, before it writes anything.
                if conn.execute(select(models.idempotency.c.request_id).where(
                        models.idempotency.c.request_id == claim.request_id)).first() is not None:
                    raise AlreadyApplied(claim.request_id)
            yield conn
            if claim is not None and not claim.recorded:
                # Same transaction as the write itself: applied and recorded, or neither.
                conn.execute(models.idempotency.insert().values(
                    request_id=claim.request_id, operation=claim.operation, principal=claim.principal,
                    result="", created_at=int(time.time() * 1000)))
                claim.recorded = True

    @contextmanager
    def claim(self, request_id: str, operation: str, principal: str) -> Iterator[Claim]:
        """Make the first write transaction in this block record ``request_id`` as applied.

        A later call with the same id finds the record (see :class:`AlreadyApplied`); the
        operation's result can be stored afterwards with :meth:`store_result`.
        """
        claim = Claim(request_id, operation, principal)
        token = self._claim.set(claim)
        try:
            yield claim
        finally:
            self._claim.reset(token)

    def applied(self, request_id: str):
        """The idempotency row of ``request_id`` (operation, principal, result) or None."""
        with self.read() as conn:
            return conn.execute(select(models.idempotency).where(
                models.idempotency.c.request_id == request_id)).first()

    def store_result(self, request_id: str, result_json: str) -> None:
        """Remember what an applied request returned, for replies to its retries."""
        with self.write() as conn:
            conn.execute(update(models.idempotency).where(models.idempotency.c.request_id == request_id)
                         .values(result=result_json))

    def close(self) -> None:
        self.engine.dispose()


def lock_writes(conn: Connection) -> None:
    """On PostgreSQL, wait for the database-wide write lock (held until the transaction ends).

    SQLite's ``BEGIN IMMEDIATE`` already did the same; READ COMMITTED alone would let two
    writers both pass an existence check and one fail on a unique constraint (a 500).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")


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
        # Parallel first starts must not race each other's DDL, nor a migration a writer.
        lock_writes(conn)
        models.schema_version.create(conn, checkfirst=True)
        version = current_version(conn)
        for number, step in MIGRATIONS:
            if number > version:
                step(conn)
                conn.execute(models.schema_version.insert().values(
                    version=number, applied_at=int(time.time() * 1000)))
                version = number
    return version
