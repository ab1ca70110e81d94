"""The threads an API replica runs blocking service calls on.

asyncio's default executor hands each call to whichever of its idle threads wakes first, so a
stream of short calls (an MLflow ``log_metric`` spends ~0.6 ms in the service) moves from thread
to thread, and each move costs more than the call's own database work is worth (~0.3 ms here:
cold CPU caches, GIL hand-offs). :class:`WarmThreads` gives a call to the thread that finished
most recently, so sequential calls stay on one thread, and adds threads only for calls that
overlap.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections import deque
from collections.abc import Callable


class _Worker:
    def __init__(self, pool: WarmThreads):
        self.pool = pool
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()  # C-level: the cheapest way to wake a thread
        threading.Thread(target=self._run, name="lakeray-api-worker", daemon=True).start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            while job is not None:
                future, loop, fn = job
                try:
                    outcome = (fn(), None)
                except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                    outcome = (None, e)
                try:
                    loop.call_soon_threadsafe(_settle, future, *outcome)
                except RuntimeError:
                    pass  # the caller's event loop closed meanwhile: nobody waits for this answer
                job = self.pool._next_job(self)


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WarmThreads:
    """Up to ``max_threads`` threads; a call goes to the most recently idle one."""

    def __init__(self, max_threads: int = 16):
        self.max_threads = max_threads
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the last to finish is reused first
        self._count = 0
        self._backlog: deque[tuple] = deque()

    async def run(self, fn: Callable, /, *args, **kwargs):
        """``fn(*args, **kwargs)`` on a pool thread, awaited."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        job = (future, loop, functools.partial(fn, *args, **kwargs))
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
            elif self._count < self.max_threads:
                self._count += 1
                worker = _Worker(self)
            else:
                worker = None
                self._backlog.append(job)  # the next thread to finish takes it
        if worker is not None:
            worker.jobs.put(job)
        return await future

    def _next_job(self, worker: _Worker):
        """The worker's next job from the backlog, or None after it has gone idle."""
        with self._lock:
            if self._backlog:
                return self._backlog.popleft()
            self._idle.append(worker)
            return None
