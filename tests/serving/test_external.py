"""External models without Ray: the config (keys only as secret references, field-named errors),
the replica's calls as the provider receives them (httpx's MockTransport stands in for the
unreachable provider APIs), Anthropic's Messages API in OpenAI's shapes streamed and not, provider
errors mapped (429 with Retry-After, 5xx as 503 so fallbacks apply), client overrides refused,
and the key in no error message. The OpenAI-compatible path against a real server is in
tests/integration/test_serving_llm.py."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from lakeray.errors import InvalidArgument, ModelError, ResourceExhausted, Unavailable
from lakeray.serving.config import normalise
from lakeray.serving.external import ExternalServer

KEY = "sk-very-secret-123"


def external(**overrides) -> dict:
    raw = {"name": "gpt-4o-mini", "provider": "openai", "task": "llm/v1/chat",
           "openai_config": {"openai_api_key": "{{secrets/llm/openai}}"}}
    raw.update(overrides)
    return {"served_entities": [{"external_model": raw}]}


def test_an_external_entity_normalises():
    entity = normalise(external())["served_entities"][0]
    assert entity["name"] == "gpt-4o-mini" and "entity_name" not in entity
    assert entity["external_model"] == {"name": "gpt-4o-mini", "provider": "openai", "task": "llm/v1/chat",
                                        "organization": None, "key": {"scope": "llm", "key": "openai"},
                                        "api_base": "https://api.openai.com/v1"}
    custom = normalise(external(provider="custom", openai_config=None, custom_provider_config={
        "custom_provider_url": "http://10.0.0.5:8000/v1/", "bearer_token_auth": {"token": "{{secrets/a/b}}"}}))
    assert custom["served_entities"][0]["external_model"]["api_base"] == "http://10.0.0.5:8000/v1"
    claude = normalise(external(name="claude-3-5-haiku", provider="anthropic", openai_config=None,
                                anthropic_config={"anthropic_api_key": "{{secrets/llm/anthropic}}"}))
    assert claude["served_entities"][0]["external_model"]["api_base"] == "https://api.anthropic.com"


@pytest.mark.parametrize("overrides, message", [
    ({"provider": "cohere"}, "external_model.provider: expected one of openai, anthropic, custom"),
    ({"task": "llm/v1/rerank"}, "external_model.task"),
    ({"name": ""}, "external_model.name"),
    ({"openai_config": None}, "external_model.openai_config: required"),
    ({"openai_config": {"openai_api_key": KEY}}, "openai_api_key: expected a secret reference"),
    ({"openai_config": {"openai_api_key_plaintext": KEY}}, "plaintext keys are refused"),
    ({"openai_config": {"openai_api_key": "{{secrets/a/b}}", "openai_api_base": "ftp://x"}}, "openai_api_base"),
    ({"openai_config": {"openai_api_key": "{{secrets/a/b}}", "openai_api_type": "azure"}}, "openai_api_type"),
    ({"openai_config": {"openai_api_key": "{{secrets/a/b}}", "extra": 1}}, "openai_config.extra: unknown"),
    ({"anthropic_config": {"anthropic_api_key": "{{secrets/a/b}}"}}, "does not apply to provider openai"),
    ({"provider": "anthropic", "task": "llm/v1/embeddings", "openai_config": None,
      "anthropic_config": {"anthropic_api_key": "{{secrets/a/b}}"}}, "anthropic has no embeddings"),
    ({"provider": "custom", "openai_config": None, "custom_provider_config": {
        "custom_provider_url": "http://x/v1", "bearer_token_auth": {"token": KEY}}}, "token: expected a secret"),
    ({"bogus": 1}, "external_model.bogus: unknown field"),
])
def test_bad_external_models_name_the_field_and_never_echo_a_key(overrides, message):
    with pytest.raises(InvalidArgument) as e:
        normalise(external(**overrides))
    assert message in e.value.message and KEY not in e.value.message
    with pytest.raises(InvalidArgument, match="not both"):
        normalise({"served_entities": [{"entity_name": "a.b.c", "entity_version": "1",
                                        **external()["served_entities"][0]}]})


class Provider:
    """Records what the replica sends; answers with ``handler(request) -> httpx.Response``."""

    def __init__(self, handler):
        self.handler, self.seen = handler, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.handler(request)


def server(fake: Provider, **overrides) -> ExternalServer:
    entity = normalise(external(**overrides))["served_entities"][0]
    spec = {"external": {k: v for k, v in entity["external_model"].items() if k != "key"}, "timeout_s": 5.0,
            "kind": {"llm/v1/chat": "chat", "llm/v1/completions": "completion",
                     "llm/v1/embeddings": "embedding"}[entity["external_model"]["task"]]}
    srv = ExternalServer(spec, KEY)
    srv.client = httpx.AsyncClient(base_url=spec["external"]["api_base"], headers=srv.client.headers,
                                   transport=httpx.MockTransport(fake))
    return srv


def ask(srv: ExternalServer, body: dict, api: str = "chat"):
    return asyncio.run(srv({"api": api, "model": "ep", "body": body}))


def stream(srv: ExternalServer, body: dict, api: str = "chat") -> list[str]:
    async def go():
        return [e async for e in srv.stream({"api": api, "model": "ep", "body": body})]
    return asyncio.run(go())


CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 5, "temperature": 0.2, "stop": ["\n"]}


def test_openai_compatible_calls_carry_the_key_and_the_providers_model():
    answer = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant",
              "content": "Hello"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    provider = Provider(lambda r: httpx.Response(200, json=answer))
    srv = server(provider)
    assert ask(srv, {**CHAT, "stream": False}) == answer
    sent = provider.seen[0]
    assert str(sent.url) == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.content) == {**CHAT, "model": "gpt-4o-mini"}
    # a stream is passed through event by event
    events = ['data: {"choices": [{"delta": {"content": "He"}}]}', 'data: {"choices": [{"delta": {"content": "y"}}]}',
              "data: [DONE]"]
    provider = Provider(lambda r: httpx.Response(200, text="\n\n".join(events) + "\n\n"))
    assert stream(server(provider), {**CHAT, "stream": True}) == [e + "\n\n" for e in events]
    assert json.loads(provider.seen[0].content)["stream"] is True


def test_client_overrides_and_wrong_apis_are_refused_before_any_call():
    provider = Provider(lambda r: httpx.Response(200, json={}))
    srv = server(provider)
    for field in ("api_base", "base_url", "api_key", "openai_api_key", "headers"):
        with pytest.raises(InvalidArgument, match=f"{field}: a query may not choose"):
            ask(srv, {**CHAT, field: "http://evil.example"})
    with pytest.raises(InvalidArgument, match="serves an external chat model"):
        ask(srv, {"input": "x"}, api="embeddings")
    assert provider.seen == []


@pytest.mark.parametrize("status, headers, error, text", [
    (429, {"retry-after": "7"}, ResourceExhausted, "rate-limited"),
    (503, {}, Unavailable, "openai failed (503)"),
    (401, {}, ModelError, "refused the endpoint's credentials"),
    (400, {}, InvalidArgument, "refused the request (400): bad temperature"),
])
def test_provider_errors_are_mapped_without_the_key(status, headers, error, text):
    provider = Provider(lambda r: httpx.Response(status, headers=headers, json={
        "error": {"message": "bad temperature" if status == 400 else "no"}}))
    with pytest.raises(error) as e:
        ask(server(provider), CHAT)
    assert text in e.value.message and KEY not in e.value.message
    if status == 429:
        assert e.value.retry_after_s == 7.0

    def down(request):
        raise httpx.ConnectError("refused", request=request)
    with pytest.raises(Unavailable, match="not reachable"):
        ask(server(Provider(down)), CHAT)


ANTHROPIC = {"provider": "anthropic", "name": "claude-3-5-haiku", "openai_config": None,
             "anthropic_config": {"anthropic_api_key": "{{secrets/llm/anthropic}}"}}


def test_anthropic_messages_in_openai_shapes():
    reply = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku",
             "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "max_tokens",
             "usage": {"input_tokens": 9, "output_tokens": 5}}
    provider = Provider(lambda r: httpx.Response(200, json=reply))
    srv = server(provider, **ANTHROPIC)
    out = ask(srv, CHAT)
    assert out["object"] == "chat.completion" and out["model"] == "ep"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hello there"}
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}
    sent = provider.seen[0]
    assert str(sent.url) == "https://api.anthropic.com/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert json.loads(sent.content) == {"model": "claude-3-5-haiku", "system": "Be brief.", "max_tokens": 5,
                                        "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2,
                                        "stop_sequences": ["\n"]}
    # a completion becomes one user turn; max_tokens gets Anthropic's required default
    srv = server(Provider(lambda r: httpx.Response(200, json=reply)), task="llm/v1/completions", **ANTHROPIC)
    done = ask(srv, {"prompt": "Say hi"}, api="completion")
    assert done["object"] == "text_completion" and done["choices"][0]["text"] == "Hello there"


def test_anthropic_streams_become_openai_chunks_with_usage_when_asked():
    events = [
        {"type": "message_start", "message": {"id": "msg_2", "usage": {"input_tokens": 11}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"}]
    text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    provider = Provider(lambda r: httpx.Response(200, text=text))
    out = stream(server(provider, **ANTHROPIC), {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert out[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(e[6:]) for e in out[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 2,
                                                                   "total_tokens": 13}
    assert json.loads(provider.seen[0].content)["stream"] is True
    assert "stream_options" not in json.loads(provider.seen[0].content)
