"""The Python client: one interface over two transports (Ray actor handles, HTTP)."""

from __future__ import annotations

from lakeray.client.base import Client
from lakeray.client.credentials import resolve_token
from lakeray.settings import Settings


def connect(url: str | None = None, token: str | None = None, settings: Settings | None = None,
            timeout_s: float = 60.0) -> Client:
    """Connect to lakeray.

    Args:
        url: ``http(s)://host:port`` to go over HTTP; ``None`` (or ``"ray"``) to use the
            registry actor of the Ray cluster this process is connected to (``ray.init``
            is called with ``address="auto"`` if needed).
        token: a personal access token; default ``LAKERAY_TOKEN`` or the credentials file
            under ``LAKERAY_HOME`` written by ``lakeray up``.
        settings: platform settings (default: read from the environment).
        timeout_s: per-call timeout of the HTTP transport and retry budget of both.
    """
    settings = settings or Settings.from_env()
    token = resolve_token(token, settings)
    if url and url != "ray":
        from lakeray.client.http import HttpTransport

        return Client(HttpTransport(url, token, timeout_s=timeout_s))
    from lakeray.client.ray_transport import RayTransport

    return Client(RayTransport(token, settings, retry_s=timeout_s))


__all__ = ["Client", "connect"]
