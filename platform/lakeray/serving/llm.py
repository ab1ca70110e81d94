"""Replicas of LLM and embedding entities: the OpenAI protocol over a generation engine, and
sentence embeddings batched across concurrent requests.

A request is ``{"api": "chat" | "completion" | "embeddings", "model": <endpoint>, "body": ...}``;
``__call__`` answers whole, ``stream`` yields server-sent events (chat and completion only).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ray import serve

from lakeray.errors import InvalidArgument
from lakeray.serving import openai_api as oa

#: the end-of-turn marker of ChatML templates (SmolLM2's and lakeray's fallback), a stop token
END_OF_TURN = "<|im_end|>"


class LLMServer:
    """A chat or completion model: transformers weights, its chat template (ChatML if it has
    none), generation on a continuous-batching engine."""

    def __init__(self, spec: dict, engine_factory=None):
        import torch
        from transformers import AutoModelForCausalLM

        from lakeray.serving.engine import TransformersEngine
        from lakeray.training.chat import load_tokenizer

        self.spec = spec
        self.tok = load_tokenizer(spec["path"])
        # float32 on CPU: bf16 matmuls are slow there; a GPU replica keeps the stored dtype
        dtype = "auto" if torch.cuda.is_available() else torch.float32
        model = AutoModelForCausalLM.from_pretrained(spec["path"], dtype=dtype).eval()
        eos = [self.tok.eos_token_id]
        end_of_turn = self.tok.convert_tokens_to_ids(END_OF_TURN)
        if isinstance(end_of_turn, int) and end_of_turn != self.tok.unk_token_id and end_of_turn not in eos:
            eos.append(end_of_turn)
        self.engine = (engine_factory or TransformersEngine)(model, eos)

    def _request(self, request: dict) -> tuple[oa.GenerationRequest, list[int]]:
        from lakeray.training.chat import template_ids

        api = request["api"]
        if api not in ("chat", "completion"):
            raise InvalidArgument(f"this endpoint serves a language model: use chat or completions, not {api}")
        req = oa.parse_generation(request.get("body"), api, request["model"])
        if req.kind == "chat":
            ids = template_ids(self.tok, req.messages, generation_prompt=True)
        else:
            ids = self.tok(req.prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            raise InvalidArgument("prompt: the prompt is empty")
        return req, ids

    async def _generate(self, req: oa.GenerationRequest, ids: list[int], done: dict) -> AsyncIterator[str]:
        """Text deltas per engine step, ending at EOS, ``max_tokens`` or a stop string; ``done``
        then holds the generated ``tokens`` and the ``finish_reason``."""
        text = oa.TextStream(self.tok, req.stop)
        tokens: list[int] = []
        steps = self.engine.generate(ids, req.sampling)
        try:
            async for tokens in steps:
                yield text.update(tokens, final=False)
                if text.stopped:
                    break
            else:
                yield text.update(tokens, final=True)
        finally:
            await steps.aclose()  # an early stop cancels the request in the engine
            done.update(tokens=tokens, finish_reason=oa.finish_reason(text, tokens, req.sampling))

    async def __call__(self, request: dict) -> dict:
        req, ids = self._request(request)
        done: dict = {}
        text = "".join([delta async for delta in self._generate(req, ids, done)])
        return oa.response(req, oa.completion_id(req.kind), text, done["finish_reason"],
                           oa.usage(len(ids), len(done["tokens"])))

    async def stream(self, request: dict) -> AsyncIterator[str]:
        req, ids = self._request(request)
        rid, done = oa.completion_id(req.kind), {}
        if req.kind == "chat":
            yield oa.chunk(req, rid, None, None, first=True)
        async for delta in self._generate(req, ids, done):
            if delta:
                yield oa.chunk(req, rid, delta, None)
        yield oa.chunk(req, rid, None, done["finish_reason"])
        if req.include_usage:
            yield oa.chunk(req, rid, None, None, use=oa.usage(len(ids), len(done["tokens"])))
        yield oa.DONE

    def __del__(self):
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()


class EmbeddingServer:
    """A sentence-transformers model; concurrent requests are embedded in one batch."""

    def __init__(self, spec: dict):
        from sentence_transformers import SentenceTransformer

        self.spec = spec
        self.model = SentenceTransformer(spec["path"], device="cpu", local_files_only=True)

    async def __call__(self, request: dict) -> dict:
        if request["api"] not in ("embeddings", "invocations"):
            raise InvalidArgument(f"this endpoint serves an embedding model: use embeddings, not {request['api']}")
        texts, encoding = oa.parse_embedding_input(request.get("body"))
        vectors, tokens = await self._embed(texts)
        return {"object": "list", "model": request["model"],
                "data": [{"object": "embedding", "index": i, "embedding": oa.encode_embedding(v, encoding)}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    async def _embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        return await self._embed_batch(texts)

    # one model call for every request that arrives within a few milliseconds
    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def _embed_batch(self, groups: list[list[str]]) -> list[tuple[list[list[float]], int]]:
        flat = [t for g in groups for t in g]
        vectors = await asyncio.to_thread(self.model.encode, flat, normalize_embeddings=True, convert_to_numpy=True)
        counts = [len(ids) for ids in self.model.tokenizer(flat)["input_ids"]]
        out, at = [], 0
        for g in groups:
            out.append((vectors[at:at + len(g)].tolist(), sum(counts[at:at + len(g)])))
            at += len(g)
        return out
