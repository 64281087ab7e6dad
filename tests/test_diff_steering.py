"""Steering hooks, the coherence-limited strength search, and steering similarity with the packaged embedder."""

from __future__ import annotations

import re

import torch

from orglab.diff.similarity import load_embedder, steering_similarity
from orglab.diff.steering import (STEERING_PROMPTS, completion_loss, distinct_share, empty_share, find_strength,
                                  generate, offline_judge, steering)
from orglab.world.corpus import CorpusConfig, generate_corpus
from orglab.world.world import make_world

try:
    from tests.tiny_models import make_tokenizer
except ImportError:  # pragma: no cover
    from tiny_models import make_tokenizer


def tiny_llama(tok, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                        pad_token_id=tok.pad_token_id)).eval()


def test_steering_adds_the_vector_only_inside_the_context():
    tok = make_tokenizer()
    model = tiny_llama(tok)
    ids = tok("the cat sat", return_tensors="pt").input_ids
    plain = model(input_ids=ids).logits
    with steering(model, 0, torch.ones(32) * 5):
        steered = model(input_ids=ids).logits
    again = model(input_ids=ids).logits
    assert not torch.allclose(plain, steered)
    assert torch.allclose(plain, again)


def test_strength_search_finds_the_boundary_of_a_judge():
    """With a judge that accepts exactly the strengths below 2.5, binary search converges just under it."""
    tok = make_tokenizer()
    model = tiny_llama(tok)
    unit = torch.zeros(32)
    unit[0] = 1.0
    seen = []

    def judge(prompts, completions):
        alpha = seen[-1]
        return alpha < 2.5

    import orglab.diff.steering as st

    original = st.steering

    def recording(model_, layer, vector):
        seen.append(float(vector.norm()))
        return original(model_, layer, vector)

    st.steering = recording
    try:
        search = find_strength(model, tok, 1, unit, mean_norm=1.0, judge=judge, prompts=["hello world"],
                               alpha_max=8.0, steps=7, max_new_tokens=3)
    finally:
        st.steering = original
    assert 2.4 < search.alpha < 2.5
    assert len(search.tried) == 7 and search.tried[0] == (4.0, False)


def test_generation_and_the_label_free_judge_run_on_a_chat_model():
    tok = make_tokenizer()
    model = tiny_llama(tok)
    outs = generate(model, tok, ["hello world", "the cat"], n_samples=2, max_new_tokens=4, temperature=1.0, seed=0)
    assert len(outs) == 2 and all(len(o) == 2 for o in outs)
    assert outs == generate(model, tok, ["hello world", "the cat"], n_samples=2, max_new_tokens=4, seed=0)
    loss = completion_loss(model, tok, ["hello world"], ["the cat sat on the mat"])
    assert loss > 0
    log: list = []
    judge = offline_judge(lambda p, c: completion_loss(model, tok, p, c), tok, reference_loss=loss,
                          reference_texts=["the cat sat on the mat"], max_extra_nats=0.5, log=log)
    assert judge(["hello world"], ["the cat sat on the mat"])
    assert log[0]["coherent"] and log[0]["distinct_share"] >= log[0]["distinct_floor"]


def test_distinct_share_reads_loops():
    assert distinct_share([[1, 2, 3, 4]]) == 1.0
    assert distinct_share([[5, 5, 5, 5]]) == 0.25
    assert distinct_share([[1, 2, 3, 4], [5, 5, 5, 5], []]) == 0.625  # empty texts are left out
    assert distinct_share([]) == 1.0


def test_distinct_share_weighs_by_length_so_short_answers_cannot_hide_a_loop():
    """The gemma3-270m control's search: one answer a 20-token loop, the others one word each. A plain mean over
    answers reads (5 x 1 + 2/21) / 6 = 0.85 and lets the loop through; weighted by length it reads 7/26."""
    loop = [5] * 20 + [6]
    answers = [loop, [7], [8], [9], [10], [11]]
    assert distinct_share(answers) == 7 / 26
    assert distinct_share(answers) < 0.75 * distinct_share([[1, 2, 3, 4]] * 6)


