"""Chat conversations as training examples: the model's chat template, loss on the assistant's
tokens only (the role headers and everything the user or system said are masked out)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

IGNORE = -100  # the label transformers' loss skips

#: ChatML, for tokenizers that come without a chat template (a model pretrained here)
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
          "+ '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")


def template_ids(tok, messages: list[dict], generation_prompt: bool) -> list[int]:
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    if hasattr(out, "keys"):  # a BatchEncoding in newer transformers
        out = out["input_ids"]
    return list(out)


def encode(tok, messages: list[dict], max_length: int) -> tuple[list[int], list[int]] | None:
    """``(input_ids, labels)`` of one conversation, truncated to ``max_length``; None when no
    assistant token survives (nothing to learn)."""
    ids: list[int] = []
    labels: list[int] = []
    for i, message in enumerate(messages):
        if message.get("role") == "assistant":
            header = template_ids(tok, messages[:i], generation_prompt=True)[len(ids):]
            ids += header
            labels += [IGNORE] * len(header)
        full = template_ids(tok, messages[: i + 1], generation_prompt=False)
        new = full[len(ids):]
        if full[:len(ids)] != ids:  # a template that rewrites earlier turns: take it whole, unlabeled
            ids, labels, new = list(full), [IGNORE] * len(full), []
        ids += new
        labels += new if message.get("role") == "assistant" else [IGNORE] * len(new)
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE for label in labels):
        return None
    return ids, labels


def is_eval(messages: list[dict], fraction: float) -> bool:
    """The held-out split, by a hash of the conversation (stable across runs and restarts)."""
    digest = hashlib.blake2b(json.dumps(messages, sort_keys=True).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 1_000_000 < fraction * 1_000_000


def load_tokenizer(path: str):
    """The base model's tokenizer, with ChatML if it has no chat template and a pad token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if not tok.chat_template:
        tok.chat_template = CHATML
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


class ChatEncoder:
    """A Ray Data batch function: ``messages`` rows -> padded ``input_ids``/``labels``/``attention_mask``."""

    def __init__(self, base_path: str, column: str, max_length: int, eval_fraction: float, want_eval: bool):
        self.tok = load_tokenizer(base_path)
        self.column, self.max_length = column, max_length
        self.eval_fraction, self.want_eval = eval_fraction, want_eval

    def __call__(self, batch: dict) -> dict:
        rows = []
        for messages in batch[self.column]:
            messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in (messages if messages is not None else [])]
            if not messages or is_eval(messages, self.eval_fraction) != self.want_eval:
                continue
            encoded = encode(self.tok, messages, self.max_length)
            if encoded is not None:
                rows.append(encoded)
        n, width = len(rows), self.max_length
        input_ids = np.full((n, width), self.tok.pad_token_id, dtype=np.int64)
        labels = np.full((n, width), IGNORE, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for i, (ids, labs) in enumerate(rows):
            input_ids[i, :len(ids)], labels[i, :len(labs)], mask[i, :len(ids)] = ids, labs, 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def chat_blocks(ds, base_path: str, column: str, max_length: int, eval_fraction: float):
    """``(train, eval)`` Ray Datasets of encoded conversations."""
    from lakeray.training.data import split_map

    return split_map(ds, ChatEncoder, 64, base_path=base_path, column=column, max_length=max_length,
                     eval_fraction=eval_fraction)
