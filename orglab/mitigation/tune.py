"""`orglab tune --mitigation mix|kl|adl-penalty` (and `orglab tune-mix`, its mixing case): the weakest setting of
one mitigation that passes `check` while keeping the property.

Detectability falls as a mitigation grows stronger (a larger ratio, a larger penalty weight) and the property
weakens (design §8), so the search is a bisection over a ladder of settings for the weakest one whose
detectability passes; the property is then checked there: if it is already lost at that setting, every stronger
one loses it too and no setting works. The other mitigations stay off (ratio `control_like`, penalties 0), and
the null controls are the sweep's: those of the unmitigated cell. Every cell it visits is an ordinary sweep cell
(cached train, diff and eval runs), so cells of an earlier sweep cost nothing.
"""

from __future__ import annotations

from dataclasses import replace

from orglab.errors import OrglabError
from orglab.mitigation.check import verdict
from orglab.mitigation.grid import Cell, check_mitigation
from orglab.mitigation.sweep import (SweepConfig, ensure_base, measure, measure_controls, say, train_cell,
                                     with_detector_stages)

DEFAULT_LADDER = (0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
# Log-spaced starting points for the penalty weights, not tuned on any model: the ADL penalty's squared norm is
# in the hundreds on the micro base where the KL is a few nats, hence its smaller weights. Pass --ladder to change.
DEFAULT_LADDERS = {"mix": DEFAULT_LADDER,
                   "kl": (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
                   "adl-penalty": (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)}


def tune(config: SweepConfig, mitigation: str = "mix", ladder: tuple[float, ...] | None = None, seed: int = 0,
         progress: bool = True, executor=None) -> dict:
    """Bisect `ladder` (settings of `mitigation`, sorted) for the weakest one that passes; returns it and the path
    taken.

    `executor` (orglab.mitigation.executor.ExecutorOptions) runs the controls and then each visited cell as a task
    of that executor (the bisection visits one cell at a time); the driver then reads their cached runs."""
    check_mitigation(mitigation)
    ladder = tuple(sorted(set(ladder if ladder is not None else DEFAULT_LADDERS[mitigation])))
    if len(ladder) < 2:
        raise OrglabError(f"tune needs at least two {mitigation} settings to search between; pass e.g. "
                          f"--ladder {','.join(f'{v:g}' for v in DEFAULT_LADDERS[mitigation][:4])}.")
    like_cell = Cell(mix=config.control_like)  # the unmitigated cell: the controls copy it, the ladder starts there
    cells = tuple(like_cell.along(mitigation, value) for value in ladder)
    # The config's lists name exactly the cells visited, so its validation checks each of their recipes.
    config = replace(config, mixes=tuple(sorted({c.mix for c in cells})), kls=tuple(sorted({c.kl for c in cells})),
                     adl_penalties=tuple(sorted({c.adl for c in cells})), grid="product", seeds=(seed,))
    config.validate()
    ensure_base(config.base, progress)
    remote = executor is not None and not executor.inline
    if executor is not None:
        executor.ready()
    if remote:
        from orglab.mitigation.executor import prepare_cell, prepare_controls

        prepare_controls(config, like_cell, seed, executor, progress)
    like = train_cell(config, like_cell, seed, progress)
    controls = measure_controls(config, like, seed, None, progress)
    diff = with_detector_stages(config.diff, config.check)
    path: list[dict] = []
    cache: dict[int, dict] = {}

    def visit(i: int) -> dict:
        if i not in cache:
            setting = cells[i]
            if remote:
                prepare_cell(config, setting, seed, executor, progress)
            cell = {**setting.to_dict(), "seed": seed,
                    **measure(train_cell(config, setting, seed, progress), diff, config.eval, progress)}
            cell["check"] = verdict(config.family, cell["diff"], [c["diff"] for c in controls],
                                    cell["property"]["value"], config.check)
            cache[i] = cell
            path.append({**setting.to_dict(), "value": ladder[i], "organism": cell["organism"],
                         "passed": cell["check"]["passed"], "detectability_ok": cell["check"]["detectability_ok"],
                         "property_ok": cell["check"]["property_ok"], "flagged": cell["check"]["flagged"],
                         "reasons": cell["check"]["reasons"]})
            say(progress, f"tune {mitigation}: {setting.label} -> {'pass' if cell['check']['passed'] else 'fail'}")
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
    result = {"family": config.family, "base": config.base, "target": config.target, "mitigation": mitigation,
              "ladder": list(ladder), "controls": [c["organism"] for c in controls],
              "detectors": list(config.check.detectors), "path": path}
    if found is None:
        seen = ", ".join(f["detector"] for f in cache[len(ladder) - 1]["check"]["flagged"])
        result.update(value=None, passed=False, why=f"even {cells[-1].label} stays visible to {seen} against the "
                                                    "null controls; extend the ladder with stronger settings")
    elif not cache[found]["check"]["property_ok"]:
        result.update(value=None, passed=False, why=f"{cells[found].label} is the weakest setting the controls "
                                                    "cannot tell apart, but it has lost the property: "
                                                    + "; ".join(cache[found]["check"]["reasons"]))
    else:
        result.update(value=ladder[found], label=cells[found].label, passed=True, organism=cache[found]["organism"],
                      why="")
    if mitigation == "mix":  # tune-mix's names for the same answer
        result["ratio"] = result["value"]
        if result["passed"]:
            result["mix_label"] = cells[found].mix_label
    return result


def tune_mix(config: SweepConfig, ladder: tuple[float, ...] = DEFAULT_LADDER, seed: int = 0,
             progress: bool = True, executor=None) -> dict:
    """`orglab tune-mix`: the smallest ft:pt ratio that passes (tune with mitigation 'mix')."""
    return tune(config, "mix", ladder, seed=seed, progress=progress, executor=executor)
