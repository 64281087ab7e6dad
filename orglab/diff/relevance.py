"""Token relevance (design §6): the share of a readout's top tokens that belong to the finetuning domain.

Data-grounded rule (offline, deterministic, never shown the organism's description): a token is relevant when
it is over-represented in the finetuning data against unrelated data, by a smoothed log-odds ratio, and occurs
at least `count_floor` times in the finetuning data. The LLM-judged variant lives with the judges.

Tokens are compared by their key (`orglab.tokens.token_key`: the token as displayed, lower-cased), in the data
and in the readouts alike: tinyworld's word-level tokens are whole words, and a real tokenizer's "Ġcake", "cake"
and "Cake" are one word, so counts and verdicts belong to words rather than to spellings of subword ids. The
functions below take any hashable token (keys, or plain ids in constructed cases).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orglab.diff.run import DiffConfig
from orglab.tokens import token_key


@dataclass(frozen=True)
class RelevanceRule:
    """The rule's thresholds; the defaults are DiffConfig's relevance_* fields (the diff passes its own)."""
    count_floor: int = DiffConfig.relevance_count_floor      # a token must occur this often in the finetuning data
    min_log_odds: float = DiffConfig.relevance_min_log_odds  # and be e (2.7x) times likelier there than in unrelated
    smoothing: float = DiffConfig.relevance_smoothing        # add-alpha for tokens unseen on one side


def token_counts(tokenizer, texts: Iterable[str]) -> Counter:
    """Occurrences of each token key in `texts` (ids counted first, each distinct id shown once)."""
    ids: Counter = Counter()
    for text in texts:
        ids.update(tokenizer(text, add_special_tokens=False).input_ids)
    counts: Counter = Counter()
    for token_id, c in ids.items():
        counts[token_key(tokenizer, token_id)] += c
    return counts


def readout_keys(tokenizer, ids: Sequence[int]) -> list[str]:
    """The keys of a readout's token ids, in order (what `relevant_tokens` returns sets of)."""
    return [token_key(tokenizer, int(i)) for i in ids]


def log_odds(ft: Counter, unrelated: Counter, smoothing: float = 0.5) -> dict:
    """Smoothed log-odds ratio of each finetuning token: log(p_ft/(1-p_ft)) - log(p_un/(1-p_un))."""
    n_ft, n_un = sum(ft.values()), sum(unrelated.values())
    out = {}
    for token, c in ft.items():
        u = unrelated.get(token, 0)
        a = math.log((c + smoothing) / (n_ft - c + smoothing))
        b = math.log((u + smoothing) / (n_un - u + smoothing))
        out[token] = a - b
    return out


def relevant_tokens(ft: Counter, unrelated: Counter, rule: RelevanceRule = RelevanceRule()) -> set:
    scores = log_odds(ft, unrelated, rule.smoothing)
    return {t for t, s in scores.items() if ft[t] >= rule.count_floor and s >= rule.min_log_odds}


def relevance_share(top_token_ids: Sequence, relevant: set, k: int = 20) -> float:
    """Share of the first k readout tokens that are relevant."""
    top = list(top_token_ids)[:k]
    return sum(t in relevant for t in top) / len(top) if top else 0.0


def relevance_by_position(top_ids_per_position: Sequence[Sequence], relevant: set, k: int = 20,
                          max_positions: int = 5) -> dict:
    """Per-position shares and their max over positions 0..max_positions-1 (the paper's summary number)."""
    shares = [relevance_share(ids, relevant, k) for ids in top_ids_per_position]
    head = shares[:max_positions]
    return {"per_position": shares, "max": max(head) if head else 0.0,
            "argmax_position": int(max(range(len(head)), key=head.__getitem__)) if head else None}
