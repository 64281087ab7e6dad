"""Activation-difference statistics (SPEC §6): per layer and position, mean(h_organism - h_base), the two
means, and mean activation norms, over N unrelated samples.

Only the first positions matter (causal attention), so inputs are cut to `n_positions` tokens; sums run in
fp32 and no [N, positions, hidden] tensor is ever held, so peak memory does not grow with N. A LoRA organism
is compared with its own base by switching the adapter off: one copy of the base weights.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from orglab.diff.activations import residual_after


@dataclass
class ActivationStats:
    """Means over samples, indexed [layer_slot, position, hidden]; `layers[i]` is the model layer of slot i."""

    layers: list[int]
    counts: torch.Tensor          # [P] samples that reach each position
    mean_diff: torch.Tensor       # [L, P, H] mean of (organism - base)
    mean_base: torch.Tensor       # [L, P, H]
    mean_organism: torch.Tensor   # [L, P, H]
    norm_base: torch.Tensor       # [L] mean L2 norm of base activations (over every counted token)
    norm_organism: torch.Tensor   # [L]

    @property
    def n_samples(self) -> int:
        return int(self.counts[0]) if len(self.counts) else 0

    def diff(self, layer: int, position: int) -> torch.Tensor:
        return self.mean_diff[self.layers.index(layer), position]

    def save(self, path: Path) -> Path:
        tensors = {"counts": self.counts, "mean_diff": self.mean_diff, "mean_base": self.mean_base,
                   "mean_organism": self.mean_organism, "norm_base": self.norm_base,
                   "norm_organism": self.norm_organism, "layers": torch.tensor(self.layers)}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
        return path

    @classmethod
    def load(cls, path: Path) -> ActivationStats:
        t = load_file(str(path))
        return cls(layers=t.pop("layers").tolist(), **t)


def sample_texts(texts: Sequence[str], n: int, seed: int) -> list[str]:
    """n texts drawn without replacement, deterministically for a seed (all of them if there are fewer)."""
    if n >= len(texts):
        return list(texts)
    return [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), n))]


def encode_prefixes(tokenizer, texts: Sequence[str], n_positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded [B, <=n_positions] ids and mask; each text cut to its first n_positions tokens (BOS included
    when the tokenizer adds one)."""
    rows = [tokenizer(t, truncation=True, max_length=n_positions).input_ids[:n_positions] for t in texts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids, mask


@torch.no_grad()
def activation_difference_stats(organism, tokenizer, texts: Sequence[str], layers: Sequence[int], n_positions: int,
                                base=None, batch_size: int = 64,
                                on_batch: Callable[[int], None] | None = None) -> ActivationStats:
    """Streaming statistics of organism vs base activations on `texts`.

    `base=None` means `organism` is a PeftModel whose adapter is switched off for the base pass.
    """
    layers = sorted(set(int(layer) for layer in layers))
    device = next(organism.parameters()).device
    sums: dict[str, torch.Tensor] = {}
    counts = torch.zeros(n_positions, dtype=torch.float64)
    norm_sums = {"base": torch.zeros(len(layers), dtype=torch.float64),
                 "organism": torch.zeros(len(layers), dtype=torch.float64)}
    n_tokens = 0.0

    def base_pass(ids, mask):
        if base is not None:
            return residual_after(base, ids, mask, layers)
        with organism.disable_adapter():
            return residual_after(organism, ids, mask, layers)

    for start in range(0, len(texts), batch_size):
        ids, mask = encode_prefixes(tokenizer, texts[start:start + batch_size], n_positions)
        ids, mask = ids.to(device), mask.to(device)
        h_org = residual_after(organism, ids, mask, layers)
        h_base = base_pass(ids, mask)
        width = ids.shape[1]
        m = mask.to(torch.float32)[:, :, None]                     # [B, T, 1]
        stack = lambda h: torch.stack([h[layer] for layer in layers]) * m  # noqa: E731  [L, B, T, H]
        org, bas = stack(h_org), stack(h_base)
        for key, value in (("diff", org - bas), ("base", bas), ("organism", org)):
            batch_sum = value.sum(dim=1).to(torch.float32).cpu()    # [L, T, H]
            if key not in sums:
                sums[key] = torch.zeros(len(layers), n_positions, batch_sum.shape[-1], dtype=torch.float32)
            sums[key][:, :width] += batch_sum
        counts[:width] += mask.sum(dim=0).double().cpu()
        norm_sums["base"] += bas.norm(dim=-1).sum(dim=(1, 2)).double().cpu()
        norm_sums["organism"] += org.norm(dim=-1).sum(dim=(1, 2)).double().cpu()
        n_tokens += float(mask.sum())
        if on_batch:
            on_batch(ids.shape[0])

    denom = counts.clamp(min=1).to(torch.float32)[None, :, None]
    return ActivationStats(
        layers=layers, counts=counts.to(torch.float32),
        mean_diff=sums["diff"] / denom, mean_base=sums["base"] / denom, mean_organism=sums["organism"] / denom,
        norm_base=(norm_sums["base"] / max(n_tokens, 1.0)).to(torch.float32),
        norm_organism=(norm_sums["organism"] / max(n_tokens, 1.0)).to(torch.float32),
    )

