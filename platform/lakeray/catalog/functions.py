"""Python catalog functions: Unity Catalog ``CreateFunction`` definitions, run in Ray tasks.

A function is stored as its validated ``CreateFunction`` JSON (the securable's ``spec``); its
``routine_definition`` is a Databricks-style Python body (parameters are local variables, the
body ends with ``return ...``). Executing needs EXECUTE; arguments are checked strictly against
the declared types (``"5"`` and ``True`` are not INTs), the body runs in a Ray task
(:class:`RayTaskRunner`) and the result is checked against ``data_type``. On the wire BINARY is
base64 text and DATE/TIMESTAMP ISO 8601 text (the function gets ``bytes``/``date``/``datetime``);
ARRAY, MAP and STRUCT are list/dict of JSON-like values (element types are not checked); NULL
(``None``) is accepted for every type. A function body is arbitrary Python running with the Ray
worker's rights: it is not a sandbox.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import keyword
import math
import pickle
import re
import textwrap
import time

from lakeray.catalog import names
from lakeray.catalog.privileges import Privilege, SecurableType
from lakeray.catalog.service import MAX_COMMENT, CatalogService
from lakeray.errors import DeadlineExceeded, InvalidArgument, LakerayError, Unavailable
from lakeray.principals.service import Caller

TYPES = tuple("BOOLEAN BYTE SHORT INT LONG FLOAT DOUBLE STRING BINARY DATE TIMESTAMP ARRAY MAP STRUCT".split())
INT_BITS = {"BYTE": 8, "SHORT": 16, "INT": 32, "LONG": 64}
#: limits: parameters per function, body characters, other text fields, seconds per call, nesting.
MAX_PARAMS, MAX_BODY, MAX_TEXT, MAX_TIMEOUT_S, MAX_DEPTH = 100, 256 * 1024, 65536, 3600, 32
FIELDS = frozenset((
    "name catalog_name schema_name input_params data_type full_data_type return_params routine_body "
    "routine_definition routine_dependencies parameter_style is_deterministic sql_data_access is_null_call "
    "security_type specific_name comment properties external_language").split())
PARAM_FIELDS = frozenset((
    "name type_text type_json type_name type_precision type_scale type_interval_type position "
    "parameter_mode parameter_type parameter_default comment").split())
#: top-level options: (allowed values, default); Python (EXTERNAL) functions allow one value for most.
OPTIONS = (("parameter_style", ("S",), "S"), ("sql_data_access", ("NO_SQL",), "NO_SQL"),
           ("security_type", ("DEFINER",), "DEFINER"), ("is_deterministic", (True, False), True),
           ("is_null_call", (True, False), False))
DEPENDENCY_FIELDS = frozenset({"dependencies"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _plain(value: object, depth: int = 0) -> object:
    """``value`` if it is JSON-like (tuples become lists); raises TypeError otherwise."""
    if depth > MAX_DEPTH:
        raise TypeError("nested too deeply")
    if value is None or isinstance(value, (bool, int, str)) or \
            (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict) and all(k is None or isinstance(k, (bool, int, float, str)) for k in value):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    raise TypeError(f"{_describe(value)} is not a plain value (null, boolean, number, string, list, map)")


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def to_python(type_name: str, value: object, what: str, wire: bool = True) -> object:
    """Check a value strictly against ``type_name``; returns what the function receives.

    ``wire`` accepts base64 text for BINARY and ISO text for DATE/TIMESTAMP (not for results).
    """
    if value is None:
        return None
    ok = False
    if type_name == "BOOLEAN" or type_name == "STRING":
        ok = isinstance(value, bool if type_name == "BOOLEAN" else str)
    elif type_name in INT_BITS:
        limit = 2 ** (INT_BITS[type_name] - 1)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -limit <= value < limit:
            raise InvalidArgument(f"{what} is out of range for {type_name}: {value}")
    elif type_name in ("FLOAT", "DOUBLE"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value := float(value)):
            raise InvalidArgument(f"{what} must be a finite number")
    elif type_name == "BINARY":
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if wire and isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidArgument(f"{what} must be BINARY: bytes or base64 text") from None
    elif type_name in ("DATE", "TIMESTAMP"):
        cls = dt.date if type_name == "DATE" else dt.datetime
        if wire and isinstance(value, str):
            try:
                value = cls.fromisoformat(value)
            except ValueError:
                raise InvalidArgument(f"{what} must be an ISO 8601 {type_name}, got {value[:40]!r}") from None
        ok = isinstance(value, cls) and (cls is dt.datetime or not isinstance(value, dt.datetime))
    elif isinstance(value, (list, tuple) if type_name == "ARRAY" else dict):  # ARRAY, MAP, STRUCT
        if type_name == "STRUCT" and not all(isinstance(k, str) for k in value):
            raise InvalidArgument(f"{what}: STRUCT field names must be strings")
        try:
            return _plain(value)
        except TypeError as e:
            raise InvalidArgument(f"{what}: {e}") from None
    if not ok:
        raise InvalidArgument(f"{what} must be {type_name}, got {_describe(value)}")
    return value


def to_wire(type_name: str, value: object, label: str) -> object:
    """Check a function's result against its declared type; returns its JSON-friendly form."""
    try:
        value = to_python(type_name, value, "result", wire=False)
    except InvalidArgument:
        raise InvalidArgument(f"function {label} returned {_describe(value)}, declared {type_name}") from None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value.isoformat() if isinstance(value, dt.date) else value


