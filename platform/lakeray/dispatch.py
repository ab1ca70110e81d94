"""Named operations behind one ``call``: authentication, exactly-once writes, denial audit.

Each long-lived actor hosts a :class:`Dispatcher` subclass (the registry, the tracker) that
maps operation names to plain-Python service methods taking the caller first. The actor,
the HTTP routes and the Python client all end up in :meth:`Dispatcher.call`.

A mutating call may carry a ``request_id``: its first committed write transaction records
the id (see :meth:`lakeray.storage.db.Database.claim`), and a retry with the same id (after
an actor restart, say) returns the stored result instead of acting twice.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

from lakeray.catalog.audit import AuditLog
from lakeray.errors import InvalidArgument, LakerayError, PermissionDenied
from lakeray.principals.service import Caller, PrincipalService
from lakeray.storage.db import AlreadyApplied, Database

#: how to rebuild the result of an applied write whose result was lost: (read op, its args).
Reread = dict[str, Callable[[dict], tuple[str, dict]]]


@dataclass(frozen=True)
class Operation:
    """One callable operation: the function (caller first) and whether it writes."""

    fn: Callable
    mutating: bool
    #: MLflow's server ignores request fields it does not know (protobuf JSON parsing), so
    #: clients newer than the server keep working; lenient operations drop unknown fields too.
    lenient: bool = False


#: an operation's parameters, worked out once per function (inspect.signature is not cheap
#: next to a ~1 ms call).
_signature = functools.cache(inspect.signature)


def _known_fields(fn: Callable, kwargs: dict) -> dict:
    """``kwargs`` without the keywords ``fn`` does not take; its first parameter (the caller)
    is never a field, so a request's ``caller`` field is dropped as unknown too."""
    params = _signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return kwargs
    caller = next(iter(params), None)
    return {k: v for k, v in kwargs.items() if k in params and k != caller}


def _call_signature(op: str, kwargs: dict) -> str:
    """``op#<digest of the arguments>``: a request id replays only the very same call."""
    def plain(value):
        if isinstance(value, bytes | bytearray):
            return hashlib.sha256(value).hexdigest()
        return repr(value)

    text = json.dumps(kwargs, sort_keys=True, default=plain)
    return f"{op}#{hashlib.sha256(text.encode()).hexdigest()[:32]}"



class Dispatcher:
    """Operations of one actor over services sharing one metadata DB.

    Subclasses set ``db``, ``audit`` and ``principals`` and fill ``ops`` (name -> Operation).
    """

    #: how to answer a retried write whose stored result was lost.
    reread: Reread = {}
    #: writes that keep their own request-id record (e.g. in a Lance commit).
    self_idempotent: frozenset[str] = frozenset()
    #: writes whose result is secret and is therefore never stored for replay.
    unclaimed: frozenset[str] = frozenset()

    db: Database
    audit: AuditLog
    principals: PrincipalService
    ops: dict[str, Operation]

    def writes_in_replica(self, op: str) -> bool:
        """Whether an API replica may run write ``op`` itself instead of asking the actor.

        True only for writes whose whole state is the shared database and artifact root (the
        database serialises writers and holds the request ids), so no write order or memory
        lives in the actor. None by default.
        """
        return False

    def call(self, op: str, token: str | None, /, request_id: str | None = None, **kwargs):
        """Authenticate ``token`` and run operation ``op`` with ``kwargs``."""
        caller = self.principals.authenticate(token)
        return self.call_as(caller, op, request_id=request_id, **kwargs)

    def call_as(self, caller: Caller, op: str, /, request_id: str | None = None, **kwargs):
        """Run ``op`` for an already authenticated caller.

        A write with a ``request_id`` is applied at most once: its first committed transaction
        records the id (atomically, see :meth:`Database.claim`), and a retry returns the stored
        result. Table writes keep their id in the Lance commit itself instead.
        """
        operation = self.ops.get(op)
        if operation is None:
            raise InvalidArgument(f"unknown operation {op!r}")
        if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= 128
                                       or "\x00" in request_id):
            raise InvalidArgument("request_id must be a string of 1-128 characters without NUL")
        if operation.lenient:
            kwargs = _known_fields(operation.fn, kwargs)
        try:
            _signature(operation.fn).bind(caller, **kwargs)
        except TypeError as e:  # a wrong or missing keyword is the caller's mistake
            raise InvalidArgument(f"bad arguments to {op}: {e}") from None
        claimed = operation.mutating and request_id is not None and op not in self.unclaimed
        if claimed and op in self.self_idempotent:
            kwargs["request_id"] = request_id
            claimed = False
        signature = _call_signature(op, kwargs) if claimed else op
        if claimed:
            prior = self.db.applied(request_id)
            if prior is not None:
                return self._replay(prior, signature, caller, kwargs)
        try:
            with self.db.claim(request_id, signature, caller.name) if claimed else nullcontext() as claim:
                result = operation.fn(caller, **kwargs)
        except AlreadyApplied:
            return self._replay(self.db.applied(request_id), signature, caller, kwargs)
        except PermissionDenied as e:
            action, stype, name = getattr(e, "audit", (op, None, None))
            self.audit.record(caller.name, action, stype, name, "denied", {"reason": e.message})
            raise
        if claimed and claim.recorded:
            try:
                self.db.store_result(request_id, json.dumps(result))
            except TypeError:
                pass  # results that are not JSON (bytes) are re-read on replay instead
        return result

    def _replay(self, prior, signature: str, caller: Caller, kwargs: dict):
        """The answer to a retried write that was already applied."""
        if prior.operation != signature or prior.principal != caller.name:
            raise InvalidArgument("request_id was already used for another call")
        op = signature.split("#", 1)[0]
        if prior.result:
            return json.loads(prior.result)
        # Applied, but the process died before storing the result: read the state instead.
        reread = self.reread.get(op)
        if reread is None:
            return None
        read_op, args = reread(kwargs)
        return self.ops[read_op].fn(caller, **args)


def actor_of(op: str) -> str:
    """The name of the actor that owns operation ``op``."""
    from lakeray.settings import REGISTRY_ACTOR, TRACKER_ACTOR
    from lakeray.tracking.operations import TRACKER_OPERATIONS

    return TRACKER_ACTOR if op in TRACKER_OPERATIONS else REGISTRY_ACTOR


def open_dispatchers(settings) -> dict[str, Dispatcher]:
    """Every dispatcher over ``settings``' stores, by actor name (for in-process use)."""
    from lakeray.registry import Registry
    from lakeray.settings import REGISTRY_ACTOR, TRACKER_ACTOR
    from lakeray.tracker import Tracker

    return {REGISTRY_ACTOR: Registry(settings, function_runner=None), TRACKER_ACTOR: Tracker(settings)}


def describe_error(error: Exception) -> LakerayError:
    """Any exception as a LakerayError (unexpected ones become a generic 500 without details)."""
    if isinstance(error, LakerayError):
        return error
    return LakerayError(f"internal error ({type(error).__name__})")
