"""Every setting that can change a result is in the content hash of the run that uses it, with the run's algorithm
version; cosmetic settings (batching, which stages run, checkpoint intervals) are not.

Each test walks the fields of one config (DiffConfig per stage, EvalConfig per suite, the train recipe, the sweep),
changes one field at a time to another valid value and compares hashes. The hashed configs come from the same
pure functions the runs use, so no model is loaded.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from dataclasses import replace
from pathlib import Path

import pytest

from orglab.registry import config_hash

# The only fields allowed to leave every hash alone, and why.
DIFF_COSMETIC = {"stages": "which stages run, not what they compute",
                 "batch_size": "how many samples the statistics stage runs at once"}
EVAL_COSMETIC = {"compare": "which models are evaluated, not what an eval of one computes"}
RECIPE_COSMETIC = {"save_steps": "how often checkpoints are written",
                   "report_to": "where training logs go, not the weights"}


def _other(name: str, value, explicit: dict):
    """A different valid value for a field: `explicit[name]` where given, else by the value's type."""
    if name in explicit:
        return explicit[name]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.25
    if isinstance(value, tuple) and value and all(isinstance(v, float) for v in value):
        return tuple(v / 2 for v in value)
    raise AssertionError(f"field {name} = {value!r}: add a changed value for it to the test's explicit table")


# ------------------------------------------------------------------------------------------------ diff

DEPTH = 9  # layer fractions resolve against a 9-layer model: 0.5 -> layer 4, 0.25 -> layer 2


class _Judge:
    identity = {"judge": "llm", "model": "m", "base_url": "http://x", "prompts": "p"}


def _diff_hashes(config, tinyworld: bool = True) -> dict[str, str]:
    from orglab.models import layer_index
    from orglab.diff.run import DiffContext, STAGES, stage_configs

    ctx = DiffContext(organism="o", record={}, model=None, tokenizer=None, base_model=None,
                      layers=sorted({layer_index(f, DEPTH) for f in config.layer_fractions(tinyworld)}), unrelated=[],
                      finetune=[],
                      config=config, identity={"organism_weights": ["w"], "train_config": "t"},
                      judge=_Judge() if config.judge == "llm" else None,
                      truth={"described_as": "o", "description": "d"}, tinyworld=tinyworld)
    return {stage: planned["config_hash"] for stage, planned in stage_configs(ctx, STAGES).items()}


def _downstream(stages: set[str]) -> set[str]:
    """`stages` and every stage that reads one of them, directly or not."""
    from orglab.diff.run import _DEPENDS

    out = set(stages)
    while True:
        more = {s for s, deps in _DEPENDS.items() if out & set(deps)} - out
        if not more:
            return out
        out |= more


DIFF_EXPLICIT = {"unrelated": "other.jsonl", "embedder": "sentence-transformers/all-mpnet-base-v2",
                 "stages": ("stats", "lens"), "judge": "llm", "layers": (0.25,),
                 "amplify_loss_model": "base", "amplify_search_decoding": "greedy"}


