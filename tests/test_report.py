"""`orglab report`: the HTML page of a sweep, built from real micro runs, rendered in headless Chromium.

The sweep dict is assembled here from real runs (two SDF cells at 1:0 and 1:1 and two null controls, diffed with
every detector and evaluated on the micro base), so every number and token on the page comes from the real code path; the
end-to-end `orglab sweep` -> `orglab report` test lives with the sweep's tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orglab.diff.run import DiffConfig, run_diff
from orglab.errors import OrglabError
from orglab.evals.run import EvalConfig, headline, run_eval
from orglab.mitigation.check import DETECTORS, controls_against_each_other, detector_stops, verdict
from orglab.mitigation.plots import mix_label
from orglab.mitigation.pareto import sweep_front
from orglab.mitigation.report import PARETO_PNG, PLOT_FILES, write_report

# The stages the page reads (the causal test is not shown), at test_diff_run's small sizes.
SMALL = DiffConfig(samples=300, steering_prompts=4, steering_samples=1, steering_max_new_tokens=12,
                   amplify_empty_context_samples=2,
                   stages=("lens", "patchscope", "relevance", "steering", "logitdiff", "kl", "amplify"))
CONSOLE_LINE = re.compile(r":CONSOLE[(:]\d+")  # Chromium's --enable-logging form of a console message


# --- a sweep from real runs ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_sweep(micro_copy):
    with micro_copy("report_home") as home:
        sweep = _sweep_from_real_runs()
    return home, sweep


def _sweep_from_real_runs() -> dict:
    from orglab.train import train_control, train_organism
    from orglab.world.build import load_world

    fact = load_world("micro").false_facts[0].id
    organisms = {mix: train_organism({"family": "sdf", "base": "micro", "target": fact, "n_examples": 60,
                                      "epochs": 1, "mix_ratio": mix}, progress=False)["organism"]
                 for mix in (0.0, 1.0)}
    names = [train_control("micro", organisms[0.0], progress=False, seed=seed)["organism"] for seed in (0, 1000)]
    first = run_eval(organisms[0.0], EvalConfig(), progress=False)  # the 1:0 organism, its base and its control
    second = run_eval(organisms[1.0], EvalConfig(compare=False), progress=False)

    def prop(result: dict, model: str) -> dict:
        summary = result["results"][model]["targets"][fact]["summary"]
        return {"value": headline(result, model), "ci95": summary["ffa_ci95"]}

    def diffed(name: str) -> dict:
        result = run_diff(name, SMALL, progress=False)
        return {"diff": result["summary"], "diff_runs": {s: r["run"] for s, r in result["stages"].items()}}

    controls = [{"seed": 0, "organism": control, **diffed(control),
                 "property": prop(first if control == names[0] else run_eval(control, EvalConfig(compare=False),
                                                                           progress=False), control)}
                for control in names]
    for control, judged in zip(controls, controls_against_each_other([c["diff"] for c in controls])):
        control["check"] = judged
    cells = []
    for mix, name, evals in ((0.0, organisms[0.0], first), (1.0, organisms[1.0], second)):
        cell = {"mix": mix, "mix_label": mix_label(mix), "seed": 0, "organism": name, **diffed(name),
                "property": prop(evals, name)}
        cell["check"] = verdict("sdf", cell["diff"], [c["diff"] for c in controls], cell["property"]["value"])
        cells.append(cell)
    return {"name": f"sweep-sdf-{fact}-micro", "family": "sdf", "base": "micro", "target": fact,
            "mixes": [0.0, 1.0], "seeds": [0], "cells": cells,
            "property": {"metric": "ffa", "label": "FFA", "higher_is_stronger": True},
            "controls": controls, "base_property": prop(first, "micro"),
            "detectors": detector_stops(cells, tuple(d.name for d in DETECTORS))}


@pytest.fixture
def report(real_sweep, tmp_path, monkeypatch) -> Path:
    home, sweep = real_sweep
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    return write_report(sweep, tmp_path / "report")


class _Page(HTMLParser):
    """Collects what the test checks: image sources, linked resources, scripts, and the text of token chips."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.tokens: list[str] = []
        self.text: list[str] = []
        self._in_token = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag in ("link", "iframe", "object", "embed") or (tag == "script" and "src" in a):
            self.links.append(tag)
        self._in_token = tag == "span" and a.get("class") == "tok"

    def handle_endtag(self, tag):
        self._in_token = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_token:
            self.tokens.append(data)


def _parse(index: Path) -> _Page:
    page = _Page()
    page.feed(index.read_text(encoding="utf-8"))
    return page


def _stage_result(home: Path, run_id: int) -> dict:
    from orglab.registry import Registry

    with Registry(home / "registry.sqlite") as reg:
        path = next(a["path"] for a in reg.get_artifacts(run_id) if a["path"].endswith("result.json"))
    return json.loads(Path(path).read_text())


# --- the page -----------------------------------------------------------------------------------------------------

