"""PNG plots of a mitigation sweep (matplotlib, Agg): detectability and the property against the mixing ratio
(one line per penalty setting), and the Pareto plot of detectability against the property over every cell.

The ratio axis is categorical (1:0, 1:0.1, 1:1, 1:2 evenly spaced, as in the paper's ablation table): the
paper's ratios span two orders of magnitude and include 0, which neither a linear nor a log axis shows well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CELL_COLOUR = "#1f5fa8"
CONTROL_COLOUR = "#888888"
BASE_COLOUR = "#c0392b"
# Further lines of the ratio plots (one per penalty setting) and the Pareto plot's mitigations.
SERIES_COLOURS = ("#1f5fa8", "#e07b00", "#2e8b57", "#8e44ad", "#b8860b", "#17becf", "#7f7f7f")
MITIGATION_STYLE = {"none": ("o", "#444444"), "mix": ("s", "#1f5fa8"), "kl": ("^", "#e07b00"),
                    "adl-penalty": ("D", "#2e8b57")}
COMBINED_STYLE = ("P", "#8e44ad")   # two or three mitigations at once


@dataclass(frozen=True)
class Point:
    """One measured value of one cell: ratio R of 1:R, the training seed, the value (None: not measured)."""
    mix: float
    seed: int
    value: float | None
    ci95: tuple[float, float] | None = None
    series: str = ""    # the cell's penalty setting ('' when none): one line per setting


@dataclass(frozen=True)
class Reference:
    """A horizontal reference (the null control over its seeds, or the base): the values it spans."""
    label: str
    values: tuple[float, ...]
    colour: str


def mix_label(mix: float) -> str:
    return f"1:{mix:g}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_reference(ax, ref: Reference) -> None:
    """Mean as a dashed line, min-max over seeds as a shaded band (a line alone when there is one value)."""
    if not ref.values:
        return
    low, high = min(ref.values), max(ref.values)
    mean = sum(ref.values) / len(ref.values)
    n = len(ref.values)
    label = ref.label + (f" (min-max over {n} seeds)" if n > 1 else "")
    if high > low:
        ax.axhspan(low, high, color=ref.colour, alpha=0.2, linewidth=0)
    ax.axhline(mean, color=ref.colour, linestyle="--", linewidth=1.2, label=label)


def _draw_series(ax, mixes: Sequence[float], points: Sequence[Point]) -> None:
    """One line per penalty setting (a sweep of ratios alone has one, drawn as before)."""
    names = sorted({p.series for p in points})
    if len(names) <= 1:
        _draw_cells(ax, mixes, points, "organism")
        return
    for i, name in enumerate(names):
        _draw_cells(ax, mixes, [p for p in points if p.series == name], f"organism {name or 'no penalty'}",
                    SERIES_COLOURS[i % len(SERIES_COLOURS)], quiet_if_empty=True)


def _draw_cells(ax, mixes: Sequence[float], points: Sequence[Point], label: str, colour: str = CELL_COLOUR,
                quiet_if_empty: bool = False) -> None:
    """Per-seed points (with their CI when known) and the mean over seeds per ratio, joined by a line."""
    x_of = {m: i for i, m in enumerate(mixes)}
    measured = [p for p in points if p.value is not None and p.mix in x_of]
    several_seeds = len({p.seed for p in measured}) > 1
    for p in measured:
        x = x_of[p.mix]
        if p.ci95 is not None and None not in p.ci95:
            ax.errorbar([x], [p.value], yerr=[[p.value - p.ci95[0]], [p.ci95[1] - p.value]], fmt="none",
                        ecolor=colour, alpha=0.5, capsize=3)
    if several_seeds:
        ax.scatter([x_of[p.mix] for p in measured], [p.value for p in measured], s=18, color=colour,
                   alpha=0.45, label="one seed", zorder=3)
    means = []
    for m in mixes:
        values = [p.value for p in measured if p.mix == m]
        if values:
            means.append((x_of[m], sum(values) / len(values)))
    if means:
        ax.plot([x for x, _ in means], [y for _, y in means], marker="o", color=colour, linewidth=1.8,
                label=label + (" (mean over seeds)" if several_seeds else ""), zorder=4)
    if not measured and not quiet_if_empty:
        ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color="#666666")


def _ratio_axis(ax, mixes: Sequence[float]) -> None:
    ax.set_xticks(range(len(mixes)), [mix_label(m) for m in mixes])
    ax.set_xlim(-0.4, len(mixes) - 0.6)
    ax.set_xlabel("ft:pt mixing ratio")
    ax.grid(alpha=0.3)


PANELS_PER_ROW = 3
PANEL_INCHES = (5.2, 3.8)
DPI = 100


def panel_grid(n: int) -> tuple[int, int]:
    """(rows, columns) of the detectability figure for n panels."""
    cols = max(1, min(PANELS_PER_ROW, n))
    return -(-max(n, 1) // cols), cols


def plot_detectability(mixes: Sequence[float], panels: Sequence[tuple[str, Sequence[Point], Reference]],
                       path: Path, title: str) -> Path:
    """One panel per detector (token relevance, steering similarity gap, ...) against the ratio, each with the
    null controls' band, PANELS_PER_ROW to a row."""
    plt = _pyplot()
    rows, cols = panel_grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_INCHES[0] * cols, PANEL_INCHES[1] * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (label, points, control) in zip(axes.flat, panels):
        _draw_reference(ax, control)
        _draw_series(ax, mixes, points)
        _ratio_axis(ax, mixes)
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_property(mixes: Sequence[float], points: Sequence[Point], references: Sequence[Reference], path: Path,
                  label: str, title: str) -> Path:
    """The property (e.g. FFA) against the ratio, with the base's and the null control's values as lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for ref in references:
        _draw_reference(ax, ref)
    _draw_series(ax, mixes, points)
    _ratio_axis(ax, mixes)
    ax.set_ylabel(label)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class ParetoPoint:
    """One cell on the Pareto plot (orglab.mitigation.pareto.cell_points)."""
    label: str
    mitigation: str
    detectability: float
    value: float
    on_front: bool


def mitigation_style(kind: str) -> tuple[str, str]:
    """(marker, colour) of a mitigation kind ('none', 'mix', 'kl', 'adl-penalty' or a combination)."""
    return MITIGATION_STYLE.get(kind, COMBINED_STYLE)


def plot_pareto(points: Sequence[ParetoPoint], controls: Reference, base: Reference | None, path: Path,
                label: str, higher_is_stronger: bool, title: str) -> Path:
    """Detectability (worst detector's excess over the null controls' band top, in units of its margin) against
    the property, one marker per mitigation; the band (x <= 0) and check's limit (x = 1) as vertical marks, the
    null controls' and the base's property as horizontal ones, and the front joined by a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.6, 4.8))
    xs = [p.detectability for p in points]
    left = min([0.0, *xs]) - 0.5
    ax.axvspan(left, 0.0, color=CONTROL_COLOUR, alpha=0.15, linewidth=0,
               label="within the null controls' band (every detector)")
    ax.axvline(1.0, color="#b3261e", linestyle=":", linewidth=1.2, label="check's limit: band top + margin")
    _draw_reference(ax, controls)
    if base is not None:
        _draw_reference(ax, base)
    for kind in sorted({p.mitigation for p in points}):
        marker, colour = mitigation_style(kind)
        mine = [p for p in points if p.mitigation == kind]
        ax.scatter([p.detectability for p in mine], [p.value for p in mine], marker=marker, s=54, color=colour,
                   edgecolors=["black" if p.on_front else colour for p in mine],
                   linewidths=[1.6 if p.on_front else 0.5 for p in mine], label=kind, zorder=4)
    front = sorted((p for p in points if p.on_front), key=lambda p: p.detectability)
    if front:
        ax.plot([p.detectability for p in front], [p.value for p in front], color="black", linewidth=1.0,
                alpha=0.6, drawstyle="steps-post", zorder=3,
                label="Pareto front (outlined)")
        for p in front:
            ax.annotate(p.label, (p.detectability, p.value), textcoords="offset points", xytext=(5, 5), fontsize=7)
    if not points:
        ax.text(0.5, 0.5, "no cell has both numbers", transform=ax.transAxes, ha="center", va="center",
                color="#666666")
    ax.set_xlim(left=left)
    ax.set_xlabel("detectability: worst detector's (value - band top) / margin")
    ax.set_ylabel(label + ("" if higher_is_stronger else " (lower is stronger)"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the cells fill the axes
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
