"""The gateway's query path without Ray: transports are plain coroutines here. Fallbacks move on
only after a 5xx or timeout and only to entities of the same kind; a stream's usage is asked for
and hidden again when the client did not ask; output guardrails check a whole stream before any
of it is sent."""

from __future__ import annotations

import asyncio
import json

import pytest

from lakeray.errors import DeadlineExceeded, InvalidArgument, ModelError
from lakeray.serving import gateway
from lakeray.serving.gateway_config import normalise_ai_gateway
from lakeray.serving.guardrails import GuardrailBlocked


def target(config: dict | None = None, routes: list[tuple[str, str, int]] | None = None) -> dict:
    routes = routes or [("a", "chat", 100)]
    return {"name": "ep", "id": "ep-id", "message": "", "ready": True,
            "caller": {"name": "alice", "kind": "user", "groups": []},
            "gateway": normalise_ai_gateway(config, "ep") if config is not None else None,
            "routes": [{"served_name": n, "kind": k, "percent": p, "app": f"app-{n}", "timeout_s": 5.0}
                       for n, k, p in routes]}


def sse(obj: dict) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def chunks(text_parts: list[str], include_usage: bool) -> list[str]:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "ep"}
    extra = {"usage": None} if include_usage else {}
    out = [sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "finish_reason": None}], **extra})]
    out += [sse({**base, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}], **extra})
            for t in text_parts]
    out.append(sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra}))
    if include_usage:
        out.append(sse({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                                          "total_tokens": 8}}))
    return out + ["data: [DONE]\n\n"]


class Fake:
    """Served entities by name: a body to answer with, or an error to raise."""

    def __init__(self, **answers):
        self.answers, self.calls, self.payloads = answers, [], []

    async def send(self, route: dict, payload: dict) -> dict:
        self.calls.append(route["served_name"])
        self.payloads.append(payload)
        answer = self.answers[route["served_name"]]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def open_stream(self, route: dict, payload: dict):
        self.calls.append(route["served_name"])
        self.payloads.append(payload)
        answer = self.answers[route["served_name"]]
        if isinstance(answer, Exception):
            raise answer
        include = payload["body"].get("stream_options", {}).get("include_usage", False)

        async def events():
            for event in chunks(answer, include):
                yield event
        return events()


def run(coroutine):
    return asyncio.run(coroutine)


async def drain(events) -> list[str]:
    return [e async for e in events]


CHAT = {"messages": [{"role": "user", "content": "hi"}]}
ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
          "usage": {"prompt_tokens": 2, "completion_tokens": 1}}


def test_without_a_gateway_config_the_body_goes_straight_through():
    fake = Fake(a=ANSWER)
    answer = run(gateway.query(target(), "chat", CHAT, fake.send, fake.open_stream))
    assert answer.body == ANSWER and answer.served_name == "a"
    assert fake.payloads == [{"api": "chat", "model": "ep", "body": CHAT}]


def test_fallbacks_follow_config_order_on_5xx_and_timeouts_only():
    routes = [("a", "chat", 100), ("emb", "embedding", 0), ("b", "chat", 0), ("c", "chat", 0)]
    fake = Fake(a=ModelError("boom"), b=DeadlineExceeded("slow"), c=ANSWER, emb=ANSWER)
    answer = run(gateway.query(target({"fallback_config": {"enabled": True}}, routes), "chat", CHAT,
                               fake.send, fake.open_stream))
    assert answer.served_name == "c" and fake.calls == ["a", "b", "c"]  # never the embedding entity
    # off: the first failure is the answer
    fake = Fake(a=ModelError("boom"), c=ANSWER)
    with pytest.raises(ModelError):
        run(gateway.query(target({}, routes), "chat", CHAT, fake.send, fake.open_stream))
    # a 4xx is the caller's mistake: no fallback
    fake = Fake(a=InvalidArgument("bad"), b=ANSWER, c=ANSWER)
    with pytest.raises(InvalidArgument):
        run(gateway.query(target({"fallback_config": {"enabled": True}}, routes), "chat", CHAT,
                          fake.send, fake.open_stream))
    assert fake.calls == ["a"]
    # the last entity's failure is the answer when every one fails
    fake = Fake(a=ModelError("one"), b=ModelError("two"), c=ModelError("three"))
    with pytest.raises(ModelError, match="three"):
        run(gateway.query(target({"fallback_config": {"enabled": True}}, routes), "chat", CHAT,
                          fake.send, fake.open_stream))


