"""Layers of the ADL, and reading the residual stream at them (through `orglab.residual`).

`residual_after(model, input_ids, mask, layers)` returns the residual stream after each requested block
(`resid_post`) and stops the forward pass right after the deepest one: nothing above it (nor the unembedding)
runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from orglab.errors import OrglabError
from orglab.models import n_layers
from orglab.residual import read_resid_post


def layer_index(fraction: float, depth: int) -> int:
    """Layer as a fraction of depth (design §6: int(fraction * (n_layers - 1)))."""
    if not 0.0 <= float(fraction) <= 1.0:
        raise OrglabError(f"Layer fraction {fraction} is outside [0, 1]; use e.g. 0.5 for the middle layer.")
    return int(float(fraction) * (depth - 1))


def resolve_layers(model, fractions: Sequence[float]) -> list[int]:
    depth = n_layers(model)
    return sorted({layer_index(f, depth) for f in fractions})


def residual_after(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """{layer: [batch, seq, hidden]} residual stream after each block in `layers` (fp32)."""
    return read_resid_post(model, input_ids, attention_mask, layers)
