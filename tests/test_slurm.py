"""Where a sweep's cells run (orglab.mitigation.executor): `--executor local` gives the same sweep as inline; a
real one-node SLURM (tests/slurm_cluster.py) runs a sweep as job arrays, resubmits a cancelled task and records
the sweep; bad input (no sbatch, unknown partition, unknown executor) is one sentence and loses nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from orglab.errors import OrglabError
from orglab.mitigation.check import CheckConfig
from orglab.mitigation.executor import (ExecutorOptions, task_folder_name, executor_dir, executor_options,
                                       time_minutes)
from orglab.mitigation.sweep import SweepConfig, run_sweep
from orglab.registry import Registry

from test_mitigation import RECIPE, SMALL_DIFF

ADL_ONE_CONTROL = CheckConfig(detectors=("lens", "steering"), controls=1)


def _fact():
    from orglab.world.build import load_world

    return load_world("micro").false_facts[0].id


def _cmd(fact, recipe, *extra):
    return [sys.executable, "-m", "orglab.cli", "sweep", "sdf", "--base", "micro", "--target", fact,
            "--mix", "1:0,1:1", "--samples", "300", "--config", recipe, "--controls", "1",
            "--detectors", "lens,steering", *extra]


def _recipe(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("n_examples: 120\n")
    return str(path)


def _one_done_train_each(home):
    with Registry() as reg:
        done = [r.subject for r in reg.list_runs(kind="train", status="done")]
        assert len(done) == len(set(done)) == 3, done    # 1:0, 1:1 and the null control, each trained once
        assert not reg.list_runs(status="running")
    conn = sqlite3.connect(home / "registry.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def _trains(registry_file, status: str | None = None) -> list[str]:
    """The statuses of the train runs in a registry file, read through a read-only connection (a file that is
    not there yet, or is being copied into place, has none)."""
    if not registry_file.exists():
        return []
    try:
        conn = sqlite3.connect(f"{registry_file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT status FROM runs WHERE kind = 'train'").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    return [r[0] for r in rows if status is None or r[0] == status]


# ------------------------------------------------------------------------------------------------ options

def test_executor_options_and_bad_input(tmp_path, monkeypatch):
    assert time_minutes("90") == 90 and time_minutes("1:30:00") == 90 and time_minutes("2-00:00:00") == 2880
    config = tmp_path / "slurm.yaml"
    config.write_text("partition: gpu\ntime: '2:00:00'\nmem: 16G\ngpus-per-task: 1\nextra: ['--qos=high']\n")
    opts = executor_options("slurm", str(config), partition="debug", extra=["account=lab"])
    assert (opts.partition, opts.time, opts.mem, opts.gpus_per_task) == ("debug", "2:00:00", "16G", 1)
    assert opts.extra == ("--qos=high", "account=lab")
    for bad, says in ((lambda: ExecutorOptions("vibes").validate(), "Unknown executor 'vibes'"),
                      (lambda: executor_options("slurm", time="soon"), "is not a SLURM time"),
                      (lambda: executor_options("slurm", str(tmp_path / "no.yaml")), "does not exist")):
        with pytest.raises(OrglabError, match=says):
            bad()
    # executor settings never enter the sweep's hashed config
    assert not {"executor", "partition", "parallel"} & set(SweepConfig.__dataclass_fields__)


def test_slurm_without_sbatch_and_unknown_executor_lose_nothing(with_micro, tmp_path):
    recipe = _recipe(tmp_path)
    with Registry() as reg:
        before = [(r.id, r.status) for r in reg.list_runs()]
    env = {**os.environ, "PATH": str(tmp_path / "empty")}  # no sbatch anywhere
    out = subprocess.run(_cmd("x", recipe, "--executor", "slurm"), capture_output=True, text=True, env=env)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "needs SLURM's sbatch" in last and "--executor local" in last
    out = subprocess.run(_cmd("x", recipe, "--executor", "cloud"), capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice: 'cloud'" in out.stderr
    with Registry() as reg:
        assert [(r.id, r.status) for r in reg.list_runs()] == before


# ------------------------------------------------------------------------------------------------ local

def _done_keys(path) -> set[tuple]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return set(conn.execute("SELECT kind, subject, config_hash, started_at FROM runs WHERE status = 'done'"))
    finally:
        conn.close()


def _watch_the_main_registry(monkeypatch, home) -> list:
    """Wrap the driver's snapshots and merges (orglab.task_registry, called in this process; the tasks run in
    spawned processes with the real code): while tasks run, between two of the driver's own steps, the main
    registry's bytes must not change; each merge brings the task's finished runs and is idempotent."""
    from orglab import task_registry
    from orglab.registry import Merged

    from test_registry import _fingerprint

    main, last, merged = home / "registry.sqlite", {}, []
    real_snapshot, real_import = task_registry.take_snapshot, task_registry.import_task

    def snapshot(dest):
        out = real_snapshot(dest)
        last["bytes"] = _fingerprint(main)
        return out

    def merge(path):
        assert _fingerprint(main) == last["bytes"], f"the main registry changed while {path.parent.name} ran"
        done = real_import(path)
        assert real_import(path) == Merged()                  # idempotent
        task = _done_keys(path)
        assert {k[:3] for k in task} <= {k[:3] for k in _done_keys(main)}
        merged.append((path, done, task))
        last["bytes"] = _fingerprint(main)
        return done

    monkeypatch.setattr(task_registry, "take_snapshot", snapshot)
    monkeypatch.setattr(task_registry, "import_task", merge)
    return merged


def test_local_executor_gives_the_inline_sweep(micro_copy, monkeypatch):
    """The same cells, organisms and verdicts whether the cells ran inline or as parallel local processes; the
    local tasks register into private registries that only the driver merges into the main one."""
    sweeps = {}
    for name in ("inline", "local"):
        with micro_copy(f"exec_{name}") as home:
            config = SweepConfig("sdf", "micro", _fact(), mixes=(0.0, 1.0), recipe=RECIPE, diff=SMALL_DIFF,
                                 check=ADL_ONE_CONTROL)
            executor = ExecutorOptions(name, parallel=2) if name == "local" else None
            merged = _watch_the_main_registry(monkeypatch, home) if name == "local" else []
            sweeps[name] = run_sweep(config, progress=False, executor=executor)
            _one_done_train_each(home)
            if name == "local":
                folder = executor_dir(task_folder_name(config))
                assert sorted(p.name for p in (folder / "cells").glob("*.json")) == ["cell-0-s0.json",
                                                                                     "cell-1-s0.json"]
                assert [p.name for p in (folder / "controls").glob("*.json")] == ["controls-s0.json"]
                # one merge per task, of the registry in that task's own folder, which holds its trainings
                assert sorted(p.parent.name for p, _, _ in merged) == ["cell-0-s0", "cell-1-s0", "controls-s0"]
                trained = {k[1]: k for _, _, task in merged for k in task if k[0] == "train"}
                main_trained = {k[1]: k for k in _done_keys(home / "registry.sqlite") if k[0] == "train"}
                assert trained == main_trained                        # the same runs, started by the tasks
                assert sum(done.runs for _, done, _ in merged) >= 3 + 3  # 3 trainings, and their diffs and evals
    inline, local = sweeps["inline"], sweeps["local"]
    assert inline["config"] == local["config"]
    assert [c["organism"] for c in inline["cells"]] == [c["organism"] for c in local["cells"]]
    assert [c["organism"] for c in inline["controls"]] == [c["organism"] for c in local["controls"]]
    for a, b in zip(inline["cells"], local["cells"]):
        assert a["check"]["passed"] == b["check"]["passed"]
        assert [f["detector"] for f in a["check"]["flagged"]] == [f["detector"] for f in b["check"]["flagged"]]
        assert a["diff"]["token_relevance"] == pytest.approx(b["diff"]["token_relevance"], abs=0.05)


# ------------------------------------------------------------------------------------------------ slurm

@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    from slurm_cluster import SlurmUnavailable, start_cluster

    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as exc:
        pytest.skip(f"no SLURM for this test: {exc}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    yield cluster
    cluster.stop()
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


def test_slurm_sweep_resubmits_a_cancelled_task_and_records_the_sweep(slurm, with_micro, tmp_path):
    fact, recipe = _fact(), _recipe(tmp_path)
    # a partition that does not exist: one sentence, before anything is submitted
    out = subprocess.run(_cmd(fact, recipe, "--executor", "slurm", "--partition", "nope"), capture_output=True,
                         text=True)
    assert out.returncode != 0 and "SLURM has no partition 'nope'; partitions are debug" in out.stderr
    assert slurm.run("squeue", "-h").stdout.strip() == ""

    main = with_micro / "registry.sqlite"
    driver = subprocess.Popen(_cmd(fact, recipe, "--executor", "slurm", "--partition", "debug", "--time", "30",
                                   "--name", "s-slurm", "--json"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # cancel the controls task while it trains (a train run of it is 'running' in the task's private registry)
    def state() -> dict:  # the driver's state file, in the folder named after the sweep and its settings' hash
        found = sorted((with_micro / "executor").glob("s-slurm-*/state.json"))
        return json.loads(found[0].read_text()) if found else {}

    def controls_registries() -> list:
        return sorted((with_micro / "executor").glob("s-slurm-*/controls/tasks/controls-s0/registry-*.sqlite"))

    cancelled, give_up = None, time.monotonic() + 600
    while cancelled is None and driver.poll() is None and time.monotonic() < give_up:
        try:
            job = state()["waves"]["controls"]["controls-s0"]["job"]
        except (OSError, ValueError, KeyError):
            job = None
        if job:
            assert not _trains(main, "running")            # a task's work never shows in the main registry
            if any(_trains(path, "running") for path in controls_registries()):
                assert slurm.run("scancel", job).returncode == 0
                cancelled = job
        time.sleep(0.3)
    assert cancelled, "the controls task never trained"
    # once the cells' array is submitted, kill the driver; a new driver re-attaches to the queued/running jobs
    cells, give_up = None, time.monotonic() + 600
    while cells is None and driver.poll() is None and time.monotonic() < give_up:
        try:
            cells = {k: r["job"] for k, r in state()["waves"]["cells"].items()}
        except (OSError, ValueError, KeyError):
            time.sleep(0.3)
    assert cells and driver.poll() is None, "the driver ended before it submitted the cells"
    driver.kill()
    _, stderr = driver.communicate()
    assert "resubmitting controls-s0" in stderr
    assert set(slurm.run("squeue", "-h", "-r", "-o", "%i").stdout.split()) & set(cells.values())
    again = subprocess.run(_cmd(fact, recipe, "--executor", "slurm", "--partition", "debug", "--time", "30",
                                "--name", "s-slurm", "--json"), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    waves = state()["waves"]
    assert waves["controls"]["controls-s0"]["attempts"] == 2 and waves["controls"]["controls-s0"]["job"] != cancelled
    assert {k: r["job"] for k, r in waves["cells"].items()} == cells        # re-attached, not submitted again
    assert sorted(cells) == ["cell-0-s0", "cell-1-s0"]
    assert all(rec["attempts"] == 1 for rec in waves["cells"].values())
    stdout = again.stdout
    # per-task logs in the sweep's executor folder
    assert list((with_micro / "executor").glob("s-slurm-*/cells/logs/**/*_log.out"))
    sweep = json.loads(stdout)
    assert [c["mix_label"] for c in sweep["cells"]] == ["1:0", "1:1"] and len(sweep["controls"]) == 1
    assert all("passed" in c["check"] for c in sweep["cells"])
    _one_done_train_each(with_micro)
    # the cancelled attempt's train run stayed in the task's registry (reaped there by the resubmitted attempt,
    # which reused that registry and its finished work); the main registry got only the finished runs
    [private] = controls_registries()
    assert _trains(private, "failed") and _trains(private, "done")
    assert _trains(main) == _trains(main, "done")
    assert slurm.run("squeue", "-h").stdout.strip() == ""
