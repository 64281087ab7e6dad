"""Reading the residual stream at the ADL's layers (through `orglab.residual`; layers are addressed by
`orglab.models.layer_index`).

`residual_after(model, input_ids, mask, layers)` returns the residual stream after each requested block
(`resid_post`) and stops the forward pass right after the deepest one: nothing above it (nor the unembedding)
runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from orglab.residual import read_resid_post


def residual_after(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """{layer: [batch, seq, hidden]} residual stream after each block in `layers` (fp32)."""
    return read_resid_post(model, input_ids, attention_mask, layers)
