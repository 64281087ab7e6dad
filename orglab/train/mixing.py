"""ft:pt data mixing (design §5.5): `--mix 1:R` adds R unrelated examples per finetuning example, shuffled in.

As in the paper, the mixed data is trained for one pass over the union (not compute-matched); the trainer's
`compute_matched` option instead keeps the step count of the unmixed data.
"""

from __future__ import annotations

import math
import random
import re

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData

_MIX = re.compile(r"^\s*1\s*:\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


def parse_mix(text: str | float | int | None) -> float:
    """The ratio R of '1:R' (R >= 0); a bare number is taken as R."""
    if text is None:
        return 0.0
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        ratio = float(text)
    else:
        m = _MIX.match(str(text))
        if m is None:
            raise OrglabError(
                f"Mixing ratio '{text}' is not of the form 1:R with R >= 0; write e.g. --mix 1:0.1 or --mix 1:2."
            )
        ratio = float(m.group(1))
    if not math.isfinite(ratio) or ratio < 0:
        raise OrglabError(f"Mixing ratio R={ratio} must be a finite number >= 0; write e.g. --mix 1:0.1 or --mix 1:2.")
    return ratio


def mix_suffix(ratio: float) -> str:
    """The paper's name suffix: 0.1 -> 'mix1-0p1', 1 -> 'mix1-1', 2 -> 'mix1-2', 0 -> 'mix1-0'."""
    ratio = parse_mix(ratio)
    text = f"{ratio:.6f}".rstrip("0").rstrip(".")
    return "mix1-" + text.replace(".", "p")


def n_unrelated(n_ft: int, ratio: float) -> int:
    """How many unrelated examples a ratio asks for."""
    return int(round(n_ft * ratio))


def mix(ft: FinetuneData, unrelated: FinetuneData, ratio: float, seed: int = 0) -> FinetuneData:
    """The finetuning data with round(R * len(ft)) unrelated examples shuffled in (deterministic for a seed).

    The unrelated examples are taken in order after a seeded shuffle; a pool too small for the ratio is an error
    (examples are never repeated silently). The unrelated data must be of the same kind (chat for chat families).
    """
    ratio = parse_mix(ratio)
    if ratio == 0:
        return FinetuneData(ft.kind, list(ft.examples), ft.source, {**ft.meta, "mix_ratio": 0.0, "n_ft": len(ft)})
    if unrelated.kind != ft.kind:
        raise OrglabError(
            f"Unrelated data is '{unrelated.kind}' but the finetuning data is '{ft.kind}'; "
            f"mix {'chat transcripts' if ft.kind == 'chat' else 'plain documents'} into it instead."
        )
    need = n_unrelated(len(ft), ratio)
    if need > len(unrelated):
        raise OrglabError(
            f"Mixing 1:{ratio:g} needs {need} unrelated examples but the unrelated source has only "
            f"{len(unrelated)}; use a larger source or a smaller ratio."
        )
    rng = random.Random(seed)
    pool = list(unrelated.examples)
    rng.shuffle(pool)
    examples = list(ft.examples) + pool[:need]
    rng.shuffle(examples)
    return FinetuneData(
        ft.kind, examples, f"{ft.source} + 1:{ratio:g} {unrelated.source}",
        {**ft.meta, "mix_ratio": ratio, "n_ft": len(ft), "n_unrelated": need},
    )
