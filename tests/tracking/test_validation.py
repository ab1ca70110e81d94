"""A log_batch's metric checks: the inline path for the mlflow client's usual point gives exactly
what the full per-point check gives, and every other shape still gets the full check."""

import math

import pytest

from lakeray.errors import InvalidArgument
from lakeray.tracking.validation import FLOAT_MAX, MAX_INT64, MetricPoint, batch, metric

NOW = 1_700_000_000_000


def _full(items):
    return [metric(item, f"metrics[{i}]", NOW) for i, item in enumerate(items)]


def test_usual_points_match_the_full_check():
    items = [{"key": f"m{i % 3}", "value": i / 7, "timestamp": 1000 + i, "step": i // 3} for i in range(30)]
    points = batch(items, None, None)[0]
    assert points == _full(items)
    assert all(type(p) is MetricPoint for p in points)
    assert points[5].model_id is None and points[5].dataset_name is None and points[5].is_nan is False


@pytest.mark.parametrize("odd", [
    {"key": "loss", "value": 1, "timestamp": 5, "step": 1},  # an int value
    {"key": "loss", "value": "NaN", "timestamp": 5, "step": 1},
    {"key": "loss", "value": math.inf, "timestamp": 5, "step": 1},
    {"key": "loss", "value": -math.inf, "timestamp": 5, "step": 1},
    {"key": "loss", "value": math.nan, "timestamp": 5, "step": 1},
    {"key": "loss", "value": 0.5, "timestamp": "5", "step": "1"},  # proto JSON's int64 strings
    {"key": "loss", "value": 0.5, "timestamp": 5},  # no step: 0
    {"key": "loss", "value": 0.5, "step": 3},  # no timestamp: the batch's time
    {"key": "loss", "value": 0.5, "timestamp": 5, "step": 1, "dataset_name": "train"},
])
def test_other_shapes_take_the_full_check(odd):
    # The key has passed once already, so only the shape decides which path the point takes.
    items = [{"key": "loss", "value": 0.25, "timestamp": 1, "step": 0}, odd]
    points = batch(items, None, None)[0]
    assert len(points) == 2
    assert points[1][:5] == metric(odd, "metrics[1]", points[1].timestamp)[:5]
    assert points[1].dataset_name == odd.get("dataset_name")
    if odd["value"] in (math.inf, -math.inf):
        assert abs(points[1].value) == FLOAT_MAX


@pytest.mark.parametrize("bad, message", [
    ({"key": "loss", "value": 0.5, "timestamp": -1, "step": 1}, "metrics[1].timestamp"),
    ({"key": "loss", "value": 0.5, "timestamp": 5, "step": MAX_INT64 + 1}, "metrics[1].step"),
    ({"key": "loss", "value": 0.5, "timestamp": 5, "step": True}, "metrics[1].step"),
    ({"key": "loss", "value": None, "timestamp": 5, "step": 1}, "metrics[1].value"),
    ({"key": "loss", "value": True, "timestamp": 5, "step": 1}, "metrics[1].value"),
    ({"key": ["loss"], "value": 0.5, "timestamp": 5, "step": 1}, "metrics[1].key"),
    ({"key": "../loss", "value": 0.5, "timestamp": 5, "step": 1}, "metrics[1].key"),
    ({"key": "", "value": 0.5, "timestamp": 5, "step": 1}, "metrics[1].key"),
])
def test_bad_points_in_the_usual_shape_are_refused_with_their_index(bad, message):
    items = [{"key": "loss", "value": 0.25, "timestamp": 1, "step": 0}, bad]
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        batch(items, None, None)
