"""What the serving tests share: the registered test models, a REST helper, unique names."""

from __future__ import annotations

import os
import time
import uuid

import requests

API = "/api/2.0/serving-endpoints"
LR = "main.default.serve_lr"
TOOLS = "main.default.serve_tools"
TOOLS_CODE = '''
import time

import mlflow


class Tools(mlflow.pyfunc.PythonModel):
    """Echoes column x; x == -1 raises, x == -2 sleeps 3 s."""

    def predict(self, context, model_input, params=None):
        x = model_input["x"].tolist()
        if -1 in x:
            raise ValueError("x must not be -1")
        if -2 in x:
            time.sleep(3)
        return model_input


mlflow.models.set_model(Tools())
'''


def register_models(platform, code_dir) -> None:
    """serve_lr v1 (y = 2x) and v2 (y = 3x) with alias champion -> 1; serve_tools v1."""
    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    os.environ["MLFLOW_TRACKING_TOKEN"] = platform.token
    mlflow.set_tracking_uri(platform.url)
    mlflow.set_registry_uri(platform.url)
    mlflow.set_experiment("serving-tests")
    x = np.arange(10, dtype=float).reshape(-1, 1)
    for slope in (2.0, 3.0):
        with mlflow.start_run():
            mlflow.sklearn.log_model(LinearRegression().fit(x, slope * x.ravel()), name="model",
                                     serialization_format="cloudpickle",
                                     registered_model_name=LR)
    code = code_dir / "tools.py"
    code.write_text(TOOLS_CODE)
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="model", python_model=str(code), registered_model_name=TOOLS)
    MlflowClient(platform.url, registry_uri=platform.url).set_registered_model_alias(LR, "champion", "1")
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


class Api:
    def __init__(self, platform, token: str | None = None):
        self.url = platform.url
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {token or platform.token}"

    def __getattr__(self, method):
        return lambda path, **kw: self.s.request(method.upper(), self.url + path, timeout=120, **kw)

    def create(self, name: str, *entities: dict, routes: list | None = None) -> dict:
        config = {"served_entities": list(entities)}
        if routes:
            config["traffic_config"] = {"routes": [{"served_model_name": n, "traffic_percentage": p}
                                                   for n, p in routes]}
        resp = self.post(API, json={"name": name, "config": config})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait(self, name: str, version: int, timeout: float = 240) -> dict:
        """Until config ``version`` runs and the endpoint is READY."""
        deadline = time.monotonic() + timeout
        while True:
            ep = self.get(f"{API}/{name}").json()
            if ep["state"]["ready"] == "READY" and ep.get("config", {}).get("config_version") == version \
                    and "pending_config" not in ep:
                return ep
            assert ep["state"]["config_update"] != "UPDATE_FAILED", ep
            assert time.monotonic() < deadline, ep
            time.sleep(0.5)

    def query(self, name: str, body: dict) -> requests.Response:
        return self.post(f"/serving-endpoints/{name}/invocations", json=body)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
