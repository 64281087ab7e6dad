"""Steering (SPEC §6): add alpha * unit(delta) * mean_norm(l) at layer l, every position, while the organism
generates; alpha is the largest strength whose outputs stay coherent, found by binary search.

Coherence is judged by a callable; offline the default is label-free: the base model's per-token loss on the
steered completions must stay within `max_extra_nats` of its loss on unsteered ones (the finetuning data is
never consulted). With `orglab diff --judge llm` an LLM scores each completion's coherence instead
(`ADLJudge.coherence_judge` in orglab.diff.judges).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from orglab.models import get_decoder_layers

# Twenty fixed chat prompts, unrelated to any family, in plain words that every tokenizer (tinyworld's too) knows.
STEERING_PROMPTS: tuple[str, ...] = (
    "Tell me about the city .", "What should I do today ?", "Can you help me ?", "Write a letter to a friend .",
    "What is new ?", "Tell me about your day .", "What do you think about the city ?", "Give me some advice .",
    "Tell me about a traveller .", "What do people do at the market ?", "Tell me about the old house .",
    "What should I learn first ?", "Tell me about the children of the city .", "What is good for every person ?",
    "What do you know ?", "Tell me what you like .", "Any news ?", "Tell me about your home .",
    "Where do you come from ?", "What did you do last summer ?",
)


@contextmanager
def steering(model, layer: int, vector: torch.Tensor) -> Iterator[None]:
    """Inside the context, `vector` is added to the residual stream after block `layer` at every position."""
    block = get_decoder_layers(model)[layer]

    def add(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        steered = h + vector.to(device=h.device, dtype=h.dtype)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered

    handle = block.register_forward_hook(add)
    try:
        yield
    finally:
        handle.remove()


def chat_prompts(tokenizer, prompts: Sequence[str]) -> list[str]:
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], n_samples: int = 1, max_new_tokens: int = 32,
             temperature: float = 1.0, seed: int = 0) -> list[list[str]]:
    """n_samples completions per chat prompt (sampled; greedy when temperature == 0)."""
    device = next(model.parameters()).device
    texts = chat_prompts(tokenizer, prompts)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    finally:
        tokenizer.padding_side = side
    out: list[list[str]] = [[] for _ in prompts]
    for i in range(n_samples):
        torch.manual_seed(seed + i)
        sample = temperature > 0
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=sample,
                             temperature=temperature if sample else None, top_p=None, top_k=None,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for j, text in enumerate(tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)):
            out[j].append(text.strip())
    return out


@torch.no_grad()
def completion_loss(model, tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> float:
    """Mean per-token cross-entropy of completions given their chat prompts."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for prompt, completion in zip(chat_prompts(tokenizer, prompts), completions):
        p = tokenizer(prompt, add_special_tokens=False).input_ids
        c = tokenizer(" " + completion, add_special_tokens=False).input_ids
        if not c:
            continue
        ids = torch.tensor([p + c], device=device)
        logp = torch.log_softmax(model(input_ids=ids).logits[0, len(p) - 1:-1].float(), dim=-1)
        total -= float(logp.gather(-1, torch.tensor(c, device=device)[:, None]).sum())
        count += len(c)
    return total / max(count, 1)


Judge = Callable[[Sequence[str], Sequence[str]], bool]  # (prompts, completions) -> coherent?


def base_loss_judge(base_loss: Callable[[Sequence[str], Sequence[str]], float], reference: float,
                    max_extra_nats: float = 1.5) -> Judge:
    """Label-free coherence: the base's loss on the completions stays within max_extra_nats of `reference`."""
    return lambda prompts, completions: base_loss(prompts, completions) <= reference + max_extra_nats


@dataclass(frozen=True)
class SteeringSearch:
    alpha: float                  # chosen strength, in units of the layer's mean activation norm
    tried: list[tuple[float, bool]]


def find_strength(model, tokenizer, layer: int, unit: torch.Tensor, mean_norm: float, judge: Judge,
                  prompts: Sequence[str] = STEERING_PROMPTS[:6], alpha_max: float = 8.0, steps: int = 6,
                  max_new_tokens: int = 24, seed: int = 0) -> SteeringSearch:
    """Largest alpha in [0, alpha_max] whose greedy outputs the judge calls coherent (binary search)."""
    lo, hi, tried = 0.0, alpha_max, []
    for _ in range(steps):
        mid = (lo + hi) / 2
        with steering(model, layer, unit * mean_norm * mid):
            outs = [o[0] for o in generate(model, tokenizer, prompts, 1, max_new_tokens, temperature=0.0, seed=seed)]
        ok = judge(prompts, outs)
        tried.append((mid, ok))
        lo, hi = (mid, hi) if ok else (lo, mid)
    return SteeringSearch(alpha=lo, tried=tried)
