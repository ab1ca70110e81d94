"""Text from a catalog table as Ray Datasets of packed token blocks, split train/eval."""

from __future__ import annotations

import hashlib

import numpy as np

#: CPUs per Ray Data task feeding training: the training workers hold whole CPUs, and data
#: tasks must still fit beside them (on a 2-core machine, 2 workers x 0.75 leave 0.5).
DATA_CPUS = 0.25


def is_eval(text: str, fraction: float) -> bool:
    """Whether a row belongs to the held-out split: by a hash of its text, so the split is the
    same on every run, worker and restart."""
    digest = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 1_000_000 < fraction * 1_000_000


def pack(token_lists: list[list[int]], block_size: int, eos_id: int) -> np.ndarray:
    """Concatenate documents (each ended by EOS) and cut them into ``block_size`` blocks; the
    tail that does not fill a block is dropped. Returns int64 ``[n_blocks, block_size]``."""
    stream = [t for ids in token_lists for t in (*ids, eos_id)]
    n = len(stream) // block_size
    return np.asarray(stream[: n * block_size], dtype=np.int64).reshape(n, block_size)


class Packer:
    """A Ray Data batch function: text rows -> packed ``input_ids`` blocks of one split."""

    def __init__(self, tokenizer_json: str, column: str, block_size: int, eval_fraction: float, want_eval: bool):
        from lakeray.training.tokenizer import from_json

        self.tok = from_json(tokenizer_json)
        self.column, self.block_size = column, block_size
        self.eval_fraction, self.want_eval = eval_fraction, want_eval

    def __call__(self, batch: dict) -> dict:
        texts = [t for t in batch[self.column] if isinstance(t, str) and t.strip()
                 and is_eval(t, self.eval_fraction) == self.want_eval]
        ids = self.tok(texts, add_special_tokens=False)["input_ids"] if texts else []
        return {"input_ids": pack(ids, self.block_size, self.tok.eos_token_id)}


def split_map(ds, fn_cls, batch_size: int, **kwargs):
    """``(train, eval)``: ``ds`` through the batch class ``fn_cls`` (one actor each, constructed
    with ``kwargs`` and ``want_eval``), once per side of the held-out split."""
    import ray.data

    def side(want_eval: bool):
        return ds.map_batches(fn_cls, fn_constructor_kwargs={**kwargs, "want_eval": want_eval},
                              batch_size=batch_size, batch_format="numpy",
                              compute=ray.data.ActorPoolStrategy(size=1), num_cpus=DATA_CPUS)

    return side(False), side(True)


def token_blocks(ds, tokenizer_json: str, column: str, block_size: int, eval_fraction: float):
    """``(train, eval)`` Ray Datasets of packed blocks from a Dataset with a text ``column``."""
    return split_map(ds, Packer, 256, tokenizer_json=tokenizer_json, column=column, block_size=block_size,
                     eval_fraction=eval_fraction)
