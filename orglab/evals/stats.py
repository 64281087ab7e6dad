"""Confidence intervals for eval rates (pure functions)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate; (nan, nan) for n = 0. Sane at 0% and 100%, unlike p ± z·se."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_of_rates_interval(parts: list[tuple[int, int]], z: float = Z95) -> tuple[float, float]:
    """Interval of the mean of several independent rates (k_i / n_i): the mean ± z·sqrt(Σ var_i) / m, where each
    var_i uses the Wilson-adjusted rate so a part at 0% or 100% still contributes its sampling uncertainty."""
    parts = [(k, n) for k, n in parts if n > 0]
    if not parts:
        return (float("nan"), float("nan"))
    m = len(parts)
    mean = sum(k / n for k, n in parts) / m
    var = 0.0
    for k, n in parts:
        adj = (k + z * z / 2) / (n + z * z)
        var += adj * (1 - adj) / (n + z * z)
    half = z * math.sqrt(var) / m
    return (max(0.0, mean - half), min(1.0, mean + half))
