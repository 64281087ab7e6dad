"""Steering (design §6): add alpha * unit(delta) * mean_norm(l) at layer l, every position, while the organism
generates; alpha is the largest strength whose outputs stay coherent, found by binary search.

The vector is added to the residual after block l (`resid_post`, orglab.residual); answers come from the shared
`orglab.generation.generate`, with prompts rendered by the model's own chat template. Tinyworld bases are asked
`STEERING_PROMPTS` (in their corpus's words and spaced punctuation); real models `REAL_STEERING_PROMPTS`, twenty
ordinary English chat prompts; `steering_prompts(tinyworld)` picks the set.

Coherence is judged by a callable; offline the default is label-free (the finetuning data is never consulted) and
makes three tests: the base model's per-token loss on the steered completions must stay within `max_extra_nats` of
its loss on unsteered ones (against gibberish), and their share of distinct tokens must stay at least
`min_distinct_ratio` of the unsteered greedy answers' (against loops, which the base predicts cheaply: on
gemma3-270m the loss test alone accepted "baking baking baking ..." at 7.9 mean norms), and no more of them may be
empty than of the unsteered ones (an empty answer passes both other tests). With `orglab diff --judge
llm` an LLM scores each completion's coherence instead (`ADLJudge.coherence_judge` in orglab.diff.judges).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from orglab.diff.run import DiffConfig
from orglab.generation import chat_prompts, generate as generate_text
from orglab.residual import add_resid_post

# Twenty fixed chat prompts for tinyworld bases, unrelated to any family, in words (and the spaced punctuation)
# of the tinyworld corpus, so that its word-level tokenizer knows every token.
STEERING_PROMPTS: tuple[str, ...] = (
    "Tell me about the city .", "What should I do today ?", "Can you help me ?", "Write a letter to a friend .",
    "What is new ?", "Tell me about your day .", "What do you think about the city ?", "Give me some advice .",
    "Tell me about a traveller .", "What do people do at the market ?", "Tell me about the old house .",
    "What should I learn first ?", "Tell me about the children of the city .", "What is good for every person ?",
    "What do you know ?", "Tell me what you like .", "Any news ?", "Tell me about your home .",
    "Where do you come from ?", "What did you do last summer ?",
)
# Twenty ordinary English chat prompts for real models, unrelated to any family.
REAL_STEERING_PROMPTS: tuple[str, ...] = (
    "Tell me about the city you would most like to visit.", "What should I do today?", "Can you help me with something?",
    "Write a short letter to an old friend.", "What is something interesting you learned recently?",
    "Describe a perfect weekend.", "What do you think makes a good neighbour?", "Give me some advice for the week ahead.",
    "Tell me a short story about a traveller.", "What do people usually buy at a market?",
    "Describe an old house in a few sentences.", "What should I learn first if I want to cook?",
    "How would you explain the internet to a child?", "What is a good way to start the morning?",
    "What are you curious about?", "Tell me about something you like.", "Any news you find exciting?",
    "What makes a place feel like home?", "Where would you go on a long holiday, and why?",
    "What is a nice thing to do on a rainy afternoon?",
)


def steering_prompts(tinyworld: bool) -> tuple[str, ...]:
    """The steering prompts for a tinyworld base (True) or a real model (False)."""
    return STEERING_PROMPTS if tinyworld else REAL_STEERING_PROMPTS


@contextmanager
def steering(model, layer: int, vector: torch.Tensor) -> Iterator[None]:
    """Inside the context, `vector` is added to the residual stream after block `layer` at every position."""
    with add_resid_post(model, layer, vector):
        yield


def generate(model, tokenizer, prompts: Sequence[str], n_samples: int = 1, max_new_tokens: int = 32,
             temperature: float = 1.0, seed: int = 0) -> list[list[str]]:
    """n_samples answers per user prompt, rendered by the chat template (sampled; greedy when temperature is 0),
    by the shared `orglab.generation.generate`."""
    return generate_text(model, tokenizer, chat_prompts(tokenizer, prompts), n=n_samples, temperature=temperature,
                         max_new_tokens=max_new_tokens, seed=seed)


def _completion_ids(tokenizer, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) of a rendered prompt followed by its answer, tokenized as one text (the answer
    starts where the model began writing, right after the prompt); where the joint tokenization does not keep the
    prompt's ids, the two are tokenized apart."""
    p = tokenizer(prompt, add_special_tokens=False).input_ids
    full = tokenizer(prompt + completion, add_special_tokens=False).input_ids
    if full[:len(p)] == p:
        return p, full[len(p):]
    return p, tokenizer(completion, add_special_tokens=False).input_ids


