"""Shared fixtures: every test runs with its own ORGLAB_HOME; the micro base is built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def orglab_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty ORGLAB_HOME for each test (tests never touch ~/.orglab)."""
    home = tmp_path / "orglab_home"
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def micro_home(tmp_path_factory) -> Path:
    """An ORGLAB_HOME holding the built micro base (built once for the whole session)."""
    home = tmp_path_factory.mktemp("micro_home")
    old = os.environ.get("ORGLAB_HOME")
    os.environ["ORGLAB_HOME"] = str(home)
    try:
        from orglab.world.build import build_base

        build_base("micro", progress=False)
    finally:
        if old is None:
            os.environ.pop("ORGLAB_HOME", None)
        else:
            os.environ["ORGLAB_HOME"] = old
    return home


@pytest.fixture
def with_micro(micro_home, tmp_path, monkeypatch) -> Path:
    """A private copy of the micro home, so a test may change its registry freely."""
    home = tmp_path / "micro_copy"
    shutil.copytree(micro_home, home)
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    return home
