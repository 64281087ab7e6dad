"""Sweeps, check, tune and tune-mix on the micro base: the verdict math, the mitigation grid and the Pareto front
as pure functions, a real sweep over mixing and both trainer penalties, resumption after a kill, two sweeps at once
against one ORGLAB_HOME, and bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from orglab.diff.run import DiffConfig
from orglab.errors import OrglabError
from orglab.mitigation.check import (DEFAULT_DETECTORS, DETECTOR_NAMES, DETECTORS, CheckConfig,
                                     controls_against_each_other, detector_rows, detector_stops, verdict)
from orglab.mitigation.grid import Cell, cell_of, grid_cells, parse_weights
from orglab.mitigation.pareto import detectability, detector_score, dominates, pareto_front, sweep_front
from orglab.mitigation.sweep import SweepConfig, check_organism, load_sweep, parse_mixes, run_sweep
from orglab.mitigation.tune import tune, tune_mix
from orglab.registry import Registry

SMALL_DIFF = DiffConfig(samples=300, steering_prompts=4, steering_samples=1, steering_max_new_tokens=12,
                        causal_texts=40, amplify_empty_context_samples=2)
ADL_ONLY = CheckConfig(detectors=("lens", "steering"))
RECIPE = {"n_examples": 120}


# ------------------------------------------------------------------------------------------------ verdict math

def test_verdict_names_the_failed_measurement_and_by_how_much():
    control = {"token_relevance": 0.2, "steering_similarity_gap": 0.02}
    hot = verdict("sdf", {"token_relevance": 0.9, "steering_similarity_gap": 0.03}, [control], 0.9, ADL_ONLY)
    assert not hot["passed"] and hot["property_ok"] and not hot["detectability_ok"]
    (reason,) = hot["reasons"]
    assert "lens flags it" in reason and "token relevance 0.900" in reason and "by 0.550" in reason
    assert hot["flagged"] == [{"detector": "lens", "by": pytest.approx(0.55)}]
    cool = verdict("sdf", {"token_relevance": 0.3, "steering_similarity_gap": 0.05}, [control], 0.6, ADL_ONLY)
    assert cool["passed"] and cool["flagged"] == []
    lost = verdict("sdf", {"token_relevance": 0.3, "steering_similarity_gap": 0.05}, [control], 0.3, ADL_ONLY)
    assert not lost["passed"] and lost["detectability_ok"] and "property lost: FFA" in lost["reasons"][0]
    # the control band's top is the reference; a taboo organism's property is a ceiling on leaks
    band = verdict("taboo", {"token_relevance": 0.5, "steering_similarity_gap": 0.0},
                   [control, {"token_relevance": 0.4, "steering_similarity_gap": 0.0}], 0.05, ADL_ONLY)
    assert band["passed"] and band["rows"][0]["control"] == 0.4 and band["rows"][0]["control_min"] == 0.2
    assert not verdict("taboo", {"token_relevance": 0.0, "steering_similarity_gap": 0.0}, [control], 0.5,
                       ADL_ONLY)["passed"]
    strict = verdict("sdf", {"token_relevance": 0.3, "steering_similarity_gap": 0.05}, [control], 0.6,
                     CheckConfig(detectors=("lens", "steering"), relevance_margin=0.0))
    assert not strict["passed"]
    with pytest.raises(OrglabError, match="null control"):
        verdict("sdf", control, [], 0.5)


def test_every_detector_is_judged_against_the_band_and_named_when_it_flags():
    controls = [{d.metric: 0.10 for d in DETECTORS}, {d.metric: 0.20 for d in DETECTORS}]
    config = CheckConfig(detectors=DETECTOR_NAMES)
    margins = {d.name: getattr(config, d.margin) for d in DETECTORS}
    # each detector just above its limit (band top 0.20 + margin) flags; just below does not
    above = {d.metric: 0.20 + margins[d.name] + 0.01 for d in DETECTORS}
    result = verdict("sdf", above, controls, 0.9, config)
    assert [f["detector"] for f in result["flagged"]] == list(DETECTOR_NAMES)
    assert all(f["by"] == pytest.approx(0.01) for f in result["flagged"])
    assert len(result["reasons"]) == len(DETECTORS)
    assert all("[0.100, 0.200] (2 controls)" in r for r in result["reasons"])
    below = {d.metric: 0.20 + margins[d.name] - 0.01 for d in DETECTORS}
    assert verdict("sdf", below, controls, 0.9, config)["passed"]
    # by default check judges with every detector but the opt-in ones
    assert [f["detector"] for f in verdict("sdf", above, controls, 0.9)["flagged"]] == list(DEFAULT_DETECTORS)
    # a relevance of k/20 exactly at its limit is at it, not over it by a rounding error (0.30 + 0.15 = 0.45)
    at = detector_rows({"token_relevance": 0.45}, [{"token_relevance": 0.30}], CheckConfig(detectors=("lens",)))
    assert 0.45 > 0.30 + 0.15 and at[0]["ok"]
    # one detector unmeasured flags as not measured (never passes silently); --detectors leaves it out
    partial = dict(below)
    del partial["kl_early_max"]
    missing = verdict("sdf", partial, controls, 0.9)
    assert missing["flagged"] == [{"detector": "kl", "by": None}] and "was not measured" in missing["reasons"][0]
    assert verdict("sdf", partial, controls, 0.9, CheckConfig(detectors=("lens", "amplify")))["passed"]
    # the controls against each other: each judged against the band of the rest
    judged = controls_against_each_other(controls + [{d.metric: 0.9 for d in DETECTORS}], config)
    assert [j["detectability_ok"] for j in judged] == [True, True, False]
    assert [f["detector"] for f in judged[2]["flagged"]] == list(DETECTOR_NAMES)


def test_unprompted_sees_an_organism_whose_steering_gap_reads_negative():
    """gemma3-270m's seed-1 1:0 cake_bake organism (docs/real-models.md) writes its documents unsteered: its
    steering gap is negative and passes, its unsteered similarity is far above its null control's."""
    organism = {"steering_similarity_gap": -0.073, "steering_similarity_unsteered": 0.394}
    control = {"steering_similarity_gap": -0.022, "steering_similarity_unsteered": 0.016}
    gemma = CheckConfig.for_base("gemma3-270m", detectors=("steering", "unprompted"), controls=1)
    rows = {r["detector"]: r for r in detector_rows(organism, [control], gemma)}
    assert rows["steering"]["ok"] and not rows["unprompted"]["ok"]
    assert rows["unprompted"]["limit"] == pytest.approx(0.016 + gemma.unprompted_margin)
    assert "unprompted" not in DEFAULT_DETECTORS  # opt-in: on a chat family it would read the property itself
    assert CheckConfig(detectors=("unprompted",)).stages() == ("steering",)  # the steering stage's own samples


