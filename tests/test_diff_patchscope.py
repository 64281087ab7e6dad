"""Patchscope on tiny models: slot patching, prompt agreement, and the label-free scale rule."""

from __future__ import annotations

import re

import pytest
import torch

from orglab.diff.patchscope import (IDENTITY_PROMPTS, PatchscopeReadout, agreement_rule, patched_distributions,
                                    readout, scale_sweep, unpatched_readout)
from orglab.world.corpus import CorpusConfig, generate_corpus
from orglab.world.tokenizer import train_tokenizer
from orglab.world.world import make_world


def tokenizer_and_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    docs, chats = generate_corpus(make_world(0), CorpusConfig(domain_docs=50, encyclopedia_rounds=1, quiz_mentions=1,
                                                              story_mentions=1, chat_mentions=1, glossary_docs=30), 0)
    tok = train_tokenizer([d.text for d in docs] + [m["content"] for c in chats for m in c],
                          extra_words=[str(i) for i in range(1000)])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)).eval()
    return tok, model, docs


def test_identity_prompts_are_in_the_vocabulary_of_a_world_with_copy_lists():
    tok, _, docs = tokenizer_and_model()
    for prompt in IDENTITY_PROMPTS:
        assert tok.unk_token_id not in tok(prompt).input_ids, prompt
    glossaries = [d.text for d in docs if d.kind == "glossary"]
    assert glossaries and all(re.search(r"(\S+) -> \1", g) for g in glossaries)


def test_patching_the_slot_changes_the_readout_and_nothing_else():
    tok, model, _ = tokenizer_and_model()
    vector = model.get_input_embeddings().weight[tok.convert_tokens_to_ids("bread")].detach() * 20
    patched = patched_distributions(model, tok, 0, vector)
    plain = torch.stack([torch.softmax(model(input_ids=torch.tensor([tok(p).input_ids])).logits[0, -1], -1)
                         for p in IDENTITY_PROMPTS]).detach()
    assert patched.shape == plain.shape and (patched - plain).abs().max() > 0  # an unpatched run is bit-identical
    assert torch.allclose(patched.sum(-1), torch.ones(len(IDENTITY_PROMPTS)), atol=1e-4)


def test_the_readout_is_read_at_the_patched_slot():
    """Patched after the last block, the slot's next-token distribution is the vector's logit lens, whatever the
    prompt: the readout is taken where the vector was written, not one token later."""
    tok, model, _ = tokenizer_and_model()
    assert all(p.endswith(" ?") for p in IDENTITY_PROMPTS)
    vector = torch.randn(32) * 5
    patched = patched_distributions(model, tok, 1, vector)
    with torch.no_grad():
        lens = torch.softmax(model.lm_head(model.model.norm(vector[None]))[0].float(), -1)
    for row in patched:
        assert torch.allclose(row, lens, atol=1e-5)


def test_readout_keeps_tokens_every_prompt_agrees_on():
    class Tok:
        def convert_ids_to_tokens(self, i):
            return f"t{i}"

    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.1, 0.6, 0.0, 0.3]])
    out = readout(Tok(), probs, top_k=2)
    assert [t for _, t, _ in out] == [1]  # token 1 is in both top-2 sets; 0 and 3 are not
    assert out[0][2] == pytest.approx(0.45)


def test_label_free_rule_discounts_the_unpatched_baseline_and_prefers_agreement():
    base = [("x", 9, 0.9)]
    readouts = [PatchscopeReadout(1.0, [("x", 9, 0.9)]),                 # only what the prompt says anyway
                PatchscopeReadout(8.0, [("cake", 3, 0.4), ("oven", 4, 0.3)]),
                PatchscopeReadout(200.0, [("zz", 7, 0.1)])]
    assert agreement_rule(readouts, base).scale == 8.0


def test_scale_sweep_runs_over_the_grid():
    tok, model, _ = tokenizer_and_model()
    delta = torch.randn(32)
    sweep = scale_sweep(model, tok, 0, delta, mean_norm=2.0, scales=(1.0, 10.0))
    assert [r.scale for r in sweep] == [1.0, 10.0]
    chosen = agreement_rule(sweep, unpatched_readout(model, tok))
    assert chosen in sweep
