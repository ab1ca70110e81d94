"""The gateway's rate limits without Ray: which limits apply to whom (Databricks' precedence),
exact sliding windows under a concurrent burst, no quota spent by a rejected call, token limits,
Retry-After; and the ai-gateway config's field-named errors."""

from __future__ import annotations

import threading

import pytest

from lakeray.errors import InvalidArgument
from lakeray.serving.gateway_config import normalise_ai_gateway, render_ai_gateway
from lakeray.serving.limits import WINDOW_S, SlidingWindows, buckets_for


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def caller(name="alice", kind="user", groups=()):
    return {"name": name, "kind": kind, "groups": list(groups)}


LIMITS = [
    {"key": "endpoint", "calls": 100, "renewal_period": "minute"},
    {"key": "user", "calls": 10, "renewal_period": "minute"},
    {"key": "user", "principal": "bob", "calls": 50, "renewal_period": "minute"},
    {"key": "user_group", "principal": "analysts", "calls": 20, "renewal_period": "minute"},
    {"key": "service_principal", "calls": 5, "tokens": 1000, "renewal_period": "minute"},
]


def scopes(limits, who):
    return [(b.key.split("|", 1)[1], b.calls, b.tokens) for b in buckets_for("ep1", "chat", limits, who)]


def test_precedence_endpoint_always_then_own_then_groups_then_default():
    assert scopes(LIMITS, caller()) == [("endpoint", 100, None), ("caller:alice", 10, None)]
    # a limit naming the caller wins over its groups and the default
    assert scopes(LIMITS, caller("bob", groups=["analysts"])) == [("endpoint", 100, None), ("user:bob", 50, None)]
    # a group limit is shared by the group (one bucket for all members) and beats the default
    assert scopes(LIMITS, caller("carol", groups=["analysts"])) == [("endpoint", 100, None),
                                                                    ("group:analysts", 20, None)]
    # service principals get the service_principal default when there is one
    assert scopes(LIMITS, caller("etl", kind="service_principal")) == [("endpoint", 100, None),
                                                                       ("caller:etl", 5, 1000)]
    assert scopes(LIMITS[:2], caller("etl", kind="service_principal"))[1] == ("caller:etl", 10, None)
    assert scopes([], caller()) == []
    labels = [b.label for b in buckets_for("ep1", "chat", LIMITS, caller("carol", groups=["analysts"]))]
    assert labels == ["100 calls per minute on endpoint chat", "20 calls per minute for group analysts"]


