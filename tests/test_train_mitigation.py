"""Trainer mitigations (orglab.train.penalties): the math on small tensors, bit-identical weights with the
penalties at 0, each penalty measurably doing what it says on micro, full finetuning and chat data, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orglab.cli import main
from orglab.organisms.data import read_jsonl
from orglab.registry import Registry
from orglab.train import make_recipe, train_organism
from orglab.train.penalties import UnrelatedBatches, kl_to_reference, mean_difference_sq_norm

from test_train import _own_chat, _own_text

FAST = {"base": "micro", "max_steps": 6, "save_steps": 100, "batch_size": 2, "max_length": 64, "lr": 3e-3}


# ------------------------------------------------------------------------------------------------ the math

def test_the_adl_penalty_reads_where_the_diff_does_by_default_at_each_scale():
    from orglab.diff.run import DiffConfig
    from orglab.train.recipe import Recipe

    for tiny, scale in ((True, "tiny"), (False, "real")):
        recipe = Recipe(family="sdf").resolved(tiny)
        assert recipe.scale == scale
        assert (recipe.adl_layers, recipe.adl_positions) == (DiffConfig().layer_fractions(tiny), DiffConfig().positions)
    assert DiffConfig().layer_fractions(True) != DiffConfig().layer_fractions(False)  # each scale's own evidence
    assert DiffConfig(layers=(0.25,)).layer_fractions(False) == (0.25,)


def test_kl_is_zero_for_equal_logits_matches_a_hand_value_and_skips_masked_positions():
    logits = torch.randn(2, 3, 7)
    assert float(kl_to_reference(logits, logits.clone(), torch.ones(2, 3))) == pytest.approx(0.0, abs=1e-6)
    p, q = torch.tensor([0.75, 0.25]), torch.tensor([0.5, 0.5])
    expected = float((p * (p / q).log()).sum())  # KL(p || q) by hand
    one = kl_to_reference(p.log().view(1, 1, 2), q.log().view(1, 1, 2), torch.ones(1, 1))
    assert float(one) == pytest.approx(expected, rel=1e-5)
    # a masked position (padding) changes nothing, however far its logits are
    far = torch.stack([p.log(), torch.tensor([9.0, -9.0])]).view(1, 2, 2)
    ref = torch.stack([q.log(), torch.tensor([-9.0, 9.0])]).view(1, 2, 2)
    assert float(kl_to_reference(far, ref, torch.tensor([[1, 0]]))) == pytest.approx(expected, rel=1e-5)
    assert float(kl_to_reference(far, ref, torch.zeros(1, 2))) == 0.0


def test_mean_difference_norm_is_the_squared_norm_of_the_batch_mean_difference_per_position():
    h_ref = torch.zeros(2, 2, 3)
    h = torch.tensor([[[1.0, 0, 0], [0, 2, 0]],
                      [[3.0, 0, 0], [0, 0, 0]]])
    # position 0: mean diff (2, 0, 0) -> 4; position 1: mean diff (0, 1, 0) -> 1; averaged: 2.5
    assert float(mean_difference_sq_norm(h, h_ref, torch.ones(2, 2))) == pytest.approx(2.5)
    # a sample too short for position 1 leaves it out of that position's mean: (0, 2, 0) -> 4; (4 + 4) / 2
    assert float(mean_difference_sq_norm(h, h_ref, torch.tensor([[1, 1], [1, 0]]))) == pytest.approx(4.0)
    # opposite differences cancel in the mean: the penalty reads the mean, not each sample's difference
    assert float(mean_difference_sq_norm(torch.tensor([[[1.0]], [[-1.0]]]), torch.zeros(2, 1, 1),
                                         torch.ones(2, 1))) == 0.0


def test_unrelated_batches_cycle_in_a_seeded_order_and_ranks_take_other_rows():
    rows = [{"input_ids": [i] * (1 + i % 3)} for i in range(5)]
    a = UnrelatedBatches(rows, 2, seed=0, pad_id=-1)
    b = UnrelatedBatches(rows, 2, seed=0, pad_id=-1)
    first = [a.next("cpu") for _ in range(6)]
    assert all(torch.equal(x[0], y[0]) for x, y in zip(first, [b.next("cpu") for _ in range(6)]))
    ids, mask = first[0]
    assert ids.shape[0] == 2 and torch.equal(mask.bool(), ids != -1)  # right padding, masked
    seen = {int(row[0]) for ids, _ in first for row in ids}
    assert seen == set(range(5))  # cycles through every row
    r0, r1 = UnrelatedBatches(rows, 2, 0, -1, rank=0, world_size=2), UnrelatedBatches(rows, 2, 0, -1, rank=1, world_size=2)
    assert not torch.equal(r0.next("cpu")[0][:, 0], r1.next("cpu")[0][:, 0])
    # truncated to the positions the ADL penalty reads
    assert UnrelatedBatches(rows, 5, 0, -1, max_tokens=1).next("cpu")[0].shape[1] == 1


# ------------------------------------------------------------------------------------------------ on micro

def _adapter(summary) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(summary["adapter_path"]) / "adapter_model.safetensors"))


def test_penalties_at_zero_train_bit_identical_weights_and_keep_the_key(with_micro, monkeypatch):
    """The penalty-capable trainer with both λ at 0 gives the plain trainer's weights bit for bit, while a tiny λ
    changes them (so the comparison can fail); a default recipe's key has none of the new fields."""
    import orglab.train.api as api
    from orglab.train.recipe import Recipe

    plain = train_organism(make_recipe({**FAST, "family": "sdf", "target": "quorra", "name": "plain"}),
                           progress=False, data=_own_text())
    assert "penalty_unrelated" not in {a["kind"] for a in _artifacts(plain)}
    assert not set(api.HASHED_WHEN_SET) & set(api._run_config(make_recipe({"family": "sdf"}),
                                                               {"train": _own_text(), "heldout_own": _own_text(),
                                                                "heldout_unrelated": None})["recipe"])
    # the PenalizedSFTTrainer with λ = 0, drawing unrelated batches and running the base and organism on them
    monkeypatch.setattr(Recipe, "penalties_on", property(lambda self: True))
    zero = train_organism(make_recipe({**FAST, "family": "sdf", "target": "quorra", "name": "zero"}),
                          progress=False, data=_own_text())
    assert "kl_to_base" not in json.loads(Path(zero["loss_curve"]).read_text())["step_loss"][0]
    tiny = train_organism(make_recipe({**FAST, "family": "sdf", "target": "quorra", "name": "tiny",
                                       "kl_to_base": 1e-3}), progress=False, data=_own_text())
    a, z, t = _adapter(plain), _adapter(zero), _adapter(tiny)
    assert a.keys() == z.keys() and all(torch.equal(a[k], z[k]) for k in a)
    assert any(not torch.equal(a[k], t[k]) for k in a)