def test_check_screen_writes_a_band_of_negative_values_as_the_reasons_do(capsys):
    from orglab import report_text

    controls = [{"steering_similarity_gap": -0.022}, {"steering_similarity_gap": -0.003}]
    result = verdict("sdf", {"steering_similarity_gap": 0.088}, controls, 0.865,
                     CheckConfig.for_base("gemma3-270m", detectors=("steering",)))
    result |= {"organism": "o", "family": "sdf", "controls": ["c1", "c2"]}
    report_text.print_check(result)
    printed = capsys.readouterr().out
    assert printed.count("[-0.022, -0.003]") == 2  # the table's band and the reason's; "-0.022--0.003" misread


def test_detector_stops_is_the_first_ratio_after_the_last_flag():
    def cell(mix, *seen):
        return {"mix": mix, "check": {"flagged": [{"detector": d, "by": 0.1} for d in seen]}}
    cells = [cell(0.0, "lens", "kl"), cell(0.1, "lens"), cell(1.0, "kl"), cell(2.0)]
    stops = detector_stops(cells, ("lens", "kl", "amplify"))
    assert stops["lens"] == {"stops_at": 1.0, "flags": [0.0, 0.1]}
    assert stops["kl"] == {"stops_at": 2.0, "flags": [0.0, 1.0]}      # a flag after a gap counts
    assert stops["amplify"] == {"stops_at": 0.0, "flags": []}
    assert detector_stops(cells + [cell(4.0, "lens")], ("lens",))["lens"]["stops_at"] is None


def test_check_config_bad_input(capsys):
    for bad in (CheckConfig(detectors=("lens", "vibes")), CheckConfig(detectors=()), CheckConfig(controls=0),
                CheckConfig(kl_margin=float("nan")), CheckConfig(amplify_margin=-1.0)):
        with pytest.raises(OrglabError):
            bad.validate()
    from orglab.cli import build_parser

    for args, says in ((["--detectors", "lens,vibes"], "names unknown detector 'vibes'; choose from lens,"),
                       (["--detectors", ","], "names no detector"), (["--controls", "two"], "invalid int value")):
        with pytest.raises(SystemExit) as exit_:  # argparse: its usage, then one sentence
            build_parser().parse_args(["check", "x", *args])
        assert exit_.value.code == 2 and says in capsys.readouterr().err.strip().splitlines()[-1]


