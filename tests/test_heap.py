"""lakeray.heap.settle: garbage is collected first, what lives is frozen, the young generation
is larger, and the collector still frees cycles made afterwards. Run in a child process: the
collector's settings are process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHECK = textwrap.dedent("""
    import gc, weakref
    from lakeray import heap

    class Node:
        pass

    def cycle():
        node = Node()
        node.me = node  # only a collection frees a reference cycle
        return node

    before = weakref.ref(cycle())  # garbage at start-up
    kept = cycle()                  # a start-up object that lives on
    frozen = heap.settle()
    assert before() is None, "garbage at start-up must be collected, not frozen"
    assert frozen == gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == heap.YOUNG_OBJECTS
    assert all(o is not kept for o in gc.get_objects()), "a live start-up object must be frozen"

    after = weakref.ref(cycle())  # garbage made while serving
    gc.collect()
    assert after() is None, "cycles made after settling must still be collected"
    assert isinstance(kept.me, Node)
    print("ok")
""")


def test_settle_collects_then_freezes_and_later_garbage_is_still_collected():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
