"""Securable types, Unity Catalog privileges, and which privileges apply where.

Grants made on a catalog or schema are inherited by every current and future child;
``ALL PRIVILEGES`` stands for every privilege that applies, except ``MANAGE``, which must be
granted by name (as in Databricks).
"""

from __future__ import annotations

from enum import StrEnum

from lakeray.errors import InvalidArgument


class SecurableType(StrEnum):
    METASTORE = "metastore"
    CATALOG = "catalog"
    SCHEMA = "schema"
    TABLE = "table"
    VOLUME = "volume"
    FUNCTION = "function"
    REGISTERED_MODEL = "registered_model"
    VECTOR_INDEX = "vector_index"
    SERVING_ENDPOINT = "serving_endpoint"
    SECRET_SCOPE = "secret_scope"


class Privilege(StrEnum):
    CREATE_CATALOG = "CREATE CATALOG"
    USE_CATALOG = "USE CATALOG"
    CREATE_SCHEMA = "CREATE SCHEMA"
    USE_SCHEMA = "USE SCHEMA"
    CREATE_TABLE = "CREATE TABLE"
    CREATE_VOLUME = "CREATE VOLUME"
    CREATE_FUNCTION = "CREATE FUNCTION"
    CREATE_MODEL = "CREATE MODEL"
    SELECT = "SELECT"
    MODIFY = "MODIFY"
    READ_VOLUME = "READ VOLUME"
    WRITE_VOLUME = "WRITE VOLUME"
    EXECUTE = "EXECUTE"
    MANAGE = "MANAGE"
    ALL_PRIVILEGES = "ALL PRIVILEGES"
    # Serving endpoints use Databricks' permission levels.
    CAN_VIEW = "CAN_VIEW"
    CAN_QUERY = "CAN_QUERY"
    CAN_MANAGE = "CAN_MANAGE"
    # Secret scopes use Databricks' secret ACLs (READ < WRITE < MANAGE).
    READ = "READ"
    WRITE = "WRITE"


P = Privilege
_LEAF_DATA = {P.SELECT, P.MODIFY, P.READ_VOLUME, P.WRITE_VOLUME, P.EXECUTE}
_SCHEMA_LEVEL = {P.USE_SCHEMA, P.CREATE_TABLE, P.CREATE_VOLUME, P.CREATE_FUNCTION, P.CREATE_MODEL,
                 *_LEAF_DATA, P.MANAGE, P.ALL_PRIVILEGES}

#: privileges that may be granted on each securable type (inheritable ones included).
APPLICABLE: dict[SecurableType, frozenset[Privilege]] = {
    SecurableType.METASTORE: frozenset({P.CREATE_CATALOG, P.MANAGE}),
    SecurableType.CATALOG: frozenset({P.USE_CATALOG, P.CREATE_SCHEMA, *_SCHEMA_LEVEL}),
    SecurableType.SCHEMA: frozenset(_SCHEMA_LEVEL),
    SecurableType.TABLE: frozenset({P.SELECT, P.MODIFY, P.MANAGE, P.ALL_PRIVILEGES}),
    SecurableType.VOLUME: frozenset({P.READ_VOLUME, P.WRITE_VOLUME, P.MANAGE, P.ALL_PRIVILEGES}),
    SecurableType.FUNCTION: frozenset({P.EXECUTE, P.MANAGE, P.ALL_PRIVILEGES}),
    SecurableType.REGISTERED_MODEL: frozenset({P.EXECUTE, P.MANAGE, P.ALL_PRIVILEGES}),
    SecurableType.VECTOR_INDEX: frozenset({P.SELECT, P.MODIFY, P.MANAGE, P.ALL_PRIVILEGES}),
    SecurableType.SERVING_ENDPOINT: frozenset({P.CAN_VIEW, P.CAN_QUERY, P.CAN_MANAGE}),
    SecurableType.SECRET_SCOPE: frozenset({P.READ, P.WRITE, P.MANAGE}),
}

#: securables that live at the top level, beside catalogs (not in a schema)
TOP_LEVEL = frozenset({SecurableType.CATALOG, SecurableType.SERVING_ENDPOINT, SecurableType.SECRET_SCOPE})

#: which child types live directly under each container type.
CHILD_TYPES: dict[SecurableType, tuple[SecurableType, ...]] = {
    SecurableType.CATALOG: (SecurableType.SCHEMA,),
    SecurableType.SCHEMA: (SecurableType.TABLE, SecurableType.VOLUME, SecurableType.FUNCTION,
                           SecurableType.REGISTERED_MODEL, SecurableType.VECTOR_INDEX),
}

#: how many dotted parts a full name of each type has.
NAME_PARTS: dict[SecurableType, int] = {
    SecurableType.METASTORE: 1,
    SecurableType.CATALOG: 1,
    SecurableType.SCHEMA: 2,
    SecurableType.TABLE: 3,
    SecurableType.VOLUME: 3,
    SecurableType.FUNCTION: 3,
    SecurableType.REGISTERED_MODEL: 3,
    SecurableType.VECTOR_INDEX: 3,
    SecurableType.SERVING_ENDPOINT: 1,
    SecurableType.SECRET_SCOPE: 1,
}

# Higher endpoint levels imply lower ones (CAN_MANAGE > CAN_QUERY > CAN_VIEW).
IMPLIED: dict[Privilege, frozenset[Privilege]] = {
    P.CAN_MANAGE: frozenset({P.CAN_QUERY, P.CAN_VIEW}),
    P.CAN_QUERY: frozenset({P.CAN_VIEW}),
    P.WRITE: frozenset({P.READ}),
}


def securable_type(value: object) -> SecurableType:
    """Parse a securable type name (``TABLE`` and ``table`` both work)."""
    if isinstance(value, SecurableType):
        return value
    if isinstance(value, str):
        try:
            return SecurableType(value.lower())
        except ValueError:
            pass
    allowed = ", ".join(t.value for t in SecurableType)
    raise InvalidArgument(f"unknown securable type {value!r}; expected one of: {allowed}")


def privilege(value: object) -> Privilege:
    """Parse a privilege name; ``USE_CATALOG`` and ``use catalog`` are accepted too."""
    if isinstance(value, Privilege):
        return value
    if isinstance(value, str):
        norm = value.strip().upper()
        for p in Privilege:
            if norm in (p.value, p.value.replace(" ", "_")):
                return p
    raise InvalidArgument(f"unknown privilege {value!r}")


def check_applicable(priv: Privilege, stype: SecurableType) -> None:
    """Raise InvalidArgument when ``priv`` cannot be granted on a ``stype``."""
    if priv not in APPLICABLE[stype]:
        raise InvalidArgument(f"privilege {priv.value} cannot be granted on a {stype.value}")


def expand(granted: set[Privilege]) -> set[Privilege]:
    """The privileges a set of grants confers (ALL PRIVILEGES and endpoint levels expanded)."""
    out = set(granted)
    if P.ALL_PRIVILEGES in out:
        out |= {p for p in Privilege if p not in (P.MANAGE, P.CAN_MANAGE, P.CAN_QUERY, P.CAN_VIEW, P.READ, P.WRITE)}
    for p in list(out):
        out |= IMPLIED.get(p, frozenset())
    return out
