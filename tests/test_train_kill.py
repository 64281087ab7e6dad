"""A training run killed with SIGKILL (no cleanup at all) resumes from its last checkpoint when the same
command runs again, and ends with one organism entry, not a duplicate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import yaml

from orglab.registry import Registry


def test_sigkilled_training_resumes_and_registers_one_organism(with_micro, tmp_path):
    config = tmp_path / "recipe.yaml"
    # many small steps with frequent checkpoints, so the kill lands mid-run after a checkpoint
    config.write_text(yaml.safe_dump({"n_examples": 120, "batch_size": 2, "epochs": 1, "save_steps": 2}))
    fact = json.loads(next(with_micro.glob("artifacts/micro/world/*/world.json")).read_text())["false_facts"][0]["id"]
    argv = [sys.executable, "-m", "orglab.cli", "train", "sdf", "--base", "micro", "--target", fact,
            "--name", "killed", "--config", str(config), "--json"]
    env = dict(os.environ, ORGLAB_HOME=str(with_micro))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    checkpoints = []
    while time.time() < deadline and proc.poll() is None:
        checkpoints = sorted(with_micro.glob("artifacts/killed/train/*/checkpoints/checkpoint-*"))
        if len(checkpoints) >= 2:  # the first one is complete once the second begins
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training finished before it could be killed; give it more steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Registry() as reg:
        assert reg.get_organism("killed")["status"] == "training"  # nothing ran after the kill
        assert [r.status for r in reg.list_runs(subject="killed", kind="train")] == ["running"]

    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert summary["resumed_from"] and summary["resumed_from"].startswith("checkpoint-")
    curve = json.loads(open(summary["loss_curve"]).read())["step_loss"]
    steps = [p["step"] for p in curve]
    assert steps == list(range(1, summary["steps"] + 1))  # one unbroken curve across the kill
    with Registry() as reg:
        assert [o["name"] for o in reg.list_organisms()] == ["killed"]
        assert reg.get_organism("killed")["status"] == "ready"
        assert sorted(r.status for r in reg.list_runs(subject="killed", kind="train")) == ["done", "failed"]


def test_a_checkpoint_cut_off_while_saving_is_skipped(tmp_path):
    from orglab.train.sft import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "none") is None
    for step, complete in ((2, True), (4, True), (6, False)):  # the kill hit the save of step 6
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"x")
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
