"""Argument checks that run before anything is written or computed (docs/reliability.md).

One rule per kind of value, each with one message, so every command rejects the same bad input with the same
sentence: names, seeds, input files, output folders and numbers. `check_args` applies them to a parsed command
line by the argument's name, so a new command gets them for free; library entry points call the single checks.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from orglab.errors import OrglabError

NAME_MAX = 100
NAME_RULE = (f"1 to {NAME_MAX} characters: letters, digits, '-', '_' and '.', starting with a letter or digit")
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_MAX - 1}}}")
SEED_LIMIT = 2 ** 32  # numpy and torch seeds are unsigned 32-bit
# Arguments that name a file the command reads.
INPUT_FILES = ("config", "true_context", "bank", "chat_template")
# Arguments that are a file or a keyword / hub dataset id: checked only when they look like a file.
DATA_SOURCES = ("data", "unrelated")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".yaml", ".yml", ".txt", ".jinja")
# Float arguments that must be >= 0 (margins and floors); every float argument must be finite.
NON_NEGATIVE = ("relevance_margin", "steering_margin", "property_floor")


def check_name(name: Any, flag: str = "--name") -> str:
    """A name orglab registers and uses as a folder: the one rule (NAME_RULE)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = str(name) if len(str(name)) <= 40 else str(name)[:37] + "..."
        raise OrglabError(f"{flag} '{shown}' is not a valid name; use {NAME_RULE}.")
    return name


def check_seed(seed: Any, flag: str = "--seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise OrglabError(f"{flag} {seed} is out of range; pass a whole number from 0 to {SEED_LIMIT - 1}.")
    return seed


def check_input_file(path: Any, flag: str) -> Path:
    """A file the command will read: it exists and is not a folder."""
    p = Path(str(path)).expanduser()
    if p.is_dir():
        raise OrglabError(f"{flag} {p} is a directory; pass a file.")
    if not p.exists():
        raise OrglabError(f"{flag} {p} does not exist; pass an existing file.")
    if not os.access(p, os.R_OK):
        raise OrglabError(f"{flag} {p} is not readable; fix its permissions (chmod u+r).")
    return p


def check_output_dir(path: Any, flag: str) -> Path:
    """A folder the command will write into: a folder or nothing yet, under a writable existing ancestor."""
    p = Path(str(path)).expanduser()
    if p.exists() and not p.is_dir():
        raise OrglabError(f"{flag} {p} is a file, not a folder; pass a folder (it is created if missing).")
    ancestor = p
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise OrglabError(f"{flag} {p} cannot be written ({ancestor} is not a writable folder); pass another folder.")
    return p


def check_writable(folder: Path) -> Path:
    """A run folder orglab is about to write into (created by artifact_dir, so it exists)."""
    for path in (folder, *(p for p in folder.rglob("*") if p.is_dir())):
        if not os.access(path, os.W_OK | os.X_OK):
            raise OrglabError(f"The run folder {path} is not writable; make it writable (chmod -R u+w {folder}) "
                              "or remove it, and run again.")
    return folder


def check_number(value: Any, flag: str, minimum: float | None = None) -> float:
    """A finite number (NaN and infinities are never meaningful settings), at least `minimum` when given."""
    if not math.isfinite(value):
        raise OrglabError(f"{flag} {value} is not a finite number; pass a number like 0.15.")
    if minimum is not None and value < minimum:
        raise OrglabError(f"{flag} {value:g} is below {minimum:g}; pass a number >= {minimum:g}.")
    return value


def looks_like_file(source: str) -> bool:
    """A data source that names a local file (not 'builtin', 'self' or a hub dataset id)."""
    p = Path(source).expanduser()
    return p.exists() or p.suffix.lower() in DATA_SUFFIXES or source.startswith((".", "~", os.sep))


def check_args(args: Any) -> None:
    """Every check that applies to a parsed command line (an argparse Namespace), by argument name."""
    values = {k: v for k, v in vars(args).items() if v is not None and not k.startswith("_")}
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if key == "name":  # a new name; --like and positional names are looked up, not created
            check_name(value, flag)
        elif key == "seed":
            check_seed(value, flag)
        elif key == "seeds":
            for seed in _ints(value, flag):
                check_seed(seed, flag)
        elif key in INPUT_FILES:
            check_input_file(value, flag)
        elif key in DATA_SOURCES and isinstance(value, str) and looks_like_file(value):
            check_input_file(value, flag)
        elif key == "out":
            check_output_dir(value, flag)
        elif isinstance(value, float):
            check_number(value, flag, 0.0 if key in NON_NEGATIVE else None)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise OrglabError(f"{flag} '{text}' is not a comma-separated list of whole numbers like 0,1.") from None
