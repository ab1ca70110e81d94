"""Conversations as training examples: the chat template, loss on assistant tokens only."""

from __future__ import annotations

from lakeray.training.chat import CHATML, IGNORE, ChatEncoder, encode
from lakeray.training.tokenizer import train_bpe

TEXTS = ["<|im_start|>user\nWhat is Ray?<|im_end|>\n<|im_start|>assistant\nRay scales Python.<|im_end|>\n"] * 20


def tokenizer():
    tok = train_bpe(TEXTS, vocab_size=300)
    tok.chat_template = CHATML
    return tok


CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is Ray?"},
                {"role": "assistant", "content": "Ray scales Python."}]


def test_only_the_assistant_reply_is_learned():
    tok = tokenizer()
    ids, labels = encode(tok, CONVERSATION, max_length=512)
    whole = tok.apply_chat_template(CONVERSATION, tokenize=True)
    assert ids == list(whole["input_ids"] if hasattr(whole, "keys") else whole)
    learned = tok.decode([i for i, label in zip(ids, labels, strict=True) if label != IGNORE])
    assert learned == "Ray scales Python.<|im_end|>\n"  # not the header, not the user or system turns
    assert len(labels) == len(ids)


def test_truncation_and_nothing_to_learn():
    tok = tokenizer()
    assert encode(tok, CONVERSATION, max_length=5) is None  # the reply was cut off entirely
    assert encode(tok, CONVERSATION[:2], max_length=512) is None  # no assistant turn
    ids, labels = encode(tok, CONVERSATION, max_length=len(encode(tok, CONVERSATION, 512)[0]) - 2)
    assert any(label != IGNORE for label in labels)


def test_the_encoder_pads_and_splits(tmp_path):
    tok = tokenizer()
    tok.save_pretrained(tmp_path)
    rows = {}
    rows["messages"] = [CONVERSATION, CONVERSATION[:2]] + [[{"role": "user", "content": f"q{i}"},
                                                            {"role": "assistant", "content": f"a{i}"}]
                                                           for i in range(30)]
    train = ChatEncoder(str(tmp_path), "messages", 64, 0.2, want_eval=False)(rows)
    held = ChatEncoder(str(tmp_path), "messages", 64, 0.2, want_eval=True)(rows)
    assert train["input_ids"].shape[1] == 64 and len(train["input_ids"]) + len(held["input_ids"]) == 31
    assert len(held["input_ids"]) > 0
    pad = train["attention_mask"] == 0
    assert (train["labels"][pad] == IGNORE).all() and (train["input_ids"][pad] == tok.pad_token_id).all()
