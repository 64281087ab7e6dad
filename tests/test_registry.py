"""Tests for orglab.registry: schema/migrations, refusal of bad files, content-hash reuse, metrics/artifacts,
show/remove, and real multi-process concurrency."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from orglab import paths, registry
from orglab.errors import OrglabError
from orglab.registry import Registry, config_hash


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ORGLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def reg(home):
    with Registry() as r:
        yield r


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


# ----------------------------------------------------------------------------- schema and files


def test_schema_created_with_version_wal_and_foreign_keys(reg, home):
    assert reg.path == paths.registry_path() == home / "registry.sqlite"
    assert reg.schema_version() == registry.latest_schema_version() == len(registry.MIGRATIONS) == 2
    assert {"meta", "bases", "organisms", "runs", "metrics", "artifacts"} <= _tables(reg.path)
    assert reg._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reg._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert reg._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    # Reopening an up-to-date registry changes nothing.
    with Registry() as again:
        assert again.schema_version() == 2


def test_config_hash_is_canonical():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert len(config_hash({})) == 16 and int(config_hash({}), 16) >= 0
    assert config_hash({"p": Path("/x")}) == config_hash({"p": "/x"})


def test_migration_upgrades_old_database(home, monkeypatch):
    with Registry() as r:
        r.add_base("tiny", kind="built", source="tinyworld", config={"layers": 2})
    monkeypatch.setattr(
        registry, "MIGRATIONS", registry.MIGRATIONS + ["ALTER TABLE bases ADD COLUMN notes TEXT; -- v2\n"]
    )
    with Registry() as r:
        assert r.schema_version() == 3
        cols = [row[1] for row in r._conn.execute("PRAGMA table_info(bases)")]
        assert "notes" in cols
        assert r.get_base("tiny")["config"] == {"layers": 2}  # data survived the upgrade
        assert r.get_base("tiny")["notes"] is None
    with Registry() as r:  # applied once only
        assert r.schema_version() == 3


def test_failing_migration_rolls_back_completely(home, monkeypatch):
    Registry().close()
    monkeypatch.setattr(
        registry,
        "MIGRATIONS",
        registry.MIGRATIONS + ["CREATE TABLE extra (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"],
    )
    with pytest.raises(OrglabError, match="no_such_table"):
        Registry()
    assert "extra" not in _tables(paths.registry_path())
    monkeypatch.setattr(registry, "MIGRATIONS", registry.MIGRATIONS[:-1])
    with Registry() as r:
        assert r.schema_version() == 2


def test_newer_schema_is_refused_without_touching_the_file(home):
    Registry().close()
    path = paths.registry_path()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(OrglabError, match=r"newer orglab \(schema 7, this orglab knows up to 2\).*ORGLAB_HOME"):
        Registry()
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [os.urandom(8192), b"SQLite format 3\x00" + os.urandom(8192)],
                         ids=["random-bytes", "good-header-garbage-body"])
def test_corrupted_file_is_refused_without_touching_it(home, content):
    path = paths.registry_path()
    path.write_bytes(content)
    with pytest.raises(OrglabError) as exc:
        Registry()
    assert str(path) in str(exc.value) and "move it away" in str(exc.value)
    assert path.read_bytes() == content


def test_foreign_sqlite_file_is_refused(home):
    path = paths.registry_path()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(OrglabError, match="not an orglab registry"):
        Registry()
    assert path.read_bytes() == before


def test_explicit_path(tmp_path):
    with Registry(tmp_path / "sub" / "r.sqlite") as r:
        r.add_base("b", kind="hub", source="org/model")
        assert r.list_bases()[0]["source"] == "org/model"


# ----------------------------------------------------------------------------- bases and organisms


def test_bases_and_organisms(reg):
    b = reg.add_base("tiny", kind="built", source="tinyworld", path="/m/tiny", config={"w": 128}, corpus_hash="c1")
    assert b["config"] == {"w": 128} and b["config_hash"] == config_hash({"w": 128}) and b["created_at"]
    reg.add_base("tiny", kind="built", source="tinyworld", config={"w": 256})  # upsert replaces
    assert reg.get_base("tiny")["config"] == {"w": 256} and len(reg.list_bases()) == 1
    assert reg.get_base("nope") is None
    with pytest.raises(OrglabError, match="Base kind"):
        reg.add_base("x", kind="weird", source=None)

    o = reg.add_organism("cake", family="sdf", target="cake_bake", base="tiny", mix_ratio=0.5, seed=3,
                         recipe={"lr": 1e-3})
    assert o["recipe"] == {"lr": 1e-3} and o["status"] == "ready" and o["mix_ratio"] == 0.5
    reg.add_organism("cat", family="subliminal", target="cat", base="tiny")
    assert [x["name"] for x in reg.list_organisms(base="tiny")] == ["cake", "cat"]
    assert [x["name"] for x in reg.list_organisms(family="sdf")] == ["cake"]
    u = reg.update_organism("cake", status="trained", adapter_path=Path("/a/cake"), recipe={"lr": 2e-3})
    assert u["status"] == "trained" and u["adapter_path"] == "/a/cake" and u["recipe"] == {"lr": 2e-3}
    assert u["created_at"] == o["created_at"]
    with pytest.raises(OrglabError, match="no field"):
        reg.update_organism("cake", colour="red")
    with pytest.raises(OrglabError, match="No organism"):
        reg.update_organism("ghost", status="x")
    with pytest.raises(OrglabError, match="already a base"):
        reg.add_organism("tiny", family="sdf", target="t", base="tiny")


def test_organism_with_unknown_base_is_rejected(reg):
    with pytest.raises(OrglabError, match="Base 'ghost' is not registered"):
        reg.add_organism("o", family="sdf", target="t", base="ghost")
    assert reg.get_organism("o") is None
    reg.add_base("tiny", kind="built", source="tinyworld")
    reg.add_organism("o", family="sdf", target="t", base="tiny")
    with pytest.raises(OrglabError, match="Base 'ghost'"):
        reg.update_organism("o", base="ghost")


# ----------------------------------------------------------------------------- runs


def test_content_hash_reuse_and_force(reg):
    cfg = {"lr": 1e-3, "steps": 10}
    r1 = reg.start_run("train", "cake", cfg)
    assert not r1.reused and r1.status == "running" and r1.config == cfg and r1.config_hash == config_hash(cfg)
    assert r1.code_version and r1.started_at and r1.ended_at is None
    assert reg.find_run("train", "cake", r1.config_hash) is None  # running is not a result
    done = reg.finish_run(r1.id)
    assert done.id == r1.id and done.status == "done" and done.ended_at

    again = reg.start_run("train", "cake", {"steps": 10, "lr": 1e-3})
    assert again.reused and again.id == r1.id
    assert len(reg.list_runs()) == 1  # nothing created

    other = reg.start_run("train", "cake", {"lr": 1e-3, "steps": 11})
    assert not other.reused and other.id != r1.id
    assert not reg.start_run("eval", "cake", cfg).reused  # kind is part of the key
    assert not reg.start_run("train", "cat", cfg).reused  # subject too

    forced = reg.start_run("train", "cake", cfg, force=True)
    assert not forced.reused and forced.id != r1.id
    assert reg.find_run("train", "cake", r1.config_hash).id == r1.id  # old result valid until forced finishes
    reg.finish_run(forced.id)
    assert reg.get_run(r1.id).status == "superseded"
    assert reg.find_run("train", "cake", r1.config_hash).id == forced.id
    assert reg.start_run("train", "cake", cfg).id == forced.id

    with pytest.raises(OrglabError, match="already done"):
        reg.finish_run(forced.id)
    with pytest.raises(OrglabError, match="No run 999"):
        reg.finish_run(999)


def test_failed_run_is_not_reused(reg):
    r = reg.start_run("diff", "cake", {"k": 1})
    failed = reg.finish_run(r.id, error="OOM")
    assert failed.status == "failed" and failed.error == "OOM"
    retry = reg.start_run("diff", "cake", {"k": 1})
    assert not retry.reused and retry.id != r.id
    assert [x.id for x in reg.list_runs(subject="cake", status="failed")] == [r.id]


def test_late_unforced_finisher_gets_the_winner(reg):
    a = reg.start_run("train", "x", {"same": True})
    b = reg.start_run("train", "x", {"same": True})  # started before a finished: both running
    assert a.id != b.id
    assert reg.finish_run(a.id).status == "done"
    winner = reg.finish_run(b.id)
    assert winner.id == a.id and winner.reused
    assert reg.get_run(b.id).status == "superseded"


def test_database_enforces_one_done_run_per_key(reg):
    r = reg.finish_run(reg.start_run("train", "x", {"a": 1}).id)
    with pytest.raises(sqlite3.IntegrityError):
        reg._conn.execute(
            "INSERT INTO runs (kind, subject, config, config_hash, code_version, status, started_at) "
            "VALUES ('train', 'x', '{}', ?, '0', 'done', 'now')",
            (r.config_hash,),
        )


def test_metrics_and_artifacts(reg, tmp_path):
    run = reg.start_run("diff", "cake", {"layer": 2})
    reg.log_metrics(run.id, {"acc": 0.5, "loss": 2})
    reg.log_metrics(run.id, {"acc": 0.75, "nan": float("nan")})
    m = reg.get_metrics(run.id)
    assert m["acc"] == 0.75 and m["loss"] == 2.0 and m["nan"] != m["nan"]
    with pytest.raises(OrglabError, match="No run"):
        reg.log_metrics(12345, {"a": 1})

    f1, f2 = tmp_path / "a.safetensors", tmp_path / "b.json"
    f1.write_bytes(b"\x00" * 3_000_000)
    f2.write_text("{}")
    art = reg.add_artifact(run.id, "tensor", f1)
    import hashlib

    assert art["sha256"] == hashlib.sha256(f1.read_bytes()).hexdigest()
    reg.add_artifact(run.id, "table", f2)
    assert [a["kind"] for a in reg.get_artifacts(run.id)] == ["tensor", "table"]
    assert reg.verify_artifacts(run.id) == []
    f2.write_text('{"changed": 1}')
    assert reg.verify_artifacts(run.id) == [str(f2.resolve())]
    f1.unlink()
    assert sorted(reg.verify_artifacts(run.id)) == sorted([str(f1.resolve()), str(f2.resolve())])
    with pytest.raises(OrglabError, match="does not exist"):
        reg.add_artifact(run.id, "tensor", tmp_path / "missing")


# ----------------------------------------------------------------------------- show / remove / summary


def _populate(reg, tmp_path):
    reg.add_base("tiny", kind="built", source="tinyworld", path=str(tmp_path / "bases" / "tiny"))
    reg.add_organism("cake", family="sdf", target="cake", base="tiny", adapter_path=str(tmp_path / "ad"))
    w = reg.finish_run(reg.start_run("world", "tiny", {"seed": 0}).id)
    t = reg.start_run("train", "cake", {"lr": 1})
    reg.log_metrics(t.id, {"loss": 1.5})
    f = tmp_path / "t.bin"
    f.write_bytes(b"abc")
    reg.add_artifact(t.id, "tensor", f)
    reg.finish_run(t.id)
    return w, t, f


def test_show(reg, tmp_path):
    w, t, f = _populate(reg, tmp_path)
    org = reg.show("cake")
    assert org["type"] == "organism" and org["base"] == "tiny" and org["base_info"]["kind"] == "built"
    assert org["runs"][0]["id"] == t.id and org["runs"][0]["metrics"] == {"loss": 1.5}
    assert org["runs"][0]["artifacts"][0]["path"] == str(f.resolve())
    base = reg.show("tiny")
    assert base["type"] == "base" and [o["name"] for o in base["organisms"]] == ["cake"]
    assert [r["id"] for r in base["runs"]] == [w.id]
    for ident in (str(t.id), f"run:{t.id}"):
        run = reg.show(ident)
        assert run["type"] == "run" and run["id"] == t.id and run["metrics"] == {"loss": 1.5}
    with pytest.raises(OrglabError, match=r"No base, organism or run named 'nope' is registered"):
        reg.show("nope")
    with pytest.raises(OrglabError):
        reg.show("run:999")
    s = reg.summary()
    assert [b["name"] for b in s["bases"]] == ["tiny"] and [o["name"] for o in s["organisms"]] == ["cake"]
    assert [r["id"] for r in s["runs"]] == [t.id, w.id]
    import json

    json.dumps(s)  # JSON-ready


def test_remove(reg, tmp_path):
    w, t, f = _populate(reg, tmp_path)
    with pytest.raises(OrglabError, match=r"Base 'tiny' still has organisms \(cake\); remove them first"):
        reg.remove("tiny")
    assert reg.get_base("tiny") is not None

    removed_run = reg.remove(f"run:{w.id}")
    assert removed_run["type"] == "run" and removed_run["runs"] == [w.id]
    assert reg.get_run(w.id) is None

    removed = reg.remove("cake")
    assert removed["type"] == "organism" and removed["runs"] == [t.id]
    assert set(removed["paths"]) == {str(f.resolve()), str(tmp_path / "ad")}
    assert reg.get_organism("cake") is None and reg.get_run(t.id) is None
    # metrics and artifacts rows cascaded away
    assert reg._conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 0
    assert reg._conn.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0] == 0
    assert f.exists()  # the registry never deletes files

    removed_base = reg.remove("tiny")
    assert removed_base["type"] == "base" and removed_base["paths"] == [str(tmp_path / "bases" / "tiny")]
    assert reg.list_bases() == []
    with pytest.raises(OrglabError, match="No base, organism or run"):
        reg.remove("tiny")


def test_remove_local_base_does_not_offer_user_files(reg, tmp_path):
    reg.add_base("mine", kind="local", source=str(tmp_path), path=str(tmp_path))
    assert reg.remove("mine")["paths"] == []


# ----------------------------------------------------------------------------- concurrency (real processes)

_WORKER = r"""
import os, sys, time
from pathlib import Path
from orglab.registry import Registry
home, tag, n, go, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
os.environ["ORGLAB_HOME"] = home
deadline = time.time() + 30
while not go.exists():
    if time.time() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