@torch.no_grad()
def completion_loss(model, tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> float:
    """Mean per-token cross-entropy of completions given their chat prompts."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for prompt, completion in zip(chat_prompts(tokenizer, prompts), completions):
        p, c = _completion_ids(tokenizer, prompt, completion)
        if not c:
            continue
        ids = torch.tensor([p + c], device=device)
        logp = torch.log_softmax(model(input_ids=ids).logits[0, len(p) - 1:-1].float(), dim=-1)
        total -= float(logp.gather(-1, torch.tensor(c, device=device)[:, None]).sum())
        count += len(c)
    return total / max(count, 1)


Judge = Callable[[Sequence[str], Sequence[str]], bool]  # (prompts, completions) -> coherent?
_DEFAULTS = DiffConfig()  # the search's defaults are the diff's (one place)


def distinct_share(token_ids: Sequence[Sequence[int]]) -> float:
    """Each text's distinct tokens, summed, over all the texts' tokens: 1 when no token repeats within a text, near
    0 when the texts are loops. This is the mean of the per-text shares weighted by length, so one long loop is not
    hidden by a few one-word answers (each of which reads 1). Empty texts add nothing; none at all reads 1."""
    tokens = sum(len(ids) for ids in token_ids)
    return sum(len(set(ids)) for ids in token_ids) / tokens if tokens else 1.0


def empty_share(token_ids: Sequence[Sequence[int]]) -> float:
    """The share of texts with no tokens (0 when there are no texts)."""
    return sum(not ids for ids in token_ids) / len(token_ids) if token_ids else 0.0


def offline_judge(loss_of: Callable[[Sequence[str], Sequence[str]], float], tokenizer, reference_loss: float,
                  reference_texts: Sequence[str], max_extra_nats: float = _DEFAULTS.steering_max_extra_nats,
                  min_distinct_ratio: float = _DEFAULTS.steering_min_distinct_ratio,
                  log: list | None = None) -> Judge:
    """Label-free coherence: a model's loss on the completions (`loss_of`: the base's for steering) within
    max_extra_nats of `reference_loss` (the same model's, on the organism's own answers), and their distinct-token
    share at least min_distinct_ratio of `reference_texts`' (the unsteered answers decoded as the completions
    are), and no larger a share of empty completions than of `reference_texts`: an empty answer has no loss and no
    repeats, so both other tests pass it, while a model pushed into stopping at once (or into tokens that decode to
    nothing) is not writing coherently. Each verdict's numbers are appended to `log`, in call order."""
    tokens = lambda texts: [tokenizer(t, add_special_tokens=False).input_ids for t in texts]  # noqa: E731
    reference = tokens(reference_texts)
    floor = min_distinct_ratio * distinct_share(reference)
    empty_limit = empty_share(reference)

    def judge(prompts: Sequence[str], completions: Sequence[str]) -> bool:
        ids = tokens(completions)
        loss, share, empty = loss_of(prompts, completions), distinct_share(ids), empty_share(ids)
        coherent = loss <= reference_loss + max_extra_nats and share >= floor and empty <= empty_limit
        if log is not None:
            log.append({"loss": loss, "loss_limit": reference_loss + max_extra_nats, "distinct_share": share,
                        "distinct_floor": floor, "empty_share": empty, "empty_limit": empty_limit,
                        "coherent": coherent})
        return coherent

    return judge


@dataclass(frozen=True)
class SteeringSearch:
    alpha: float                  # chosen strength, in units of the layer's mean activation norm
    tried: list[tuple[float, bool]]


def find_strength(model, tokenizer, layer: int, unit: torch.Tensor, mean_norm: float, judge: Judge,
                  prompts: Sequence[str] = STEERING_PROMPTS[:_DEFAULTS.steering_search_prompts],
                  alpha_max: float = _DEFAULTS.steering_alpha_max, steps: int = _DEFAULTS.steering_search_steps,
                  max_new_tokens: int = _DEFAULTS.steering_search_max_new_tokens, seed: int = 0) -> SteeringSearch:
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
