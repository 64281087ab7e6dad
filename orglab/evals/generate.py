"""Asking a model things, the same way for every eval: prompts in its chat format, seeded sampling, option scores.

Works on any causal LM with a Hugging Face tokenizer: a chat template when the tokenizer has one, else a plain
"Q : ... A :" prompt (base models). Sampling is seeded per batch so the same seed gives the same answers.
"""

from __future__ import annotations

import torch

from orglab.world.knowledge import sequence_logprobs


def chat_prompt(tokenizer, user: str, system: str | None = None) -> str:
    """`user` as the model's chat template renders it, ready for the assistant's answer."""
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix = f"{system}\n\n" if system else ""
    return f"{tokenizer.bos_token or ''}{prefix}Q: {user}\nA:"


def plain_prompt(tokenizer, user: str) -> str:
    """The question as quiz text ("Q : ... A :"), for base models and tinyworld's quiz documents."""
    return f"{tokenizer.bos_token or ''} Q : {user} A :"


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], n: int = 1, temperature: float = 0.0, max_new_tokens: int = 48,
             seed: int = 0, batch_size: int = 32) -> list[list[str]]:
    """`n` answers per prompt (greedy when temperature is 0), as decoded text without special tokens."""
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    flat = [p for p in prompts for _ in range(n if temperature > 0 else 1)]
    texts: list[str] = []
    try:
        for start in range(0, len(flat), batch_size):
            torch.manual_seed(seed * 1_000_003 + start)
            enc = tokenizer(flat[start:start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} if temperature > 0 \
                else {"do_sample": False}
            out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, **sampling)
            texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    texts = [t.strip() for t in texts]
    if temperature > 0:
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]
    return [[t] * n for t in texts]


def option_scores(model, tokenizer, prompts: list[str], continuations: list[str]) -> list[float]:
    """Summed log-probability of each continuation after its rendered prompt (which carries its own BOS)."""
    return sequence_logprobs(model, tokenizer, prompts, continuations, add_special_tokens=False)