def test_a_concurrent_burst_admits_exactly_the_limit():
    windows = SlidingWindows()
    buckets = buckets_for("ep", "chat", [{"key": "endpoint", "calls": 60}], caller())
    results = []
    barrier = threading.Barrier(200)

    def one():
        barrier.wait()
        results.append(windows.admit(buckets)["admitted"])

    threads = [threading.Thread(target=one) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 60 and results.count(False) == 140


def test_the_window_slides_and_retry_after_says_when_a_slot_frees():
    clock = Clock()
    windows = SlidingWindows(clock)
    buckets = buckets_for("ep", "chat", [{"key": "user", "calls": 2}], caller())
    assert windows.admit(buckets)["admitted"]
    clock.now += 20
    assert windows.admit(buckets)["admitted"]
    clock.now += 10
    refused = windows.admit(buckets)
    assert refused == {"admitted": False, "limits": ["2 calls per minute for user alice"], "retry_after_s": 30}
    clock.now += 30  # the first call leaves the window
    assert windows.admit(buckets)["admitted"]
    assert not windows.admit(buckets)["admitted"]
    clock.now += WINDOW_S
    assert windows.admit(buckets)["admitted"] and windows.admit(buckets)["admitted"]


def test_a_rejected_call_consumes_no_quota_from_any_limit():
    clock = Clock()
    windows = SlidingWindows(clock)
    limits = [{"key": "endpoint", "calls": 3}, {"key": "user", "calls": 1}]
    alice, bob = (buckets_for("ep", "chat", limits, caller(n)) for n in ("alice", "bob"))
    assert windows.admit(alice)["admitted"]
    for _ in range(5):  # alice's own limit refuses: the endpoint's count must not move
        refused = windows.admit(alice)
        assert not refused["admitted"] and refused["limits"] == ["1 calls per minute for user alice"]
    assert windows.admit(bob)["admitted"]
    carol = buckets_for("ep", "chat", limits, caller("carol"))
    assert windows.admit(carol)["admitted"]  # 3rd call on the endpoint: still room
    dave = buckets_for("ep", "chat", limits, caller("dave"))
    assert windows.admit(dave)["limits"] == ["3 calls per minute on endpoint chat"]


def test_token_limits_admit_while_under_and_count_what_calls_used():
    clock = Clock()
    windows = SlidingWindows(clock)
    buckets = buckets_for("ep", "chat", [{"key": "user", "tokens": 100}], caller())
    assert windows.admit(buckets)["admitted"]
    windows.add_tokens(buckets, 60)
    clock.now += 5
    assert windows.admit(buckets)["admitted"]
    windows.add_tokens(buckets, 50)  # 110 used: over
    clock.now += 5
    refused = windows.admit(buckets)
    assert refused["limits"] == ["100 tokens per minute for user alice"]
    assert refused["retry_after_s"] == 50  # when the first 60 tokens leave the window
    clock.now += 50
    assert windows.admit(buckets)["admitted"]


@pytest.mark.parametrize("raw, message", [
    ({"rate_limits": {"calls": 1}}, "rate_limits: expected a list"),
    ({"rate_limits": [{"calls": 0}]}, "rate_limits[0].calls: expected a positive integer"),
    ({"rate_limits": [{"calls": True}]}, "rate_limits[0].calls: expected a positive integer"),
    ({"rate_limits": [{"key": "user"}]}, "rate_limits[0]: set calls, tokens or both"),
    ({"rate_limits": [{"calls": 1, "key": "team"}]}, "rate_limits[0].key: expected one of"),
    ({"rate_limits": [{"calls": 1, "renewal_period": "hour"}]}, "rate_limits[0].renewal_period"),
    ({"rate_limits": [{"calls": 1, "key": "endpoint", "principal": "x"}]}, "rate_limits[0].principal"),
    ({"rate_limits": [{"calls": 1, "key": "user_group"}]}, "rate_limits[0].principal: a user_group limit"),
    ({"rate_limits": [{"calls": 1, "bogus": 1}]}, "rate_limits[0].bogus: unknown field"),
    ({"rate_limits": [{"calls": 1}, {"tokens": 5}]}, "rate_limits[1]: a second user limit"),
    ({"rate_limits": [{"calls": 1, "key": "user", "principal": f"u{i}"} for i in range(21)]}, "at most 20"),
    ({"usage_tracking_config": {"enabled": "yes"}}, "usage_tracking_config.enabled: expected true or false"),
    ({"fallback_config": True}, "fallback_config: expected"),
    ({"inference_table_config": {"enabled": True, "schema_name": "s"}}, "inference_table_config.catalog_name"),
    ({"inference_table_config": {"enabled": True, "catalog_name": "c", "schema_name": "s",
                                 "table_name_prefix": "bad-name"}}, "table_name_prefix"),
    ({"inference_table_config": {"enabled": True, "catalog": "c"}}, "inference_table_config.catalog: unknown"),
    ({"budget": 1}, "budget: unknown field"),
])
def test_bad_gateway_configs_name_the_field(raw, message):
    with pytest.raises(InvalidArgument) as e:
        normalise_ai_gateway(raw, "chat")
    assert message in e.value.message


def test_a_gateway_config_normalises_and_renders_like_databricks():
    config = normalise_ai_gateway({
        "rate_limits": [{"calls": 60, "key": "user", "renewal_period": "minute"}, {"tokens": 500, "key": "endpoint"}],
        "usage_tracking_config": {"enabled": True},
        "inference_table_config": {"enabled": True, "catalog_name": "Main", "schema_name": "logs"},
        "fallback_config": {"enabled": False}}, "chat-bot")
    assert config["inference_table_config"] == {"catalog_name": "main", "schema_name": "logs",
                                                "table_name_prefix": "chat_bot", "enabled": True}
    assert render_ai_gateway(config) == {
        "rate_limits": [{"key": "user", "renewal_period": "minute", "calls": 60},
                        {"key": "endpoint", "renewal_period": "minute", "tokens": 500}],
        "usage_tracking_config": {"enabled": True},
        "inference_table_config": config["inference_table_config"]}
    assert render_ai_gateway(normalise_ai_gateway({}, "chat")) == {}
    assert normalise_ai_gateway({"inference_table_config": {"enabled": False}}, "c")["inference_table_config"] is None
