"""PostgreSQL as the metadata DB, and what must hold on both backends.

Tests taking ``pg_url`` need ``LAKERAY_TEST_DATABASE_URL`` (each gets an empty schema of its
own); tests taking ``registry`` run once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from lakeray.errors import AlreadyExists, InvalidArgument
from lakeray.registry import Registry
from lakeray.settings import Settings
from lakeray.storage import models
from lakeray.storage.db import MIGRATIONS, Database, current_version, migrate, normalise_url

LATEST = MIGRATIONS[-1][0]


@pytest.mark.parametrize(("given", "sent"), [
    ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
    ("postgres://u:p@h/db?sslmode=require", "postgresql+psycopg://u:p@h/db?sslmode=require"),
    ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:////tmp/m.db", "sqlite:////tmp/m.db"),
])
def test_plain_postgresql_urls_go_to_psycopg(given, sent):
    assert normalise_url(given) == sent


# -- PostgreSQL only -------------------------------------------------------------------------
def test_platform_runs_on_postgresql(pg_url, tmp_path):
    settings = Settings(home=str(tmp_path / "home"), database_url=pg_url)
    reg = Registry(settings, function_runner=None)
    try:
        assert reg.db.engine.dialect.name == "postgresql"
        reg.bootstrap("admin")
        reg.bootstrap("admin")  # idempotent: nothing doubled, nothing failed
        admin = reg.principals.caller("admin")
        assert [c["name"] for c in reg.call_as(admin, "list_catalogs")["catalogs"]] == ["main", "system"]
        assert len(reg.principals.list_principals(admin)) == 1

        rows = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["ada", "bob"]})
        reg.call_as(admin, "create_table", full_name="main.default.people", data=rows)
        assert reg.call_as(admin, "read_table", full_name="main.default.people").to_pylist() == rows.to_pylist()
        assert reg.call_as(admin, "get_table", full_name="main.default.people")["table_type"] == "MANAGED"
        assert reg.call_as(admin, "query_audit", action="create_table")["events"][0]["result"] == "ok"
        assert migrate(reg.db.engine) == LATEST
    finally:
        reg.db.close()

    # A restart (a second registry on the same URL) sees everything and migrates nothing.
    again = Registry(settings, function_runner=None)
    try:
        again.bootstrap("admin")
        admin = again.principals.caller("admin")
        assert again.call_as(admin, "read_table", full_name="main.default.people").num_rows == 2
        with again.db.read() as conn:
            assert current_version(conn) == LATEST
            assert conn.execute(select(func.count()).select_from(models.schema_version)).scalar() == LATEST
    finally:
        again.db.close()


def test_concurrent_first_starts_migrate_once(pg_url):
    """Several processes starting on one empty database at once: none fails, DDL runs once."""
    n = 6
    barrier = threading.Barrier(n)
    dbs: list[Database] = []
    errors: list[BaseException] = []

    def start():
        try:
            barrier.wait()
            dbs.append(Database(pg_url))
        except BaseException as e:  # noqa: B036 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert len(dbs) == n
        with dbs[0].read() as conn:
            versions = conn.execute(select(models.schema_version.c.version)).scalars().all()
        assert sorted(versions) == [number for number, _ in MIGRATIONS]
    finally:
        for db in dbs:
            db.close()


def test_upgrade_from_version_1(pg_url):
    """A database left at migration 1 is brought up to date (and its names then sort bytewise)."""
    from sqlalchemy import create_engine

    engine = create_engine(normalise_url(pg_url))
    with engine.begin() as conn:
        models.schema_version.create(conn)
        MIGRATIONS[0][1](conn)
        conn.execute(models.schema_version.insert().values(version=1, applied_at=0))
    engine.dispose()
    db = Database(pg_url)
    try:
        with db.read() as conn:
            assert current_version(conn) == LATEST
            collations = conn.exec_driver_sql(
                "SELECT table_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND column_name = 'name' "
                "AND table_name IN ('securables', 'principals')").all()
        assert sorted(collations) == [("principals", "C"), ("securables", "C")]
    finally:
        db.close()


def test_reads_are_read_only_snapshots_on_postgresql(pg_url):
    """A read sees one snapshot (as under SQLite's WAL) and cannot write by mistake."""
    from sqlalchemy.exc import DBAPIError

    db = Database(pg_url)
    count = select(func.count()).select_from(models.audit_log)
    try:
        with db.read() as conn:
            before = conn.execute(count).scalar()
            with db.write() as other:
                other.execute(models.audit_log.insert().values(ts=0, principal="t", action="a", result="ok"))
            assert conn.execute(count).scalar() == before
        with db.read() as conn:
            assert conn.execute(count).scalar() == before + 1
        with pytest.raises(DBAPIError, match="read-only"), db.read() as conn:
            conn.execute(models.audit_log.insert().values(ts=0, principal="t", action="a", result="ok"))
    finally:
        db.close()


# -- both backends (through the registry fixture) ---------------------------------------------
def test_names_sort_bytewise(registry, admin):
    """Lists and pages follow Python's sorted() whatever the database's locale."""
    for name in ["a_b", "ab", "a1", "aa", "b_", "z9", "_x"]:
        registry.call_as(admin, "create_catalog", name=name)
    listed = [c["name"] for c in registry.call_as(admin, "list_catalogs")["catalogs"]]
    assert listed == sorted(listed)
    paged, token = [], None
    while True:
        page = registry.call_as(admin, "list_catalogs", max_results=2, page_token=token)
        paged += [c["name"] for c in page["catalogs"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert paged == listed
    for name in ["a.b@x.com", "ab@x.com", "a-b", "a+b", "ab"]:
        registry.call_as(admin, "create_principal", name=name)
    principals = [p["name"] for p in registry.call_as(admin, "list_principals")]
    assert principals == sorted(principals)


def test_concurrent_creates_of_one_name_are_already_exists(registry, admin):
    """Writers are serialised: racing creates give one success and AlreadyExists, never a 500."""
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def create():
        barrier.wait()
        try:
            registry.call_as(admin, "create_catalog", name="race")
            outcomes.append("ok")
        except AlreadyExists:
            outcomes.append("exists")
        except BaseException as e:  # noqa: B036 - reported below
            outcomes.append(repr(e))

    threads = [threading.Thread(target=create) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["exists"] * (n - 1) + ["ok"]


def test_a_writer_waits_for_the_one_in_progress(registry, admin):
    """While a write transaction is open, another writer waits instead of racing it."""
    done = threading.Event()

    def create():
        registry.call_as(admin, "create_catalog", name="second")
        done.set()

    with registry.db.write() as conn:
        conn.execute(models.audit_log.insert().values(ts=0, principal="t", action="hold", result="ok"))
        writer = threading.Thread(target=create)
        writer.start()
        assert not done.wait(0.5)
    writer.join(30)
    assert done.is_set()
    assert registry.call_as(admin, "get_catalog", full_name="second")["name"] == "second"


@pytest.mark.parametrize(("op", "kwargs"), [
    ("create_principal", {"name": "u", "display_name": "x" * 10_000}),
    ("create_principal", {"name": "u", "display_name": "a\x00b"}),
    ("update_principal", {"name": "admin", "display_name": "x" * 10_000}),
    ("create_token", {"comment": "a\x00b"}),
    ("revoke_token", {"token_id": "a\x00"}),
    ("create_catalog", {"name": "c", "request_id": "a\x00b"}),
    ("record_lineage", {"source_type": "run", "source_name": "r", "target_type": "job",
                        "target_name": "j", "run_id": "a\x00"}),
    ("query_audit", {"principal": "a\x00"}),
    ("query_audit", {"principal": 5}),
    ("query_audit", {"since_ms": "yesterday"}),
    ("query_audit", {"before_id": 2**64}),
])
def test_text_the_database_would_refuse_is_invalid_argument(registry, admin, op, kwargs):
    """Over-long text, NUL and mistyped filters are 400s on both backends, not DB errors."""
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, op, **kwargs)


def test_audit_paging_with_large_ids(registry, admin):
    out = registry.call_as(admin, "query_audit", before_id=2**40, since_ms=-(2**62), until_ms=2**62)
    assert out["events"]
