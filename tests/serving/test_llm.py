"""The OpenAI protocol pieces and an LLM replica without Ray: request checks naming the field,
stop strings never reaching the client (streamed or not), and a tiny Llama with a BPE tokenizer
answering chat and completion requests through the batching engine, several at once."""

from __future__ import annotations

import asyncio
import json

import pytest

from lakeray.errors import InvalidArgument
from lakeray.serving import openai_api as oa


class CharTokenizer:
    """One token per character (ids are code points), enough to drive TextStream."""

    def decode(self, tokens, skip_special_tokens=True):
        return "".join(chr(t) for t in tokens)


def stream_text(text: str, stops: tuple[str, ...]) -> tuple[list[str], bool]:
    ts = oa.TextStream(CharTokenizer(), stops)
    ids, deltas = [ord(c) for c in text], []
    for i in range(1, len(ids) + 1):
        deltas.append(ts.update(ids[:i], final=False))
        if ts.stopped:
            break
    else:
        deltas.append(ts.update(ids, final=True))
    return deltas, ts.stopped


def test_stop_strings_are_cut_and_never_streamed():
    deltas, stopped = stream_text("Hello world. END more", ("END",))
    assert "".join(deltas) == "Hello world. " and stopped
    assert not any("E" in d for d in deltas)  # the prefix of the stop string was held back, then dropped
    deltas, stopped = stream_text("Hello EN", ("END",))  # a partial stop at the end is text after all
    assert "".join(deltas) == "Hello EN" and not stopped
    assert "".join(stream_text("a<|x|>b", ("<|x|>", "zz"))[0]) == "a"


@pytest.mark.parametrize("body, message", [
    ({}, "messages: expected a non-empty list"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "temperature"),
    ({"messages": [{"role": "user", "content": "hi"}], "top_p": "x"}, "top_p"),
    ({"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, "n: only 1"),
    ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
])
def test_bad_chat_requests_name_the_field(body, message):
    with pytest.raises(InvalidArgument) as e:
        oa.parse_generation(body, "chat", "m")
    assert message in e.value.message


def test_parsed_requests():
    req = oa.parse_generation({"messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
                                            {"role": "user", "content": "hi"}], "temperature": 0, "stop": "\n",
                               "max_completion_tokens": 5, "stream": True,
                               "stream_options": {"include_usage": True}}, "chat", "m")
    assert req.messages[0] == {"role": "system", "content": "be brief"} and req.stop == ("\n",)
    assert req.sampling.temperature == 0 and req.sampling.max_tokens == 5 and req.stream and req.include_usage
    assert oa.parse_generation({"prompt": ["once"]}, "completion", "m").prompt == "once"
    with pytest.raises(InvalidArgument, match="prompt"):
        oa.parse_generation({"prompt": 3}, "completion", "m")
    assert oa.parse_embedding_input({"input": "x"}) == (["x"], "float")
    assert oa.parse_embedding_input({"input": ["x"], "encoding_format": "base64"}) == (["x"], "base64")
    import base64

    import numpy as np

    packed = oa.encode_embedding([0.5, -1.0], "base64")
    assert np.frombuffer(base64.b64decode(packed), dtype="<f4").tolist() == [0.5, -1.0]
    for bad in ({"input": []}, {"input": [1]}, {"input": "x", "encoding_format": "int8"}):
        with pytest.raises(InvalidArgument):
            oa.parse_embedding_input(bad)


@pytest.fixture(scope="module")
def server(tiny_llm):
    from lakeray.serving.llm import LLMServer

    s = LLMServer({"path": tiny_llm, "kind": "chat"})
    yield s
    s.engine.close()


def test_chat_and_completion_answers_with_usage(server):
    chat = {"api": "chat", "model": "tiny", "body": {
        "messages": [{"role": "user", "content": "the fox"}], "max_tokens": 6, "temperature": 0}}
    out = asyncio.run(server(chat))
    assert out["object"] == "chat.completion" and out["model"] == "tiny" and out["id"].startswith("chatcmpl-")
    [choice] = out["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
    assert out["usage"]["prompt_tokens"] > 3 and 1 <= out["usage"]["completion_tokens"] <= 6
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
    again = asyncio.run(server(chat))  # temperature 0 is greedy: the same answer
    assert again["choices"][0]["message"]["content"] == choice["message"]["content"]

    done = asyncio.run(server({"api": "completion", "model": "tiny", "body": {
        "prompt": "the quick", "max_tokens": 4, "temperature": 0}}))
    assert done["object"] == "text_completion" and done["usage"]["completion_tokens"] <= 4
    with pytest.raises(InvalidArgument, match="chat or completions"):
        asyncio.run(server({"api": "embeddings", "model": "tiny", "body": {"input": "x"}}))


def test_concurrent_requests_and_a_stream(server):
    async def many():
        reqs = [{"api": "completion", "model": "tiny", "body": {"prompt": f"the {w}", "max_tokens": 8,
                                                                 "temperature": 0.8}}
                for w in ("fox", "dog", "lazy", "brown", "quick", "over")]
        return await asyncio.gather(*[server(r) for r in reqs])

    outs = asyncio.run(many())
    assert len(outs) == 6 and all(o["usage"]["completion_tokens"] >= 1 for o in outs)

    async def collect():
        return [e async for e in server.stream({"api": "chat", "model": "tiny", "body": {
            "messages": [{"role": "user", "content": "the dog"}], "max_tokens": 5, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}})]

    events = asyncio.run(collect())
    assert events[-1] == oa.DONE and all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] <= 5
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["object"] == "chat.completion.chunk"
