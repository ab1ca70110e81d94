"""The batching engine of LLM replicas on a tiny Llama: requests that join a running batch at
different times get exactly what ``model.generate`` gives each alone, sampling is per request,
a closed stream leaves the batch, bad prompts and model failures reach only their requests."""

from __future__ import annotations

import asyncio

import pytest

from lakeray.errors import InvalidArgument, ModelError
from lakeray.serving.engine import Sampling, TransformersEngine

PROMPTS = [[5, 9, 14], [7, 3, 22, 41, 8, 19, 2, 60, 11], [30], [12, 13, 14, 15, 16, 17], [90, 91]]


@pytest.fixture(scope="module")
def model(tiny_llm):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_llm, dtype=torch.float32).eval()


@pytest.fixture
def engine(model):
    eng = TransformersEngine(model, [model.config.eos_token_id])
    yield eng
    eng.close()


async def run(engine, prompt, sampling, delay=0.0, take=None):
    """The final tokens of one request (or the first ``take`` steps' tokens, then close it)."""
    await asyncio.sleep(delay)
    tokens: list[int] = []
    stream = engine.generate(prompt, sampling)
    async for step in stream:
        tokens = step
        if take is not None and len(tokens) >= take:
            await stream.aclose()
            break
    return tokens


def test_batched_greedy_matches_generate_alone(engine, model):
    import torch

    eos = model.config.eos_token_id
    expected = []
    with torch.inference_mode():
        for prompt in PROMPTS:
            out = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=eos,
                                 pad_token_id=eos)
            expected.append(out[0, len(prompt):].tolist())

    async def all_at_staggered_times():
        return await asyncio.gather(*(run(engine, p, Sampling(max_tokens=12, temperature=0), delay=0.01 * i)
                                      for i, p in enumerate(PROMPTS)))

    assert asyncio.run(all_at_staggered_times()) == expected
    # one after another (each alone in the batch) too
    assert [asyncio.run(run(engine, p, Sampling(max_tokens=12, temperature=0))) for p in PROMPTS] == expected


def test_sampling_is_per_request(engine):
    greedy = asyncio.run(run(engine, PROMPTS[1], Sampling(max_tokens=10, temperature=0)))

    async def mixed():
        return await asyncio.gather(
            run(engine, PROMPTS[1], Sampling(max_tokens=10, temperature=1.5, top_p=1e-9)),  # top token only
            run(engine, PROMPTS[1], Sampling(max_tokens=10, temperature=1.5, top_p=1.0)),
            run(engine, PROMPTS[1], Sampling(max_tokens=10, temperature=0)))

    nucleus_of_one, free, again = asyncio.run(mixed())
    assert nucleus_of_one == greedy and again == greedy
    assert 1 <= len(free) <= 10 and all(0 <= t < 300 for t in free)


def test_closing_a_stream_leaves_the_batch(engine):
    async def scenario():
        long = asyncio.create_task(run(engine, PROMPTS[0], Sampling(max_tokens=200, temperature=1.0), take=2))
        other = asyncio.create_task(run(engine, PROMPTS[2], Sampling(max_tokens=8, temperature=0)))
        return await long, await other

    cut, other = asyncio.run(scenario())
    assert 2 <= len(cut) < 200 and 1 <= len(other) <= 8  # steps may arrive coalesced
    assert asyncio.run(run(engine, PROMPTS[3], Sampling(max_tokens=3, temperature=0)))  # still serving


def test_prompt_beyond_the_context_is_refused(engine, model):
    limit = model.config.max_position_embeddings
    with pytest.raises(InvalidArgument, match="context"):
        asyncio.run(run(engine, [5] * limit, Sampling(max_tokens=4, temperature=0)))


def test_a_model_failure_reaches_its_requests_and_the_engine_goes_on(model):
    class Flaky:
        """The model, failing its first forward pass."""

        def __init__(self):
            self.config, self.calls = model.config, 0

        def __call__(self, **kwargs):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("out of memory (simulated)")
            return model(**kwargs)

    engine = TransformersEngine(Flaky(), [model.config.eos_token_id])
    try:
        with pytest.raises(ModelError, match="simulated"):
            asyncio.run(run(engine, PROMPTS[0], Sampling(max_tokens=4, temperature=0)))
        assert asyncio.run(run(engine, PROMPTS[0], Sampling(max_tokens=4, temperature=0)))
    finally:
        engine.close()
    with pytest.raises(ModelError, match="stopped"):
        asyncio.run(run(engine, PROMPTS[0], Sampling(max_tokens=4, temperature=0)))