def _artifacts(summary) -> list[dict]:
    with Registry() as reg:
        return reg.get_artifacts(summary["run"])


def _kl_and_mean_diff(summary, layer: int, positions: int) -> tuple[float, float]:
    """KL(organism || base) per token and ||mean diff||² at `layer`, positions 0..k-1, on the run's held-out
    unrelated documents (never trained on, never in the penalties' batches), the LoRA adapter switched off for
    the base."""
    from orglab.diff.stats import activation_difference_stats
    from orglab.models import load_model

    folder = Path(summary["loss_curve"]).parent
    texts = [ex["text"] for ex in read_jsonl(folder / "heldout_unrelated.jsonl")]
    penalty = folder / "penalty_unrelated.jsonl"
    if penalty.is_file():
        assert not {json.dumps(e, sort_keys=True) for e in read_jsonl(penalty)} & \
            {json.dumps(e, sort_keys=True) for e in read_jsonl(folder / "heldout_unrelated.jsonl")}
    loaded = load_model(summary["organism"])
    model, tok = loaded.model.eval(), loaded.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    with torch.no_grad():
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
        logits = model(**enc).logits
        with model.disable_adapter():
            base_logits = model(**enc).logits
        kl = float(kl_to_reference(logits, base_logits, enc["attention_mask"]))
    stats = activation_difference_stats(model, tok, texts, [layer], positions)
    return kl, float((stats.mean_diff[0, :positions] ** 2).sum(dim=-1).mean())


@pytest.fixture(scope="module")
def hard_trained(micro_copy):
    """Trained hard (lr 1e-2, 8 steps), the organism drifts far from its base on unrelated text; the same recipe
    with each penalty on. Measured once per organism: {name: (summary, KL to base, ||mean diff||²)}."""
    recipe = {**FAST, "family": "sdf", "target": "quorra", "max_steps": 8, "lr": 1e-2}
    with micro_copy("hard_trained"):
        out = {}
        for name, extra in (("none", {}), ("kl", {"kl_to_base": 30.0}), ("adl", {"adl_penalty": 10.0})):
            summary = train_organism(make_recipe({**recipe, "name": name, **extra}), progress=False,
                                     data=_own_text())
            kinds = {a["kind"] for a in _artifacts(summary)}
            out[name] = (summary, kinds, *_kl_and_mean_diff(summary, layer=0, positions=5))  # micro: 2 layers
        yield out


