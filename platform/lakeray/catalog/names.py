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
#: serving endpoint names (Databricks'): letters, digits, '-' and '_', at most 63 characters
_ENDPOINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
#: secret scope and key names (Databricks'): letters, digits, '-', '_' and '.', at most 128 characters
_SECRET = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
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


def endpoint(value: object, what: str = "serving endpoint name") -> str:
    """Validate a serving endpoint name (dashes allowed, unlike catalog names); lower-cased."""
    if not isinstance(value, str) or not _ENDPOINT.fullmatch(value):
        raise InvalidArgument(f"invalid {what} {_show(value)}: use 1-63 ASCII letters, digits, '-' or '_', "
                              "starting with a letter or digit")
    return value.lower()


def secret(value: object, what: str) -> str:
    """Validate a secret scope or key name (letters, digits, '-', '_', '.'; not starting with '.')."""
    if not isinstance(value, str) or not _SECRET.fullmatch(value):
        raise InvalidArgument(f"invalid {what} {_show(value)}: use 1-128 ASCII letters, digits, '-', '_' or '.', "
                              "not starting with '.'")
    return value


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


def text(value: object, what: str, max_length: int) -> str:
    """Validate free text that is stored or looked up as is (comments, display names, ids).

    At most ``max_length`` characters (the column's limit: PostgreSQL enforces it, SQLite
    does not), no NUL (PostgreSQL text cannot hold one) and valid Unicode (JSON may carry a
    lone surrogate half, which no database can store as UTF-8).
    """
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise InvalidArgument(f"{what} must be a string of at most {max_length} characters without NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not valid Unicode (it holds a lone surrogate)") from None
    return value


def principal(value: object) -> str:
    """Validate a principal name (user, group or service principal) and return it lower-cased."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument("principal must be a non-empty string")
    if len(value) > MAX_IDENTIFIER or not _PRINCIPAL.fullmatch(value):
        raise InvalidArgument(
            f"invalid principal {_show(value)}: use ASCII letters, digits and . _ @ + - only")
    return value.lower()
