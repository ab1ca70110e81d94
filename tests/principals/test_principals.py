"""Principals and tokens: hashed, shown once, expiring, revocable; admin-only management."""

import time

import pytest
from sqlalchemy import select

from lakeray.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from lakeray.storage.models import group_members, tokens


def test_token_lifecycle(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="svc", kind="service_principal")
    made = r.call_as(admin, "create_token", principal="svc", comment="ci")
    value = made["token_value"]
    assert value.startswith("lr_") and len(value) >= 43
    with r.db.read() as conn:
        stored = conn.execute(select(tokens.c.token_hash)).scalars().all()
    assert value not in stored and all(len(h) == 64 for h in stored)
    assert r.call("whoami", value)["name"] == "svc"
    infos = r.call_as(admin, "list_tokens", principal="svc")
    assert "token_value" not in infos[0] and infos[0]["comment"] == "ci"
    r.call_as(admin, "revoke_token", token_id=made["token_info"]["token_id"])
    with pytest.raises(Unauthenticated):
        r.call("whoami", value)


def test_token_expiry(registry, admin):
    made = registry.call_as(admin, "create_token", lifetime_seconds=1)
    assert registry.call("whoami", made["token_value"])["name"] == "admin"
    time.sleep(1.2)
    with pytest.raises(Unauthenticated, match="expired"):
        registry.call("whoami", made["token_value"])


@pytest.mark.parametrize("token", [None, "", "nope", "lr_" + "x" * 43, "a" * 10_000, "ünïcode"])
def test_bad_tokens(registry, token):
    with pytest.raises(Unauthenticated):
        registry.call("whoami", token)


def test_non_admins_cannot_manage_principals_or_escalate(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="joe")
    joe = r.principals.caller("joe")
    for op, kw in (("create_principal", {"name": "x"}), ("update_principal", {"name": "joe", "is_admin": True}),
                   ("create_token", {"principal": "admin"}), ("list_tokens", {"principal": "admin"})):
        with pytest.raises(PermissionDenied):
            r.call_as(joe, op, **kw)
    own = r.call_as(joe, "create_token")
    assert r.call("whoami", own["token_value"]) == {"name": "joe", "kind": "user", "is_admin": False,
                                                   "groups": []}


def test_deactivated_principal_loses_access(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="tmp")
    tok = r.call_as(admin, "create_token", principal="tmp")["token_value"]
    r.call_as(admin, "update_principal", name="tmp", active=False)
    with pytest.raises(Unauthenticated):
        r.call("whoami", tok)


def test_bad_principal_inputs(registry, admin):
    r = registry
    with pytest.raises(InvalidArgument):
        r.call_as(admin, "create_principal", name="x", kind="robot")
    with pytest.raises(InvalidArgument):
        r.call_as(admin, "create_token", lifetime_seconds=-5)
    with pytest.raises(NotFound):
        r.call_as(admin, "revoke_token", token_id="missing")
    r.call_as(admin, "create_principal", name="g1", kind="group")
    r.call_as(admin, "create_principal", name="g2", kind="group")
    r.call_as(admin, "add_group_member", group="g1", member="g2")
    with pytest.raises(InvalidArgument, match="cycle"):
        r.call_as(admin, "add_group_member", group="g2", member="g1")


def test_token_carries_nested_groups_and_membership_changes_hold_at_once(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="ana")
    tok = r.call_as(admin, "create_token", principal="ana")["token_value"]
    assert r.principals.authenticate(tok).groups == frozenset()
    for g in ("eng", "ml", "infra"):
        r.call_as(admin, "create_principal", name=g, kind="group")
    r.call_as(admin, "add_group_member", group="ml", member="ana")
    r.call_as(admin, "add_group_member", group="eng", member="ml")  # ana -> ml -> eng
    r.call_as(admin, "add_group_member", group="infra", member="ml")  # and ml -> infra
    caller = r.principals.authenticate(tok)
    assert (caller.name, caller.kind, caller.is_admin) == ("ana", "user", False)
    assert caller.groups == {"ml", "eng", "infra"}
    assert r.principals.caller("ana").groups == caller.groups
    r.call_as(admin, "remove_group_member", group="eng", member="ml")
    assert r.principals.authenticate(tok).groups == {"ml", "infra"}


def test_a_membership_cycle_in_the_database_still_authenticates(registry, admin):
    # The API refuses cycles (above); rows written around it must not make the walk loop.
    r = registry
    r.call_as(admin, "create_principal", name="bo")
    tok = r.call_as(admin, "create_token", principal="bo")["token_value"]
    for g in ("a", "b"):
        r.call_as(admin, "create_principal", name=g, kind="group")
    r.call_as(admin, "add_group_member", group="a", member="bo")
    r.call_as(admin, "add_group_member", group="b", member="a")
    with r.db.write() as conn:
        conn.execute(group_members.insert().values(group_name="a", member="b"))
    assert r.principals.authenticate(tok).groups == {"a", "b"}
