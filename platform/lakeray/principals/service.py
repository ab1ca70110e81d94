"""Users, groups, service principals and personal access tokens.

Tokens are 32 random bytes (URL-safe base64, prefixed ``lr_``), shown once, stored only as
their SHA-256, optionally expiring, and revocable. :meth:`PrincipalService.authenticate`
turns a token into a :class:`Caller` on every call (nothing is cached), so a revocation,
deactivation or group change takes effect on the next request in every process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, select, true, update

from lakeray.catalog import names
from lakeray.catalog.audit import AuditLog, denial
from lakeray.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from lakeray.ids import new_id, now_ms
from lakeray.storage.db import Database
from lakeray.storage.models import group_members, principals, tokens

KINDS = ("user", "group", "service_principal")
TOKEN_PREFIX = "lr_"
MAX_TOKEN_LIFETIME_S = 10 * 365 * 24 * 3600


def _with_groups(member) -> tuple:
    """The transitive groups of ``member`` (a bound name or a scalar subquery) as a recursive
    CTE: one statement however deep groups nest (UNION, not UNION ALL, ends cycles)."""
    gm = group_members.c
    groups = select(gm.group_name.label("name")).where(gm.member == member).cte("caller_groups", recursive=True)
    return groups.union(select(gm.group_name).join(groups, gm.member == groups.c.name))


# Statements on the authentication path, built once (SQLAlchemy then reuses their compiled form).
_OWNER_GROUPS = _with_groups(select(tokens.c.principal).where(tokens.c.token_hash == bindparam("digest"))
                             .scalar_subquery())
#: the token's owner and its state, one row per group of the owner (one row, group NULL, if none).
_TOKEN_OWNER = (select(tokens.c.principal, tokens.c.expires_at, tokens.c.revoked_at, principals.c.kind,
                       principals.c.is_admin, principals.c.active, _OWNER_GROUPS.c.name.label("group_name"))
                .join(principals, principals.c.name == tokens.c.principal)
                .outerjoin(_OWNER_GROUPS, true())
                .where(tokens.c.token_hash == bindparam("digest")))
_MEMBER_GROUPS = _with_groups(bindparam("member"))
_GROUPS_OF = select(_MEMBER_GROUPS.c.name)


@dataclass(frozen=True)
class Caller:
    """Who is making a call: a principal with its (transitive) groups."""

    name: str
    kind: str = "user"
    is_admin: bool = False
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def identities(self) -> frozenset[str]:
        """The names grants may be made to that apply to this caller."""
        return self.groups | {self.name}


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class PrincipalService:
    """Principals, group membership and tokens, on the metadata DB."""

    def __init__(self, db: Database, audit: AuditLog):
        self.db = db
        self.audit = audit

    # -- authentication -------------------------------------------------------------------
    def authenticate(self, token: object) -> Caller:
        """The caller a token belongs to; Unauthenticated if unknown, expired or revoked."""
        if not isinstance(token, str) or not token:
            raise Unauthenticated("a token is required: send 'Authorization: Bearer <token>'")
        if len(token) > 512 or not token.isascii():
            raise Unauthenticated("malformed token")
        digest = hash_token(token)
        now = now_ms()
        # Looked up on every call (an indexed read), never cached: API replicas and the
        # registry actor authenticate independently, and a revocation, deactivation or
        # membership change must hold on the very next request in all of them.
        with self.db.read() as conn:
            rows = conn.execute(_TOKEN_OWNER, {"digest": digest}).all()
        row = rows[0] if rows else None  # the owner's columns repeat on every row
        if row is None or row.revoked_at is not None or not row.active:
            raise Unauthenticated("invalid or revoked token")
        if row.expires_at is not None and row.expires_at <= now:
            raise Unauthenticated("token expired")
        groups = frozenset(r.group_name for r in rows if r.group_name is not None)
        return Caller(row.principal, row.kind, bool(row.is_admin), groups)

    def caller(self, name: str) -> Caller:
        """The :class:`Caller` for a principal name (used by trusted in-cluster jobs and tests)."""
        with self.db.read() as conn:
            row = conn.execute(select(principals).where(principals.c.name == name)).mappings().first()
            if row is None:
                raise NotFound(f"principal {name!r} does not exist")
            return Caller(row["name"], row["kind"], bool(row["is_admin"]), self._groups_of(conn, name))

    def _groups_of(self, conn, name: str) -> frozenset[str]:
        """Every group ``name`` belongs to, directly or through nested groups."""
        return frozenset(conn.execute(_GROUPS_OF, {"member": name}).scalars())

    # -- principals ------------------------------------------------------------------------
    def _require_admin(self, caller: Caller, action: str, target: str | None = None) -> None:
        if not caller.is_admin:
            raise denial(PermissionDenied(f"only metastore admins may {action.replace('_', ' ')}"),
                         action, "principal", target)

    def create_principal(self, caller: Caller, name: str, kind: str = "user",
                         display_name: str | None = None, is_admin: bool = False) -> dict:
        """Create a user, group or service principal (admins only)."""
        name = names.principal(name)
        if display_name is not None:
            display_name = names.text(display_name, "display_name", names.MAX_IDENTIFIER)
        if kind not in KINDS:
            raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if is_admin and kind == "group":
            raise InvalidArgument("a group cannot be a metastore admin; make its members admins")
        self._require_admin(caller, "create_principal", name)
        with self.db.write() as conn:
            if conn.execute(select(principals.c.name).where(principals.c.name == name)).first():
                raise AlreadyExists(f"principal {name!r} already exists")
            conn.execute(principals.insert().values(
                name=name, kind=kind, display_name=display_name, is_admin=bool(is_admin), active=True,
                created_at=now_ms(), created_by=caller.name))
            self.audit.record(caller.name, "create_principal", "principal", name, conn=conn,
                              detail={"kind": kind, "is_admin": bool(is_admin)})
        return self.get_principal(caller, name)

    def ensure_admin(self, name: str) -> None:
        """Create ``name`` as an active admin user if missing (bootstrap, no caller)."""
        name = names.principal(name)
        with self.db.write() as conn:
            if conn.execute(select(principals.c.name).where(principals.c.name == name)).first() is None:
                conn.execute(principals.insert().values(
                    name=name, kind="user", display_name=name, is_admin=True, active=True,
                    created_at=now_ms(), created_by="system"))
                self.audit.record("system", "create_principal", "principal", name, conn=conn,
                                  detail={"kind": "user", "is_admin": True})

    def get_principal(self, caller: Caller, name: str) -> dict:
        """A principal with its direct groups and (for groups) members."""
        name = names.principal(name)
        with self.db.read() as conn:
            row = conn.execute(select(principals).where(principals.c.name == name)).mappings().first()
            if row is None:
                raise NotFound(f"principal {name!r} does not exist")
            groups = conn.execute(select(group_members.c.group_name)
                                  .where(group_members.c.member == name)).scalars().all()
            members = conn.execute(select(group_members.c.member)
                                   .where(group_members.c.group_name == name)).scalars().all()
        out = dict(row, groups=sorted(groups))
        out["is_admin"] = bool(out["is_admin"])
        out["active"] = bool(out["active"])
        if row["kind"] == "group":
            out["members"] = sorted(members)
        return out

    def list_principals(self, caller: Caller, kind: str | None = None) -> list[dict]:
        """All principals (any authenticated caller may list them, as in a workspace)."""
        if kind is not None and kind not in KINDS:
            raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}")
        q = select(principals.c.name).order_by(principals.c.name)
        if kind:
            q = q.where(principals.c.kind == kind)
        with self.db.read() as conn:
            found = conn.execute(q).scalars().all()
        return [self.get_principal(caller, n) for n in found]

    def update_principal(self, caller: Caller, name: str, active: bool | None = None,
                         is_admin: bool | None = None, display_name: str | None = None) -> dict:
        """Activate/deactivate, promote/demote or rename the display of a principal (admins)."""
        name = names.principal(name)
        self._require_admin(caller, "update_principal", name)
        if display_name is not None:
            display_name = names.text(display_name, "display_name", names.MAX_IDENTIFIER)
        values = {k: v for k, v in (("active", active), ("is_admin", is_admin),
                                    ("display_name", display_name)) if v is not None}
        if not values:
            raise InvalidArgument("nothing to update: give active, is_admin or display_name")
        if name == caller.name and (values.get("active") is False or values.get("is_admin") is False):
            raise InvalidArgument("an admin cannot deactivate or demote themselves")
        with self.db.write() as conn:
            row = conn.execute(select(principals.c.kind).where(principals.c.name == name)).first()
            if row is None:
                raise NotFound(f"principal {name!r} does not exist")
            if row.kind == "group" and values.get("is_admin"):
                raise InvalidArgument("a group cannot be a metastore admin")
            conn.execute(update(principals).where(principals.c.name == name).values(**values))
            self.audit.record(caller.name, "update_principal", "principal", name, conn=conn, detail=values)
        return self.get_principal(caller, name)

    def add_member(self, caller: Caller, group: str, member: str) -> dict:
        """Add a principal to a group (admins only)."""
        group, member = names.principal(group), names.principal(member)
        self._require_admin(caller, "add_group_member", group)
        if group == member:
            raise InvalidArgument("a group cannot contain itself")
        with self.db.write() as conn:
            kinds = dict(conn.execute(select(principals.c.name, principals.c.kind)
                                      .where(principals.c.name.in_([group, member]))).all())
            if kinds.get(group) != "group":
                raise NotFound(f"group {group!r} does not exist")
            if member not in kinds:
                raise NotFound(f"principal {member!r} does not exist")
            if member in self._groups_of(conn, group):
                raise InvalidArgument(f"adding {member!r} to {group!r} would make a membership cycle")
            exists = conn.execute(select(group_members).where(
                group_members.c.group_name == group, group_members.c.member == member)).first()
            if not exists:
                conn.execute(group_members.insert().values(group_name=group, member=member))
            self.audit.record(caller.name, "add_group_member", "principal", group, conn=conn,
                              detail={"member": member})
        return self.get_principal(caller, group)

    def remove_member(self, caller: Caller, group: str, member: str) -> dict:
        """Remove a principal from a group (admins only)."""
        group, member = names.principal(group), names.principal(member)
        self._require_admin(caller, "remove_group_member", group)
        with self.db.write() as conn:
            gone = conn.execute(delete(group_members).where(
                group_members.c.group_name == group, group_members.c.member == member)).rowcount
            if not gone:
                raise NotFound(f"{member!r} is not a member of {group!r}")
            self.audit.record(caller.name, "remove_group_member", "principal", group, conn=conn,
                              detail={"member": member})
        return self.get_principal(caller, group)

    # -- tokens ----------------------------------------------------------------------------
    def create_token(self, caller: Caller, principal: str | None = None,
                     lifetime_seconds: int | None = None, comment: str | None = None) -> dict:
        """Mint a token for the caller (or, for admins, for any principal); shown only here."""
        owner = caller.name if principal is None else names.principal(principal)
        if owner != caller.name and not caller.is_admin:
            raise denial(PermissionDenied("only admins may create tokens for other principals"),
                         "create_token", "principal", owner)
        if lifetime_seconds is not None:
            if isinstance(lifetime_seconds, bool) or not isinstance(lifetime_seconds, int):
                raise InvalidArgument("lifetime_seconds must be an integer")
            if not 0 < lifetime_seconds <= MAX_TOKEN_LIFETIME_S:
                raise InvalidArgument(f"lifetime_seconds must be between 1 and {MAX_TOKEN_LIFETIME_S}")
        if comment is not None:
            comment = names.text(comment, "comment", 1000)
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = now_ms()
        info = dict(id=new_id(), principal=owner, comment=comment, created_at=now,
                    expires_at=None if lifetime_seconds is None else now + lifetime_seconds * 1000,
                    revoked_at=None, created_by=caller.name)
        with self.db.write() as conn:
            row = conn.execute(select(principals.c.kind, principals.c.active)
                               .where(principals.c.name == owner)).first()
            if row is None:
                raise NotFound(f"principal {owner!r} does not exist")
            if row.kind == "group":
                raise InvalidArgument("groups cannot hold tokens; create one for a user or service principal")
            conn.execute(tokens.insert().values(token_hash=hash_token(value), **info))
            self.audit.record(caller.name, "create_token", "principal", owner, conn=conn,
                              detail={"token_id": info["id"]})
        return {"token_value": value, "token_info": _token_info(info)}

    def list_tokens(self, caller: Caller, principal: str | None = None) -> list[dict]:
        """Token metadata (never the secret); admins may list anyone's."""
        owner = caller.name if principal is None else names.principal(principal)
        if owner != caller.name and not caller.is_admin:
            raise denial(PermissionDenied("only admins may list other principals' tokens"),
                         "list_tokens", "principal", owner)
        with self.db.read() as conn:
            rows = conn.execute(select(tokens).where(tokens.c.principal == owner)
                                .order_by(tokens.c.created_at)).mappings().all()
        return [_token_info(r) for r in rows]

    def revoke_token(self, caller: Caller, token_id: str) -> None:
        """Revoke a token by id: the owner or an admin may."""
        if not isinstance(token_id, str) or not token_id or len(token_id) > 64 or "\x00" in token_id:
            raise InvalidArgument("token_id must be a token id string")
        with self.db.write() as conn:
            row = conn.execute(select(tokens.c.principal, tokens.c.revoked_at)
                               .where(tokens.c.id == token_id)).first()
            if row is None:
                raise NotFound(f"token {token_id!r} does not exist")
            if row.principal != caller.name and not caller.is_admin:
                raise denial(PermissionDenied("only the token's owner or an admin may revoke it"),
                             "revoke_token", "principal", row.principal)
            if row.revoked_at is None:
                conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=now_ms()))
            self.audit.record(caller.name, "revoke_token", "principal", row.principal, conn=conn,
                              detail={"token_id": token_id})

    def principal_exists(self, conn, name: str) -> bool:
        """Whether a principal row exists (inside the caller's transaction)."""
        return conn.execute(select(principals.c.name).where(principals.c.name == name)).first() is not None


def _token_info(row) -> dict:
    return {
        "token_id": row["id"],
        "principal": row["principal"],
        "comment": row["comment"],
        "creation_time": row["created_at"],
        "expiry_time": row["expires_at"] if row["expires_at"] is not None else -1,
        "revoked": row["revoked_at"] is not None,
    }
