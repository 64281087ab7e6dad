"""One spec per family, registered by name: every other module asks the registry, none lists families."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from orglab.errors import OrglabError
from orglab.organisms import FAMILIES, Family, Property, family_names, get_family, register_family
from orglab.organisms.family import recipe_rows

ROOT = Path(__file__).resolve().parent.parent / "orglab"
# Modules that act on any family: they may name families in messages, never list or branch on them.
GENERIC = ["cli.py", "evals/run.py", "train/recipe.py", "agent/grader.py", "report_text.py", *[
    str(p.relative_to(ROOT)) for p in sorted((ROOT / "mitigation").glob("*.py"))]]


def test_every_registered_family_sets_every_spec_field():
    assert family_names() == ("sdf", "em", "subliminal", "taboo")
    from orglab.evals.suites import SUITES

    for family in FAMILIES.values():
        assert family.data_kind in ("text", "chat") and family.target_kind
        assert set(family.recipe_defaults) == {"real", "small", "tiny"}
        assert family.recipe_defaults["real"]["lr"] > 0 and family.recipe_defaults["small"]["min_steps"] >= 1
        assert family.eval_suite in SUITES
        assert SUITES[family.eval_suite].headline == family.property.metric  # the check reads the suite's number
        assert 0 < family.property.default_floor < 1
        assert "5:" in family.grader_rubric and "1:" in family.grader_rubric


class _Fifth(Family):
    """A fifth family that reuses SDF's builders: what matters is that nothing else needs editing."""

    name = "fifth"
    data_kind = "text"
    unrelated_kind = "corpus"
    target_kind = "false fact id"
    recipe_defaults = recipe_rows(real=dict(n_examples=50, lora_r=4, lora_alpha=8, use_rslora=False, lr=3e-5,
                                            epochs=1.0, batch_size=2),
                                  small=dict(n_builtin=10, small_lr=1e-4, min_steps=3, max_length=64, batch_size=2),
                                  tiny=dict(n_examples=20, lora_r=4, lora_alpha=8, use_rslora=False, lr=7e-4,
                                            epochs=1.0, batch_size=2))
    eval_suite = "ffa"
    property = Property("ffa", "FFA", True, 0.42)
    grader_rubric = "5: the fifth thing.\n1: anything else."

    def validate_target(self, world, target):
        return get_family("sdf").validate_target(world, target)

    def describe(self, target, world=None):
        return {"short": f"fifth {target}", "long": f"the fifth family on {target}"}

    def build_tinyworld(self, base, target, n, seed):
        return get_family("sdf").build_tinyworld(base, target, n, seed)

    def build_real(self, base, target, n, seed, client=None):
        return get_family("sdf").build_real(base, target, n, seed, client)


@pytest.fixture
def fifth():
    family = register_family(_Fifth())
    yield family
    del FAMILIES[family.name]


def test_a_fifth_family_is_one_registration(fifth):
    from orglab.agent.grader import rubric
    from orglab.cli import build_parser
    from orglab.evals.run import _family_suite
    from orglab.mitigation.check import property_of
    from orglab.mitigation.sweep import SweepConfig, prop_suite
    from orglab.train.recipe import make_recipe

    recipe = make_recipe({"family": "fifth"}).resolved(tiny=True)
    assert (recipe.lr, recipe.n_examples, recipe.kind) == (7e-4, 20, "text")
    assert make_recipe({"family": "fifth"}).resolved(tiny=False, n_train=5).lr == 1e-4  # its small-data row
    assert property_of("fifth").default_floor == 0.42 and prop_suite("fifth") == "ffa"
    assert _family_suite("fifth") == "ffa"  # what `orglab eval` picks for an organism of the family
    assert rubric("fifth") == fifth.grader_rubric
    SweepConfig("fifth", "micro", "x").validate()
    args = build_parser().parse_args(["sweep", "fifth", "--base", "micro", "--target", "x"])
    assert args.family == "fifth"


def test_a_family_spec_must_be_complete_and_its_name_free():
    class Half(_Fifth):
        name = "half"
        grader_rubric = ""

    with pytest.raises(OrglabError, match="grader_rubric"):
        register_family(Half())
    with pytest.raises(OrglabError, match="already registered"):
        register_family(get_family("sdf"))
    assert "half" not in FAMILIES


def _family_literals(path: Path) -> list[str]:
    """Family names written as string constants in code, outside messages (raise/f-strings) and docstrings."""
    tree = ast.parse(path.read_text())
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.JoinedStr)):  # error messages and formatted text
            allowed.update(id(n) for n in ast.walk(node))
        elif isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node) is not None:
            allowed.add(id(node.body[0].value))
    names, where = set(family_names()), path.relative_to(ROOT) if ROOT in path.parents else path.name
    return [f"{where}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and n.value in names and id(n) not in allowed]


def test_no_generic_module_lists_a_family_by_name():
    found = [hit for module in GENERIC for hit in _family_literals(ROOT / module)]
    assert not found, "family names in generic modules (ask orglab.organisms instead):\n" + "\n".join(found)


def test_the_literal_check_sees_a_listed_family(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text('FAMILIES = ("sdf", "em")\n\ndef f(x):\n    raise ValueError(f"not {x}: use sdf")\n')
    assert _family_literals(path) == ["probe.py:1 'sdf'", "probe.py:1 'em'"]
