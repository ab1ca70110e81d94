"""An endpoint's AI gateway config, as ``PUT /api/2.0/serving-endpoints/{name}/ai-gateway``
takes it (Databricks' shape), checked field by field and normalised::

    {"rate_limits": [{"calls": 60, "tokens": 10000, "key": "user", "principal": "alice",
                      "renewal_period": "minute"}],
     "usage_tracking_config": {"enabled": true},
     "inference_table_config": {"catalog_name": "main", "schema_name": "logs",
                                "table_name_prefix": "chat", "enabled": true},
     "guardrails": {"input": {...}, "output": {...}},          # see lakeray.serving.guardrails
     "fallback_config": {"enabled": true}}

Every part is optional; a PUT replaces the whole config. Messages name the offending field.
"""

from __future__ import annotations

from lakeray.catalog import names
from lakeray.errors import InvalidArgument
from lakeray.serving.guardrails import normalise_guardrails

KEYS = ("user", "user_group", "service_principal", "endpoint")
MAX_LIMITS = 20  # Databricks' limits per endpoint
MAX_GROUP_LIMITS = 5
_TOP = {"rate_limits", "usage_tracking_config", "inference_table_config", "guardrails", "fallback_config"}


def _enabled(raw: object, where: str) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, dict) or set(raw) - {"enabled"}:
        raise InvalidArgument(f"{where}: expected {{\"enabled\": true|false}}")
    if not isinstance(raw.get("enabled", False), bool):
        raise InvalidArgument(f"{where}.enabled: expected true or false")
    return raw.get("enabled", False)


def _count(limit: dict, key: str, where: str) -> int | None:
    value = limit.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{where}.{key}: expected a positive integer, got {value!r}")
    return value


def _limit(raw: object, i: int) -> dict:
    where = f"rate_limits[{i}]"
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: expected an object")
    unknown = sorted(set(raw) - {"calls", "tokens", "key", "principal", "renewal_period"})
    if unknown:
        raise InvalidArgument(f"{where}.{unknown[0]}: unknown field")
    calls, tokens = _count(raw, "calls", where), _count(raw, "tokens", where)
    if calls is None and tokens is None:
        raise InvalidArgument(f"{where}: set calls, tokens or both (per renewal_period)")
    key = raw.get("key", "user")
    if key not in KEYS:
        raise InvalidArgument(f"{where}.key: expected one of {', '.join(KEYS)}, got {key!r}")
    if raw.get("renewal_period", "minute") != "minute":
        raise InvalidArgument(f"{where}.renewal_period: only \"minute\" is supported")
    principal = raw.get("principal")
    if principal is not None and (not isinstance(principal, str) or not principal.strip()):
        raise InvalidArgument(f"{where}.principal: expected a principal's name")
    if key == "endpoint" and principal is not None:
        raise InvalidArgument(f"{where}.principal: an endpoint limit applies to every caller; omit principal")
    if key == "user_group" and principal is None:
        raise InvalidArgument(f"{where}.principal: a user_group limit names its group")
    out = {"key": key, "renewal_period": "minute"}
    out.update({k: v for k, v in (("calls", calls), ("tokens", tokens), ("principal", principal)) if v is not None})
    return out


def _rate_limits(raw: object) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidArgument("rate_limits: expected a list")
    if len(raw) > MAX_LIMITS:
        raise InvalidArgument(f"rate_limits: at most {MAX_LIMITS} limits per endpoint")
    limits = [_limit(r, i) for i, r in enumerate(raw)]
    seen = set()
    for i, limit in enumerate(limits):
        scope = (limit["key"], limit.get("principal"))
        if scope in seen:
            who = f" for {scope[1]}" if scope[1] else ""
            raise InvalidArgument(f"rate_limits[{i}]: a second {scope[0]} limit{who}; merge calls and tokens "
                                  "into one limit")
        seen.add(scope)
    if sum(1 for limit in limits if limit["key"] == "user_group") > MAX_GROUP_LIMITS:
        raise InvalidArgument(f"rate_limits: at most {MAX_GROUP_LIMITS} user_group limits per endpoint")
    return limits


def _inference_table(raw: object, endpoint: str) -> dict | None:
    where = "inference_table_config"
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: expected an object")
    unknown = sorted(set(raw) - {"catalog_name", "schema_name", "table_name_prefix", "enabled"})
    if unknown:
        raise InvalidArgument(f"{where}.{unknown[0]}: unknown field")
    if not _enabled({"enabled": raw.get("enabled", False)}, where):
        return None
    out = {}
    for field in ("catalog_name", "schema_name"):
        if not isinstance(raw.get(field), str):
            raise InvalidArgument(f"{where}.{field}: required when the inference table is enabled")
        out[field] = names.identifier(raw[field], f"{where}.{field}")
    prefix = raw.get("table_name_prefix") or endpoint.replace("-", "_")
    if not isinstance(prefix, str):
        raise InvalidArgument(f"{where}.table_name_prefix: expected a string")
    out["table_name_prefix"] = names.identifier(prefix, f"{where}.table_name_prefix")
    out["enabled"] = True
    return out


def normalise_ai_gateway(raw: object, endpoint: str) -> dict:
    """The checked, canonical gateway config of endpoint ``endpoint`` (InvalidArgument naming the
    field otherwise). Absent parts come back off: no limits, no tracking, no table, no guardrails."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidArgument("ai_gateway: expected an object")
    unknown = sorted(set(raw) - _TOP - {"name"})
    if unknown:
        raise InvalidArgument(f"{unknown[0]}: unknown field")
    return {
        "rate_limits": _rate_limits(raw.get("rate_limits")),
        "usage_tracking_config": {"enabled": _enabled(raw.get("usage_tracking_config"), "usage_tracking_config")},
        "inference_table_config": _inference_table(raw.get("inference_table_config"), endpoint),
        "guardrails": normalise_guardrails(raw.get("guardrails")),
        "fallback_config": {"enabled": _enabled(raw.get("fallback_config"), "fallback_config")},
    }


def render_ai_gateway(config: dict | None) -> dict | None:
    """The config as the API shows it (parts that are off left out, as Databricks does)."""
    if not config:
        return None
    out = {}
    if config["rate_limits"]:
        out["rate_limits"] = config["rate_limits"]
    if config["usage_tracking_config"]["enabled"]:
        out["usage_tracking_config"] = {"enabled": True}
    if config["inference_table_config"]:
        out["inference_table_config"] = config["inference_table_config"]
    if config["guardrails"]:
        out["guardrails"] = {k: v for k, v in config["guardrails"].items() if v}
    if config["fallback_config"]["enabled"]:
        out["fallback_config"] = {"enabled": True}
    return out