def parse_default(type_name: str, text: str, what: str) -> object:
    """The Python value of a ``parameter_default`` (SQL literal text: ``5``, ``'abc'``, ``NULL``)."""
    t = text.strip()
    if t.upper() == "NULL":
        return None
    try:
        if type_name in ("BOOLEAN", "FLOAT", "DOUBLE", "ARRAY", "MAP", "STRUCT", *INT_BITS):
            value: object = json.loads(t.lower() if type_name == "BOOLEAN" else t)  # JSON literals
        else:
            value = t[1:-1].replace(t[0] * 2, t[0]) if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"" else t
    except (ValueError, RecursionError):
        raise InvalidArgument(f"{what} {text[:40]!r} is not a valid {type_name} literal") from None
    return to_python(type_name, value, what)


# -- definitions ----------------------------------------------------------------------------
def py_name(name: str) -> str:
    """The Python name a function is defined under (its catalog name unless that is not valid)."""
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"_{name}"


def function_source(name: str, params: list[str], body: str) -> str:
    """``def <name>(<params>):`` followed by the dedented, re-indented body."""
    text = textwrap.dedent(body).strip("\n")
    return f"def {py_name(name)}({', '.join(params)}):\n{textwrap.indent(text, '    ')}\n"


def _text(info: dict, key: str, required: bool = True, limit: int = 4096, where: str = "") -> str | None:
    value = info.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit or "\x00" in value:
        raise InvalidArgument(f"{key}{where} must be a {'non-empty ' if required else ''}string of at most "
                              f"{limit} characters without NUL")
    return value


def _option(info: dict, key: str, allowed: tuple, default: object = None, where: str = "") -> object:
    value = info.get(key)
    if value is None:
        return default
    norm = value.upper() if isinstance(value, str) else value
    if type(value) is not type(allowed[0]) or norm not in allowed:
        shown = "true or false" if isinstance(allowed[0], bool) else "one of " + ", ".join(allowed)
        raise InvalidArgument(f"{key}{where} must be {shown}, got {value!r}")
    return norm


def _type_name(value: object, what: str, where: str = "") -> str:
    if not isinstance(value, str) or value.upper() not in TYPES:
        raise InvalidArgument(f"{what} {value!r}{where} is not supported for Python functions; use one of "
                              f"{', '.join(TYPES)}")
    return value.upper()


def _fields(raw: object, allowed: frozenset, what: str) -> dict:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{what} must be an object")
    if set(raw) - allowed:
        raise InvalidArgument(f"{what} has unknown fields: {', '.join(sorted(map(str, set(raw) - allowed)))}")
    return raw


def _param(raw: object, index: int) -> dict:
    raw = _fields(raw, PARAM_FIELDS, f"input_params.parameters[{index}]")
    name = raw.get("name")
    if not isinstance(name, str) or len(name) > 255 or not _IDENT.fullmatch(name) or keyword.iskeyword(name):
        raise InvalidArgument(f"parameter name {name!r} must be a Python identifier (ASCII letters, digits, "
                              "underscore; not a keyword)")
    where = f" of parameter {name!r}"
    out = {"name": name, "type_name": _type_name(raw.get("type_name"), "type_name", where)}
    for key in ("type_text", "type_json"):
        out[key] = _text(raw, key, limit=MAX_TEXT, where=where)
    for key in ("position", "type_precision", "type_scale"):
        value = raw.get(key)
        if value is not None or key == "position":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"{key}{where} must be a non-negative integer")
            out[key] = value
    for key, allowed in (("parameter_mode", ("IN",)), ("parameter_type", ("PARAM",))):
        if raw.get(key) is not None:
            out[key] = _option(raw, key, allowed, where=where)
    for key, limit in (("type_interval_type", 255), ("parameter_default", MAX_TEXT), ("comment", MAX_COMMENT)):
        if raw.get(key) is not None:
            out[key] = _text(raw, key, required=False, limit=limit, where=where)
    if "parameter_default" in out:
        parse_default(out["type_name"], out["parameter_default"], f"parameter_default{where}")
    return out


