"""Serving endpoints on the session platform: registered pyfunc models (sklearn, and a model
from code) served by Ray Serve applications behind the Databricks REST shapes; the scoring
formats, an 80/20 split, a config update under load without a failed call, scale from zero, an
alias that moves, the edges (400, 401, 403, 404, 413, 500, 503, 504), and the serving actor's
death."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from serving_support import API, LR, TOOLS, Api, unique

pytestmark = pytest.mark.ray
mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

def test_a_pyfunc_endpoint_answers_every_scoring_format(platform, models):
    api = Api(platform)
    name = unique("lr")
    created = api.create(name, {"entity_name": LR, "entity_version": "1", "name": "lr"})
    assert created["state"]["ready"] == "NOT_READY" and created["pending_config"]["config_version"] == 1
    ep = api.wait(name, 1)
    assert ep["config"]["served_entities"][0]["state"]["deployment"] == "DEPLOYMENT_READY"
    for body in ({"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}},
                 {"dataframe_records": [{"x": 1.0}, {"x": 2.0}]},
                 {"instances": [[1.0], [2.0]]},
                 {"inputs": [[1.0], [2.0]]}):
        resp = api.query(name, body)
        assert resp.status_code == 200, (body, resp.text)
        assert resp.json()["predictions"] == pytest.approx([2.0, 4.0]) and resp.headers["x-lakeray-served-entity"] == "lr"
    assert name in [e["name"] for e in api.get(API).json()["endpoints"]]
    assert api.delete(f"{API}/{name}").status_code == 200
    assert api.query(name, {"inputs": [[1.0]]}).status_code == 404


def test_split_80_20_then_an_update_under_load_fails_no_call(platform, models):
    api = Api(platform)
    name = unique("split")
    api.create(name, {"entity_name": LR, "entity_version": "1", "name": "a"},
               {"entity_name": LR, "entity_version": "2", "name": "b"}, routes=[("a", 80), ("b", 20)])
    api.wait(name, 1)
    body = {"inputs": [[1.0]]}

    def one(_):
        resp = api.query(name, body)
        assert resp.status_code == 200, resp.text
        return resp.headers["x-lakeray-served-entity"]

    with ThreadPoolExecutor(8) as pool:
        counts = Counter(pool.map(one, range(1000)))
    assert 750 <= counts["a"] <= 850 and counts["a"] + counts["b"] == 1000, counts

    # all traffic to v2 while clients keep calling: not one call fails
    failures, answers, stop = [], Counter(), threading.Event()

    def hammer():
        session = Api(platform)
        while not stop.is_set():
            resp = session.query(name, body)
            if resp.status_code != 200:
                failures.append((resp.status_code, resp.text))
            else:
                answers[round(resp.json()["predictions"][0])] += 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        resp = api.put(f"{API}/{name}/config", json={"served_entities": [
            {"entity_name": LR, "entity_version": "2", "name": "b2"}]})
        assert resp.status_code == 200 and resp.json()["pending_config"]["config_version"] == 2, resp.text
        api.wait(name, 2)
        time.sleep(2)  # calls keep landing after the switch while the old application drains
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and answers[3] > 0, (failures[:3], answers)
    resp = api.query(name, body)
    assert resp.json()["predictions"] == pytest.approx([3.0]) and resp.headers["x-lakeray-served-entity"] == "b2"
    api.delete(f"{API}/{name}")


def test_scale_from_zero_and_an_alias_that_moves(platform, models):
    from mlflow import MlflowClient

    api = Api(platform)
    name = unique("alias")
    api.create(name, {"entity_name": LR, "entity_version": "champion", "scale_to_zero_enabled": True})
    ep = api.wait(name, 1)
    assert ep["config"]["served_entities"][0]["min_replicas"] == 0
    resp = api.query(name, {"inputs": [[1.0]]})  # the first call brings a replica up
    assert resp.status_code == 200 and resp.json()["predictions"] == pytest.approx([2.0]), resp.text

    MlflowClient(platform.url, registry_uri=platform.url).set_registered_model_alias(LR, "champion", "2")
    deadline = time.monotonic() + 240
    while True:  # the endpoint follows the alias; calls keep answering meanwhile
        resp = api.query(name, {"inputs": [[1.0]]})
        assert resp.status_code == 200, resp.text
        if resp.json()["predictions"] == pytest.approx([3.0]):
            break
        assert time.monotonic() < deadline, "the endpoint did not follow the alias"
        time.sleep(0.5)
    MlflowClient(platform.url, registry_uri=platform.url).set_registered_model_alias(LR, "champion", "1")
    api.delete(f"{API}/{name}")


def test_edges(platform, models):
    api = Api(platform)
    name = unique("tools")
    api.create(name, {"entity_name": TOOLS, "entity_version": "1", "timeout_s": 1})
    api.wait(name, 1)
    ok = api.query(name, {"dataframe_records": [{"x": 5}]})
    assert ok.status_code == 200 and ok.json()["predictions"] == [{"x": 5}]
    # the model raises: 500 with a code and the error's first line, no stack trace
    boom = api.query(name, {"dataframe_records": [{"x": -1}]})
    assert boom.status_code == 500 and boom.json()["error_code"] == "MODEL_ERROR"
    assert "ValueError: x must not be -1" in boom.json()["message"] and "Traceback" not in boom.text
    # slower than the entity's timeout: 504
    slow = api.query(name, {"dataframe_records": [{"x": -2}]})
    assert slow.status_code == 504 and "did not answer within 1 s" in slow.json()["message"]
    # bad bodies: 400 naming what is wrong
    for body, message in [({"records": []}, "give exactly one of dataframe_split"),
                          ({"dataframe_split": {"columns": ["x"], "data": [[1, 2]]}}, "every row needs 1 values"),
                          ({"inputs": [[1.0]], "extra": 1}, "unknown field 'extra'")]:
        resp = api.query(name, body)
        assert resp.status_code == 400 and message in resp.json()["message"], resp.text
    bad_json = api.post(f"/serving-endpoints/{name}/invocations", data=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert api.post(f"/serving-endpoints/{name}/invocations", data=b"x" * (17 * 1024 * 1024)).status_code == 413
    assert api.query("no-such-endpoint", {"inputs": [[1.0]]}).status_code == 404
    assert requests.post(f"{platform.url}/serving-endpoints/{name}/invocations", json={"inputs": [[1]]},
                         timeout=30).status_code == 401
    # a principal without CAN_QUERY: 403; with it: 200
    admin = platform.client("http")
    who = unique("caller").replace("-", "_")
    admin.create_principal(who)
    token = admin.create_token(principal=who)["token_value"]
    stranger = Api(platform, token)
    assert stranger.query(name, {"dataframe_records": [{"x": 1}]}).status_code == 403
    resp = api.patch(f"/api/2.1/unity-catalog/permissions/serving_endpoint/{name}",
                     json={"changes": [{"principal": who, "add": ["CAN_QUERY"]}]})
    assert resp.status_code == 200, resp.text
    assert stranger.query(name, {"dataframe_records": [{"x": 1}]}).status_code == 200
    assert stranger.delete(f"{API}/{name}").status_code == 403
    # bad configs change nothing
    for config, message in [({"served_entities": []}, "served_entities: expected a non-empty list"),
                            ({"served_entities": [{"entity_name": LR, "entity_version": "99"}]}, "served_entities[0]")]:
        resp = api.put(f"{API}/{name}/config", json=config)
        assert resp.status_code == 400 and message in resp.json()["message"], resp.text
    assert api.get(f"{API}/{name}").json()["config"]["config_version"] == 1
    resp = api.post(API, json={"name": "bad name", "config": {"served_entities": [
        {"entity_name": LR, "entity_version": "1"}]}})
    assert resp.status_code == 400 and "invalid serving endpoint name" in resp.json()["message"]
    api.delete(f"{API}/{name}")


def test_endpoints_keep_answering_when_the_serving_actor_dies(platform, models):
    from ray.util.state import list_actors

    platform.join()
    api = Api(platform)
    name = unique("durable")
    api.create(name, {"entity_name": LR, "entity_version": "1"})
    api.wait(name, 1)
    [actor] = list_actors(filters=[("class_name", "=", "ServingActor"), ("state", "=", "ALIVE")], detail=True)
    os.kill(actor.pid, signal.SIGKILL)
    for _ in range(20):  # queries do not go through the actor
        assert api.query(name, {"inputs": [[1.0]]}).status_code == 200
    # the restarted actor rolls out the next config
    resp = api.put(f"{API}/{name}/config", json={"served_entities": [{"entity_name": LR, "entity_version": "2"}]})
    assert resp.status_code == 200
    api.wait(name, 2)
    assert api.query(name, {"inputs": [[1.0]]}).json()["predictions"] == pytest.approx([3.0])
    api.delete(f"{API}/{name}")


def test_overload_is_a_503_with_retry_after_not_a_growing_queue(platform, models):
    api = Api(platform)
    name = unique("busy")
    api.create(name, {"entity_name": TOOLS, "entity_version": "1", "max_replicas": 1, "max_ongoing_requests": 1,
                      "max_queued_requests": 1, "timeout_s": 30})
    api.wait(name, 1)

    def slow(_):
        return Api(platform).query(name, {"dataframe_records": [{"x": -2}]})  # 3 s each

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(slow, range(6)))
    codes = Counter(r.status_code for r in answers)
    assert codes[200] >= 1 and codes[503] >= 3 and set(codes) <= {200, 503}, codes
    busy = next(r for r in answers if r.status_code == 503)
    assert busy.headers["Retry-After"] == "1" and "at capacity" in busy.json()["message"]
    api.delete(f"{API}/{name}")


@pytest.mark.parametrize("via", ["http", "ray"])
def test_the_python_client_on_both_transports(platform, models, via):
    from lakeray.errors import InvalidArgument, NotFound

    if via == "ray":
        platform.join()
    c = platform.client(via)
    name = unique(f"py-{via}")
    created = c.serving.create(name, [{"entity_name": LR, "entity_version": "1", "name": "lr"}], tags={"team": "ml"})
    assert created["tags"] == [{"key": "team", "value": "ml"}]
    assert c.serving.wait(name)["config"]["config_version"] == 1
    assert c.serving.query(name, inputs=[[1.0], [2.0]])["predictions"] == pytest.approx([2.0, 4.0])
    assert c.serving.query(name, {"dataframe_records": [{"x": 1.0}]})["predictions"] == pytest.approx([2.0])
    with pytest.raises(InvalidArgument, match="give exactly one of"):
        c.serving.query(name, records=[])
    assert name in [e["name"] for e in c.serving.list()]
    c.serving.update_config(name, [{"entity_name": LR, "entity_version": "2"}])
    c.serving.wait(name)
    assert c.serving.query(name, inputs=[[1.0]])["predictions"] == pytest.approx([3.0])
    c.serving.delete(name)
    with pytest.raises(NotFound):
        c.serving.query(name, inputs=[[1.0]])
