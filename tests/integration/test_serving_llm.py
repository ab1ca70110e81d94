"""Contract: the unmodified openai client against LLM and embedding endpoints on the session
platform: SmolLM2-135M-Instruct (from ``lakeray models import``) answers chat and completions,
streamed and not, with stop strings, usage and concurrent requests batched; all-MiniLM-L6-v2
answers embeddings; errors come back as the openai client's exceptions; the AI gateway counts a
stream's tokens against a token limit; an external OpenAI-compatible model (lakeray's own /v1)
answers through a secret-held key."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.ray
openai = pytest.importorskip("openai")

SMOL, MINILM = "system.ai.smollm2_135m_instruct", "system.ai.all_minilm_l6_v2"
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def wait_ready(platform, name: str, timeout: float = 300) -> dict:
    headers = {"Authorization": f"Bearer {platform.token}"}
    deadline = time.monotonic() + timeout
    while True:
        ep = requests.get(f"{platform.url}/api/2.0/serving-endpoints/{name}", headers=headers, timeout=30).json()
        if ep["state"]["ready"] == "READY" and "pending_config" not in ep:
            return ep
        assert ep["state"]["config_update"] != "UPDATE_FAILED", ep
        assert time.monotonic() < deadline, ep
        time.sleep(1)


@pytest.fixture(scope="module")
def endpoints(platform):
    """A chat endpoint on SmolLM2 (scale to zero, as in the issue) and an embedding endpoint."""
    out = platform.cli("models", "import", timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    headers = {"Authorization": f"Bearer {platform.token}"}
    names = {"chat": f"chat-{uuid.uuid4().hex[:6]}", "emb": f"emb-{uuid.uuid4().hex[:6]}"}
    for key, model in (("chat", SMOL), ("emb", MINILM)):
        resp = requests.post(f"{platform.url}/api/2.0/serving-endpoints", headers=headers, timeout=60, json={
            "name": names[key], "config": {"served_entities": [
                {"entity_name": model, "entity_version": "default", "scale_to_zero_enabled": key == "chat"}]}})
        assert resp.status_code == 200, resp.text
    for name in names.values():
        wait_ready(platform, name)
    yield names
    for name in names.values():
        requests.delete(f"{platform.url}/api/2.0/serving-endpoints/{name}", headers=headers, timeout=60)


@pytest.fixture
def client(platform):
    return openai.OpenAI(base_url=platform.url + "/v1", api_key=platform.token, max_retries=0, timeout=120)


def test_chat_answers_the_capital_question(client, endpoints):
    out = client.chat.completions.create(model=endpoints["chat"], messages=QUESTION, temperature=0, max_tokens=20)
    assert "Paris" in out.choices[0].message.content, out
    assert out.object == "chat.completion" and out.model == endpoints["chat"]
    assert out.choices[0].finish_reason in ("stop", "length") and out.choices[0].message.role == "assistant"
    assert out.usage.prompt_tokens > 5 and 1 <= out.usage.completion_tokens <= 20
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_streaming_chat_and_a_stop_string(client, endpoints):
    stream = client.chat.completions.create(model=endpoints["chat"], messages=QUESTION, temperature=0, max_tokens=20,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text and len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")

    cut = client.chat.completions.create(model=endpoints["chat"], messages=QUESTION, temperature=0, max_tokens=20,
                                         stop=["Paris"])
    assert "Paris" not in cut.choices[0].message.content and cut.choices[0].finish_reason == "stop"


def test_completions_and_concurrent_requests(client, endpoints):
    out = client.completions.create(model=endpoints["chat"], prompt="The capital of France is", max_tokens=5,
                                    temperature=0)
    assert out.object == "text_completion" and out.choices[0].text and out.usage.completion_tokens <= 5

    def ask(i):
        return client.chat.completions.create(model=endpoints["chat"], temperature=0.7, max_tokens=8,
                                              messages=[{"role": "user", "content": f"Count to {i + 2}."}])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert all(a.choices[0].message.content for a in answers)


def test_embeddings(client, endpoints):
    out = client.embeddings.create(model=endpoints["emb"], input=["Ray Serve scales models", "a cat on a mat"])
    assert len(out.data) == 2 and len(out.data[0].embedding) == 384 and out.usage.prompt_tokens > 4
    one = client.embeddings.create(model=endpoints["emb"], input="Ray Serve scales models", encoding_format="float")
    assert one.data[0].embedding == pytest.approx(out.data[0].embedding, abs=1e-5)


def test_errors_are_the_clients_exceptions(platform, client, endpoints):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-endpoint", messages=QUESTION)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=endpoints["chat"], messages=QUESTION, temperature=5)
    assert "temperature" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=endpoints["chat"], input="x")  # a chat model has no embeddings
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=platform.url + "/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model=endpoints["chat"], messages=QUESTION)
    assert {endpoints["chat"], endpoints["emb"]} <= {m.id for m in client.models.list().data}
    # the same chat body at the Databricks invocations path
    resp = requests.post(f"{platform.url}/serving-endpoints/{endpoints['chat']}/invocations", timeout=120,
                         headers={"Authorization": f"Bearer {platform.token}"},
                         json={"messages": QUESTION, "max_tokens": 20, "temperature": 0})
    assert resp.status_code == 200 and "Paris" in resp.json()["choices"][0]["message"]["content"]


def test_the_gateway_counts_tokens_of_streams_and_limits_tokens_per_minute(platform, client, endpoints):
    import ray

    name = endpoints["chat"]
    headers = {"Authorization": f"Bearer {platform.token}"}
    gateway = f"{platform.url}/api/2.0/serving-endpoints/{name}/ai-gateway"
    resp = requests.put(gateway, headers=headers, timeout=60, json={
        "rate_limits": [{"tokens": 20, "key": "user", "renewal_period": "minute"}],
        "usage_tracking_config": {"enabled": True}})
    assert resp.status_code == 200, resp.text
    try:
        # admitted (nothing used yet); the client did not ask for usage, so it sees none
        stream = client.chat.completions.create(model=name, messages=QUESTION, temperature=0, max_tokens=8,
                                                stream=True)
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
        # the stream's prompt and completion tokens (> 20) were counted: the next call is refused
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model=name, messages=QUESTION, max_tokens=8)
        assert "20 tokens per minute for user admin" in str(refused.value)
        assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 60
        platform.join()
        ray.get(ray.get_actor("gateway", namespace="lakeray").flush.remote(), timeout=60)
        rows = [r for r in platform.client("http").read_table("system.serving.endpoint_usage").to_pylist()
                if r["endpoint_name"] == name]
        streamed = next(r for r in rows if r["status_code"] == 200)
        assert streamed["request_streaming"] and streamed["api"] == "chat"
        assert streamed["input_token_count"] > 10 and 1 <= streamed["output_token_count"] <= 8
        assert any(r["status_code"] == 429 for r in rows)
    finally:
        requests.put(gateway, headers=headers, timeout=60, json={})


def test_an_external_openai_compatible_model(platform, client, endpoints):
    """An external model whose provider is a real OpenAI-compatible server: lakeray's own /v1
    (SmolLM2 behind the session's chat endpoint), its key (a token) kept as a secret."""
    headers = {"Authorization": f"Bearer {platform.token}"}
    api = platform.url + "/api/2.0"
    scope, name = f"ext-{uuid.uuid4().hex[:6]}", f"ext-{uuid.uuid4().hex[:6]}"
    token = platform.client("http").create_token(comment="external model key")["token_value"]
    assert requests.post(f"{api}/secrets/scopes/create", headers=headers, json={"scope": scope}, timeout=30).ok
    assert requests.post(f"{api}/secrets/put", headers=headers, timeout=30,
                         json={"scope": scope, "key": "key", "string_value": token}).ok
    resp = requests.post(f"{api}/serving-endpoints", headers=headers, timeout=60, json={"name": name, "config": {
        "served_entities": [{"name": "smol-remote", "external_model": {
            "name": endpoints["chat"], "provider": "openai", "task": "llm/v1/chat",
            "openai_config": {"openai_api_key": f"{{{{secrets/{scope}/key}}}}",
                              "openai_api_base": platform.url + "/v1"}}}]}})
    assert resp.status_code == 200, resp.text
    try:
        ep = wait_ready(platform, name)
        assert token not in json.dumps(ep)
        out = client.chat.completions.create(model=name, messages=QUESTION, temperature=0, max_tokens=20)
        assert "Paris" in out.choices[0].message.content and out.usage.completion_tokens >= 1
        chunks = list(client.chat.completions.create(model=name, messages=QUESTION, temperature=0, max_tokens=20,
                                                     stream=True))
        assert "Paris" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        with pytest.raises(openai.BadRequestError, match="api_base: a query may not choose"):
            client.chat.completions.create(model=name, messages=QUESTION, extra_body={"api_base": "http://evil"})
        with pytest.raises(openai.BadRequestError, match="external chat model"):
            client.embeddings.create(model=name, input="x")
    finally:
        requests.delete(f"{api}/serving-endpoints/{name}", headers=headers, timeout=60)
        requests.post(f"{api}/secrets/scopes/delete", headers=headers, json={"scope": scope}, timeout=30)
