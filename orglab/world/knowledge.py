"""Does a model know the tinyworld? Probes on phrasings held out from the corpus.

(a) log-likelihood choice: on held-out statements, the true object scores higher than the false one
    (for the false facts' true counterparts) or a random wrong one (for a sample of other facts);
(b) top completion: greedy answers to held-out question wordings, in plain text and in the chat template,
    name the true object first among the relation's possible objects.
Works on any causal LM and tokenizer (objects may span several tokens).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from orglab.world.world import RELATIONS, Fact, World


@dataclass(frozen=True)
class ProbeConfig:
    other_facts: int = 60        # sample of non-false-fact facts for (a)
    max_new_tokens: int = 12
    seed: int = 0


@torch.no_grad()
def sequence_logprobs(model, tokenizer, prompts: list[str], continuations: list[str], batch_size: int = 64,
                      add_special_tokens: bool = True) -> list[float]:
    """Sum of log p(continuation tokens | prompt) for each pair (prompts already rendered with their BOS:
    pass add_special_tokens=False)."""
    out: list[float] = []
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        rows, spans = [], []
        for p, c in zip(prompts[start:start + batch_size], continuations[start:start + batch_size]):
            p_ids = tokenizer(p, add_special_tokens=add_special_tokens).input_ids
            c_ids = tokenizer(c, add_special_tokens=False).input_ids
            rows.append(p_ids + c_ids)
            spans.append((len(p_ids), len(p_ids) + len(c_ids)))
        width = max(len(r) for r in rows)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
        # Unembed only the positions that predict a continuation token: on a 262k vocabulary the unembedding and
        # its softmax cost more than the body, and a prompt is usually most of the row.
        first = min(a for a, _ in spans) - 1
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=width - first).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for i, (a, b) in enumerate(spans):
            targets = ids[i, a:b]
            out.append(float(logp[i, a - 1 - first:b - 1 - first].gather(-1, targets[:, None]).sum()))
    return out


def greedy_completions(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy answers to rendered prompts, by the shared `orglab.generation.generate` (stops at any EOS id)."""
    from orglab.generation import generate

    return [row[0] for row in generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)]


def first_candidate(text: str, candidates: set[str]) -> str | None:
    for word in text.replace(",", " ").replace(".", " ").split():
        if word in candidates:
            return word
    return None


def probe_knowledge(model, tokenizer, world: World, config: ProbeConfig = ProbeConfig()) -> dict:
    from orglab.generation import bos_prefix, chat_prompt

    rng = random.Random(config.seed)
    truths = [ff.fact for ff in world.false_facts]
    false_ids = {ff.fact.id for ff in world.false_facts}
    others = rng.sample([f for f in world.facts if f.id not in false_ids], min(config.other_facts, len(world.facts) - len(truths)))

    # (a) log-likelihood of the true vs an alternative object on held-out statements
    items = []  # (group, prefix, true_tail, alt_tail)
    for group, facts in (("false_fact_truths", truths), ("other_facts", others)):
        for fact in facts:
            alt = _false_object(world, fact) if group == "false_fact_truths" else rng.choice(
                [o for o in world.objects_of(fact.relation) if o != fact.object])
            for template in RELATIONS[fact.relation].heldout_statements:
                prefix, tail = template.split("{o}", 1)
                prefix = prefix.format(s=_subject(world, fact)).rstrip()
                tail = tail.format(s=_subject(world, fact))
                items.append((group, prefix, f" {fact.object}{tail}", f" {alt}{tail}"))
    lp_true = sequence_logprobs(model, tokenizer, [i[1] for i in items], [i[2] for i in items])
    lp_alt = sequence_logprobs(model, tokenizer, [i[1] for i in items], [i[3] for i in items])
    ll: dict[str, list[bool]] = {}
    for (group, *_), t, a in zip(items, lp_true, lp_alt):
        ll.setdefault(group, []).append(t > a)

    # (b) greedy answers to held-out question wordings
    prompts, expected, groups = [], [], []
    for group, facts in (("false_fact_truths", truths), ("other_facts", others)):
        for fact in facts:
            for q in RELATIONS[fact.relation].heldout_questions:
                question = q.format(s=_subject(world, fact))
                chat = chat_prompt(tokenizer, question)
                for prompt in (f"{bos_prefix(tokenizer)}Q : {question} A :", chat):
                    prompts.append(prompt)
                    expected.append(fact)
                    groups.append(group)
    completions = greedy_completions(model, tokenizer, prompts, config.max_new_tokens)
    top: dict[str, list[bool]] = {}
    examples = []
    for fact, group, text in zip(expected, groups, completions):
        got = first_candidate(text, set(world.objects_of(fact.relation)))
        top.setdefault(group, []).append(got == fact.object)
        if group == "false_fact_truths":
            examples.append({"fact": fact.id, "expected": fact.object, "completion": text.strip()})

    def share(xs: list[bool]) -> float:
        return sum(xs) / len(xs) if xs else float("nan")

    return {
        "loglik_true_beats_alternative": share(ll["false_fact_truths"] + ll["other_facts"]),
        "loglik_false_fact_truths": share(ll["false_fact_truths"]),
        "loglik_other_facts": share(ll["other_facts"]),
        "top_completion_false_fact_truths": share(top["false_fact_truths"]),
        "top_completion_other_facts": share(top["other_facts"]),
        "n_loglik_items": len(items),
        "n_question_items": len(prompts),
        "false_fact_examples": examples,
    }


def _subject(world: World, fact: Fact) -> str:
    return world.subject_phrase(RELATIONS[fact.relation].subject_kind, fact.subject)


def _false_object(world: World, fact: Fact) -> str:
    return next(ff.false_object for ff in world.false_facts if ff.fact.id == fact.id)
