"""Serving endpoints as catalog securables: create, read, list, update the config, delete, and
the routes the API ingress sends queries along.

Plain Python over the metadata DB. An endpoint is a top-level ``serving_endpoint`` securable
(owner, grants CAN_VIEW < CAN_QUERY < CAN_MANAGE); its ``spec`` holds the config asked for and
its version. What runs is the deployer's business (:mod:`lakeray.serving.deployer`), recorded
in ``serving_state``; a response shows the running config as ``config`` and a config still
rolling out as ``pending_config``, as Databricks does.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.engine import Connection

from lakeray.catalog import authz
from lakeray.catalog import securables as rows
from lakeray.catalog.audit import AuditLog, denial
from lakeray.catalog.privileges import Privilege as P
from lakeray.catalog.privileges import SecurableType as ST
from lakeray.catalog.securables import Securable
from lakeray.catalog.service import CatalogService
from lakeray.errors import InvalidArgument, NotFound, PermissionDenied
from lakeray.ids import now_ms
from lakeray.principals.service import Caller
from lakeray.serving.config import normalise
from lakeray.serving.gateway_config import normalise_ai_gateway, render_ai_gateway
from lakeray.serving.gateway_log import (
    INFERENCE_SCHEMA,
    USAGE_SCHEMA,
    USAGE_TABLE,
    ensure_table,
    inference_table,
)
from lakeray.serving.tables import serving_state
from lakeray.storage.db import Database

LEVELS = (P.CAN_MANAGE, P.CAN_QUERY, P.CAN_VIEW)
#: the platform itself: resolves served versions (the endpoint's writer was checked for EXECUTE)
#: and owns the usage table
SYSTEM = Caller("system", kind="service_principal", is_admin=True)


def initial_state() -> dict:
    """The state of an endpoint nothing has been deployed for yet."""
    return {"config_version": 0, "config": None, "routes": [], "ready": False, "update": "IN_PROGRESS",
            "message": "", "entities": {}, "failed_version": None}


def read_state(conn: Connection, endpoint_id: str) -> dict:
    """The deployer's record of an endpoint (the initial state if it has none yet)."""
    raw = conn.execute(select(serving_state.c.state).where(serving_state.c.endpoint_id == endpoint_id)).scalar()
    return {**initial_state(), **json.loads(raw)} if raw else initial_state()


def write_state(conn: Connection, endpoint_id: str, state: dict) -> None:
    """Replace an endpoint's deployment record (the deployer's one write)."""
    values = {"state": json.dumps(state), "updated_at": now_ms()}
    if conn.execute(select(serving_state.c.endpoint_id).where(serving_state.c.endpoint_id == endpoint_id)).first():
        conn.execute(serving_state.update().where(serving_state.c.endpoint_id == endpoint_id).values(**values))
    else:
        conn.execute(serving_state.insert().values(endpoint_id=endpoint_id, **values))


def _tags(raw: object) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, dict) and isinstance(t.get("key"), str) and t["key"]
                                            and isinstance(t.get("value", ""), str) for t in raw):
        raise InvalidArgument("tags: expected a list of {\"key\": ..., \"value\": ...} with string keys and values")
    return [{"key": t["key"], "value": t.get("value", "")} for t in raw]


