"""Checks on client-supplied path text, and file-system helpers, shared by volumes and artifacts.

A client path is checked as text before anything touches the disk: characters first
(:func:`check_characters`), then each ``/``-separated segment (:func:`check_segment`). The
stores then confine the joined path on disk (no symbolic links, ``resolve()`` inside the root).
"""

from __future__ import annotations

import errno
import os
import re
import unicodedata
from pathlib import Path

from lakeray.errors import InvalidArgument

MAX_PATH = 4096
MAX_SEGMENT_BYTES = 255
#: temp files and trees of in-flight writes; hidden from listings, reserved as names.
TMP_PREFIX = ".lakeray-tmp-"
PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def show(value: object) -> str:
    """``repr(value)`` cut to 80 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_characters(text: str, what: str, shown: str | None = None) -> None:
    """Length, then no control, format, surrogate, private-use or unassigned characters and no
    backslash (``shown`` is what messages quote, default ``text``)."""
    if len(text) > MAX_PATH:
        raise InvalidArgument(f"{what} is {len(text)} characters long; the limit is {MAX_PATH}")
    # Printable ASCII (most paths) holds none of the refused categories: skip the per-character look-up.
    if not (text.isascii() and text.isprintable()):
        for ch in text:
            if unicodedata.category(ch) in _BAD_CATEGORIES:
                name = "NUL" if ch == "\x00" else f"U+{ord(ch):04X}"
                raise InvalidArgument(f"{what} contains the character {name} (control, format or unassigned), "
                                      f"which is not allowed: {show(text if shown is None else shown)}")
    if "\\" in text:
        raise InvalidArgument(f"{what} contains a backslash, which is not allowed: "
                              f"{show(text if shown is None else shown)}")


def check_segment(seg: str, path: str, what: str) -> None:
    """One name of a path: not empty, ``.``, ``..``, ``~...`` or reserved; at most 255 UTF-8 bytes;
    and not a name that Unicode normalisation (NFKC) turns into ``..`` or a separator."""
    if seg == "":
        raise InvalidArgument(f"{what} has an empty segment ('//'): {show(path)}")
    if seg in (".", ".."):
        raise InvalidArgument(f"{what} may not contain '{seg}' segments: {show(path)}")
    if seg.startswith("~"):
        raise InvalidArgument(f"{what} segments may not start with '~': {show(path)}")
    if seg.startswith(TMP_PREFIX):
        raise InvalidArgument(f"names starting with {TMP_PREFIX!r} are reserved: {show(path)}")
    size = len(seg.encode("utf-8"))  # surrogates were refused by check_characters
    if size > MAX_SEGMENT_BYTES:
        raise InvalidArgument(f"{what} has a segment of {size} bytes; the limit is {MAX_SEGMENT_BYTES}")
    folded = unicodedata.normalize("NFKC", seg)
    if folded in (".", "..") or "/" in folded or "\\" in folded or folded.startswith("~"):
        raise InvalidArgument(f"{what} segment {show(seg)} looks like a path separator or '..'")


def lstat(path: Path) -> os.stat_result | None:
    """``os.lstat`` or None when nothing is there."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise InvalidArgument("path is too long for the file system") from None
        raise


def fsync_dir(path: Path) -> None:
    """Make the names in a directory durable (after creating, renaming or deleting entries)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