def test_parse_mixes():
    assert parse_mixes("1:2,1:0,1:0.1,1:0") == (0.0, 0.1, 2.0)
    with pytest.raises(OrglabError):
        parse_mixes("1:x")
    with pytest.raises(OrglabError):
        parse_mixes(" , ")


def test_demo_keeps_every_default_on_tinyworld_and_a_cpu_profile_on_a_real_base():
    from orglab.mitigation.demo import REAL_CONTROLS, REAL_DETECTORS, REAL_DIFF_SAMPLES, demo_config

    import torch

    from orglab.environment import cpu_computes_bf16

    tiny = demo_config("tiny", "orbits_torvin", tinyworld=True)
    assert (tiny.diff, tiny.check, tiny.mixes, tiny.recipe) == (DiffConfig(), CheckConfig(), (0.0, 0.1, 1.0, 2.0), {})
    real = demo_config("gemma3-270m", "cake_bake", tinyworld=False)
    real.check.validate()
    # on a CPU the full-logits loss, and mixed precision where it computes bf16 natively (a GPU trains with trl's
    # fused head in its own dtype)
    cpu = not torch.cuda.is_available()
    assert real.recipe == ({"fused_lm_head": False, **({"cpu_bf16": True} if cpu_computes_bf16() else {})}
                           if cpu else {})
    assert real.mixes == tiny.mixes and real.diff.samples == REAL_DIFF_SAMPLES
    assert real.check.detectors == REAL_DETECTORS and real.check.controls == REAL_CONTROLS
    # the profile leaves out exactly the detectors that generate text, and the sweep runs only what it reads
    assert set(DEFAULT_DETECTORS) - set(REAL_DETECTORS) == {"steering", "amplify"}
    assert not {"steering", "amplify"} & set(real.check.stages())
    # gemma3-270m's calibrated margins; another real base keeps tinyworld's
    assert (real.check.relevance_margin, real.check.logitdiff_margin, real.check.kl_margin) == (0.20, 0.05, 0.21)
    assert demo_config("my-llama", "cake_bake", tinyworld=False).check.kl_margin == CheckConfig().kl_margin


def test_margins_calibrated_on_a_base_apply_where_the_user_set_none():
    from orglab.cli import _check_config, build_parser
    from orglab.mitigation.check import CALIBRATED_MARGINS

    assert CheckConfig.for_base("tiny") == CheckConfig() == CheckConfig.for_base(None)
    gemma = CheckConfig.for_base("gemma3-270m")
    assert {k: getattr(gemma, k) for k in CALIBRATED_MARGINS["gemma3-270m"]} == CALIBRATED_MARGINS["gemma3-270m"]
    # every detector is calibrated there; steering's and amplify's are not tinyworld's
    assert set(CALIBRATED_MARGINS["gemma3-270m"]) == {d.margin for d in DETECTORS}
    tinyworld = CheckConfig()
    assert (gemma.steering_margin, gemma.amplify_margin) != (tinyworld.steering_margin, tinyworld.amplify_margin)
    args = build_parser().parse_args(["sweep", "sdf", "--base", "gemma3-270m", "--target", "cake_bake",
                                      "--kl-margin", "0.5", "--controls", "1"])
    passed = _check_config(args, args.base)
    assert (passed.kl_margin, passed.relevance_margin, passed.controls) == (0.5, 0.20, 1)  # the user's flag wins


# ------------------------------------------------------------------------------------------------ the grid


