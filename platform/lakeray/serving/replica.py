"""The Ray Serve deployment of one served entity: loads the model version once per replica and
answers the requests the API ingress forwards through a deployment handle.

A request is ``{"api": "invocations", "model": <endpoint>, "body": <parsed JSON>}``. Errors come back as
LakerayErrors: a bad body is InvalidArgument (400), a model that raises is ModelError (500,
with the error's type and first line, never a stack trace; the trace goes to the replica log).
"""

from __future__ import annotations

import asyncio
import logging
import traceback

from lakeray.errors import InvalidArgument, LakerayError, ModelError

log = logging.getLogger("lakeray.serving")


def model_kind(path) -> str:
    """How a model version directory is served: ``pyfunc`` (an MLflow ``python_function``
    flavor), or ``chat``/``completion``/``embedding`` (lakeray's transformers models)."""
    from pathlib import Path

    import yaml

    mlmodel = Path(path) / "MLmodel"
    if not mlmodel.is_file():
        raise InvalidArgument(f"{path} has no MLmodel file: not a servable model")
    spec = yaml.safe_load(mlmodel.read_text()) or {}
    kind = (spec.get("lakeray") or {}).get("kind")
    if kind:
        return kind
    if "python_function" in (spec.get("flavors") or {}):
        return "pyfunc"
    raise InvalidArgument(f"the model at {path} has no python_function flavor, so it cannot be served")


class ModelServer:
    """One replica of a served entity (see :func:`lakeray.serving.deployer.entity_app`)."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.kind = spec["kind"]
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(spec["path"])

    async def __call__(self, request: dict) -> dict:
        if request["api"] != "invocations":
            raise InvalidArgument(f"endpoint '{request['model']}' serves an MLflow pyfunc model: query it at "
                                  f"/serving-endpoints/{request['model']}/invocations")
        # in a thread, so one replica's event loop keeps taking requests up to max_ongoing_requests
        return await asyncio.to_thread(self._invoke, request.get("body"))

    def _invoke(self, body) -> dict:
        from lakeray.serving.scoring import jsonable, parse

        model_input, params = parse(body)
        try:
            out = self.model.predict(model_input, params=params) if params else self.model.predict(model_input)
        except LakerayError:
            raise
        except Exception as e:  # noqa: BLE001 - the model's own failure, reported without internals
            log.error("model %s v%s raised:\n%s", self.spec["model"], self.spec["version"], traceback.format_exc())
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise ModelError(f"the model raised {type(e).__name__}" + (f": {first}" if first else "")) from None
        return {"predictions": jsonable(out)}

    def check_health(self) -> None:
        """Serve's health check: a loaded model is healthy."""
        if getattr(self, "model", None) is None:
            raise RuntimeError("no model loaded")