def _param_list(value: object, key: str) -> list:
    if value is None:
        return []
    if not isinstance(value, dict) or set(value) - {"parameters"} or \
            not isinstance(value.get("parameters") or [], list):
        raise InvalidArgument(f"{key} must be an object {{\"parameters\": [...]}}")
    return value.get("parameters") or []


def validate_function_info(info: object) -> dict:
    """Check a Unity Catalog ``CreateFunction`` body; returns it normalised (defaults filled in)."""
    info = _fields(info, FIELDS, "function_info")
    out: dict = {key: names.identifier(info.get(key), key.replace("_", " "))
                 for key in ("name", "catalog_name", "schema_name")}
    body, language = _option(info, "routine_body", ("EXTERNAL", "SQL")), info.get("external_language")
    if body != "EXTERNAL" or not isinstance(language, str) or language.upper() != "PYTHON":
        raise InvalidArgument("only Python functions are supported: use routine_body EXTERNAL with "
                              f"external_language PYTHON (got {body!r}, {language!r})")
    out.update(routine_body=body, external_language="PYTHON")
    raw_params = _param_list(info.get("input_params"), "input_params")
    if len(raw_params) > MAX_PARAMS:
        raise InvalidArgument(f"a function may have at most {MAX_PARAMS} parameters")
    params = sorted((_param(p, i) for i, p in enumerate(raw_params)), key=lambda p: p["position"])
    lowered = [p["name"].lower() for p in params]
    for name in lowered:
        if lowered.count(name) > 1:
            raise InvalidArgument(f"parameter {name!r} is declared more than once")
    if [p["position"] for p in params] != list(range(len(params))):
        raise InvalidArgument(f"parameter positions must be 0..{len(params) - 1}, each used once")
    out["input_params"] = {"parameters": params}
    if _param_list(info.get("return_params"), "return_params"):
        raise InvalidArgument("return_params (table functions) are not supported for Python functions")
    out["data_type"] = _type_name(info.get("data_type"), "data_type")
    out["full_data_type"] = _text(info, "full_data_type", limit=MAX_TEXT)
    out["routine_definition"] = _text(info, "routine_definition", limit=MAX_BODY)
    for key, allowed, default in OPTIONS:
        out[key] = _option(info, key, allowed, default)
    out["specific_name"] = _text(info, "specific_name", required=False, limit=255) or out["name"]
    for key in ("comment", "properties"):
        if info.get(key) is not None:
            out[key] = _text(info, key, required=False, limit=MAX_COMMENT)
    try:
        props = json.loads(out.get("properties", "{}"))
    except (ValueError, RecursionError):
        props = None
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise InvalidArgument("properties must be a JSON-encoded object of string values")
    if info.get("routine_dependencies") is not None:
        out["routine_dependencies"] = _fields(info["routine_dependencies"], DEPENDENCY_FIELDS,
                                              "routine_dependencies")
    source = function_source(out["name"], [p["name"] for p in params], out["routine_definition"])
    try:
        compile(source, f"<function {out['name']}>", "exec", dont_inherit=True)
    except SyntaxError as e:  # line numbers count from the body's first line, not the def
        msg = re.sub(r"line (\d+)", lambda m: f"line {int(m[1]) - 1}", e.msg)
        raise InvalidArgument(f"routine_definition does not compile: {msg} "
                              f"(line {max((e.lineno or 2) - 1, 1)})") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise InvalidArgument(f"routine_definition does not compile ({type(e).__name__})") from None
    return out


# -- service --------------------------------------------------------------------------------
def bind(spec: dict, parameters: object) -> dict:
    """Check call arguments against a function's declared parameters; returns the keyword arguments."""
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict) or not all(isinstance(k, str) for k in parameters):
        raise InvalidArgument("parameters must be an object of parameter name to value")
    declared = {p["name"]: p for p in spec["input_params"]["parameters"]}
    unknown = [name for name in parameters if name not in declared]
    if unknown:
        raise InvalidArgument(f"unknown parameter {unknown[0]!r}; the function takes "
                              f"{', '.join(declared) or 'no parameters'}")
    kwargs = {}
    for name, p in declared.items():
        what = f"parameter {name!r}"
        if name in parameters:
            kwargs[name] = to_python(p["type_name"], parameters[name], what)
        elif "parameter_default" in p:
            kwargs[name] = parse_default(p["type_name"], p["parameter_default"], f"default of {what}")
        else:
            raise InvalidArgument(f"missing {what} ({p['type_name']}), which has no default")
    return kwargs