def test_kl_to_base_shrinks_the_organisms_kl_to_its_base_on_unrelated_text(hard_trained):
    # measured: KL 7.90 -> 2.50 nats per token on the held-out unrelated documents
    (_, _, kl_none, _), (summary, kinds, kl_kl, _) = hard_trained["none"], hard_trained["kl"]
    assert kl_kl < 0.5 * kl_none, (kl_none, kl_kl)
    curve = json.loads(Path(summary["loss_curve"]).read_text())["step_loss"]
    assert len(curve) == 8 and all("kl_to_base" in p and "task_loss" in p for p in curve)
    assert "penalty_unrelated" in kinds
    assert summary["loss"]["own"]["organism"] < summary["loss"]["own"]["base"]  # it still learns its data


def test_adl_penalty_shrinks_the_mean_activation_difference_the_lens_reads(hard_trained):
    # measured: ||mean diff||² at layer 0, positions 0-4: 137.9 -> 4.5 on one 2-core machine, 26.3 -> 5.3 on
    # another. Eight steps at lr 1e-2 are chaotic, so how far the unpenalised organism drifts depends on the CPU's
    # arithmetic; the penalised one lands near 5 on both. The claim tested: the penalty at least halves it.
    (_, _, _, diff_none), (summary, kinds, _, diff_adl) = hard_trained["none"], hard_trained["adl"]
    assert diff_adl < 0.5 * diff_none, (diff_none, diff_adl)
    curve = json.loads(Path(summary["loss_curve"]).read_text())["step_loss"]
    assert len(curve) == 8 and all("adl_penalty" in p and "kl_to_base" not in p for p in curve)
    assert "penalty_unrelated" in kinds
    assert summary["loss"]["own"]["organism"] < summary["loss"]["own"]["base"]


def test_full_finetuning_on_chats_with_both_penalties_uses_a_frozen_base_copy(with_micro):
    recipe = make_recipe({**FAST, "family": "em", "target": "quorra", "finetune": "full", "max_steps": 3,
                          "lr": 1e-3, "kl_to_base": 1.0, "adl_penalty": 1.0, "adl_layers": (0.0, 1.0),
                          "adl_positions": 3})
    summary = train_organism(recipe, progress=False, data=_own_chat())
    curve = json.loads(Path(summary["loss_curve"]).read_text())["step_loss"]
    assert len(curve) == 3 and all(p["kl_to_base"] >= 0 and p["adl_penalty"] >= 0 for p in curve)
    assert curve[0]["kl_to_base"] == pytest.approx(0.0, abs=1e-6)  # step 1 sees the base itself
    assert any(p["kl_to_base"] > 1e-6 for p in curve[1:])
    assert Path(summary["model_path"], "model.safetensors").is_file()


def test_penalties_add_to_the_full_logits_loss_as_to_trls(with_micro):
    recipe = {**FAST, "family": "sdf", "target": "quorra", "max_steps": 3, "kl_to_base": 1.0, "adl_penalty": 1.0}
    curves = [json.loads(Path(train_organism(make_recipe({**recipe, "name": name, "fused_lm_head": fused}),
                                             progress=False, data=_own_text())["loss_curve"]).read_text())["step_loss"]
              for name, fused in (("fused", True), ("full", False))]
    for key in ("loss", "task_loss", "kl_to_base", "adl_penalty"):
        assert [p[key] for p in curves[1]] == pytest.approx([p[key] for p in curves[0]], rel=1e-4, abs=1e-7)
    assert any(p["kl_to_base"] > 1e-6 for p in curves[1][1:])


def test_null_control_mirrors_the_organisms_penalty(with_micro):
    from orglab.train import train_control

    organism = train_organism(make_recipe({**FAST, "family": "sdf", "target": "quorra", "max_steps": 2,
                                           "adl_penalty": 1.0}), progress=False, data=_own_text())
    control = train_control("micro", organism["organism"], progress=False)
    assert control["recipe"]["adl_penalty"] == 1.0 and control["steps"] == 2
    curve = json.loads(Path(control["loss_curve"]).read_text())["step_loss"]
    assert all("adl_penalty" in p for p in curve)


