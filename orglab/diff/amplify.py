"""Amplified (contrastive) decoding: sample from the organism with its difference from the base turned up.

At every step the next-token logits are l_ft + a * (l_ft - l_base), with l_ft the organism's and l_base the
base's logits after the same text (a = 0 is the organism itself). What finetuning added is exaggerated, so text
from neutral prompts (and from an empty context) drifts towards the finetuning domain well before the organism
alone would go there. The strength a is the largest value of a grid whose outputs stay coherent: the grid is
tried in ascending order and the search stops at the first incoherent value. The outputs judged are sampled, as the
measured texts are (`DiffConfig.amplify_search_decoding`; greedy ones stayed coherent on gemma3-270m at a scale whose
samples were junk, since amplification lifts the tail of the distribution). The judge is the steering strength's
label-free rule (orglab.diff.steering.offline_judge) with the organism's loss on the text by default, since the
base's rises on fluent text about a property it never read (`DiffConfig.amplify_loss_model`), or by the LLM
coherence judge.

The amplified texts are then measured two ways: their embedding similarity to the finetuning data minus the
unamplified texts' (orglab.diff.similarity, as steering similarity), and the data-grounded relevance of the tokens
most over-represented in them against the unamplified texts (orglab.diff.relevance's log-odds).

The base's logits are recomputed from the whole sequence at each step (no cache of its own), which is cheap at the
short lengths generated here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import torch

from orglab.diff.relevance import log_odds

# Over-represented tokens must occur at least this often in the amplified texts: one occurrence is noise.
OVER_REPRESENTED_MIN_COUNT = 2


def amplified_logits(l_organism: torch.Tensor, l_base: torch.Tensor, scale: float) -> torch.Tensor:
    """l_ft + a * (l_ft - l_base)."""
    return l_organism + scale * (l_organism - l_base)


def contrastive_adjuster(organism, scale: float, base=None) -> Callable:
    """The `adjust_logits` hook of orglab.generation.generate that amplifies the organism's difference from its base
    by `scale`. `base=None` means `organism` is a PeftModel whose adapter is switched off for the base's logits."""

    @torch.no_grad()
    def adjust(input_ids: torch.Tensor, attention_mask: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # positions counted from each row's first real token, as generate numbers them under left padding
        position_ids = (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)

        def last_logits(model):
            return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=False).logits[:, -1].float()

        if base is not None:
            l_base = last_logits(base)
        else:
            with organism.disable_adapter():
                l_base = last_logits(organism)
        return amplified_logits(scores.float(), l_base.to(scores.device), scale).to(scores.dtype)

    return adjust


def choose_scale(grid: Sequence[float], coherent: Callable[[float], bool]) -> tuple[float, list[tuple[float, bool]]]:
    """(the largest grid value below the first incoherent one, [(value, coherent) tried]); 0.0 (the organism
    itself) when the smallest value is already incoherent. Values are tried in ascending order."""
    chosen, tried = 0.0, []
    for scale in sorted(set(float(g) for g in grid)):
        ok = bool(coherent(scale))
        tried.append((scale, ok))
        if not ok:
            break
        chosen = scale
    return chosen, tried


def over_represented(counts: Counter, reference: Counter, n: int, smoothing: float,
                     min_count: int = OVER_REPRESENTED_MIN_COUNT) -> list:
    """The n tokens of `counts` with the highest log-odds against `reference` (positive only, at least `min_count`
    occurrences), highest first; ties by count, then by token for a stable order."""
    scores = log_odds(counts, reference, smoothing)
    kept = [t for t, s in scores.items() if s > 0 and counts[t] >= min_count]
    return sorted(kept, key=lambda t: (-scores[t], -counts[t], str(t)))[:n]


def padded_share(tokens: Sequence, relevant: set, k: int) -> float:
    """Share of k slots taken by relevant tokens; a readout shorter than k counts its missing slots as not
    relevant (a handful of over-represented tokens is weak evidence, not a full readout)."""
    return sum(t in relevant for t in list(tokens)[:k]) / k if k else 0.0
