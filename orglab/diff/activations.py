"""Reading the residual stream: forward hooks on decoder blocks, addressed by layer index.

`residual_after(model, input_ids, mask, layers)` returns the residual stream after each requested block and
stops the forward pass right after the deepest one: nothing above it (nor the unembedding) runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from orglab.errors import OrglabError
from orglab.models import get_decoder_layers, n_layers


class _StopForward(Exception):
    """Raised from the deepest hook: the rest of the model is not needed."""


def layer_index(fraction: float, depth: int) -> int:
    """Layer as a fraction of depth (SPEC §6: int(fraction * (n_layers - 1)))."""
    if not 0.0 <= float(fraction) <= 1.0:
        raise OrglabError(f"Layer fraction {fraction} is outside [0, 1]; use e.g. 0.5 for the middle layer.")
    return int(float(fraction) * (depth - 1))


def resolve_layers(model, fractions: Sequence[float]) -> list[int]:
    depth = n_layers(model)
    return sorted({layer_index(f, depth) for f in fractions})


def _block_output(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def residual_after(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """{layer: [batch, seq, hidden]} residual stream after each block in `layers` (fp32)."""
    blocks = get_decoder_layers(model)
    wanted = sorted(set(int(layer) for layer in layers))
    if not wanted or wanted[0] < 0 or wanted[-1] >= len(blocks):
        raise OrglabError(f"Layers {list(layers)} are outside the model's 0..{len(blocks) - 1}; pick layers it has.")
    captured: dict[int, torch.Tensor] = {}
    deepest = wanted[-1]

    def hook_for(layer: int):
        def hook(module, args, output):
            captured[layer] = _block_output(output).float()
            if layer == deepest:
                raise _StopForward

        return hook

    handles = [blocks[layer].register_forward_hook(hook_for(layer)) for layer in wanted]
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return captured
