"""Reading finished diff results back: the public way for other modules (the agent, reports) to get an
organism's ADL results, so none of them parses the diff's stage configs or result files itself.

A set of results is the statistics run and the lens, patchscope and steering runs that read it (their stage
configs name the statistics run they depend on); `find_diff_results` picks the newest complete set, and adds the
newest finished run of each detector beyond ADL (logitdiff, kl, amplify: they read no statistics) where there is
one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orglab.registry import Registry

READ_STAGES = ("lens", "patchscope", "steering")   # what a set of results holds besides the statistics
DETECTOR_READ_STAGES = ("logitdiff", "kl", "amplify")  # optional: the detectors beyond ADL, when they were run
STATS_FILE, RESULT_FILE = "stats.safetensors", "result.json"  # the names diff's writers use too


@dataclass
class DiffResults:
    """The finished ADL stages of one organism that belong together (they share one statistics run)."""

    organism: str
    lens: dict                  # layer (str) -> readout -> [position][(token, id, prob)]
    patchscope: dict            # layer (str) -> [position] {"scale", "tokens"}
    steering: dict              # the steering stage's result: layer, alpha, samples
    stats_path: str             # stats.safetensors: the mean differences, for generate_steered
    runs: dict[str, str]        # stage -> config hash (stats, lens, patchscope, steering, and detectors run)
    detectors: dict = field(default_factory=dict)   # stage -> result (logitdiff, kl, amplify), those that were run

    @property
    def layers(self) -> list[int]:
        return sorted(int(layer) for layer in self.lens)

    @property
    def positions(self) -> int:
        """k: the positions the diff summarised (patchscope reads exactly those; the lens keeps a few more)."""
        return len(next(iter(self.patchscope.values())))

    @property
    def lens_positions(self) -> int:
        return len(next(iter(self.lens.values()))["delta"])


def _result_file(reg: Registry, run_id: int, name: str) -> Path | None:
    """A file a run recorded, found through the registry (never by guessing its path)."""
    return next((Path(a["path"]) for a in reg.get_artifacts(run_id) if Path(a["path"]).name == name), None)


def load_diff_results(reg: Registry, organism: str, runs: dict[str, str]) -> DiffResults | None:
    """The ADL results of the given stage runs (by config hash), or None if one is gone or changed on disk."""
    found: dict[str, Any] = {}
    for stage in ("stats", *READ_STAGES):
        run = reg.find_run(f"diff:{stage}", organism, runs.get(stage, ""))
        if run is None or reg.verify_artifacts(run.id):
            return None
        name = STATS_FILE if stage == "stats" else RESULT_FILE
        path = _result_file(reg, run.id, name)
        if path is None:
            return None
        found[stage] = path if stage == "stats" else json.loads(path.read_text())
    detectors = {}
    for stage in (s for s in DETECTOR_READ_STAGES if s in runs):
        run = reg.find_run(f"diff:{stage}", organism, runs[stage])
        path = None if run is None or reg.verify_artifacts(run.id) else _result_file(reg, run.id, RESULT_FILE)
        if path is None:
            return None
        detectors[stage] = json.loads(path.read_text())
    return DiffResults(organism=organism, lens=found["lens"]["layers"], patchscope=found["patchscope"]["layers"],
                       steering=found["steering"], stats_path=str(found["stats"]),
                       runs={stage: runs[stage] for stage in ("stats", *READ_STAGES, *detectors)},
                       detectors=detectors)


def find_diff_results(reg: Registry, organism: str, judge: str = "offline") -> DiffResults | None:
    """The newest complete set of finished ADL stages of an organism: the newest statistics run that has a lens,
    a patchscope and a steering run reading it. Of those, the newest whose judge (offline or llm, as in
    `orglab diff --judge`) is `judge`, else the newest of any judge."""
    for stats in reg.list_runs(subject=organism, kind="diff:stats", status="done"):
        runs = {"stats": stats.config_hash}
        for stage in READ_STAGES:
            reading = [r for r in reg.list_runs(subject=organism, kind=f"diff:{stage}", status="done")
                       if (r.config.get("depends") or {}).get("stats") == stats.config_hash]
            # LLM-judged stage configs carry the judge's identity; offline ones have no such key
            match = next((r for r in reading if ("judge" in r.config) == (judge == "llm")), None) or \
                next(iter(reading), None)
            if match is None:
                break
            runs[stage] = match.config_hash
        else:
            for stage in DETECTOR_READ_STAGES:
                done = reg.list_runs(subject=organism, kind=f"diff:{stage}", status="done")
                match = next((r for r in done if ("judge" in r.config) == (judge == "llm")), None) or \
                    next(iter(done), None)
                if match is not None:
                    runs[stage] = match.config_hash
            found = load_diff_results(reg, organism, runs)
            if found is not None:
                return found
    return None
