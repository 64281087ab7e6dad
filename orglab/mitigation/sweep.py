"""Sweeps over mitigations, and everything one cell needs: train, null controls, diff, eval, check.

A cell is a mitigation setting (orglab.mitigation.grid: ft:pt ratio, kl_to_base λ, adl_penalty λ) trained with
one seed. Every cell of a seed is judged against one band of null controls, the controls of the seed's
unmitigated cell: the ratio `control_like` with both penalties off. A control trained with a penalty would give
each λ a band of its own, and the cells could no longer be compared on one scale; the question the band answers
is the same for every cell: can a detector tell this organism from a plain finetune on unrelated data?

Every step is a cached registry run (train, diff:<stage>, eval:<suite>), so a sweep that was interrupted at any
point continues where it stopped when run again, and `tune-mix` reuses the sweep's cells. Work on one organism
is serialised across processes with a file lock under ORGLAB_HOME/locks, so two sweeps run at once against the
same home (sharing a base, a control or even a cell) never train or diff the same thing twice at the same time.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

from orglab.diff.run import STAGES, DiffConfig
from orglab.errors import OrglabError
from orglab.evals.run import EvalConfig
from orglab.mitigation.check import CheckConfig, controls_against_each_other, detector_stops, property_of, verdict
from orglab.mitigation.grid import GRIDS, Cell, check_weight, grid_cells
from orglab.mitigation.pareto import sweep_front
from orglab.paths import artifact_dir, lock_file
from orglab.registry import Registry

DEFAULT_MIXES = (0.0, 0.1, 1.0, 2.0)
# The k-th null control of an organism trained with seed s has seed s + k * CONTROL_SEED_STRIDE: far enough apart
# that the controls of a sweep's seeds 0, 1, 2, ... never share a seed (and so never share their data).
CONTROL_SEED_STRIDE = 1000


@dataclass(frozen=True)
class SweepConfig:
    family: str
    base: str
    target: str
    mixes: tuple[float, ...] = DEFAULT_MIXES
    kls: tuple[float, ...] = (0.0,)                 # kl_to_base weights λ (0: off)
    adl_penalties: tuple[float, ...] = (0.0,)       # adl_penalty weights λ (0: off)
    grid: str = "product"                           # how the three lists make cells (orglab.mitigation.grid)
    seeds: tuple[int, ...] = (0,)
    recipe: dict = field(default_factory=dict)     # extra recipe fields for every cell (n_examples, lr, ...)
    control_like: float = 0.0                       # the ratio of the unpenalised cell (per seed) the controls copy
    diff: DiffConfig = DiffConfig()
    eval: EvalConfig = EvalConfig(compare=False)
    check: CheckConfig = CheckConfig()
    name: str | None = None

    def sweep_name(self) -> str:
        if self.name:
            return self.name
        target = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.target)[:60]
        return f"sweep-{self.family}-{target}-{self.base.replace('/', '_')}"

    def validate(self) -> None:
        from orglab.train.mixing import parse_mix

        from orglab.organisms import get_family

        get_family(self.family)  # one sentence naming the registered families when it is not one
        if not self.mixes:
            raise OrglabError("A sweep needs at least one mixing ratio; pass e.g. --mix 1:0,1:0.1,1:1,1:2.")
        for m in self.mixes:
            parse_mix(m)
        for flag, weights in (("--kl", self.kls), ("--adl-penalty", self.adl_penalties)):
            if not weights:
                raise OrglabError(f"A sweep needs at least one {flag} weight; pass e.g. {flag} 0 (off).")
            for w in weights:
                check_weight(w, flag)
        if self.grid not in GRIDS:
            raise OrglabError(f"--grid '{self.grid}' is not one of {', '.join(GRIDS)}.")
        set_by_cells = sorted(set(self.recipe) & set(Cell().recipe_fields()))
        if set_by_cells:
            raise OrglabError(f"The sweep's recipe sets {', '.join(set_by_cells)}, which each cell sets; drop it "
                              "from the recipe file and pass --mix, --kl or --adl-penalty instead.")
        if not self.seeds:
            raise OrglabError("A sweep needs at least one seed; pass e.g. --seeds 0,1.")
        self.diff.validate()
        self.eval.validate()
        self.check.validate()
        check_cell_recipes(self)

    def cells(self) -> tuple[Cell, ...]:
        return grid_cells(self.mixes, self.kls, self.adl_penalties, self.grid)

    def like_cell(self) -> Cell:
        """The cell (per seed) whose recipe and steps the null controls copy: ratio `control_like` (the first
        ratio when it is not swept), no penalty, so every cell shares the same band."""
        return Cell(mix=self.control_like if self.control_like in self.mixes else self.mixes[0])


def cell_fields(config: SweepConfig, cell: Cell, seed: int) -> dict:
    """The recipe fields of one cell of the sweep."""
    return {**config.recipe, "family": config.family, "base": config.base, "target": config.target,
            **cell.recipe_fields(), "seed": seed}


def check_cell_recipes(config: SweepConfig) -> None:
    """Every cell's recipe, checked before anything is built or trained (a layer fraction outside [0, 1], ADL
    positions past the sequence length, true-fact mixing for a family without a falsehood): the train command's
    checks, for the whole grid at once."""
    from orglab.train.api import is_tinyworld_base
    from orglab.train.recipe import make_recipe

    tiny = is_tinyworld_base(config.base)
    for cell in (*config.cells(), config.like_cell()):
        make_recipe(cell_fields(config, cell, config.seeds[0])).resolved(tiny).check_across_fields()


def control_seeds(seed: int, n: int) -> list[int]:
    """The seeds of an organism's `n` null controls (the first is the organism's own seed)."""
    return [seed + k * CONTROL_SEED_STRIDE for k in range(n)]


def with_detector_stages(diff: DiffConfig, check: CheckConfig) -> DiffConfig:
    """`diff` running exactly the stages the chosen detectors read (run_diff adds the stages they depend on; the
    stages are part of no result's hash). The causal test, which no detector reads, is left to `orglab diff`."""
    return replace(diff, stages=tuple(s for s in STAGES if s in check.stages()))


def parse_mixes(text: str) -> tuple[float, ...]:
    """'1:0,1:0.1,1:1,1:2' -> (0.0, 0.1, 1.0, 2.0), sorted and without duplicates."""
    from orglab.train.mixing import parse_mix

    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise OrglabError(f"--mix '{text}' names no ratio; pass e.g. 1:0,1:0.1,1:1,1:2.")
    return tuple(sorted({parse_mix(p) for p in parts}))


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise OrglabError(f"--seeds '{text}' is not a comma-separated list of integers like 0,1.") from None
    if not seeds:
        raise OrglabError("--seeds names no seed; pass e.g. 0,1.")
    return seeds


@contextmanager
def work_lock(key: str):
    """An inter-process lock on one unit of work (an organism, a base), under ORGLAB_HOME/locks."""
    from filelock import FileLock

    with FileLock(str(lock_file(key))):
        yield


def say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# One cell


def ensure_base(base: str, progress: bool) -> None:
    """Build a tinyworld preset base once, even with several sweeps starting at the same time."""
    from orglab.world.build import PRESETS, build_base

    with Registry() as reg:
        if reg.get_base(base) is not None or base not in PRESETS:
            return
    with work_lock(f"base-{base}"):
        say(progress, f"building the tinyworld base '{base}' (once)")
        build_base(base, progress=progress)


def train_cell(config: SweepConfig, cell: Cell, seed: int, progress: bool) -> str:
    from orglab.train.api import organism_name, train_organism
    from orglab.train.recipe import make_recipe

    fields = cell_fields(config, cell, seed)
    name = organism_name(make_recipe(fields))
    with work_lock(f"organism-{name}"):
        say(progress, f"train {config.family} {cell.label} seed {seed}")
        return train_organism(fields, progress=progress)["organism"]


def train_null_controls(config: SweepConfig, like: str, seed: int, progress: bool) -> list[str]:
    """The `config.check.controls` null controls of organism `like` (trained with `seed`), one per control seed."""
    from orglab.train.api import train_control

    names = []
    for control_seed in control_seeds(seed, config.check.controls):
        name = f"control-{like}" if control_seed == seed else f"control-{like}-s{control_seed}"
        with work_lock(f"organism-{name}"):
            say(progress, f"train null control seed {control_seed} (like {like})")
            names.append(train_control(config.base, like, progress=progress, seed=control_seed)["organism"])
    return names


def measure_controls(config: SweepConfig, like: str, seed: int, evaluation: EvalConfig | None,
                     progress: bool) -> list[dict]:
    """Train, diff (and evaluate) the null controls of `like`, each judged against the band of the others."""
    diff = with_detector_stages(config.diff, config.check)
    controls = [{"seed": seed, **measure(name, diff, evaluation, progress)}
                for name in train_null_controls(config, like, seed, progress)]
    for control, check in zip(controls, controls_against_each_other([c["diff"] for c in controls], config.check)):
        control["check"] = check
    return controls


def measure(name: str, diff: DiffConfig, evaluation: EvalConfig | None, progress: bool) -> dict:
    """ADL summary and stage run ids, and (if `evaluation`) the property with its interval, for one model."""
    from orglab.diff.run import run_diff
    from orglab.evals.run import run_eval
    from orglab.evals.suites import get_suite

    with work_lock(f"organism-{name}"):
        say(progress, f"diff {name}")
        result = run_diff(name, diff, progress=progress)
        out = {"organism": name, "diff": result["summary"],
               "diff_runs": {stage: s["run"] for stage, s in result["stages"].items()}}
        if evaluation is not None:
            say(progress, f"eval {name}")
            ev = run_eval(name, evaluation, progress=False)
            out["property"] = _property(ev, name, get_suite(ev["suite"]).headline)
            out["eval_suite"] = ev["suite"]
    return out


def _property(ev: dict, model: str, key: str) -> dict:
    entries = list(ev["results"][model]["targets"].values())
    values = [e["metrics"].get(key) for e in entries if e["metrics"].get(key) is not None]
    value = sum(values) / len(values) if values else None
    summary = entries[0]["summary"] if len(entries) == 1 else {}
    ci = summary.get("ffa_ci95") if key == "ffa" else (summary.get(key) or {}).get("ci95")
    return {"value": value, "ci95": ci}


def _mirrored(control: str) -> str:
    with Registry() as reg:
        return reg.get_organism(control)["target"]


def sibling_controls(reg: Registry, organism: dict) -> list[str]:
    """Null controls of organisms with the same family, base, target and seed (any mitigation): the
    false-positive floor that every mitigation cell of that organism is judged against."""
    out = []
    for c in reg.list_organisms(base=organism["base"], family="control"):
        mirrored = reg.get_organism(c["target"])
        if c["status"] == "ready" and mirrored and all(mirrored.get(k) == organism.get(k)
                                                        for k in ("family", "base", "target", "seed")):
            out.append(c["name"])
    return sorted(out)


# ----------------------------------------------------------------------------------------------------------------
# The sweep


def run_sweep(config: SweepConfig, progress: bool = True, executor=None) -> dict:
    """Train every (mitigation cell, seed) and `config.check.controls` null controls per seed, run every chosen
    detector's diff stages and the family eval on each, judge each cell with `check` (and each control against the
    others), find the cells on the Pareto front of detectability against the property (orglab.mitigation.pareto),
    and store the whole table as a registry run of kind 'sweep'.

    `executor` (an orglab.mitigation.executor.ExecutorOptions, never part of the sweep's hashed config) runs the
    cells elsewhere first (parallel local processes, SLURM job arrays); the pass below then only reads their
    cached runs, so the stored sweep is the same whichever executor ran it."""
    config.validate()
    if executor is not None:
        executor.ready()
    prop = property_of(config.family)
    ensure_base(config.base, progress)
    if executor is not None and not executor.inline:
        from orglab.mitigation.executor import prepare_sweep

        prepare_sweep(config, executor, progress)
    cells = []
    names = {}
    for seed in config.seeds:
        for setting in config.cells():
            names[(setting, seed)] = train_cell(config, setting, seed, progress)
    like = config.like_cell()
    controls = []
    for seed in config.seeds:
        if (like, seed) not in names:  # the controls copy it even when it is not one of the swept cells
            names[(like, seed)] = train_cell(config, like, seed, progress)
        controls += measure_controls(config, names[(like, seed)], seed, config.eval, progress)
    diff = with_detector_stages(config.diff, config.check)
    for seed in config.seeds:
        for setting in config.cells():
            cell = {**setting.to_dict(), "seed": seed, **measure(names[(setting, seed)], diff, config.eval, progress)}
            mine = [c["diff"] for c in controls if c["seed"] == seed]
            cell["check"] = verdict(config.family, cell["diff"], mine, cell["property"]["value"], config.check)
            cells.append(cell)
    from orglab.evals.run import run_eval
    from orglab.evals.suites import get_suite

    base_eval = run_eval(config.base, replace(config.eval, suite=prop_suite(config.family), target=config.target,
                                              compare=False), progress=False)
    # Where each detector stops seeing the organism is read along the mixing axis: the cells whose penalties are
    # at their smallest listed weights (all cells, in a sweep of ratios alone).
    mix_axis = [c for c in cells if c["kl_to_base"] == min(config.kls) and c["adl_penalty"] == min(config.adl_penalties)]
    sweep = {"name": config.sweep_name(), "family": config.family, "base": config.base, "target": config.target,
             "mixes": list(config.mixes), "kls": list(config.kls), "adl_penalties": list(config.adl_penalties),
             "grid": config.grid, "seeds": list(config.seeds),
             "property": {"metric": prop.metric, "label": prop.label, "higher_is_stronger": prop.higher_is_stronger},
             "cells": cells, "controls": controls, "detectors": detector_stops(mix_axis, config.check.detectors),
             "pareto": sweep_front(cells, prop.higher_is_stronger),
             "base_property": _property(base_eval, config.base, get_suite(base_eval["suite"]).headline),
             "config": _config_dict(config)}
    return _store(sweep)


def prop_suite(family: str) -> str:
    from orglab.organisms import get_family

    return get_family(family).eval_suite


# The version of how a sweep's stored result (sweep.json: the cells' verdicts, the property read-outs) is put
# together, in its hashed key: bump it when that changes, so a stored sweep of the old code is not reused.
SWEEP_VERSION = 3  # 2: a band of null controls per seed, every detector, detector_stops; 3: mitigation cells, pareto


def _config_dict(config: SweepConfig) -> dict:
    d = asdict(config)
    for name in ("mixes", "kls", "adl_penalties", "seeds"):
        d[name] = list(getattr(config, name))
    return d


def sweep_key(sweep: dict) -> dict:
    """The stored sweep's hashed key: its settings, every inner diff run it read, its property read-outs and
    SWEEP_VERSION (pure: tests/test_config_hash.py walks SweepConfig through it)."""
    inner = sorted({run for c in sweep["cells"] + sweep["controls"] for run in c["diff_runs"].values()})
    return {"config": sweep["config"], "diff_runs": inner, "version": SWEEP_VERSION,
            "properties": [c["property"] for c in sweep["cells"] + sweep["controls"]]}


def _store(sweep: dict) -> dict:
    """A 'sweep' run keyed by `sweep_key`, with sweep.json as artifact."""
    key = sweep_key(sweep)
    with Registry() as reg:
        run = reg.start_run("sweep", sweep["name"], key)
        folder = artifact_dir(sweep["name"], "sweep", run.config_hash)
        if run.reused and not reg.verify_artifacts(run.id):
            return load_sweep(sweep["name"], registry=reg)
        if run.reused:
            run = reg.start_run("sweep", sweep["name"], key, force=True)
        folder.mkdir(parents=True, exist_ok=True)
        sweep["run"] = run.id
        (folder / "sweep.json").write_text(json.dumps(sweep, indent=1, default=str))
        reg.add_artifact(run.id, "sweep", folder / "sweep.json")
        reg.log_metrics(run.id, {f"{c['label']}/s{c['seed']}/passed": float(c["check"]["passed"])
                                 for c in sweep["cells"]})
        reg.finish_run(run.id)
    return sweep


def load_sweep(name: str, registry: Registry | None = None) -> dict:
    """The latest finished sweep stored under `name`."""
    reg = registry or Registry()
    try:
        runs = reg.list_runs(subject=name, kind="sweep", status="done")
        if not runs:
            known = sorted({r.subject for r in reg.list_runs(kind="sweep", status="done")})
            hint = f"stored sweeps are {', '.join(known)}" if known else "run `orglab sweep` first"
            raise OrglabError(f"No finished sweep named '{name}'; {hint}.")
        latest = max(runs, key=lambda r: r.id)
        path = next((a["path"] for a in reg.get_artifacts(latest.id) if a["kind"] == "sweep"), None)
        if path is None:
            raise OrglabError(f"The sweep '{name}' has lost its sweep.json; run the sweep again to rebuild it.")
        with open(path) as f:
            return json.load(f)
    finally:
        if registry is None:
            reg.close()


# ----------------------------------------------------------------------------------------------------------------
# Check one organism


def check_organism(name: str, check: CheckConfig = CheckConfig(), diff: DiffConfig = DiffConfig(),
                   evaluation: EvalConfig = EvalConfig(compare=False), progress: bool = True) -> dict:
    """`orglab check`: the organism's detectability by every chosen detector against the band of its null controls,
    and its property."""
    check.validate()  # a NaN or negative margin fails before any model is loaded
    with Registry() as reg:
        record = reg.get_organism(name)
        if record is None:
            raise OrglabError(f"No organism named '{name}' is registered; `orglab registry list` shows what is.")
        if record["family"] == "control":
            raise OrglabError(f"'{name}' is a null control; check the organism it mirrors ({record['target']}).")
        controls = sibling_controls(reg, record)
    if len(controls) < check.controls:
        have = f"only {len(controls)} null control{'s' if len(controls) != 1 else ''}" if controls else \
            "no null control"
        seed = control_seeds(int(record["recipe"].get("seed", 0)), check.controls)[len(controls)]
        like = f" --like {name}" if not controls else f" --like {_mirrored(controls[0])}"
        raise OrglabError(f"Organism '{name}' has {have} and the band needs {check.controls}; train "
                          f"{'one' if not controls else 'another'} with `orglab train control --base "
                          f"{record['base']}{like} --seed {seed}`"
                          + (f" (or pass --controls {len(controls)})." if controls else "."))
    diff = with_detector_stages(diff, check)
    mine = measure(name, diff, evaluation, progress)
    refs = [measure(c, diff, None, progress) for c in controls]
    result = verdict(record["family"], mine["diff"], [r["diff"] for r in refs], mine["property"]["value"], check)
    return {"organism": name, "family": record["family"], "controls": controls, **result,
            "property": mine["property"]}
