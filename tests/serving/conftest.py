"""Fixtures of the serving tests that need a model: a tiny Llama saved as a model directory."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """A tiny Llama and a byte-level BPE tokenizer saved as a model directory."""
    import torch
    from transformers import LlamaForCausalLM

    from lakeray.training.model import llama_config
    from lakeray.training.tokenizer import train_bpe

    path = tmp_path_factory.mktemp("tiny-llm")
    tok = train_bpe(["the quick brown fox jumps over the lazy dog"] * 50, 300)
    torch.manual_seed(0)
    LlamaForCausalLM(llama_config({"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 256}, tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
