"""Causal test by projection replacement (design §6).

At layer l, every token of the organism: h <- h + ((h_base . u) - (h . u)) u, with u = unit(delta) and h_base
the base's activation on the same input. If delta carries the finetuning bias, removing it raises the
organism's cross-entropy on its finetuning data and lowers it on unrelated data; random directions are the
control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from orglab.diff.run import DiffConfig
from orglab.residual import edit_resid_post, read_resid_post


@dataclass(frozen=True)
class CausalResult:
    ce_organism: float            # mean token cross-entropy, unpatched
    ce_patched: float             # with the delta direction replaced by the base's
    ce_random: list[float]        # with random directions replaced (controls)

    @property
    def delta(self) -> float:
        return self.ce_patched - self.ce_organism

    @property
    def delta_random(self) -> float:
        return sum(self.ce_random) / len(self.ce_random) - self.ce_organism if self.ce_random else 0.0

    def to_dict(self) -> dict:
        return {"ce_organism": self.ce_organism, "ce_patched": self.ce_patched, "delta": self.delta,
                "ce_random": self.ce_random, "delta_random": self.delta_random}


def _encode(tokenizer, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and mask (padded here, so a tokenizer without a pad token works too)."""
    from orglab.generation import pad_token_id

    rows = [r[:max_length] for r in tokenizer(list(texts), truncation=True, max_length=max_length).input_ids]
    width = max(len(r) for r in rows)
    pad = pad_token_id(tokenizer)
    ids = torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)
    return ids, mask


def _mean_ce(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(sum of token CE, number of predicted tokens) for next-token prediction over the masked span."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = ids[:, 1:]
    keep = mask[:, 1:].bool()
    nll = -logp.gather(-1, target[..., None])[..., 0]
    return float(nll[keep].sum()), float(keep.sum())


@torch.no_grad()
def projection_replacement(organism, tokenizer, texts: Sequence[str], layer: int, direction: torch.Tensor,
                           base=None, n_random: int = DiffConfig.causal_random_directions, seed: int = 0,
                           batch_size: int = 16, max_length: int = DiffConfig.causal_max_length) -> CausalResult:
    """Cross-entropy of the organism on `texts`, plain, with `direction` replaced by the base's component,
    and with n_random random unit directions replaced instead."""
    gen = torch.Generator().manual_seed(seed)
    hidden = direction.numel()
    directions = [direction.float() / direction.float().norm()]
    directions += [(v / v.norm()) for v in (torch.randn(hidden, generator=gen) for _ in range(n_random))]
    totals = [[0.0, 0.0] for _ in range(len(directions) + 1)]  # [plain, delta, random...]

    for start in range(0, len(texts), batch_size):
        ids, mask = _encode(tokenizer, texts[start:start + batch_size], max_length)
        device = next(organism.parameters()).device
        ids, mask = ids.to(device), mask.to(device)
        if base is not None:
            h_base = read_resid_post(base, ids, mask, [layer])[layer]
        else:
            with organism.disable_adapter():
                h_base = read_resid_post(organism, ids, mask, [layer])[layer]
        s, n = _mean_ce(organism(input_ids=ids, attention_mask=mask).logits, ids, mask)
        totals[0][0] += s
        totals[0][1] += n
        for i, u in enumerate(directions, start=1):
            u = u.to(device)

            def replace(h, u=u):
                v = u.to(h.dtype)
                return h + ((h_base.to(h.dtype) @ v) - (h @ v))[..., None] * v

            with edit_resid_post(organism, layer, replace):
                s, n = _mean_ce(organism(input_ids=ids, attention_mask=mask).logits, ids, mask)
            totals[i][0] += s
            totals[i][1] += n
    means = [s / max(n, 1.0) for s, n in totals]
    return CausalResult(ce_organism=means[0], ce_patched=means[1], ce_random=means[2:])
