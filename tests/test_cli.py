"""The `orglab` command as a user runs it: real subprocesses, exit codes, one-sentence errors, --json."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest


def orglab(*args: str, home) -> subprocess.CompletedProcess:
    env = dict(os.environ, ORGLAB_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "orglab.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def assert_one_sentence_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("orglab: error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_lists_the_commands(orglab_home):
    result = orglab("--help", home=orglab_home)
    assert result.returncode == 0
    for command in ("world", "registry", "demo"):
        assert command in result.stdout
    sub = orglab("world", "build", "--help", home=orglab_home)
    assert "--preset" in sub.stdout and "--seed" in sub.stdout and "--json" in sub.stdout


def test_world_build_json_reuses_and_registry_lists_the_base(with_micro):
    result = orglab("world", "build", "--preset", "micro", "--json", home=with_micro)
    assert result.returncode == 0, result.stderr
    built = json.loads(result.stdout)
    assert built["reused"] is True and built["base"] == "micro"
    assert 0 <= built["knowledge"]["loglik_true_beats_alternative"] <= 1
    listed = json.loads(orglab("registry", "list", "--json", home=with_micro).stdout)
    micro = next(b for b in listed["bases"] if b["name"] == "micro")
    assert micro["config"]["preset"] == "micro" and micro["corpus_hash"] == built["corpus_hash"]
    assert micro["config_hash"] == built["config_hash"]
    shown = json.loads(orglab("registry", "show", "micro", "--json", home=with_micro).stdout)
    assert shown["type"] == "base" and shown["runs"][0]["metrics"]
    table = orglab("registry", "list", home=with_micro)
    assert table.returncode == 0 and "micro" in table.stdout


def test_registry_rm_removes_entry_and_its_files(with_micro):
    shown = json.loads(orglab("registry", "show", "micro", "--json", home=with_micro).stdout)
    model_dir = shown["path"]
    assert os.path.isdir(model_dir)
    removed = orglab("registry", "rm", "micro", "--json", home=with_micro)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["removed"] == "base"
    assert not os.path.exists(model_dir)
    assert_one_sentence_error(orglab("registry", "show", "micro", home=with_micro), "'micro'")


def test_unknown_preset(orglab_home):
    assert_one_sentence_error(orglab("world", "build", "--preset", "huge", home=orglab_home), "huge", "tiny, micro")


def test_unwritable_orglab_home(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_sentence_error(orglab("registry", "list", home=blocker / "home"), "ORGLAB_HOME")


def test_corrupted_registry_is_reported_and_left_untouched(orglab_home):
    orglab_home.mkdir(parents=True)
    path = orglab_home / "registry.sqlite"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    assert_one_sentence_error(orglab("registry", "list", home=orglab_home), str(path))
    assert path.read_bytes() == garbage


def test_registry_from_newer_schema_is_refused_and_left_untouched(with_micro):
    path = with_micro / "registry.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    assert_one_sentence_error(orglab("world", "build", "--preset", "micro", home=with_micro), "newer orglab")
    assert path.read_bytes() == before


@pytest.mark.parametrize("argv", [["registry", "show", "nothing-here"], ["registry", "rm", "nothing-here"]])
def test_unknown_registry_entry(orglab_home, argv):
    assert_one_sentence_error(orglab(*argv, home=orglab_home), "nothing-here")
