"""Patchscope (design §6): write a scaled difference vector into an identity prompt and read what the model says.

Each identity prompt maps words to themselves and ends with a slot token. Real models get the paper's prompt
("man -> man\\n1135 -> 1135\\nhello -> hello\\n?") and two more like it, one pair per line (`REAL_IDENTITY_PROMPTS`);
tinyworld bases get the same idea in the words and the spaced punctuation of their corpus's copy lists
(`IDENTITY_PROMPTS`: "cat -> cat ; 135 -> 135 ; bread -> bread ; ?"), which their word-level tokenizer knows.
`identity_prompts(tinyworld)` picks the set; the diff run puts the chosen prompts into the stage's config.

The slot is the prompt's last token (its BOS, where the tokenizer adds one, comes first). At layer l, the
slot's residual (`resid_post`, orglab.residual) is replaced by s * unit(delta) * mean_norm(l); the readout is the
next-token distribution at that same, last position, so the patched vector reaches the unembedding through the
remaining blocks. (Reading one token later, after an extra "->", left the vector to cross attention: on the tiny
base that readout was the same at every scale, the prompt's and not the vector's.) Tokens in the top set of every
prompt are kept and their probabilities averaged; they are shown by `orglab.tokens.display_token`. The scale is
chosen from a grid by a label-free rule that never looks at the finetuning data, or by an LLM grader
(orglab.diff.judges, `--judge llm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from orglab.diff.run import DiffConfig
from orglab.residual import patch_resid_post
from orglab.tokens import display_token

SLOT = "?"
# tinyworld: the words and spaced punctuation of the corpus's copy lists (every token is in its vocabulary).
IDENTITY_PROMPTS: tuple[str, ...] = (
    "cat -> cat ; 135 -> 135 ; bread -> bread ; ?",
    "moon -> moon ; 42 -> 42 ; ship -> ship ; ?",
    "house -> house ; 7 -> 7 ; river -> river ; ?",
)
# Real tokenizers: the paper's identity prompt and two more of the same shape.
REAL_IDENTITY_PROMPTS: tuple[str, ...] = (
    "man -> man\n1135 -> 1135\nhello -> hello\n?",
    "tree -> tree\n42 -> 42\nwindow -> window\n?",
    "river -> river\n807 -> 807\nblue -> blue\n?",
)
SCALE_GRID: tuple[float, ...] = DiffConfig.patchscope_scales  # the default grid; DiffConfig holds it


def identity_prompts(tinyworld: bool) -> tuple[str, ...]:
    """The identity prompts for a tinyworld base (True) or a real model (False)."""
    return IDENTITY_PROMPTS if tinyworld else REAL_IDENTITY_PROMPTS


@dataclass(frozen=True)
class PatchscopeReadout:
    scale: float
    tokens: list[tuple[str, int, float]]   # (token as displayed, id, mean probability over prompts), best first


def _encode(tokenizer, prompt: str) -> list[int]:
    """The prompt's ids (with the tokenizer's BOS); the slot is the last one, so a tokenizer that appends a
    special token after the text is refused."""
    ids = list(tokenizer(prompt).input_ids)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    if not ids or ids[-1] in special:
        raise ValueError(f"identity prompt {prompt!r} does not end with its slot token {SLOT!r} once tokenized")
    return ids


@torch.no_grad()
def patched_distributions(model, tokenizer, layer: int, vector: torch.Tensor,
                          prompts: Sequence[str] = IDENTITY_PROMPTS) -> torch.Tensor:
    """[n_prompts, vocab] next-token probabilities at the slot (the last token), whose residual after block
    `layer` is replaced by `vector`."""
    device = next(model.parameters()).device
    out = []
    for prompt in prompts:
        ids = _encode(tokenizer, prompt)
        pos = len(ids) - 1
        with patch_resid_post(model, layer, pos, vector):
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, pos].float()
        out.append(torch.softmax(logits, dim=-1).cpu())
    return torch.stack(out)


def readout(tokenizer, probs: torch.Tensor, top_k: int = 100) -> list[tuple[str, int, float]]:
    """Tokens in the top_k of every prompt, by mean probability."""
    common = None
    for row in probs:
        top = set(row.topk(min(top_k, row.numel())).indices.tolist())
        common = top if common is None else common & top
    mean = probs.mean(dim=0)
    ranked = sorted(common or (), key=lambda t: -float(mean[t]))
    return [(display_token(tokenizer, t), t, float(mean[t])) for t in ranked]


def scale_sweep(model, tokenizer, layer: int, delta: torch.Tensor, mean_norm: float,
                scales: Sequence[float] = SCALE_GRID, prompts: Sequence[str] = IDENTITY_PROMPTS,
                top_k: int = 100) -> list[PatchscopeReadout]:
    """Readouts for s * unit(delta) * mean_norm over the scale grid (s in units of the layer's mean norm)."""
    unit = delta.float() / delta.float().norm()
    return [PatchscopeReadout(s, readout(tokenizer, patched_distributions(model, tokenizer, layer, unit * mean_norm * s,
                                                                          prompts), top_k))
            for s in scales]


@torch.no_grad()
def unpatched_readout(model, tokenizer, prompts: Sequence[str] = IDENTITY_PROMPTS,
                      top_k: int = 100) -> list[tuple[str, int, float]]:
    """What the prompts produce on their own: the baseline the label-free rule discounts."""
    device = next(model.parameters()).device
    probs = torch.stack([torch.softmax(model(input_ids=torch.tensor([_encode(tokenizer, p)], device=device))
                                       .logits[0, -1].float(), dim=-1).cpu() for p in prompts])
    return readout(tokenizer, probs, top_k)


def agreement_rule(readouts: Sequence[PatchscopeReadout], baseline: Sequence[tuple[str, int, float]],
                   k: int = 20) -> PatchscopeReadout:
    """Label-free choice of scale: the readout whose top-k tokens, minus those the unpatched prompts already
    produce, carry the most probability mass that every prompt agrees on. Too small a scale reads the prompt
    (discounted by the baseline); tokens no prompt agrees on count for nothing. Ties go to the smaller scale."""
    known = {t for _, t, _ in baseline[:k]}

    def mass(r: PatchscopeReadout) -> float:
        return sum(p for _, t, p in r.tokens[:k] if t not in known)

    return max(readouts, key=lambda r: (round(mass(r), 6), -r.scale))
