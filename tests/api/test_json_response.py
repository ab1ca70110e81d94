"""The JSON response helper of routes with large answers (orjson, with a general fallback)."""

from __future__ import annotations

import json

from lakeray.api.app import json_response


def test_plain_json_is_encoded_as_is():
    body = {"runs": [{"info": {"run_id": "a" * 32, "start_time": 2**62}, "data": {"metrics": [
        {"key": "loss", "value": 0.25}], "tags": [{"key": "note", "value": "naïve ✓"}]}}], "n": None}
    response = json_response(body)
    assert response.media_type == "application/json"
    assert json.loads(response.body) == body


def test_values_beyond_plain_json_take_the_general_path():
    # an integer past 64 bits and a non-string key: orjson refuses both, FastAPI's encoder copes
    response = json_response({"big": 2**70, "map": {1: "one"}})
    assert json.loads(response.body) == {"big": 2**70, "map": {"1": "one"}}
