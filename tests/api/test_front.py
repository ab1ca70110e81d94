"""The replica HTTP front: replicas share the platform's port, a foreign holder is a clear error,
oversized request heads are refused with 431, and the front setting is validated."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
import requests
from fastapi import FastAPI
from tests.conftest import free_port

from lakeray.api.front import MAX_HEAD_BYTES, Front, bind_shared, check_port_free
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


def _request(path: str = "/who", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


def _request_of(size: int) -> bytes:
    """A request whose line and headers are ``size`` bytes, most of them one header's value."""
    base = len(_request(extra=b"X-Big: \r\n"))
    return _request(extra=b"X-Big: " + b"a" * (size - base) + b"\r\n")


def _read_response(reader) -> bytes:
    """One response with a Content-Length body (what the test app and the 431 send), from a
    buffered reader (pipelined responses may arrive in one packet)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return head
        head += line
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return head + reader.read(length)


def _closed(reader) -> bool:
    try:
        return reader.read(1) == b""
    except ConnectionResetError:  # closed with the rest of our header unread
        return True


def _with_front(check, app: FastAPI | None = None) -> None:
    """Run ``check(port)`` in a thread while a Front serves ``app`` (the test app) on a free port."""
    port = free_port()

    async def scenario():
        front = Front(app or _app("a"), "127.0.0.1", port)
        await asyncio.sleep(0.3)
        try:
            await asyncio.to_thread(check, port)
        finally:
            await front.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("request_bytes", [
    _request_of(MAX_HEAD_BYTES + 1),
    _request(extra=b"".join(b"X-H%d: v\r\n" % i for i in range(20_000))),
], ids=["one-byte-over", "20000-headers"])
def test_a_request_head_over_the_limit_is_431_and_the_connection_closes(request_bytes):
    def check(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, sock.makefile("rb") as reader:
            sock.sendall(_request())  # a normal request first: the limit is per request, not per connection
            assert _read_response(reader).startswith(b"HTTP/1.1 200")
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                sock.sendall(request_bytes)
            resp = _read_response(reader)
            assert resp.startswith(b"HTTP/1.1 431 "), resp[:100]
            assert b"connection: close" in resp and b"REQUEST_LIMIT_EXCEEDED" in resp
            assert _closed(reader)

    _with_front(check)


def test_a_header_that_never_ends_is_refused_before_it_ends():
    """The refusal comes while the header is still arriving, so the front does not buffer
    what an attacker keeps sending (the probe held 16 MB headers open)."""
    def check(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, sock.makefile("rb") as reader:
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                sock.sendall(b"GET /who HTTP/1.1\r\nHost: t\r\nX-Big: ")
                for _ in range(64):  # up to 4 MB, never the end of the header
                    sock.sendall(b"a" * 65536)
            resp = _read_response(reader)
            assert resp.startswith(b"HTTP/1.1 431 "), resp[:100]
            assert _closed(reader)

    _with_front(check)


def test_heads_under_the_limit_keep_alive_and_pipelining_work():
    def check(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, sock.makefile("rb") as reader:
            just_under = _request_of(MAX_HEAD_BYTES)
            assert len(just_under) == MAX_HEAD_BYTES
            for _ in range(3):  # one keep-alive connection: the count starts again with each request
                sock.sendall(just_under)
                assert _read_response(reader).startswith(b"HTTP/1.1 200")
            for i in range(0, len(just_under), 7000):  # a head arriving in pieces is counted across them
                sock.sendall(just_under[i:i + 7000])
            assert _read_response(reader).startswith(b"HTTP/1.1 200")
            sock.sendall(just_under * 3)  # pipelined, each head at the limit
            for _ in range(3):
                resp = _read_response(reader)
                assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b'{"front":"a"}')
            sock.sendall(_request())
            assert _read_response(reader).startswith(b"HTTP/1.1 200")

    _with_front(check)


def test_a_500_keeps_the_connection_alive(backend, registry, admin):
    """An unexpected error answers 500 in the one error format and the kept-alive connection
    serves the next request (Starlette's Exception handler re-raised, and uvicorn then closed
    the connection without saying so: the client's next request met a reset)."""
    from lakeray.api.app import build_app

    def explode(*a, **k):
        raise RuntimeError("secret internal detail")

    registry.catalog.get = explode
    registry.ops = registry._operations()
    token = registry.call_as(admin, "create_token")["token_value"].encode()
    auth = b"Authorization: Bearer " + token + b"\r\n"

    def check(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, sock.makefile("rb") as reader:
            sock.sendall(_request("/api/2.1/unity-catalog/catalogs/main", auth))
            resp = _read_response(reader)
            assert resp.startswith(b"HTTP/1.1 500 ") and b"INTERNAL_ERROR" in resp and b"secret" not in resp
            assert b"connection: close" not in resp.lower()
            sock.sendall(_request("/healthz"))
            assert _read_response(reader).startswith(b"HTTP/1.1 200")

    _with_front(check, build_app(backend))