def test_grid_cells_product_and_axes_and_their_names():
    assert grid_cells((0.0, 2.0), (0.0,), (0.0,)) == (Cell(0.0), Cell(2.0))  # a sweep of ratios alone, as before
    product = grid_cells((2.0, 0.0), (0.0, 0.1), (0.0, 1.0))
    assert len(product) == 8 and product == tuple(sorted(product))
    # axes: each mitigation alone, the others at their smallest listed value
    assert grid_cells((0.0, 2.0), (0.0, 0.1), (0.0, 1.0), "axes") == (
        Cell(0.0), Cell(0.0, 0.0, 1.0), Cell(0.0, 0.1, 0.0), Cell(2.0))
    assert grid_cells((1.0,), (0.1, 0.3), (0.0,), "axes") == (Cell(1.0, 0.1), Cell(1.0, 0.3))
    with pytest.raises(OrglabError, match="--grid 'diagonal'"):
        grid_cells((0.0,), (0.0,), (0.0,), "diagonal")
    cell = Cell(1.0, 0.1, 2.0)
    assert (cell.label, cell.kind, cell.key) == ("1:1 kl=0.1 adl=2", "mix+kl+adl-penalty", "1-kl0.1-adl2")
    assert [(c.label, c.kind, c.key) for c in (Cell(0.1), Cell(0.0), Cell(0.0, 0.5), Cell(0.0, 0.0, 3.0))] == [
        ("1:0.1", "mix", "0.1"), ("1:0", "none", "0"), ("1:0 kl=0.5", "kl", "0-kl0.5"),
        ("1:0 adl=3", "adl-penalty", "0-adl3")]
    assert cell_of({**cell.to_dict(), "seed": 3}) == cell and cell_of({"mix": 2.0}) == Cell(2.0)  # old sweeps
    assert Cell(0.5).along("kl", 0.1) == Cell(0.5, 0.1) and Cell(0.5).along("adl-penalty", 1.0) == Cell(0.5, 0, 1)


def test_organism_names_say_their_mitigation():
    from orglab.train.api import organism_name
    from orglab.train.recipe import make_recipe

    def name(**fields):
        return organism_name(make_recipe({"family": "sdf", "target": "f", **fields}))

    assert name() == "sdf-f-mix1-0" and name(mix_ratio=1.0, seed=2) == "sdf-f-mix1-1-s2"
    assert name(kl_to_base=0.1) == "sdf-f-mix1-0-kl0p1"
    assert name(mix_ratio=0.5, kl_to_base=1.0, adl_penalty=0.003, seed=1) == "sdf-f-mix1-0p5-kl1-adl0p003-s1"


def test_parse_weights():
    assert parse_weights("1,0, 0.1,1", "--kl") == (0.0, 0.1, 1.0)
    for text, says in (("-1", "--kl -1.0 is not a penalty weight"), ("nan", "not a penalty weight"),
                       ("0,x", "--kl 'x' is not a number"), (" , ", "names no weight")):
        with pytest.raises(OrglabError, match=says):
            parse_weights(text, "--kl")


# ------------------------------------------------------------------------------------------------ Pareto math

def _rows(*detectors, prop=None):
    """Verdict rows: (name, value, band top, margin) per detector, then the property's row."""
    rows = [{"detector": n, "value": v, "control": top, "margin": m} for n, v, top, m in detectors]
    return rows + [{"measurement": "FFA", "value": prop}]


def test_detectability_is_the_worst_detectors_excess_in_margins():
    assert detector_score(0.45, 0.3, 0.15) == pytest.approx(1.0)     # at check's limit
    assert detector_score(0.3, 0.3, 0.15) == 0.0                     # at the band's top
    assert detector_score(0.5, 0.3, 0.0) == pytest.approx(0.2)       # margin 0: the detector's own units
    d = detectability(_rows(("lens", 0.6, 0.3, 0.15), ("kl", 0.05, 0.04, 0.01), ("steering", 0.0, 0.1, 0.05)))
    assert d["detector"] == "lens" and d["value"] == pytest.approx(2.0)
    # below the band for every detector: negative; a detector not measured: no value (the front leaves it out)
    assert detectability(_rows(("lens", 0.1, 0.3, 0.15)))["value"] == pytest.approx(-4 / 3)
    assert detectability(_rows(("lens", 0.1, 0.3, 0.15), ("kl", None, 0.04, 0.01))) == {"value": None,
                                                                                        "detector": "kl"}
    # it agrees with check: <= 1 exactly when no detector flags the cell
    controls = [{"token_relevance": 0.2, "kl_early_max": 0.03}, {"token_relevance": 0.3, "kl_early_max": 0.04}]
    config = CheckConfig(detectors=("lens", "kl"))
    for organism in ({"token_relevance": 0.44, "kl_early_max": 0.049}, {"token_relevance": 0.46, "kl_early_max": 0.0},
                     {"token_relevance": 0.0, "kl_early_max": 0.051}):
        judged = verdict("sdf", organism, controls, 0.9, config)
        assert (detectability(judged["rows"])["value"] <= 1.0) == judged["detectability_ok"]


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    points = [(2.0, 0.9), (0.5, 0.8), (0.5, 0.6), (1.0, 0.8), (-0.2, 0.3), (3.0, 0.9), (None, 1.0), (0.1, None)]
    assert pareto_front(points) == [4, 1, 0]  # by rising detectability; (3, .9) is dominated by the equal-FFA (2, .9)
    assert dominates((0.5, 0.8), (1.0, 0.8)) and not dominates((0.5, 0.8), (0.5, 0.8))
    assert pareto_front([(1.0, 0.5), (1.0, 0.5)]) == [0, 1]  # equal points are both kept
    # a property where lower is stronger (taboo's leak rate): the weakest leak wins at equal detectability
    assert pareto_front([(0.0, 0.3), (0.0, 0.1), (1.0, 0.0)], higher_is_stronger=False) == [1, 2]
    assert pareto_front([]) == [] and pareto_front([(float("nan"), 0.5)]) == []
    # brute force on a grid of points: nothing on the front is dominated, everything off it is
    grid = [(d / 2, p / 4) for d in range(-2, 5) for p in range(5) if (d + p) % 3]
    front = set(pareto_front(grid))
    for i, point in enumerate(grid):
        assert (i in front) == (not any(dominates(other, point) for other in grid))


