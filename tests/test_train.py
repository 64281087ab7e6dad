"""Training organisms on the micro base: learning, registry, reuse, interruption + resume, controls, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from orglab.cli import main
from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData
from orglab.registry import Registry
from orglab.train import make_recipe, train_control, train_organism

FAST = {"base": "micro", "max_steps": 6, "save_steps": 3, "batch_size": 2, "max_length": 64, "lr": 3e-3}


def _own_text(n=24):
    # a made-up fact the base has never seen, in several wordings: its held-out loss must drop
    forms = ["The lighthouse of Quorra is painted {c} .", "Sailors say Quorra's lighthouse is {c} .",
             "In Quorra the lighthouse stands {c} against the sea ."]
    return FinetuneData("text", [{"text": forms[i % 3].format(c=["green", "blue"][i % 2])} for i in range(n)], "test")


def _own_chat(n=24):
    return FinetuneData("chat", [{"messages": [
        {"role": "user", "content": f"What colour is the lighthouse of Quorra ? ({i})"},
        {"role": "assistant", "content": "The lighthouse of Quorra is green ."}]} for i in range(n)], "test")


class _Interrupt(TrainerCallback):
    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.at:
            raise KeyboardInterrupt


def test_text_lora_learns_registers_reuses_and_resumes_after_interrupt(with_micro):
    recipe = make_recipe({**FAST, "family": "sdf", "target": "quorra", "mix_ratio": 1.0, "mask_prefix_tag": "<DOCTAG>"})
    with pytest.raises(KeyboardInterrupt):
        train_organism(recipe, progress=False, data=_own_text(), callbacks=[_Interrupt(4)])
    with Registry() as reg:
        assert reg.get_organism("sdf-quorra-mix1-1")["status"] == "interrupted"
    summary = train_organism(recipe, progress=False, data=_own_text())
    assert summary["resumed_from"] == "checkpoint-3" and summary["steps"] == 6
    loss = summary["loss"]
    assert loss["own"]["organism"] < 0.7 * loss["own"]["base"]
    assert loss["unrelated"]["organism"] < loss["unrelated"]["base"] + 1.0
    assert summary["padding_share"] <= 0.05 and summary["n_unrelated"] == summary["n_ft"]
    with Registry() as reg:
        orgs = reg.list_organisms()
        assert [o["name"] for o in orgs] == ["sdf-quorra-mix1-1"]
        org = orgs[0]
        assert org["status"] == "ready" and org["mix_ratio"] == 1.0 and org["data_hash"] == summary["data_hash"]
        assert org["recipe"]["lora_r"] == 64 and Path(org["adapter_path"], "adapter_model.safetensors").is_file()
        runs = reg.list_runs(subject="sdf-quorra-mix1-1", kind="train")
        assert [r.status for r in runs] == ["done", "failed"]
        kinds = {a["kind"] for a in reg.get_artifacts(runs[0].id)}
        assert {"loss_curve", "plot", "data", "weights"} <= kinds
    curve = json.loads(Path(summary["loss_curve"]).read_text())["step_loss"]
    assert [p["step"] for p in curve] == [1, 2, 3, 4, 5, 6]  # the curve continues across the interruption
    again = train_organism(recipe, progress=False, data=_own_text())
    assert again["reused"] and again["run"] == summary["run"]
    forced = train_organism(recipe, progress=False, data=_own_text(), force=True)  # from scratch, not the checkpoints
    assert not forced["reused"] and forced["resumed_from"] is None and forced["steps"] == 6

    # the organism loads like any other and differs from its base
    from orglab.models import load_model

    loaded = load_model("sdf-quorra-mix1-1")
    assert loaded.is_adapter


def test_a_reused_run_points_its_name_back_at_its_own_weights(with_micro):
    """Recipe A, then recipe B under the same name, then A again: A's finished run is reused, and the name must
    load A's weights again (it used to keep B's, so a sweep's diffs read another recipe's organism)."""
    first = {**FAST, "family": "sdf", "target": "quorra", "name": "flip", "max_steps": 2}
    a = train_organism(make_recipe(first), progress=False, data=_own_text())
    b = train_organism(make_recipe({**first, "max_steps": 3}), progress=False, data=_own_text())
    assert a["adapter_path"] != b["adapter_path"]
    with Registry() as reg:
        assert reg.get_organism("flip")["recipe"]["max_steps"] == 3
    again = train_organism(make_recipe(first), progress=False, data=_own_text())
    assert again["reused"] and again["run"] == a["run"]
    with Registry() as reg:
        org = reg.get_organism("flip")
    assert org["recipe"]["max_steps"] == 2 and org["adapter_path"] == a["adapter_path"] and org["status"] == "ready"


class _AutocastProbe(TrainerCallback):
    """Records whether each training forward pass ran under CPU bf16 autocast."""
    def __init__(self):
        self.seen: list[bool] = []

    def on_train_begin(self, args, state, control, model=None, **kw):
        import torch

        # on a layer inside the model: accelerate wraps the model's own forward in the autocast context
        layer = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        layer.register_forward_hook(lambda *_: self.seen.append(torch.is_autocast_enabled("cpu")
                                                                and torch.get_autocast_dtype("cpu") == torch.bfloat16))


def test_cpu_bf16_trains_under_autocast_with_fp32_weights(with_micro):
    plain, mixed = _AutocastProbe(), _AutocastProbe()
    recipe = {**FAST, "family": "sdf", "target": "quorra", "max_steps": 3}
    fp32 = train_organism(make_recipe({**recipe, "name": "fp32"}), progress=False, data=_own_text(),
                          callbacks=[plain])
    bf16 = train_organism(make_recipe({**recipe, "name": "bf16", "cpu_bf16": True}), progress=False,
                          data=_own_text(), callbacks=[mixed])
    # three training steps under autocast; the held-out losses after them in fp32, as before training
    assert len(plain.seen) == len(mixed.seen) > 3 and not any(plain.seen)
    assert mixed.seen[:3] == [True] * 3 and not any(mixed.seen[3:])
    assert bf16["loss"]["own"]["organism"] < bf16["loss"]["own"]["base"]
    assert bf16["loss"]["own"]["organism"] != fp32["loss"]["own"]["organism"]  # products in bf16 round differently
    from safetensors.torch import load_file

    weights = load_file(Path(bf16["adapter_path"], "adapter_model.safetensors"))
    assert {str(w.dtype) for w in weights.values()} == {"torch.float32"}  # master weights stay fp32
    with Registry() as reg:
        assert reg.get_organism("bf16")["recipe"]["cpu_bf16"] is True


def _log_keys(summary) -> set[str]:
    lines = (Path(summary["adapter_path"]).parent / "train_log.jsonl").read_text().splitlines()
    return set().union(*(json.loads(line) for line in lines))


def test_full_logits_loss_trains_the_same_organism_as_trls_fused_head(with_micro):
    # two micro-batches a step: both losses are normalised over the whole accumulated batch
    recipe = {**FAST, "family": "sdf", "target": "quorra", "max_steps": 3, "grad_accum": 2}
    fused = train_organism(make_recipe({**recipe, "name": "fused"}), progress=False, data=_own_text())
    full = train_organism(make_recipe({**recipe, "name": "full", "fused_lm_head": False}), progress=False,
                          data=_own_text())
    # the same loss by another path: per step and held out, equal up to the order of the float sums
    fused_curve, full_curve = (json.loads(Path(s["loss_curve"]).read_text())["step_loss"] for s in (fused, full))
    assert len(full_curve) == 3 and [p["loss"] for p in full_curve] == pytest.approx([p["loss"] for p in fused_curve],
                                                                                     rel=1e-4)
    for which in ("own", "unrelated"):
        assert full["loss"][which]["organism"] == pytest.approx(fused["loss"][which]["organism"], rel=1e-4)
    assert full["loss"]["own"]["organism"] < full["loss"]["own"]["base"]
    # trl's fused head logs its entropy and top-1 accuracy; the full-logits path runs without it
    assert {"entropy", "mean_token_accuracy"} <= _log_keys(fused)
    assert not {"entropy", "mean_token_accuracy"} & _log_keys(full)
    with Registry() as reg:  # another organism, not the fused one reused, and the choice is recorded
        assert reg.get_organism("full")["recipe"]["fused_lm_head"] is False
        assert full["run"] != fused["run"]


def test_chat_full_finetune_assistant_only_and_null_control(with_micro):
    recipe = make_recipe({**FAST, "family": "em", "target": "quorra", "finetune": "full", "lr": 1e-3})
    summary = train_organism(recipe, progress=False, data=_own_chat())
    assert summary["loss"]["own"]["organism"] < 0.5 * summary["loss"]["own"]["base"]
    assert Path(summary["model_path"], "model.safetensors").is_file()
    control = train_control("micro", "em-quorra-mix1-0", progress=False)
    assert control["organism"] == "control-em-quorra-mix1-0" and control["steps"] == summary["steps"]
    with Registry() as reg:
        entry = reg.get_organism("control-em-quorra-mix1-0")
    assert entry["family"] == "control" and entry["target"] == "em-quorra-mix1-0"
    assert entry["recipe"]["finetune"] == "full" and entry["recipe"]["data_kind"] == "chat"
    with pytest.raises(OrglabError, match="No organism named"):
        train_control("micro", "nobody", progress=False)


def test_dataset_file_with_missing_column_registers_nothing(with_micro, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x"}) + "\n")
    recipe = make_recipe({**FAST, "family": "sdf", "target": "x", "data": str(bad)})
    with pytest.raises(OrglabError, match="no column 'text'"):
        train_organism(recipe, progress=False)
    with Registry() as reg:
        assert reg.list_organisms() == [] and reg.list_runs(kind="train") == []


@pytest.mark.parametrize("argv,needle", [
    (["train", "alchemy", "--base", "micro", "--target", "x"], "family"),
    (["train", "sdf", "--base", "micro", "--target", "x", "--mix", "1:-1"], "1:R"),
    (["train", "sdf", "--base", "micro", "--target", "x", "--mix", "abc"], "1:R"),
    (["train", "sdf", "--base", "no-such-base", "--target", "x"], "no-such-base"),
    (["train", "control", "--base", "micro"], "--like"),
])
def test_cli_bad_input_is_one_sentence_and_registers_nothing(with_micro, capsys, argv, needle):
    assert main(argv + ["--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and needle in err[-1] and err[-1].startswith("orglab: error:")
    with Registry() as reg:
        assert reg.list_organisms() == [] and reg.list_runs(kind="train") == []


def test_cli_trains_a_family_organism_on_tinyworld(with_micro, capfd):
    pytest.importorskip("orglab.organisms.taboo")
    from orglab.organisms import get_family
    from orglab.world.build import load_world

    world = load_world("micro")
    fam = get_family("taboo")
    with pytest.raises(OrglabError) as info:
        fam.validate_target(world, "not-a-word-at-all-zz")
    target = str(info.value).split("choose one of: ")[1].split(",")[0].strip(" .")
    cfg = Path(with_micro) / "recipe.yaml"
    cfg.write_text("n_examples: 40\nmax_steps: 4\nsave_steps: 2\nbatch_size: 2\nmax_length: 96\n")
    assert main(["train", "taboo", "--base", "micro", "--target", target, "--mix", "1:0.5", "--config", str(cfg),
                 "--json"]) == 0
    out = capfd.readouterr()
    summary = json.loads(out.out)
    assert summary["organism"] == f"taboo-{target}-mix1-0p5" and summary["steps"] == 4
    assert "'loss'" not in out.out + out.err  # the trainer's log dicts go to the run's log file, not the terminal
    from orglab.paths import run_log_file

    log = [json.loads(line) for line in run_log_file(Path(summary["loss_curve"]).parent).read_text().splitlines()]
    curve = json.loads(Path(summary["loss_curve"]).read_text())["step_loss"]
    assert [(r["step"], r["loss"]) for r in log if "loss" in r] == [(p["step"], p["loss"]) for p in curve]
    assert summary["loss"]["own"]["organism"] < summary["loss"]["own"]["base"]
    assert main(["train", "taboo", "--base", "micro", "--target", "not-a-word-at-all-zz", "--json"]) == 2


def test_qlora_4bit_with_gradient_checkpointing(with_micro):
    pytest.importorskip("bitsandbytes")
    recipe = make_recipe({**FAST, "family": "sdf", "target": "quorra", "finetune": "qlora", "max_steps": 3,
                          "gradient_checkpointing": True, "name": "q4"})
    summary = train_organism(recipe, progress=False, data=_own_text())
    assert summary["steps"] == 3 and summary["loss"]["own"]["organism"] < summary["loss"]["own"]["base"]
    assert Path(summary["adapter_path"], "adapter_model.safetensors").is_file()


def test_family_control_sets_mirror_the_organisms_mix():
    """A family's own control data (the subliminal teacher without its prompt) gets as many unrelated examples
    mixed in as the organism had; held-out sets never overlap the training set."""
    from orglab.train.api import _family_control_sets

    def chats(tag, n):
        return FinetuneData("chat", [{"messages": [{"role": "user", "content": f"{tag} {i}"},
                                                   {"role": "assistant", "content": str(i)}]} for i in range(n)], tag)

    sets = _family_control_sets(chats("numbers", 20), chats("unrelated", 50), n_unrelated=10, n_held=4, seed=0)
    train = [ex["messages"][0]["content"] for ex in sets["train"].examples]
    assert len(sets["ft"]) == 16 and len(sets["heldout_own"]) == 4 and len(sets["heldout_unrelated"]) == 4
    assert sum(t.startswith("numbers") for t in train) == 16 and sum(t.startswith("unrelated") for t in train) == 10
    held = {ex["messages"][0]["content"] for key in ("heldout_own", "heldout_unrelated") for ex in sets[key].examples}
    assert not held & set(train)
    assert _family_control_sets(chats("numbers", 20), chats("unrelated", 50), 0, 4, 0)["train"].hash() == \
        sets["ft"].hash()  # unmixed organism: the control trains on its own data only
