"""A serving endpoint's config, as the Databricks serving-endpoints API takes it, checked and
normalised: served entities (a catalog model and a version or alias), how each scales, and the
traffic split between them.

Databricks shapes::

    {"served_entities": [{"entity_name": "main.default.m", "entity_version": "1", "name": "m-1",
                          "workload_size": "Small", "scale_to_zero_enabled": true}],
     "traffic_config": {"routes": [{"served_model_name": "m-1", "traffic_percentage": 100}]}}

lakeray also takes ``min_replicas``/``max_replicas`` (instead of ``workload_size``),
``max_ongoing_requests`` (per replica), ``max_queued_requests`` and ``timeout_s``. The legacy
``served_models`` (``model_name``/``model_version``) is accepted and read as served entities. A
served entity may instead be an ``external_model`` (see :mod:`lakeray.serving.external`).
"""

from __future__ import annotations

import re

from lakeray.errors import InvalidArgument

SERVED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
#: workload size -> (min replicas when not scaled to zero, max replicas), Databricks' concurrency
#: bands (Small 0-4, Medium 8-16, Large 16-64) read as replicas of 4 concurrent requests each.
WORKLOAD_SIZES = {"Small": (1, 1), "Medium": (2, 4), "Large": (4, 16)}
MAX_REPLICAS = 64
DEFAULTS = {"max_ongoing_requests": 8, "max_queued_requests": 64, "timeout_s": 60.0}

_ENTITY_KEYS = {"entity_name", "entity_version", "name", "workload_size", "workload_type", "scale_to_zero_enabled",
                "min_replicas", "max_replicas", "max_ongoing_requests", "max_queued_requests", "timeout_s",
                "environment_vars", "instance_profile_arn", "min_provisioned_throughput",
                "max_provisioned_throughput", "external_model"}