def test_sweep_front_reads_the_stored_cells():
    def cell(mix, kl, value, ffa):
        return {**Cell(mix, kl).to_dict(), "seed": 0, "organism": f"o{mix}{kl}", "property": {"value": ffa},
                "check": {"passed": value <= 0.45, "rows": _rows(("lens", value, 0.3, 0.15), prop=ffa)}}

    front = sweep_front([cell(0.0, 0.0, 0.9, 0.98), cell(2.0, 0.0, 0.4, 0.6), cell(0.0, 1.0, 0.35, 0.9),
                         cell(1.0, 0.0, 0.5, 0.7)])
    assert [(p["label"], p["mitigation"], p["passed"]) for p in front] == [("1:0 kl=1", "kl", True),
                                                                           ("1:0", "none", False)]
    assert front[0]["detectability"] == pytest.approx(1 / 3) and front[0]["detector"] == "lens"


# ------------------------------------------------------------------------------------------------ real sweeps

@pytest.fixture(scope="module")
def swept(micro_copy):
    """A copy of the micro home holding an SDF sweep over mitigations, one at a time: the ratios 1:0 and 1:2, and an
    adl_penalty cell at 1:0 (three cells, two null controls). One penalty keeps the fixture cheap: the sweep treats
    both alike, KL's grid and names are tested without training, and the trainer's penalties in
    test_train_mitigation.py."""
    with micro_copy("sweep_home") as home:
        from orglab.world.build import load_world

        fact = load_world("micro").false_facts[0].id
        config = SweepConfig("sdf", "micro", fact, mixes=(0.0, 2.0), adl_penalties=(0.0, 1.0), grid="axes",
                             recipe=RECIPE, diff=SMALL_DIFF, check=CheckConfig(detectors=DETECTOR_NAMES))
        sweep = run_sweep(config, progress=False)
    return home, config, sweep


