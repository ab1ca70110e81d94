"""The decoder-only model: a Llama-style transformers config built from a size preset."""

from __future__ import annotations


def llama_config(size: dict, tokenizer):
    """A ``LlamaConfig`` for ``size`` (``n_layer``, ``n_head``, ``n_embd``, ``block_size``,
    ``dropout``) with the tokenizer's vocabulary and special tokens."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=size["n_embd"], intermediate_size=4 * size["n_embd"],
        num_hidden_layers=size["n_layer"], num_attention_heads=size["n_head"],
        num_key_value_heads=size["n_head"], max_position_embeddings=size["block_size"],
        attention_dropout=size.get("dropout", 0.0), tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)


def build(config):
    """A freshly initialised ``LlamaForCausalLM`` (seeded by the caller)."""
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(config)


def load_pretrained(path: str, lora: dict | None = None):
    """A causal LM from a Hugging Face directory (float32 for training), wrapped with LoRA
    adapters (peft) when ``lora["enabled"]``: only the adapters then train."""
    import torch
    from transformers import AutoModelForCausalLM

    net = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if not lora or not lora.get("enabled"):
        return net
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules=lora["target_modules"], task_type="CAUSAL_LM")
    return get_peft_model(net, config)
