"""CLI flags built from the config dataclasses: help and default come from the config, so they cannot drift."""

from __future__ import annotations

import dataclasses

import pytest

from orglab.agent.agent import AgentConfig
from orglab.cli import build_parser
from orglab.cli_options import field_default, overrides, shown
from orglab.diff.run import DiffConfig
from orglab.evals.run import EvalConfig
from orglab.mitigation.check import CheckConfig

# config -> a command line of a subcommand that carries its flags
COMMANDS = {DiffConfig: ["diff", "org"], AgentConfig: ["agent", "org"], CheckConfig: ["check", "org"],
            EvalConfig: ["eval", "org"]}


def _subparser(argv0: str):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices[argv0]


@pytest.mark.parametrize("config_cls", list(COMMANDS))
def test_each_field_with_help_is_a_flag_showing_the_configs_default(config_cls):
    actions = {a.dest: a for a in _subparser(COMMANDS[config_cls][0])._actions}
    documented = [f for f in dataclasses.fields(config_cls) if "help" in f.metadata]
    assert documented
    for f in documented:
        action = actions[f.name]
        assert action.default is None  # unset flags keep the config's default
        default = field_default(config_cls, f.name)
        shown_default = "" if default is None else f" (default {shown(default)})"
        assert action.help == f"{f.metadata['help']}{shown_default}"


def test_given_flags_override_only_their_fields():
    args = build_parser().parse_args(["diff", "org", "--patchscope-scales", "1,2.5", "--relevance-count-floor", "3"])
    assert overrides(args, DiffConfig) == {"patchscope_scales": (1.0, 2.5), "relevance_count_floor": 3}
    assert overrides(build_parser().parse_args(["diff", "org"]), DiffConfig) == {}
    args = build_parser().parse_args(["check", "org", "--steering-margin", "0.2"])
    assert overrides(args, CheckConfig) == {"steering_margin": 0.2}


def test_train_flags_come_from_the_recipe_fields():
    from orglab.cli import TRAIN_FLAGS
    from orglab.train.recipe import Recipe

    actions = {a.dest: a for a in _subparser("train")._actions}
    for name, flag in TRAIN_FLAGS.items():
        info = Recipe.model_fields[name]
        action = actions[name]
        assert action.option_strings == ["--" + flag] and action.default is None
        assert action.help.startswith(info.description)
    assert actions["mix_ratio"].help.endswith("(default 1:0)")
    assert actions["base"].help.endswith(f"(default {Recipe.model_fields['base'].default})")
    args = build_parser().parse_args(["train", "sdf", "--mix", "1:2", "--seed", "3"])
    assert overrides(args, Recipe) == {"mix_ratio": "1:2", "seed": 3}


def test_diff_layers_and_positions_default_to_the_config():
    args = build_parser().parse_args(["diff", "org"])
    assert args.layers is None and args.positions is None  # cmd_diff keeps DiffConfig's layers and positions
    helps = {a.dest: a.help for a in _subparser("diff")._actions}
    assert helps["layers"].endswith(f"(default {shown(DiffConfig().layer_fractions(True))} on tinyworld bases, "
                                    f"{shown(DiffConfig().layer_fractions(False))} on real bases)")
    assert helps["positions"].endswith(f"(default 0-{DiffConfig().positions - 1})")
