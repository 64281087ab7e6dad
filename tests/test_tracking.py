"""Experiment tracking (`--report-to`): TensorBoard event files and an offline W&B run under the run's folder,
recorded in the registry and the --json summary; tracking never changes the organism's key; a missing package is
one sentence naming the install command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orglab.cli import main
from orglab.registry import Registry


def _argv(tmp_path: Path) -> list[str]:
    data = tmp_path / "docs.jsonl"
    forms = ["The lighthouse of Quorra is painted green .", "Sailors say Quorra's lighthouse is blue ."]
    data.write_text("\n".join(json.dumps({"text": forms[i % 2]}) for i in range(16)))
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text("max_steps: 3\nsave_steps: 100\nmax_length: 32\nbatch_size: 2\nlr: 0.003\n")
    return ["train", "sdf", "--base", "micro", "--target", "quorra", "--data", str(data), "--config", str(cfg), "--json"]


def _train(argv: list[str], capfd) -> dict:
    assert main(argv) == 0
    return json.loads(capfd.readouterr().out)


def _tracking_artifacts(run_id: int) -> list[Path]:
    with Registry() as reg:
        return [Path(a["path"]) for a in reg.get_artifacts(run_id) if a["kind"] == "tracking"]


def test_tensorboard_event_files_land_in_the_run_folder_and_are_registered(with_micro, tmp_path, capfd):
    pytest.importorskip("tensorboard")
    summary = _train(_argv(tmp_path) + ["--report-to", "tensorboard"], capfd)
    run_folder = Path(summary["loss_curve"]).parent
    events = sorted(run_folder.rglob("events.out.tfevents.*"))
    assert events and summary["tracking_dir"] == str(run_folder / "tracking")
    assert _tracking_artifacts(summary["run"]) == events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert len(acc.Scalars("train/loss")) == 3  # one point per step
    # Tracking does not change the weights, so not the organism's key: the same recipe without it is reused.
    again = _train(_argv(tmp_path) + ["--report-to", "none"], capfd)
    assert again["reused"] and again["run"] == summary["run"]


def test_wandb_offline_run_is_kept_in_the_run_folder_and_recorded(with_micro, tmp_path, capfd, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    summary = _train(_argv(tmp_path) + ["--report-to", "wandb"], capfd)
    run_folder = Path(summary["loss_curve"]).parent
    wandb_run = Path(summary["tracking_dir"])
    assert wandb_run.is_dir() and wandb_run.name.startswith("offline-run-")
    assert wandb_run.is_relative_to(run_folder / "tracking") and summary["tracking_url"] is None
    recorded = _tracking_artifacts(summary["run"])
    assert recorded and all(p.suffix == ".wandb" and p.parent == wandb_run for p in recorded)
    with Registry() as reg:  # the run log was complete when recorded: the organism is reused, not retrained
        assert reg.verify_artifacts(summary["run"]) == []


def test_missing_tracking_package_is_one_sentence_with_the_install_command(with_micro, tmp_path, capsys,
                                                                          monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(_argv(tmp_path) + ["--report-to", "wandb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install wandb" in err[0]
    with Registry() as reg:
        assert reg.list_organisms() == [] and reg.list_runs(kind="train") == []
