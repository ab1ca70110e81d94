"""Identifiers and timestamps, made one way everywhere."""

from __future__ import annotations

import time
import uuid


def new_id() -> str:
    """A fresh random object id (UUID4, hex with dashes)."""
    return str(uuid.uuid4())


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of every stored timestamp."""
    return int(time.time() * 1000)
