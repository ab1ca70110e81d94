"""Identifier rules for catalog objects and principals, checked before anything is stored.

Catalog identifiers follow Unity Catalog: ASCII letters, digits and underscore, at most 255
characters, stored lower-case. Anything else (dots inside a part, ``..``, ``%2e``, NUL,
look-alike unicode letters, quotes, spaces) is an :class:`~lakeray.errors.InvalidArgument`.
"""

from __future__ import annotations

import re

from lakeray.errors import InvalidArgument

MAX_IDENTIFIER = 255
_IDENT = re.compile(r"[A-Za-z0-9_]+")
# Principals are user e-mails, group names and service principal names.
_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def identifier(value: object, what: str = "name") -> str:
    """Validate one name part and return it lower-cased."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string")
    if len(value) > MAX_IDENTIFIER:
        raise InvalidArgument(f"{what} is {len(value)} characters long; the limit is {MAX_IDENTIFIER}")
    if not _IDENT.fullmatch(value):
        raise InvalidArgument(
            f"invalid {what} {_show(value)}: use ASCII letters, digits and underscore only")
    return value.lower()


def full_name(value: object, parts: int, what: str = "full name") -> tuple[str, ...]:
    """Split and validate a dotted name of exactly ``parts`` parts (e.g. ``main.default.t``)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string")
    if len(value) > parts * (MAX_IDENTIFIER + 1):
        raise InvalidArgument(f"{what} is too long ({len(value)} characters)")
    pieces = value.split(".")
    if len(pieces) != parts:
        shape = ".".join(["catalog", "schema", "name"][:parts]) if parts <= 3 else f"{parts} parts"
        raise InvalidArgument(f"invalid {what} {_show(value)}: expected the form {shape}")
    return tuple(identifier(p, what) for p in pieces)


def principal(value: object) -> str:
    """Validate a principal name (user, group or service principal) and return it lower-cased."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument("principal must be a non-empty string")
    if len(value) > MAX_IDENTIFIER or not _PRINCIPAL.fullmatch(value):
        raise InvalidArgument(
            f"invalid principal {_show(value)}: use ASCII letters, digits and . _ @ + - only")
    return value.lower()
