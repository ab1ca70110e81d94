"""The HTTP front of an API replica: the replica itself listens on the platform's port.

Why not Ray Serve's HTTP proxy: a request through the proxy pays a second process hop (proxy
-> replica, ~5-7 ms on a 2-core machine, more than MLflow's whole ``log_metric``), and lakeray's
API has a single ingress that routes everything itself. So each API replica runs a uvicorn
server on ``host:port`` with ``SO_REUSEPORT``: every replica on a node binds the same port and
the kernel spreads connections over them. This is what Ray Serve's own "direct ingress" mode
does (replicas serve HTTP themselves); Serve still places, health-checks, restarts and scales
the replicas. A replica that dies closes its socket, so new connections go to the others (or
are refused until Serve has restarted it; the MLflow and lakeray clients retry those).

``LAKERAY_HTTP_FRONT=proxy`` goes back to Serve's proxy on the port instead.

The front refuses a request whose request line and headers exceed :data:`MAX_HEAD_BYTES` with
431 and closes the connection (:class:`HeadLimit`): uvicorn's httptools protocol has no such
limit, and buffers a header of any size. The limit is this front's own: with
``LAKERAY_HTTP_FRONT=proxy`` Ray Serve's proxy parses the requests with its own uvicorn
(httptools, no header limit either), which lakeray cannot configure; put a reverse proxy with a
header limit in front of that mode when it faces untrusted clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import socket

from lakeray.errors import Unavailable

log = logging.getLogger("lakeray.api")

#: a pending-connection queue deep enough for bursts of clients (the kernel caps it at somaxconn).
BACKLOG = 2048

#: the most bytes of request line + headers one request may send. httptools (llhttp) keeps a
#: header's bytes until the header ends, so without a cap a client holding a half-sent header
#: makes the replica buffer as much as it sends (8 connections x 16 MB: ~200 MB). Real requests
#: need a few KiB; 64 KiB leaves room for long tokens and cookies (nginx allows 4 x 8 KiB lines).
MAX_HEAD_BYTES = 64 * 1024

_BODY_431 = json.dumps({"error_code": "REQUEST_LIMIT_EXCEEDED",
                        "message": f"request line and headers are over the {MAX_HEAD_BYTES}-byte limit"}).encode()


def bind_shared(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that other sockets with ``SO_REUSEPORT`` may share.

    Raises :class:`Unavailable` when another program (one that does not share) holds the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise Unavailable(f"cannot listen on {host}:{port}: {e.strerror} "
                              "(another program holds the port? set LAKERAY_PORT)") from None
        raise
    sock.setblocking(False)
    return sock


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`Unavailable` now, before deploying, if ``host:port`` is held by a program
    the API replicas could not share it with (a running lakeray's replicas share it)."""
    bind_shared(host, port).close()


class HeadLimit:
    """Mixin for uvicorn's ``HttpToolsProtocol``: 431 and close once a request's head (request
    line + headers) is over :data:`MAX_HEAD_BYTES`.

    A head still arriving is counted by the bytes received, after each chunk is parsed (a
    chunk may end the head and carry the body too), so the parser holds at most the limit plus
    one read. A head that ends is measured from its parsed parts, but only when the bytes
    received could exceed the limit; the cost per request is a few attribute writes. (uvicorn's
    h11 protocol has a limit of its own, but answers 400 and took ~0.2 ms a request here against
    ~0.1 ms for httptools, with or without this mixin.)
    """

    _in_head = False  # a request's head has begun and not ended
    _idle = True  # between requests: the next head starts at the next byte received
    _head_from_start = False  # the current head began at the start of a chunk
    _began_here = False  # the current head began in the chunk being parsed
    _head_bytes = 0  # bytes of the current head received in earlier chunks
    _chunk = 0  # bytes in the chunk being parsed
    _refused = False

    def data_received(self, data: bytes) -> None:
        self._chunk, self._began_here = len(data), False
        self._head_from_start = self._idle  # a head beginning in this chunk begins at its start
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        if not self._began_here:
            self._head_bytes += len(data)  # the whole chunk continues the head
        elif self._head_from_start:
            self._head_bytes = len(data)  # the head began at this chunk's start and fills it
        # else the head began after the end of an earlier request in this chunk (pipelining):
        # its share is unknown and goes uncounted until the head ends, so at most one read late.
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse()

    def on_message_begin(self) -> None:
        self._in_head, self._idle, self._began_here, self._head_bytes = True, False, True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self._refused:  # the parser goes on to the end of the chunk; nothing more may run
            return
        before, self._in_head, self._head_bytes = self._head_bytes, False, 0
        # The head is at most the bytes before this chunk and the whole chunk: only a large
        # chunk needs the parts added up.
        if before + self._chunk > MAX_HEAD_BYTES and max(before, self._parsed_head_bytes()) > MAX_HEAD_BYTES:
            return self._refuse()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        # A head that begins later in the same chunk does not begin at the chunk's start.
        self._idle, self._head_from_start = True, False
        super().on_message_complete()

    def _parsed_head_bytes(self) -> int:
        """The size of the head just parsed, as sent with single spaces ("GET /x HTTP/1.1")."""
        return (len(self.parser.get_method()) + len(self.url) + 12
                + sum(len(name) + len(value) + 4 for name, value in self.headers) + 2)

    def _refuse(self) -> None:
        self._refused = True
        log.warning("refused a request whose head is over %d bytes", MAX_HEAD_BYTES)
        # A response still being written (or queued, when pipelining) must not be interleaved.
        if (self.cycle is None or self.cycle.response_complete) and not self.pipeline:
            head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
            head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
            head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                        % len(_BODY_431))
            self.transport.write(b"".join(head) + _BODY_431)
        self.transport.close()


@functools.cache
def http_protocol() -> type:
    """uvicorn's httptools protocol with :class:`HeadLimit` (built on first use: importing
    uvicorn's protocol costs ~130 ms, which ``check_port_free``'s callers need not pay).

    httptools always comes with ``ray[serve]`` (which requires ``uvicorn[standard]``).
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    return type("HeadLimitedProtocol", (HeadLimit, HttpToolsProtocol), {})


class Front:
    """A uvicorn server for ``app`` on a shared socket, run in the current event loop."""

    def __init__(self, app, host: str, port: int):
        import uvicorn

        self._socket = bind_shared(host, port)
        # No access log: the audit log records what matters, and a line per request costs time.
        config = uvicorn.Config(app, http=http_protocol(), lifespan="off", access_log=False,
                                log_level="warning", timeout_graceful_shutdown=10)
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self._socket]))
        self._task.add_done_callback(self._ended)

    @staticmethod
    def _ended(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the HTTP front stopped: %r", task.exception())

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close the socket."""
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._task, timeout=15)
        self._socket.close()
