"""Request bodies of lakeray's own routes: principals, tokens, table data, functions, lineage."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from lakeray.schemas.catalog import Body


class CreatePrincipal(Body):
    name: str
    kind: Literal["user", "group", "service_principal"] = "user"
    display_name: str | None = None
    is_admin: bool = False


class UpdatePrincipal(Body):
    active: bool | None = None
    is_admin: bool | None = None
    display_name: str | None = None


class GroupMember(Body):
    member: str


class CreateToken(Body):
    lifetime_seconds: int | None = None
    comment: str | None = None


class CreateTokenOnBehalf(Body):
    application_id: str = Field(description="The principal the token is for.")
    lifetime_seconds: int | None = None
    comment: str | None = None


class RevokeToken(Body):
    token_id: str


class AppendRows(Body):
    """JSON rows for a table write (Arrow IPC bodies are accepted too)."""

    rows: list[dict[str, Any]]
    request_id: str | None = None
    sources: list[str] | None = None
    job_id: str | None = None
    run_id: str | None = None


class DeleteRows(Body):
    predicate: list[list[Any]] = Field(description="[[column, op, value], ...], all must hold")
    request_id: str | None = None


class ExecuteFunction(Body):
    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout_s: int | None = None


class LineageEdge(Body):
    source_type: str
    source_name: str
    target_type: str
    target_name: str
    run_id: str | None = None
    job_id: str | None = None
