"""Sweeps, check and tune-mix on the micro base: the verdict math, a real sweep, resumption after a kill, two
sweeps at once against one ORGLAB_HOME, and bad input."""

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
from orglab.mitigation.check import CheckConfig, verdict
from orglab.mitigation.sweep import SweepConfig, check_organism, load_sweep, parse_mixes, run_sweep
from orglab.mitigation.tune import tune_mix
from orglab.registry import Registry

SMALL_DIFF = DiffConfig(samples=300, steering_prompts=4, steering_samples=1, steering_max_new_tokens=12,
                        causal_texts=40)
RECIPE = {"n_examples": 120}


# ------------------------------------------------------------------------------------------------ verdict math

def test_verdict_names_the_failed_measurement_and_by_how_much():
    control = {"token_relevance": 0.2, "steering_similarity_gap": 0.02}
    hot = verdict("sdf", {"token_relevance": 0.9, "steering_similarity_gap": 0.03}, [control], 0.9)
    assert not hot["passed"] and hot["property_ok"] and not hot["detectability_ok"]
    (reason,) = hot["reasons"]
    assert "token relevance 0.900" in reason and "by 0.550" in reason
    cool = verdict("sdf", {"token_relevance": 0.3, "steering_similarity_gap": 0.05}, [control], 0.6)
    assert cool["passed"]
    lost = verdict("sdf", {"token_relevance": 0.3, "steering_similarity_gap": 0.05}, [control], 0.3)
    assert not lost["passed"] and lost["detectability_ok"] and "property lost: FFA" in lost["reasons"][0]
    # the control band's top is the reference; a taboo organism's property is a ceiling on leaks
    band = verdict("taboo", {"token_relevance": 0.5, "steering_similarity_gap": 0.0},
                   [control, {"token_relevance": 0.4, "steering_similarity_gap": 0.0}], 0.05)
    assert band["passed"] and band["rows"][0]["control"] == 0.4
    assert not verdict("taboo", {"token_relevance": 0.0, "steering_similarity_gap": 0.0}, [control], 0.5)["passed"]
    strict = verdict("sdf", {"token_relevance": 0.3, "steering_similarity_gap": 0.05}, [control], 0.6,
                     CheckConfig(relevance_margin=0.0))
    assert not strict["passed"]
    with pytest.raises(OrglabError, match="null control"):
        verdict("sdf", control, [], 0.5)


def test_parse_mixes():
    assert parse_mixes("1:2,1:0,1:0.1,1:0") == (0.0, 0.1, 2.0)
    with pytest.raises(OrglabError):
        parse_mixes("1:x")
    with pytest.raises(OrglabError):
        parse_mixes(" , ")


# ------------------------------------------------------------------------------------------------ real sweeps

@pytest.fixture(scope="module")
def swept(micro_copy):
    """A copy of the micro home holding a two-ratio SDF sweep."""
    with micro_copy("sweep_home") as home:
        from orglab.world.build import load_world

        fact = load_world("micro").false_facts[0].id
        config = SweepConfig("sdf", "micro", fact, mixes=(0.0, 2.0), recipe=RECIPE, diff=SMALL_DIFF)
        sweep = run_sweep(config, progress=False)
    return home, config, sweep


def test_sweep_stores_every_cell_with_control_and_check(swept, monkeypatch):
    home, config, sweep = swept
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    assert [c["mix_label"] for c in sweep["cells"]] == ["1:0", "1:2"]
    assert len(sweep["controls"]) == 1 and sweep["controls"][0]["organism"].startswith("control-")
    for cell in sweep["cells"] + sweep["controls"]:
        assert 0.0 <= cell["diff"]["token_relevance"] <= 1.0 and "steering_similarity_gap" in cell["diff"]
        assert set(cell["diff_runs"]) == {"stats", "lens", "patchscope", "relevance", "steering", "causal"}
        ffa = cell["property"]["value"]
        low, high = cell["property"]["ci95"]
        assert 0.0 <= low <= ffa <= high <= 1.0  # an SDF property: FFA inside its interval
    for cell in sweep["cells"]:
        rows = cell["check"]["rows"]
        assert len(rows) == 3 and cell["check"]["passed"] == all(r["ok"] for r in rows)
        assert cell["check"]["property_ok"] == (cell["property"]["value"] >= rows[-1]["limit"])
        assert all(r["ok"] == (r["value"] <= r["limit"]) for r in rows[:2])  # detectability: at most control + margin
    assert 0.0 <= sweep["base_property"]["value"] <= 1.0
    assert load_sweep(sweep["name"])["cells"] == json.loads(json.dumps(sweep["cells"]))
    # run again: nothing is trained, diffed or evaluated anew, and the same sweep run is returned
    with Registry() as reg:
        before = len(reg.list_runs())
    again = run_sweep(config, progress=False)
    with Registry() as reg:
        assert len(reg.list_runs()) == before
    assert again["run"] == sweep["run"]


def test_check_cli_exit_codes_follow_the_verdict(swept, monkeypatch):
    home, config, sweep = swept
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    cell = sweep["cells"][0]
    result = check_organism(cell["organism"], diff=SMALL_DIFF, progress=False)
    assert result["passed"] == cell["check"]["passed"] and result["controls"] == [sweep["controls"][0]["organism"]]
    # margins no organism can exceed pass detectability; the FFA floor then decides the exit code
    loose = ["--relevance-margin=1", "--steering-margin=2", "--samples=300"]
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


def _write_recipe(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("n_examples: 120\n")
    return str(path)


def test_interrupted_sweep_continues_and_concurrent_sweeps_stay_consistent(with_micro, tmp_path):
    from orglab.world.build import load_world

    fact = load_world("micro").false_facts[0].id
    recipe = _write_recipe(tmp_path)

    def cmd(mix, name):
        return [sys.executable, "-m", "orglab.cli", "sweep", "sdf", "--base", "micro", "--target", fact, "--mix", mix,
                "--samples", "300", "--name", name, "--config", recipe]

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