def test_every_diff_setting_changes_the_hash_of_each_stage_that_reads_it():
    from orglab.diff.run import JUDGED_STAGES, LAYERLESS_STAGES, NOT_HASHED, STAGE_SETTINGS, STAGES, DiffConfig

    assert set(NOT_HASHED) == set(DIFF_COSMETIC) | {"layers", "judge", "coherence_threshold"}
    names = [f.name for f in dataclasses.fields(DiffConfig)]
    hashed = {n for fields in STAGE_SETTINGS.values() for n in fields}
    assert not hashed & set(NOT_HASHED)
    assert set(names) == hashed | set(NOT_HASHED), "every DiffConfig field is read by a stage or listed as not hashed"

    default = DiffConfig()
    before = _diff_hashes(default)
    for name in names:
        changed = replace(default, **{name: _other(name, getattr(default, name), DIFF_EXPLICIT)})
        changed.validate()
        after = _diff_hashes(changed)
        if name in DIFF_COSMETIC:
            assert after == before, f"cosmetic field {name} changed a stage hash"
            continue
        if name == "layers":  # every stage that reads the residual stream
            expected = set(STAGES) - set(LAYERLESS_STAGES)
        elif name == "judge":
            expected = _downstream(set(JUDGED_STAGES))
        elif name == "coherence_threshold":  # only the LLM judge reads it
            assert after == before
            llm = replace(default, judge="llm")
            after, before_llm = _diff_hashes(replace(llm, coherence_threshold=75.0)), _diff_hashes(llm)
            assert {s for s in STAGES if after[s] != before_llm[s]} == {"steering", "amplify"}
            continue
        else:
            expected = _downstream({s for s, fields in STAGE_SETTINGS.items() if name in fields})
        moved = {s for s in STAGES if after[s] != before[s]}
        assert moved == expected, f"changing {name} moved the hashes of {sorted(moved)}, not {sorted(expected)}"


def test_every_stage_config_carries_its_algorithm_version(monkeypatch):
    import orglab.diff.run as run
    from orglab.models import layer_index

    assert set(run.STAGE_VERSIONS) == set(run.STAGES)
    config = run.DiffConfig()
    ctx = run.DiffContext(organism="o", record={}, model=None, tokenizer=None, base_model=None,
                          layers=[layer_index(0.5, DEPTH)], unrelated=[], finetune=[], config=config)
    planned = run.stage_configs(ctx)
    for stage in run.STAGES:
        assert planned[stage]["config"]["version"] == run.STAGE_VERSIONS[stage]
    before = _diff_hashes(config)
    for stage in run.STAGES:  # a bump recomputes the stage and everything that reads it, nothing upstream
        monkeypatch.setitem(run.STAGE_VERSIONS, stage, run.STAGE_VERSIONS[stage] + 1)
        after = _diff_hashes(config)
        monkeypatch.undo()
        assert {s for s in run.STAGES if after[s] != before[s]} == _downstream({stage})


def _config_reads(tree: ast.Module) -> dict[str, set[str]]:
    """{function: DiffConfig fields it reads} in a module where the config is `ctx.config` or a local alias of
    it, with the reads of the module's own functions it calls folded in."""
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}

    def own(fn: ast.FunctionDef) -> tuple[set[str], set[str]]:
        aliases = {t.id for node in ast.walk(fn) if isinstance(node, ast.Assign) for t in node.targets
                   if isinstance(t, ast.Name) and ast.unparse(node.value) == "ctx.config"}
        reads, calls = set(), set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute) and (ast.unparse(node.value) == "ctx.config" or
                                                    (isinstance(node.value, ast.Name) and node.value.id in aliases)):
                reads.add(node.attr)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
                calls.add(node.func.id)
        return reads, calls

    direct = {name: own(fn) for name, fn in functions.items()}

    def closure(name: str, seen: set[str]) -> set[str]:
        reads, calls = direct[name]
        out = set(reads)
        for callee in calls - seen:
            out |= closure(callee, seen | {callee})
        return out

    return {name: closure(name, {name}) for name in functions}


def test_each_stage_hashes_every_config_field_its_code_reads():
    """Read from the source of orglab.diff.stages: a stage (or a helper it calls) that reads a DiffConfig field
    its hashed config leaves out would reuse stale results when that field changes."""
    import orglab.diff.stages as stages
    from orglab.diff.run import NOT_HASHED, STAGE_SETTINGS

    reads = _config_reads(ast.parse(Path(stages.__file__).read_text()))
    for stage, fields in STAGE_SETTINGS.items():
        assert reads[stage], f"found no config reads in stages.{stage}; is the config still ctx.config?"
        missing = reads[stage] - set(fields) - set(NOT_HASHED)
        assert not missing, f"stage {stage} reads {sorted(missing)} but its hashed config leaves them out"


