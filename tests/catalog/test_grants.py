"""The grant model: a matrix of roles x actions against the expected table, inheritance,
list filtering, and drops that take their grants with them."""

import pyarrow as pa
import pytest

from lakeray.errors import LakerayError, NotFound, PermissionDenied

T = "main.sales.orders"
ACTIONS = ["list", "get", "read", "write", "grant", "drop"]
EXPECTED = {
    "admin":  {"list": True, "get": True, "read": True, "write": True, "grant": True, "drop": True},
    "owner":  {"list": True, "get": True, "read": True, "write": True, "grant": True, "drop": True},
    "reader": {"list": True, "get": True, "read": True, "write": False, "grant": False, "drop": False},
    "writer": {"list": True, "get": True, "read": True, "write": True, "grant": False, "drop": False},
    "none":   {"list": False, "get": False, "read": False, "write": False, "grant": False, "drop": False},
}


def _setup(registry, admin):
    """admin makes schema main.sales; owner gets CREATE TABLE there and creates the table."""
    r = registry
    for who in ("owner", "reader", "writer", "none"):
        r.call_as(admin, "create_principal", name=who)
    r.call_as(admin, "create_schema", catalog_name="main", name="sales")
    for who in ("owner", "reader", "writer"):
        r.call_as(admin, "update_permissions", stype="catalog", full_name="main",
                  changes=[{"principal": who, "add": ["USE CATALOG"], "remove": []}])
        r.call_as(admin, "update_permissions", stype="schema", full_name="main.sales",
                  changes=[{"principal": who, "add": ["USE SCHEMA"], "remove": []}])
    r.call_as(admin, "update_permissions", stype="schema", full_name="main.sales",
              changes=[{"principal": "owner", "add": ["CREATE TABLE"], "remove": []}])
    owner = r.principals.caller("owner")
    r.call_as(owner, "create_table", full_name=T, data=pa.table({"id": [1, 2, 3]}))
    r.call_as(owner, "update_permissions", stype="table", full_name=T, changes=[
        {"principal": "reader", "add": ["SELECT"], "remove": []},
        {"principal": "writer", "add": ["SELECT", "MODIFY"], "remove": []}])


def _try(registry, caller, action) -> bool:
    r = registry
    ops = {
        "list": lambda: any(t["full_name"] == T for t in
                            r.call_as(caller, "list_tables", catalog_name="main", schema_name="sales")["tables"]),
        "get": lambda: r.call_as(caller, "get_table", full_name=T)["full_name"] == T,
        "read": lambda: r.call_as(caller, "read_table", full_name=T).num_rows >= 3,
        "write": lambda: r.call_as(caller, "append_table", full_name=T, data=pa.table({"id": [9]})) is not None,
        "grant": lambda: r.call_as(caller, "update_permissions", stype="table", full_name=T,
                                   changes=[{"principal": "none", "add": ["SELECT"], "remove": []}]) and
                         r.call_as(r.principals.caller("admin"), "update_permissions", stype="table", full_name=T,
                                   changes=[{"principal": "none", "add": [], "remove": ["SELECT"]}]) is not None,
        "drop": lambda: r.call_as(caller, "delete_table", full_name=T) is None,
    }
    try:
        return bool(ops[action]())
    except PermissionDenied:
        return False


def test_grant_matrix(registry, admin):
    _setup(registry, admin)
    got = {}
    for role in EXPECTED:
        caller = registry.principals.caller(role)
        got[role] = {a: _try(registry, caller, a) for a in ACTIONS if a != "drop"}
    # drop last, on a fresh copy per role so each role is tested against an existing table
    for role in EXPECTED:
        caller = registry.principals.caller(role)
        got[role]["drop"] = _try(registry, caller, "drop")
        if got[role]["drop"]:
            registry.call_as(registry.principals.caller("owner"), "create_table", full_name=T,
                             data=pa.table({"id": [1, 2, 3]}))
            registry.call_as(registry.principals.caller("owner"), "update_permissions", stype="table",
                             full_name=T, changes=[{"principal": "reader", "add": ["SELECT"], "remove": []},
                                                   {"principal": "writer", "add": ["SELECT", "MODIFY"],
                                                    "remove": []}])
    assert got == EXPECTED


