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


@pytest.fixture
def settings(tmp_path):
    from lakeray.settings import Settings

    return Settings(home=str(tmp_path / "home"))


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