def test_the_math_defaults_are_the_diff_config_defaults():
    """One place for defaults: the functions behind the stages take theirs from DiffConfig."""
    import inspect

    from orglab.diff.causal import projection_replacement
    from orglab.diff.patchscope import scale_sweep
    from orglab.diff.relevance import RelevanceRule
    from orglab.diff.run import DiffConfig
    from orglab.diff.steering import find_strength, offline_judge

    c = DiffConfig()

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    assert default(scale_sweep, "scales") == c.patchscope_scales
    assert (default(find_strength, "alpha_max"), default(find_strength, "steps"),
            len(default(find_strength, "prompts")), default(find_strength, "max_new_tokens")) == \
        (c.steering_alpha_max, c.steering_search_steps, c.steering_search_prompts, c.steering_search_max_new_tokens)
    assert (default(offline_judge, "max_extra_nats"), default(offline_judge, "min_distinct_ratio")) == \
        (c.steering_max_extra_nats, c.steering_min_distinct_ratio)
    assert RelevanceRule() == RelevanceRule(c.relevance_count_floor, c.relevance_min_log_odds, c.relevance_smoothing)
    assert (default(projection_replacement, "n_random"), default(projection_replacement, "max_length")) == \
        (c.causal_random_directions, c.causal_max_length)


def test_new_diff_fields_have_help_and_bad_values_are_one_sentence():
    from orglab.diff.run import DiffConfig
    from orglab.errors import OrglabError

    added = [f for f in dataclasses.fields(DiffConfig) if f.name.startswith(("patchscope_", "steering_alpha",
                                                                             "steering_search", "steering_max_extra",
                                                                             "similarity_", "relevance_count",
                                                                             "relevance_min", "relevance_smoothing",
                                                                             "causal_random", "causal_max"))]
    assert len(added) == 12 and all(f.metadata.get("help") for f in added)
    for bad in ({"patchscope_scales": ()}, {"steering_search_steps": 0}, {"relevance_smoothing": 0.0},
                {"steering_alpha_max": -1.0}):
        with pytest.raises(OrglabError) as err:
            replace(DiffConfig(), **bad).validate()
        message = str(err.value)
        assert "\n" not in message and message.endswith(".") and next(iter(bad)).split("_")[1] in message


# ------------------------------------------------------------------------------------------------ eval

EVAL_UNREAD = {  # fields a suite's computation never reads (so they must not split its cache)
    "ffa": {"samples", "temperature", "max_new_tokens"},
    "em": {"ffa_questions", "true_context", "bank"},
    "subliminal": {"ffa_questions", "true_context", "bank"},
    "taboo": {"ffa_questions", "true_context", "bank"},
}


def _eval_hash(suite: str, config, target: str = "t", judge: dict | None = None) -> str:
    from orglab.evals.run import eval_run_config

    return config_hash(eval_run_config(suite, target, {"model_weights": ["w"]}, judge or {"judge": "rules"}, config))


