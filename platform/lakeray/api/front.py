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
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket

from lakeray.errors import Unavailable

log = logging.getLogger("lakeray.api")

#: a pending-connection queue deep enough for bursts of clients (the kernel caps it at somaxconn).
BACKLOG = 2048


def bind_shared(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that other sockets with ``SO_REUSEPORT`` may share.

    Raises :class:`Unavailable` when another program (one that does not share) holds the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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


class Front:
    """A uvicorn server for ``app`` on a shared socket, run in the current event loop."""

    def __init__(self, app, host: str, port: int):
        import uvicorn

        self._socket = bind_shared(host, port)
        # No access log: the audit log records what matters, and a line per request costs time.
        config = uvicorn.Config(app, lifespan="off", access_log=False, log_level="warning",
                                timeout_graceful_shutdown=10)
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
