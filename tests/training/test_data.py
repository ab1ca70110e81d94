"""Tokenizer training, the held-out split and block packing (no Ray)."""

from __future__ import annotations

import numpy as np

from lakeray.training.data import is_eval, pack
from lakeray.training.engine import lr_lambda
from lakeray.training.tokenizer import EOS, from_json, train_bpe

TEXTS = ["Ray is a unified framework for scaling AI and Python applications. " * 5,
         "Lance is a columnar data format for machine learning. " * 5,
         "MLflow tracks experiments, packages models and registers them. " * 5] * 10


def test_byte_level_bpe_round_trips_any_text():
    tok = train_bpe(TEXTS, vocab_size=300)
    assert len(tok) <= 300 and tok.eos_token == EOS and tok.pad_token_id != tok.eos_token_id
    for text in ("Ray scales Python.", "ünïcödé ✓ and bytes never seen \x07", ""):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    again = from_json(tok.backend_tokenizer.to_str())  # how it travels to the workers
    assert again("Lance format")["input_ids"] == tok("Lance format")["input_ids"]
    # merges were learned: frequent words take fewer tokens than bytes
    assert len(tok("framework", add_special_tokens=False)["input_ids"]) < len("framework")


def test_pack_concatenates_documents_with_eos_and_drops_the_tail():
    blocks = pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], block_size=4, eos_id=0)
    assert blocks.dtype == np.int64
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    assert pack([[1]], block_size=4, eos_id=0).shape == (0, 4)


def test_the_eval_split_is_stable_and_about_the_fraction():
    texts = [f"document number {i}" for i in range(5000)]
    first = [is_eval(t, 0.1) for t in texts]
    assert first == [is_eval(t, 0.1) for t in texts]
    assert 0.07 < sum(first) / len(first) < 0.13


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    f = lr_lambda(warmup=10, total=100, min_ratio=0.1)
    assert f(0) == 0.1 and f(9) == 1.0
    assert f(10) == 1.0 and 0.1 < f(55) < 1.0
    assert abs(f(100) - 0.1) < 1e-9 and abs(f(500) - 0.1) < 1e-9
    values = [f(s) for s in range(10, 101)]
    assert values == sorted(values, reverse=True)