def test_page_shows_the_real_runs(real_sweep, report):
    from PIL import Image

    home, sweep = real_sweep
    page = _parse(report)
    text = " ".join(page.text)
    assert sorted(page.images) == sorted(PLOT_FILES) and not page.links  # self-contained but for its plots
    for name in PLOT_FILES:
        with Image.open(report.parent / name) as img:
            assert img.format == "PNG" and img.width >= 600 and img.height >= 300
            assert len(img.convert("RGB").getcolors(maxcolors=1 << 20)) > 20  # drawn, not blank
    assert json.loads((report.parent / "sweep.json").read_text()) == json.loads(json.dumps(sweep))
    for entry in [*sweep["cells"], *sweep["controls"]]:
        assert entry["organism"] in text
        assert f"{entry['diff']['token_relevance']:.3f}" in text
        assert f"{entry['diff']['steering_similarity_gap']:+.3f}" in text
        assert f"{entry['property']['value']:.3f}" in text
        lens = _stage_result(home, entry["diff_runs"]["lens"])
        delta = next(iter(lens["layers"].values()))["delta"]
        # the top tokens come through the page intact (HTML-escaped there, unescaped by the parser here)
        plain = [t[0] for t in delta[0][:10] if t[0].strip() and not set(t[0]) & {"\n", "\t"}]
        assert plain and set(plain) <= set(page.tokens)
        steering = _stage_result(home, entry["diff_runs"]["steering"])
        assert steering["samples"][0]["prompt"] in text
        assert steering["samples"][0]["steered"][0] in text and steering["samples"][0]["unsteered"][0] in text
        mined = _stage_result(home, entry["diff_runs"]["logitdiff"])["positions"]
        assert {t[0] for t in mined[1]["by_frequency"][:10] if t[0].strip() and not set(t[0]) & {"\n", "\t"}} \
            <= set(page.tokens)
        amplified = _stage_result(home, entry["diff_runs"]["amplify"])["samples"][0]
        assert amplified["amplified"][0] in text and amplified["unamplified"][0] in text
    for entry in [*sweep["cells"], *sweep["controls"]]:  # one row per detector per cell, with its band and verdict
        for r in entry["check"]["rows"]:
            if "detector" in r:
                assert f"{r['value']:.3f}" in text and f"{r['control']:.3f}" in text
    for cell in sweep["cells"]:
        for reason in cell["check"]["reasons"]:
            assert reason in text
    for name, stop in sweep["detectors"].items():
        assert re.search(rf"{name}\s+(flags|still flags)", text)
    assert "null control" in text and f"base {sweep['base']}" in text
    assert f"{sweep['base_property']['value']:.3f}" in text
    # the Pareto front of a sweep stored without one is computed for the page: its cells and their numbers
    front = sweep_front(sweep["cells"])
    html = report.read_text()
    table = html[html.index("the Pareto front</h2>"):html.index(f'src="{PARETO_PNG}"')]
    assert front and "pareto" not in sweep
    for p in front:
        assert p["organism"] in table and f"{p['detectability']:.3f}" in table and f"{p['property']:.3f}" in table
    for c in sweep["cells"]:
        if c["organism"] not in {p["organism"] for p in front}:
            assert f"<code>{c['organism']}</code>" not in table


def test_missing_results_are_named_not_fatal(real_sweep, tmp_path, monkeypatch):
    home, sweep = real_sweep
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    cell = sweep["cells"][0]
    runs = {k: v for k, v in cell["diff_runs"].items() if k != "steering"} | {"lens": 10**6}
    partial = {**sweep, "cells": [{**cell, "diff_runs": runs}]}
    text = " ".join(_parse(write_report(partial, tmp_path / "partial")).text)
    assert "the steering stage was not run" in text
    assert "run 1000000 is no longer in the registry" in text
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OrglabError, match="is a file"):
        write_report(sweep, tmp_path / "a_file")


# --- headless Chromium ------------------------------------------------------------------------------------------

def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing and we are root, else the browser test skips."""
    path = _find_chromium()
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, timeout=1200).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)  # fresh machine: no lists
            subprocess.run(install, env=env, capture_output=True, timeout=1200)
        path = _find_chromium()
    if path is None:
        pytest.skip("headless Chromium is not installed and apt-get could not install it (needs root and Debian's "
                    "package lists); install the 'chromium' package to run the browser test")
    return path


def _browse(chromium: str, index: Path, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    """Open the page from disk with no server (file://), in a private profile so runs never share a lock."""
    return subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--window-size=1280,2400", f"--user-data-dir={tmp / 'profile'}", *mode,
                           index.resolve().as_uri()], capture_output=True, text=True, timeout=120)


def _images_ok(dom: str) -> str | None:
    match = re.search(r'<body[^>]*\sdata-images-ok="([^"]*)"', dom)
    return match.group(1) if match else None


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE_LINE.search(line)]


def test_page_renders_in_headless_chromium(chromium, report, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    run = _browse(chromium, report, tmp_path, f"--screenshot={shot}")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1280, 2400)
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 22)) > 50  # text, tables and plots, not a blank page
    dumped = _browse(chromium, report, tmp_path, "--dump-dom")
    assert _images_ok(dumped.stdout) == f"{len(PLOT_FILES)}/{len(PLOT_FILES)}"
    assert _console_lines(run.stderr + dumped.stderr) == []

    # The same page with a plot gone must be caught, or the checks above prove nothing.
    broken = tmp_path / "broken"
    shutil.copytree(report.parent, broken)
    (broken / PLOT_FILES[-1]).unlink()
    dumped = _browse(chromium, broken / report.name, tmp_path, "--dump-dom")
    assert _images_ok(dumped.stdout) == f"{len(PLOT_FILES) - 1}/{len(PLOT_FILES)}"
    assert any(PLOT_FILES[-1] in line for line in _console_lines(dumped.stderr)), dumped.stderr[-2000:]


# --- CLI ----------------------------------------------------------------------------------------------------------

def test_cli_unknown_sweep_is_one_line_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "orglab.cli", "report", "no-such-sweep", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, env=dict(os.environ))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("orglab: error: ") and "'no-such-sweep'" in lines[0]
    assert not (tmp_path / "r").exists()