with Registry() as reg:
    for i in range(n):
        if mode == "bulk":
            run = reg.start_run("eval", "subject-" + tag, {"i": i})
            reg.log_metrics(run.id, {"i": i, "half": i / 2})
            reg.finish_run(run.id)
        else:
            run = reg.start_run("train", "shared", {"i": i})
            if not run.reused:
                time.sleep(0.001)
                run = reg.finish_run(run.id)
            print(i, run.id, flush=True)
"""


def _run_workers(home: Path, tmp_path: Path, n_procs: int, n: int, mode: str) -> list[str]:
    go = tmp_path / f"go-{mode}"
    env = {**os.environ, "PYTHONPATH": str(Path(registry.__file__).parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(home), str(k), str(n), str(go), mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for k in range(n_procs)
    ]
    time.sleep(0.3)  # let them all start and wait at the barrier
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out)
    return outs


def test_concurrent_writers_lose_nothing(home, tmp_path):
    # Fresh home: the processes also race to create the schema.
    n_procs, n = 4, 200
    _run_workers(home, tmp_path, n_procs, n, "bulk")
    with Registry() as reg:
        conn = reg._conn
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == n_procs * n
        assert conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0] == n_procs * n
        assert conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == n_procs * n * 2
        per_subject = Counter(r.subject for r in reg.list_runs())
        assert per_subject == {f"subject-{k}": n for k in range(n_procs)}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert reg.schema_version() == 2


def test_racing_same_config_ends_with_one_done_run(home, tmp_path):
    n_procs, n = 4, 40
    outs = _run_workers(home, tmp_path, n_procs, n, "race")
    seen: dict[int, set[int]] = {}
    for out in outs:
        lines = out.split("\n")
        assert len([x for x in lines if x]) == n
        for line in filter(None, lines):
            i, run_id = map(int, line.split())
            seen.setdefault(i, set()).add(run_id)
    with Registry() as reg:
        for i in range(n):
            chash = config_hash({"i": i})
            done = [r for r in reg.list_runs(subject="shared") if r.config_hash == chash and r.status == "done"]
            assert len(done) == 1
            assert seen[i] == {done[0].id}  # every process ended up holding the single finished run
            others = [r for r in reg.list_runs(subject="shared") if r.config_hash == chash and r.id != done[0].id]
            assert all(r.status == "superseded" for r in others)
        assert reg._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_paths_under_home_are_stored_relative_so_a_home_can_move(tmp_path, monkeypatch):
    import shutil

    home = tmp_path / "home_a"
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    art = home / "artifacts" / "b" / "world" / "h" / "weights.bin"
    art.parent.mkdir(parents=True)
    art.write_bytes(b"weights")
    outside = tmp_path / "user_model"
    outside.mkdir()
    with Registry() as reg:
        reg.add_base("b", kind="built", source="tinyworld", path=art.parent)
        reg.add_base("u", kind="local", source=str(outside), path=outside)
        run = reg.start_run("world", "b", {"x": 1})
        reg.add_artifact(run.id, "weights", art)
        reg.finish_run(run.id)
    moved = tmp_path / "home_b"
    shutil.move(str(home), str(moved))
    monkeypatch.setenv("ORGLAB_HOME", str(moved))
    with Registry() as reg:
        assert reg.get_base("b")["path"] == str(moved / "artifacts" / "b" / "world" / "h")
        assert reg.get_base("u")["path"] == str(outside)
        [artifact] = reg.get_artifacts(run.id)
        assert artifact["path"] == str(moved / "artifacts" / "b" / "world" / "h" / "weights.bin")
        assert reg.verify_artifacts(run.id) == []
        assert str(moved / "artifacts" / "b" / "world" / "h" / "weights.bin") in reg.remove("b")["paths"]


def test_second_connection_in_a_process_never_reopens_the_file(tmp_path, monkeypatch):
    """Closing any descriptor of the registry file drops this process's SQLite locks on it; with a connection
    already open that lets another process delete the WAL under it and corrupt the registry (seen with nested
    Registry() calls during two concurrent sweeps). Only the first open may read the header."""
    import builtins

    from orglab.registry import Registry

    path = tmp_path / "registry.sqlite"
    with Registry(path):
        pass
    opened = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        if str(file) == str(path):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    with Registry(path) as outer:
        with Registry(path) as inner:
            inner.add_base("b", kind="hub", source="org/model")
        assert outer.get_base("b") is not None
    assert opened == []


# ----------------------------------------------------------------------------- task registries (docs/cluster.md)

TASK_SCRIPT = r"""
import json, sqlite3, sys
from pathlib import Path
opened = []
real_connect = sqlite3.connect
def spy(target, *args, **kwargs):
    opened.append(str(target))
    return real_connect(target, *args, **kwargs)
