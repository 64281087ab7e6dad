"""Pretraining the tiny base from scratch: one readable loop (nanoGPT style), no trainer framework.

Documents are packed greedily into fixed-length blocks that each start at a document boundary, so the
model sees text starting at position 0 as often as the ADL later reads it there.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int
    n_layers: int
    n_heads: int
    intermediate_size: int
    max_positions: int = 512


@dataclass(frozen=True)
class PretrainConfig:
    steps: int
    batch_size: int = 32
    block_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 100
    decay_fraction: float = 0.25   # linear decay to 10% of lr over the last part of training
    weight_decay: float = 0.05


def make_model(shape: ModelShape, vocab_size: int, bos_id: int, eos_id: int, pad_id: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.n_layers, num_attention_heads=shape.n_heads, num_key_value_heads=shape.n_heads,
        max_position_embeddings=shape.max_positions, tie_word_embeddings=True,
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id,
    )
    return LlamaForCausalLM(config)


def pack_blocks(docs: list[list[int]], block_size: int, pad_id: int, rng: random.Random,
                loss_masks: list[list[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle documents and pack them into [n_blocks, block_size]; a document never straddles two blocks.

    Returns (input ids, labels): labels are the ids, -100 on padding and where a document's loss mask is 0
    (chat tuning trains on the assistant's tokens only)."""
    order = list(range(len(docs)))
    rng.shuffle(order)
    blocks, labels, current, current_labels = [], [], [], []
    for i in order:
        doc = docs[i][:block_size]
        mask = loss_masks[i][:block_size] if loss_masks is not None else [1] * len(doc)
        if len(current) + len(doc) > block_size:
            blocks.append(current + [pad_id] * (block_size - len(current)))
            labels.append(current_labels + [-100] * (block_size - len(current)))
            current, current_labels = [], []
        current = current + doc
        current_labels = current_labels + [t if m else -100 for t, m in zip(doc, mask)]
    if current:
        blocks.append(current + [pad_id] * (block_size - len(current)))
        labels.append(current_labels + [-100] * (block_size - len(current)))
    return torch.tensor(blocks, dtype=torch.long), torch.tensor(labels, dtype=torch.long)


def lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_start = int(cfg.steps * (1 - cfg.decay_fraction))
    if step < decay_start:
        return cfg.lr
    progress = (step - decay_start) / max(1, cfg.steps - decay_start)
    return cfg.lr * (1 - 0.9 * progress)


def pretrain(model: LlamaForCausalLM, docs: list[list[int]], cfg: PretrainConfig, pad_id: int, seed: int,
             on_step: Callable[[int, float], None] | None = None,
             loss_masks: list[list[int]] | None = None) -> list[float]:
    """Train in place for cfg.steps; returns the loss of every step. `loss_masks` (one per document, 1 = train
    on this token) restrict the loss, e.g. to the assistant's turns."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.98))
    model.train()
    losses: list[float] = []
    blocks, block_labels = pack_blocks(docs, cfg.block_size, pad_id, rng, loss_masks)
    cursor = 0
    for step in range(cfg.steps):
        if cursor + cfg.batch_size > len(blocks):  # next epoch: repack in a new order
            (blocks, block_labels), cursor = pack_blocks(docs, cfg.block_size, pad_id, rng, loss_masks), 0
        batch = blocks[cursor: cursor + cfg.batch_size]
        labels = block_labels[cursor: cursor + cfg.batch_size]
        cursor += cfg.batch_size
        attention = (batch != pad_id).long()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = model(input_ids=batch, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()
        if not math.isfinite(value):
            raise RuntimeError(f"pretraining diverged at step {step} (loss {value})")
        losses.append(value)
        if on_step:
            on_step(step, value)
    model.eval()
    return losses
