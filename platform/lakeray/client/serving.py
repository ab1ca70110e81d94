"""``client.serving``: serving endpoints from Python, the same on both transports.

Queries over HTTP go to the endpoint's invocations route; over Ray they take the ingress's own
path (the routes, a traffic draw, the served entity's deployment handle) without an HTTP hop.
"""

from __future__ import annotations

from lakeray.errors import InvalidArgument


class ServingClient:
    """Create, inspect, update, delete and query serving endpoints."""

    def __init__(self, client):
        self._c = client

    def create(self, name: str, served_entities: list[dict], traffic_config: dict | None = None,
               tags: dict | None = None, description: str | None = None) -> dict:
        """Create an endpoint; it deploys in the background (see ``wait``)."""
        config = {"served_entities": served_entities, **({"traffic_config": traffic_config} if traffic_config else {})}
        return self._c._write("create_serving_endpoint", name=name, config=config, description=description,
                              tags=[{"key": k, "value": str(v)} for k, v in (tags or {}).items()] or None)

    def get(self, name: str) -> dict:
        return self._c._read("get_serving_endpoint", name=name)

    def list(self) -> list[dict]:
        return self._c._read("list_serving_endpoints")["endpoints"]

    def update_config(self, name: str, served_entities: list[dict], traffic_config: dict | None = None) -> dict:
        """Replace the config; it rolls out beside the running one (``pending_config``)."""
        return self._c._write("update_serving_endpoint_config", name=name, served_entities=served_entities,
                              traffic_config=traffic_config)

    def put_ai_gateway(self, name: str, rate_limits: list[dict] | None = None,
                       usage_tracking_config: dict | None = None, inference_table_config: dict | None = None,
                       guardrails: dict | None = None, fallback_config: dict | None = None) -> dict:
        """Replace the endpoint's AI gateway config (Databricks' shapes, e.g. ``rate_limits=[{"calls":
        60, "key": "user", "renewal_period": "minute"}]``); parts left out are turned off."""
        return self._c._write("put_ai_gateway", name=name, rate_limits=rate_limits,
                              usage_tracking_config=usage_tracking_config,
                              inference_table_config=inference_table_config, guardrails=guardrails,
                              fallback_config=fallback_config)

    def delete(self, name: str) -> None:
        self._c._write("delete_serving_endpoint", name=name)

    def wait(self, name: str, timeout_s: float = 600.0) -> dict:
        """Until the endpoint is READY with no config rolling out; raises if an update failed."""
        import time

        from lakeray.errors import DeadlineExceeded, LakerayError

        deadline = time.monotonic() + timeout_s
        while True:
            ep = self.get(name)
            if ep["state"]["ready"] == "READY" and "pending_config" not in ep:
                return ep
            if ep["state"]["config_update"] == "UPDATE_FAILED":
                raise LakerayError(f"endpoint {name}: {ep['state'].get('message', 'the update failed')}")
            if time.monotonic() > deadline:
                raise DeadlineExceeded(f"endpoint {name} was not ready within {timeout_s:g} s")
            time.sleep(0.5)

    def query(self, name: str, body: dict | None = None, **fields) -> dict:
        """Score or generate with an endpoint: ``dataframe_records=...``/``inputs=...`` for pyfunc
        models, ``messages=...`` or ``prompt=...`` for language models, ``input=...`` for
        embedding models (not streamed)."""
        body = {**(body or {}), **fields}
        if body.get("stream"):
            raise InvalidArgument("stream: use the openai client against /v1 for streamed generations")
        return self._c._read("query_serving_endpoint", name=name, body=body)
