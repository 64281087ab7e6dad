"""Token relevance and the projection-replacement causal test, checked on constructed cases."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch

from orglab.diff.causal import projection_replacement
from orglab.diff.relevance import RelevanceRule, log_odds, relevance_by_position, relevance_share, relevant_tokens

try:
    from tests.tiny_models import make_tokenizer, WORDS
except ImportError:  # pragma: no cover
    from tiny_models import make_tokenizer, WORDS


def test_over_represented_tokens_are_relevant_and_the_count_floor_holds():
    ft = Counter({1: 50, 2: 50, 3: 3, 9: 10})        # 1, 2 are the finetuning domain; 3 is rare; 9 is common
    unrelated = Counter({1: 1, 2: 2, 3: 0, 9: 1000, 7: 500})
    scores = log_odds(ft, unrelated)
    assert scores[1] > scores[9] and scores[9] < 0
    relevant = relevant_tokens(ft, unrelated, RelevanceRule(count_floor=5, min_log_odds=1.0))
    assert relevant == {1, 2}
    assert relevance_share([1, 9, 2, 7], relevant, k=4) == 0.5
    assert relevance_share([1, 9, 2, 7], relevant, k=2) == 0.5
    summary = relevance_by_position([[9, 7], [1, 2], [1, 9], [7], [9], [1, 2]], relevant, k=2, max_positions=5)
    assert summary["per_position"][:3] == [0.0, 1.0, 0.5]
    assert summary["max"] == 1.0 and summary["argmax_position"] == 1  # position 5 is beyond 0-4


def test_projection_replacement_removes_a_planted_bias_exactly():
    """organism = base + c*u added after layer 1; replacing the u component by the base's gives back the base."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer()
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                        num_attention_heads=4, num_key_value_heads=4)).eval()
    organism = copy.deepcopy(base)
    u = torch.randn(32)
    u = u / u.norm()
    organism.model.layers[1].register_forward_hook(lambda m, a, out: out + 3.0 * u)
    texts = [" ".join(WORDS[i:i + 8]) for i in range(0, 80, 8)]

    result = projection_replacement(organism, tok, texts, layer=1, direction=u * 5, base=base, n_random=2)
    base_ce = projection_replacement(base, tok, texts, layer=1, direction=u, base=base, n_random=0).ce_organism
    assert result.ce_patched == pytest.approx(base_ce, abs=1e-4)
    assert result.ce_organism != pytest.approx(base_ce, abs=1e-3)
    assert len(result.ce_random) == 2
    assert all(abs(r - base_ce) > 1e-4 for r in result.ce_random)  # a random direction does not undo the bias
    assert set(result.to_dict()) >= {"delta", "delta_random"}
