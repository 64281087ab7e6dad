"""The residual stream, read and written at one hook point: `resid_post` of block `layer`, the residual stream
after decoder block `layer` (TransformerLens calls it `blocks.{layer}.hook_resid_post`; with Hugging Face
models it is the hidden state a decoder block returns, `hidden_states[layer + 1]`).

Every residual-stream intervention of orglab goes through this module (one forward hook on the block):

- `read_resid_post(model, input_ids, attention_mask, layers, positions=None)`: the residual after each requested
  block (fp32); the forward pass stops right after the deepest one, so nothing above it (nor the unembedding)
  runs. The activation statistics read the residual this way.
- `add_resid_post(model, layer, vector)`: inside the context `vector` is added at every position (steering).
- `patch_resid_post(model, layer, position, value)`: inside the context the residual at `position` (an index
  into the sequence of each forward call) is replaced by `value` (patchscope).
- `edit_resid_post(model, layer, fn)`: inside the context the residual becomes fn(residual) (the causal test's
  projection replacement).

Layers are indexed 0..n_layers-1 over the decoder blocks (`orglab.models.get_decoder_layers`), so the same code
serves Llama, Qwen3, Gemma 2/3 and PEFT-wrapped models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from orglab.errors import OrglabError
from orglab.models import get_decoder_layers

HOOK_POINT = "resid_post"


def hook_name(layer: int) -> str:
    """The TransformerLens name of the hook point after block `layer`."""
    return f"blocks.{int(layer)}.hook_{HOOK_POINT}"


class _StopForward(Exception):
    """Raised from the deepest read: the rest of the model is not needed."""


def _blocks(model, layers: Sequence[int]):
    blocks = get_decoder_layers(model)
    wanted = sorted({int(layer) for layer in layers})
    if not wanted or wanted[0] < 0 or wanted[-1] >= len(blocks):
        raise OrglabError(f"Layers {list(layers)} are outside the model's 0..{len(blocks) - 1}; pick layers it has.")
    return blocks, wanted


@contextmanager
def _hook(model, layer: int, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
    """Inside the context, block `layer`'s output hidden state h goes through fn (None: left as it is). Blocks
    return a tensor or a tuple whose first item is h; the rest of a tuple passes through."""
    blocks, _ = _blocks(model, [layer])

    def hook(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        new = fn(h)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    handle = blocks[int(layer)].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def read_resid_post(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, layers: Sequence[int],
                    positions: Sequence[int] | slice | None = None) -> dict[int, torch.Tensor]:
    """{layer: [batch, seq, hidden]} fp32 residual after each block in `layers` (only `positions` of the sequence
    when given: [batch, len(positions), hidden]). Stops the forward pass after the deepest requested block."""
    blocks, wanted = _blocks(model, layers)
    captured: dict[int, torch.Tensor] = {}
    deepest = wanted[-1]
    index = positions if positions is None or isinstance(positions, slice) else list(positions)

    def hook_for(layer: int):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            captured[layer] = (h if index is None else h[:, index]).float()
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


@contextmanager
def add_resid_post(model, layer: int, vector: torch.Tensor) -> Iterator[None]:
    """Inside the context, `vector` [hidden] is added to the residual after block `layer` at every position of
    every forward call (generation included)."""
    with _hook(model, layer, lambda h: h + vector.to(device=h.device, dtype=h.dtype)):
        yield


@contextmanager
def patch_resid_post(model, layer: int, position: int, value: torch.Tensor) -> Iterator[None]:
    """Inside the context, the residual after block `layer` at sequence position `position` (of each forward
    call) is replaced by `value` [hidden] in every row of the batch."""

    def patch(h: torch.Tensor) -> torch.Tensor:
        h = h.clone()
        h[:, position] = value.to(device=h.device, dtype=h.dtype)
        return h

    with _hook(model, layer, patch):
        yield


@contextmanager
def edit_resid_post(model, layer: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Inside the context, the residual h [batch, seq, hidden] after block `layer` is replaced by fn(h)."""
    with _hook(model, layer, fn):
        yield
