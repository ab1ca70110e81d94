"""Odd JSON values on MLflow's routes (found by probing a running platform): each is a 400 in
MLflow's error format and changes nothing, never a 500."""

import pytest

MLFLOW = "/api/2.0/mlflow"


@pytest.fixture
def run_id(api):
    exp = api.post(f"{MLFLOW}/experiments/create", json={"name": "odd-inputs"}).json()["experiment_id"]
    return api.post(f"{MLFLOW}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]


def _bad(resp) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE", resp.text


def _raw(api, path: str, body: bytes):
    return api.post(MLFLOW + path, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("value", [[1], {"a": 1}, ["ALL"]])
def test_lists_and_objects_where_an_enum_goes(api, run_id, value):
    _bad(api.post(f"{MLFLOW}/experiments/search", json={"view_type": value}))
    _bad(api.post(f"{MLFLOW}/runs/search", json={"experiment_ids": ["0"], "run_view_type": value}))
    exp = api.post(f"{MLFLOW}/experiments/create", json={"name": f"perm-{len(str(value))}"}).json()
    before = api.get(f"{MLFLOW}/experiments/permissions", params={"experiment_id": exp["experiment_id"]}).json()
    _bad(api.post(f"{MLFLOW}/experiments/permissions",
                  json={"experiment_id": exp["experiment_id"], "principal": "admin", "permission": value}))
    after = api.get(f"{MLFLOW}/experiments/permissions", params={"experiment_id": exp["experiment_id"]}).json()
    assert after == before


def test_integer_metric_values_beyond_a_double(api, run_id):
    huge = b"1" + b"0" * 400
    for path, body in (
            ("/runs/log-metric", b'{"run_id": "%s", "key": "m", "value": %s, "timestamp": 1, "step": 1}'),
            ("/runs/log-batch", b'{"run_id": "%s", "metrics": [{"key": "m", "value": %s, "timestamp": 1}]}')):
        _bad(_raw(api, path, body % (run_id.encode(), huge)))
    assert api.get(f"{MLFLOW}/runs/get", params={"run_id": run_id}).json()["run"]["data"].get("metrics", []) == []


@pytest.mark.parametrize("step", [b"-9223372036854775809", b"-9223372036854776808", b"9223372036854775808",
                                  b"18446744073709551616", b"1e19"])
def test_steps_outside_int64_are_refused_not_rounded(api, run_id, step):
    """orjson reads integers below -2**63 (and from 2**64) as floats; those must not round
    into range."""
    body = b'{"run_id": "%s", "key": "m", "value": 1.0, "timestamp": 1, "step": %s}' % (run_id.encode(), step)
    _bad(_raw(api, "/runs/log-metric", body))
    assert api.get(f"{MLFLOW}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}).json() \
        .get("metrics", []) == []


def test_steps_at_the_int64_bounds_and_integral_floats_are_taken(api, run_id):
    for step, stored in ((b"-9223372036854775808", -2**63), (b"9223372036854775807", 2**63 - 1), (b"1e3", 1000)):
        body = b'{"run_id": "%s", "key": "m", "value": 1.0, "timestamp": 1, "step": %s}' % (run_id.encode(), step)
        assert _raw(api, "/runs/log-metric", body).status_code == 200
        history = api.get(f"{MLFLOW}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}).json()
        assert stored in [int(m["step"]) for m in history["metrics"]]