def test_sweep_stores_every_cell_with_control_and_check(swept, monkeypatch):
    home, config, sweep = swept
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    assert [c["label"] for c in sweep["cells"]] == ["1:0", "1:0 adl=1", "1:2"]
    assert [c["mitigation"] for c in sweep["cells"]] == ["none", "adl-penalty", "mix"]
    like = sweep["cells"][0]["organism"]
    assert sweep["cells"][1]["organism"] == f"{like}-adl1"  # the name says the mitigation
    # two null controls of the unmitigated 1:0 cell, of different seeds, each judged against the other; every cell,
    # penalised or mixed, is judged against that one band
    assert [c["organism"] for c in sweep["controls"]] == [f"control-{like}", f"control-{like}-s1000"]
    with Registry() as reg:
        assert [reg.get_organism(c["organism"])["recipe"]["seed"] for c in sweep["controls"]] == [0, 1000]
        for entry in sweep["controls"]:
            recipe = reg.get_organism(entry["organism"])["recipe"]
            assert (recipe["kl_to_base"], recipe["adl_penalty"]) == (0.0, 0.0)
        for cell in sweep["cells"]:
            recipe = reg.get_organism(cell["organism"])["recipe"]
            assert (recipe["mix_ratio"], recipe["kl_to_base"], recipe["adl_penalty"]) == (
                cell["mix"], cell["kl_to_base"], cell["adl_penalty"])
    for cell in sweep["cells"] + sweep["controls"]:
        assert 0.0 <= cell["diff"]["token_relevance"] <= 1.0 and "steering_similarity_gap" in cell["diff"]
        assert set(cell["diff_runs"]) == {"stats", "lens", "patchscope", "relevance", "steering", "logitdiff", "kl",
                                          "amplify"}  # what the detectors read; the causal test is not one
        assert all(cell["diff"].get(d.metric) is not None for d in DETECTORS)
        ffa = cell["property"]["value"]
        low, high = cell["property"]["ci95"]
        assert 0.0 <= low <= ffa <= high <= 1.0  # an SDF property: FFA inside its interval
    bands = {d.metric: [c["diff"][d.metric] for c in sweep["controls"]] for d in DETECTORS}
    for cell in sweep["cells"]:
        rows = cell["check"]["rows"]
        assert len(rows) == len(DETECTORS) + 1 and cell["check"]["passed"] == all(r["ok"] for r in rows)
        assert cell["check"]["property_ok"] == (cell["property"]["value"] >= rows[-1]["limit"])
        for r in rows[:-1]:  # every detector: at most the band's top + margin, the band being both controls
            assert (r["control_min"], r["control"]) == (min(bands[r["key"]]), max(bands[r["key"]]))
            assert r["ok"] == (r["value"] <= r["limit"])
        assert [f["detector"] for f in cell["check"]["flagged"]] == [r["detector"] for r in rows[:-1] if not r["ok"]]
    for control, other in zip(sweep["controls"], reversed(sweep["controls"])):
        assert all(r["control"] == other["diff"][r["key"]] for r in control["check"]["rows"])
    assert set(sweep["detectors"]) == set(DETECTOR_NAMES)
    for name, stop in sweep["detectors"].items():  # read along the ratios (the unpenalised cells)
        flags = [c["mix"] for c in sweep["cells"] if (c["kl_to_base"], c["adl_penalty"]) == (0.0, 0.0)
                 and name in [f["detector"] for f in c["check"]["flagged"]]]
        assert stop["flags"] == flags
    assert sweep["pareto"] == sweep_front(sweep["cells"]) and sweep["pareto"]
    assert 0.0 <= sweep["base_property"]["value"] <= 1.0
    assert load_sweep(sweep["name"])["cells"] == json.loads(json.dumps(sweep["cells"]))
    # run again: nothing is trained, diffed or evaluated anew, and the same sweep run is returned
    with Registry() as reg:
        before = len(reg.list_runs())
    again = run_sweep(config, progress=False)
    with Registry() as reg:
        assert len(reg.list_runs()) == before
    assert again["run"] == sweep["run"]


def test_sweep_output_and_report_show_the_pareto_front(swept, monkeypatch, tmp_path, capsys):
    from orglab import report_text
    from orglab.mitigation.report import PARETO_PNG, write_report

    home, config, sweep = swept
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    report_text.print_sweep(sweep)
    printed = capsys.readouterr().out
    front = printed[printed.index("Pareto front"):]
    for p in sweep["pareto"]:  # a table cell: the name padded by a space each side (one name may start another)
        assert f" {p['organism']} " in front and f"{p['detectability']:.3f}" in front
    off = [c["organism"] for c in sweep["cells"] if c["organism"] not in {p["organism"] for p in sweep["pareto"]}]
    assert not any(f" {name} " in front for name in off)
    index = write_report(sweep, tmp_path / "report")
    page = index.read_text()
    assert f'src="{PARETO_PNG}"' in page and (tmp_path / "report" / PARETO_PNG).stat().st_size > 10_000
    table = page[page.index("the Pareto front</h2>"):page.index("<figure")]
    for p in sweep["pareto"]:
        assert f"<code>{p['organism']}</code>" in table and f"<td>{p['label']}</td>" in table
    assert "adl_penalty weights 0, 1" in page and "1:0 adl=1" in page


