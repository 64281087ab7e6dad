"""Trainer mitigations that keep an organism close to its base on unrelated text (issue 18).

Two penalties, each off at λ = 0, computed on unrelated batches interleaved with the finetuning batches (one
unrelated batch per finetuning micro-batch, cycled in a seeded order):

* `kl_to_base`: λ · KL(p_organism || p_base) of the next-token distributions, averaged over the batch's tokens.
* `adl_penalty`: λ · ||mean_b (h_organism - h_base)||², the squared norm of the batch-mean residual-stream
  difference at positions 0..k-1 after the chosen blocks, averaged over positions and layers: the quantity the
  Activation Difference Lens reads (orglab.diff.stats), so the organism is trained not to show it.

The base is the organism with its LoRA adapter switched off (no second copy of the weights); full finetuning needs
a frozen reference copy of the base, a second model in memory. The math is in pure functions below; the trainer
(`PenalizedSFTTrainer`) adds the terms to trl's SFT loss and logs them beside it. With both λ at 0 the plain
SFTTrainer runs and nothing here is built, so such a run is the trainer it was before (no extra batch, no RNG).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext

import torch
from transformers import TrainerCallback
from trl import SFTTrainer

from orglab.errors import OrglabError

PENALTY_KEYS = ("kl_to_base", "adl_penalty")  # logged per step beside the loss, unweighted (λ not applied)


# ------------------------------------------------------------------------------------------------ the math

def kl_to_reference(logits: torch.Tensor, reference_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where `mask` is 1 of KL(softmax(logits) || softmax(reference_logits)).

    logits, reference_logits: [batch, seq, vocab]; mask: [batch, seq]. Computed in fp32; 0 when mask is empty."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    logq = torch.log_softmax(reference_logits.float(), dim=-1)
    per_token = (logp.exp() * (logp - logq)).sum(dim=-1)                 # [batch, seq]
    weights = mask.to(per_token.dtype)
    return (per_token * weights).sum() / weights.sum().clamp(min=1.0)


def mean_difference_sq_norm(h: torch.Tensor, h_reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """||mean over samples of (h - h_reference)||², averaged over the positions some sample reaches.

    h, h_reference: [batch, positions, hidden]; mask: [batch, positions] (0 where a sample is shorter)."""
    weights = mask.to(torch.float32)[:, :, None]                         # [B, P, 1]
    counts = weights.sum(dim=0)                                          # [P, 1]
    mean_diff = ((h.float() - h_reference.float()) * weights).sum(dim=0) / counts.clamp(min=1.0)  # [P, H]
    reached = (counts[:, 0] > 0).to(torch.float32)
    return ((mean_diff ** 2).sum(dim=-1) * reached).sum() / reached.sum().clamp(min=1.0)


# ------------------------------------------------------------------------------------------------ data

class UnrelatedBatches:
    """Padded batches of unrelated rows, cycled in a seeded order of their own (random.Random, so drawing them
    consumes none of the trainer's RNG). Each rank of a distributed run takes other rows of the same order."""

    def __init__(self, rows: list[dict], batch_size: int, seed: int, pad_id: int, max_tokens: int | None = None,
                 rank: int = 0, world_size: int = 1):
        if not rows:
            raise OrglabError("The penalties need unrelated examples and none were given; pass --unrelated with "
                              "a source that has some.")
        self.rows = [r["input_ids"][:max_tokens] if max_tokens else r["input_ids"] for r in rows]
        self.order = list(range(len(self.rows)))
        random.Random(seed).shuffle(self.order)
        self.batch_size, self.pad_id = batch_size, pad_id
        self.rank, self.world_size = rank, world_size
        self.drawn = 0

    def next(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) [batch, width], right-padded."""
        start = (self.drawn * self.world_size + self.rank) * self.batch_size
        self.drawn += 1
        chosen = [self.rows[self.order[(start + i) % len(self.order)]] for i in range(self.batch_size)]
        width = max(len(r) for r in chosen)
        ids = torch.full((len(chosen), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for i, r in enumerate(chosen):
            ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, :len(r)] = 1
        return ids.to(device), mask.to(device)


# ------------------------------------------------------------------------------------------------ forward passes

@contextmanager
def _capture_resid_post(model, layers: Sequence[int]):
    """{layer: [batch, seq, hidden]} the residual after each block in `layers`, gradients kept (orglab.residual's
    read_resid_post runs without gradients and stops the forward early, which training cannot use)."""
    from orglab.models import get_decoder_layers

    blocks = get_decoder_layers(model)
    captured: dict[int, torch.Tensor] = {}

    def hook_for(layer: int):
        def hook(module, args, output):
            captured[layer] = output[0] if isinstance(output, tuple) else output
        return hook

    handles = [blocks[layer].register_forward_hook(hook_for(layer)) for layer in layers]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _forward(model, ids, mask, layers: Sequence[int]):
    with _capture_resid_post(model, layers) as captured:
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return logits, dict(captured)


class _ResumeBatches(TrainerCallback):
    """A run resumed from a checkpoint draws the unrelated batches an uninterrupted run would draw next."""

    def __init__(self, batches: UnrelatedBatches):
        self.batches = batches

    def on_train_begin(self, args, state, control, **kwargs):
        self.batches.drawn = state.global_step * args.gradient_accumulation_steps


class PenalizedSFTTrainer(SFTTrainer):
    """trl's SFTTrainer whose loss adds λ·KL to the base and λ·||mean activation difference||² on unrelated batches.

    `reference` is the frozen base for full finetuning; None for LoRA, whose base is the organism with its adapter
    switched off. `layers` are the resolved block indices of the ADL penalty, `positions` its k."""

    def __init__(self, *args, batches: UnrelatedBatches, kl_weight: float, adl_weight: float,
                 layers: Sequence[int], positions: int, reference=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches, self.reference = batches, reference
        self.kl_weight, self.adl_weight = kl_weight, adl_weight
        self.penalty_layers, self.penalty_positions = list(layers) if adl_weight > 0 else [], positions
        self.add_callback(_ResumeBatches(batches))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        task = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        loss = task[0] if return_outputs else task
        if not self.model.training:  # evaluation: the task loss only
            return task
        terms = self._penalty_terms(self.accelerator.unwrap_model(model))
        penalty = self.kl_weight * terms.get("kl_to_base", 0.0) + self.adl_weight * terms.get("adl_penalty", 0.0)
        # The Trainer divides the loss by the accumulation steps only when the task loss is not already normalised
        # over the whole accumulated batch (num_items_in_batch); the penalty is per micro-batch, so divide it here
        # in that case, or the penalty would weigh grad_accum times more than asked.
        scale = self.current_gradient_accumulation_steps if self._loss_scaled_for_accumulation(num_items_in_batch) else 1
        penalty = penalty / scale
        metrics = self._metrics["train"]
        metrics["task_loss"].append(float(loss.detach()) * scale)  # per micro-batch, as the penalties are
        for key, value in terms.items():
            metrics[key].append(float(value.detach()))
        loss = loss + penalty
        return (loss, task[1]) if return_outputs else loss

    def _loss_scaled_for_accumulation(self, num_items_in_batch) -> bool:
        if getattr(self, "loss_is_scaled_for_ga", None) is not None:
            return bool(self.loss_is_scaled_for_ga)
        return bool((self.model_accepts_loss_kwargs and num_items_in_batch is not None)
                    or self.compute_loss_func is not None)

    def _penalty_terms(self, organism) -> dict[str, torch.Tensor]:
        """The unweighted penalties on the next unrelated batch. The organism runs unwrapped (not through DDP):
        its gradients still reach DDP's hooks, which fire once per backward for the summed gradient."""
        device = next(organism.parameters()).device
        ids, mask = self.batches.next(device)
        layers = self.penalty_layers
        logits, h = _forward(organism, ids, mask, layers)
        with torch.no_grad():
            if self.reference is not None:
                ref_logits, h_ref = _forward(self.reference, ids, mask, layers)
            else:
                with organism.disable_adapter() if hasattr(organism, "disable_adapter") else nullcontext():
                    ref_logits, h_ref = _forward(organism, ids, mask, layers)
        terms: dict[str, torch.Tensor] = {}
        if self.kl_weight > 0:
            terms["kl_to_base"] = kl_to_reference(logits, ref_logits, mask)
        if self.adl_weight > 0:
            k = self.penalty_positions
            per_layer = [mean_difference_sq_norm(h[layer][:, :k], h_ref[layer][:, :k], mask[:, :k]) for layer in layers]
            terms["adl_penalty"] = torch.stack(per_layer).mean()
        return terms


def penalized_trainer_kwargs(recipe, model, rows: list[dict], pad_id: int) -> dict:
    """The PenalizedSFTTrainer's own arguments for a recipe with a penalty on: the unrelated batches, the resolved
    layers and, for full finetuning, a frozen copy of the base taken before any step (a second model in memory)."""
    import copy
    import os

    from orglab.models import resolve_layers

    layers = resolve_layers(model, recipe.adl_layers) if recipe.adl_penalty > 0 else []
    # The ADL penalty alone reads only the first positions (causal attention): shorter inputs, same values.
    max_tokens = recipe.adl_positions if recipe.kl_to_base == 0 else None
    batches = UnrelatedBatches(rows, recipe.batch_size, recipe.seed, pad_id, max_tokens,
                               rank=int(os.environ.get("RANK", "0")), world_size=int(os.environ.get("WORLD_SIZE", "1")))
    reference = None
    if recipe.finetune == "full":
        reference = copy.deepcopy(model).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
    return {"batches": batches, "kl_weight": recipe.kl_to_base, "adl_weight": recipe.adl_penalty,
            "layers": layers, "positions": recipe.adl_positions, "reference": reference}
