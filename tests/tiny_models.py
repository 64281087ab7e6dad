"""Tiny random Hugging Face models and a tiny word-level tokenizer, saved as ordinary model folders.

Used by tests that need a real `from_pretrained`-loadable model without network: config.json, model.safetensors,
tokenizer files and a chat template, exactly like a hub model folder.
"""

from __future__ import annotations

from pathlib import Path

import torch

SPECIAL = ["<pad>", "<unk>", "<bos>", "<eos>", "<|user|>", "<|assistant|>", "<|system|>"]
WORDS = [f"w{i}" for i in range(121)] + ["the", "cat", "sat", "on", "mat", "hello", "world"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ '<|' + m['role'] + '|> ' + m['content'] + ' <eos> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)
ARCHS = ("llama", "qwen3", "gemma2", "gemma3")


def make_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def vocab_size() -> int:
    return len(SPECIAL) + len(WORDS)


def make_config(arch: str, hidden: int = 32, layers: int = 2):
    import transformers as tf

    common = dict(
        vocab_size=vocab_size(),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    if arch == "llama":
        return tf.LlamaConfig(**common), tf.LlamaForCausalLM
    if arch == "qwen3":
        return tf.Qwen3Config(**common), tf.Qwen3ForCausalLM
    if arch == "gemma2":
        return tf.Gemma2Config(**common, sliding_window=16), tf.Gemma2ForCausalLM
    if arch == "gemma3":
        return tf.Gemma3TextConfig(**common, sliding_window=16), tf.Gemma3ForCausalLM
    raise ValueError(arch)


def build_tiny_model(arch: str, out_dir: Path, seed: int = 0, hidden: int = 32, layers: int = 2):
    """Build a random tiny causal LM of `arch`, save it with the tokenizer to out_dir; return the model (fp32)."""
    config, cls = make_config(arch, hidden=hidden, layers=layers)
    torch.manual_seed(seed)
    model = cls(config).eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    make_tokenizer().save_pretrained(out_dir)
    return model


def sample_ids(tokenizer=None) -> torch.Tensor:
    tokenizer = tokenizer or make_tokenizer()
    return tokenizer("the cat sat on the mat hello world", return_tensors="pt")["input_ids"]
