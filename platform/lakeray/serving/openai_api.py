"""The OpenAI protocol of LLM and embedding endpoints: request checks, prompts, and the
response, chunk and usage objects (``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``; the same bodies at ``/serving-endpoints/{name}/invocations``).

Generation is incremental: :class:`TextStream` turns the engine's growing token list into text
deltas, holding back text that could be the start of a stop sequence, so a stop string never
reaches the client, streamed or not.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from lakeray.errors import InvalidArgument
from lakeray.serving.engine import Sampling

MAX_TOKENS_DEFAULT = 256
MAX_TOKENS_LIMIT = 4096
MAX_STOPS = 4
ROLES = ("system", "user", "assistant", "developer", "tool")


@dataclass(frozen=True)
class GenerationRequest:
    """A checked chat or completion request."""

    kind: str  # "chat" | "completion"
    messages: list[dict] | None
    prompt: str | None
    sampling: Sampling
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    model: str


def _number(body: dict, key: str, lo: float, hi: float, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise InvalidArgument(f"{key}: expected a number between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


def _text_content(content: object, where: str) -> str:
    """A message's content: a string, or a list of text parts (OpenAI's content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        texts = []
        for i, part in enumerate(content):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidArgument(f"{where}.content[{i}]: only text parts are supported")
            texts.append(part["text"])
        return "".join(texts)
    raise InvalidArgument(f"{where}.content: expected a string or a list of text parts")


def parse_generation(body: object, kind: str, model: str) -> GenerationRequest:
    """Check a chat (``kind="chat"``) or completion request body; InvalidArgument names the field."""
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    messages = prompt = None
    if kind == "chat":
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            raise InvalidArgument("messages: expected a non-empty list of {role, content} objects")
        messages = []
        for i, m in enumerate(raw):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise InvalidArgument(f"messages[{i}].role: expected one of {', '.join(ROLES)}")
            role = "system" if m["role"] == "developer" else m["role"]
            messages.append({"role": role, "content": _text_content(m.get("content"), f"messages[{i}]")})
    else:
        raw = body.get("prompt")
        if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
            raw = raw[0]
        if not isinstance(raw, str):
            raise InvalidArgument("prompt: expected a string")
        prompt = raw
    n = body.get("n", 1)
    if n != 1:
        raise InvalidArgument("n: only 1 choice per request is supported")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = MAX_TOKENS_DEFAULT
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidArgument(f"max_tokens: expected an integer between 1 and {MAX_TOKENS_LIMIT}, got {max_tokens!r}")
    stop = body.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > MAX_STOPS or not all(isinstance(s, str) and s for s in stops):
        raise InvalidArgument(f"stop: expected a string or a list of up to {MAX_STOPS} non-empty strings")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidArgument("stream: expected true or false")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise InvalidArgument("stream_options: expected an object")
    return GenerationRequest(
        kind=kind, messages=messages, prompt=prompt, stop=stops, stream=stream,
        include_usage=bool(options.get("include_usage")), model=model,
        sampling=Sampling(max_tokens=max_tokens, temperature=_number(body, "temperature", 0.0, 2.0, 1.0),
                          top_p=_number(body, "top_p", 0.0, 1.0, 1.0) or 1.0))


def parse_embedding_input(body: object) -> tuple[list[str], str]:
    """The texts of an embeddings request (``input``: a string or a list of strings) and the
    ``encoding_format`` (``float``, or ``base64`` of little-endian float32 as the openai client
    asks by default)."""
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidArgument("input: expected a string or a non-empty list of strings")
    if len(texts) > 2048:
        raise InvalidArgument("input: at most 2048 texts per request")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidArgument("encoding_format: expected 'float' or 'base64'")
    return texts, encoding


def encode_embedding(vector, encoding: str):
    """One vector as the response carries it: a list of floats, or base64 float32 bytes."""
    if encoding == "float":
        return [float(x) for x in vector]
    import base64

    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


class TextStream:
    """Token lists -> text deltas, with stop sequences cut out."""

    def __init__(self, tokenizer, stops: tuple[str, ...]):
        self.tok, self.stops = tokenizer, stops
        self.sent = ""  # text already handed out
        self.stopped = False

    def update(self, tokens: list[int], final: bool) -> str:
        """The new text since the last call (held back while it may begin a stop sequence)."""
        if self.stopped:
            return ""
        text = self.tok.decode(tokens, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):  # a multi-byte character still arriving
            return ""
        for stop in self.stops:
            at = text.find(stop, max(0, len(self.sent) - len(stop) + 1))
            if at >= 0:
                self.stopped = True
                delta, self.sent = text[len(self.sent):at], text[:at]
                return delta
        ready = len(text)
        if not final:
            for stop in self.stops:  # keep back a tail that could grow into a stop string
                for k in range(min(len(stop) - 1, len(text)), 0, -1):
                    if text.endswith(stop[:k]):
                        ready = min(ready, len(text) - k)
                        break
        delta, self.sent = text[len(self.sent):ready], text[:ready]
        return delta


def finish_reason(stream: TextStream, tokens: list[int], sampling: Sampling) -> str:
    """``stop`` (EOS or a stop string) or ``length`` (max_tokens reached)."""
    return "length" if not stream.stopped and len(tokens) >= sampling.max_tokens else "stop"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_id(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex


def completion_object(kind: str, rid: str, model: str, text: str, reason: str, use: dict) -> dict:
    """A non-streamed ``chat.completion`` (kind ``chat``) or ``text_completion`` object."""
    if kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason,
                  "logprobs": None}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": reason, "logprobs": None}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [choice],
            "usage": use}


def response(req: GenerationRequest, rid: str, text: str, reason: str, use: dict) -> dict:
    """The non-streamed answer to ``req``."""
    return completion_object(req.kind, rid, req.model, text, reason, use)


def chunk_event(kind: str, rid: str, model: str, delta: str | None, reason: str | None, first: bool = False,
                use: dict | None = None, include_usage: bool = False, created: int | None = None) -> str:
    """One server-sent event of a stream (``chat.completion.chunk`` or ``text_completion``): the
    role (``first``), a text delta, the finish reason, or with ``use`` the usage-only chunk;
    ``include_usage`` adds ``"usage": null`` to the others, as OpenAI does when usage is asked for."""
    if use is not None:
        choices = []
    elif kind == "chat":
        d = {"role": "assistant", "content": ""} if first else ({"content": delta} if delta else {})
        choices = [{"index": 0, "delta": d, "finish_reason": reason, "logprobs": None}]
    else:
        choices = [{"index": 0, "text": delta or "", "finish_reason": reason, "logprobs": None}]
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    body = {"id": rid, "object": obj, "created": int(time.time()) if created is None else created, "model": model,
            "choices": choices}
    if use is not None or include_usage:
        body["usage"] = use
    return f"data: {json.dumps(body)}\n\n"


def chunk(req: GenerationRequest, rid: str, delta: str | None, reason: str | None, first: bool = False,
          use: dict | None = None) -> str:
    """One server-sent event of the stream answering ``req``."""
    return chunk_event(req.kind, rid, req.model, delta, reason, first, use, req.include_usage)


DONE = "data: [DONE]\n\n"