class ServingService:
    """The control plane of serving endpoints."""

    def __init__(self, db: Database, catalog: CatalogService, audit: AuditLog, models, tables, secrets):
        self.db, self.catalog, self.audit, self.models = db, catalog, audit, models
        self.tables, self.secrets = tables, secrets
        catalog.purge.append(self._purge)

    # -- helpers ---------------------------------------------------------------------------
    def _endpoint(self, conn: Connection, caller: Caller, name: object, need: P, action: str) -> Securable:
        _, full = self.catalog.parse(ST.SERVING_ENDPOINT, name)
        obj = rows.find(conn, ST.SERVING_ENDPOINT, full)
        if obj is None:
            raise NotFound(f"serving endpoint '{full}' does not exist")
        try:
            authz.require(conn, caller, obj, need)
        except PermissionDenied as e:
            raise denial(e, action, ST.SERVING_ENDPOINT.value, full) from None
        return obj

    def _check_entities(self, caller: Caller, config: dict) -> None:
        """Every served model and version exists, and the caller may run it (EXECUTE)."""
        for i, entity in enumerate(config["served_entities"]):
            if "external_model" in entity:
                self._check_key(caller, entity["external_model"]["key"], i)
                continue
            try:
                resolve_version(self.models, caller, entity["entity_name"], entity["entity_version"])
            except NotFound as e:
                raise InvalidArgument(f"config.served_entities[{i}]: {e.message}") from None
            except PermissionDenied as e:
                raise PermissionDenied(f"config.served_entities[{i}]: {e.message} (serving a model needs "
                                       "EXECUTE on it)") from None

    def _check_key(self, caller: Caller, ref: dict, i: int) -> None:
        """An external model's key exists and the caller may use it (READ on its scope)."""
        try:
            self.secrets.check_readable(caller, ref["scope"], ref["key"])
        except NotFound as e:
            raise InvalidArgument(f"config.served_entities[{i}].external_model: {e.message}") from None
        except PermissionDenied as e:
            raise PermissionDenied(f"config.served_entities[{i}].external_model: {e.message} (serving an "
                                   "external model needs READ on its key's secret scope)") from None

    def render(self, conn: Connection, caller: Caller, obj: Securable) -> dict:
        """The Databricks-shaped endpoint: running config, pending config, state, caller's level."""
        state = read_state(conn, obj.id)
        desired, version = obj.spec["config"], obj.spec["config_version"]
        held = authz.effective(conn, caller, obj)
        out = {
            "name": obj.name, "id": obj.id, "creator": obj.created_by, "creation_timestamp": obj.created_at,
            "last_updated_timestamp": obj.updated_at, "description": obj.comment,
            "tags": obj.spec.get("tags", []), "permission_level": next((p.value for p in LEVELS if p in held), None),
            "state": {"ready": "READY" if state["ready"] else "NOT_READY",
                      "config_update": "NOT_UPDATING" if version == state["config_version"] else "IN_PROGRESS"},
            "task": obj.spec.get("task"), "ai_gateway": render_ai_gateway(obj.spec.get("ai_gateway")),
        }
        if state["update"] == "UPDATE_FAILED" and state["failed_version"] == version:
            out["state"]["config_update"] = "UPDATE_FAILED"
        if state["message"]:
            out["state"]["message"] = state["message"]

        def shaped(config: dict, config_version: int) -> dict:
            entities = []
            for e in config["served_entities"]:
                deployed = state["entities"].get(e["name"]) or {"deployment": "DEPLOYMENT_CREATING", "message": ""}
                entities.append({**e, "state": {"deployment": deployed["deployment"],
                                                "deployment_state_message": deployed["message"]}})
            return {"served_entities": entities, "traffic_config": config["traffic_config"],
                    "config_version": config_version}

        if state["config"] is not None:
            out["config"] = shaped(state["config"], state["config_version"])
        if version != state["config_version"]:
            out["pending_config"] = {**shaped(desired, version), "start_time": obj.spec.get("config_updated_at")}
        return {k: v for k, v in out.items() if v is not None}

    # -- operations ------------------------------------------------------------------------
    def create_endpoint(self, caller: Caller, name: object, config: object = None, tags: object = None,
                        description: object = None, ai_gateway: object = None, route_optimized: object = None,
                        rate_limits: object = None, budget_policy_id: object = None) -> dict:
        """Create an endpoint serving ``config``; the caller owns it (CAN_MANAGE). Deployment
        starts at once and is reported in ``state``."""
        if config is None:
            raise InvalidArgument("config: required (served_entities and traffic_config)")
        if ai_gateway is not None or rate_limits:
            raise InvalidArgument("ai_gateway: configure it with PUT /api/2.0/serving-endpoints/{name}/ai-gateway "
                                  "once the endpoint exists")
        if route_optimized:
            raise InvalidArgument("route_optimized: not supported; every endpoint takes the direct route")
        normalised = normalise(config)
        spec = {"config": normalised, "config_version": 1, "config_updated_at": now_ms(), "tags": _tags(tags)}
        self._check_entities(caller, normalised)
        created = self.catalog.create(caller, ST.SERVING_ENDPOINT, name, comment=description, spec=spec)
        return self.get_endpoint(caller, created["name"])

    def get_endpoint(self, caller: Caller, name: object) -> dict:
        """One endpoint (CAN_VIEW)."""
        with self.db.read() as conn:
            return self.render(conn, caller, self._endpoint(conn, caller, name, P.CAN_VIEW, "get_serving_endpoint"))

    def list_endpoints(self, caller: Caller) -> dict:
        """Every endpoint the caller may view, by name."""
        with self.db.read() as conn:
            found = [obj for obj in rows.top_level(conn, ST.SERVING_ENDPOINT) if authz.visible(conn, caller, obj)]
            return {"endpoints": [self.render(conn, caller, obj) for obj in found]}

    def update_config(self, caller: Caller, name: object, served_entities: object = None,
                      served_models: object = None, traffic_config: object = None,
                      auto_capture_config: object = None) -> dict:
        """Replace the endpoint's config (CAN_MANAGE); it rolls out as ``pending_config`` while the
        running config keeps answering, and becomes ``config`` once every entity is ready."""
        normalised = normalise({k: v for k, v in {
            "served_entities": served_entities, "served_models": served_models, "traffic_config": traffic_config,
            "auto_capture_config": auto_capture_config}.items() if v is not None})
        with self.db.read() as conn:  # the endpoint's rights first: they say less to a stranger
            self._endpoint(conn, caller, name, P.CAN_MANAGE, "update_serving_endpoint")
        self._check_entities(caller, normalised)
        with self.db.write() as conn:
            obj = self._endpoint(conn, caller, name, P.CAN_MANAGE, "update_serving_endpoint")
            spec = {**obj.spec, "config": normalised, "config_version": obj.spec["config_version"] + 1,
                    "config_updated_at": now_ms()}
            rows.save(conn, obj, caller.name, spec=spec)
            self.audit.record(caller.name, "update_serving_endpoint", ST.SERVING_ENDPOINT.value, obj.name,
                              conn=conn, detail={"config_version": spec["config_version"]})
            return self.render(conn, caller, obj)

    def update_tags(self, caller: Caller, name: object, add_tags: object = None, delete_tags: object = None) -> list:
        """Add or replace tags and delete tags by key (CAN_MANAGE); returns the tags."""
        adding = _tags(add_tags)
        if delete_tags is not None and (not isinstance(delete_tags, list)
                                        or not all(isinstance(k, str) for k in delete_tags)):
            raise InvalidArgument("delete_tags: expected a list of keys")
        with self.db.write() as conn:
            obj = self._endpoint(conn, caller, name, P.CAN_MANAGE, "update_serving_endpoint")
            kept = {t["key"]: t["value"] for t in obj.spec.get("tags", []) if t["key"] not in (delete_tags or [])}
            kept.update({t["key"]: t["value"] for t in adding})
            tags = [{"key": k, "value": v} for k, v in sorted(kept.items())]
            rows.save(conn, obj, caller.name, spec={**obj.spec, "tags": tags})
            return tags

    def delete_endpoint(self, caller: Caller, name: object) -> None:
        """Drop the endpoint and its grants (CAN_MANAGE); the deployer removes what runs."""
        with self.db.write() as conn:
            obj = self._endpoint(conn, caller, name, P.CAN_MANAGE, "delete_serving_endpoint")
            rows.delete_tree(conn, obj)
            self._purge(conn, [obj])
            self.audit.record(caller.name, "delete_serving_endpoint", ST.SERVING_ENDPOINT.value, obj.name, conn=conn)

    def put_ai_gateway(self, caller: Caller, name: object, rate_limits: object = None,
                       usage_tracking_config: object = None, inference_table_config: object = None,
                       guardrails: object = None, fallback_config: object = None) -> dict:
        """Replace the endpoint's AI gateway config (CAN_MANAGE); returns it. An enabled inference
        table is created now, as the caller (who needs CREATE TABLE in its schema and owns it)."""
        with self.db.read() as conn:
            obj = self._endpoint(conn, caller, name, P.CAN_MANAGE, "update_serving_endpoint")
        gateway = normalise_ai_gateway({
            "rate_limits": rate_limits, "usage_tracking_config": usage_tracking_config,
            "inference_table_config": inference_table_config, "guardrails": guardrails,
            "fallback_config": fallback_config}, obj.name)
        if gateway["inference_table_config"]:
            ensure_table(self.tables, caller, inference_table(gateway["inference_table_config"]), INFERENCE_SCHEMA,
                         f"Inference table of serving endpoint {obj.name} (lakeray AI gateway)")
        if gateway["usage_tracking_config"]["enabled"]:
            ensure_table(self.tables, SYSTEM, USAGE_TABLE, USAGE_SCHEMA,
                         "Serving endpoint usage: one row per call (lakeray AI gateway)")
        with self.db.write() as conn:
            obj = self._endpoint(conn, caller, name, P.CAN_MANAGE, "update_serving_endpoint")
            # a config with every part off is no config: the query path then skips the gateway
            rows.save(conn, obj, caller.name, spec={**obj.spec, "ai_gateway": gateway if render_ai_gateway(gateway)
                                                    else None})
            self.audit.record(caller.name, "put_ai_gateway", ST.SERVING_ENDPOINT.value, obj.name, conn=conn,
                              detail={"parts": sorted(render_ai_gateway(gateway) or {})})
        return render_ai_gateway(gateway) or {}

    def query_routes(self, caller: Caller, name: object) -> dict:
        """What the ingress needs to answer a query (CAN_QUERY): the running routes, the AI
        gateway config and who the caller is (for its rate limits)."""
        with self.db.read() as conn:
            obj = self._endpoint(conn, caller, name, P.CAN_QUERY, "query_serving_endpoint")
            state = read_state(conn, obj.id)
            return {"name": obj.name, "id": obj.id, "routes": state["routes"], "ready": state["ready"],
                    "message": state["message"], "gateway": obj.spec.get("ai_gateway"),
                    "caller": {"name": caller.name, "kind": caller.kind, "groups": sorted(caller.groups)}}

    @staticmethod
    def _purge(conn: Connection, doomed: list[Securable]) -> None:
        ids = [o.id for o in doomed if o.type == ST.SERVING_ENDPOINT]
        if ids:
            conn.execute(serving_state.delete().where(serving_state.c.endpoint_id.in_(ids)))


def resolve_version(models, caller: Caller, model: str, version_or_alias: str) -> dict:
    """The model version a served entity names (a number or an alias), checked with EXECUTE."""
    if version_or_alias.isdigit():
        return models.get_version(caller, model, int(version_or_alias))
    return models.get_version_by_alias(caller, model, version_or_alias)