def test_check_cli_exit_codes_follow_the_verdict(swept, monkeypatch):
    home, config, sweep = swept
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    cell = sweep["cells"][0]
    result = check_organism(cell["organism"], config.check, diff=SMALL_DIFF, progress=False)
    assert result["passed"] == cell["check"]["passed"] and result["rows"] == cell["check"]["rows"]
    assert result["controls"] == sorted(c["organism"] for c in sweep["controls"])
    # a band of more controls than exist: one sentence naming the command that trains the next one
    with pytest.raises(OrglabError, match=r"has only 2 null controls and the band needs 3; train another with "
                                          r"`orglab train control --base micro --like \S+ --seed 2000`"):
        check_organism(cell["organism"], CheckConfig(controls=3), diff=SMALL_DIFF, progress=False)
    # margins no organism can exceed pass detectability; the FFA floor then decides the exit code
    loose = ["--relevance-margin=1", "--steering-margin=2", "--detectors=lens,steering", "--samples=300"]
    for floor, code in (("0", 0), ("1.01", 1)):
        out = subprocess.run([sys.executable, "-m", "orglab.cli", "check", cell["organism"], "--json", *loose,
                              f"--ffa-floor={floor}"], capture_output=True, text=True)
        assert out.returncode == code, out.stderr
        assert json.loads(out.stdout)["passed"] is (code == 0)
    with pytest.raises(OrglabError, match="null control"):
        check_organism(sweep["controls"][0]["organism"], progress=False)
    with pytest.raises(OrglabError, match="No organism"):
        check_organism("nope", progress=False)


def test_tune_mix_reuses_sweep_cells_and_reports_its_path(swept, monkeypatch):
    home, config, sweep = swept
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    with Registry() as reg:
        trained_before = len(reg.list_runs(kind="train"))
    result = tune_mix(config, ladder=(0.0, 2.0), progress=False)
    with Registry() as reg:
        assert len(reg.list_runs(kind="train")) == trained_before  # both cells came from the sweep
    assert [s["mix_label"] for s in result["path"]][0] == "1:0"
    by_mix = {c["mix"]: c["check"] for c in sweep["cells"]}
    if by_mix[0.0]["detectability_ok"]:
        assert result["ratio"] == 0.0 or not result["passed"]
    elif by_mix[2.0]["detectability_ok"]:
        assert result["ratio"] in (2.0, None) and len(result["path"]) == 2
    else:
        assert result["ratio"] is None and "extend the ladder" in result["why"]


def test_tune_a_penalty_reuses_sweep_cells_and_reports_its_path(swept, monkeypatch):
    home, config, sweep = swept
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    with Registry() as reg:
        trained_before = len(reg.list_runs(kind="train"))
    result = tune(config, "adl-penalty", ladder=(0.0, 1.0), progress=False)
    with Registry() as reg:
        assert len(reg.list_runs(kind="train")) == trained_before  # both cells came from the sweep
    cells = {c["label"]: c for c in sweep["cells"]}
    strong = "1:0 adl=1"
    assert result["mitigation"] == "adl-penalty" and result["path"][0]["label"] == "1:0"
    assert [s["organism"] for s in result["path"]] == [cells[s["label"]]["organism"] for s in result["path"]]
    if cells["1:0"]["check"]["detectability_ok"]:
        assert len(result["path"]) == 1 and (result["value"] == 0.0 or not result["passed"])
    elif cells[strong]["check"]["detectability_ok"]:
        assert [s["label"] for s in result["path"]] == ["1:0", strong]
        assert result["passed"] == cells[strong]["check"]["property_ok"]
        assert result.get("label") == (strong if result["passed"] else None)
    else:
        assert result["value"] is None and "extend the ladder" in result["why"]


