"""Serving endpoints without Ray: the config checks (each bad field named), endpoints as
catalog securables with CAN_VIEW < CAN_QUERY < CAN_MANAGE, config updates as pending configs,
and the deployer's record shown as Databricks' state (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from tests.model_registry.test_models import M, logged_run, mlflow

from lakeray.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from lakeray.serving.config import normalise
from lakeray.serving.routing import pick_route
from lakeray.serving.service import read_state, write_state


@pytest.fixture
def model(registry, admin, settings):
    from lakeray.tracker import Tracker

    tracker = Tracker(settings)
    run_id, _ = logged_run(tracker, admin)
    mlflow(registry, admin, "create_registered_model", name=M)
    for _ in range(2):
        mlflow(registry, admin, "create_model_version", name=M, source=f"runs:/{run_id}/model")
    mlflow(registry, admin, "set_registered_model_alias", name=M, alias="champion", version="2")
    return M


def config(*entities, routes=None) -> dict:
    out = {"served_entities": list(entities)}
    if routes:
        out["traffic_config"] = {"routes": [{"served_model_name": n, "traffic_percentage": p} for n, p in routes]}
    return out


def entity(version="1", **extra) -> dict:
    return {"entity_name": M, "entity_version": version, **extra}


@pytest.mark.parametrize("bad, message", [
    ({}, "config.served_entities: expected a non-empty list"),
    ({"served_entities": [{"entity_name": "m", "entity_version": "1"}]}, "served_entities[0].entity_name"),
    ({"served_entities": [{"entity_name": M}]}, "served_entities[0].entity_version"),
    ({"served_entities": [entity(workload_size="Huge")]}, "workload_size: must be one of Small, Medium, Large"),
    ({"served_entities": [entity(min_replicas=3, max_replicas=2)]}, "min_replicas (3) is over max_replicas (2)"),
    ({"served_entities": [entity(scale_to_zero_enabled=True, min_replicas=1)]}, "scale_to_zero_enabled needs"),
    ({"served_entities": [entity(colour="red")]}, "unknown field 'colour'"),
    ({"served_entities": [entity(name="a"), entity(name="b")]}, "traffic_config: required"),
    (config(entity(name="a"), entity(name="b"), routes=[("a", 70), ("b", 20)]), "add up to 90, not 100"),
    (config(entity(name="a"), routes=[("c", 100)]), "'c' is not a served entity"),
    ({"served_entities": [entity(name="a"), entity(name="a")], "traffic_config": {"routes": []}}, "same name"),
    ({"served_entities": [entity(timeout_s=0)]}, "timeout_s"),
])
def test_bad_configs_name_the_field(bad, message):
    with pytest.raises(InvalidArgument, match=None) as e:
        normalise(bad)
    assert message in e.value.message


def test_defaults_and_the_legacy_shape():
    out = normalise({"served_models": [{"model_name": M, "model_version": 3, "scale_to_zero_enabled": True}]})
    [e] = out["served_entities"]
    assert e["name"] == "churn-3" and e["entity_version"] == "3" and e["min_replicas"] == 0
    assert out["traffic_config"] == {"routes": [{"served_model_name": "churn-3", "traffic_percentage": 100}]}
    medium = normalise({"served_entities": [entity(workload_size="Medium")]})["served_entities"][0]
    assert (medium["min_replicas"], medium["max_replicas"]) == (2, 4)


def test_create_get_list_update_delete(registry, admin, model):
    call = registry.call_as
    ep = call(admin, "create_serving_endpoint", name="Churn-API", config=config(entity()),
              tags=[{"key": "team", "value": "ml"}], description="churn scores")
    assert ep["name"] == "churn-api" and ep["permission_level"] == "CAN_MANAGE" and ep["creator"] == "admin"
    assert ep["state"] == {"ready": "NOT_READY", "config_update": "IN_PROGRESS"}
    assert ep["pending_config"]["config_version"] == 1 and "config" not in ep  # nothing runs yet
    assert ep["pending_config"]["served_entities"][0]["state"]["deployment"] == "DEPLOYMENT_CREATING"
    with pytest.raises(AlreadyExists):
        call(admin, "create_serving_endpoint", name="churn-api", config=config(entity()))
    assert [e["name"] for e in call(admin, "list_serving_endpoints")["endpoints"]] == ["churn-api"]

    # the deployer's record of a running config shows as config + READY
    obj_id = ep["id"]
    with registry.db.write() as conn:
        write_state(conn, obj_id, {**read_state(conn, obj_id), "config_version": 1,
                                   "config": normalise(config(entity())), "ready": True, "update": "NOT_UPDATING",
                                   "routes": [{"served_name": "churn-1", "app": "x", "percent": 100, "timeout_s": 60,
                                               "kind": "pyfunc", "version": 1}]})
    ep = call(admin, "get_serving_endpoint", name="churn-api")
    assert ep["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"} and "pending_config" not in ep
    assert ep["config"]["config_version"] == 1

    updated = call(admin, "update_serving_endpoint_config", name="churn-api",
                   served_entities=[entity(name="a"), entity("champion", name="b")],
                   traffic_config={"routes": [{"served_model_name": "a", "traffic_percentage": 80},
                                              {"served_model_name": "b", "traffic_percentage": 20}]})
    assert updated["config"]["config_version"] == 1 and updated["pending_config"]["config_version"] == 2
    assert updated["state"] == {"ready": "READY", "config_update": "IN_PROGRESS"}  # the old config answers
    assert call(admin, "get_serving_routes", name="churn-api")["routes"][0]["app"] == "x"

    tags = call(admin, "update_serving_endpoint_tags", name="churn-api", add_tags=[{"key": "tier", "value": "1"}],
                delete_tags=["team"])
    assert tags == [{"key": "tier", "value": "1"}]
    call(admin, "delete_serving_endpoint", name="churn-api")
    with pytest.raises(NotFound):
        call(admin, "get_serving_endpoint", name="churn-api")
    with registry.db.read() as conn:
        assert read_state(conn, obj_id)["config_version"] == 0  # its record went with it


def test_bad_inputs_change_nothing(registry, admin, model):
    call = registry.call_as
    for kwargs, error in [
        ({"name": "bad name!", "config": config(entity())}, "invalid serving endpoint name"),
        ({"name": "x", "config": config(entity("7"))}, "served_entities[0]: Model Version"),
        ({"name": "x", "config": config(entity("nosuchalias"))}, "served_entities[0]"),
        ({"name": "x"}, "config: required"),
        ({"name": "x", "config": config(entity()), "route_optimized": True}, "route_optimized"),
    ]:
        with pytest.raises(InvalidArgument) as e:
            call(admin, "create_serving_endpoint", **kwargs)
        assert error in e.value.message, (kwargs, e.value.message)
    assert call(admin, "list_serving_endpoints")["endpoints"] == []
    call(admin, "create_serving_endpoint", name="ok", config=config(entity()))
    with pytest.raises(InvalidArgument):
        call(admin, "update_serving_endpoint_config", name="ok", served_entities=[entity("9")])
    assert "pending_config" in call(admin, "get_serving_endpoint", name="ok")
    assert call(admin, "get_serving_endpoint", name="ok")["pending_config"]["config_version"] == 1


def test_permission_levels(registry, admin, model):
    call = registry.call_as
    for name in ("viewer", "querier", "manager", "outsider"):
        call(admin, "create_principal", name=name)
    # serving a model needs EXECUTE on it
    with pytest.raises(PermissionDenied, match="EXECUTE"):
        call(registry.principals.caller("outsider"), "create_serving_endpoint", name="mine", config=config(entity()))
    call(admin, "create_serving_endpoint", name="ep", config=config(entity()))
    changes = [{"principal": p, "add": [lvl]} for p, lvl in
               (("viewer", "CAN_VIEW"), ("querier", "CAN_QUERY"), ("manager", "CAN_MANAGE"))]
    call(admin, "update_permissions", stype="serving_endpoint", full_name="ep", changes=changes)
    viewer, querier, manager, outsider = (registry.principals.caller(n)
                                          for n in ("viewer", "querier", "manager", "outsider"))
    assert call(viewer, "get_serving_endpoint", name="ep")["permission_level"] == "CAN_VIEW"
    with pytest.raises(PermissionDenied, match="CAN_QUERY"):
        call(viewer, "get_serving_routes", name="ep")
    assert call(querier, "get_serving_routes", name="ep")["routes"] == []
    with pytest.raises(PermissionDenied, match="CAN_MANAGE"):
        call(querier, "update_serving_endpoint_config", name="ep", served_entities=[entity("2")])
    with pytest.raises(PermissionDenied):
        call(outsider, "get_serving_endpoint", name="ep")
    assert call(outsider, "list_serving_endpoints")["endpoints"] == []
    with pytest.raises(PermissionDenied, match="EXECUTE"):  # managing the endpoint is not running the model
        call(manager, "update_serving_endpoint_config", name="ep", served_entities=[entity("2")])
    call(admin, "update_permissions", stype="catalog", full_name="main",
         changes=[{"principal": "manager", "add": ["USE CATALOG"]}])
    call(admin, "update_permissions", stype="schema", full_name="main.default",
         changes=[{"principal": "manager", "add": ["USE SCHEMA"]}])
    call(admin, "update_permissions", stype="registered_model", full_name=M,
         changes=[{"principal": "manager", "add": ["EXECUTE"]}])
    assert call(manager, "update_serving_endpoint_config", name="ep",
                served_entities=[entity("2")])["pending_config"]["config_version"] == 2
    call(manager, "delete_serving_endpoint", name="ep")


def test_traffic_split_draws():
    routes = [{"served_name": "a", "percent": 80}, {"served_name": "b", "percent": 20}]
    assert pick_route(routes, 0)["served_name"] == "a" and pick_route(routes, 79.9)["served_name"] == "a"
    assert pick_route(routes, 80)["served_name"] == "b" and pick_route(routes, 99.99)["served_name"] == "b"


def test_the_ai_gateway_config_is_stored_shown_and_cleared(registry, admin, model):
    call = registry.call_as
    call(admin, "create_serving_endpoint", name="gw", config=config(entity()))
    shown = call(admin, "put_ai_gateway", name="gw", rate_limits=[{"calls": 5}], fallback_config={"enabled": True})
    assert shown == {"rate_limits": [{"key": "user", "renewal_period": "minute", "calls": 5}],
                     "fallback_config": {"enabled": True}}
    assert call(admin, "get_serving_endpoint", name="gw")["ai_gateway"] == shown
    routes = call(admin, "get_serving_routes", name="gw")
    assert routes["gateway"]["rate_limits"] == shown["rate_limits"]
    assert routes["caller"] == {"name": "admin", "kind": "user", "groups": []}
    # everything off is no config at all: the query path skips the gateway
    assert call(admin, "put_ai_gateway", name="gw") == {}
    assert "ai_gateway" not in call(admin, "get_serving_endpoint", name="gw")
    assert call(admin, "get_serving_routes", name="gw")["gateway"] is None
    with pytest.raises(InvalidArgument, match="rate_limits\\[0\\].calls"):
        call(admin, "put_ai_gateway", name="gw", rate_limits=[{"calls": 0}])
    with pytest.raises(NotFound):
        call(admin, "put_ai_gateway", name="nope")
