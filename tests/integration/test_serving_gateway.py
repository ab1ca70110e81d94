"""The AI gateway on the session platform (``PUT .../ai-gateway``): 200 simultaneous calls
against a 60-per-minute limit admit exactly 60, with 429s that name the limit and say when to
retry; per-user and group limits and the Python client over Ray under the same limits; usage and
inference tables filled in batches and governed; guardrails blocking and masking PII, keywords
and off-topic input and output; fallbacks on a 5xx and a timeout; config edges; the gateway
actor's death."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from serving_support import API, LR, TOOLS, Api, unique

pytestmark = pytest.mark.ray


def endpoint(api: Api, *entities: dict, routes: list | None = None) -> str:
    name = unique("gw")
    api.create(name, *entities, routes=routes)
    api.wait(name, 1)
    return name


def put_gateway(api: Api, name: str, **config) -> dict:
    resp = api.put(f"{API}/{name}/ai-gateway", json=config)
    assert resp.status_code == 200, resp.text
    return resp.json()


def user(platform, prefix: str, *groups: str) -> tuple[str, Api]:
    admin = platform.client("http")
    who = unique(prefix).replace("-", "_")
    admin.create_principal(who)
    for group in groups:
        admin.add_group_member(group, who)
    return who, Api(platform, admin.create_token(principal=who)["token_value"])


def grant_query(api: Api, name: str, who: str) -> None:
    resp = api.patch(f"/api/2.1/unity-catalog/permissions/serving_endpoint/{name}",
                     json={"changes": [{"principal": who, "add": ["CAN_QUERY"]}]})
    assert resp.status_code == 200, resp.text


def flush(platform) -> None:
    """Append what the gateway actor holds now (it does so within a second anyway)."""
    import ray

    platform.join()
    ray.get(ray.get_actor("gateway", namespace="lakeray").flush.remote(), timeout=60)


def test_200_simultaneous_calls_against_60_per_minute_admit_exactly_60(platform, models):
    api = Api(platform)
    name = endpoint(api, {"entity_name": LR, "entity_version": "1", "max_ongoing_requests": 64})
    shown = put_gateway(api, name, rate_limits=[{"calls": 60, "key": "endpoint", "renewal_period": "minute"}])
    assert shown == {"rate_limits": [{"key": "endpoint", "renewal_period": "minute", "calls": 60}]}
    assert api.get(f"{API}/{name}").json()["ai_gateway"] == shown
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=200))
    headers = {"Authorization": f"Bearer {platform.token}"}

    def one(_):
        return session.post(f"{platform.url}/serving-endpoints/{name}/invocations", headers=headers,
                            json={"inputs": [[1.0]]}, timeout=120)

    with ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(one, range(200)))
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 60 and codes.count(429) == 140, sorted(set(codes))
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error_code"] == "RESOURCE_EXHAUSTED"
    assert "60 calls per minute on endpoint " + name in refused.json()["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # the Python client over Ray goes through the same gateway and the same window
    from lakeray.errors import ResourceExhausted

    platform.join()
    with pytest.raises(ResourceExhausted, match="60 calls per minute"):
        platform.client("ray").serving.query(name, inputs=[[1.0]])
    api.delete(f"{API}/{name}")


def test_per_user_and_group_limits_and_refused_calls_spend_nothing(platform, models):
    api = Api(platform)
    name = endpoint(api, {"entity_name": LR, "entity_version": "1"})
    admin = platform.client("http")
    group = unique("team").replace("-", "_")
    admin.create_principal(group, kind="group")
    alice, as_alice = user(platform, "alice")
    bob, as_bob = user(platform, "bob", group)
    carol, as_carol = user(platform, "carol", group)
    for who in (alice, bob, carol):
        grant_query(api, name, who)
    put_gateway(api, name, rate_limits=[
        {"calls": 7, "key": "endpoint", "renewal_period": "minute"},
        {"calls": 2, "key": "user", "renewal_period": "minute"},
        {"calls": 3, "key": "user_group", "principal": group, "renewal_period": "minute"}])
    body = {"inputs": [[1.0]]}
    alice_codes = [as_alice.query(name, body).status_code for _ in range(6)]
    assert alice_codes == [200, 200, 429, 429, 429, 429]  # her own limit; the refusals spend nothing
    assert "2 calls per minute for user " + alice in as_alice.query(name, body).json()["message"]
    # bob and carol share their group's 3 calls
    shared = [as_bob.query(name, body).status_code, as_carol.query(name, body).status_code,
              as_bob.query(name, body).status_code, as_carol.query(name, body).status_code]
    assert shared == [200, 200, 200, 429]
    assert "for group " + group in as_carol.query(name, body).json()["message"]
    # 5 calls were admitted: the endpoint's 7 leave room for exactly 2 more (the admin's default 2)
    assert [api.query(name, body).status_code for _ in range(3)] == [200, 200, 429]
    # a new config applies at once; no limits: no refusals
    put_gateway(api, name)
    assert {as_alice.query(name, body).status_code for _ in range(3)} == {200}
    api.delete(f"{API}/{name}")


def test_usage_and_inference_tables_are_appended_in_batches_and_governed(platform, models):
    api = Api(platform)
    admin = platform.client("http")
    schema = unique("logs").replace("-", "_")
    admin.create_schema("main", schema)
    name = endpoint(api, {"entity_name": TOOLS, "entity_version": "1", "name": "tools"})
    shown = put_gateway(api, name, usage_tracking_config={"enabled": True}, inference_table_config={
        "enabled": True, "catalog_name": "main", "schema_name": schema, "table_name_prefix": "tools"})
    table = f"main.{schema}.tools_payload"
    assert shown["inference_table_config"]["table_name_prefix"] == "tools"
    assert admin.get_table(table)["owner"] == "admin"
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    for x in (1, 2, 3):
        resp = api.post(f"/serving-endpoints/{name}/invocations", json={"dataframe_records": [{"x": x}]},
                        headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01", "x-request-id": f"req-{x}"})
        assert resp.status_code == 200, resp.text
    assert api.query(name, {"dataframe_records": [{"x": -1}]}).status_code == 500
    assert api.query(name, {"bad": 1}).status_code == 400
    flush(platform)
    rows = admin.read_table(table).to_pylist()
    mine = sorted((r for r in rows if r["endpoint_name"] == name), key=lambda r: r["timestamp_ms"])
    assert [r["status_code"] for r in mine] == [200, 200, 200, 500, 400]
    first = mine[0]
    assert first["client_request_id"] == "req-1" and first["trace_id"] == trace
    assert first["served_entity_name"] == "tools" and first["requester"] == "admin" and first["api"] == "invocations"
    assert json.loads(first["request"]) == {"dataframe_records": [{"x": 1}]}
    assert json.loads(first["response"]) == {"predictions": [{"x": 1}]}
    assert first["execution_duration_ms"] >= 0 and mine[3]["response"] is None
    usage = [r for r in admin.read_table("system.serving.endpoint_usage").to_pylist() if r["endpoint_name"] == name]
    assert sorted(r["status_code"] for r in usage) == [200, 200, 200, 400, 500]
    assert all(r["requester"] == "admin" and r["latency_ms"] >= 0 for r in usage)
    # five calls in well under a second: fewer commits than rows (batched)
    assert len(admin.table_versions(table)) < 1 + len(mine)
    # the inference table is governed like any table
    who, stranger = user(platform, "reader")
    grant_query(api, name, who)
    assert stranger.query(name, {"dataframe_records": [{"x": 4}]}).status_code == 200
    read = stranger.get(f"/api/lakeray/v1/tables/{table}/rows")
    assert read.status_code == 403, read.text
    admin.grant("catalog", "main", who, "USE_CATALOG")
    admin.grant("schema", f"main.{schema}", who, "USE_SCHEMA")
    admin.grant("table", table, who, "SELECT")
    flush(platform)
    assert platform.client("http", token=stranger.s.headers["Authorization"][7:]).read_table(table).num_rows == 6
    api.delete(f"{API}/{name}")


def test_guardrails_block_and_mask_pii_keywords_and_topics(platform, models):
    api = Api(platform)
    name = endpoint(api, {"entity_name": TOOLS, "entity_version": "1"})
    put_gateway(api, name, guardrails={
        "input": {"pii": {"behavior": "BLOCK"}, "invalid_keywords": ["password"]},
        "output": {"pii": {"behavior": "MASK"}}})
    card, iban = "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32"

    def ask(note: str) -> requests.Response:
        return api.query(name, {"dataframe_records": [{"x": 1, "note": note}]})

    for note, kind in [("mail me at ann@example.com", "EMAIL"), (f"card {card}", "CARD_NUMBER"),
                       (f"pay to {iban}", "IBAN")]:
        resp = ask(note)
        assert resp.status_code == 400 and kind in resp.json()["message"] and "@" not in resp.json()["message"]
    assert "invalid keyword 'password'" in ask("my Password is hunter2").json()["message"]
    assert ask("card 4111 1111 1111 1112 is not a card (Luhn)").status_code == 200
    # output masking: the input side lets PII through, the output side masks it
    put_gateway(api, name, guardrails={"output": {"pii": {"behavior": "MASK"}}})
    resp = ask(f"ann@example.com paid with {card}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == [{"x": 1, "note": "[EMAIL] paid with [CARD_NUMBER]"}]
    put_gateway(api, name, guardrails={"input": {"pii": {"behavior": "MASK"}}})
    assert ask(f"IBAN {iban}").json()["predictions"][0]["note"] == "IBAN [IBAN]"
    # valid topics, by embedding similarity (all-MiniLM-L6-v2 in the gateway actor)
    put_gateway(api, name, guardrails={"input": {"valid_topics": ["billing and invoices", "shipping and delivery"]}})
    assert ask("When will my package arrive?").status_code == 200
    off = ask("What is the capital of France?")
    assert off.status_code == 400 and "off topic" in off.json()["message"]
    api.delete(f"{API}/{name}")


def test_fallback_to_the_next_entity_on_a_5xx_or_a_timeout(platform, models):
    api = Api(platform)
    name = endpoint(api, {"entity_name": TOOLS, "entity_version": "1", "name": "flaky", "timeout_s": 1},
                    {"entity_name": LR, "entity_version": "1", "name": "steady"},
                    routes=[("flaky", 100), ("steady", 0)])
    boom, slow = {"dataframe_records": [{"x": -1}]}, {"dataframe_records": [{"x": -2}]}
    assert api.query(name, boom).status_code == 500 and api.query(name, slow).status_code == 504
    put_gateway(api, name, fallback_config={"enabled": True})
    for body, expected in ((boom, -2.0), (slow, -4.0)):
        resp = api.query(name, body)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-lakeray-served-entity"] == "steady"
        assert resp.json()["predictions"] == pytest.approx([expected])
    ok = api.query(name, {"dataframe_records": [{"x": 3}]})
    assert ok.headers["x-lakeray-served-entity"] == "flaky" and ok.json()["predictions"] == [{"x": 3}]
    # a 4xx is the caller's: no fallback
    assert api.query(name, {"nope": 1}).status_code == 400
    api.delete(f"{API}/{name}")


def test_gateway_config_edges_change_nothing(platform, models):
    api = Api(platform)
    name = endpoint(api, {"entity_name": LR, "entity_version": "1"})
    put_gateway(api, name, rate_limits=[{"calls": 5, "renewal_period": "minute"}])
    before = api.get(f"{API}/{name}").json()["ai_gateway"]
    for body, message in [({"rate_limits": [{"calls": -1}]}, "rate_limits[0].calls"),
                          ({"guardrails": {"input": {"pii": {"behavior": "SHRED"}}}}, "guardrails.input.pii.behavior"),
                          ({"guardrails": {"input": {"safety": True}}}, "guardrails.input.safety"),
                          ({"inference_table_config": {"enabled": True, "catalog_name": "main"}},
                           "inference_table_config.schema_name"),
                          ({"fallbacks": True}, "fallbacks")]:
        resp = api.put(f"{API}/{name}/ai-gateway", json=body)
        assert resp.status_code == 400 and message in resp.json()["message"], resp.text
    who, stranger = user(platform, "querier")
    grant_query(api, name, who)
    assert stranger.put(f"{API}/{name}/ai-gateway", json={}).status_code == 403
    # a manager who may not create tables in the chosen schema: 403, nothing changes
    resp = api.patch(f"/api/2.1/unity-catalog/permissions/serving_endpoint/{name}",
                     json={"changes": [{"principal": who, "add": ["CAN_MANAGE"]}]})
    assert resp.status_code == 200
    resp = stranger.put(f"{API}/{name}/ai-gateway", json={"inference_table_config": {
        "enabled": True, "catalog_name": "main", "schema_name": "default", "table_name_prefix": "sneaky"}})
    assert resp.status_code == 403, resp.text
    assert api.get(f"{API}/{name}").json()["ai_gateway"] == before
    assert api.put(f"{API}/no-such-endpoint/ai-gateway", json={}).status_code == 404
    assert requests.put(f"{platform.url}{API}/{name}/ai-gateway", json={}, timeout=30).status_code == 401
    api.delete(f"{API}/{name}")


def test_limits_hold_again_after_the_gateway_actor_dies(platform, models):
    import ray

    platform.join()
    api = Api(platform)
    name = endpoint(api, {"entity_name": LR, "entity_version": "1"})
    put_gateway(api, name, rate_limits=[{"calls": 3, "key": "endpoint", "renewal_period": "minute"}])
    assert [api.query(name, {"inputs": [[1.0]]}).status_code for _ in range(4)] == [200, 200, 200, 429]
    ray.kill(ray.get_actor("gateway", namespace="lakeray"), no_restart=False)
    # the restarted actor starts with empty windows (documented): the limit applies from there
    deadline = time.monotonic() + 60
    while api.query(name, {"inputs": [[1.0]]}).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    codes = [api.query(name, {"inputs": [[1.0]]}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    api.delete(f"{API}/{name}")
