"""Registry dispatch: request ids make writes exactly-once, across retries and lost results."""

import pytest
from sqlalchemy import select, update

from lakeray.errors import AlreadyExists, InvalidArgument, PermissionDenied
from lakeray.storage.models import idempotency


def test_a_retried_create_returns_the_first_result(registry, admin):
    first = registry.call_as(admin, "create_catalog", request_id="rid-1", name="once")
    again = registry.call_as(admin, "create_catalog", request_id="rid-1", name="once")
    assert again == first
    with pytest.raises(AlreadyExists):  # a different request is a different write
        registry.call_as(admin, "create_catalog", request_id="rid-2", name="once")


def test_an_applied_write_whose_result_was_lost_is_answered_from_state(registry, admin):
    made = registry.call_as(admin, "create_schema", request_id="rid-3", catalog_name="main", name="lost")
    with registry.db.write() as conn:  # as if the actor died between commit and storing the result
        conn.execute(update(idempotency).where(idempotency.c.request_id == "rid-3").values(result=""))
    again = registry.call_as(admin, "create_schema", request_id="rid-3", catalog_name="main", name="lost")
    assert again["schema_id"] == made["schema_id"]


def test_the_record_is_in_the_write_transaction(registry, admin):
    """A write that fails (rolls back) leaves no record, so its retry really runs."""
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "update_schema", request_id="rid-4", full_name="main.default")
    assert registry.db.applied("rid-4") is None
    registry.call_as(admin, "create_principal", name="nobody")
    with pytest.raises(PermissionDenied):
        registry.call_as(registry.principals.caller("nobody"), "create_catalog", request_id="rid-5", name="x")
    assert registry.db.applied("rid-5") is None  # the denial was audited, not recorded as applied


def test_request_ids_cannot_be_reused_for_another_call(registry, admin):
    registry.call_as(admin, "create_catalog", request_id="rid-6", name="a1")
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "create_catalog", request_id="rid-6", name="a2")
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "create_catalog", request_id="x" * 200, name="a3")


def test_token_secrets_are_never_stored_for_replay(registry, admin):
    made = registry.call_as(admin, "create_token", request_id="rid-7")
    with registry.db.read() as conn:
        stored = conn.execute(select(idempotency.c.result)).scalars().all()
    assert all(made["token_value"] not in text for text in stored)
