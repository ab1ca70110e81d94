"""Artifact storage behind tracking, the model registry and the proxied artifact API.

All artifacts live under one platform artifact root. A *location* is a ``file://`` URI of a
directory strictly inside it (a run's ``.../experiments/3/<run_id>/artifacts``, a logged model's
or a model version's storage); clients name files in a location by a relative path. MLflow's CVE
history (``..``, encoded and double-encoded dots, backslashes, absolute paths, ``#``/``?``/``;``
URI tricks, NUL, ``file://host`` sources) is why every client path is checked as text before
anything touches the disk (see :func:`parse_relative_path`). Then the joined path may not pass
through a symbolic link (``lstat`` from the root down; final opens use ``O_NOFOLLOW``) and must
``resolve()`` inside its location: nothing here creates symbolic links, so one on disk was planted
and is refused, never followed. Writes are atomic (temp file in the target directory,
``os.replace``); ``copy_tree`` publishes a whole tree with one rename. With ``sync`` (durability
"power") file contents and the directories whose entries changed are fsynced before a write
returns; without it a write survives any process's death, which is the platform's default.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from urllib.parse import unquote

from lakeray.errors import Conflict, InvalidArgument, NotFound, PayloadTooLarge
from lakeray.storage.files import (
    PERCENT,
    TMP_PREFIX,
    check_characters,
    check_segment,
    fsync_dir,
    lstat,
    show,
)

CHUNK = 1024 * 1024
#: how clients see locations under the artifact root (``mlflow server --serve-artifacts``'s scheme).
PROXY_SCHEME = "mlflow-artifacts:"
DEFAULT_MAX_BYTES = 5 * 1024**3
_DRIVE = re.compile(r"[A-Za-z]:(/|$)")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
#: ``models:/<registered model>/<version>``: a dot-free or ``catalog.schema.model`` name (the
#: registry checks the parts) and a version number 1..2**31-1 without a leading zero.
_REGISTERED_VERSION = re.compile(r"([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)/([1-9][0-9]{0,9})")
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
_URI_TRICKS = {"#": "'#' (a URI fragment)", "?": "'?' (a query string)", ";": "';' (URI parameters)"}
_SOURCES = ("runs:/<run_id>/<path>, models:/m-<model id>, models:/<registered model>/<version> or a "
            "file:// URI under the platform artifact root")


def _check_text(text: str, what: str, shown: str | None = None) -> None:
    """Checks every path, location and source gets on its raw text (``shown`` in messages)."""
    check_characters(text, what, shown)
    for ch, name in _URI_TRICKS.items():
        if ch in text:
            raise InvalidArgument(f"{what} may not contain {name}: {show(text if shown is None else shown)}")


def parse_relative_path(path: object, what: str = "artifact path") -> tuple[str, ...]:
    """Check a client-supplied relative path as text; returns its segments (``()`` for ``""``).

    Trailing slashes are dropped; a leading one (or ``C:/``) makes the path absolute, which is
    refused, as MLflow does. Refused anywhere: empty, ``.`` and ``..`` segments, backslashes,
    ``#``, ``?``, ``;``, any ``%XX`` (clients send decoded paths, so an encoded one is an attack),
    control, format, surrogate, private-use and unassigned characters, more than 4096 characters.
    Refused in a segment: a leading ``~``, the temp-file prefix, over 255 UTF-8 bytes, a name whose
    NFKC form is ``.``/``..`` or holds a separator. Raises InvalidArgument naming the broken rule.
    """
    if not isinstance(path, str):
        raise InvalidArgument(f"{what} must be a string, got {type(path).__name__}")
    _check_text(path, what)
    if PERCENT.search(path):
        raise InvalidArgument(f"{what} contains a percent-encoded sequence; send the decoded name: "
                              f"{show(path)}")
    if path.startswith("/") or _DRIVE.match(path):
        raise InvalidArgument(f"{what} must be relative, not absolute: {show(path)}")
    body = path.rstrip("/")
    if not body:
        return ()
    parts = tuple(body.split("/"))
    for seg in parts:
        check_segment(seg, path, what)
    return parts


def _check_cap(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument("max_bytes must be a non-negative integer")
    return value


def _chunks(data: object) -> Iterator[bytes]:
    """``data`` as an iterator of byte chunks; its type is checked now, its items as they come."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(bytes(data) if not isinstance(data, bytes) else data)
        return (view[i:i + CHUNK] for i in range(0, len(view), CHUNK))
    if isinstance(data, str):
        raise InvalidArgument("artifact contents must be bytes, not str")
    if hasattr(data, "read"):  # a text-mode file yields str, which _checked refuses
        return _checked(iter(lambda: data.read(CHUNK), b""))
    if isinstance(data, Iterable):
        return _checked(iter(data))
    raise InvalidArgument(f"artifact contents must be bytes, a binary file or an iterable of bytes, "
                          f"not {type(data).__name__}")


