"""Volumes: the Files API round trip, path confinement, privileges, audit and drop."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from lakeray.catalog.volumes import VolumeService, parse_path
from lakeray.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)

V = "/Volumes/main/default/v"


@pytest.fixture
def env(registry, tmp_path):
    """The shared test registry (SQLite and PostgreSQL); a small-capped VolumeService over its
    catalog; volume main.default.v; users reader, writer, nobody."""
    ps, cs, audit = registry.principals, registry.catalog, registry.audit
    admin = ps.caller("admin")
    vs = VolumeService(cs, audit, tmp_path / "volumes", max_file_bytes=1024)
    for who in ("reader", "writer", "nobody"):
        ps.create_principal(admin, who)
    cs.update_permissions(admin, "catalog", "main", [
        {"principal": p, "add": ["USE CATALOG", "USE SCHEMA"]} for p in ("reader", "writer", "nobody")])
    info = vs.create_volume(admin, "main", "default", "v", comment="files")
    cs.update_permissions(admin, "volume", "main.default.v", [
        {"principal": "reader", "add": ["READ VOLUME"]},
        {"principal": "writer", "add": ["READ VOLUME", "WRITE VOLUME"]}])
    canary = tmp_path / "canary.txt"
    canary.write_text("untouched")
    yield SimpleNamespace(vs=vs, cs=cs, audit=audit, admin=admin, info=info, canary=canary, tmp=tmp_path,
                          root=tmp_path / "volumes", vdir=tmp_path / "volumes" / info["volume_id"],
                          reader=ps.caller("reader"), writer=ps.caller("writer"), nobody=ps.caller("nobody"))


def _tree(path: Path) -> dict:
    """Every file and directory under ``path`` with its contents (the metadata DB left out)."""
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in path.rglob("*")
            if not p.name.startswith("m.db")}


def test_create_volume_assigns_managed_storage(env):
    assert env.info["volume_type"] == "MANAGED" and env.info["full_name"] == "main.default.v"
    assert env.info["storage_location"] == env.vdir.resolve().as_uri()
    assert env.vdir.is_dir()


@pytest.mark.parametrize("kwargs", [{"volume_type": "EXTERNAL"}, {"storage_location": "file:///tmp/x"},
                                    {"volume_type": "CACHED"}, {"volume_type": None}])
def test_only_managed_volumes(env, kwargs):
    with pytest.raises(InvalidArgument, match="MANAGED"):
        env.vs.create_volume(env.admin, "main", "default", "w", **kwargs)


def test_create_volume_checks_name_parts(env):
    with pytest.raises(InvalidArgument):
        env.vs.create_volume(env.admin, "main.default", "x", "w")


def test_round_trip(env):
    vs, w = env.vs, env.writer
    vs.upload(w, f"{V}/a.txt", b"abc")
    vs.upload(w, f"{V}/dir/sub/b.bin", bytearray(b"\x00\x01"))
    assert vs.download(env.reader, f"{V}/a.txt") == b"abc"
    assert vs.download(env.reader, f"{V}/dir/sub/b.bin") == b"\x00\x01"
    listing = vs.list_directory(env.reader, V)["contents"]
    assert [(e["name"], e["is_directory"]) for e in listing] == [("a.txt", False), ("dir", True)]
    entry = listing[0]
    assert entry["path"] == f"{V}/a.txt" and entry["file_size"] == 3 and entry["last_modified"] > 0
    assert vs.list_directory(env.reader, f"{V}/dir/")["contents"][0]["path"] == f"{V}/dir/sub/"
    meta = vs.get_metadata(env.reader, f"{V}/a.txt")
    assert meta["file_size"] == 3 and meta["is_directory"] is False
    assert vs.get_metadata(env.reader, f"{V}/dir")["is_directory"] is True
    vs.upload(w, f"{V}/a.txt", b"new")  # overwrite by default
    assert vs.download(w, f"{V}/a.txt") == b"new"
    with pytest.raises(AlreadyExists):
        vs.upload(w, f"{V}/a.txt", b"x", overwrite=False)
    vs.upload(w, f"{V}/c.txt", b"c", overwrite=False)
    vs.delete_file(w, f"{V}/a.txt")
    with pytest.raises(NotFound):
        vs.download(w, f"{V}/a.txt")
    with pytest.raises(NotFound):
        vs.delete_file(w, f"{V}/a.txt")
    assert sorted(os.listdir(env.vdir)) == ["c.txt", "dir"]  # no temp files left behind


def test_upload_is_case_insensitive_on_names_only(env):
    env.vs.upload(env.writer, "/Volumes/MAIN/Default/V/File.TXT", b"x")
    assert env.vs.download(env.reader, f"{V}/File.TXT") == b"x"
    with pytest.raises(NotFound):
        env.vs.download(env.reader, f"{V}/file.txt")


def test_directories(env):
    vs, w = env.vs, env.writer
    vs.create_directory(w, f"{V}/d1/d2")
    vs.create_directory(w, f"{V}/d1/d2/")  # idempotent, trailing slash accepted
    vs.upload(w, f"{V}/d1/d2/f", b"1")
    with pytest.raises(Conflict, match="not empty"):
        vs.delete_directory(w, f"{V}/d1")
    with pytest.raises(InvalidArgument):
        vs.delete_file(w, f"{V}/d1")
    with pytest.raises(InvalidArgument):
        vs.delete_directory(w, f"{V}/d1/d2/f")
    with pytest.raises(Conflict, match="is a file"):
        vs.upload(w, f"{V}/d1/d2/f/g", b"1")
    with pytest.raises(Conflict, match="is a directory"):
        vs.upload(w, f"{V}/d1", b"1")
    with pytest.raises(InvalidArgument, match="root"):
        vs.delete_directory(w, V, recursive=True)
    with pytest.raises(InvalidArgument):
        vs.download(w, f"{V}/d1")
    with pytest.raises(InvalidArgument):
        vs.list_directory(w, f"{V}/d1/d2/f")
    with pytest.raises(NotFound):
        vs.list_directory(w, f"{V}/missing")
    vs.delete_directory(w, f"{V}/d1", recursive=True)
    assert vs.list_directory(w, V) == {"contents": []}
    vs.create_directory(w, f"{V}/empty")
    vs.delete_directory(w, f"{V}/empty")
    with pytest.raises(NotFound):
        vs.delete_directory(w, f"{V}/empty")


def test_list_pages(env):
    for i in range(5):
        env.vs.upload(env.writer, f"{V}/f{i}", b"")
    seen, token = [], None
    while True:
        page = env.vs.list_directory(env.reader, V, page_size=2, page_token=token)
        seen += [e["name"] for e in page["contents"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == [f"f{i}" for i in range(5)]
    with pytest.raises(InvalidArgument):
        env.vs.list_directory(env.reader, V, page_token="!!not base64!!")


def test_size_cap(env):
    env.vs.upload(env.writer, f"{V}/ok", b"x" * 1024)
    with pytest.raises(PayloadTooLarge):
        env.vs.upload(env.writer, f"{V}/big", b"x" * 1025)
    with pytest.raises(InvalidArgument):
        env.vs.upload(env.writer, f"{V}/str", "text")


TRAVERSALS = [
    "../x", "a/../../x", "..", ".", "./x", "a/./b", "%2e%2e/x", "%2E%2E%2Fx", "%252e%252e", "x%2fy",
    "..\\x", "a\\b", "a\x00b", "a\nb", "a\x7fb", "/etc/passwd", "//x", "a//b", "~/x", "~root",
    "a" * 10_000, "b" * 256, "é" * 128, "a/" * 2100 + "x", "\u202etxt.exe", "a\u200bb",
    "\uff0e\uff0e/x", "\u2024\u2024/x", "x\ufe68y", "\udc80", ".lakeray-tmp-x",
]
BAD_PREFIXES = ["/volumes/main/default/v/x", "Volumes/main/default/v/x", "/Volumes/main/default",
                "/Volumes/main/../v/x", "/Volumes/main/default/v%2e/x", "/etc/passwd", "",
                "file:///Volumes/main/default/v/x", "/Volumes/main/default/v.w/x"]


@pytest.mark.parametrize("rel", TRAVERSALS)
def test_traversal_is_rejected_and_writes_nothing(env, rel):
    (env.vdir / "keep.txt").write_bytes(b"k")
    before_vol, before_tmp = _tree(env.vdir), _tree(env.tmp)
    path = f"{V}/{rel}"
    vs, w = env.vs, env.writer
    for call in (lambda: vs.upload(w, path, b"pwned"), lambda: vs.download(w, path),
                 lambda: vs.list_directory(w, path), lambda: vs.create_directory(w, path),
                 lambda: vs.delete_file(w, path), lambda: vs.delete_directory(w, path, recursive=True),
                 lambda: vs.get_metadata(w, path)):
        with pytest.raises(InvalidArgument):
            call()
    assert env.canary.read_text() == "untouched"
    assert _tree(env.vdir) == before_vol and _tree(env.tmp) == before_tmp


@pytest.mark.parametrize("path", BAD_PREFIXES)
def test_malformed_volume_paths(env, path):
    with pytest.raises(InvalidArgument):
        env.vs.upload(env.writer, path, b"x")
    with pytest.raises(InvalidArgument):
        env.vs.list_directory(env.writer, path)


def test_non_string_paths(env):
    for bad in (None, 5, b"/Volumes/main/default/v/x", ["a"]):
        with pytest.raises(InvalidArgument):
            env.vs.download(env.reader, bad)


def test_unicode_names_are_allowed_and_distinct(env):
    """Decision: ordinary Unicode names are allowed (as in Databricks); ``ａ.txt`` is not ``a.txt``."""
    env.vs.upload(env.writer, f"{V}/ａ.txt", b"wide")
    env.vs.upload(env.writer, f"{V}/a.txt", b"narrow")
    env.vs.upload(env.writer, f"{V}/données/日本.txt", b"jp")
    assert env.vs.download(env.reader, f"{V}/ａ.txt") == b"wide"
    assert env.vs.download(env.reader, f"{V}/a.txt") == b"narrow"
    assert parse_path(f"{V}/données/日本.txt").parts == ("données", "日本.txt")
    assert sorted(os.listdir(env.vdir)) == sorted(["ａ.txt", "a.txt", "données"])


def test_symlinks_are_not_followed(env):
    outside = env.tmp / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    os.symlink(outside, env.vdir / "link")
    os.symlink(env.canary, env.vdir / "file_link")
    vs, w = env.vs, env.writer
    for call in (lambda: vs.upload(w, f"{V}/link/secret", b"pwned"), lambda: vs.download(w, f"{V}/link/secret"),
                 lambda: vs.download(w, f"{V}/file_link"), lambda: vs.upload(w, f"{V}/file_link", b"pwned"),
                 lambda: vs.list_directory(w, f"{V}/link"), lambda: vs.delete_file(w, f"{V}/file_link"),
                 lambda: vs.delete_directory(w, f"{V}/link", recursive=True)):
        with pytest.raises(InvalidArgument, match="symbolic link"):
            call()
    assert (outside / "secret").read_text() == "s" and env.canary.read_text() == "untouched"
    assert vs.list_directory(w, V) == {"contents": []}  # links are not listed


def test_privileges(env):
    vs = env.vs
    vs.upload(env.writer, f"{V}/a.txt", b"abc")
    for caller in (env.nobody,):
        with pytest.raises(PermissionDenied, match="READ VOLUME"):
            vs.download(caller, f"{V}/a.txt")
        with pytest.raises(PermissionDenied):
            vs.list_directory(caller, V)
        with pytest.raises(PermissionDenied):
            vs.get_metadata(caller, f"{V}/a.txt")
    r = env.reader
    assert vs.download(r, f"{V}/a.txt") == b"abc"
    for call in (lambda: vs.upload(r, f"{V}/b.txt", b"x"), lambda: vs.delete_file(r, f"{V}/a.txt"),
                 lambda: vs.create_directory(r, f"{V}/d"), lambda: vs.delete_directory(r, f"{V}/d")):
        with pytest.raises(PermissionDenied, match="WRITE VOLUME"):
            call()
    assert sorted(os.listdir(env.vdir)) == ["a.txt"]
    env.cs.update_permissions(env.admin, "catalog", "main", [{"principal": "reader", "remove": ["USE SCHEMA"]}])
    with pytest.raises(PermissionDenied, match="USE SCHEMA"):
        vs.download(r, f"{V}/a.txt")
    with pytest.raises(NotFound):
        vs.download(env.admin, "/Volumes/main/default/nope/a.txt")


def test_mutations_are_audited(env):
    w = env.writer
    env.vs.upload(w, f"{V}/d/a.txt", b"1")
    env.vs.create_directory(w, f"{V}/e")
    env.vs.delete_file(w, f"{V}/d/a.txt")
    env.vs.delete_directory(w, f"{V}/e")
    events = env.audit.query(principal="writer")["events"]
    got = [(e["action"], e["securable"], e["detail"]["path"]) for e in reversed(events)]
    assert got == [("volume_upload", "main.default.v", "d/a.txt"), ("volume_create_directory", "main.default.v", "e"),
                   ("volume_delete_file", "main.default.v", "d/a.txt"),
                   ("volume_delete_directory", "main.default.v", "e")]


def test_drop_volume_removes_its_directory(env):
    env.vs.upload(env.writer, f"{V}/a/b.txt", b"1")
    other = env.vs.create_volume(env.admin, "main", "default", "w")
    env.cs.delete(env.admin, "volume", "main.default.v")
    assert not env.vdir.exists()
    assert (env.root / other["volume_id"]).is_dir()
    with pytest.raises(NotFound):
        env.vs.download(env.admin, f"{V}/a/b.txt")
    env.cs.create(env.admin, "schema", "main.s2")
    inner = env.vs.create_volume(env.admin, "main", "s2", "x")
    env.cs.delete(env.admin, "schema", "main.s2", force=True)
    assert not (env.root / inner["volume_id"]).exists()
    assert env.canary.read_text() == "untouched" and env.root.is_dir()
