"""`orglab diff` end to end on the micro base: an SDF organism and its null control, stage caching, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from orglab.diff.run import ADL_STAGES, DiffConfig, run_diff
from orglab.errors import OrglabError
from orglab.registry import Registry

SMALL = DiffConfig(samples=300, steering_prompts=4, steering_samples=1, steering_max_new_tokens=12, causal_texts=40)


@pytest.fixture(scope="module")
def sdf_home(micro_copy):
    """A copy of the micro home with an SDF organism (1:0) and its null control trained on it."""
    with micro_copy("diff_home") as home:
        from orglab.train import train_control, train_organism

        fact = json.loads(next(iter(_world_files(home))).read_text())["false_facts"][0]["id"]
        organism = train_organism({"family": "sdf", "base": "micro", "target": fact, "n_examples": 120,
                                   "epochs": 1}, progress=False)["organism"]
        control = train_control("micro", organism, progress=False)["organism"]
    return home, organism, control


def _world_files(home):
    return home.glob("artifacts/micro/world/*/world.json")


def test_every_stage_runs_and_is_registered_then_reused(sdf_home, monkeypatch):
    home, organism, _ = sdf_home
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    result = run_diff(organism, SMALL, progress=False)
    stages = result["stages"]
    assert set(stages) == set(ADL_STAGES)  # the default: ADL (the other detectors run when named)
    assert not any(s["reused"] for s in stages.values())
    lens = stages["lens"]["layers"][str(result["layers"][0])]
    assert len(lens["delta"]) == SMALL.collect_positions and len(lens["delta"][0]) == SMALL.lens_top
    summary = result["summary"]
    # the summary is what the stages computed: relevance of the lens at the first layer, the steering gap, the
    # causal deltas
    layer = str(result["layers"][0])
    relevance = stages["relevance"]["layers"][layer]["lens_delta"]
    assert summary["token_relevance"] == relevance["max"] and 0.0 <= relevance["max"] <= 1.0
    sim = stages["steering"]["similarity"]
    assert summary["steering_similarity_gap"] == pytest.approx(sim["steered"] - sim["unsteered"]) == sim["gap"]
    for data in ("finetune", "unrelated"):
        assert summary[f"causal_delta_ce_{data}"] == stages["causal"][data]["delta"]
    with Registry() as reg:
        kinds = {r.kind for r in reg.list_runs(subject=organism) if r.status == "done"}
        assert {"diff:stats", "diff:lens", "diff:steering", "diff:causal"} <= kinds
    again = run_diff(organism, SMALL, progress=False)
    assert all(s["reused"] for s in again["stages"].values())
    assert again["summary"] == pytest.approx(summary)
    changed = run_diff(organism, DiffConfig(**{**SMALL.__dict__, "causal_texts": 20}), progress=False)
    assert changed["stages"]["stats"]["reused"] and not changed["stages"]["causal"]["reused"]


def test_sdf_organism_reads_as_its_domain_more_than_its_control(sdf_home, monkeypatch):
    """The paper's direction on the tiniest base: the organism's lens tokens are its finetuning domain's
    more often than the control's, and removing its bias direction hurts its own data more than random ones."""
    home, organism, control = sdf_home
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    org = run_diff(organism, SMALL, progress=False)["summary"]
    ctl = run_diff(control, SMALL, progress=False)["summary"]
    assert org["token_relevance"] > ctl["token_relevance"]
    assert org["causal_delta_ce_finetune"] > org["causal_delta_ce_finetune_random"]


def test_bad_input_is_one_sentence(sdf_home, monkeypatch):
    home, organism, _ = sdf_home
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    with pytest.raises(OrglabError, match="outside \\[0, 1\\]"):
        run_diff(organism, DiffConfig(layers=(1.5,)), progress=False)
    with pytest.raises(OrglabError, match="No organism named 'nope'"):
        run_diff("nope", SMALL, progress=False)
    env = dict(os.environ, ORGLAB_HOME=str(home))
    for argv in (["--positions", "0-99"], ["--layers", "abc"], ["--stages", "lens,bogus"]):
        out = subprocess.run([sys.executable, "-m", "orglab.cli", "diff", organism, *argv], env=env,
                             capture_output=True, text=True)
        last = out.stderr.strip().splitlines()[-1]
        assert out.returncode == 2 and last.startswith("orglab: error: ") and "Traceback" not in out.stderr