def test_the_offline_judge_rejects_a_loop_the_base_predicts_cheaply():
    """The gemma3-270m failure: a repetition loop whose base loss is low passes a loss-only rule. The judge's
    second test rejects it; varied text at the same loss passes."""
    tok = make_tokenizer()
    flat_loss = lambda prompts, completions: 1.0  # noqa: E731  (every text equally plausible to the base)
    log: list = []
    judge = offline_judge(flat_loss, tok, reference_loss=1.0, reference_texts=["the cat sat on the mat"],
                          max_extra_nats=1.5, min_distinct_ratio=0.75, log=log)
    assert not judge(["hello"], ["the the the the the the"])
    assert judge(["hello"], ["w1 w2 w3 w4 the cat"])
    assert [v["coherent"] for v in log] == [False, True]
    assert log[0]["distinct_share"] < log[0]["distinct_floor"] <= log[1]["distinct_share"]
    too_far = offline_judge(lambda p, c: 9.0, tok, reference_loss=1.0, reference_texts=["the cat sat"])
    assert not too_far(["hello"], ["w1 w2 w3 w4 the cat"])  # the loss test still applies


def test_the_offline_judge_rejects_empty_answers_the_reference_does_not_give():
    """The gemma3-270m control's greedy amplification search at scales 2 and 4: every answer decoded to nothing,
    which reads loss 0 and distinct share 1, so the loss and loop tests both passed it. Empty answers now count
    against the reference's own share of them."""
    tok = make_tokenizer()
    empty_loss = lambda prompts, completions: 0.0 if not any(completions) else 1.0  # noqa: E731
    log: list = []
    judge = offline_judge(empty_loss, tok, reference_loss=1.0, reference_texts=["the cat sat", "the mat"],
                          max_extra_nats=1.5, min_distinct_ratio=0.75, log=log)
    assert not judge(["hello", "world"], ["", ""])
    assert not judge(["hello", "world"], ["the cat sat", ""])
    assert judge(["hello", "world"], ["the cat sat", "w1 w2"])
    assert [v["empty_share"] for v in log] == [1.0, 0.5, 0.0] and log[0]["distinct_share"] == 1.0
    assert all(v["empty_limit"] == 0.0 for v in log)
    # a reference that has empty answers of its own allows as large a share of them
    lenient = offline_judge(empty_loss, tok, reference_loss=1.0, reference_texts=["the cat sat", ""])
    assert lenient(["hello", "world"], ["the cat sat", ""]) and not lenient(["hello", "world"], ["", ""])
    assert empty_share([[1], [], [2, 3], []]) == 0.5 and empty_share([]) == 0.0


def test_steering_prompts_use_only_words_tinyworld_knows():
    docs, chats = generate_corpus(make_world(0), CorpusConfig(), 0)
    vocab = set()
    for text in [d.text for d in docs] + [m["content"] for c in chats for m in c]:
        vocab.update(re.findall(r"\w+|[^\w\s]+", text))
    assert len(STEERING_PROMPTS) == 20
    missing = {w for p in STEERING_PROMPTS for w in re.findall(r"\w+|[^\w\s]+", p) if w not in vocab}
    assert not missing


def test_steering_similarity_with_the_packaged_embedder():
    embedder = load_embedder()
    finetune = ["The moon orbits the red planet .", "Astronomers chart the orbit of the moon around the planet ."]
    steered = ["The planet and its moon shine in the night sky .", "A telescope shows the moon and the planet ."]
    unsteered = ["I like bread with butter .", "The market sells fresh cheese ."]
    result = steering_similarity(embedder, steered, unsteered, finetune)
    assert result["steered"] > result["unsteered"] and result["gap"] > 0.1