def test_traversal_is_required(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="bob")
    r.call_as(admin, "create_table", full_name="main.default.t", data=pa.table({"x": [1]}))
    r.call_as(admin, "update_permissions", stype="table", full_name="main.default.t",
              changes=[{"principal": "bob", "add": ["SELECT"], "remove": []}])
    bob = r.principals.caller("bob")
    with pytest.raises(PermissionDenied, match="USE CATALOG"):
        r.call_as(bob, "read_table", full_name="main.default.t")
    r.call_as(admin, "update_permissions", stype="catalog", full_name="main",
              changes=[{"principal": "bob", "add": ["USE CATALOG"], "remove": []}])
    with pytest.raises(PermissionDenied, match="USE SCHEMA"):
        r.call_as(bob, "read_table", full_name="main.default.t")
    r.call_as(admin, "update_permissions", stype="schema", full_name="main.default",
              changes=[{"principal": "bob", "add": ["USE SCHEMA"], "remove": []}])
    assert r.call_as(bob, "read_table", full_name="main.default.t").num_rows == 1


def test_grants_inherit_to_current_and_future_children(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="ana")
    r.call_as(admin, "create_table", full_name="main.default.before", data=pa.table({"x": [1]}))
    r.call_as(admin, "update_permissions", stype="catalog", full_name="main",
              changes=[{"principal": "ana", "add": ["USE CATALOG", "USE SCHEMA", "SELECT"], "remove": []}])
    r.call_as(admin, "create_table", full_name="main.default.after", data=pa.table({"x": [2]}))
    ana = r.principals.caller("ana")
    assert r.call_as(ana, "read_table", full_name="main.default.before").num_rows == 1
    assert r.call_as(ana, "read_table", full_name="main.default.after").num_rows == 1
    with pytest.raises(PermissionDenied):
        r.call_as(ana, "append_table", full_name="main.default.after", data=pa.table({"x": [3]}))


def test_group_grants_apply_to_members(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="analysts", kind="group")
    r.call_as(admin, "create_principal", name="eve")
    r.call_as(admin, "add_group_member", group="analysts", member="eve")
    r.call_as(admin, "create_table", full_name="main.default.g", data=pa.table({"x": [1]}))
    r.call_as(admin, "update_permissions", stype="catalog", full_name="main",
              changes=[{"principal": "analysts", "add": ["USE CATALOG", "USE SCHEMA", "SELECT"], "remove": []}])
    eve = r.principals.caller("eve")
    assert r.call_as(eve, "read_table", full_name="main.default.g").num_rows == 1
    r.call_as(admin, "remove_group_member", group="analysts", member="eve")
    with pytest.raises(PermissionDenied):
        r.call_as(r.principals.caller("eve"), "read_table", full_name="main.default.g")


def test_lists_show_only_what_the_caller_may_see(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="kim")
    r.call_as(admin, "create_catalog", name="secret")
    r.call_as(admin, "create_table", full_name="main.default.visible", data=pa.table({"x": [1]}))
    r.call_as(admin, "create_table", full_name="main.default.hidden", data=pa.table({"x": [1]}))
    r.call_as(admin, "update_permissions", stype="catalog", full_name="main",
              changes=[{"principal": "kim", "add": ["USE CATALOG"], "remove": []}])
    r.call_as(admin, "update_permissions", stype="schema", full_name="main.default",
              changes=[{"principal": "kim", "add": ["USE SCHEMA"], "remove": []}])
    r.call_as(admin, "update_permissions", stype="table", full_name="main.default.visible",
              changes=[{"principal": "kim", "add": ["SELECT"], "remove": []}])
    kim = r.principals.caller("kim")
    assert [c["name"] for c in r.call_as(kim, "list_catalogs")["catalogs"]] == ["main"]
    tables = r.call_as(kim, "list_tables", catalog_name="main", schema_name="default")["tables"]
    assert [t["name"] for t in tables] == ["visible"]
    admin_tables = r.call_as(admin, "list_tables", catalog_name="main", schema_name="default")["tables"]
    assert {t["name"] for t in admin_tables} == {"visible", "hidden"}


