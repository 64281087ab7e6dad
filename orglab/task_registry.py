"""Private registries of tasks that run elsewhere (other processes, other machines): the main registry stays
written by one process only, the driver. See docs/cluster.md.

SQLite over a network filesystem is only safe when the machines do not write one file at once, so a task never
opens the main registry. The driver takes a snapshot of it (one self-contained SQLite file, rollback journal);
each task starts from its own copy of that snapshot and points TASK_REGISTRY_ENV at it, so every registry read
of the task sees what the driver had, and every registry write lands in the copy. The task's models and tensors
go to the shared artifact tree as always (folders keyed by content, so two writers write the same bytes). When
the task has written its result, the driver merges the copy's new rows into the main registry
(Registry.merge_from, idempotent), and the next wave's snapshot includes them.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from orglab.errors import OrglabError
from orglab.paths import TASK_REGISTRY_ENV
from orglab.registry import Merged, Registry


def take_snapshot(dest: Path) -> Path:
    """The driver's side: a copy of the main registry for tasks to start from (written atomically)."""
    if os.environ.get(TASK_REGISTRY_ENV):  # else the tasks would start from a task's registry, not the main one
        raise OrglabError(f"{TASK_REGISTRY_ENV} is set, but it is meant for executor tasks only; unset it and run "
                          f"the sweep again.")
    with Registry() as reg:
        return reg.snapshot(dest)


def private_registry_file(task_folder: Path, snapshot: Path) -> Path:
    """The task's registry: one per snapshot, so a task resubmitted by the same driver keeps the work its
    cancelled attempt finished, while a later driver (a new snapshot, holding everything merged since) starts
    the task afresh instead of trusting a copy that may be older than the main registry."""
    return Path(task_folder) / f"registry-{Path(snapshot).stem}.sqlite"


@contextmanager
def private_registry(path: Path, snapshot: Path) -> Iterator[Path]:
    """The task's side: inside the block every Registry() of this process opens `path`, made from `snapshot`
    when it does not exist yet (copied atomically: a task killed while copying leaves no half file)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.copyfile(snapshot, tmp)
        os.replace(tmp, path)
    old = os.environ.get(TASK_REGISTRY_ENV)
    os.environ[TASK_REGISTRY_ENV] = str(path.resolve())
    try:
        yield path
    finally:  # a local worker process runs several tasks one after the other
        if old is None:
            os.environ.pop(TASK_REGISTRY_ENV, None)
        else:
            os.environ[TASK_REGISTRY_ENV] = old


def import_task(path: Path) -> Merged:
    """The driver's side: record what a finished task registered (idempotent: safe to repeat after a restart)."""
    with Registry() as reg:
        return reg.merge_from(path)
