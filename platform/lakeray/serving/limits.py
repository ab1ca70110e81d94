"""Rate limits of the AI gateway: which limits a call counts against, and exact sliding windows.

A limit (see :mod:`lakeray.serving.gateway_config`) allows ``calls`` and/or ``tokens`` per
minute. Which limits apply to a caller follows Databricks: an ``endpoint`` limit always applies
(to all traffic together); of the caller's own limits, one naming the caller (``user`` or
``service_principal`` with its ``principal``) wins; otherwise the limits of the caller's groups
apply (each shared by the group's members); otherwise the default per-caller limit (``user``
without a principal; ``service_principal`` without one for service principals, if set).

The windows are sliding over the last 60 s and kept in one place (the gateway actor), so the
count is exact across ingress replicas: a burst of N simultaneous calls against a limit of L
admits exactly L. A call is admitted only if every limit it counts against has room, and only
then is it counted, so a rejected call consumes no quota. Token limits admit a call while the
tokens used in the window are under the limit; a call's tokens are counted when it finishes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

WINDOW_S = 60.0


@dataclass(frozen=True)
class Bucket:
    """One counter a call is charged to: a limit and whose calls share it."""

    key: str  # unique across endpoints: endpoint id, limit scope, who
    label: str  # for the 429: "60 calls per minute for user alice"
    calls: int | None
    tokens: int | None


def _label(limit: dict, who: str) -> str:
    amounts = [f"{limit[k]} {k}" for k in ("calls", "tokens") if k in limit]
    return f"{' and '.join(amounts)} per minute {who}"


def buckets_for(endpoint_id: str, endpoint: str, limits: list[dict], caller: dict) -> list[Bucket]:
    """The counters a call by ``caller`` (``{"name", "kind", "groups"}``) to the endpoint is
    charged to, by the precedence in the module docstring."""
    out = []
    own, groups, defaults = None, [], {}
    for limit in limits:
        key, principal = limit["key"], limit.get("principal")
        if key == "endpoint":
            out.append(Bucket(f"{endpoint_id}|endpoint", _label(limit, f"on endpoint {endpoint}"),
                              limit.get("calls"), limit.get("tokens")))
        elif principal is None:
            defaults[key] = limit
        elif key in ("user", "service_principal") and principal == caller["name"]:
            own = limit
        elif key == "user_group" and principal in caller["groups"]:
            groups.append(limit)
    name = caller["name"]
    if own is not None:
        chosen = [(own, f"{own['key']}:{name}", f"for {own['key'].replace('_', ' ')} {name}")]
    elif groups:
        chosen = [(g, f"group:{g['principal']}", f"for group {g['principal']}") for g in groups]
    else:
        default = defaults.get("service_principal") if caller["kind"] == "service_principal" else None
        default = default or defaults.get("user")
        chosen = [(default, f"caller:{name}", f"for {caller['kind'].replace('_', ' ')} {name}")] if default else []
    out += [Bucket(f"{endpoint_id}|{scope}", _label(limit, who), limit.get("calls"), limit.get("tokens"))
            for limit, scope, who in chosen]
    return out


class SlidingWindows:
    """Calls and tokens counted over the last :data:`WINDOW_S` seconds, per bucket key.

    Thread-safe; admission checks every bucket and then charges all of them under one lock.
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = {}
        self._tokens: dict[str, deque[tuple[float, int]]] = {}
        self._token_sums: dict[str, int] = {}

    def _prune(self, key: str, now: float) -> None:
        horizon = now - WINDOW_S
        calls = self._calls.get(key)
        while calls and calls[0] <= horizon:
            calls.popleft()
        tokens = self._tokens.get(key)
        while tokens and tokens[0][0] <= horizon:
            self._token_sums[key] -= tokens.popleft()[1]
        if calls is not None and not calls:
            del self._calls[key]
        if tokens is not None and not tokens:
            del self._tokens[key], self._token_sums[key]

    def _wait(self, bucket: Bucket, now: float) -> float | None:
        """Seconds until ``bucket`` has room again; None when it has room now."""
        waits = []
        calls = self._calls.get(bucket.key, ())
        if bucket.calls is not None and len(calls) >= bucket.calls:
            # the call that frees a slot is the one len - limit + 1 from the oldest
            waits.append(calls[len(calls) - bucket.calls] + WINDOW_S - now)
        if bucket.tokens is not None and self._token_sums.get(bucket.key, 0) >= bucket.tokens:
            excess = self._token_sums[bucket.key] - bucket.tokens
            for stamp, count in self._tokens[bucket.key]:
                excess -= count
                if excess < 0:
                    waits.append(stamp + WINDOW_S - now)
                    break
        return max(waits) if waits else None

    def admit(self, buckets: list[Bucket]) -> dict:
        """Charge one call to every bucket if each has room: ``{"admitted": True}``; otherwise
        nothing is charged and the answer names the limits hit and when to retry."""
        with self._lock:
            now = self.clock()
            hit = []
            for bucket in buckets:
                self._prune(bucket.key, now)
                wait = self._wait(bucket, now)
                if wait is not None:
                    hit.append((bucket.label, wait))
            if hit:
                return {"admitted": False, "limits": [label for label, _ in hit],
                        "retry_after_s": max(1, math.ceil(max(wait for _, wait in hit)))}
            for bucket in buckets:
                if bucket.calls is not None:
                    self._calls.setdefault(bucket.key, deque()).append(now)
            return {"admitted": True}

    def add_tokens(self, buckets: list[Bucket], tokens: int) -> None:
        """Count the tokens an admitted call used against the buckets with a token limit."""
        if tokens <= 0:
            return
        with self._lock:
            now = self.clock()
            for bucket in buckets:
                if bucket.tokens is not None:
                    self._tokens.setdefault(bucket.key, deque()).append((now, tokens))
                    self._token_sums[bucket.key] = self._token_sums.get(bucket.key, 0) + tokens
