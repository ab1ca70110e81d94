"""Catalogs and schemas: defaults, CRUD, rename, force drop, pagination, bad names."""

import pytest

from lakeray.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied


def test_fresh_platform_has_main_default_and_system(registry, admin):
    names = [c["name"] for c in registry.call_as(admin, "list_catalogs")["catalogs"]]
    assert names == ["main", "system"]
    assert registry.call_as(admin, "get_schema", full_name="main.default")["full_name"] == "main.default"
    assert {s["name"] for s in registry.call_as(admin, "list_schemas", catalog_name="system")["schemas"]} >= {"ai"}


def test_catalog_crud_and_rename(registry, admin):
    r = registry
    info = r.call_as(admin, "create_catalog", name="Sales", comment="c", properties={"team": "x"})
    assert info["name"] == "sales" and info["owner"] == "admin" and info["properties"] == {"team": "x"}
    with pytest.raises(AlreadyExists):
        r.call_as(admin, "create_catalog", name="SALES")
    r.call_as(admin, "create_schema", catalog_name="sales", name="raw")
    r.call_as(admin, "update_catalog", full_name="sales", new_name="revenue", comment="renamed")
    assert r.call_as(admin, "get_schema", full_name="revenue.raw")["catalog_name"] == "revenue"
    with pytest.raises(NotFound):
        r.call_as(admin, "get_catalog", full_name="sales")
    with pytest.raises(Conflict):
        r.call_as(admin, "delete_catalog", full_name="revenue")
    r.call_as(admin, "delete_catalog", full_name="revenue", force=True)
    with pytest.raises(NotFound):
        r.call_as(admin, "get_schema", full_name="revenue.raw")


def test_system_catalog_is_protected(registry, admin):
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "delete_catalog", full_name="system", force=True)
    registry.call_as(admin, "create_principal", name="u")
    with pytest.raises(PermissionDenied):
        registry.call_as(registry.principals.caller("u"), "create_schema", catalog_name="system", name="x")


def test_pagination(registry, admin):
    for i in range(7):
        registry.call_as(admin, "create_schema", catalog_name="main", name=f"s{i}")
    seen, token = [], None
    while True:
        page = registry.call_as(admin, "list_schemas", catalog_name="main", max_results=3, page_token=token)
        seen += [s["name"] for s in page["schemas"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == ["default"] + [f"s{i}" for i in range(7)]
    for bad in (-1, "x", True):
        with pytest.raises(InvalidArgument):
            registry.call_as(admin, "list_schemas", catalog_name="main", max_results=bad)


@pytest.mark.parametrize("name", ["..", "%2e%2e", "a\x00", "x" * 10_000, "ｍain", "'; DROP TABLE securables;--",
                                  "a.b", "", "a/b"])
def test_bad_names_change_nothing(registry, admin, name):
    before = registry.call_as(admin, "list_catalogs")
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "create_catalog", name=name)
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "create_schema", catalog_name="main", name=name)
    assert registry.call_as(admin, "list_catalogs") == before


def test_owner_transfer_and_tags(registry, admin):
    r = registry
    r.call_as(admin, "create_principal", name="newowner")
    r.call_as(admin, "create_schema", catalog_name="main", name="t")
    info = r.call_as(admin, "update_schema", full_name="main.t", owner="newowner", tags={"pii": "no"})
    assert info["owner"] == "newowner" and info["tags"] == {"pii": "no"}
    with pytest.raises(NotFound):
        r.call_as(admin, "update_schema", full_name="main.t", owner="ghost")
    with pytest.raises(InvalidArgument):
        r.call_as(admin, "update_schema", full_name="main.t")


def test_unknown_operation_and_bad_arguments(registry, admin):
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "drop_everything")
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "get_catalog", nonsense=1)
