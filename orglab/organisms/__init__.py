"""Organism families (SDF, EM, subliminal, taboo): each family's spec and data builders (SPEC §5).

`FAMILIES` maps a family name to its `Family` (orglab.organisms.family): target validation, ground-truth
description, recipe defaults, the unrelated source used for ft:pt mixing, and the data builders
(`build_tinyworld` offline, `build_real` LLM-backed or teacher-run, `build` choosing between them).
Existing datasets load through `load_dataset_source`.
"""

from __future__ import annotations

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData
from orglab.organisms.em import EM
from orglab.organisms.family import Family, contains_word, word_forms
from orglab.organisms.loaders import load_dataset_source
from orglab.organisms.sdf import SDF
from orglab.organisms.subliminal import SUBLIMINAL
from orglab.organisms.taboo import TABOO

FAMILIES: dict[str, Family] = {f.name: f for f in (SDF, EM, SUBLIMINAL, TABOO)}


def get_family(name: str) -> Family:
    """The family called `name` (case-insensitive)."""
    family = FAMILIES.get((name or "").strip().lower())
    if family is None:
        raise OrglabError(f"Unknown organism family '{name}'; choose one of: {', '.join(FAMILIES)}.")
    return family


__all__ = ["FAMILIES", "Family", "FinetuneData", "contains_word", "get_family",
           "load_dataset_source", "word_forms"]