def _checked(items: Iterator) -> Iterator[bytes]:
    for chunk in items:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise InvalidArgument(f"artifact chunks must be bytes, not {type(chunk).__name__}")
        yield chunk


def open_regular(path: Path, shown: str):
    """Open a regular file for reading without following a final symlink or blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"artifact {show(shown)} does not exist") from None
    except OSError as e:
        if e.errno == errno.ELOOP:  # a link planted between the lstat walk and this open
            raise InvalidArgument(f"artifact {show(shown)} is a symbolic link") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory; list it instead" if stat.S_ISDIR(mode) else "not a regular file"
        raise InvalidArgument(f"artifact {show(shown)} is {kind}")
    return os.fdopen(fd, "rb")


def _undo(tmp: Path | None, created: list[Path]) -> None:
    """Remove a failed write's temp file or tree and the directories it created (if still empty)."""
    if tmp is not None:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
    for path in reversed(created):
        with suppress(OSError):
            os.rmdir(path)


def _read_file(f) -> Iterator[bytes]:
    # The file object (not a bare fd) is what the generator holds, so an iterator that is never
    # consumed still closes its file when it is garbage-collected.
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


class ArtifactStore:
    """Files under one artifact root, addressed as (location URI, client-relative path)."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES, sync: bool = False):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = _check_cap(max_bytes)
        self.sync = sync  # fsync files and directories (Settings.durability "power")
        self._prefix = str(self.root).rstrip("/") + "/"

    # -- locations -------------------------------------------------------------------------
    def location_uri(self, *segments: str) -> str:
        """The ``file://`` URI of a location under the root, e.g. ``("experiments", "3", run_id)``."""
        parts = parse_relative_path("/".join(segments), "location")
        if not parts or any("%" in p for p in parts):  # '%' would not survive the URI round trip
            raise InvalidArgument(f"invalid location segments: {show(segments)}")
        return self.root.joinpath(*parts).as_uri()

    def _uri_parts(self, uri: object, what: str) -> tuple[str, ...]:
        """The segments under the root of a ``file://`` URI strictly inside it (text checks only)."""
        if not isinstance(uri, str) or not uri:
            raise InvalidArgument(f"{what} must be a non-empty file:// URI")
        _check_text(uri, what)
        if not uri.startswith("file:"):
            match = _SCHEME.match(uri)
            kind = f"the scheme '{match.group(1)}:'" if match else "no scheme"
            raise InvalidArgument(f"{what} must be a file:// URI under the platform artifact root; "
                                  f"{show(uri)} has {kind}")
        if not uri.startswith("file://"):
            raise InvalidArgument(f"{what} must be written file:///<absolute path>: {show(uri)}")
        rest = uri[len("file://"):]
        if not rest.startswith("/"):
            # file://host/p is a remote (SMB/UNC) path on some systems; only this server's files count.
            raise InvalidArgument(f"{what} names a host; only file:///<path> on this server is allowed: "
                                  f"{show(uri)}")
        try:
            decoded = unquote(rest, errors="strict")  # exactly once: URIs we generate are encoded once
        except UnicodeDecodeError:
            raise InvalidArgument(f"{what} is not valid percent-encoded UTF-8: {show(uri)}") from None
        _check_text(decoded, what, uri)  # %00, %5c, %23, %3f, %3b decode into refused characters
        if decoded.rstrip("/") == self._prefix[:-1]:
            raise InvalidArgument(f"{what} is the artifact root itself; it must be a directory inside it")
        if not decoded.startswith(self._prefix):
            raise InvalidArgument(f"{what} is not inside the platform artifact root: {show(uri)}")
        rel = decoded[len(self._prefix):]
        if "%" in rel:  # still encoded after one decode: %252e and friends
            raise InvalidArgument(f"{what} is percent-encoded more than once: {show(uri)}")
        return parse_relative_path(rel, what)

    def _confine(self, loc_parts: tuple[str, ...], rel_parts: tuple[str, ...]) -> Path:
        """The path of ``rel_parts`` inside the location ``loc_parts``, proven to stay there.

        The proof is one walk from the root: the root is resolved once (``__init__``), every
        segment passed :func:`check_segment` (no ``.``, ``..``, separators or NUL), and each
        existing segment is lstat'ed and refused if it is a symbolic link; the walk stops at the
        first missing one, below which nothing exists to redirect it. A path of plain names
        with no link on it cannot leave the root, so no ``realpath`` of the whole path (two
        walks from ``/`` in Python, a third of a model registration's file work) is needed.
        """
        if not loc_parts:  # callers pass _uri_parts, which refuses the root; kept here with the proof
            raise InvalidArgument("an artifact location must be a directory inside the artifact root")
        parts = (*loc_parts, *rel_parts)
        current = self.root
        for i, part in enumerate(parts):
            current = current / part
            st = lstat(current)
            if st is None:
                break
            if stat.S_ISLNK(st.st_mode):
                shown = show("/".join(parts[:i + 1]))
                raise InvalidArgument(f"artifact path goes through a symbolic link ({shown}), which is never followed")
        return self.root.joinpath(*parts)

    def _locate(self, location_uri: str, rel_path: str):
        loc_parts = self._uri_parts(location_uri, "artifact location")
        rel_parts = parse_relative_path(rel_path)
        return loc_parts, rel_parts, self._confine(loc_parts, rel_parts)

    def location_path(self, location_uri: str) -> Path:
        """The directory of a ``file://`` location strictly inside the root (it may not exist yet)."""
        return self._confine(self._uri_parts(location_uri, "artifact location"), ())

    def resolve(self, location_uri: str, rel_path: str) -> Path:
        """The checked, confined path of ``rel_path`` inside a location."""
        return self._locate(location_uri, rel_path)[2]

    def exists(self, location_uri: str, rel_path: str = "") -> bool:
        """Whether the file or directory exists (bad paths still raise InvalidArgument)."""
        return lstat(self._locate(location_uri, rel_path)[2]) is not None

    def _make_dirs(self, parts: tuple[str, ...], created: list[Path]) -> Path:
        """mkdir -p from the root, recording what was created so a failed write can undo it."""
        current = self.root
        for i, part in enumerate(parts):
            current = current / part
            st = lstat(current)  # most parents exist: one call, where mkdir would fail with EEXIST
            if st is None:
                with suppress(FileExistsError):  # another writer made it meanwhile
                    os.mkdir(current)
                    created.append(current)
                st = lstat(current)
            if st is None or stat.S_ISLNK(st.st_mode):  # appeared or vanished under us
                raise InvalidArgument("artifact path changed while it was being written")
            if not stat.S_ISDIR(st.st_mode):
                raise Conflict(f"{show('/'.join(parts[:i + 1]))} is a file, not a directory")
        return current

    # -- files -----------------------------------------------------------------------------
    def upload(self, location_uri: str, rel_path: str, data, max_bytes: int | None = None) -> int:
        """Write one file atomically and return its size.

        ``data`` is bytes, a binary file object or an iterable of byte chunks; it is streamed in
        chunks and cut off past ``max_bytes`` (default: the store's) with PayloadTooLarge. Missing
        directories are created; if the upload fails they are removed again and an existing file
        keeps its old contents.
        """
        cap = self.max_bytes if max_bytes is None else _check_cap(max_bytes)
        loc_parts, rel_parts, target = self._locate(location_uri, rel_path)
        if not rel_parts:
            raise InvalidArgument("upload needs a file path inside the location")
        if isinstance(data, (bytes, bytearray, memoryview)) and len(data) > cap:
            raise PayloadTooLarge(f"artifact is {len(data)} bytes; the limit is {cap}")
        chunks = _chunks(data)
        created: list[Path] = []
        tmp: Path | None = None
        try:
            parent = self._make_dirs((*loc_parts, *rel_parts[:-1]), created)
            st = lstat(target)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise Conflict(f"artifact path {show(rel_path)} is a directory")
            tmp = parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
            size = 0
            with os.fdopen(os.open(tmp, _NEW_FILE, 0o644), "wb") as f:
                for chunk in chunks:
                    size += len(chunk)
                    if size > cap:
                        raise PayloadTooLarge(f"artifact is over the limit of {cap} bytes")
                    f.write(chunk)
                if self.sync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, target)
            tmp = None
        except BaseException:
            _undo(tmp, created)
            raise
        if self.sync:
            for path in {parent, *(p.parent for p in created)}:  # make the new names durable
                fsync_dir(path)
        return size

    def _open_file(self, location_uri: str, rel_path: str):
        _, rel_parts, target = self._locate(location_uri, rel_path)
        if not rel_parts:
            raise InvalidArgument("name a file inside the location (list the location to see its files)")
        return open_regular(target, rel_path)

    def download(self, location_uri: str, rel_path: str) -> Iterator[bytes]:
        """The contents of a file as an iterator of chunks; errors are raised now, not on iteration."""
        return _read_file(self._open_file(location_uri, rel_path))

    def read_bytes(self, location_uri: str, rel_path: str) -> bytes:
        """The whole contents of a file."""
        with self._open_file(location_uri, rel_path) as f:
            return f.read()

    def list(self, location_uri: str, rel_path: str = "") -> list[dict]:
        """One directory level in MLflow's FileInfo shape, sorted by path.

        Paths are relative to the location; ``file_size`` is given for files only. As in MLflow, a
        missing directory or a file lists as ``[]``. Links and special files are not listed.
        """
        _, rel_parts, target = self._locate(location_uri, rel_path)
        st = lstat(target)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return []
        out = []
        with os.scandir(target) as it:
            for entry in it:
                if entry.name.startswith(TMP_PREFIX):
                    continue
                try:
                    est = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted while listing
                    continue
                path = "/".join((*rel_parts, entry.name))
                if stat.S_ISDIR(est.st_mode):
                    out.append({"path": path, "is_dir": True})
                elif stat.S_ISREG(est.st_mode):
                    out.append({"path": path, "is_dir": False, "file_size": est.st_size})
        out.sort(key=lambda e: e["path"])
        return out

    def delete(self, location_uri: str, rel_path: str = "") -> bool:
        """Delete a file or a directory tree (``""``: the whole location); False if it was absent."""
        _, _, target = self._locate(location_uri, rel_path)
        st = lstat(target)
        if st is None:
            return False  # deleting twice is fine: retried requests must not fail
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(target)  # fd-based on Linux: never follows links inside the tree
        else:
            os.unlink(target)
        if self.sync:
            fsync_dir(target.parent)
        return True

    def copy_tree(self, src_location: str, dst_location: str, src_path: str = "") -> Path:
        """Copy the tree at ``src_location``/``src_path`` to ``dst_location``; returns the
        destination directory (confined, for reading what was copied without locating it again).

        Used to copy a run's or logged model's artifacts into a model version's managed storage. The
        copy is built in a temp directory and renamed into place, so the destination appears whole
        or not at all; it must be missing or empty (else Conflict). A link or special file in the
        source is refused before anything is written. Files are hard links where the file system
        allows (see :func:`_hard_link`), else copies.
        """
        src_loc, src_rel, src = self._locate(src_location, src_path)
        dst_parts = self._uri_parts(dst_location, "destination location")
        dst = self._confine(dst_parts, ())
        src_all = (*src_loc, *src_rel)
        if src_all[:len(dst_parts)] == dst_parts or dst_parts[:len(src_all)] == src_all:
            raise InvalidArgument("source and destination of a copy may not contain each other")
        st = lstat(src)
        if st is None:
            raise NotFound(f"artifacts to copy do not exist: {show(src_path or src_location)}")
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"artifacts to copy must be a directory: {show(src_path or src_location)}")
        dst_st = lstat(dst)
        if dst_st is not None and (not stat.S_ISDIR(dst_st.st_mode) or os.listdir(dst)):
            raise Conflict("the destination location already holds artifacts")
        plan = self._plan(src, ())
        created: list[Path] = []
        tmp: Path | None = None
        try:
            parent = self._make_dirs(dst_parts[:-1], created)
            tmp = parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
            os.mkdir(tmp)
            for rel, is_dir in plan:
                if is_dir:
                    os.mkdir(tmp.joinpath(*rel))
                elif not _hard_link(src.joinpath(*rel), tmp.joinpath(*rel), "/".join(rel)):
                    with open_regular(src.joinpath(*rel), "/".join(rel)) as fsrc, \
                            os.fdopen(os.open(tmp.joinpath(*rel), _NEW_FILE, 0o644), "wb") as fdst:
                        shutil.copyfileobj(fsrc, fdst, CHUNK)
                        if self.sync:
                            fdst.flush()
                            os.fsync(fdst.fileno())
            if self.sync:
                for rel in [(), *(rel for rel, is_dir in plan if is_dir)]:
                    fsync_dir(tmp.joinpath(*rel))
            try:
                os.rename(tmp, dst)  # onto a missing or empty directory: all or nothing
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise Conflict("the destination location already holds artifacts") from None
                raise
        except BaseException:
            _undo(tmp, created)
            raise
        if self.sync:
            fsync_dir(parent)
        return dst

    def _plan(self, base: Path, rel: tuple[str, ...]) -> list[tuple[tuple[str, ...], bool]]:
        """Directories (before their contents) and files under ``base``; refuses links."""
        out: list[tuple[tuple[str, ...], bool]] = []
        with os.scandir(base.joinpath(*rel)) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                continue
            mode = entry.stat(follow_symlinks=False).st_mode
            child = (*rel, entry.name)
            if stat.S_ISDIR(mode):
                out.append((child, True))
                out.extend(self._plan(base, child))
            elif stat.S_ISREG(mode):
                out.append((child, False))
            else:
                raise InvalidArgument(f"artifacts to copy contain a link or special file: {show('/'.join(child))}")
        return out