def test_drop_removes_grants_and_recreate_starts_clean(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="lee")
    r.call_as(admin, "create_table", full_name="main.default.d", data=pa.table({"x": [1]}))
    r.call_as(admin, "update_permissions", stype="table", full_name="main.default.d",
              changes=[{"principal": "lee", "add": ["SELECT"], "remove": []}])
    r.call_as(admin, "delete_table", full_name="main.default.d")
    with pytest.raises(NotFound):
        r.call_as(admin, "get_table", full_name="main.default.d")
    r.call_as(admin, "create_table", full_name="main.default.d", data=pa.table({"x": [1]}))
    assert r.call_as(admin, "get_permissions", stype="table", full_name="main.default.d") == \
        {"privilege_assignments": []}


def test_manage_holder_may_grant_but_not_read(registry, admin):
    r = registry
    for who in ("mgr", "friend"):
        r.call_as(admin, "create_principal", name=who)
    r.call_as(admin, "create_table", full_name="main.default.m", data=pa.table({"x": [1]}))
    r.call_as(admin, "update_permissions", stype="catalog", full_name="main", changes=[
        {"principal": "mgr", "add": ["USE CATALOG", "USE SCHEMA"], "remove": []},
        {"principal": "friend", "add": ["USE CATALOG", "USE SCHEMA"], "remove": []}])
    r.call_as(admin, "update_permissions", stype="table", full_name="main.default.m",
              changes=[{"principal": "mgr", "add": ["MANAGE"], "remove": []}])
    mgr = r.principals.caller("mgr")
    with pytest.raises(PermissionDenied):
        r.call_as(mgr, "read_table", full_name="main.default.m")
    r.call_as(mgr, "update_permissions", stype="table", full_name="main.default.m",
              changes=[{"principal": "friend", "add": ["SELECT"], "remove": []}])
    assert r.call_as(r.principals.caller("friend"), "read_table", full_name="main.default.m").num_rows == 1


def test_inapplicable_or_unknown_privileges_are_rejected(registry, admin):
    r = registry
    r.call_as(admin, "create_table", full_name="main.default.p", data=pa.table({"x": [1]}))
    for bad in (["USE CATALOG"], ["READ VOLUME"], ["DROP EVERYTHING"], ["SELECT; DROP TABLE x"]):
        with pytest.raises(LakerayError) as info:
            r.call_as(admin, "update_permissions", stype="table", full_name="main.default.p",
                      changes=[{"principal": "admin", "add": bad, "remove": []}])
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(NotFound):
        r.call_as(admin, "update_permissions", stype="table", full_name="main.default.p",
                  changes=[{"principal": "ghost", "add": ["SELECT"], "remove": []}])


def test_denials_and_mutations_are_audited(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="zed")
    zed = r.principals.caller("zed")
    with pytest.raises(PermissionDenied):
        r.call_as(zed, "create_catalog", name="zeds")
    events = r.call_as(admin, "query_audit", principal="zed")["events"]
    assert events[0]["result"] == "denied" and events[0]["action"] == "create_catalog"
    created = r.call_as(admin, "query_audit", action="create_principal", limit=5)["events"]
    assert any(e["securable"] == "zed" and e["result"] == "ok" for e in created)
    with pytest.raises(PermissionDenied):
        r.call_as(zed, "query_audit")
