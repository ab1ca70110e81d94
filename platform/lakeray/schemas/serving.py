"""Request bodies of the Databricks serving-endpoints API (``/api/2.0/serving-endpoints``).

The config itself is checked field by field in :mod:`lakeray.serving.config`, whose messages
name the offending field (``config.served_entities[0].entity_version: ...``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from lakeray.schemas.catalog import Body


class CreateServingEndpoint(Body):
    name: str = Field(description="Letters, digits, '-' and '_', at most 63 characters.")
    config: dict[str, Any] | None = Field(None, description="served_entities and traffic_config.")
    tags: list[dict[str, Any]] | None = None
    description: str | None = None
    ai_gateway: dict[str, Any] | None = None
    rate_limits: list[dict[str, Any]] | None = None
    route_optimized: bool | None = None
    budget_policy_id: str | None = None


class UpdateServingEndpointConfig(Body):
    served_entities: list[Any] | None = None
    served_models: list[Any] | None = None
    traffic_config: dict[str, Any] | None = None
    auto_capture_config: dict[str, Any] | None = None


class ReplaceServingEndpoint(Body):
    """PUT on the endpoint itself: its new config (as ``PUT .../config`` takes it)."""

    config: UpdateServingEndpointConfig


class PatchServingEndpointTags(Body):
    add_tags: list[dict[str, Any]] | None = None
    delete_tags: list[str] | None = None


class PutAiGateway(Body):
    """``PUT .../{name}/ai-gateway``: each part is checked in :mod:`lakeray.serving.gateway_config`."""

    rate_limits: list[Any] | None = None
    usage_tracking_config: dict[str, Any] | None = None
    inference_table_config: dict[str, Any] | None = None
    guardrails: dict[str, Any] | None = None
    fallback_config: dict[str, Any] | None = None
