"""Organism and base next-token log-probabilities at the first positions of unrelated texts, batch by batch: the
one forward pass the logit-level detectors (orglab.diff.logitdiff, orglab.diff.kl) read.

Texts are cut to their first `n_positions` tokens exactly as the activation statistics cut them
(`orglab.diff.stats.encode_prefixes`, BOS included where the tokenizer adds one), so position p here is position
p there: the distribution at p is the model's prediction of token p + 1. A LoRA organism is compared with its own
base by switching the adapter off (one copy of the base weights), as the statistics do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from orglab.diff.stats import encode_prefixes

# Logits are [rows, positions, vocab] fp32 tensors, three at a time (organism, base, their difference): rows per
# forward pass are capped so one such tensor stays under this many elements (64 MB), whatever the vocabulary
# (tinyworld's few thousand tokens, Gemma's 262,144).
LOGIT_ELEMENTS_PER_PASS = 2 ** 24


def rows_per_pass(batch_size: int, n_positions: int, vocab_size: int) -> int:
    """How many texts one forward pass takes: `batch_size`, fewer where the logits would pass the cap."""
    return max(1, min(batch_size, LOGIT_ELEMENTS_PER_PASS // max(1, n_positions * vocab_size)))


@torch.no_grad()
def paired_logprobs(organism, tokenizer, texts: Sequence[str], n_positions: int, base=None, batch_size: int = 64
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yields (organism log-probs [B, T, V], base log-probs [B, T, V], mask [B, T] bool) per batch, fp32 on the CPU,
    T <= n_positions. `base=None` means `organism` is a PeftModel whose adapter is switched off for the base."""
    device = next(organism.parameters()).device
    vocab = organism.get_output_embeddings().weight.shape[0]
    step = rows_per_pass(batch_size, n_positions, vocab)

    def logprobs(model, ids, mask):
        return torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1).cpu()

    was_training = organism.training
    organism.eval()
    try:
        for start in range(0, len(texts), step):
            ids, mask = encode_prefixes(tokenizer, texts[start:start + step], n_positions)
            ids, mask = ids.to(device), mask.to(device)
            lp_org = logprobs(organism, ids, mask)
            if base is not None:
                lp_base = logprobs(base, ids, mask)
            else:
                with organism.disable_adapter():
                    lp_base = logprobs(organism, ids, mask)
            yield lp_org, lp_base, mask.bool().cpu()
    finally:
        organism.train(was_training)