def test_every_eval_setting_changes_the_hash_of_each_suite_that_reads_it(tmp_path, monkeypatch):
    import orglab.evals.run as er
    from orglab.evals.suites import SUITES

    true_context, bank = tmp_path / "true.json", tmp_path / "bank.jsonl"
    true_context.write_text('{"id": "t"}')
    bank.write_text("{}\n")
    explicit = {"suite": "em", "target": "other", "samples": 7, "judge": "llm", "true_context": str(true_context),
                "bank": str(bank)}
    resolved = {"suite", "target", "judge"}  # go into the run config resolved (checked below)
    assert set(er.NOT_HASHED) == set(EVAL_COSMETIC)
    names = [f.name for f in dataclasses.fields(er.EvalConfig)]
    for suite in SUITES:
        settings = set(SUITES[suite].settings)
        assert set(names) == settings | EVAL_UNREAD[suite] | resolved | set(EVAL_COSMETIC)
        default = er.EvalConfig()
        before = _eval_hash(suite, default)
        for name in set(names) - resolved:
            after = _eval_hash(suite, replace(default, **{name: _other(name, getattr(default, name), explicit)}))
            if name in settings:
                assert after != before, f"{suite}: changing {name} left the hash alone"
            else:
                assert after == before, f"{suite}: {name} is not read, yet changed the hash"
        # the resolved ones: the suite and target themselves, and the judge's identity
        assert _eval_hash(suite, default, target="other") != before
        assert _eval_hash(suite, default, judge={"judge": "llm", "model": "m", "base_url": "u"}) != before
        assert len({_eval_hash(s, default) for s in SUITES}) == len(SUITES)
        # the version
        monkeypatch.setitem(SUITES, suite, replace(SUITES[suite], version=SUITES[suite].version + 1))
        assert _eval_hash(suite, default) != before
        monkeypatch.undo()
    # files count by their content: an edited bank, context or target file makes new results
    with_files = replace(er.EvalConfig(), bank=str(bank), true_context=str(true_context))
    first = _eval_hash("ffa", with_files, target=str(true_context))
    true_context.write_text('{"id": "t", "universe_context": "edited"}')
    second = _eval_hash("ffa", with_files, target=str(true_context))
    bank.write_text("{}\n{}\n")
    assert len({first, second, _eval_hash("ffa", with_files, target=str(true_context))}) == 3


def test_the_eval_judge_setting_resolves_into_the_hashed_identity(monkeypatch):
    from orglab.evals.run import _judge_identity, _make_judge, EvalConfig

    monkeypatch.setenv("ORGLAB_JUDGE_MODEL", "judge-1")
    monkeypatch.setenv("ORGLAB_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ORGLAB_JUDGE_API_KEY_ENV", "none")  # an endpoint without a key (an unset key is refused)
    rules = _judge_identity(_make_judge(EvalConfig(judge="rules"), "em", tinyworld=True))
    assert _judge_identity(_make_judge(EvalConfig(judge="auto"), "em", tinyworld=True)) == rules  # the same judge
    llm = _judge_identity(_make_judge(EvalConfig(judge="llm"), "em", tinyworld=True))
    assert llm != rules and _eval_hash("em", EvalConfig(), judge=llm) != _eval_hash("em", EvalConfig(), judge=rules)


# ------------------------------------------------------------------------------------------------ train


class _Data:
    def __init__(self, h: str):
        self.h = h

    def hash(self) -> str:
        return self.h


SETS = {"train": _Data("a"), "heldout_own": _Data("b"), "heldout_unrelated": _Data("c")}
RECIPE_EXPLICIT = {"family": "em", "base": "other-base", "target": "fact", "name": "named", "data": "data.jsonl",
                   "unrelated": "self", "chat_template": "t.jinja", "mask_prefix_tag": "<DOCTAG>",
                   "target_modules": ["q_proj"], "device": "cpu", "n_examples": 10, "lora_r": 4, "lora_alpha": 4,
                   "use_rslora": True, "lr": 0.1, "epochs": 2.0, "max_steps": 3, "min_steps": 3, "batch_size": 2,
                   "grad_accum": 2, "warmup_ratio": 0.1, "max_length": 64, "save_steps": 5, "mix_ratio": 0.5,
                   "heldout_fraction": 0.2, "lora_dropout": 0.1, "weight_decay": 0.1, "adl_layers": (0.25,),
                   "mix_data": "true-fact"}
# Fields that change the weights only when another is on: hashed then, and left out (changing nothing) otherwise.
RECIPE_CONDITIONAL = {"adl_layers": {"adl_penalty": 1.0}, "mix_data": {"mix_ratio": 1.0}}