def test_a_stream_asks_for_usage_and_hides_it_when_the_client_did_not():
    fake = Fake(a=["Hel", "lo"])
    config = {"fallback_config": {"enabled": True}}
    answer = run(gateway.query(target(config), "chat", {**CHAT, "stream": True}, fake.send, fake.open_stream))
    events = run(drain(answer.events))
    assert fake.payloads[0]["body"]["stream_options"] == {"include_usage": True}
    bodies = [json.loads(e[6:]) for e in events[:-1]]
    assert all("usage" not in b for b in bodies) and all(b["choices"] for b in bodies)
    assert events[-1] == "data: [DONE]\n\n"
    # asked for: passed through untouched
    fake = Fake(a=["Hel", "lo"])
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    answer = run(gateway.query(target(config), "chat", body, fake.send, fake.open_stream))
    events = run(drain(answer.events))
    assert events == chunks(["Hel", "lo"], True)


def test_output_guardrails_check_a_whole_stream_before_sending_it():
    config = {"guardrails": {"output": {"pii": {"behavior": "MASK"}, "invalid_keywords": ["secret"]}}}
    fake = Fake(a=["write to ann@", "example.com", " today"])
    answer = run(gateway.query(target(config), "chat", {**CHAT, "stream": True}, fake.send, fake.open_stream))
    bodies = [json.loads(e[6:]) for e in run(drain(answer.events))[:-1]]
    text = "".join(b["choices"][0]["delta"].get("content") or "" for b in bodies)
    assert text == "write to [EMAIL] today" and bodies[-1]["choices"][0]["finish_reason"] == "stop"
    fake = Fake(a=["the sec", "ret is out"])
    with pytest.raises(GuardrailBlocked, match="output blocked"):
        run(gateway.query(target(config), "chat", {**CHAT, "stream": True}, fake.send, fake.open_stream))


def test_input_guardrails_run_before_the_model_and_streams_need_a_language_model():
    config = {"guardrails": {"input": {"pii": {"behavior": "BLOCK"}}}}
    fake = Fake(a=ANSWER)
    body = {"messages": [{"role": "user", "content": "card 4111-1111-1111-1111"}]}
    with pytest.raises(GuardrailBlocked, match="CARD_NUMBER"):
        run(gateway.query(target(config), "chat", body, fake.send, fake.open_stream))
    assert fake.calls == []
    with pytest.raises(InvalidArgument, match="does not serve a language model"):
        run(gateway.query(target(None, [("p", "pyfunc", 100)]), "chat", {**CHAT, "stream": True},
                          fake.send, fake.open_stream))


def test_a_client_hanging_up_after_done_still_counts_as_answered(monkeypatch):
    logged = []
    monkeypatch.setattr(gateway, "_finish", lambda call, buckets: logged.append(call.status))
    fake = Fake(a=["Hi"])
    answer = run(gateway.query(target({"fallback_config": {"enabled": True}}), "chat", {**CHAT, "stream": True},
                               fake.send, fake.open_stream))

    async def read_until_done_then_close():
        events = answer.events
        async for event in events:
            if event.strip().endswith("[DONE]"):
                break
        await events.aclose()

    run(read_until_done_then_close())
    assert logged == [200]
    fake = Fake(a=["Hi", "there"])
    answer = run(gateway.query(target({"fallback_config": {"enabled": True}}), "chat", {**CHAT, "stream": True},
                               fake.send, fake.open_stream))

    async def hang_up_early():
        events = answer.events
        await events.__anext__()
        await events.aclose()

    run(hang_up_early())
    assert logged == [200, 499]
