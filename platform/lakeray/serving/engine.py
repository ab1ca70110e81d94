"""Text generation engines for LLM replicas: concurrent requests share the model's forward
passes instead of waiting for each other.

:class:`GenerationEngine` is what an LLM replica needs from an engine; :class:`TransformersEngine`
implements it with transformers' continuous batching (paged KV cache, requests joining and
leaving the running batch at every step, per-request temperature and top_p) on CPU or GPU. A
vLLM engine on GPU clusters implements the same two methods.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from lakeray.errors import ModelError

#: temperature 0 (greedy) as a per-request temperature the sampler can divide by
GREEDY_TEMPERATURE = 1e-5


@dataclass(frozen=True)
class Sampling:
    """How one request samples: at most ``max_tokens`` new tokens, ``temperature`` (0 is
    greedy) and nucleus ``top_p``."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0


class GenerationEngine(Protocol):
    """What an LLM replica generates with."""

    def generate(self, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[list[int]]:
        """Yield the tokens generated so far, once per step, until EOS or ``max_tokens``; closing
        the iterator early cancels the request."""

    def close(self) -> None:
        """Stop generating and free the model's caches."""


class TransformersEngine:
    """Continuous batching over a transformers causal LM (``init_continuous_batching``)."""

    def __init__(self, model, eos_token_ids: list[int], max_new_tokens: int = 512,
                 kv_cache_memory_fraction: float = 0.05):
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        # Sampling on, with non-default temperature and top_p, so that transformers creates the
        # per-request processors; each request then brings its own values.
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=0.7, top_p=0.9,
                                  eos_token_id=eos_token_ids, pad_token_id=eos_token_ids[0])
        self.manager = model.init_continuous_batching(
            generation_config=config, continuous_batching_config=ContinuousBatchingConfig(
                per_request_processors=True, max_memory_percent=kv_cache_memory_fraction))
        self.manager.start()

    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[list[int]]:
        request_id = uuid.uuid4().hex
        results: asyncio.Queue = asyncio.Queue()
        self.manager.register_result_handler(request_id, results.put_nowait)
        finished = False
        try:
            # add_request may block briefly when the manager's queue is full
            await asyncio.to_thread(
                self.manager.add_request, list(prompt_ids), request_id=request_id,
                max_new_tokens=sampling.max_tokens, streaming=True,
                temperature=max(sampling.temperature, GREEDY_TEMPERATURE), top_p=sampling.top_p)
            while not finished:
                out = await results.get()
                if out.error:
                    raise ModelError(f"generation failed: {out.error.splitlines()[0][:300]}")
                finished = out.is_finished()
                yield list(out.generated_tokens)
        finally:
            if not finished:
                self.manager.cancel_request(request_id)

    def close(self) -> None:
        if self.manager is not None:
            self.manager.stop(block=True)
            self.manager = None
