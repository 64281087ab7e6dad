"""The cells of a mitigation sweep: which ft:pt ratio and which trainer penalties one organism is trained with.

A cell is one point of the grid `--mix` x `--kl` x `--adl-penalty` (the recipe fields mix_ratio, kl_to_base and
adl_penalty, orglab.train.penalties); a sweep trains each cell once per seed. `product` takes every combination;
`axes` varies one mitigation at a time, the other two held at their smallest listed value, which measures each
mitigation alone at a cost that grows with the sum of the lists instead of their product. With one value for the
penalties (the default, 0: off) both are the plain ratio sweep of before.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from orglab.errors import OrglabError

GRIDS = ("product", "axes")
MITIGATIONS = ("mix", "kl", "adl-penalty")   # what `orglab tune --mitigation` searches
NO_MITIGATION = "none"


@dataclass(frozen=True, order=True)
class Cell:
    """One mitigation setting: ft:pt ratio 1:mix, kl_to_base weight kl, adl_penalty weight adl (0 = off)."""
    mix: float = 0.0
    kl: float = 0.0
    adl: float = 0.0

    @property
    def mix_label(self) -> str:
        return f"1:{self.mix:g}"

    @property
    def penalties(self) -> str:
        """The penalties that are on: '', 'kl=0.1', 'kl=0.1 adl=1'."""
        return " ".join(f"{name}={value:g}" for name, value in (("kl", self.kl), ("adl", self.adl)) if value > 0)

    @property
    def label(self) -> str:
        """How tables and plots name the cell: '1:0.1', '1:0 kl=0.1', '1:1 kl=0.1 adl=1'."""
        return f"{self.mix_label} {self.penalties}".strip()

    @property
    def kind(self) -> str:
        """The mitigations that are on: 'none', 'mix', 'kl', 'adl-penalty' or a combination like 'mix+kl'.
        The Pareto plot gives each kind its own marker."""
        on = [name for name, value in zip(MITIGATIONS, (self.mix, self.kl, self.adl)) if value > 0]
        return "+".join(on) or NO_MITIGATION

    @property
    def key(self) -> str:
        """A file-safe key, '0.1' for a plain ratio (the executor's task files), '0-kl0.1-adl1' with penalties."""
        text = f"{self.mix:g}" + "".join(f"-{name}{value:g}" for name, value in (("kl", self.kl), ("adl", self.adl))
                                         if value > 0)
        return re.sub(r"[^A-Za-z0-9_.-]", "_", text)

    def recipe_fields(self) -> dict:
        """The recipe fields this cell sets on top of the sweep's recipe."""
        return {"mix_ratio": self.mix, "kl_to_base": self.kl, "adl_penalty": self.adl}

    def to_dict(self) -> dict:
        """What a stored sweep cell says about its mitigation."""
        return {"mix": self.mix, "mix_label": self.mix_label, "kl_to_base": self.kl, "adl_penalty": self.adl,
                "mitigation": self.kind, "label": self.label}

    def along(self, mitigation: str, value: float) -> Cell:
        """This cell with one mitigation ('mix', 'kl' or 'adl-penalty') set to `value`."""
        field = {"mix": "mix", "kl": "kl", "adl-penalty": "adl"}[check_mitigation(mitigation)]
        return Cell(**{**{"mix": self.mix, "kl": self.kl, "adl": self.adl}, field: value})


def cell_of(entry: dict) -> Cell:
    """The Cell of a stored sweep cell (one stored before penalties has none: 0)."""
    return Cell(float(entry.get("mix", 0.0)), float(entry.get("kl_to_base", 0.0)),
                float(entry.get("adl_penalty", 0.0)))


def grid_cells(mixes: tuple[float, ...], kls: tuple[float, ...], adls: tuple[float, ...],
               grid: str = "product") -> tuple[Cell, ...]:
    """The sweep's cells, sorted and without duplicates (see the module docstring for `product` and `axes`)."""
    if grid not in GRIDS:
        raise OrglabError(f"--grid '{grid}' is not one of {', '.join(GRIDS)}.")
    if grid == "product":
        cells = {Cell(m, k, a) for m in mixes for k in kls for a in adls}
    else:
        m0, k0, a0 = min(mixes), min(kls), min(adls)
        cells = ({Cell(m, k0, a0) for m in mixes} | {Cell(m0, k, a0) for k in kls} | {Cell(m0, k0, a) for a in adls})
    return tuple(sorted(cells))


def check_mitigation(name: str) -> str:
    if name not in MITIGATIONS:
        raise OrglabError(f"--mitigation '{name}' is not one of {', '.join(MITIGATIONS)}.")
    return name


def check_weight(value: float, flag: str) -> float:
    """A penalty weight λ: finite and at least 0 (0 switches the penalty off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise OrglabError(f"{flag} {value} is not a penalty weight; a weight λ is a finite number >= 0 (0: off), "
                          f"e.g. {flag} 0,0.1,1.")
    return float(value)


def parse_weights(text: str, flag: str) -> tuple[float, ...]:
    """'0,0.1,1' -> (0.0, 0.1, 1.0), sorted and without duplicates; one sentence for anything else."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise OrglabError(f"{flag} '{text}' names no weight; pass e.g. {flag} 0,0.1,1.")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise OrglabError(f"{flag} '{part}' is not a number; pass weights like {flag} 0,0.1,1.") from None
        values.append(check_weight(value, flag))
    return tuple(sorted(set(values)))
