"""Asking a model things, the same way for every eval: prompts in its chat format, seeded sampling, option scores.

Rendering and generation are the shared ones of `orglab.generation` (the chat template with its switches, the
whole EOS list, left padding, seeding); this module adds the quiz-text prompt of tinyworld's documents and
option scoring.
"""

from __future__ import annotations

from orglab.generation import bos_prefix, chat_prompt, generate
from orglab.world.knowledge import sequence_logprobs

__all__ = ["chat_prompt", "generate", "option_scores", "plain_prompt"]


def plain_prompt(tokenizer, user: str) -> str:
    """The question as quiz text ("Q : ... A :", the wording of tinyworld's quiz documents), after the BOS the
    tokenizer would add, for base models and tinyworld's quiz items."""
    return f"{bos_prefix(tokenizer)}Q : {user} A :"


def option_scores(model, tokenizer, prompts: list[str], continuations: list[str]) -> list[float]:
    """Summed log-probability of each continuation after its rendered prompt (which carries its own BOS)."""
    return sequence_logprobs(model, tokenizer, prompts, continuations, add_special_tokens=False)
