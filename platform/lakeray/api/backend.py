"""How the HTTP routes reach the dispatchers: in-process (tests) or through the actors.

An operation belongs to one actor (:func:`lakeray.dispatch.actor_of`): the registry or the
tracker.
"""

from __future__ import annotations

import asyncio

from lakeray.dispatch import actor_of
from lakeray.errors import Unavailable

#: read operations are safe to resend after an actor restart.
READ_PREFIXES = ("get_", "list_", "read_", "describe_", "table_", "whoami", "query_", "effective_",
                 "download_", "file_", "search_", "mlflow_get_", "mlflow_search_")


class LocalBackend:
    """Calls dispatchers in this process, on :class:`~lakeray.api.workers.WarmThreads` (threads
    keep the event loop free).

    ``dispatchers`` maps actor names to Dispatcher objects; a bare dispatcher serves all.
    """

    def __init__(self, dispatchers):
        from lakeray.api.workers import WarmThreads

        self.dispatchers = dispatchers if isinstance(dispatchers, dict) else None
        self.only = None if isinstance(dispatchers, dict) else dispatchers
        self.threads = WarmThreads()

    @property
    def registry(self):
        return self.only if self.only is not None else self.dispatchers["registry"]

    def dispatcher(self, op: str):
        return self.only if self.only is not None else self.dispatchers[actor_of(op)]

    async def call(self, op: str, token: str, request_id: str | None = None, /, **kwargs):
        return await self.threads.run(self.dispatcher(op).call, op, token, request_id, **kwargs)

    def artifact_store(self):
        """The artifact store this process can write itself (file bodies skip the actor)."""
        return self.dispatcher("upload_artifact").store


class ActorBackend:
    """Calls the owning actor; a restarting actor is retried briefly, then 503."""

    def artifact_store(self):
        """None: this process has no stores; file bodies go through the tracker actor."""
        return None

    def __init__(self, actor_getter, retry_s: float = 30.0):
        self._get = actor_getter  # actor name -> handle
        self._actors: dict[str, object] = {}
        self.retry_s = retry_s

    def open(self) -> None:
        """Nothing to open ahead: actor handles are looked up on first use."""

    async def call(self, op: str, token: str, request_id: str | None = None, /, **kwargs):
        import ray.exceptions as rex

        name = actor_of(op)
        deadline = asyncio.get_running_loop().time() + self.retry_s
        while True:
            try:
                if name not in self._actors:
                    self._actors[name] = self._get(name)
                return await self._actors[name].call.remote(op, token, request_id, kwargs)
            except (rex.ActorDiedError, rex.ActorUnavailableError, ValueError) as e:
                if asyncio.get_running_loop().time() > deadline:
                    raise Unavailable(f"the {name} actor is not reachable: {type(e).__name__}") from None
                # Only writes with a request id are safe to resend: the dispatcher deduplicates them.
                if isinstance(e, rex.ActorDiedError | rex.ActorUnavailableError) and request_id is None \
                        and not op.startswith(READ_PREFIXES):
                    raise Unavailable(f"the {name} actor restarted during the call; retry it") from None
                self._actors.pop(name, None)
                await asyncio.sleep(0.2)


class HybridBackend:
    """Reads in this process, writes through the owning actor (tracking and model writes here too).

    Read operations (list, get, read rows, permission checks, searches) run on dispatchers
    opened in the API replica over the same durable stores, so the hot path has no actor
    round trip. Catalog writes go to the registry actor, the single writer that owns per-table
    write order; writes whose whole state is the database and artifact root
    (``Dispatcher.writes_in_replica``: tracking and the model registry) run here too, the
    database serialising writers and holding request ids.
    Writes commit before they are acknowledged, so a read after a write sees it.
    """

    def __init__(self, settings, actor_getter):
        self.settings = settings
        self.writes = ActorBackend(actor_getter)
        self._local: LocalBackend | None = None

    def open(self) -> None:
        """Open this process's dispatchers now (the replica does at start; else the first call)."""
        self._reader()

    def _reader(self) -> LocalBackend:
        if self._local is None:
            from lakeray.dispatch import open_dispatchers

            self._local = LocalBackend(open_dispatchers(self.settings))
        return self._local

    def artifact_store(self):
        """The artifact store, opened in this replica over the shared artifact root."""
        return self._reader().artifact_store()

    async def call(self, op: str, token: str, request_id: str | None = None, /, **kwargs):
        reader = self._reader()
        dispatcher = reader.dispatcher(op)
        operation = dispatcher.ops.get(op)
        if operation is not None and (not operation.mutating or dispatcher.writes_in_replica(op)):
            return await reader.call(op, token, request_id, **kwargs)
        return await self.writes.call(op, token, request_id, **kwargs)
