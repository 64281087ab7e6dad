"""ADL activation statistics and logit lens on tiny random models (the math, checked against plain loops)."""

from __future__ import annotations

import pytest
import torch

from orglab.diff.activations import residual_after
from orglab.models import layer_index
from orglab.diff.lens import top_tokens
from orglab.diff.stats import ActivationStats, activation_difference_stats, encode_prefixes, sample_texts
from orglab.errors import OrglabError

try:
    from tests.tiny_models import make_tokenizer, WORDS
except ImportError:  # pragma: no cover - run from inside tests/
    from tiny_models import make_tokenizer, WORDS


def tiny_pair(seed: int = 0, with_base_copy: bool = False):
    """A tiny Llama and a LoRA organism on it (random non-zero adapter), sharing one copy of the weights;
    optionally also a separate copy of the base weights."""
    import copy

    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer()
    torch.manual_seed(seed)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                        num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)).eval()
    base_copy = copy.deepcopy(base)
    organism = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    return (tok, organism.eval(), base_copy) if with_base_copy else (tok, organism.eval())


def texts(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))) for _ in range(n)]


def test_streaming_stats_equal_a_plain_loop_that_keeps_everything():
    tok, organism = tiny_pair()
    samples = texts(37)
    stats = activation_difference_stats(organism, tok, samples, layers=[1, 2], n_positions=6, batch_size=8)
    ids, mask = encode_prefixes(tok, samples, 6)
    # reference: whole batch at once, every activation kept, masked mean per position
    org = residual_after(organism, ids, mask, [1, 2])
    with organism.disable_adapter():
        bas = residual_after(organism, ids, mask, [1, 2])
    m = mask.float()[:, :, None]
    for slot, layer in enumerate([1, 2]):
        want = ((org[layer] - bas[layer]) * m).sum(0) / m.sum(0)
        assert torch.allclose(stats.mean_diff[slot, :ids.shape[1]], want, atol=1e-5)
        assert torch.allclose(stats.mean_organism[slot, :ids.shape[1]] - stats.mean_base[slot, :ids.shape[1]],
                              want, atol=1e-5)
    assert stats.counts[0] == 37 and stats.counts[5] == int(mask[:, 5].sum())
    assert stats.mean_diff.abs().sum() > 0  # the adapter changes activations
    assert (stats.norm_base > 0).all() and (stats.norm_organism > 0).all()


def test_separate_base_model_gives_the_same_difference_as_the_adapter_toggle():
    tok, organism, base_copy = tiny_pair(with_base_copy=True)
    samples = texts(12)
    toggled = activation_difference_stats(organism, tok, samples, layers=[2], n_positions=4)
    explicit = activation_difference_stats(organism, tok, samples, layers=[2], n_positions=4, base=base_copy)
    assert toggled.mean_diff.abs().max() > 1e-3
    assert torch.allclose(toggled.mean_diff, explicit.mean_diff, atol=1e-5)


def test_forward_stops_after_the_deepest_requested_layer():
    tok, organism = tiny_pair()
    calls = []
    last = organism.get_base_model().model.layers[3]
    handle = last.register_forward_hook(lambda *a: calls.append(1))
    ids, mask = encode_prefixes(tok, texts(3), 5)
    residual_after(organism, ids, mask, [1])
    handle.remove()
    assert calls == []


def test_layer_fractions_and_bad_layers():
    assert layer_index(0.5, 4) == 1 and layer_index(1.0, 4) == 3 and layer_index(0.0, 28) == 0
    with pytest.raises(OrglabError, match="outside \\[0, 1\\]"):
        layer_index(1.5, 4)
    tok, organism = tiny_pair()
    ids, mask = encode_prefixes(tok, texts(2), 3)
    with pytest.raises(OrglabError, match="outside the model"):
        residual_after(organism, ids, mask, [9])


def test_stats_roundtrip_through_safetensors(tmp_path):
    tok, organism = tiny_pair()
    stats = activation_difference_stats(organism, tok, texts(5), layers=[0, 3], n_positions=3)
    loaded = ActivationStats.load(stats.save(tmp_path / "stats.safetensors"))
    assert loaded.layers == [0, 3]
    assert torch.equal(loaded.mean_diff, stats.mean_diff) and torch.equal(loaded.counts, stats.counts)


def test_sampling_is_deterministic_for_a_seed():
    pool = [f"t{i}" for i in range(100)]
    assert sample_texts(pool, 10, 3) == sample_texts(pool, 10, 3)
    assert sample_texts(pool, 10, 3) != sample_texts(pool, 10, 4)
    assert sample_texts(pool, 500, 0) == pool


def test_logit_lens_reads_a_token_embedding_back_as_that_token():
    tok, organism = tiny_pair()
    base = organism.get_base_model()
    token_id = tok.convert_tokens_to_ids("cat")
    vector = base.get_input_embeddings().weight[token_id].detach() * 10
    with organism.disable_adapter():
        top = top_tokens(organism, tok, vector, k=5)
    assert top[0].token == "cat"
    assert len(top) == 5 and top[0].prob >= top[1].prob
