"""The API replica's worker threads: results and errors come back, sequential calls stay on one
thread, overlapping calls get threads of their own up to the cap, and the rest wait their turn."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lakeray.api.workers import WarmThreads


def test_results_errors_and_thread_reuse():
    pool = WarmThreads(max_threads=4)

    async def scenario():
        names = [await pool.run(lambda: threading.current_thread().name) for _ in range(20)]
        assert await pool.run(lambda a, b=0: a + b, 2, b=3) == 5
        with pytest.raises(KeyError):
            await pool.run(lambda: {}["missing"])
        return names

    names = asyncio.run(scenario())
    assert len(set(names)) == 1 and names[0] != threading.current_thread().name


def test_overlapping_calls_run_in_parallel_up_to_the_cap():
    pool = WarmThreads(max_threads=3)
    running, peak, lock = [0], [0], threading.Lock()

    def slow(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return i

    async def scenario():
        return await asyncio.gather(*(pool.run(slow, i) for i in range(10)))

    assert asyncio.run(scenario()) == list(range(10))
    assert peak[0] == 3


def test_a_caller_whose_event_loop_closed_does_not_cost_a_thread():
    pool = WarmThreads(max_threads=1)
    started, release = threading.Event(), threading.Event()

    def blocked():
        started.set()
        release.wait(5)

    loop = asyncio.new_event_loop()
    task = loop.create_task(pool.run(blocked))
    loop.run_until_complete(asyncio.sleep(0))  # the call is on the thread now
    assert started.wait(5)
    task.cancel()
    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    loop.close()  # before the answer comes back
    release.set()
    assert asyncio.run(asyncio.wait_for(pool.run(lambda: "still serving"), 5)) == "still serving"