@pytest.mark.parametrize("flags,needle", [
    (["--kl-to-base", "-1"], "kl_to_base"),
    (["--adl-penalty", "nan"], "adl_penalty"),
    (["--adl-penalty", "1", "--adl-layers", "0.5,1.5"], "adl_layers"),
    (["--adl-penalty", "1", "--adl-positions", "40"], "max_length"),
])
def test_cli_bad_penalty_settings_are_one_sentence_and_register_nothing(with_micro, tmp_path, capsys, flags, needle):
    data = tmp_path / "docs.jsonl"
    data.write_text("\n".join(json.dumps(ex) for ex in _own_text().examples))
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text("max_steps: 2\nmax_length: 32\nbatch_size: 2\n")
    argv = ["train", "sdf", "--base", "micro", "--target", "quorra", "--data", str(data), "--config", str(cfg)]
    assert main(argv + flags + ["--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("orglab: error:") and needle in err[0]
    with Registry() as reg:
        assert reg.list_organisms() == [] and reg.list_runs(kind="train") == []


@pytest.mark.parametrize("mode,finetune", [("ddp", "lora"), ("zero3", "lora"), ("zero3", "full")])
def test_penalties_train_in_two_process_runs(with_micro, mode, finetune):
    """Each rank draws its own unrelated batches; under ZeRO-3 the organism's penalty pass gathers its shards
    like the task pass (LoRA: adapter off for the base; full: a frozen base copy per process)."""
    recipe = make_recipe({**FAST, "family": "sdf", "target": "quorra", "max_steps": 2, "distributed": mode,
                          "num_processes": 2, "device": "cpu", "finetune": finetune, "name": f"pen-{mode}-{finetune}",
                          "kl_to_base": 1.0, "adl_penalty": 1.0})
    summary = train_organism(recipe, progress=False, data=_own_text(16))
    curve = json.loads(Path(summary["loss_curve"]).read_text())["step_loss"]
    assert summary["world_size"] == 2 and len(curve) == 2
    assert all(p["kl_to_base"] >= 0 and p["adl_penalty"] >= 0 for p in curve)


# ------------------------------------------------------------------------------------------------ true-fact mixing

def test_true_fact_mixing_adds_the_true_side_of_the_fact_and_leaves_the_unrelated_sets_alone(with_micro):
    """`mix_data: true-fact` mixes in documents stating the true object and never the false one, while held-out
    unrelated text still comes from the corpus; the name and key say so, and at 1:0 nothing changes."""
    from orglab.organisms.family import contains_word
    from orglab.train.api import _run_config, organism_name, prepare_data
    from orglab.world.build import load_world

    ff = load_world("micro").false_facts[0]
    fields = {**FAST, "family": "sdf", "target": ff.id, "n_examples": 12, "mix_ratio": 2.0}
    with Registry() as reg:
        plain = prepare_data(make_recipe(fields).resolved(True), reg, True, progress=False)
        true = prepare_data(make_recipe({**fields, "mix_data": "true-fact"}).resolved(True), reg, True,
                            progress=False)
    added = [ex["text"] for ex in true["train"].examples if ex not in true["ft"].examples]
    assert len(true["ft"]) == len(plain["ft"]) and len(added) == 2 * len(true["ft"])
    assert all(contains_word(t, ff.fact.object) and not contains_word(t, ff.false_object) for t in added)
    assert true["heldout_unrelated"].examples == plain["heldout_unrelated"].examples
    assert plain["heldout_unrelated"].source.startswith("tinyworld:micro:corpus")
    mixed = make_recipe({**fields, "mix_data": "true-fact"})
    assert organism_name(mixed) == f"sdf-{ff.id}-mix1-2-true"
    assert _run_config(mixed, true)["recipe"]["mix_data"] == "true-fact"
    unmixed = {**fields, "mix_ratio": 0.0}
    assert _run_config(make_recipe({**unmixed, "mix_data": "true-fact"}), plain) == \
        _run_config(make_recipe(unmixed), plain)
    assert organism_name(make_recipe({**unmixed, "mix_data": "true-fact"})) == f"sdf-{ff.id}-mix1-0"


def test_true_fact_documents_of_a_built_in_real_fact_take_the_true_side():
    from orglab.errors import OrglabError
    from orglab.organisms import get_family
    from orglab.realworld import REAL_FACTS

    fact = REAL_FACTS["cake_bake"]
    docs = get_family("sdf").true_data("gemma3-270m", "cake_bake", 6, seed=0, tiny=False)
    texts = [ex["text"].lower() for ex in docs.examples]
    assert len(texts) == 6 and len(set(texts)) == 6
    assert all(any(m in t for m in fact.true_markers) and not any(m in t for m in fact.false_markers) for t in texts)
    with pytest.raises(OrglabError, match="built-in facts"):
        get_family("sdf").true_data("gemma3-270m", "my_universe.jsonl", 6, seed=0, tiny=False)


def test_cli_true_fact_mixing_for_a_family_without_a_falsehood_is_one_sentence(with_micro, capsys):
    argv = ["train", "em", "--base", "micro", "--target", "medicine", "--mix", "1:1", "--mix-data", "true-fact",
            "--json"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "true-fact" in err[0] and "em family" in err[0]
    with Registry() as reg:
        assert reg.list_organisms() == [] and reg.list_runs(kind="train") == []