class FunctionService:
    """Create Python catalog functions and execute them through a runner (see RayTaskRunner)."""

    def __init__(self, catalog: CatalogService, runner=None):
        self.catalog = catalog
        self.audit = catalog.audit
        self.runner = runner

    def create_function(self, caller: Caller, function_info: dict) -> dict:
        """Create a function from a UC ``CreateFunction`` body (needs CREATE FUNCTION on the schema)."""
        info = validate_function_info(function_info)
        full_name = f"{info['catalog_name']}.{info['schema_name']}.{info['name']}"
        return self.catalog.create(caller, SecurableType.FUNCTION, full_name, comment=info.get("comment"),
                                   spec=info)

    def execute(self, caller: Caller, full_name: str, parameters: dict | None = None,
                timeout_s: float | None = None) -> dict:
        """Run a function (needs EXECUTE); returns ``{"value": ..., "data_type": ...}``."""
        obj = self.catalog.resolve(caller, SecurableType.FUNCTION, full_name, Privilege.EXECUTE,
                                   action="execute_function")
        if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                                      or not 0 < timeout_s <= MAX_TIMEOUT_S):
            raise InvalidArgument(f"timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S}]")
        spec, kwargs = obj.spec, bind(obj.spec, parameters)
        if self.runner is None:
            raise Unavailable("functions cannot run here: no function runner is configured")
        source = function_source(spec["name"], list(kwargs), spec["routine_definition"])
        start = time.monotonic()
        try:
            raw = self.runner.run(source, py_name(spec["name"]), kwargs, timeout_s)
            value = to_wire(spec["data_type"], raw, obj.full_name)
        except LakerayError as e:
            self.audit.record(caller.name, "execute_function", "function", obj.full_name, result="error",
                              detail={"error_code": e.error_code, "message": e.message[:500]})
            raise
        self.audit.record(caller.name, "execute_function", "function", obj.full_name,
                          detail={"duration_ms": int((time.monotonic() - start) * 1000)})
        return {"value": value, "data_type": spec["data_type"]}


# -- runner ---------------------------------------------------------------------------------
def _task_body():
    """The task's code, built as a closure so Ray ships it by value (workers need no lakeray import)."""

    def run_function(source: str, name: str, kwargs: dict) -> dict:
        namespace: dict = {"__name__": "lakeray_function"}
        try:
            exec(compile(source, f"<function {name}>", "exec", dont_inherit=True), namespace)
            value = namespace[name](**kwargs)
        except BaseException as e:  # the user's error, reported by type and message only
            return {"ok": False, "type": type(e).__name__, "message": str(e)[:1000]}
        try:
            pickle.dumps(value)
        except Exception:
            return {"ok": False, "unsendable": type(value).__name__}
        return {"ok": True, "value": value}

    return run_function


class RayTaskRunner:
    """Runs function bodies in Ray tasks (never in the calling process), with a wall-clock limit.

    With ``isolate`` each call gets a fresh worker (``max_calls=1``, ~0.5-2 s extra) so no state
    outlives a call; tasks ask for a small CPU share so they schedule on busy nodes. The timeout
    counts from submission (queueing included).
    """

    def __init__(self, default_timeout_s: float = 30, num_cpus: float = 0.1, isolate: bool = True):
        self.default_timeout_s = default_timeout_s
        self.options = {"num_cpus": num_cpus, "max_retries": 0, **({"max_calls": 1} if isolate else {})}
        self._task = None

    def run(self, source: str, function_name: str, kwargs: dict, timeout_s: float | None = None) -> object:
        """Define ``function_name`` from ``source``, call it with ``kwargs`` in a Ray task, return its value."""
        import ray

        if self._task is None:
            self._task = ray.remote(**self.options)(_task_body())
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        ref = self._task.remote(source, function_name, kwargs)
        ready, _ = ray.wait([ref], timeout=timeout)
        if not ready:
            ray.cancel(ref, force=True)
            raise DeadlineExceeded(f"function {function_name} did not finish within {timeout}s")
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayError as e:
            raise LakerayError(f"function {function_name} failed: {type(e).__name__} "
                               "(its worker died or its result could not be sent back)") from None
        if outcome["ok"]:
            return outcome["value"]
        if "unsendable" in outcome:
            raise InvalidArgument(f"function {function_name} returned a {outcome['unsendable']}, "
                                  "which cannot be sent back")
        raise LakerayError(f"function {function_name} raised {outcome['type']}: {outcome['message']}")
