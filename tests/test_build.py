"""Building, caching and registering a tinyworld base (the micro preset, built once per session)."""

from __future__ import annotations

import json

import pytest
import torch

from orglab.errors import OrglabError
from orglab.registry import Registry
from orglab.world.build import MODEL_DIR, build_base, load_world, preset_config


def test_micro_is_registered_with_config_corpus_hash_and_artifacts(with_micro):
    with Registry() as reg:
        base = reg.get_base("micro")
        assert base["kind"] == "built" and base["config"]["preset"] == "micro"
        assert len(base["corpus_hash"]) == 16
        run = reg.list_runs(subject="micro", kind="world")[0]
        assert run.status == "done"
        kinds = {a["kind"] for a in reg.get_artifacts(run.id)}
        assert {"corpus", "chats", "chat_tuning", "world", "knowledge", "weights", "plot"} <= kinds
        assert reg.verify_artifacts(run.id) == []
        metrics = reg.get_metrics(run.id)
        curve_path = next(a["path"] for a in reg.get_artifacts(run.id) if a["kind"] == "loss_curve")
    for key in ("loglik_false_fact_truths", "loglik_other_facts", "top_completion_false_fact_truths",
                "preference_with_prompt", "preference_without_prompt"):
        assert 0.0 <= metrics[key] <= 1.0
    curve = json.loads(open(curve_path).read())
    tune = preset_config("micro", 0)["chat_tune"]
    assert len(curve["step_loss"]) == preset_config("micro", 0)["train"]["steps"]
    assert len(curve["chat_tuning_step_loss"]) == tune["preference_steps"] + tune["mixed_steps"]


def test_second_build_is_reused_without_training(with_micro):
    built = build_base("micro", progress=False)
    assert built.reused
    assert (built.model_dir / "config.json").is_file()
    with Registry() as reg:
        assert len(reg.list_runs(subject="micro", kind="world")) == 1


def test_missing_files_trigger_a_rebuild_with_the_same_corpus_hash(with_micro):
    first = build_base("micro", progress=False)
    (first.folder / "corpus.jsonl").write_text("tampered\n")
    second = build_base("micro", progress=False)
    assert not second.reused
    assert second.corpus_hash == first.corpus_hash  # same seed, same corpus


def test_micro_base_is_an_ordinary_hf_model_folder(with_micro):
    from orglab.models import get_decoder_layers, load_model

    loaded = load_model("micro")
    tok, model = loaded.tokenizer, loaded.model
    assert (loaded.spec.base_source.endswith(MODEL_DIR))
    assert len(get_decoder_layers(model)) == 2
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is your favourite animal ?"}], tokenize=False,
                                     add_generation_prompt=True)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
    world = load_world("micro")
    assert len(world.false_facts) >= 5


def test_unknown_preset_is_one_sentence_and_registers_nothing(orglab_home):
    with pytest.raises(OrglabError, match="Unknown world preset 'huge'; choose one of: tiny, micro"):
        build_base("huge", progress=False)
    with Registry() as reg:
        assert reg.list_bases() == [] and reg.list_runs() == []


def test_config_hash_depends_on_seed_and_preset():
    from orglab.registry import config_hash

    assert config_hash(preset_config("micro", 0)) != config_hash(preset_config("micro", 1))
    assert config_hash(preset_config("micro", 0)) != config_hash(preset_config("tiny", 0))
    assert json.dumps(preset_config("tiny", 0), sort_keys=True) == json.dumps(preset_config("tiny", 0), sort_keys=True)