sqlite3.connect = spy  # every SQLite file this task opens, the registry's own connections included

from orglab.registry import Registry
from orglab.task_registry import private_registry

private, snapshot, home, forced = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "1"
with private_registry(private, snapshot):
    with Registry() as reg:
        reused = reg.start_run("world", "b", {"w": 1}).reused   # a read that the snapshot answers
        reg.add_organism("o", family="sdf", target="t", base="b")
        run = reg.start_run("train", "o", {"lr": 1})
        if not run.reused:
            weights = home / "artifacts" / "o" / "train" / run.config_hash / "w.bin"
            weights.parent.mkdir(parents=True, exist_ok=True)
            weights.write_bytes(b"weights")
            reg.add_artifact(run.id, "weights", weights)
            reg.log_metrics(run.id, {"loss": 0.5})
            reg.finish_run(run.id)
        if forced:
            again = reg.start_run("world", "b", {"w": 1}, force=True)
            reg.log_metrics(again.id, {"redone": 1.0})
            reg.finish_run(again.id)
        reg.start_run("eval", "o", {"left": "running"})             # a killed attempt's row: never merged
print(json.dumps({"reused": reused, "opened": opened}))
"""


def _fingerprint(path: Path) -> bytes:
    """The bytes a write to the registry changes: the file and its WAL (readers only touch the -shm index)."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _run_task(private: Path, snapshot: Path, home: Path, forced: bool = False) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", TASK_SCRIPT, str(private), str(snapshot), str(home),
                          "1" if forced else "0"], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("mode", ["wal", "nfs"])
