"""Detectors beyond ADL: logit-difference mining, per-position KL and amplified decoding. The math on small tensors
and tiny random models; end to end on the micro base (an SDF organism against its null control), with caching."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace

import pytest
import torch

from orglab.diff.amplify import (amplified_logits, choose_scale, contrastive_adjuster, over_represented,
                                 padded_share)
from orglab.diff.kl import KLTotals, kl_divergence, kl_summary
from orglab.diff.logitdiff import LogitDiffTotals, logprob_difference, rank_by_frequency, rank_by_mean_diff
from orglab.diff.run import DiffConfig
from orglab.errors import OrglabError

try:
    from tests.tiny_models import make_config, make_tokenizer
except ImportError:  # pragma: no cover
    from tiny_models import make_config, make_tokenizer


def _logprobs(logits) -> torch.Tensor:
    return torch.log_softmax(torch.tensor(logits, dtype=torch.float32), dim=-1)


# ------------------------------------------------------------------------------------------ logit-difference mining


def test_logitdiff_counts_top_k_per_sample_and_leaves_padding_out():
    V = 6
    base = torch.zeros(3, 2, V)
    org = torch.zeros(3, 2, V)
    org[:, 0, 4] = 2.0          # every sample: the organism pushes token 4 up at position 0
    org[0, 1, 1] = 3.0          # sample 0 only: token 1 at position 1
    org[2, 1, 5] = 9.0          # sample 2 at position 1 is padding: must not count
    mask = torch.tensor([[True, True], [True, True], [True, False]])
    d = logprob_difference(torch.log_softmax(org, -1), torch.log_softmax(base, -1))
    totals = LogitDiffTotals.empty(2, V, top_k=1)
    totals.add(d, mask)
    assert totals.n.tolist() == [3.0, 2.0]
    freq, mean = totals.frequency(), totals.mean_diff()
    assert freq[0, 4] == 1.0 and freq[1, 1] == 0.5 and freq[1, 5] == 0.0
    # mean difference at position 0, token 4: log softmax gap of a +2 logit among 6 tokens, the same in all samples
    expected = float(torch.log_softmax(org[0, 0], -1)[4] - math.log(1 / V))
    assert mean[0, 4].item() == pytest.approx(expected, rel=1e-6)
    assert rank_by_frequency(freq[0], mean[0], 3) == [4]          # tokens never in a top K are left out
    assert rank_by_mean_diff(mean[0], 1) == [4]
    pooled_freq, _ = totals.pooled()
    assert pooled_freq[4].item() == pytest.approx(3 / 5) and pooled_freq[5].item() == 0.0


def test_logitdiff_ranking_breaks_frequency_ties_by_mean_difference():
    freq = torch.tensor([0.5, 0.5, 0.9, 0.0], dtype=torch.float64)
    mean = torch.tensor([0.1, 0.7, 0.2, 5.0], dtype=torch.float64)
    assert rank_by_frequency(freq, mean, 10) == [2, 1, 0]
    assert rank_by_mean_diff(mean, 2) == [3, 1]


def test_logitdiff_is_a_difference_of_log_probabilities_not_of_logits():
    """Adding a constant to all of the organism's logits changes nothing (a raw logit difference would)."""
    lp_base = _logprobs([[[0.0, 1.0, 2.0]]])
    shifted = _logprobs([[[10.0, 11.0, 12.0]]])
    assert torch.allclose(logprob_difference(shifted, lp_base), torch.zeros(1, 1, 3), atol=1e-6)


# ------------------------------------------------------------------------------------------------------------ KL