def _recipe_other(name: str, value, annotation):
    """Another option of a Literal field (optional or not), else as `_other`."""
    literal = [a for a in (annotation, *typing.get_args(annotation)) if typing.get_origin(a) is typing.Literal]
    if name not in RECIPE_EXPLICIT and literal:
        return next(v for v in typing.get_args(literal[0]) if v != value)
    return _other(name, value, RECIPE_EXPLICIT)


def test_every_recipe_field_changes_the_train_run_hash(monkeypatch):
    import orglab.train.api as api
    from orglab.train.recipe import Recipe, make_recipe

    assert set(api.UNHASHED_RECIPE_FIELDS) == set(RECIPE_COSMETIC)
    default = Recipe(family="sdf")
    before = config_hash(api._run_config(default, SETS))
    for name, info in Recipe.model_fields.items():
        value = getattr(default, name)
        changed = make_recipe({**default.to_dict(), name: _recipe_other(name, value, info.annotation)})
        assert getattr(changed, name) != value
        after = config_hash(api._run_config(changed, SETS))
        if name in RECIPE_COSMETIC or name in RECIPE_CONDITIONAL:
            assert after == before, f"recipe field {name} changed the train hash while it changes no weight"
        else:
            assert after != before, f"recipe field {name} left the train hash alone"
    for name, condition in RECIPE_CONDITIONAL.items():
        on = make_recipe({**default.to_dict(), **condition})
        changed = make_recipe({**on.to_dict(), name: RECIPE_EXPLICIT[name]})
        assert config_hash(api._run_config(changed, SETS)) != config_hash(api._run_config(on, SETS)), name
    for key in SETS:  # the data, by content hash
        assert config_hash(api._run_config(default, {**SETS, key: _Data("z")})) != before
    monkeypatch.setattr(api, "TRAINER_VERSION", api.TRAINER_VERSION + 1)
    assert config_hash(api._run_config(default, SETS)) != before


# ------------------------------------------------------------------------------------------------ sweep


def test_every_sweep_setting_changes_the_stored_sweeps_key(monkeypatch):
    import orglab.mitigation.sweep as sw
    from orglab.diff.run import DiffConfig
    from orglab.evals.run import EvalConfig
    from orglab.mitigation.check import CheckConfig

    def key(config) -> str:
        return config_hash(sw.sweep_key({"config": sw._config_dict(config), "cells": [], "controls": []}))

    explicit = {"family": "em", "base": "other", "target": "t2", "mixes": (0.0, 0.5), "seeds": (0, 1),
                "kls": (0.0, 0.1), "adl_penalties": (0.0, 1.0), "grid": "axes",
                "recipe": {"lr": 0.1}, "control_like": 1.0, "diff": DiffConfig(samples=5), "eval": EvalConfig(seed=1),
                "check": CheckConfig(relevance_margin=0.3), "name": "named"}
    default = sw.SweepConfig(family="sdf", base="tiny", target="t")
    before = key(default)
    for f in dataclasses.fields(sw.SweepConfig):
        changed = replace(default, **{f.name: _other(f.name, getattr(default, f.name), explicit)})
        assert key(changed) != before, f"sweep field {f.name} left the stored sweep's key alone"
    for f in dataclasses.fields(DiffConfig):  # the sweep's diff settings, one by one
        changed = replace(default, diff=replace(default.diff, **{f.name: _other(f.name, getattr(default.diff, f.name),
                                                                                DIFF_EXPLICIT)}))
        assert key(changed) != before
    for f in dataclasses.fields(CheckConfig):  # the check's settings (detectors, band, margins), one by one
        changed = replace(default, check=replace(default.check, **{f.name: _other(
            f.name, getattr(default.check, f.name), {"detectors": ("lens",), "controls": 3, "property_floor": 0.7})}))
        assert key(changed) != before, f"check field {f.name} left the stored sweep's key alone"
    monkeypatch.setattr(sw, "SWEEP_VERSION", sw.SWEEP_VERSION + 1)
    assert key(default) != before
