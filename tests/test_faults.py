"""Fault injection (docs/reliability.md): bad input, broken registries and files, a dead judge and killed runs,
each on a private copy of a micro home with one trained SDF organism. Every scenario ends in one `orglab: error:`
sentence with exit 2 (130 for Ctrl-C), no traceback, an intact registry and no row written by rejected input.

The CLI runs in-process (`orglab.cli.main`) wherever it can; only signals need a child process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orglab import registry as registry_module
from orglab.cli import main

TRAIN = {"n_examples": 40, "max_steps": 6, "batch_size": 4, "max_length": 64}


@pytest.fixture(scope="module")
def organism_home(micro_copy):
    """A micro home with one SDF organism (about 10 s to train once for the module)."""
    with micro_copy("faults") as home:
        from orglab.train import train_organism
        from orglab.world.build import load_world

        fact = load_world("micro").false_facts[0].id
        organism = train_organism({"family": "sdf", "base": "micro", "target": fact, **TRAIN},
                                  progress=False)["organism"]
    return home, organism, fact


@pytest.fixture
def home(organism_home, tmp_path, monkeypatch):
    src, organism, fact = organism_home
    copy = tmp_path / "home"
    shutil.copytree(src, copy)
    monkeypatch.setenv("ORGLAB_HOME", str(copy))
    return copy, organism, fact


def run_cli(capfd, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capfd.readouterr()
    return code, out.out, out.err


def one_sentence(err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("orglab: error: "), err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def rows(home: Path) -> dict:
    """The registry's rows (every table) and its integrity verdict."""
    conn = sqlite3.connect(home / "registry.sqlite")
    try:
        out = {"integrity": conn.execute("PRAGMA integrity_check").fetchone()[0]}
        for table in ("bases", "organisms", "runs", "metrics", "artifacts"):
            out[table] = sorted(map(tuple, conn.execute(f"SELECT * FROM {table}").fetchall()), key=repr)
        return out
    finally:
        conn.close()