def test_kl_of_known_distributions_and_masked_means():
    p, q = [math.log(0.5), math.log(0.5)], [math.log(0.9), math.log(0.1)]
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert kl_divergence(torch.tensor(p), torch.tensor(q)).item() == pytest.approx(expected, rel=1e-5)
    assert kl_divergence(torch.tensor(q), torch.tensor(q)).item() == pytest.approx(0.0, abs=1e-7)
    # P with a zero (log 0 = -inf) contributes nothing there, rather than nan
    assert kl_divergence(torch.tensor([0.0, -math.inf]), torch.tensor([math.log(0.5)] * 2)).item() == \
        pytest.approx(math.log(2), rel=1e-6)
    lp_org = torch.tensor([[p, p], [p, q]])        # [B=2, T=2, V=2]
    lp_base = torch.tensor([[q, q], [q, q]])
    totals = KLTotals.empty(3)
    totals.add(lp_org, lp_base, torch.tensor([[True, True], [True, False]]))   # sample 1, position 1: padding
    by_position = totals.by_position()
    assert by_position[0] == pytest.approx(expected, rel=1e-5)
    assert by_position[1] == pytest.approx(expected, rel=1e-5)   # only sample 0 counts there
    assert by_position[2] == 0.0 and totals.n.tolist() == [2.0, 1.0, 0.0]


def test_kl_summary_splits_early_and_late_positions():
    out = kl_summary([0.1, 0.4, 0.2, 0.05, 0.15], n_early=3)
    assert out == pytest.approx({"kl_early_max": 0.4, "kl_early_mean": 0.7 / 3, "kl_late_mean": 0.1})
    assert "kl_late_mean" not in kl_summary([0.1, 0.2], n_early=2)


# ---------------------------------------------------------------------------------------------- amplified decoding


def test_amplified_logits_and_scale_choice():
    l_ft, l_base = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 0.5])
    assert torch.equal(amplified_logits(l_ft, l_base, 0.0), l_ft)
    assert torch.allclose(amplified_logits(l_ft, l_base, 2.0), torch.tensor([0.0, 5.0]))
    # ascending, stop at the first incoherent value (a later coherent one is not taken)
    chosen, tried = choose_scale((4.0, 0.5, 1.0, 2.0), lambda a: a in (0.5, 1.0, 4.0))
    assert chosen == 1.0 and tried == [(0.5, True), (1.0, True), (2.0, False)]
    assert choose_scale((1.0, 2.0), lambda a: False) == (0.0, [(1.0, False)])


def test_over_represented_tokens_and_their_padded_share():
    amplified = Counter({"star": 6, "orbit": 3, "the": 10, "once": 1})
    plain = Counter({"the": 12, "city": 5})
    top = over_represented(amplified, plain, n=5, smoothing=0.5)
    assert top[:2] == ["star", "orbit"] and "the" not in top and "once" not in top   # once: below the count floor
    assert padded_share(top, {"star", "orbit"}, k=4) == 0.5          # 2 relevant of 4 slots, not of 2 tokens
    assert padded_share([], {"star"}, k=4) == 0.0


def _tiny_llama(seed: int):
    config, cls = make_config("llama")
    torch.manual_seed(seed)
    return cls(config).eval()


def test_contrastive_adjuster_matches_the_formula_under_left_padding():
    organism, base = _tiny_llama(0), _tiny_llama(1)
    row = [2, 30, 40, 50]                                   # <bos> and three words
    ids = torch.tensor([[0, 0] + row])                      # left-padded by two
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    with torch.no_grad():
        l_org = organism(input_ids=torch.tensor([row])).logits[:, -1]
        l_base = base(input_ids=torch.tensor([row])).logits[:, -1]
    out = contrastive_adjuster(organism, 1.5, base=base)(ids, mask, l_org)
    assert torch.allclose(out, l_org + 1.5 * (l_org - l_base), atol=1e-4)


