"""LAKERAY_DURABILITY: "process" (default) writes without fsync, "power" fsyncs commits, files
and directories. Both keep writes atomic; the kill-and-restart tests cover "process"."""

from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import text

from lakeray.errors import InvalidArgument
from lakeray.registry import Registry
from lakeray.settings import Settings
from lakeray.storage.db import Database
from lakeray.tracking.artifacts import ArtifactStore


def test_the_setting():
    assert Settings.from_env({"LAKERAY_HOME": "/tmp/x"}).durability == "process"
    assert not Settings.from_env({"LAKERAY_HOME": "/tmp/x"}).sync_writes
    power = Settings.from_env({"LAKERAY_HOME": "/tmp/x", "LAKERAY_DURABILITY": "Power"})
    assert power.durability == "power" and power.sync_writes
    with pytest.raises(InvalidArgument, match="LAKERAY_DURABILITY must be one of process, power"):
        Settings.from_env({"LAKERAY_HOME": "/tmp/x", "LAKERAY_DURABILITY": "always"})


@pytest.mark.parametrize("sync, level", [(False, 1), (True, 2)])  # NORMAL, FULL
def test_sqlite_commits_are_synced_only_for_power(tmp_path, sync, level):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}", sync=sync)
    try:
        with db.read() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == level
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        db.close()


@pytest.fixture
def fsyncs(monkeypatch):
    """Every fsync as 'dir' or 'file'."""
    seen: list[str] = []
    real = os.fsync

    def counting(fd):
        seen.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return seen


def _artifact_writes(store: ArtifactStore) -> None:
    run = store.location_uri("experiments", "1", "r1", "artifacts")
    store.upload(run, "model/MLmodel", b"flavors: {}\n")
    store.upload(run, "model/weights.bin", b"\0" * 10)
    version = store.location_uri("models", "m1", "versions", "1")
    assert sorted(p.name for p in store.copy_tree(run, version, "model").iterdir()) == ["MLmodel", "weights.bin"]
    assert store.read_bytes(version, "weights.bin") == b"\0" * 10
    assert store.delete(run, "model/weights.bin")


def test_artifact_store_without_sync_never_fsyncs(tmp_path, fsyncs):
    _artifact_writes(ArtifactStore(tmp_path / "artifacts"))
    assert fsyncs == []


def test_artifact_store_with_sync_fsyncs_files_and_directories(tmp_path, fsyncs):
    _artifact_writes(ArtifactStore(tmp_path / "artifacts", sync=True))
    assert fsyncs.count("file") == 2  # the two uploads' contents (the version's files are links)
    assert fsyncs.count("dir") >= 4  # new names: upload parents, the copied tree, its parent, a delete


@pytest.mark.parametrize("durability", ["process", "power"])
def test_the_platform_passes_the_setting_down(tmp_path, fsyncs, durability):
    settings = Settings(home=str(tmp_path / "home"), durability=durability)
    reg = Registry(settings, function_runner=None)
    try:
        reg.bootstrap("admin")
        admin = reg.principals.caller("admin")
        assert reg.store.sync is reg.volumes.sync is settings.sync_writes
        reg.volumes.create_volume(admin, "main", "default", "v")
        fsyncs.clear()
        reg.volumes.upload(admin, "/Volumes/main/default/v/a.txt", b"hello")
        assert reg.volumes.download(admin, "/Volumes/main/default/v/a.txt") == b"hello"
        assert sorted(fsyncs) == (["dir", "file"] if durability == "power" else [])
        with reg.db.read() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == (2 if durability == "power" else 1)
    finally:
        reg.db.close()
