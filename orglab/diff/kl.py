"""Per-position KL divergence KL(organism || base) of the next-token distributions on unrelated text: a cheap
"how different at all" score, blind to what the difference is about.

KL(P || Q) = sum_v P(v) (log P(v) - log Q(v)), with P the organism's and Q the base's distribution after the same
prefix, averaged over samples at each position. Positions 0..k-1 are the early positions the ADL readouts
summarise (where a narrow finetune's bias is strongest); the later positions show whether it persists.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def kl_divergence(lp_p: torch.Tensor, lp_q: torch.Tensor) -> torch.Tensor:
    """[...] KL(P || Q) in nats from log-probabilities [..., V]; terms where P is 0 count 0."""
    p = lp_p.float().exp()
    terms = torch.where(p > 0, p * (lp_p.float() - lp_q.float()), torch.zeros_like(p))
    return terms.sum(dim=-1)


@dataclass
class KLTotals:
    """Running sums over samples, per position."""
    kl_sum: torch.Tensor          # [P] float64
    n: torch.Tensor               # [P] samples that reach the position

    @classmethod
    def empty(cls, n_positions: int) -> KLTotals:
        return cls(kl_sum=torch.zeros(n_positions, dtype=torch.float64),
                   n=torch.zeros(n_positions, dtype=torch.float64))

    def add(self, lp_organism: torch.Tensor, lp_base: torch.Tensor, mask: torch.Tensor) -> None:
        """Fold in one batch: log-probabilities [B, T, V] and mask [B, T] (False: padding, left out)."""
        keep = mask.bool()
        kl = kl_divergence(lp_organism, lp_base)                              # [B, T]
        T = kl.shape[1]
        self.kl_sum[:T] += torch.where(keep, kl.double(), 0.0).sum(dim=0)
        self.n[:T] += keep.sum(dim=0).double()

    def by_position(self) -> list[float]:
        """Mean KL at each position (0 where no sample reaches it)."""
        return [float(v) for v in self.kl_sum / self.n.clamp(min=1)]


def kl_summary(by_position: list[float], n_early: int) -> dict[str, float]:
    """The summary numbers: max and mean over positions 0..n_early-1, mean over the later positions (left out
    when there are none)."""
    early, late = by_position[:n_early], by_position[n_early:]
    out = {"kl_early_max": max(early), "kl_early_mean": sum(early) / len(early)}
    if late:
        out["kl_late_mean"] = sum(late) / len(late)
    return out