def default_sigint() -> None:
    """A child's SIGINT as in a terminal. A shell without job control starts background jobs (CI steps, `nohup ...
    &`) with SIGINT ignored, children inherit that, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*") if "-wal" not in p.name and "-shm" not in p.name}


def test_bad_arguments_are_rejected_before_anything_is_written(home, capfd, tmp_path):
    home, organism, fact = home
    a_file, a_dir = tmp_path / "file.txt", tmp_path / "folder"
    a_file.write_text("x")
    a_dir.mkdir()
    train = ("train", "sdf", "--base", "micro", "--target", fact)
    cases = [
        (train + ("--name", ".."), "is not a valid name"),
        (train + ("--name", "run:7"), "is not a valid name"),
        (train + ("--name", "x" * 300), "is not a valid name"),
        (train + ("--name", "two words"), "is not a valid name"),
        (train + ("--name", "a/b"), "is not a valid name"),
        (("sweep", "sdf", "--base", "micro", "--target", fact, "--name", ".."), "is not a valid name"),
        (train + ("--seed", "-7"), "--seed -7 is out of range"),
        (train + ("--seed", "99999999999999"), "is out of range"),
        (("world", "build", "--preset", "micro", "--seed", "-1"), "--seed -1 is out of range"),
        (("sweep", "sdf", "--base", "micro", "--target", fact, "--seeds=-1"), "--seeds -1 is out of range"),
        (train + ("--config", str(tmp_path / "missing.yaml")), "does not exist"),
        (train + ("--config", str(a_dir)), "is a directory"),
        (train + ("--data", str(a_dir)), "is a directory"),
        (("eval", organism, "--true-context", str(tmp_path / "missing.txt")), "does not exist"),
        (("eval", organism, "--bank", str(a_dir)), "is a directory"),
        (("eval", organism, "--suite", "taboo"), "does not measure"),
        (("demo", "--out", str(a_file)), "is a file, not a folder"),
        (("check", organism, "--relevance-margin", "nan"), "not a finite number"),
        (("check", organism, "--steering-margin", "-0.1"), "below 0"),
        (("check", organism, "--ffa-floor", "-1"), "below 0"),
        (("registry", "show", "99999999999999999999"), "No base, organism or run named"),
    ]
    before_rows, before_files = rows(home), files(home)
    for argv, fragment in cases:
        code, out, err = run_cli(capfd, *argv)
        assert code == 2, (argv, err[-1000:])
        one_sentence(err, fragment)
        assert out == ""
    assert rows(home) == before_rows and before_rows["integrity"] == "ok"
    assert files(home) == before_files


def test_read_only_registry(home, capfd, monkeypatch):
    home, organism, _ = home
    before = rows(home)
    real_connect = sqlite3.connect
    # root ignores file modes, so the file is opened read-only instead: SQLite then refuses writes the same way
    monkeypatch.setattr(registry_module.sqlite3, "connect",
                        lambda path, **kw: real_connect(f"file:{path}?mode=ro", uri=True, **kw))
    code, _, err = run_cli(capfd, "registry", "rm", organism)
    assert code == 2
    one_sentence(err, "registry.sqlite is read-only", "chmod")
    monkeypatch.undo()
    assert rows(home) == before


def test_locked_registry_says_how_long_it_waited(home, capfd, monkeypatch):
    home, organism, _ = home
    before = rows(home)
    monkeypatch.setattr(registry_module, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(home / "registry.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock past the busy timeout
    try:
        code, _, err = run_cli(capfd, "registry", "rm", organism)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2
    one_sentence(err, "stayed locked by another process", "0.2 s")
    assert rows(home) == before


@pytest.mark.parametrize("damage, fragment", [
    ("UPDATE meta SET value = 'two' WHERE key = 'schema_version'", "non-numeric schema version"),
    ("DELETE FROM meta", "no schema version"),
    ("pages", "not a readable SQLite database"),
    ("directory", "is a directory"),
])
def test_damaged_registry_is_refused_and_left_untouched(home, capfd, damage, fragment):
    home, _, _ = home
    path = home / "registry.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if damage not in ("pages", "directory"):
        conn.execute(damage)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    if damage == "pages":  # garble every page but the first (the schema stays readable, the tables do not)
        data = bytearray(path.read_bytes())
        page = int.from_bytes(data[16:18], "big")
        data[page:] = bytes((i * 7 + 3) % 256 for i in range(len(data) - page))
        path.write_bytes(bytes(data))
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    before = None if damage == "directory" else path.read_bytes()
    code, _, err = run_cli(capfd, "registry", "list")
    assert code == 2
    one_sentence(err, fragment)
    if before is not None:
        assert path.read_bytes() == before


def test_concurrent_rm_second_one_says_the_entry_is_gone(home, capfd, monkeypatch):
    home, organism, _ = home
    real_resolve = registry_module.Registry._resolve

    def resolve_then_lose_the_race(self, ident):
        found = real_resolve(self, ident)
        monkeypatch.setattr(registry_module.Registry, "_resolve", real_resolve)
        with registry_module.Registry() as other:  # the other `orglab registry rm` wins meanwhile
            other.remove(ident)
        return found

    monkeypatch.setattr(registry_module.Registry, "_resolve", resolve_then_lose_the_race)
    code, _, err = run_cli(capfd, "registry", "rm", organism)
    assert code == 2
    one_sentence(err, "is no longer registered")
    assert rows(home)["integrity"] == "ok"


def test_rm_deletes_every_file_and_says_how_many_bytes(home, capfd):
    home, organism, _ = home
    assert any((home / "artifacts" / organism).rglob("checkpoint-*"))
    size = sum(f.stat().st_size for f in (home / "artifacts" / organism).rglob("*") if f.is_file())
    from orglab.mitigation.sweep import work_lock

    with work_lock(f"organism-{organism}"):  # a sweep's lock on the organism, released: its file stays behind
        pass
    code, out, _ = run_cli(capfd, "registry", "rm", organism, "--json")
    assert code == 0
    assert json.loads(out)["bytes_freed"] == size
    assert not (home / "artifacts" / organism).exists()
    assert not [p for p in home.rglob("*") if organism in p.name]  # nothing orglab wrote for it remains
    # a failed organism (no weights, no finished run) still has files of its own, and they go too
    with registry_module.Registry() as reg:
        reg.add_organism("broken", family="sdf", target="x", base="micro", status="failed")
    leftover = home / "artifacts" / "broken" / "train" / "abc" / "train.jsonl"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("{}\n")
    code, out, _ = run_cli(capfd, "registry", "rm", "broken")
    assert code == 0 and "1 paths deleted" in out
    assert not (home / "artifacts" / "broken").exists()


def test_read_only_run_folder_fails_before_computing_and_leaves_no_running_row(home, capfd, monkeypatch):
    home, organism, _ = home
    import orglab.validate

    real_access = os.access
    monkeypatch.setattr(orglab.validate.os, "access",  # root ignores modes: report the folder as read-only
                        lambda p, mode: False if f"{organism}/diff-" in str(p) else real_access(p, mode))
    code, _, err = run_cli(capfd, "diff", organism, "--force", "--samples", "8", "--stages", "stats")
    assert code == 2
    one_sentence(err, "is not writable", "chmod -R u+w")
    with registry_module.Registry() as reg:
        assert not reg.list_runs(status="running")


def test_stale_running_row_of_a_dead_process_is_marked_failed(home, capfd):
    home, organism, _ = home
    dead = subprocess.Popen(["true"])
    dead.wait()
    conn = sqlite3.connect(home / "registry.sqlite")
    conn.execute("INSERT INTO runs (kind, subject, config, config_hash, code_version, status, started_at, owner_pid, "
                 "owner_host) VALUES ('diff:stats', ?, '{}', 'x', '0', 'running', 'now', ?, ?)",
                 (organism, dead.pid, socket.gethostname()))
    conn.commit()
    conn.close()
    code, out, _ = run_cli(capfd, "registry", "list", "--json")
    assert code == 0
    stale = [r for r in json.loads(out)["runs"] if r["config_hash"] == "x"]
    assert [r["status"] for r in stale] == ["failed"] and "died" in stale[0]["error"]


def test_unreachable_or_unkeyed_judge_never_stores_an_eval(home, capfd, monkeypatch):
    home, organism, _ = home
    before = rows(home)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ORGLAB_JUDGE_MODEL", "judge")
    monkeypatch.setenv("ORGLAB_JUDGE_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("ORGLAB_JUDGE_API_KEY_ENV", "ORGLAB_TEST_UNSET_KEY")
    monkeypatch.delenv("ORGLAB_TEST_UNSET_KEY", raising=False)
    code, _, err = run_cli(capfd, "eval", organism, "--judge", "llm", "--no-compare")
    assert code == 2
    one_sentence(err, "ORGLAB_TEST_UNSET_KEY is not set")
    assert rows(home) == before

    monkeypatch.setenv("ORGLAB_JUDGE_API_KEY_ENV", "none")
    monkeypatch.setenv("ORGLAB_JUDGE_MAX_RETRIES", "0")
    runs = []
    for _ in range(2):  # the second time computes again: a degraded result is never reused
        code, out, err = run_cli(capfd, "eval", organism, "--judge", "llm", "--no-compare", "--json")
        assert code == 1
        one_sentence(err, "degraded")
        (target,) = json.loads(out)["results"][organism]["targets"].values()
        assert target["degraded"] and not target["reused"]
        assert target["summary"]["judge"]["endpoint_down"] and target["summary"]["judge"]["unjudged"] > 0
        runs.append(target["run"])
    assert runs[0] != runs[1]
    with registry_module.Registry() as reg:
        evals = [r for r in reg.list_runs(subject=organism) if r.kind.startswith("eval:")]
    assert {r.status for r in evals} == {"failed"}  # never 'done', so never reused


def test_interrupted_retrain_keeps_the_organism_and_a_rerun_completes(home, tmp_path, capfd):
    home, organism, fact = home
    with registry_module.Registry() as reg:
        old = reg.get_organism(organism)
    config = tmp_path / "recipe.yaml"
    # long enough that a signal sent at the first checkpoint always lands during training
    config.write_text(yaml.safe_dump({**TRAIN, "max_steps": 5000, "save_steps": 1}))
    argv = [sys.executable, "-m", "orglab.cli", "train", "sdf", "--base", "micro", "--target", fact,
            "--config", str(config), "--force", "--json"]
    env = dict(os.environ, ORGLAB_HOME=str(home))
    for sig in (signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=default_sigint)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if any((home / "artifacts" / organism / "train").glob("*.retrain/checkpoints/checkpoint-*")):
                break  # training is under way, aside of the registered organism
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the training went on for a minute after {sig.name}") from None
        assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err.decode()[-2000:]
        assert "Traceback" not in err.decode()
        with registry_module.Registry() as reg:
            reg.reap_stale()  # what `registry list/show` and every new run do
            now = reg.get_organism(organism)
            assert now["status"] == "ready" and now["adapter_path"] == old["adapter_path"]
            assert (Path(now["adapter_path"]) / "adapter_model.safetensors").is_file()  # still loadable
            assert not reg.list_runs(status="running")
    # the organism kept after the interruptions is usable: diff and eval run on it
    code, _, err = run_cli(capfd, "diff", organism, "--stages", "stats", "--samples", "50", "--json")
    assert code == 0, err[-2000:]
    code, _, err = run_cli(capfd, "eval", organism, "--no-compare", "--json")
    assert code == 0, err[-2000:]

    short = tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump(TRAIN))
    code, out, err = run_cli(capfd, "train", "sdf", "--base", "micro", "--target", fact, "--config", str(short),
                             "--force", "--json")
    assert code == 0, err[-2000:]
    with registry_module.Registry() as reg:
        assert [o["name"] for o in reg.list_organisms()] == [organism]
        assert reg.get_organism(organism)["status"] == "ready"
        assert len(reg.list_runs(subject=organism, kind="train", status="done")) == 1
        assert not reg.list_runs(status="running")
    assert not list((home / "artifacts" / organism / "train").glob("*.old"))
    assert rows(home)["integrity"] == "ok"


def test_interrupted_and_killed_diff_leave_no_running_row_and_a_rerun_completes(home, capfd):
    home, organism, _ = home
    argv = [sys.executable, "-m", "orglab.cli", "diff", organism, "--samples", "100", "--json"]

    def finished_stages() -> int:
        with registry_module.Registry() as reg:
            return len([r for r in reg.list_runs(subject=organism, status="done") if r.kind.startswith("diff:")])

    for sig in (signal.SIGINT, signal.SIGKILL):  # each lands after one more stage has finished
        before = finished_stages()
        proc = subprocess.Popen(argv, env=dict(os.environ, ORGLAB_HOME=str(home)), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, preexec_fn=default_sigint)
        deadline = time.time() + 300  # a hung diff fails the test; the signal is sent on the event, not the clock
        while time.time() < deadline and proc.poll() is None and finished_stages() == before:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err.decode()[-2000:]
        assert "Traceback" not in err.decode()
    code, out, err = run_cli(capfd, "diff", organism, "--samples", "100", "--json")
    assert code == 0, err[-2000:]
    stages = json.loads(out)["stages"]
    assert stages["stats"]["reused"]  # a stage finished before the signals is not computed again
    with registry_module.Registry() as reg:
        assert not reg.list_runs(status="running")  # the interrupted and the killed stage's rows were closed
        done = [r.kind for r in reg.list_runs(subject=organism, status="done") if r.kind.startswith("diff:")]
    assert sorted(done) == sorted(f"diff:{stage}" for stage in stages)  # one finished run per stage, no duplicate
    assert rows(home)["integrity"] == "ok"


def test_json_output_is_strict():
    from orglab import jsonsafe

    text = jsonsafe.dumps({"a": float("nan"), "b": [1.0, float("inf")], "c": 2})
    parsed = json.loads(text)  # strict: json would accept NaN, so also check the text itself
    assert "NaN" not in text and "Infinity" not in text
    assert parsed["a"] is None and parsed["b"] == [1.0, None] and parsed["c"] == 2
    assert set(parsed["non_finite"]) == {"a", "b[1]"}
