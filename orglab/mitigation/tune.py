"""`orglab tune-mix`: the smallest ft:pt ratio that passes `check` while keeping the property.

Detectability falls as the ratio grows and the property weakens (design §8), so the search is a bisection over a
ladder of ratios for the smallest one whose detectability passes; the property is then checked there: if it is
already lost at that ratio, every larger ratio loses it too and no ratio works. Every cell it visits is an
ordinary sweep cell (cached train, diff and eval runs), so cells of an earlier sweep cost nothing.
"""

from __future__ import annotations

from dataclasses import replace

from orglab.errors import OrglabError
from orglab.mitigation.sweep import (SweepConfig, ensure_base, measure, mix_label, say, train_cell,
                                     train_null_control)
from orglab.mitigation.check import verdict

DEFAULT_LADDER = (0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


def tune_mix(config: SweepConfig, ladder: tuple[float, ...] = DEFAULT_LADDER, seed: int = 0,
             progress: bool = True) -> dict:
    """Bisect `ladder` (sorted ratios) for the smallest ratio that passes; returns the ratio and the path taken."""
    ladder = tuple(sorted(set(ladder)))
    if len(ladder) < 2:
        raise OrglabError("tune-mix needs at least two ratios to search between; pass e.g. --ladder 0,0.1,1,2.")
    config = replace(config, mixes=ladder, seeds=(seed,))
    config.validate()
    ensure_base(config.base, progress)
    like = train_cell(config, config.control_like, seed, progress)
    control = measure(train_null_control(config, like, progress), config.diff, None, progress)
    path: list[dict] = []
    cache: dict[int, dict] = {}

    def visit(i: int) -> dict:
        if i not in cache:
            mix = ladder[i]
            cell = {"mix": mix, "mix_label": mix_label(mix), "seed": seed,
                    **measure(train_cell(config, mix, seed, progress), config.diff, config.eval, progress)}
            cell["check"] = verdict(config.family, cell["diff"], [control["diff"]], cell["property"]["value"],
                                    config.check)
            cache[i] = cell
            path.append({"mix": mix, "mix_label": mix_label(mix), "organism": cell["organism"],
                         "passed": cell["check"]["passed"], "detectability_ok": cell["check"]["detectability_ok"],
                         "property_ok": cell["check"]["property_ok"], "reasons": cell["check"]["reasons"]})
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
              "control": control["organism"], "path": path}
    if found is None:
        result.update(ratio=None, passed=False, why=f"even {mix_label(ladder[-1])} stays more detectable than the "
                                                    "null control; extend the ladder with larger ratios")
    elif not cache[found]["check"]["property_ok"]:
        result.update(ratio=None, passed=False, why=f"{mix_label(ladder[found])} is the first ratio the control "
                                                    "cannot tell apart, but it has lost the property: "
                                                    + "; ".join(cache[found]["check"]["reasons"]))
    else:
        result.update(ratio=ladder[found], mix_label=mix_label(ladder[found]), passed=True,
                      organism=cache[found]["organism"], why="")
    return result
