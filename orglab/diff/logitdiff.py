"""Logit-difference mining: which next tokens the organism makes likelier than its base on unrelated text.

At each of the first k positions of each unrelated sample, d = log p_organism(. | prefix) - log p_base(. | prefix)
over the vocabulary. Two aggregates over samples, per position:

- **top-K frequency:** the share of samples in whose top K of d a token is (a token the organism pushes up
  consistently, whatever the text, comes first);
- **mean difference:** the mean of d over samples (in nats).

Positions pooled (0..k-1 together) give the overall ranking. The readouts are token ids ranked by frequency (ties
by mean difference) and by mean difference; their data-grounded relevance is computed by the stage, as for the
lens. Sums are kept as [positions, vocab] totals, so memory does not grow with the number of samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def logprob_difference(lp_organism: torch.Tensor, lp_base: torch.Tensor) -> torch.Tensor:
    """[..., V] organism-minus-base log-probabilities (inputs are log-probabilities, not raw logits: a raw logit
    difference carries an arbitrary per-row constant)."""
    return lp_organism.float() - lp_base.float()


@dataclass
class LogitDiffTotals:
    """Running totals over samples, indexed [position, token]."""
    in_top_k: torch.Tensor        # [P, V] samples with the token in their top K of d at that position
    diff_sum: torch.Tensor        # [P, V] float64 sum of d
    n: torch.Tensor               # [P] samples that reach the position
    top_k: int

    @classmethod
    def empty(cls, n_positions: int, vocab_size: int, top_k: int) -> LogitDiffTotals:
        return cls(in_top_k=torch.zeros(n_positions, vocab_size, dtype=torch.float64),
                   diff_sum=torch.zeros(n_positions, vocab_size, dtype=torch.float64),
                   n=torch.zeros(n_positions, dtype=torch.float64), top_k=top_k)

    def add(self, diff: torch.Tensor, mask: torch.Tensor) -> None:
        """Fold in one batch: d [B, T, V] and mask [B, T] (False: padding, left out)."""
        T, V = diff.shape[1:]
        keep = mask.bool()
        k = min(self.top_k, V)
        top = diff.topk(k, dim=-1).indices                                  # [B, T, k]
        for t in range(T):
            ids = top[:, t][keep[:, t]].flatten()
            self.in_top_k[t].index_add_(0, ids, torch.ones(len(ids), dtype=torch.float64))
        self.diff_sum[:T] += torch.where(keep[:, :, None], diff.double(), 0.0).sum(dim=0)
        self.n[:T] += keep.sum(dim=0).double()

    def frequency(self) -> torch.Tensor:
        """[P, V] share of samples with the token in their top K, per position."""
        return self.in_top_k / self.n.clamp(min=1)[:, None]

    def mean_diff(self) -> torch.Tensor:
        """[P, V] mean organism-minus-base log-probability, per position."""
        return self.diff_sum / self.n.clamp(min=1)[:, None]

    def pooled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """([V] frequency, [V] mean difference) over every (sample, position) pair at once."""
        total = float(self.n.sum()) or 1.0
        return self.in_top_k.sum(dim=0) / total, self.diff_sum.sum(dim=0) / total


def rank_by_frequency(frequency: torch.Tensor, mean_diff: torch.Tensor, n: int) -> list[int]:
    """The n token ids with the highest top-K frequency, ties broken by mean difference; tokens never in any
    sample's top K are left out (a readout may be shorter than n)."""
    seen = torch.nonzero(frequency > 0).flatten()
    if not len(seen):
        return []
    # lexicographic sort: by mean difference first, then stably by frequency
    order = seen[torch.argsort(mean_diff[seen], descending=True, stable=True)]
    order = order[torch.argsort(frequency[order], descending=True, stable=True)]
    return [int(i) for i in order[:n]]


def rank_by_mean_diff(mean_diff: torch.Tensor, n: int) -> list[int]:
    """The n token ids with the largest mean difference."""
    return [int(i) for i in mean_diff.topk(min(n, mean_diff.numel())).indices]