#: link() errors that mean "this file system cannot link here": the file is copied instead.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}


def _hard_link(source: Path, target: Path, shown: str) -> bool:
    """Make ``target`` a hard link to the regular file ``source``; False where the file system
    cannot (then the caller copies).

    A link is a copy here because the store never changes a file in place: every write is a new
    file renamed over the old name, so a version's link keeps the bytes it was registered with
    whatever later happens to the run's file. It costs no data copy and no data fsync (the
    source was written as durably as the store writes), which makes registering a large model
    instant.
    """
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as e:
        if e.errno in _NO_LINK:
            return False
        raise
    st = lstat(target)
    if st is None or not stat.S_ISREG(st.st_mode):  # the source was swapped for a link meanwhile
        raise InvalidArgument(f"artifacts to copy contain a link or special file: {show(shown)}")
    return True


def proxied(location: str, root_uri: str) -> str:
    """A ``file://`` location under the artifact root as the ``mlflow-artifacts:/`` URI clients use
    (anything else unchanged)."""
    if location.startswith(root_uri + "/"):
        return PROXY_SCHEME + location[len(root_uri):]
    return location


def check_model_source(source: object, store: ArtifactStore,
                       run_artifact_uri_lookup: Callable[[str], str] | None = None,
                       registered_versions: bool = False) -> dict:
    """Check a model version ``source`` as MLflow's registry should have; returns what it names.

    Allowed: ``runs:/<run_id>[/<path>]`` -> ``{"kind": "run", "run_id", "path"}`` (plus
    ``"location"``, the run's artifact location, when ``run_artifact_uri_lookup(run_id)`` is given;
    the path is then confined to it); ``models:/m-<32 hex>`` -> ``{"kind": "logged_model",
    "model_id", "path": ""}``; ``file:///...`` strictly under the artifact root -> ``{"kind": "file",
    "path": <relative to the root>, "location": <canonical URI>}``. With ``registered_versions``
    (only the registry, which can resolve the name, asks for it) also another registered model's
    version, ``models:/<name>/<version>`` -> ``{"kind": "model_version", "name", "version": <int>,
    "path": ""}`` (what ``MlflowClient.copy_model_version`` sends): the name is checked as text
    here and as a catalog name by the registry; aliases (``@champion``), ``latest`` and stages are
    refused, as a version's source must name something that never changes (MLflow's client
    resolves an alias to its version number before sending). Anything else is InvalidArgument.
    """
    if not isinstance(source, str) or not source:
        raise InvalidArgument(f"model version source must be {_SOURCES}")
    _check_text(source, "model version source")
    match = _SCHEME.match(source)
    scheme = match.group(1) if match else None
    if scheme == "runs":
        rest = source[len("runs:"):]
        if not rest.startswith("/") or rest.startswith("//"):
            raise InvalidArgument(f"runs: sources look like runs:/<run_id>/<path>: {show(source)}")
        run_id, _, path = rest[1:].partition("/")
        if not _RUN_ID.fullmatch(run_id):
            raise InvalidArgument(f"run id in a runs:/ source must be 32 lower-case hex digits: {show(source)}")
        out = {"kind": "run", "run_id": run_id, "path": "/".join(parse_relative_path(path, "run artifact path"))}
        if run_artifact_uri_lookup is not None:
            out["location"] = run_artifact_uri_lookup(run_id)
            store.resolve(out["location"], out["path"])  # confined to the run, no links on the way
        return out
    if scheme == "models":
        body = source[len("models:/"):] if source.startswith("models:/") else ""
        if _MODEL_ID.fullmatch(body):
            return {"kind": "logged_model", "model_id": body, "path": ""}
        if not registered_versions:
            raise InvalidArgument("a models:/ source must name a logged model, models:/m-<32 hex digits>; "
                                  f"registered-model URIs are not sources here: {show(source)}")
        if "@" in body:
            raise InvalidArgument("a models:/ source names a registered model version by number, "
                                  "models:/<name>/<version>; an alias moves, so it is not a source (resolve "
                                  f"it to its version first, as MLflow's client does): {show(source)}")
        found = _REGISTERED_VERSION.fullmatch(body)
        if found is None or int(found.group(2)) >= 2**31:
            raise InvalidArgument("a models:/ source must be models:/m-<32 hex digits> (a logged model) or "
                                  "models:/<registered model>/<version number> (catalog.schema.model or a "
                                  f"dot-free name; version 1 or more): {show(source)}")
        return {"kind": "model_version", "name": found.group(1), "version": int(found.group(2)), "path": ""}
    if scheme == "file":
        parts = store._uri_parts(source, "model version source")
        store._confine(parts, ())
        return {"kind": "file", "path": "/".join(parts), "location": store.root.joinpath(*parts).as_uri()}
    kind = f"the scheme '{scheme}:'" if scheme else "no scheme"
    raise InvalidArgument(f"model version source {show(source)} has {kind}; it must be {_SOURCES}")
