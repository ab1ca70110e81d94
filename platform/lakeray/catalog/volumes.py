"""Managed volumes: file areas governed by the catalog, with Databricks Files API semantics.

A volume ``main.default.v`` owns the directory ``<root>/<volume id>`` (renames move nothing);
files are addressed as ``/Volumes/<catalog>/<schema>/<volume>/<relative path>``. Reading needs
READ VOLUME, writing and deleting WRITE VOLUME (plus USE CATALOG and USE SCHEMA).

Paths are checked as text before anything touches the disk: no ``.``/``..``/empty segments,
backslashes, NUL or other control characters, percent-encoded sequences (``%2e``, ``%25``...),
``~`` prefixes, segments over 255 bytes or paths over 4096 characters; then the joined path
must not pass through a symbolic link and must resolve inside the volume directory. Unicode
names are allowed (as in Databricks; ``ａ.txt`` is distinct from ``a.txt``) except control,
format (bidi overrides, zero-width), surrogate, private-use and unassigned characters, and
names whose NFKC form is ``.``, ``..`` or holds a separator. Writes are atomic (temp file in
the target directory, ``os.replace``), and fsynced with ``sync`` (durability "power").
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from lakeray.catalog import names
from lakeray.catalog.audit import AuditLog
from lakeray.catalog.privileges import Privilege, SecurableType
from lakeray.catalog.securables import Securable
from lakeray.catalog.service import CatalogService
from lakeray.errors import AlreadyExists, Conflict, InvalidArgument, LakerayError, NotFound, PayloadTooLarge
from lakeray.principals.service import Caller
from lakeray.storage.files import (
    PERCENT,
    TMP_PREFIX,
    check_characters,
    check_segment,
    fsync_dir,
    lstat,
    show,
)

P = Privilege
ST = SecurableType
PREFIX = "/Volumes/"
DEFAULT_MAX_FILE_BYTES = 5 * 1024**3
MAX_PAGE = 1000
#: temp files of in-flight uploads; hidden from listings and reserved.


@dataclass(frozen=True)
class VolumePath:
    """A checked volume path: the volume's full name and the relative segments."""

    full_name: str
    parts: tuple[str, ...]

    @property
    def rel(self) -> str:
        """The path relative to the volume root ('' for the root itself)."""
        return "/".join(self.parts)

    @property
    def display(self) -> str:
        """The canonical ``/Volumes/...`` form (identifiers lower-cased)."""
        base = PREFIX + self.full_name.replace(".", "/")
        return base + "/" + self.rel if self.parts else base


def parse_path(path: object, directory: bool = False) -> VolumePath:
    """Check a ``/Volumes/<catalog>/<schema>/<volume>/<rel>`` path as text; see the module doc.

    With ``directory`` one trailing slash is accepted (``/Volumes/c/s/v/dir/``).
    """
    if not isinstance(path, str) or not path:
        raise InvalidArgument("path must be a non-empty string like /Volumes/<catalog>/<schema>/<volume>/<file>")
    check_characters(path, "volume path")
    if PERCENT.search(path):
        raise InvalidArgument(f"percent-encoded sequences are not allowed in volume paths; send the decoded "
                              f"name: {show(path)}")
    if not path.startswith(PREFIX):
        raise InvalidArgument(f"volume paths look like /Volumes/<catalog>/<schema>/<volume>/<file>; "
                              f"got {show(path)}")
    body = path[len(PREFIX):]
    if directory and body.endswith("/"):
        body = body[:-1]
    segments = body.split("/")
    if len(segments) < 3:
        raise InvalidArgument(f"path must name a catalog, schema and volume: {show(path)}")
    catalog = names.identifier(segments[0], "catalog name")
    schema = names.identifier(segments[1], "schema name")
    volume = names.identifier(segments[2], "volume name")
    for seg in segments[3:]:
        check_segment(seg, path, "volume path")
    return VolumePath(f"{catalog}.{schema}.{volume}", tuple(segments[3:]))


