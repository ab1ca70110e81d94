"""How the HTTP routes reach the registry: in-process (tests) or through the registry actor."""

from __future__ import annotations

import asyncio

from lakeray.errors import Unavailable


class LocalBackend:
    """Calls a :class:`~lakeray.registry.Registry` in this process (threads keep the loop free)."""

    def __init__(self, registry):
        self.registry = registry

    async def call(self, op: str, token: str, request_id: str | None = None, **kwargs):
        return await asyncio.to_thread(self.registry.call, op, token, request_id, **kwargs)


class ActorBackend:
    """Calls the registry actor; a restarting actor is retried briefly, then 503."""

    def __init__(self, actor_getter, retry_s: float = 30.0):
        self._get = actor_getter
        self._actor = None
        self.retry_s = retry_s

    async def call(self, op: str, token: str, request_id: str | None = None, **kwargs):
        import ray.exceptions as rex

        deadline = asyncio.get_running_loop().time() + self.retry_s
        while True:
            try:
                if self._actor is None:
                    self._actor = self._get()
                return await self._actor.call.remote(op, token, request_id, kwargs)
            except (rex.ActorDiedError, rex.ActorUnavailableError, ValueError) as e:
                # Only writes with a request id are safe to resend: the registry deduplicates them.
                if asyncio.get_running_loop().time() > deadline:
                    raise Unavailable(f"the registry is not reachable: {type(e).__name__}") from None
                if isinstance(e, rex.ActorDiedError | rex.ActorUnavailableError) and request_id is None \
                        and not op.startswith(("get_", "list_", "read_", "describe_", "table_", "whoami",
                                               "query_", "effective_", "download_", "file_")):
                    raise Unavailable("the registry restarted during the call; retry it") from None
                self._actor = None
                await asyncio.sleep(0.2)


class HybridBackend:
    """Reads in this process, writes through the registry actor.

    Read operations (list, get, read rows, permission checks) run on a Registry opened in the
    API replica over the same durable stores, so the hot path has no actor round trip. Every
    write still goes to the registry actor, the single writer that owns request-id replay and
    per-table write ordering. Writes commit before they are acknowledged, so a read after a
    write sees it.
    """

    def __init__(self, settings, actor_getter):
        self.settings = settings
        self.writes = ActorBackend(actor_getter)
        self._local: LocalBackend | None = None

    def _reader(self) -> LocalBackend:
        if self._local is None:
            from lakeray.registry import Registry

            self._local = LocalBackend(Registry(self.settings, function_runner=None))
        return self._local

    async def call(self, op: str, token: str, request_id: str | None = None, **kwargs):
        reader = self._reader()
        operation = reader.registry.ops.get(op)
        if operation is not None and not operation.mutating:
            return await reader.call(op, token, request_id, **kwargs)
        return await self.writes.call(op, token, request_id, **kwargs)
