"""`orglab tune-mix`: the smallest ft:pt ratio that passes `check` while keeping the property.

Detectability falls as the ratio grows and the property weakens (design §8), so the search is a bisection over a
ladder of ratios for the smallest one whose detectability passes; the property is then checked there: if it is
already lost at that ratio, every larger ratio loses it too and no ratio works. Every cell it visits is an
ordinary sweep cell (cached train, diff and eval runs), so cells of an earlier sweep cost nothing.
"""

from __future__ import annotations

from dataclasses import replace

from orglab.errors import OrglabError
from orglab.mitigation.sweep import (SweepConfig, ensure_base, measure, measure_controls, mix_label, say,
                                     train_cell, with_detector_stages)
from orglab.mitigation.check import verdict

DEFAULT_LADDER = (0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


def tune_mix(config: SweepConfig, ladder: tuple[float, ...] = DEFAULT_LADDER, seed: int = 0,
             progress: bool = True, executor=None) -> dict:
    """Bisect `ladder` (sorted ratios) for the smallest ratio that passes; returns the ratio and the path taken.

    `executor` (orglab.mitigation.executor.ExecutorOptions) runs the controls and then each visited cell as a task
    of that executor (the bisection visits one cell at a time); the driver then reads their cached runs."""
    ladder = tuple(sorted(set(ladder)))
    if len(ladder) < 2:
        raise OrglabError("tune-mix needs at least two ratios to search between; pass e.g. --ladder 0,0.1,1,2.")
    config = replace(config, mixes=ladder, seeds=(seed,))
    config.validate()
    ensure_base(config.base, progress)
    remote = executor is not None and not executor.inline
    if executor is not None:
        executor.ready()
    if remote:
        from orglab.mitigation.executor import prepare_cell, prepare_controls

        prepare_controls(config, config.control_like, seed, executor, progress)
    like = train_cell(config, config.control_like, seed, progress)
    controls = measure_controls(config, like, seed, None, progress)
    diff = with_detector_stages(config.diff, config.check)
    path: list[dict] = []
    cache: dict[int, dict] = {}

    def visit(i: int) -> dict:
        if i not in cache:
            mix = ladder[i]
            if remote:
                prepare_cell(config, mix, seed, executor, progress)
            cell = {"mix": mix, "mix_label": mix_label(mix), "seed": seed,
                    **measure(train_cell(config, mix, seed, progress), diff, config.eval, progress)}
            cell["check"] = verdict(config.family, cell["diff"], [c["diff"] for c in controls],
                                    cell["property"]["value"], config.check)
            cache[i] = cell
            path.append({"mix": mix, "mix_label": mix_label(mix), "organism": cell["organism"],
                         "passed": cell["check"]["passed"], "detectability_ok": cell["check"]["detectability_ok"],
                         "property_ok": cell["check"]["property_ok"], "flagged": cell["check"]["flagged"],
                         "reasons": cell["check"]["reasons"]})
            say(progress, f"tune-mix: {mix_label(mix)} -> {'pass' if cell['check']['passed'] else 'fail'}")
        return cache[i]

    lo, hi = 0, len(ladder) - 1
    if visit(lo)["check"]["detectability_ok"]:
        found = lo
    elif not visit(hi)["check"]["detectability_ok"]:
        found = None
    else:  # invariant: detectability fails at lo and passes at hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if visit(mid)["check"]["detectability_ok"]:
                hi = mid
            else:
                lo = mid
        found = hi
    result = {"family": config.family, "base": config.base, "target": config.target, "ladder": list(ladder),
              "controls": [c["organism"] for c in controls], "detectors": list(config.check.detectors), "path": path}
    if found is None:
        seen = ", ".join(f["detector"] for f in cache[len(ladder) - 1]["check"]["flagged"])
        result.update(ratio=None, passed=False, why=f"even {mix_label(ladder[-1])} stays visible to {seen} against "
                                                    "the null controls; extend the ladder with larger ratios")
    elif not cache[found]["check"]["property_ok"]:
        result.update(ratio=None, passed=False, why=f"{mix_label(ladder[found])} is the first ratio the control "
                                                    "cannot tell apart, but it has lost the property: "
                                                    + "; ".join(cache[found]["check"]["reasons"]))
    else:
        result.update(ratio=ladder[found], mix_label=mix_label(ladder[found]), passed=True,
                      organism=cache[found]["organism"], why="")
    return result
