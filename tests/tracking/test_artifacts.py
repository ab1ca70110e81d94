"""Artifact storage: MLflow's artifact CVE history as a test list, plus the ordinary paths.

Every bad input must raise InvalidArgument and change nothing: a canary outside the root stays
as it was and a snapshot of the whole temp tree (names, kinds, contents, mtimes) is identical
before and after the call.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from lakeray.errors import Conflict, InvalidArgument, NotFound, PayloadTooLarge
from lakeray.tracking.artifacts import (
    CHUNK,
    TMP_PREFIX,
    ArtifactStore,
    check_model_source,
    parse_relative_path,
)

RUN = "0123456789abcdef0123456789abcdef"
MODEL = "m-" + "fedcba9876543210" * 2


def snapshot(base: Path, dir_mtimes: bool = True) -> dict:
    """Everything under ``base``: kind, content digest or link target, and mtimes.

    A streamed upload that fails part-way has had a temp file in its directory, which moves the
    directory's mtime; those checks pass ``dir_mtimes=False``. Refused requests never get that far.
    """
    out = {}
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if path.is_symlink():
                out[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                out[str(path)] = ("dir", st.st_mtime_ns if dir_mtimes else None)
            elif not stat.S_ISREG(st.st_mode):  # a FIFO: reading it here would block the test
                out[str(path)] = ("special", st.st_mode, st.st_mtime_ns)
            else:
                out[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns)
    out[str(base)] = ("dir", base.lstat().st_mtime_ns if dir_mtimes else None)
    return out


@pytest.fixture
def env(tmp_path):
    base = tmp_path / "home dir"  # a space: location URIs are percent-encoded once
    store = ArtifactStore(base / "artifacts")
    canary = tmp_path / "canary.txt"
    canary.write_bytes(b"canary")
    (base / "secret").write_bytes(b"secret")  # right next to the root
    evil = base / "artifacts-evil"  # shares the root's name as a prefix
    evil.mkdir()
    (evil / "x").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root:x:0:0")
    loc = store.location_uri("experiments", "3", RUN, "artifacts")
    store.upload(loc, "existing/file.txt", b"keep")
    dst = store.location_uri("models", "m1", "versions", "1")
    return SimpleNamespace(tmp=tmp_path, store=store, root=store.root, loc=loc, dst=dst, canary=canary,
                           outside=outside, evil=evil, root_uri=store.root.as_uri())


def assert_refused(env, call):
    before = snapshot(env.tmp)
    with pytest.raises(InvalidArgument):
        call()
    assert env.canary.read_bytes() == b"canary"
    assert snapshot(env.tmp) == before


# -- client paths ------------------------------------------------------------------------------
BAD_PATHS = [
    "../canary.txt", "../../../../canary.txt", "a/../../x", "a/..", "..", ".", "./a", "a/./b",
    "existing/../../..", "..%2fcanary.txt", "..%2F..%2Fcanary.txt", "%2e%2e%2fcanary.txt", "%2e%2e/x",
    "%2E%2E", "%252e%252e%252fcanary.txt", "a%2fb", "a%5c..%5c..", "a%00b", "artifact%00",
    "a%3f/../..", "a%23/../..", "\\..\\..\\canary.txt", "..\\canary.txt", "a\\b", "/etc/passwd", "/",
    "//server/share/x", "C:\\x", "C:/x", "c:", "\\\\server\\share\\x", "#/../canary.txt",
    "a#/../../x", "a?x=1", "a?/../../x", "a/..;/canary.txt", "a;b", ";/../x", "artifact\x00",
    "a\x00/../x", "a\nb", "a\rb", "a\tb", "a\x7f", "\x1b[31m", "a\u202eb", "a\u200bb", "\ud800",
    "~/x", "a/~root/x", "~", "a//b", "x" * 256, "é" * 128, "a/" * 2049, "\uff0e\uff0e/x",
    "\u2024\u2024/x", "a\uff0fb", f"{TMP_PREFIX}abc", "x/" + TMP_PREFIX,
]


def _call(op, env, path):
    s = env.store
    return {
        "upload": lambda: s.upload(env.loc, path, b"pwned"),
        "download": lambda: list(s.download(env.loc, path)),
        "read_bytes": lambda: s.read_bytes(env.loc, path),
        "list": lambda: s.list(env.loc, path),
        "delete": lambda: s.delete(env.loc, path),
        "exists": lambda: s.exists(env.loc, path),
        "resolve": lambda: s.resolve(env.loc, path),
        "copy_tree": lambda: s.copy_tree(env.loc, env.dst, path),
    }[op]


OPS = ["upload", "download", "read_bytes", "list", "delete", "exists", "resolve", "copy_tree"]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_paths_refused_and_nothing_changes(env, op, path):
    assert_refused(env, _call(op, env, path))


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_paths_refused_as_text(path):
    with pytest.raises(InvalidArgument):
        parse_relative_path(path)


@pytest.mark.parametrize("path", [None, 1, b"a", ["a"]])
def test_non_string_paths_refused(env, path):
    for op in OPS:
        assert_refused(env, _call(op, env, path))


@pytest.mark.parametrize("path, parts", [
    ("", ()), ("a", ("a",)), ("a/b/", ("a", "b")), ("a/b//", ("a", "b")), ("données/é.txt", ("données", "é.txt")),
    ("100% done.txt", ("100% done.txt",)), ("a b/c:d", ("a b", "c:d")), ("a..b/.hidden", ("a..b", ".hidden")),
    ("x" * 255, ("x" * 255,)),
])
def test_good_relative_paths(path, parts):
    assert parse_relative_path(path) == parts


def test_error_messages_say_what_was_wrong():
    for path, words in [("../x", "'..'"), ("%2e%2e/x", "percent-encoded"), ("a\\b", "backslash"),
                        ("/etc/passwd", "absolute"), ("a#b", "fragment"), ("a?b", "query"),
                        ("a;b", "parameters"), ("a\x00", "NUL"), ("~/x", "'~'"), ("a//b", "empty")]:
        with pytest.raises(InvalidArgument, match=words):
            parse_relative_path(path)


# -- locations ---------------------------------------------------------------------------------
BAD_LOCATIONS = {
    "root itself": lambda e: e.root_uri,
    "root slash": lambda e: e.root_uri + "/",
    "parent of root": lambda e: e.root.parent.as_uri(),
    "etc": lambda e: "file:///etc",
    "dotdot": lambda e: e.root_uri + "/../secret",
    "dotdot inside": lambda e: e.root_uri + "/experiments/../../secret",
    "encoded dotdot": lambda e: e.root_uri + "/%2e%2e/secret",
    "encoded slash dotdot": lambda e: e.root_uri + "/x%2f..%2f..%2fsecret",
    "double encoded": lambda e: e.root_uri + "/%252e%252e/secret",
    "encoded backslash": lambda e: e.root_uri + "/x%5c..%5c..%5csecret",
    "encoded nul": lambda e: e.root_uri + "/a%00",
    "encoded fragment": lambda e: e.root_uri + "/a%23/../..",
    "encoded query": lambda e: e.root_uri + "/a%3f/../..",
    "bad utf8": lambda e: e.root_uri + "/%ff",
    "prefix sibling": lambda e: e.evil.as_uri(),
    "host": lambda e: "file://localhost" + str(e.root / "x"),
    "ip host": lambda e: "file://123.456.789.123" + str(e.root / "x"),
    "nul host": lambda e: "file://%00" + str(e.root / "x"),
    "no slashes": lambda e: "file:" + str(e.root / "x"),
    "one slash": lambda e: "file:/" + str(e.root / "x"),
    "four slashes": lambda e: "file:///" + str(e.root / "x"),
    "upper scheme": lambda e: "FILE://" + str(e.root / "x"),
    "bare path": lambda e: str(e.root / "x"),
    "relative": lambda e: "experiments/3",
    "empty": lambda e: "",
    "not a string": lambda e: None,
    "http fragment": lambda e: "http:///#/../../../etc/",
    "http": lambda e: "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts",
    "s3": lambda e: "s3://bucket/x",
    "mlflow-artifacts": lambda e: "mlflow-artifacts:/3/x",
    "dbfs query": lambda e: "dbfs:/x?y=../..",
    "fragment": lambda e: e.root_uri + "/x#/../..",
    "query": lambda e: e.root_uri + "/x?/../..",
    "semicolon": lambda e: e.root_uri + "/x;/../..",
    "backslash": lambda e: e.root_uri + "/x\\..\\..",
    "empty segment": lambda e: e.root_uri + "//x",
    "tilde": lambda e: e.root_uri + "/~x",
    "control": lambda e: e.root_uri + "/x\n",
}


@pytest.mark.parametrize("name", list(BAD_LOCATIONS))
def test_bad_locations_refused_and_nothing_changes(env, name):
    bad = BAD_LOCATIONS[name](env)
    s = env.store
    for call in [lambda: s.location_path(bad), lambda: s.upload(bad, "f", b"pwned"),
                 lambda: s.read_bytes(bad, "secret"), lambda: list(s.download(bad, "x")),
                 lambda: s.list(bad), lambda: s.list(bad, "x"), lambda: s.delete(bad),
                 lambda: s.delete(bad, "x"), lambda: s.exists(bad), lambda: s.copy_tree(bad, env.dst),
                 lambda: s.copy_tree(env.loc, bad), lambda: check_model_source(bad, s)]:
        assert_refused(env, call)


def test_location_uris_round_trip(env):
    assert "%20" in env.loc  # the root's space is encoded once and decoded once
    path = env.store.location_path(env.loc)
    assert path == env.root / "experiments" / "3" / RUN / "artifacts"
    assert env.store.location_path(env.loc + "/") == path
    assert env.store.resolve(env.loc, "a/b") == path / "a" / "b"
    for bad in [(), ("..",), ("a%2e",), ("100%",), ("/etc",)]:
        with pytest.raises(InvalidArgument):
            env.store.location_uri(*bad)


# -- symbolic links ----------------------------------------------------------------------------
def test_symlinks_inside_a_location_are_never_followed(env):
    loc_dir = env.store.location_path(env.loc)
    (loc_dir / "out").symlink_to(env.outside, target_is_directory=True)
    (loc_dir / "pw").symlink_to(env.outside / "passwd")
    (loc_dir / "canary").symlink_to(env.canary)
    (loc_dir / "dangling").symlink_to(env.tmp / "nowhere")
    s = env.store
    for call in [lambda: s.upload(env.loc, "out/new", b"pwned"), lambda: s.upload(env.loc, "canary", b"pwned"),
                 lambda: s.upload(env.loc, "dangling", b"pwned"), lambda: s.upload(env.loc, "dangling/x", b"p"),
                 lambda: s.read_bytes(env.loc, "out/passwd"), lambda: s.read_bytes(env.loc, "pw"),
                 lambda: list(s.download(env.loc, "canary")), lambda: s.list(env.loc, "out"),
                 lambda: s.delete(env.loc, "out"), lambda: s.delete(env.loc, "out/passwd"),
                 lambda: s.delete(env.loc, "canary"), lambda: s.exists(env.loc, "out/passwd"),
                 lambda: s.copy_tree(env.loc, env.dst, "out"), lambda: s.copy_tree(env.loc, env.dst)]:
        assert_refused(env, call)
    # Listing the location shows neither the links nor anything behind them.
    assert [e["path"] for e in s.list(env.loc)] == ["existing"]
    assert (env.outside / "passwd").read_bytes() == b"root:x:0:0"


@pytest.mark.parametrize("parts", [("experiments", "9", RUN, "artifacts"), ("linked",), ("linked", "x")])
def test_symlinked_location_or_parent_is_refused(env, parts):
    (env.root / "experiments" / "9").symlink_to(env.outside, target_is_directory=True)
    (env.root / "linked").symlink_to(env.outside, target_is_directory=True)
    s = env.store
    loc = s.location_uri(*parts)
    for call in [lambda: s.location_path(loc), lambda: s.upload(loc, "f", b"pwned"),
                 lambda: s.read_bytes(loc, "passwd"), lambda: s.list(loc), lambda: s.delete(loc),
                 lambda: s.exists(loc), lambda: s.copy_tree(env.loc, loc), lambda: s.copy_tree(loc, env.dst),
                 lambda: check_model_source(loc + "/m", s)]:
        assert_refused(env, call)


def test_a_symlinked_root_is_resolved_once(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    store = ArtifactStore(tmp_path / "alias")
    loc = store.location_uri("x")
    store.upload(loc, "f", b"1")
    assert (real / "x" / "f").read_bytes() == b"1" and loc.startswith(real.as_uri())


# -- model version sources ---------------------------------------------------------------------
BAD_SOURCES = [
    "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/../../../../",
    "https://example.com/model", "http:///#/../../../etc/", "s3://bucket/models/../../other",
    "s3:/my_bucket/models/path/../../other/path", "dbfs:/x", f"dbfs:/{RUN}/artifacts/a%3f/../..",
    "dbfs:/databricks/mlflow?x=../..", "mlflow-artifacts:/1/2/artifacts",
    "mlflow-artifacts://host:5000/../../../../", "mlflow-artifacts://host:5000/..%2f..%2f..%2f",
    "ftp://host/x", "gs://b/x", "hdfs:///x", "", "models", "/models/artifacts/../../../",
    "relative/path", "file://host/path", "file://123.456.789.123/p", "file://%00/dir", "file:/etc",
    "file:///etc/passwd", "file://path/to/../../../../some/where", "FILE:///etc", "C:\\x", "C:/x",
    "\\\\server\\share\\x", "{root}", "{root}/", "{root}/../etc", "{root}/../secret", "{root}/%2e%2e/x",
    "{root}/%252e%252e/x", "{root}/a%00", "{root}/a#/../..", "{root}/a?b", "{root}/a;b",
    "file://localhost{root_path}/a", "file:{root_path}/a", "{evil}/x",
    f"runs:/{RUN}/../../canary.txt", f"runs:/{RUN}/..%2f..%2fcanary.txt", f"runs:/{RUN}/artifact%00",
    f"runs:/{RUN}/a%3f/../..", f"runs:/{RUN}/%252e%252e%252f", f"runs:/{RUN}/\\..\\..\\f",
    f"runs:/{RUN}//etc/passwd", f"runs:/{RUN}/a#/../..", f"runs:/{RUN}/a;b", f"runs:/{RUN}/a?b",
    f"runs://{RUN}/model", f"runs:{RUN}/model", "runs:/not-a-run/model", f"runs:/{RUN.upper()}/model",
    f"runs:/{RUN}0/model", "runs:/", "runs:", f"runs:/{RUN}/model\x00", f"runs:/{RUN}/~/x",
    "models:/name/1", "models:/main.default.churn@champion", "models:/m-123", f"models:/{MODEL}/../x",
    f"models:/{MODEL}/", f"models://{MODEL}", f"models:{MODEL}", f"models:/{MODEL}?x", f"models:/{MODEL}#x",
    "models:/m-" + "G" * 32, None, 7, b"runs:/x",
]


@pytest.mark.parametrize("source", BAD_SOURCES)
def test_bad_model_sources_refused(env, source):
    if isinstance(source, str):
        source = source.format(root=env.root_uri, root_path=env.root, evil=env.evil.as_uri())
    assert_refused(env, lambda: check_model_source(source, env.store))
    assert_refused(env, lambda: check_model_source(source, env.store, lambda run_id: env.loc))


def test_good_model_sources(env):
    s = env.store
    assert check_model_source(f"runs:/{RUN}/model", s) == {"kind": "run", "run_id": RUN, "path": "model"}
    assert check_model_source(f"runs:/{RUN}", s) == {"kind": "run", "run_id": RUN, "path": ""}
    assert check_model_source(f"runs:/{RUN}/a/b/", s)["path"] == "a/b"
    assert check_model_source(f"models:/{MODEL}", s) == {"kind": "logged_model", "model_id": MODEL, "path": ""}
    got = check_model_source(env.loc + "/model", s)
    assert got == {"kind": "file", "path": f"experiments/3/{RUN}/artifacts/model", "location": env.loc + "/model"}
    seen = []
    got = check_model_source(f"runs:/{RUN}/model", s, lambda run_id: seen.append(run_id) or env.loc)
    assert seen == [RUN] and got["location"] == env.loc


def test_run_sources_are_confined_to_the_run(env):
    loc_dir = env.store.location_path(env.loc)
    (loc_dir / "model").symlink_to(env.outside, target_is_directory=True)
    assert_refused(env, lambda: check_model_source(f"runs:/{RUN}/model", env.store, lambda r: env.loc))
    # A lookup that hands back a location outside the root is refused too.
    assert_refused(env, lambda: check_model_source(f"runs:/{RUN}/m", env.store, lambda r: env.outside.as_uri()))


# -- ordinary use ------------------------------------------------------------------------------
def test_nested_upload_listing_and_download(env):
    s, loc = env.store, env.loc
    assert s.upload(loc, "model/MLmodel", b"flavors: {}") == 11
    s.upload(loc, "model/data/weights.bin", bytes(range(256)))
    s.upload(loc, "plot.png", b"\x89PNG")
    s.upload(loc, "données/é.txt", "é".encode())
    assert s.read_bytes(loc, "model/data/weights.bin") == bytes(range(256))
    assert s.list(loc) == [
        {"path": "données", "is_dir": True},
        {"path": "existing", "is_dir": True},
        {"path": "model", "is_dir": True},
        {"path": "plot.png", "is_dir": False, "file_size": 4},
    ]
    assert s.list(loc, "model/") == [{"path": "model/MLmodel", "is_dir": False, "file_size": 11},
                                     {"path": "model/data", "is_dir": True}]
    assert s.list(loc, "model/data") == [{"path": "model/data/weights.bin", "is_dir": False, "file_size": 256}]
    assert s.list(loc, "plot.png") == [] and s.list(loc, "missing") == []  # as MLflow's local repo
    assert s.list(s.location_uri("experiments", "3", "f" * 32, "artifacts")) == []
    everything = json.dumps([s.list(loc, p) for p in ("", "model", "model/data", "données")])
    assert str(env.root) not in everything and str(env.tmp) not in everything and "file:" not in everything
    assert s.exists(loc, "model/data") and s.exists(loc) and not s.exists(loc, "nope")


def test_overwrite_is_atomic_and_leaves_no_temp_files(env):
    s, loc = env.store, env.loc
    s.upload(loc, "f.txt", b"one")
    s.upload(loc, "f.txt", b"two, longer")
    assert s.read_bytes(loc, "f.txt") == b"two, longer"
    leftovers = [p for p in env.root.rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert leftovers == []


def test_conflicts_and_missing_files(env):
    s, loc = env.store, env.loc
    with pytest.raises(Conflict):
        s.upload(loc, "existing", b"x")  # a directory
    with pytest.raises(Conflict):
        s.upload(loc, "existing/file.txt/child", b"x")  # a file as a parent
    with pytest.raises(NotFound):
        s.read_bytes(loc, "missing.txt")
    with pytest.raises(NotFound):
        s.download(loc, "existing/file.txt/x")
    with pytest.raises(InvalidArgument, match="directory"):
        s.read_bytes(loc, "existing")
    for call in [lambda: s.upload(loc, "", b"x"), lambda: s.upload(loc, "/", b"x"), lambda: s.read_bytes(loc, "")]:
        assert_refused(env, call)
    assert s.read_bytes(loc, "existing/file.txt") == b"keep"


def test_delete_file_directory_and_location(env):
    s, loc = env.store, env.loc
    s.upload(loc, "d/a.txt", b"a")
    s.upload(loc, "d/e/b.txt", b"b")
    assert s.delete(loc, "d/a.txt") is True
    assert [e["path"] for e in s.list(loc, "d")] == ["d/e"]
    assert s.delete(loc, "d/") is True
    assert not s.exists(loc, "d") and s.delete(loc, "d") is False  # a retried delete is fine
    assert s.delete(loc) is True
    assert not s.location_path(loc).exists() and (env.root / "experiments" / "3").is_dir()
    assert env.canary.read_bytes() == b"canary" and (env.evil / "x").exists()


def _files(directory) -> int:
    return sum(1 for p in directory.rglob("*") if p.is_file())


def test_copy_tree_into_model_version_storage(env):
    s, loc = env.store, env.loc
    s.upload(loc, "model/MLmodel", b"m")
    s.upload(loc, "model/data/w.bin", b"w" * 5000)
    s.upload(loc, "model/empty/.keep", b"")
    assert s.copy_tree(loc, env.dst, "model") == s.location_path(env.dst)  # where the copy is
    assert _files(s.location_path(env.dst)) == 3
    assert s.read_bytes(env.dst, "data/w.bin") == b"w" * 5000
    assert [e["path"] for e in s.list(env.dst)] == ["MLmodel", "data", "empty"]
    with pytest.raises(Conflict):
        s.copy_tree(loc, env.dst, "model")  # never merges into existing artifacts
    other = s.location_uri("models", "m1", "versions", "2")
    s.location_path(other).mkdir(parents=True)  # an empty destination is fine
    assert _files(s.copy_tree(loc, other)) == 4 and s.read_bytes(other, "existing/file.txt") == b"keep"
    with pytest.raises(NotFound):
        s.copy_tree(loc, s.location_uri("models", "m1", "versions", "3"), "nope")
    with pytest.raises(InvalidArgument):
        s.copy_tree(loc, s.location_uri("models", "m1", "versions", "3"), "model/MLmodel")
    assert_refused(env, lambda: s.copy_tree(loc, loc + "/model/inner", "model"))  # into itself
    assert_refused(env, lambda: s.copy_tree(loc + "/model", loc))
    assert [p for p in env.root.rglob("*") if p.name.startswith(TMP_PREFIX)] == []


@pytest.mark.parametrize("link_error", [None, errno.EXDEV, errno.EPERM])
def test_copy_tree_links_where_it_can_and_copies_where_it_cannot(env, monkeypatch, link_error):
    """Files are hard links when the file system allows (no data copy), else copies; either
    way a later overwrite of the source leaves the copy as it was."""
    s, loc = env.store, env.loc
    s.upload(loc, "model/w.bin", b"v1")
    if link_error is not None:
        def refuse(*_args, **_kwargs):
            raise OSError(link_error, os.strerror(link_error))
        monkeypatch.setattr(os, "link", refuse)
    assert _files(s.copy_tree(loc, env.dst, "model")) == 1
    linked = s.resolve(env.dst, "w.bin").stat().st_nlink == 2
    assert linked == (link_error is None)
    s.upload(loc, "model/w.bin", b"v2")  # a new file renamed over the old name
    assert s.read_bytes(env.dst, "w.bin") == b"v1" and s.read_bytes(loc, "model/w.bin") == b"v2"


def test_streaming_upload_and_download_in_chunks(env):
    s, loc = env.store, env.loc
    piece = os.urandom(64 * 1024)
    total = s.upload(loc, "big.bin", (piece for _ in range(80)))  # 5 MiB from a generator
    assert total == 80 * len(piece)
    chunks = list(s.download(loc, "big.bin"))
    assert len(chunks) > 1 and all(len(c) <= CHUNK for c in chunks)
    assert b"".join(chunks) == piece * 80
    data = os.urandom(3 * CHUNK + 1)
    assert s.upload(loc, "file.bin", io.BytesIO(data)) == len(data)
    assert s.read_bytes(loc, "file.bin") == data
    assert s.upload(loc, "mv.bin", memoryview(b"abc")) == 3 and s.upload(loc, "ba.bin", bytearray(b"ab")) == 2
    unread = s.download(loc, "file.bin")  # an iterator dropped unread closes its file
    del unread


def test_size_cap(env):
    s = ArtifactStore(env.root, max_bytes=1000)
    loc = env.loc
    assert s.upload(loc, "exact.bin", b"x" * 1000) == 1000
    s.upload(loc, "keep.bin", b"old")
    for data in [b"x" * 1001, (b"x" * 300 for _ in range(4)), io.BytesIO(b"x" * 5000)]:
        before = snapshot(env.tmp, dir_mtimes=False)
        with pytest.raises(PayloadTooLarge):
            s.upload(loc, "new/dir/over.bin", data)  # the new directories are removed again
        with pytest.raises(PayloadTooLarge):
            s.upload(loc, "keep.bin", (b"y" * 600 for _ in range(2)))
        assert snapshot(env.tmp, dir_mtimes=False) == before
    assert s.read_bytes(loc, "keep.bin") == b"old"
    with pytest.raises(PayloadTooLarge):
        env.store.upload(loc, "x.bin", b"x" * 11, max_bytes=10)
    with pytest.raises(InvalidArgument):
        ArtifactStore(env.root, max_bytes=-1)


def test_bad_contents_change_nothing(env):
    def broken():
        yield b"part"
        raise OSError("client went away")

    for data, error in [("text", InvalidArgument), (io.StringIO("text"), InvalidArgument),
                        ([b"a", "b"], InvalidArgument), (42, InvalidArgument), (broken(), OSError)]:
        before = snapshot(env.tmp, dir_mtimes=False)
        with pytest.raises(error):
            env.store.upload(env.loc, "fresh/dir/f.bin", data)
        assert snapshot(env.tmp, dir_mtimes=False) == before


def test_special_files_are_not_served_listed_or_copied(env):
    loc_dir = env.store.location_path(env.loc)
    os.mkfifo(loc_dir / "pipe")  # opening it must not block the server either
    s = env.store
    for call in [lambda: s.read_bytes(env.loc, "pipe"), lambda: s.copy_tree(env.loc, env.dst)]:
        assert_refused(env, call)
    assert [e["path"] for e in s.list(env.loc)] == ["existing"]
