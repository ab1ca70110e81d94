"""PrefixRouter: a router gated on path prefixes finds the same routes, faster, and can never
hide one."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lakeray.api.app import build_app
from lakeray.api.routing import PrefixRouter


def _app() -> FastAPI:
    app = FastAPI()
    outer = PrefixRouter(prefixes=("/api/x/", "/other"))
    runs = PrefixRouter(prefixes=("/api/x/runs",))

    @runs.post("/api/x/runs/create")
    async def create() -> dict:
        return {"made": True}

    @runs.get("/api/x/runs/{run_id}")
    async def get(run_id: str) -> dict:
        return {"run": run_id}

    outer.include_router(runs)

    @outer.get("/other")
    async def other() -> dict:
        return {"other": True}

    app.include_router(outer)
    app.include_router(PrefixRouter(prefix="/api/y"))
    return app


def test_routes_inside_the_gates_are_found():
    client = TestClient(_app())
    assert client.post("/api/x/runs/create").json() == {"made": True}
    assert client.get("/api/x/runs/r1").json() == {"run": "r1"}
    assert client.get("/other").json() == {"other": True}
    assert client.get("/api/x/runs/create").status_code == 200  # the {run_id} route
    assert client.put("/api/x/runs/create").status_code == 405  # a path of the group, another method
    assert client.get("/api/x/nothing").status_code == 404
    assert client.get("/api/z").status_code == 404


def test_a_route_outside_the_gates_is_refused_when_added():
    router = PrefixRouter(prefixes=("/api/x/",))
    with pytest.raises(ValueError, match="outside this router's prefixes"):
        router.add_api_route("/api/y/z", lambda: None)
    inner = PrefixRouter(prefixes=("/api/y",))
    inner.add_api_route("/api/y/z", lambda: None)
    with pytest.raises(ValueError, match="outside this router's prefixes"):
        router.include_router(inner)
    with pytest.raises(ValueError, match="non-empty prefixes"):
        PrefixRouter()


def test_every_platform_route_is_reachable(monkeypatch):
    """Through the real app, each route's own path and method reach that route (the handlers are
    replaced by a recorder, so nothing runs behind them; the routes are module-level objects, so
    monkeypatch puts the real handlers back)."""
    from starlette.responses import Response

    app = build_app(backend=None)
    reached = []

    def recorder(route):
        async def handle(scope, receive, send):
            reached.append(route)
            await Response(status_code=204)(scope, receive, send)
        return handle

    routes = list(_leaf_routes(app.router))
    for route in routes:
        monkeypatch.setattr(route, "handle", recorder(route), raising=False)
    client = TestClient(app, headers={"Authorization": "Bearer any"})  # the gate checks the form only
    checked = 0
    for route in routes:
        url = route.path.replace("{path:path}", "a/b")
        for name in route.param_convertors:
            url = url.replace("{" + name + "}", "x1")
        for method in route.methods - {"HEAD"}:
            reached.clear()
            assert client.request(method, url).status_code == 204, (method, route.path)
            assert reached == [route], (method, route.path, reached)
            checked += 1
    assert checked > 150


def _leaf_routes(router):
    for route in router.routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner)
        elif getattr(route, "methods", None):
            yield route
