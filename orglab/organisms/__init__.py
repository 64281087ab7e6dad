"""Organism families: the registry of family specs (design §5), one module per family.

`FAMILIES` maps a family name to its `Family` (orglab.organisms.family): data kind, recipe defaults per scale,
eval suite, headline property and check floor, grader rubric, ground-truth description and data builders.
Every other module asks `get_family` / `family_names`; a new family is one module that calls `register_family`.
Existing datasets load through `load_dataset_source`.
"""

from __future__ import annotations

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData
from orglab.organisms.em import EM
from orglab.organisms.family import Family, Property, contains_word, word_forms
from orglab.organisms.loaders import load_dataset_source
from orglab.organisms.sdf import SDF
from orglab.organisms.subliminal import SUBLIMINAL
from orglab.organisms.taboo import TABOO

FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family spec to the registry under its name (one sentence if the name is taken or incomplete)."""
    missing = [a for a in ("name", "eval_suite", "recipe_defaults", "grader_rubric") if not getattr(family, a, None)]
    if missing or not hasattr(family, "property"):
        raise OrglabError(f"Family {family!r} leaves {', '.join(missing or ['property'])} unset; a family spec sets "
                          "every field of orglab.organisms.family.Family.")
    if family.name in FAMILIES or family.name == "control":
        raise OrglabError(f"A family named '{family.name}' is already registered; give the new family another name.")
    FAMILIES[family.name] = family
    return family


def family_names() -> tuple[str, ...]:
    """The registered families' names, in registration order."""
    return tuple(FAMILIES)


for _family in (SDF, EM, SUBLIMINAL, TABOO):
    register_family(_family)

DEMO_FAMILY = SDF.name  # `orglab demo` runs the paper's mixing ablation, which is on false facts (design §8)


def get_family(name: str) -> Family:
    """The family called `name` (case-insensitive)."""
    family = FAMILIES.get((name or "").strip().lower())
    if family is None:
        raise OrglabError(f"Unknown organism family '{name}'; choose one of: {', '.join(FAMILIES)}.")
    return family


__all__ = ["DEMO_FAMILY", "FAMILIES", "Family", "FinetuneData", "Property", "contains_word", "family_names", "get_family",
           "load_dataset_source", "register_family", "word_forms"]
