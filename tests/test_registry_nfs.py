"""The registry on a network filesystem: fs-type detection from mountinfo text, and the nfs mode (rollback journal
plus a writers' lock file) under several processes writing at once; a WAL registry converted safely."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from orglab.errors import OrglabError
from orglab.registry import MODE_ENV, Registry, filesystem_type, is_network_fs, parse_mounts, registry_mode

MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
35 22 0:31 / /home rw,relatime shared:2 - xfs /dev/sdb1 rw
41 35 0:44 / /home/shared rw,relatime shared:20 - nfs4 fileserver:/export/home rw,vers=4.2
42 41 0:45 / /home/shared/scratch rw,relatime shared:21 - tmpfs tmpfs rw
43 22 0:46 / /mnt/lab\040data rw,relatime - cifs //nas/lab rw
44 22 0:47 / /mnt/ssh rw,nosuid - fuse.sshfs me@host:/data rw
45 22 0:48 / /lustre rw - lustre 10.0.0.1@o2ib:/fs rw
"""


def test_fs_type_is_the_longest_mount_point_prefix():
    assert ("/mnt/lab data", "cifs") in parse_mounts(MOUNTINFO)
    cases = {"/": "ext4", "/var/lib/x": "ext4", "/home/me/.orglab": "xfs", "/home/shared": "nfs4",
             "/home/shared/me/.orglab": "nfs4", "/home/shared/scratch/h": "tmpfs", "/home/sharedother": "xfs",
             "/mnt/lab data/orglab": "cifs", "/mnt/ssh/home": "fuse.sshfs", "/lustre/proj/o": "lustre"}
    for path, fstype in cases.items():
        assert filesystem_type(path, MOUNTINFO) == fstype, path
    network = {p for p in cases if is_network_fs(filesystem_type(p, MOUNTINFO))}
    assert network == {"/home/shared", "/home/shared/me/.orglab", "/mnt/lab data/orglab", "/mnt/ssh/home",
                       "/lustre/proj/o"}
    # /proc/mounts format too; a later mount over the same point wins
    mounts = "/dev/sda1 / ext4 rw 0 0\nserver:/x /data nfs rw 0 0\ntmpfs /data tmpfs rw 0 0\n"
    assert filesystem_type("/data/h", mounts) == "tmpfs" and filesystem_type("/etc", mounts) == "ext4"
    assert filesystem_type("/x", "") is None and not is_network_fs(None)


def test_mode_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(MODE_ENV, "NFS")
    assert registry_mode(tmp_path) == "nfs"
    monkeypatch.setenv(MODE_ENV, "wal")
    assert registry_mode(tmp_path) == "wal"
    monkeypatch.setenv(MODE_ENV, "auto")
    assert registry_mode(tmp_path) == "wal"  # the test's tmp folder is on a local disk
    monkeypatch.setenv(MODE_ENV, "shm")
    with pytest.raises(OrglabError, match="is not a registry mode; set it to wal, nfs or auto"):
        registry_mode(tmp_path)


def _writer(path: str, worker: int, n_runs: int, queue) -> None:
    import os

    os.environ[MODE_ENV] = "nfs"
    try:
        with Registry(path) as reg:
            for i in range(n_runs):
                run = reg.start_run("diff", f"org{worker}", {"i": i, "worker": worker})
                reg.log_metrics(run.id, {"x": float(i)})
                reg.finish_run(run.id)
                # one content key shared by every worker: exactly one of them may hold the finished result
                shared = reg.start_run("eval", "shared", {"i": i})
                if not shared.reused:
                    reg.finish_run(shared.id)
        queue.put((worker, None))
    except BaseException as exc:  # reported to the parent, which fails the test with it
        queue.put((worker, f"{type(exc).__name__}: {exc}"))


def test_nfs_mode_many_writers_lose_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(MODE_ENV, "nfs")
    path = tmp_path / "registry.sqlite"
    workers, n_runs = 5, 12
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, like separate machines' processes
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), w, n_runs, queue)) for w in range(workers)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert results == {w: None for w in range(workers)}
    with Registry(path) as reg:
        assert reg.mode == "nfs"
        assert reg._conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        for w in range(workers):
            runs = reg.list_runs(subject=f"org{w}", kind="diff")
            assert sorted(r.config["i"] for r in runs) == list(range(n_runs))
            assert all(r.status == "done" and reg.get_metrics(r.id) == {"x": float(r.config["i"])} for r in runs)
        done = reg.list_runs(subject="shared", status="done")
        assert sorted(r.config["i"] for r in done) == list(range(n_runs))  # one finished result per key
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert not (tmp_path / "registry.sqlite-wal").exists() and not (tmp_path / "registry.sqlite-shm").exists()


def test_wal_registry_is_converted_with_every_row(tmp_path, monkeypatch):
    path = tmp_path / "registry.sqlite"
    monkeypatch.setenv(MODE_ENV, "wal")
    with Registry(path) as reg:
        assert reg._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        reg.add_base("b", kind="hub", source="org/b")
        run = reg.start_run("world", "b", {"k": 1})
        reg.finish_run(run.id)
    monkeypatch.setenv(MODE_ENV, "nfs")
    with Registry(path) as reg:
        assert reg._conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert reg.get_base("b")["source"] == "org/b" and reg.find_run("world", "b", run.config_hash) is not None
        reg.add_base("c", kind="hub", source="org/c")
    assert not (tmp_path / "registry.sqlite-wal").exists()
    monkeypatch.setenv(MODE_ENV, "wal")  # back on a local disk: WAL again, nothing lost
    with Registry(path) as reg:
        assert reg._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [b["name"] for b in reg.list_bases()] == ["b", "c"]


def test_a_held_write_lock_is_one_sentence(tmp_path, monkeypatch):
    from filelock import SoftFileLock

    import orglab.registry as registry_module

    monkeypatch.setenv(MODE_ENV, "nfs")
    monkeypatch.setattr(registry_module, "BUSY_TIMEOUT_S", 0.5)
    path = tmp_path / "registry.sqlite"
    with Registry(path) as reg:
        holder = SoftFileLock(str(tmp_path / "registry.sqlite.writelock"))
        with holder:
            with pytest.raises(OrglabError, match=r"write lock .* stayed held for 0.5 s; run again when"):
                reg.add_base("b", kind="hub", source="org/b")
        reg.add_base("b", kind="hub", source="org/b")  # released: writes go on
