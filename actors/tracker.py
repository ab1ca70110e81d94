"""The tracker actor: a thin shell over :class:`lakeray.tracker.Tracker`.

Named ``tracker`` in namespace ``lakeray``; owns experiments, runs, metrics, logged models
and their artifacts (see :mod:`lakeray.actors.base` for what all actors share).
"""

from __future__ import annotations

from lakeray import heap
from lakeray.actors.base import DispatchActor, named, start
from lakeray.settings import TRACKER_ACTOR, Settings
from lakeray.tracker import Tracker


class TrackerActor(DispatchActor):
    """Hosts the tracker."""

    def __init__(self, settings: dict):
        self.settings = Settings(**settings)
        self.dispatcher = Tracker(self.settings)
        heap.settle()


def handle(settings: Settings, create: bool = False):
    """The tracker actor handle; with ``create`` it is started if missing."""
    if not create:
        return named(TRACKER_ACTOR)
    # MLflow clients log from many processes at once: more threads than the registry.
    return start(TrackerActor, TRACKER_ACTOR, settings.to_dict(), max_concurrency=32)