def _entry(display: str, name: str, st: os.stat_result) -> dict:
    is_dir = stat.S_ISDIR(st.st_mode)
    out = {"path": display + ("/" if is_dir else ""), "is_directory": is_dir, "name": name,
           "last_modified": st.st_mtime_ns // 1_000_000}
    if not is_dir:
        out["file_size"] = st.st_size
    return out


class VolumeService:
    """Upload, download, list and delete files in managed volumes."""

    def __init__(self, catalog: CatalogService, audit: AuditLog, root: Path,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, sync: bool = False):
        if isinstance(max_file_bytes, bool) or not isinstance(max_file_bytes, int) or max_file_bytes < 0:
            raise InvalidArgument("max_file_bytes must be a non-negative integer")
        self.catalog = catalog
        self.audit = audit
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_file_bytes = max_file_bytes
        self.sync = sync  # fsync files and directories (Settings.durability "power")
        catalog.locate[ST.VOLUME] = self._locate
        catalog.on_drop.append(self._drop_files)

    # -- storage of a volume ---------------------------------------------------------------
    def _locate(self, obj: Securable) -> str:
        path = self.root / obj.id
        path.mkdir(exist_ok=True)
        return path.as_uri()

    def _location(self, obj: Securable) -> Path:
        if not obj.storage_location:
            return self.root / obj.id
        parsed = urlparse(obj.storage_location)
        if parsed.scheme != "file":
            raise LakerayError(f"volume '{obj.full_name}' has an unsupported storage location")
        return Path(unquote(parsed.path))

    def _drop_files(self, dropped: list[Securable]) -> None:
        for obj in (o for o in dropped if o.type == ST.VOLUME):
            path = self._location(obj).resolve()
            if path != self.root and path.is_relative_to(self.root):  # never delete outside the root
                shutil.rmtree(path, ignore_errors=True)

    def _open(self, caller: Caller, path: object, need: Privilege,
              directory: bool = False) -> tuple[VolumePath, Securable, Path, Path]:
        """Check the path, the caller's privilege and confinement; returns (vp, volume, base, target)."""
        vp = parse_path(path, directory)
        action = "read_volume" if need == P.READ_VOLUME else "write_volume"
        obj = self.catalog.resolve(caller, ST.VOLUME, vp.full_name, need, action=action)
        base = self._location(obj)
        base.mkdir(exist_ok=True)
        base = base.resolve()
        current = base
        for part in vp.parts:
            current = current / part
            st = lstat(current)
            if st is None:
                break
            if stat.S_ISLNK(st.st_mode):
                raise InvalidArgument(f"{vp.display} goes through a symbolic link, which volumes do not follow")
        target = base.joinpath(*vp.parts)
        if not target.resolve().is_relative_to(base):
            raise InvalidArgument(f"{vp.display} resolves outside its volume")
        return vp, obj, base, target

    def _make_dirs(self, base: Path, vp: VolumePath, parts: tuple[str, ...]) -> Path:
        current = base
        for i, part in enumerate(parts):
            current = current / part
            try:
                current.mkdir(exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                pass
            st = lstat(current)
            if st is None or not stat.S_ISDIR(st.st_mode):
                shown = VolumePath(vp.full_name, parts[:i + 1]).display
                raise Conflict(f"{shown} is a file, not a directory")
        return current

    def _record(self, caller: Caller, action: str, obj: Securable, vp: VolumePath, **extra) -> None:
        self.audit.record(caller.name, action, "volume", obj.full_name, detail={"path": vp.rel, **extra})

    # -- volumes ---------------------------------------------------------------------------
    def create_volume(self, caller: Caller, catalog_name: str, schema_name: str, name: str,
                      volume_type: str = "MANAGED", comment: str | None = None,
                      storage_location: str | None = None) -> dict:
        """Create a MANAGED volume (needs CREATE VOLUME on the schema); returns its VolumeInfo."""
        if not isinstance(volume_type, str) or volume_type.upper() not in ("MANAGED", "EXTERNAL"):
            raise InvalidArgument(f"volume_type must be MANAGED, got {volume_type!r}")
        if volume_type.upper() == "EXTERNAL" or storage_location not in (None, ""):
            raise InvalidArgument("EXTERNAL volumes are not supported: lakeray stores volume files itself; "
                                  "create a MANAGED volume without a storage_location")
        full_name = ".".join((names.identifier(catalog_name, "catalog name"),
                              names.identifier(schema_name, "schema name"),
                              names.identifier(name, "volume name")))
        return self.catalog.create(caller, ST.VOLUME, full_name, comment=comment)

    # -- files -----------------------------------------------------------------------------
    def upload(self, caller: Caller, path: str, data: bytes, overwrite: bool = True) -> None:
        """Write a file atomically (needs WRITE VOLUME); missing parent directories are created."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise InvalidArgument("file contents must be bytes")
        if not isinstance(overwrite, bool):
            raise InvalidArgument("overwrite must be a boolean")
        if len(data) > self.max_file_bytes:
            raise PayloadTooLarge(f"file is {len(data)} bytes; the limit is {self.max_file_bytes}")
        vp, obj, base, target = self._open(caller, path, P.WRITE_VOLUME)
        if not vp.parts:
            raise InvalidArgument(f"{vp.display} is a volume; upload to a file path inside it")
        parent = self._make_dirs(base, vp, vp.parts[:-1])
        st = lstat(target)
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise Conflict(f"{vp.display} is a directory")
        if st is not None and not overwrite:
            raise AlreadyExists(f"file {vp.display} already exists; pass overwrite=true to replace it")
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.sync:
                    f.flush()
                    os.fsync(f.fileno())
            if overwrite:
                os.replace(tmp, target)
            else:
                try:
                    os.link(tmp, target)  # atomic create-if-absent
                except FileExistsError:
                    raise AlreadyExists(f"file {vp.display} already exists; pass overwrite=true "
                                        "to replace it") from None
                os.unlink(tmp)
        except IsADirectoryError:
            raise Conflict(f"{vp.display} is a directory") from None
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        if self.sync:
            fsync_dir(parent)
        self._record(caller, "volume_upload", obj, vp)

    def download(self, caller: Caller, path: str) -> bytes:
        """The contents of a file (needs READ VOLUME)."""
        vp, _, _, target = self._open(caller, path, P.READ_VOLUME)
        if not vp.parts:
            raise InvalidArgument(f"{vp.display} is a volume, not a file")
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"file {vp.display} does not exist") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > self.max_file_bytes:
            os.close(fd)
            if stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"{vp.display} is a directory; list it instead")
            if not stat.S_ISREG(st.st_mode):
                raise InvalidArgument(f"{vp.display} is not a regular file")
            raise PayloadTooLarge(f"file is {st.st_size} bytes; the limit is {self.max_file_bytes}")
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def get_metadata(self, caller: Caller, path: str) -> dict:
        """Path, kind, size and last modification (ms) of a file or directory (needs READ VOLUME)."""
        vp, _, _, target = self._open(caller, path, P.READ_VOLUME, directory=True)
        st = lstat(target)
        if st is None:
            raise NotFound(f"{vp.display} does not exist")
        name = vp.parts[-1] if vp.parts else vp.full_name.rsplit(".", 1)[-1]
        out = _entry(vp.display, name, st)
        if not out["is_directory"]:
            out["content_type"] = "application/octet-stream"
        return out

    def list_directory(self, caller: Caller, path: str, page_size: int | None = None,
                       page_token: str | None = None) -> dict:
        """A page of a directory's entries by name: ``{"contents": [...], "next_page_token"?}``."""
        if page_size is not None and (isinstance(page_size, bool) or not isinstance(page_size, int)
                                      or page_size < 0):
            raise InvalidArgument("page_size must be a non-negative integer")
        size = min(page_size or MAX_PAGE, MAX_PAGE)
        after = None
        if page_token:
            try:
                after = base64.urlsafe_b64decode(str(page_token).encode("ascii")).decode("utf-8")
            except (ValueError, UnicodeError):
                raise InvalidArgument("invalid page_token") from None
        vp, _, _, target = self._open(caller, path, P.READ_VOLUME, directory=True)
        st = lstat(target)
        if st is None:
            raise NotFound(f"directory {vp.display} does not exist")
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"{vp.display} is a file, not a directory")
        found: list[tuple[str, os.stat_result]] = []
        with os.scandir(target) as it:
            for entry in it:
                if entry.name.startswith(TMP_PREFIX) or (after is not None and entry.name <= after):
                    continue
                try:
                    est = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted while listing
                    continue
                if stat.S_ISDIR(est.st_mode) or stat.S_ISREG(est.st_mode):  # no links or devices
                    found.append((entry.name, est))
        found.sort(key=lambda item: item[0])
        page = found[:size]
        out: dict = {"contents": [_entry(vp.display + "/" + n, n, s) for n, s in page]}
        if len(found) > size:
            out["next_page_token"] = base64.urlsafe_b64encode(page[-1][0].encode("utf-8")).decode("ascii")
        return out

    def create_directory(self, caller: Caller, path: str) -> None:
        """Create a directory and its missing parents (needs WRITE VOLUME); existing ones are fine."""
        vp, obj, base, _ = self._open(caller, path, P.WRITE_VOLUME, directory=True)
        self._make_dirs(base, vp, vp.parts)
        self._record(caller, "volume_create_directory", obj, vp)

    def delete_file(self, caller: Caller, path: str) -> None:
        """Delete a file (needs WRITE VOLUME)."""
        vp, obj, _, target = self._open(caller, path, P.WRITE_VOLUME)
        if not vp.parts:
            raise InvalidArgument(f"{vp.display} is a volume, not a file; drop the volume instead")
        st = lstat(target)
        if st is None:
            raise NotFound(f"file {vp.display} does not exist")
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"{vp.display} is a directory; use delete_directory")
        os.unlink(target)
        self._record(caller, "volume_delete_file", obj, vp)

    def delete_directory(self, caller: Caller, path: str, recursive: bool = False) -> None:
        """Delete an empty directory, or with ``recursive`` everything in it (needs WRITE VOLUME)."""
        if not isinstance(recursive, bool):
            raise InvalidArgument("recursive must be a boolean")
        vp, obj, _, target = self._open(caller, path, P.WRITE_VOLUME, directory=True)
        if not vp.parts:
            raise InvalidArgument(f"{vp.display} is the volume's root; drop the volume instead")
        st = lstat(target)
        if st is None:
            raise NotFound(f"directory {vp.display} does not exist")
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"{vp.display} is a file; use delete_file")
        if recursive:
            shutil.rmtree(target)
        else:
            try:
                os.rmdir(target)
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise Conflict(f"directory {vp.display} is not empty; pass recursive=true "
                                   "to delete it with its contents") from None
                raise
        self._record(caller, "volume_delete_directory", obj, vp, recursive=recursive)
