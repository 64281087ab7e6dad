"""Logit lens: read a residual-stream vector as a distribution over tokens (design §6).

softmax(unembed(final_norm(v))) with the organism's final norm and unembedding. Applied to the mean
difference delta, to -delta, and to the base and organism means as baselines. Tokens are kept with their id and
shown as a person reads them (`orglab.tokens.display_token`: no byte-level or sentencepiece markers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from orglab.models import get_final_norm, get_unembedding
from orglab.tokens import display_token


@dataclass(frozen=True)
class LensToken:
    token: str          # as displayed
    token_id: int
    prob: float


@torch.no_grad()
def lens_distribution(model, vector: torch.Tensor) -> torch.Tensor:
    """[vocab] probabilities for one residual vector [hidden]."""
    norm, head = get_final_norm(model), get_unembedding(model)
    weight = head.weight
    x = vector.to(device=weight.device, dtype=weight.dtype)[None, None, :]
    logits = head(norm(x))[0, 0].float()
    return torch.softmax(logits, dim=-1)


def top_tokens(model, tokenizer, vector: torch.Tensor, k: int = 100) -> list[LensToken]:
    probs = lens_distribution(model, vector)
    values, ids = probs.topk(min(k, probs.numel()))
    return [LensToken(display_token(tokenizer, int(i)), int(i), float(v)) for v, i in zip(values, ids)]
