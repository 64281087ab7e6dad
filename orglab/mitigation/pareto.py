"""Detectability against the property: one scalar per cell, and the cells no other cell beats on both.

The detectors speak different units (a share of tokens, a similarity gap, nats), so a cell's detectability is
read in units of each detector's margin: for detector d with null-control band [lo, top] and margin m,

    score_d = (value_d - top_d) / m_d          (a detector given margin 0 is read in its own units)

so 0 is the top of the controls' band and 1 is `check`'s limit (top + margin). A cell's **detectability** is
its worst (largest) score over the chosen detectors, and the detector that gives it is named: detectability
<= 1 is exactly "no detector flags it"; <= 0 is "inside the null controls' band for every detector". A detector
that was not measured leaves the cell without a detectability (check counts it as flagging; the front leaves
the cell out rather than guessing).

The **Pareto front** is the set of cells that no other cell dominates, where a cell dominates another when it
is no more detectable and keeps the property at least as strongly, and is strictly better in one of the two.
"At least as strongly" follows the family's direction: a higher FFA, EM or animal rate, a lower leak rate.
Everything here is pure, so it is unit-tested directly and computed the same way by the sweep and the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from orglab.mitigation.grid import cell_of


def detector_score(value: float, top: float, margin: float) -> float:
    """(value - top) / margin: 0 at the band's top, 1 at the check's limit."""
    return (value - top) / (margin if margin > 0 else 1.0)


def detectability(rows: Sequence[dict]) -> dict:
    """{'value': worst score, 'detector': its name} over a verdict's detector rows (orglab.mitigation.check);
    value None when a detector has no value or no band."""
    scores = []
    for r in rows:
        if "detector" not in r:
            continue  # the property's row
        if r.get("value") is None or r.get("control") is None:
            return {"value": None, "detector": r["detector"]}
        scores.append((detector_score(r["value"], r["control"], r.get("margin") or 0.0), r["detector"]))
    if not scores:
        return {"value": None, "detector": None}
    value, name = max(scores)
    return {"value": value, "detector": name}


def dominates(a: tuple[float, float], b: tuple[float, float], higher_is_stronger: bool = True) -> bool:
    """Whether point a = (detectability, property) dominates b."""
    sign = 1.0 if higher_is_stronger else -1.0
    no_worse = a[0] <= b[0] and sign * a[1] >= sign * b[1]
    return no_worse and (a[0] < b[0] or sign * a[1] > sign * b[1])


def pareto_front(points: Sequence[tuple[float | None, float | None]], higher_is_stronger: bool = True) -> list[int]:
    """Indices of the non-dominated points (detectability, property), by rising detectability; points with a
    missing or non-finite coordinate take no part. Equal points are all kept."""
    ok = [i for i, (d, p) in enumerate(points) if d is not None and p is not None
          and math.isfinite(d) and math.isfinite(p)]
    front = [i for i in ok if not any(dominates(points[j], points[i], higher_is_stronger) for j in ok if j != i)]
    sign = 1.0 if higher_is_stronger else -1.0
    return sorted(front, key=lambda i: (points[i][0], -sign * points[i][1], i))


def cell_points(cells: Sequence[dict]) -> list[dict]:
    """Each stored sweep cell as a point: {label, seed, organism, mitigation, detectability, detector, property,
    passed}."""
    points = []
    for c in cells:
        d = detectability((c.get("check") or {}).get("rows", []))
        cell = cell_of(c)
        points.append({"label": cell.label, "seed": c.get("seed", 0), "organism": c.get("organism"),
                       "mitigation": cell.kind, "detectability": d["value"], "detector": d["detector"],
                       "property": (c.get("property") or {}).get("value"),
                       "passed": bool((c.get("check") or {}).get("passed"))})
    return points


def sweep_front(cells: Sequence[dict], higher_is_stronger: bool = True) -> list[dict]:
    """The non-dominated cells of a sweep (as cell_points), by rising detectability."""
    points = cell_points(cells)
    chosen = pareto_front([(p["detectability"], p["property"]) for p in points], higher_is_stronger)
    return [points[i] for i in chosen]
