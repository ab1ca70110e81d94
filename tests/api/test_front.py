"""The replica HTTP front: replicas share the platform's port, a foreign holder is a clear error,
and the front setting is validated."""

from __future__ import annotations

import asyncio
import socket

import pytest
import requests
from fastapi import FastAPI
from tests.conftest import free_port

from lakeray.api.front import Front, bind_shared, check_port_free
from lakeray.errors import InvalidArgument, Unavailable
from lakeray.settings import Settings


def _app(name: str) -> FastAPI:
    app = FastAPI()

    @app.get("/who")
    def who():
        return {"front": name}

    return app


def test_two_fronts_share_one_port_and_stop_cleanly():
    port = free_port()

    async def scenario():
        a, b = Front(_app("a"), "127.0.0.1", port), Front(_app("b"), "127.0.0.1", port)
        await asyncio.sleep(0.3)
        seen = set()
        for _ in range(40):  # new connections each time: the kernel spreads them over both
            resp = await asyncio.to_thread(requests.get, f"http://127.0.0.1:{port}/who", timeout=5)
            seen.add(resp.json()["front"])
        await a.stop()
        assert not a.running and b.running
        after = [(await asyncio.to_thread(requests.get, f"http://127.0.0.1:{port}/who", timeout=5)).json()["front"]
                 for _ in range(10)]
        await b.stop()
        return seen, after

    seen, after = asyncio.run(scenario())
    assert seen == {"a", "b"}
    assert set(after) == {"b"}  # the stopped front's socket is closed, its share goes to the other
    check_port_free("127.0.0.1", port)  # both sockets are closed


def test_a_port_held_by_another_program_is_a_clear_error():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))  # no SO_REUSEPORT: this program does not share
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(Unavailable, match=f"cannot listen on 127.0.0.1:{port}.*LAKERAY_PORT"):
            check_port_free("127.0.0.1", port)
        with pytest.raises(Unavailable):
            bind_shared("127.0.0.1", port)
    finally:
        holder.close()


def test_http_front_setting():
    assert Settings.from_env({"LAKERAY_HOME": "/tmp/x"}).http_front == "replica"
    assert Settings.from_env({"LAKERAY_HOME": "/tmp/x", "LAKERAY_HTTP_FRONT": "Proxy"}).http_front == "proxy"
    with pytest.raises(InvalidArgument, match="LAKERAY_HTTP_FRONT must be one of replica, proxy"):
        Settings.from_env({"LAKERAY_HOME": "/tmp/x", "LAKERAY_HTTP_FRONT": "nginx"})
    with pytest.raises(InvalidArgument, match="LAKERAY_SERVE_PROXY_PORT must be an integer"):
        Settings.from_env({"LAKERAY_HOME": "/tmp/x", "LAKERAY_SERVE_PROXY_PORT": "x"})
