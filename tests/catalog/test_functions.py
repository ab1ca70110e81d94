"""Python catalog functions: definition checks, strict argument and result types, Ray execution."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from types import SimpleNamespace

import pytest

from lakeray.catalog.functions import FunctionService, RayTaskRunner, function_source, validate_function_info
from lakeray.errors import DeadlineExceeded, InvalidArgument, LakerayError, PermissionDenied, Unavailable


def fn_info(name="add", params=(("a", "INT"), ("b", "INT")), body="return a + b", data_type="INT", **over):
    """A UC ``CreateFunction`` body as the unitycatalog client sends it."""
    info = {
        "name": name, "catalog_name": "main", "schema_name": "default",
        "input_params": {"parameters": [
            {"name": n, "type_name": t, "type_text": t.lower(), "position": i,
             "type_json": json.dumps({"name": n, "type": t.lower(), "nullable": True, "metadata": {}})}
            for i, (n, t) in enumerate(params)]},
        "data_type": data_type, "full_data_type": data_type, "routine_body": "EXTERNAL",
        "routine_definition": body, "parameter_style": "S", "is_deterministic": True,
        "sql_data_access": "NO_SQL", "is_null_call": False, "security_type": "DEFINER",
        "specific_name": name, "external_language": "PYTHON", "comment": "adds",
        "properties": json.dumps({"owner_team": "ml"}),
    }
    info.update(over)
    return info


class LocalRunner:
    """Runs the source in this process: only for tests of the service's checks."""

    def __init__(self):
        self.calls = []

    def run(self, source, function_name, kwargs, timeout_s=None):
        self.calls.append((source, function_name, kwargs, timeout_s))
        namespace: dict = {}
        exec(source, namespace)
        return namespace[function_name](**kwargs)


@pytest.fixture
def env(registry):
    """The shared test registry's catalog, a FunctionService with an in-process runner; users dev and user."""
    ps, cs, audit = registry.principals, registry.catalog, registry.audit
    admin = ps.caller("admin")
    for who in ("dev", "user"):
        ps.create_principal(admin, who)
    cs.update_permissions(admin, "catalog", "main", [
        {"principal": p, "add": ["USE CATALOG", "USE SCHEMA"]} for p in ("dev", "user")])
    runner = LocalRunner()
    fs = FunctionService(cs, runner)
    yield SimpleNamespace(fs=fs, cs=cs, audit=audit, runner=runner, admin=admin,
                          dev=ps.caller("dev"), user=ps.caller("user"))


# -- definitions ---------------------------------------------------------------------------
def test_create_and_get(env):
    out = env.fs.create_function(env.admin, fn_info())
    assert out["full_name"] == "main.default.add" and out["function_id"]
    assert out["routine_body"] == "EXTERNAL" and out["external_language"] == "PYTHON"
    assert [p["name"] for p in out["input_params"]["parameters"]] == ["a", "b"]
    assert out["comment"] == "adds" and json.loads(out["properties"]) == {"owner_team": "ml"}
    assert env.cs.get(env.admin, "function", "main.default.add")["data_type"] == "INT"


def test_minimal_definition_gets_uc_defaults(env):
    info = {"name": "Hello", "catalog_name": "main", "schema_name": "default", "data_type": "string",
            "full_data_type": "STRING", "routine_body": "EXTERNAL", "external_language": "python",
            "routine_definition": "\n    greeting = 'hi'\n    return greeting\n"}
    out = env.fs.create_function(env.admin, info)
    assert out["name"] == "hello" and out["parameter_style"] == "S" and out["specific_name"] == "hello"
    assert out["input_params"] == {"parameters": []} and out["security_type"] == "DEFINER"
    assert env.fs.execute(env.admin, "main.default.hello", {}) == {"value": "hi", "data_type": "STRING"}


def test_unitycatalog_client_model_is_accepted():
    models = pytest.importorskip("unitycatalog.client.models")
    body = models.CreateFunction.from_dict(fn_info()).to_dict()
    assert validate_function_info(body)["name"] == "add"