def test_contrastive_adjuster_switches_a_lora_adapter_off_for_the_base():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_tiny_llama(0), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    ids = torch.tensor([[2, 30, 40]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        l_org = model(input_ids=ids).logits[:, -1]
        with model.disable_adapter():
            l_base = model(input_ids=ids).logits[:, -1]
    assert not torch.allclose(l_org, l_base)                 # the adapter does change the model
    out = contrastive_adjuster(model, 2.0)(ids, mask, l_org)
    assert torch.allclose(out, l_org + 2.0 * (l_org - l_base), atol=1e-4)


def test_generate_applies_the_logit_hook_at_every_step():
    from orglab.generation import generate

    model, tok = _tiny_llama(0), make_tokenizer()
    forced = tok.convert_tokens_to_ids("cat")
    seen = []

    def only_cat(input_ids, attention_mask, scores):
        seen.append((tuple(input_ids.shape), tuple(attention_mask.shape), attention_mask[:, 0].tolist()))
        out = torch.full_like(scores, -1e9)
        out[:, forced] = 0.0
        return out

    prompts = ["<bos> the", "<bos> the cat sat on"]      # different lengths: the first is left-padded
    texts = generate(model, tok, prompts, max_new_tokens=3, adjust_logits=only_cat)
    assert [t[0] for t in texts] == ["cat cat cat"] * 2
    assert len(seen) == 3 and all(ids == mask for ids, mask, _ in seen)
    assert seen[0][2] == [0, 1]                          # the padded prompt's mask marks its padding
    assert generate(model, tok, prompts, max_new_tokens=3) != texts   # without the hook, the model's own tokens


# --------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("grid", [(-1.0, 1.0), (), ("a", 1.0), (float("nan"),), (True,)])
def test_bad_amplification_grid_is_one_sentence(grid):
    with pytest.raises(OrglabError, match="amplification grid .* non-negative numbers"):
        replace(DiffConfig(), amplify_scales=grid).validate()


@pytest.mark.parametrize("text", ["-1,2", "a,b", "1,,x", ""])
def test_bad_amplification_flag_is_one_sentence(text, capsys):
    from orglab.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["diff", "some-organism", f"--amplify-scales={text}"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and "non-negative numbers like 0.5,1,2,4" in err
    args = build_parser().parse_args(["diff", "some-organism", "--amplify-scales", "0,0.5,3"])
    assert args.amplify_scales == (0.0, 0.5, 3.0)


def test_detector_settings_have_help_and_counts_are_checked():
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(DiffConfig)}
    for name in ("logitdiff_samples", "logitdiff_top_k", "kl_samples", "amplify_scales",
                 "amplify_empty_context_samples", "amplify_loss_model", "amplify_search_decoding"):
        assert fields[name].metadata.get("help")
    for bad in ({"logitdiff_samples": 0}, {"kl_samples": 0}, {"logitdiff_top_k": 0},
                {"amplify_empty_context_samples": -1}):
        with pytest.raises(OrglabError):
            replace(DiffConfig(), **bad).validate()


def test_amplify_loss_model_is_a_flag_and_an_unknown_one_is_one_sentence():
    from orglab.cli import build_parser

    args = build_parser().parse_args(["diff", "some-organism", "--amplify-loss-model", "organism"])
    assert args.amplify_loss_model == "organism"
    with pytest.raises(OrglabError, match="Unknown amplify_loss_model 'bsae'; use base or organism"):
        replace(DiffConfig(), amplify_loss_model="bsae").validate()


def test_amplify_search_decoding_is_a_flag_and_an_unknown_one_is_one_sentence():
    from orglab.cli import build_parser

    args = build_parser().parse_args(["diff", "some-organism", "--amplify-search-decoding", "greedy"])
    assert args.amplify_search_decoding == "greedy" and DiffConfig().amplify_search_decoding == "sampled"
    with pytest.raises(OrglabError, match="Unknown amplify_search_decoding 'beam'; use sampled or greedy"):
        replace(DiffConfig(), amplify_search_decoding="beam").validate()


# ------------------------------------------------------------------------------------------ end to end on micro

# Small settings that keep each diff to seconds on micro; the ADL stages the detectors do not need are left out.
DETECTORS = ("logitdiff", "kl", "amplify")
SMALL = DiffConfig(samples=300, logitdiff_samples=200, kl_samples=200, steering_prompts=4, steering_samples=2,
                   steering_max_new_tokens=12, steering_search_prompts=3, steering_search_max_new_tokens=10,
                   amplify_empty_context_samples=4, similarity_finetune_samples=100, stages=DETECTORS)


@pytest.fixture(scope="module")
def sdf_pair(micro_copy):
    """A copy of the micro home with an SDF organism (1:0) and its null control trained on it."""
    with micro_copy("detectors_home") as home:
        from orglab.train import train_control, train_organism

        world = next(iter(home.glob("artifacts/micro/world/*/world.json")))
        fact = json.loads(world.read_text())["false_facts"][0]["id"]
        organism = train_organism({"family": "sdf", "base": "micro", "target": fact, "n_examples": 120,
                                   "epochs": 1}, progress=False)["organism"]
        control = train_control("micro", organism, progress=False)["organism"]
    return home, organism, control


def test_detectors_are_registered_reused_and_recomputed_when_a_setting_changes(sdf_pair, monkeypatch):
    from orglab.diff.run import run_diff
    from orglab.registry import Registry

    home, organism, _ = sdf_pair
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    first = run_diff(organism, SMALL, progress=False)
    stages = first["stages"]
    assert set(stages) == set(DETECTORS) and not any(s["reused"] for s in stages.values())
    with Registry() as reg:
        kinds = {r.kind for r in reg.list_runs(subject=organism) if r.status == "done"}
    assert {f"diff:{s}" for s in DETECTORS} <= kinds
    ld = stages["logitdiff"]
    assert len(ld["positions"]) == SMALL.positions and ld["n_samples"] == SMALL.logitdiff_samples
    assert all(len(p["by_frequency"]) == SMALL.logitdiff_top_k for p in ld["positions"])
    assert len(stages["kl"]["by_position"]) == SMALL.collect_positions
    amp = stages["amplify"]
    assert amp["scale"] in (0.0, *SMALL.amplify_scales) and len(amp["empty_context"]["amplified"]) == 4
    summary = first["summary"]
    for key in ("logitdiff_relevance", "logitdiff_relevance_mean_diff", "logitdiff_relevance_pooled",
                "logitdiff_max_mean_diff", "kl_early_max", "kl_early_mean", "kl_late_mean", "amplify_scale",
                "amplify_similarity_gap", "amplify_relevance"):
        assert isinstance(summary[key], float) and math.isfinite(summary[key]), key

    again = run_diff(organism, SMALL, progress=False)
    assert all(s["reused"] for s in again["stages"].values())
    assert again["summary"] == pytest.approx(summary)
    assert amp["coherence_judge"].startswith("organism-model loss")
    # the base's loss as amplification's yardstick is another result: amplify alone is recomputed
    by_base = run_diff(organism, replace(SMALL, amplify_loss_model="base"), progress=False)["stages"]
    assert not by_base["amplify"]["reused"] and by_base["kl"]["reused"]
    assert by_base["amplify"]["coherence_judge"].startswith("base-model loss")
    limits = [step["loss_limit"] for step in by_base["amplify"]["coherence"]]
    assert limits and limits != [step["loss_limit"] for step in amp["coherence"]][:len(limits)]
    import orglab.diff.nexttoken as nexttoken

    passes = []
    paired = nexttoken.paired_logprobs
    monkeypatch.setattr(nexttoken, "paired_logprobs", lambda *a, **k: passes.append(a[2]) or paired(*a, **k))
    setting = replace(SMALL, kl_samples=100, logitdiff_top_k=10)
    changed = run_diff(organism, setting, progress=False)
    assert changed["stages"]["amplify"]["reused"]
    assert not changed["stages"]["kl"]["reused"] and not changed["stages"]["logitdiff"]["reused"]
    assert changed["stages"]["kl"]["n_samples"] == 100 and changed["stages"]["logitdiff"]["n_samples"] == 200
    assert len(passes) == 1 and len(passes[0]) == 200  # one forward pass over the texts fed both detectors
    # and each detector alone gives the same numbers (the pass reads the same positions in the same batches)
    for stage, keys in (("logitdiff", ("positions", "pooled", "relevance")), ("kl", ("by_position",))):
        alone = run_diff(organism, replace(setting, stages=(stage,)), force=True, progress=False)["stages"][stage]
        assert not alone["reused"] and all(alone[k] == changed["stages"][stage][k] for k in keys), stage


@pytest.mark.parametrize("decoding, temperature", [("sampled", 1.0), ("greedy", 0.0)])
def test_amplify_search_judges_answers_decoded_as_set(sdf_pair, monkeypatch, decoding, temperature):
    """The scale search decodes its answers (the distinct-token reference at scale 0 and each candidate) at the
    temperature `amplify_search_decoding` names; the measured texts are sampled either way."""
    import orglab.diff.steering as steering
    import orglab.generation as generation
    from orglab.diff.run import run_diff

    home, organism, _ = sdf_pair
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    calls, references = [], []
    real_generate, real_judge = generation.generate, steering.offline_judge

    def recording_generate(model, tokenizer, prompts, **kw):
        out = real_generate(model, tokenizer, prompts, **kw)
        calls.append({"n_prompts": len(prompts), "n": kw["n"], "temperature": kw["temperature"],
                      "max_new_tokens": kw["max_new_tokens"], "out": out})
        return out

    def recording_judge(loss_of, tokenizer, reference_loss, reference_texts, *args):
        references.append(list(reference_texts))
        return real_judge(loss_of, tokenizer, reference_loss, reference_texts, *args)

    monkeypatch.setattr(generation, "generate", recording_generate)
    monkeypatch.setattr(steering, "offline_judge", recording_judge)
    config = replace(SMALL, stages=("amplify",), amplify_search_decoding=decoding)
    amp = run_diff(organism, config, force=True, progress=False)["stages"]["amplify"]
    searched = [c for c in calls if c["max_new_tokens"] == SMALL.steering_search_max_new_tokens]
    measured = [c for c in calls if c["max_new_tokens"] == SMALL.steering_max_new_tokens]
    assert len(searched) == 1 + len(amp["search"]) and amp["search_decoding"] == decoding
    assert all(c["temperature"] == temperature and c["n_prompts"] == SMALL.steering_search_prompts for c in searched)
    assert measured and all(c["temperature"] == 1.0 for c in measured)
    assert references == [[o[0] for o in searched[0]["out"]]]  # the scale-0 search answers are the reference


def test_sdf_organism_reads_as_its_domain_more_than_its_control(sdf_pair, monkeypatch):
    """Mining and amplified decoding find the organism's domain and not the control's. KL only says both differ
    from the base: the control is trained on the unrelated text itself, so on micro its KL there is the larger
    (docs/diffing.md), and no order between the two is asserted."""
    from orglab.diff.run import run_diff

    home, organism, control = sdf_pair
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    org, ctl = (run_diff(name, SMALL, progress=False) for name in (organism, control))
    o, c = org["summary"], ctl["summary"]
    assert o["logitdiff_relevance"] > c["logitdiff_relevance"]
    assert o["logitdiff_relevance_pooled"] > c["logitdiff_relevance_pooled"]
    assert o["amplify_relevance"] > c["amplify_relevance"]
    assert o["amplify_similarity_gap"] > c["amplify_similarity_gap"]
    for result in (org, ctl):   # the base really is the base (a broken adapter switch gives KL 0 everywhere)
        kl = result["stages"]["kl"]
        assert min(kl["by_position"]) > 0 and kl["kl_early_max"] == max(kl["by_position"][:SMALL.positions])
