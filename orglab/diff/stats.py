"""Activation-difference statistics (design §6): per layer and position, mean(h_organism - h_base), the two
means, and mean activation norms, over N unrelated samples.

Only the first positions matter (causal attention), so inputs are cut to `n_positions` tokens; sums run in
fp32 and no [N, positions, hidden] tensor is ever held, so peak memory does not grow with N. A LoRA organism
is compared with its own base by switching the adapter off: one copy of the base weights.

**Position 0 and attention sinks.** Samples are encoded as the tokenizer encodes text, so position 0 is the
BOS token where the tokenizer adds one (Gemma, Llama 3 and tinyworld's tokenizer do) and the first text token
where it does not (Qwen3); `position0` records which ("bos" or "first_text_token"). Models park attention on
their first position (an attention sink) and its residual norm is typically many times that of text tokens,
so the mean norm that scales patchscope and steering (`norm_base`, `norm_organism`, per layer) leaves
attention-sink positions out (`NORM_RULE`):
- position 0 when it is BOS, at every layer;
- position 0 when it is the first text token, at a layer where its mean norm exceeds `SINK_FACTOR` times the
  median of the other positions' mean norms (a model without BOS that uses its first token as the sink).
The mean norm is the token-weighted mean over the remaining positions. The raw per-position mean norms stay
available (`norm_base_by_position`, `norm_organism_by_position`, [L, P]) with the mask of left-out positions
(`sink`, [L, P]). The mean differences and means themselves cover every position, position 0 included.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from orglab.diff.activations import residual_after

POSITION0_BOS = "bos"
POSITION0_TEXT = "first_text_token"
SINK_FACTOR = 5.0
# In the statistics stage's hashed config: changing how the mean norm is taken makes new results.
NORM_RULE = f"mean over positions except attention sinks (position 0 if BOS; if text, when > {SINK_FACTOR:g}x median)"


@dataclass
class ActivationStats:
    """Means over samples, indexed [layer_slot, position, hidden]; `layers[i]` is the model layer of slot i."""

    layers: list[int]
    counts: torch.Tensor          # [P] samples that reach each position
    mean_diff: torch.Tensor       # [L, P, H] mean of (organism - base)
    mean_base: torch.Tensor       # [L, P, H]
    mean_organism: torch.Tensor   # [L, P, H]
    norm_base: torch.Tensor       # [L] mean L2 norm of base activations, attention-sink positions left out
    norm_organism: torch.Tensor   # [L]
    norm_base_by_position: torch.Tensor | None = None      # [L, P] mean L2 norm at each position (all positions)
    norm_organism_by_position: torch.Tensor | None = None  # [L, P]
    sink: torch.Tensor | None = None                       # [L, P] bool: positions left out of the mean norms
    position0: str = "unknown"    # "bos" or "first_text_token" (older files: "unknown")
    meta: dict = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.counts[0]) if len(self.counts) else 0

    def diff(self, layer: int, position: int) -> torch.Tensor:
        return self.mean_diff[self.layers.index(layer), position]

    def sink_positions(self) -> dict[int, list[int]]:
        """{layer: positions left out of that layer's mean norm}."""
        if self.sink is None:
            return {layer: [] for layer in self.layers}
        return {layer: [int(p) for p in torch.nonzero(self.sink[slot]).flatten()]
                for slot, layer in enumerate(self.layers)}

    def save(self, path: Path) -> Path:
        tensors = {"counts": self.counts, "mean_diff": self.mean_diff, "mean_base": self.mean_base,
                   "mean_organism": self.mean_organism, "norm_base": self.norm_base,
                   "norm_organism": self.norm_organism, "layers": torch.tensor(self.layers)}
        for name in ("norm_base_by_position", "norm_organism_by_position"):
            if getattr(self, name) is not None:
                tensors[name] = getattr(self, name)
        if self.sink is not None:
            tensors["sink"] = self.sink.to(torch.uint8)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
                  metadata={"position0": self.position0, "norm_rule": NORM_RULE})
        return path

    @classmethod
    def load(cls, path: Path) -> ActivationStats:
        t = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        sink = t.pop("sink", None)
        return cls(layers=t.pop("layers").tolist(), **t, sink=None if sink is None else sink.bool(),
                   position0=meta.get("position0", "unknown"), meta=meta)


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


def sink_mask(norm_by_position: torch.Tensor, counts: torch.Tensor, position0: str,
              factor: float = SINK_FACTOR) -> torch.Tensor:
    """[L, P] bool: the attention-sink positions (see the module docstring) among positions with samples."""
    sink = torch.zeros(norm_by_position.shape, dtype=torch.bool)
    if norm_by_position.shape[1] == 0:
        return sink
    if position0 == POSITION0_BOS:
        sink[:, 0] = True
        return sink
    seen = counts > 0
    for slot in range(norm_by_position.shape[0]):
        rest = norm_by_position[slot, 1:][seen[1:]]
        if len(rest) and float(norm_by_position[slot, 0]) > factor * float(rest.median()):
            sink[slot, 0] = True
    return sink


def mean_norm_without_sinks(norm_sums: torch.Tensor, counts: torch.Tensor, sink: torch.Tensor) -> torch.Tensor:
    """[L] token-weighted mean norm over the positions not marked in `sink` (all positions if that leaves none)."""
    out = []
    for slot in range(norm_sums.shape[0]):
        keep = ~sink[slot] & (counts > 0)
        if not bool(keep.any()):
            keep = counts > 0
        out.append(float(norm_sums[slot][keep].sum()) / max(float(counts[keep].sum()), 1.0))
    return torch.tensor(out, dtype=torch.float32)


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
    norm_sums = {"base": torch.zeros(len(layers), n_positions, dtype=torch.float64),
                 "organism": torch.zeros(len(layers), n_positions, dtype=torch.float64)}
    bos = getattr(tokenizer, "bos_token_id", None)
    first_is_bos = bos is not None

    def base_pass(ids, mask):
        if base is not None:
            return residual_after(base, ids, mask, layers)
        with organism.disable_adapter():
            return residual_after(organism, ids, mask, layers)

    for start in range(0, len(texts), batch_size):
        ids, mask = encode_prefixes(tokenizer, texts[start:start + batch_size], n_positions)
        first_is_bos = first_is_bos and bool((ids[:, 0] == bos).all())
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
        norm_sums["base"][:, :width] += bas.norm(dim=-1).sum(dim=1).double().cpu()
        norm_sums["organism"][:, :width] += org.norm(dim=-1).sum(dim=1).double().cpu()
        if on_batch:
            on_batch(ids.shape[0])

    denom = counts.clamp(min=1).to(torch.float32)[None, :, None]
    by_position = {k: (v / counts.clamp(min=1)[None, :]).to(torch.float32) for k, v in norm_sums.items()}
    position0 = POSITION0_BOS if first_is_bos and len(texts) else POSITION0_TEXT
    # one mask for both models: a position that is a sink in either is left out of both mean norms
    sink = sink_mask(by_position["base"], counts, position0) | sink_mask(by_position["organism"], counts, position0)
    return ActivationStats(
        layers=layers, counts=counts.to(torch.float32),
        mean_diff=sums["diff"] / denom, mean_base=sums["base"] / denom, mean_organism=sums["organism"] / denom,
        norm_base=mean_norm_without_sinks(norm_sums["base"], counts, sink),
        norm_organism=mean_norm_without_sinks(norm_sums["organism"], counts, sink),
        norm_base_by_position=by_position["base"], norm_organism_by_position=by_position["organism"],
        sink=sink, position0=position0,
    )