def _without(key):
    info = fn_info()
    del info[key]
    return info


def _param_change(**change):
    info = fn_info()
    info["input_params"]["parameters"][0].update(change)
    return info


INVALID = {
    "sql body": (fn_info(routine_body="SQL"), "only Python functions are supported"),
    "other language": (fn_info(external_language="JAVASCRIPT"), "only Python functions.*'JAVASCRIPT'"),
    "no language": (_without("external_language"), "only Python functions are supported"),
    "no body kind": (_without("routine_body"), "only Python functions are supported"),
    "bad body kind": (fn_info(routine_body="JAVA"), "routine_body must be one of EXTERNAL, SQL"),
    "bad name": (fn_info(name="a-b"), "invalid name"),
    "no schema": (_without("schema_name"), "schema name"),
    "decimal result": (fn_info(data_type="DECIMAL"), "data_type 'DECIMAL' is not supported"),
    "table result": (fn_info(data_type="TABLE_TYPE"), "not supported"),
    "interval param": (_param_change(type_name="INTERVAL"), "type_name 'INTERVAL' of parameter 'a' is not supported"),
    "param not identifier": (_param_change(name="a-b"), "Python identifier"),
    "param keyword": (_param_change(name="class"), "Python identifier"),
    "duplicate param": (fn_info(params=(("a", "INT"), ("A", "INT"))), "declared more than once"),
    "position gap": (_param_change(position=2), "positions must be 0..1"),
    "position text": (_param_change(position="0"), "position of parameter .a. must be a non-negative integer"),
    "no type_text": (_param_change(type_text=None), "type_text"),
    "unknown param field": (_param_change(colour="red"), "unknown fields: colour"),
    "bad default": (_param_change(parameter_default="abc"), "not a valid INT literal"),
    "param mode": (_param_change(parameter_mode="OUT"), "parameter_mode"),
    "syntax error": (fn_info(body="x = 1\nreturn a +"), r"does not compile: .*\(line 2\)"),
    "bad indent": (fn_info(body="if a:\nreturn b"), r"after 'if' statement on line 1 \(line 2\)"),
    "unknown field": (fn_info(colour="red"), "unknown fields: colour"),
    "table function": (fn_info(return_params={"parameters": [{"name": "x"}]}), "return_params"),
    "properties not json": (fn_info(properties="{nope"), "properties must be a JSON-encoded object"),
    "properties not strings": (fn_info(properties='{"a": 1}'), "properties"),
    "deterministic text": (fn_info(is_deterministic="yes"), "is_deterministic must be true or false"),
    "parameter style": (fn_info(parameter_style="X"), "parameter_style"),
    "sql access": (fn_info(sql_data_access="READS_SQL_DATA"), "sql_data_access"),
    "security": (fn_info(security_type="INVOKER"), "security_type"),
    "empty body": (fn_info(body="  "), "routine_definition must be a non-empty string"),
    "nul in body": (fn_info(body="return 1\x00"), "NUL"),
    "input_params list": (fn_info(input_params=[]), "input_params must be an object"),
    "no full_data_type": (_without("full_data_type"), "full_data_type"),
    "not an object": ("add", "function_info must be an object"),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_definitions(env, case):
    info, message = INVALID[case]
    with pytest.raises(InvalidArgument, match=message):
        env.fs.create_function(env.admin, info)
    assert env.cs.list(env.admin, "function", "main.default")["functions"] == []


def test_create_needs_create_function(env):
    with pytest.raises(PermissionDenied, match="CREATE FUNCTION"):
        env.fs.create_function(env.dev, fn_info())
    env.cs.update_permissions(env.admin, "schema", "main.default",
                              [{"principal": "dev", "add": ["CREATE FUNCTION"]}])
    assert env.fs.create_function(env.dev, fn_info())["owner"] == "dev"


def test_source_is_a_def_with_the_body_indented():
    assert function_source("add", ["a", "b"], "  x = a\n  return x + b") == \
        "def add(a, b):\n    x = a\n    return x + b\n"
    assert function_source("class", [], "return 1").startswith("def _class():")


# -- execution (in-process runner) ---------------------------------------------------------
def test_execute_checks_arguments_strictly(env):
    env.fs.create_function(env.admin, fn_info())
    run = env.fs.execute
    assert run(env.admin, "main.default.add", {"a": 2, "b": 3}) == {"value": 5, "data_type": "INT"}
    cases = [({"a": "5", "b": 1}, "parameter 'a' must be INT, got str '5'"),
             ({"a": True, "b": 1}, "parameter 'a' must be INT, got bool"),
             ({"a": 1.0, "b": 1}, "parameter 'a' must be INT, got float"),
             ({"a": 2**40, "b": 1}, "parameter 'a' is out of range for INT"),
             ({"a": 1}, "missing parameter 'b'"),
             ({"a": 1, "b": 2, "c": 3}, "unknown parameter 'c'"),
             ([1, 2], "parameters must be an object")]
    for params, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            run(env.admin, "main.default.add", params)
    assert len(env.runner.calls) == 1  # nothing ran for the bad calls


def test_execute_types_defaults_and_null(env):
    params = (("d", "DATE"), ("ts", "TIMESTAMP"), ("raw", "BINARY"), ("x", "DOUBLE"), ("flag", "BOOLEAN"),
              ("items", "ARRAY"), ("label", "STRING"))
    info = fn_info(name="mix", params=params, data_type="STRING", body=(
        "return f'{d.isoformat()}|{ts.hour}|{raw!r}|{x!r}|{flag}|{len(items)}|{label}'"))
    info["input_params"]["parameters"][6]["parameter_default"] = "'it''s'"
    env.fs.create_function(env.admin, info)
    out = env.fs.execute(env.admin, "main.default.mix", {
        "d": "2024-02-29", "ts": "2024-02-29T13:00:00", "raw": "AAE=", "x": 2, "flag": False,
        "items": (1, "two", None)})
    assert out["value"] == "2024-02-29|13|b'\\x00\\x01'|2.0|False|3|it's"
    with pytest.raises(InvalidArgument, match="parameter 'd' must be an ISO 8601 DATE"):
        env.fs.execute(env.admin, "main.default.mix", {"d": "29/02/2024", "ts": None, "raw": None, "x": 1,
                                                       "flag": True, "items": []})
    with pytest.raises(InvalidArgument, match="parameter 'items'"):
        env.fs.execute(env.admin, "main.default.mix", {"d": None, "ts": None, "raw": None, "x": 1,
                                                       "flag": True, "items": [object()]})


@pytest.mark.parametrize("data_type,body,expected", [
    ("DOUBLE", "return 2", 2.0), ("BINARY", "return b'\\x00\\x01'", "AAE="),
    ("DATE", "import datetime\nreturn datetime.date(2024, 1, 2)", "2024-01-02"),
    ("MAP", "return {'a': [1, 2]}", {"a": [1, 2]}), ("INT", "return None", None)])
def test_results_are_converted(env, data_type, body, expected):
    env.fs.create_function(env.admin, fn_info(name="r", params=(), body=body, data_type=data_type))
    assert env.fs.execute(env.admin, "main.default.r") == {"value": expected, "data_type": data_type}


@pytest.mark.parametrize("data_type,body", [("INT", "return '5'"), ("INT", "return True"),
                                            ("STRING", "return 5"), ("BINARY", "return 'AAE='"),
                                            ("DATE", "return '2024-01-01'"), ("ARRAY", "return {1}")])
def test_result_type_mismatch(env, data_type, body):
    env.fs.create_function(env.admin, fn_info(name="r", params=(), body=body, data_type=data_type))
    with pytest.raises(InvalidArgument, match=f"function main.default.r returned .*, declared {data_type}"):
        env.fs.execute(env.admin, "main.default.r")
    events = env.audit.query(action="execute_function")["events"]
    assert events[0]["result"] == "error"


def test_execute_needs_execute_and_is_audited(env):
    env.fs.create_function(env.admin, fn_info())
    with pytest.raises(PermissionDenied, match="EXECUTE"):
        env.fs.execute(env.user, "main.default.add", {"a": 1, "b": 2})
    env.cs.update_permissions(env.admin, "function", "main.default.add",
                              [{"principal": "user", "add": ["EXECUTE"]}])
    assert env.fs.execute(env.user, "main.default.add", {"a": 1, "b": 2}, timeout_s=5)["value"] == 3
    assert env.runner.calls[-1][3] == 5
    event = env.audit.query(principal="user", action="execute_function")["events"][0]
    assert event["securable"] == "main.default.add" and event["result"] == "ok"
    for bad in (0, -1, True, "5", 10**6):
        with pytest.raises(InvalidArgument, match="timeout_s"):
            env.fs.execute(env.user, "main.default.add", {"a": 1, "b": 2}, timeout_s=bad)


def test_execute_without_runner(env):
    env.fs.create_function(env.admin, fn_info())
    with pytest.raises(Unavailable):
        FunctionService(env.cs, None).execute(env.admin, "main.default.add", {"a": 1, "b": 2})


# -- execution in Ray tasks ----------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for this module (shut down only if this fixture started it)."""
    import ray

    started = not ray.is_initialized()
    # address="local": a private instance even when another cluster runs on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def ray_env(env, ray_local):
    env.fs.runner = RayTaskRunner(default_timeout_s=60)
    return env


@pytest.mark.ray
def test_ray_runner_runs_in_another_process(ray_env):
    ray_env.fs.create_function(ray_env.admin, fn_info())
    assert ray_env.fs.execute(ray_env.admin, "main.default.add", {"a": 40, "b": 2})["value"] == 42
    ray_env.fs.create_function(ray_env.admin, fn_info(name="pid", params=(), body="import os\nreturn os.getpid()"))
    assert ray_env.fs.execute(ray_env.admin, "main.default.pid")["value"] != os.getpid()


@pytest.mark.ray
def test_ray_runner_reports_user_exceptions(ray_env):
    ray_env.fs.create_function(ray_env.admin, fn_info(name="boom", body="raise ValueError(f'bad {a}')"))
    with pytest.raises(LakerayError) as info:
        ray_env.fs.execute(ray_env.admin, "main.default.boom", {"a": 1, "b": 2})
    assert type(info.value) is LakerayError
    assert info.value.message == "function boom raised ValueError: bad 1"
    ray_env.fs.create_function(ray_env.admin, fn_info(name="fn", params=(), body="return lambda: 1"))
    with pytest.raises(InvalidArgument, match="cannot be sent back"):
        ray_env.fs.execute(ray_env.admin, "main.default.fn")


@pytest.mark.ray
def test_ray_runner_timeout(ray_env):
    ray_env.fs.create_function(ray_env.admin, fn_info(name="spin", params=(), body="while True:\n    pass"))
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="did not finish within 3s"):
        ray_env.fs.execute(ray_env.admin, "main.default.spin", timeout_s=3)
    assert time.monotonic() - start < 10
    ray_env.fs.create_function(ray_env.admin, fn_info(name="sub", params=(), body="return 1"))
    assert ray_env.fs.execute(ray_env.admin, "main.default.sub")["value"] == 1  # cluster still usable


def test_dates_round_trip_helpers():
    from lakeray.catalog.functions import to_python, to_wire

    assert to_python("TIMESTAMP", "2024-01-01T00:00:00", "x") == dt.datetime(2024, 1, 1)
    with pytest.raises(InvalidArgument):
        to_python("DATE", dt.datetime(2024, 1, 1), "x")
    assert to_wire("TIMESTAMP", dt.datetime(2024, 1, 1, 5), "f") == "2024-01-01T05:00:00"
