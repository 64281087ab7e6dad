"""Recipes (YAML + flag overrides, one-sentence errors) and ft:pt mixing (no model needed)."""

from __future__ import annotations

import pytest

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData
from orglab.train import family_defaults, load_recipe, mix, mix_suffix, parse_mix
from orglab.train.api import organism_name


@pytest.mark.parametrize("text,ratio", [("1:0", 0.0), ("1:0.1", 0.1), ("1:1", 1.0), ("1:2", 2.0), (" 1 : 0.5 ", 0.5)])
def test_parse_mix(text, ratio):
    assert parse_mix(text) == ratio


@pytest.mark.parametrize("text", ["1:-1", "abc", "2:1", "1:", "1:nan", "1:inf", ""])
def test_parse_mix_rejects_bad_ratios_in_one_sentence(text):
    with pytest.raises(OrglabError) as info:
        parse_mix(text)
    msg = str(info.value)
    assert "\n" not in msg and msg.endswith(".") and ("1:R" in msg or "R=" in msg)


def test_mix_suffix_follows_the_paper():
    assert [mix_suffix(r) for r in (0.1, 1, 2, 0, 0.25)] == ["mix1-0p1", "mix1-1", "mix1-2", "mix1-0", "mix1-0p25"]


def _text(n, prefix):
    return FinetuneData("text", [{"text": f"{prefix} {i}"} for i in range(n)], prefix)


def test_mix_adds_r_unrelated_per_example_shuffled_and_deterministic():
    ft, pool = _text(10, "ft"), _text(100, "pt")
    mixed = mix(ft, pool, 2.0, seed=3)
    texts = [e["text"] for e in mixed.examples]
    assert len(mixed) == 30 and sum(t.startswith("ft") for t in texts) == 10
    assert texts[:10] != [f"ft {i}" for i in range(10)]  # shuffled in
    assert mixed.meta["n_unrelated"] == 20 and mixed.meta["mix_ratio"] == 2.0
    assert mix(ft, pool, 2.0, seed=3).hash() == mixed.hash() != mix(ft, pool, 2.0, seed=4).hash()
    assert len(mix(ft, pool, 0.1, seed=0)) == 11
    assert len(mix(ft, pool, 0.0, seed=0)) == 10


def test_mix_refuses_wrong_kind_and_too_small_pool():
    chat = FinetuneData("chat", [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}])
    with pytest.raises(OrglabError, match="chat"):
        mix(chat, _text(5, "pt"), 1.0)
    with pytest.raises(OrglabError, match="needs 20 unrelated"):
        mix(_text(10, "ft"), _text(5, "pt"), 2.0)


def test_recipe_yaml_with_flag_overrides_and_family_defaults(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("family: em\ntarget: medicine\nlr: 0.001\nlora_r: 4\nmix_ratio: 1.0\n")
    recipe = load_recipe(path, {"lr": 0.002, "name": None, "seed": 7})
    assert (recipe.lr, recipe.lora_r, recipe.seed, recipe.mix_ratio, recipe.name) == (0.002, 4, 7, 1.0, None)
    real, tiny = recipe.resolved(tiny=False), recipe.resolved(tiny=True)
    assert real.use_rslora is True and real.lora_alpha == 64 and real.batch_size == 16 and real.scale == "real"
    assert tiny.n_examples == family_defaults("em", "tiny")["n_examples"] and tiny.lr == 0.002  # explicit value kept
    assert real.data_kind == "chat" and load_recipe(None, {"family": "sdf"}).resolved(True).data_kind == "text"
    assert organism_name(tiny) == "em-medicine-mix1-1-s7"


@pytest.mark.parametrize("yaml_text,field", [
    ("family: sdf\nlerning_rate: 0.1\n", "lerning_rate"),
    ("family: sdf\nlr: fast\n", "lr"),
    ("family: sdf\nbatch_size: -3\n", "batch_size"),
    ("family: sdf\nfinetune: half\n", "finetune"),
    ("family: sdf\ndistributed: zero9\n", "distributed"),
    ("family: alchemy\n", "family"),
])
def test_recipe_rejects_unknown_or_ill_typed_fields_naming_them(tmp_path, yaml_text, field):
    path = tmp_path / "r.yaml"
    path.write_text(yaml_text)
    with pytest.raises(OrglabError) as info:
        load_recipe(path, {})
    assert f"'{field}'" in str(info.value) and "\n" not in str(info.value)


def test_recipe_file_errors_are_one_sentence(tmp_path):
    with pytest.raises(OrglabError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(OrglabError, match="mapping"):
        load_recipe(bad, {})


def test_real_recipe_trains_small_data_with_the_small_row_and_keeps_user_fields():
    small = family_defaults("sdf", "small")
    recipe = load_recipe(None, {"family": "sdf", "target": "cake_bake", "base": "gemma3-270m"})
    before = recipe.resolved(tiny=False)
    assert before.n_examples == small["n_builtin"] and before.lr == family_defaults("sdf", "real")["lr"]
    after = recipe.resolved(tiny=False, n_train=small["n_builtin"])
    assert (after.lr, after.min_steps, after.batch_size, after.max_length) == (
        small["small_lr"], small["min_steps"], small["batch_size"], small["max_length"])
    big = recipe.resolved(tiny=False, n_train=50_000)  # the paper's data sizes keep the paper's recipe
    assert big.lr == 1e-5 and big.min_steps is None and big.max_length == 1024
    mine = load_recipe(None, {"family": "sdf", "target": "x", "lr": 0.01, "epochs": 2.0}).resolved(False, n_train=10)
    assert mine.lr == 0.01 and mine.min_steps is None and mine.epochs == 2.0  # what the user set is kept
    off = load_recipe(None, {"family": "sdf", "target": "x", "small_data_rule": False}).resolved(False, n_train=10)
    assert off.lr == 1e-5
    assert recipe.resolved(tiny=True, n_train=10).lr == family_defaults("sdf", "tiny")["lr"]  # tiny: no rule


def test_builtin_is_the_data_default_and_tinyworld_an_alias():
    assert load_recipe(None, {"family": "sdf"}).data == "builtin"
    assert load_recipe(None, {"family": "sdf", "data": "tinyworld", "unrelated": "tinyworld"}).unrelated == "builtin"
