"""Shared fixtures: an in-process registry on a temp SQLite (no Ray), and one real platform
per test session (``lakeray up`` through the CLI, then this process joins its Ray cluster)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


#: Where the PostgreSQL variant of the registry tests runs, e.g.
#: ``postgresql://lakeray:lakeray@127.0.0.1/lakeray``; unset, that variant is skipped.
PG_ENV = "LAKERAY_TEST_DATABASE_URL"


@pytest.fixture
def pg_url():
    """A URL of an empty PostgreSQL schema of its own (dropped afterwards): one per test."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL backend not tested: set {PG_ENV}=postgresql://user:password@host/db")
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from lakeray.storage.db import normalise_url

    url = make_url(normalise_url(base))
    schema = f"lakeray_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    # libpq's ``options`` puts every connection of the test into the new schema only.
    yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql("SET lock_timeout = '10s'")
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path):
    """Settings on a temp home; the registry tests run once per metadata backend."""
    from lakeray.settings import Settings

    home = str(tmp_path / "home")
    if request.param == "sqlite":
        return Settings(home=home)
    return Settings(home=home, database_url=request.getfixturevalue("pg_url"))


@pytest.fixture
def registry(settings):
    """A bootstrapped Registry without Ray; admin is ``admin``."""
    from lakeray.registry import Registry

    reg = Registry(settings, function_runner=None)
    reg.bootstrap("admin")
    yield reg
    reg.db.close()


@pytest.fixture
def admin(registry):
    return registry.principals.caller("admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform:
    """A platform started with the real CLI in its own LAKERAY_HOME."""

    def __init__(self, home: Path, port: int):
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "LAKERAY_HOME": str(home), "LAKERAY_PORT": str(port)}
        self.env.pop("LAKERAY_TOKEN", None)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lakeray.cli", *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)

    @property
    def settings(self):
        from lakeray.settings import Settings

        return Settings.from_env(self.env)

    @property
    def token(self) -> str:
        import json

        return json.loads((self.home / "credentials").read_text())["token"]

    def join(self) -> None:
        """Connect this test process to the platform's Ray cluster as a driver."""
        import ray

        if not ray.is_initialized():
            ray.init(address="auto", namespace="lakeray", log_to_driver=False, logging_level="ERROR")

    def up(self) -> None:
        out = self.cli("up")
        assert out.returncode == 0, out.stdout + out.stderr
        self.join()

    def down(self) -> None:
        import ray

        ray.shutdown()
        out = self.cli("down")
        assert out.returncode == 0, out.stdout + out.stderr

    def client(self, via: str = "http", token: str | None = None):
        import lakeray

        return lakeray.connect(self.url if via == "http" else None, token=token or self.token,
                               settings=self.settings)


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """One running platform for the whole session (a real `lakeray up`)."""
    plat = Platform(tmp_path_factory.mktemp("platform") / "home", free_port())
    plat.up()
    yield plat
    plat.down()