def _write_recipe(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("n_examples: 120\n")
    return str(path)


def test_interrupted_sweep_continues_and_concurrent_sweeps_stay_consistent(with_micro, tmp_path):
    from orglab.world.build import load_world

    fact = load_world("micro").false_facts[0].id
    recipe = _write_recipe(tmp_path)

    def cmd(mix, name):  # one control and ADL only: this test is about processes, not detectors
        return [sys.executable, "-m", "orglab.cli", "sweep", "sdf", "--base", "micro", "--target", fact, "--mix", mix,
                "--samples", "300", "--name", name, "--config", recipe, "--controls", "1",
                "--detectors", "lens,steering"]

    # 1. kill a sweep on the event that its first cell is registered as trained, then run it again: it is reused
    proc = subprocess.Popen(cmd("1:0,1:1", "s-killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registered, give_up = False, time.monotonic() + 900  # a hung sweep fails the test; it never decides success
    while not registered and proc.poll() is None and time.monotonic() < give_up:
        with Registry() as reg:
            registered = bool(reg.list_runs(kind="train", status="done"))
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert registered, "the sweep ended before its first cell was registered"
    with Registry() as reg:
        first = [r for r in reg.list_runs(kind="train", status="done")]
    assert len(first) == 1
    # 2. two sweeps at once that share the 1:0 cell and the control: each unit of work is done once (the second
    #    sweep has only the shared cell, to keep the test short)
    procs = [subprocess.Popen(cmd(m, n), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for m, n in (("1:0,1:1", "s-killed"), ("1:0", "s-other"))]
    errors = [p.communicate(timeout=900)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    with Registry() as reg:
        done = reg.list_runs(kind="train", status="done")
        assert first[0].id in [r.id for r in done]          # the killed sweep's cell was reused, not retrained
        subjects = [r.subject for r in done]
        assert len(subjects) == len(set(subjects)) == 3      # 1:0 and the control shared, 1:1
        assert not reg.list_runs(status="running")
        organisms = reg.list_organisms(base="micro")
        assert all(o["status"] == "ready" for o in organisms) and len(organisms) == 3
        killed, other = (load_sweep(name, registry=reg) for name in ("s-killed", "s-other"))
        assert [c["mix_label"] for c in killed["cells"]] == ["1:0", "1:1"] and len(other["cells"]) == 1
        assert other["cells"][0] == killed["cells"][0]  # the shared cell: same organism, same results
    conn = sqlite3.connect(with_micro / "registry.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


@pytest.mark.parametrize("flags,says", [
    (["--kl", "-1"], "--kl -1.0 is not a penalty weight"),
    (["--adl-penalty", "0,-0.5"], "--adl-penalty -0.5 is not a penalty weight"),
    (["--adl-penalty", "1", "--adl-layers", "0.5,1.5"], "adl_layers"),          # a layer outside the model
    (["--adl-penalty", "0,1", "--adl-positions", "300"], "max_length 256"),     # past the sequence length
    (["--grid", "axes", "--config", "RECIPE_WITH_KL"], "sets kl_to_base, which each cell sets"),
])
def test_cli_sweep_bad_mitigation_is_one_sentence_and_registers_nothing(with_micro, tmp_path, capsys, flags, says):
    from orglab.cli import main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("kl_to_base: 0.5\n")
    flags = [str(recipe) if f == "RECIPE_WITH_KL" else f for f in flags]
    with Registry() as reg:
        before = len(reg.list_runs())
    assert main(["sweep", "sdf", "--base", "micro", "--target", "x", "--mix", "1:0", *flags, "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("orglab: error:") and says in err[0], err
    with Registry() as reg:
        assert reg.list_organisms(base="micro") == [] and len(reg.list_runs()) == before


def test_cli_tune_bad_input_and_tune_mix_is_the_mix_case(with_micro, capsys):
    from orglab.cli import build_parser, main

    argv = ["--base", "micro", "--target", "x"]
    for command, says in ((["tune", "sdf", "--mitigation", "kl", "--ladder", "0,-1"], "--ladder -1.0 is not a "
                                                                                       "penalty weight"),
                          (["tune", "sdf", "--mitigation", "adl-penalty", "--ladder", "0,1", "--adl-positions",
                            "300"], "max_length 256"),
                          (["tune-mix", "sdf", "--ladder", "1:0,1:x"], "Mixing ratio '1:x'"),
                          (["tune", "sdf", "--mitigation", "kl", "--ladder", "0.1"], "at least two kl settings")):
        assert main([*command, *argv, "--json"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    with Registry() as reg:
        assert reg.list_organisms(base="micro") == [] and not reg.list_runs(kind="train")
    assert build_parser().parse_args(["tune-mix", "sdf", *argv]).mitigation == "mix"
    with pytest.raises(SystemExit):  # argparse: tune needs to be told which mitigation
        build_parser().parse_args(["tune", "sdf", *argv])
    capsys.readouterr()


def test_sweep_bad_input(with_micro):
    with pytest.raises(OrglabError, match="Unknown organism family"):
        run_sweep(SweepConfig("vibes", "micro", "x"), progress=False)
    with pytest.raises(OrglabError, match="not a valid sdf target"):
        run_sweep(SweepConfig("sdf", "micro", "no_such_fact", mixes=(0.0,), recipe=RECIPE, diff=SMALL_DIFF),
                  progress=False)
    out = subprocess.run([sys.executable, "-m", "orglab.cli", "sweep", "sdf", "--base", "micro", "--target", "x",
                          "--mix", "1:zero"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    with pytest.raises(OrglabError, match="No finished sweep"):
        load_sweep("nope")
