"""Keeping CPython's garbage collector off a long-lived process's start-up heap.

An actor or Serve replica starts with a few hundred thousand objects that live as long as it
does (Ray, FastAPI, SQLAlchemy's tables and compiled statements, the services, a model). A
full (generation 2) collection walks every one of them, and requests that build large answers
(1,000-run search pages) leave enough survivors to start one every few requests: ~190 ms each
in a plain API server here, ~30 ms added to every search on average. :func:`settle`, called at
the end of the platform processes' start-up (the actors and the API replica), collects and
then moves what is left into the permanent generation, which collections skip. Those objects
are still freed by reference counting when released; only a reference cycle among them would
outlive its use, and start-up objects are meant to live. (Ray Serve 2.60 also freezes every
replica after its ``__init__``, which covers model servers; Ray actors get nothing of the kind.)

It also lets the youngest generation grow to :data:`YOUNG_OBJECTS` before a collection (CPython's
default is 700): a search page is ~15,000 containers alive until it is sent, so at 700 a request
ran ~20 young collections, each promoting the page built so far to the middle generation,
which was then walked again (middle-generation time per search: ~2.9 -> ~0.5 ms).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("lakeray.heap")
#: tracked objects allocated (net) before the youngest generation is collected
YOUNG_OBJECTS = 10_000


def settle() -> int:
    """Collect garbage, exempt every object still alive from later collections
    (``gc.freeze``) and raise the young generation's threshold. Call it at the end of a
    long-lived process's start-up; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, middle, old)
    frozen = gc.get_freeze_count()
    log.info("start-up heap settled: %d objects frozen", frozen)
    return frozen