def _int(entity: dict, key: str, where: str, lo: int, hi: int, default: int | None = None) -> int | None:
    value = entity.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, str) and value.isdigit()):
        raise InvalidArgument(f"{where}.{key}: expected an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise InvalidArgument(f"{where}.{key}: must be between {lo} and {hi}, got {value}")
    return value


def _entity(raw: object, i: int) -> dict:
    where = f"config.served_entities[{i}]"
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: expected an object")
    if "model_name" in raw:  # the legacy served_models shape
        raw = {**{k: v for k, v in raw.items() if k not in ("model_name", "model_version")},
               "entity_name": raw["model_name"], "entity_version": raw.get("model_version")}
    unknown = sorted(set(raw) - _ENTITY_KEYS)
    if unknown:
        raise InvalidArgument(f"{where}: unknown field {unknown[0]!r}")
    external = None
    if raw.get("external_model") is not None:
        from lakeray.serving.external import normalise_external

        if raw.get("entity_name") is not None or raw.get("entity_version") is not None:
            raise InvalidArgument(f"{where}: give entity_name/entity_version or external_model, not both")
        external = normalise_external(raw["external_model"], where)
        model, version = None, None
        default_name = re.sub(r"[^A-Za-z0-9_.-]", "-", external["name"])[:63].strip("-.") or "external"
    else:
        model = raw.get("entity_name")
        if not isinstance(model, str) or len(model.split(".")) != 3 or not all(model.split(".")):
            raise InvalidArgument(f"{where}.entity_name: expected a catalog model as catalog.schema.model, "
                                  f"got {model!r}")
        version = raw.get("entity_version")
        if isinstance(version, int) and not isinstance(version, bool):
            version = str(version)
        if not isinstance(version, str) or not version.strip():
            raise InvalidArgument(f"{where}.entity_version: expected a version number or an alias, got {version!r}")
        version = version.strip()
        default_name = f"{model.split('.')[-1]}-{version}"
    name = raw.get("name") or default_name
    if not isinstance(name, str) or not SERVED_NAME.fullmatch(name):
        raise InvalidArgument(f"{where}.name: {name!r} is not a valid served entity name")
    scale_to_zero = raw.get("scale_to_zero_enabled", False)
    if not isinstance(scale_to_zero, bool):
        raise InvalidArgument(f"{where}.scale_to_zero_enabled: expected true or false")
    size = raw.get("workload_size")
    if size is not None and size not in WORKLOAD_SIZES:
        raise InvalidArgument(f"{where}.workload_size: must be one of {', '.join(WORKLOAD_SIZES)}, got {size!r}")
    size_min, size_max = WORKLOAD_SIZES[size or "Small"]
    max_replicas = _int(raw, "max_replicas", where, 1, MAX_REPLICAS, size_max)
    min_replicas = _int(raw, "min_replicas", where, 0, MAX_REPLICAS, 0 if scale_to_zero else min(size_min, max_replicas))
    if min_replicas > max_replicas:
        raise InvalidArgument(f"{where}: min_replicas ({min_replicas}) is over max_replicas ({max_replicas})")
    if scale_to_zero and min_replicas:
        raise InvalidArgument(f"{where}: scale_to_zero_enabled needs min_replicas 0, got {min_replicas}")
    timeout = raw.get("timeout_s", DEFAULTS["timeout_s"])
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise InvalidArgument(f"{where}.timeout_s: expected seconds in (0, 3600], got {timeout!r}")
    env = raw.get("environment_vars") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise InvalidArgument(f"{where}.environment_vars: expected an object of strings")
    out = {
        "name": name, "entity_name": model, "entity_version": version,
        "workload_size": size or "Small", "scale_to_zero_enabled": scale_to_zero or min_replicas == 0,
        "min_replicas": min_replicas, "max_replicas": max_replicas,
        "max_ongoing_requests": _int(raw, "max_ongoing_requests", where, 1, 1024, DEFAULTS["max_ongoing_requests"]),
        "max_queued_requests": _int(raw, "max_queued_requests", where, 0, 100000, DEFAULTS["max_queued_requests"]),
        "timeout_s": float(timeout), "environment_vars": env,
    }
    if external is not None:
        del out["entity_name"], out["entity_version"]
        out["external_model"] = external
    return out


def _routes(raw: object, names: list[str]) -> list[dict]:
    if raw is None:
        if len(names) == 1:
            return [{"served_model_name": names[0], "traffic_percentage": 100}]
        raise InvalidArgument("config.traffic_config: required when more than one entity is served")
    if not isinstance(raw, dict) or not isinstance(raw.get("routes"), list) or not raw["routes"]:
        raise InvalidArgument("config.traffic_config.routes: expected a non-empty list")
    out, seen = [], set()
    for i, route in enumerate(raw["routes"]):
        where = f"config.traffic_config.routes[{i}]"
        if not isinstance(route, dict):
            raise InvalidArgument(f"{where}: expected an object")
        target = route.get("served_model_name") or route.get("served_entity_name")
        if target not in names:
            raise InvalidArgument(f"{where}.served_model_name: {target!r} is not a served entity of this config")
        if target in seen:
            raise InvalidArgument(f"{where}.served_model_name: {target!r} has two routes")
        seen.add(target)
        pct = route.get("traffic_percentage")
        if isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100:
            raise InvalidArgument(f"{where}.traffic_percentage: expected an integer 0-100, got {pct!r}")
        out.append({"served_model_name": target, "traffic_percentage": pct})
    total = sum(r["traffic_percentage"] for r in out)
    if total != 100:
        raise InvalidArgument(f"config.traffic_config.routes: traffic percentages add up to {total}, not 100")
    return out


def normalise(config: object) -> dict:
    """The checked config with every default filled in: ``{"served_entities": [...],
    "traffic_config": {"routes": [...]}}``; InvalidArgument names the first bad field."""
    if not isinstance(config, dict):
        raise InvalidArgument("config: expected an object")
    unknown = sorted(set(config) - {"served_entities", "served_models", "traffic_config", "auto_capture_config"})
    if unknown:
        raise InvalidArgument(f"config: unknown field {unknown[0]!r}")
    if config.get("auto_capture_config") is not None:
        raise InvalidArgument("config.auto_capture_config: use the AI gateway's inference_table_config instead")
    raw = config.get("served_entities") if config.get("served_entities") is not None else config.get("served_models")
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument("config.served_entities: expected a non-empty list")
    if len(raw) > 15:
        raise InvalidArgument("config.served_entities: at most 15 entities per endpoint")
    entities = [_entity(e, i) for i, e in enumerate(raw)]
    names = [e["name"] for e in entities]
    if len(set(names)) != len(names):
        raise InvalidArgument("config.served_entities: two entities have the same name")
    return {"served_entities": entities, "traffic_config": {"routes": _routes(config.get("traffic_config"), names)}}