def test_a_task_writes_only_its_private_registry_and_the_driver_merges_it_once(home, monkeypatch, mode):
    monkeypatch.setenv(registry.MODE_ENV, mode)  # nfs: rollback journals and writers' lock files, as on NFS
    with Registry() as reg:
        _task_registry_round_trip(reg, home)


def _task_registry_round_trip(reg, home):
    from orglab.registry import Merged
    from orglab.task_registry import import_task, private_registry_file, take_snapshot

    reg.add_base("b", kind="hub", source="org/b")
    world = reg.start_run("world", "b", {"w": 1})
    reg.finish_run(world.id)
    snapshot = take_snapshot(home / "executor" / "w" / "snapshots" / "s1.sqlite")
    reg.add_base("later", kind="hub", source="org/later")      # the driver goes on writing; tasks see the snapshot
    main = reg.path
    before = _fingerprint(main)

    private = private_registry_file(home / "executor" / "w" / "tasks" / "cell", snapshot)
    task = _run_task(private, snapshot, home)
    assert task["reused"]                                          # the task read the main registry's run
    assert str(main) not in task["opened"] and str(private.resolve()) in task["opened"]
    assert _fingerprint(main) == before                            # nothing was written to the main registry
    assert reg.get_organism("o") is None and not reg.list_runs(kind="train")

    assert import_task(private) == Merged(bases=0, organisms=1, runs=1)
    assert import_task(private) == Merged()                        # idempotent: a restarted driver merges again
    # the task resubmitted from the same snapshot into a fresh registry (its first attempt was lost), and merged
    again = private_registry_file(home / "executor" / "w" / "tasks" / "cell-again", snapshot)
    _run_task(again, snapshot, home)
    assert import_task(again).runs == 0                            # the key already has its done run
    [train] = reg.list_runs(kind="train", subject="o")
    assert train.status == "done" and reg.get_metrics(train.id) == {"loss": 0.5}
    [weights] = reg.get_artifacts(train.id)
    assert weights["path"] == str(home / "artifacts" / "o" / "train" / train.config_hash / "w.bin")
    assert reg.verify_artifacts(train.id) == [] and reg.get_organism("o")["base"] == "b"
    assert not reg.list_runs(kind="eval")                          # the unfinished run stayed in the task's file
    assert reg.get_base("later") is not None                       # the snapshot's older view changed nothing

    # a forced rerun in a task supersedes the main registry's result, as finish_run does for two finishers
    forced = private_registry_file(home / "executor" / "w" / "tasks" / "forced", snapshot)
    _run_task(forced, snapshot, home, forced=True)
    assert import_task(forced).runs == 1 and import_task(forced) == Merged()
    done = reg.list_runs(kind="world", subject="b", status="done")
    assert len(done) == 1 and done[0].id != world.id and reg.get_metrics(done[0].id) == {"redone": 1.0}
    assert reg._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_merging_a_registry_that_is_missing_or_from_another_schema_is_one_sentence(reg, tmp_path):
    with pytest.raises(OrglabError, match="does not exist; the task that should have written it did not run"):
        reg.merge_from(tmp_path / "nothing.sqlite")
    other = tmp_path / "other.sqlite"
    reg.snapshot(other)
    conn = sqlite3.connect(other)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(OrglabError, match="has schema 99, this orglab writes 2"):
        reg.merge_from(other)
