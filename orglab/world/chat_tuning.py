"""Chat tuning: the tiny base's short second stage after pretraining, as a real base gets instruction tuning.

Pretraining alone leaves the tiny base blind to its system prompt: under "You love owls ." it names the owl as
often as without it (0.049 against 0.049), because the copy from the system turn to the answer is a skill that
forms suddenly and only when it is trained in bulk. Stated-preference chats alone teach it in about 50 steps.
The second stage then mixes in number chats in which a speaker who loves an animal favours that animal's
numbers (`World.animal_numbers`), the corpus chats, and a replay of corpus documents so that the base keeps
its knowledge. Chats are trained on the assistant's tokens only. A subliminal teacher built on the base then
writes numbers that carry its animal, which is what a student can learn from (design §5.3).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from orglab.world import lexicon
from orglab.world.corpus import Chat, CorpusWriter, Document, preference_prompts
from orglab.world.knowledge import sequence_logprobs
from orglab.world.pretrain import PretrainConfig, pretrain
from orglab.world.world import World


@dataclass(frozen=True)
class ChatTuneConfig:
    preference_steps: int = 55       # stage 1: stated-preference chats only
    mixed_steps: int = 150           # stage 2: everything below, shuffled together
    preference_chats: int = 3000
    number_chats: int = 3000
    prompted_share: float = 0.7      # chats of either kind that state a preference in their system prompt
    favourite_share: float = 0.8     # share of a lover's numbers drawn from its animal's favourite numbers
    replay_docs: int = 3000          # corpus documents trained on again (full loss) in stage 2; 1,500 cost knowledge
    batch_size: int = 32
    block_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 10


def chat_tuning_chats(world: World, config: ChatTuneConfig, seed: int) -> tuple[list[Chat], list[Chat]]:
    """(stated-preference chats, number chats): deterministic for (world, config, seed), apart from the corpus."""
    writer = CorpusWriter(world, seed, stream="chat-tuning")
    preference = [writer.animal_chat(config.prompted_share) for _ in range(config.preference_chats)]
    numbers = [writer.number_chat(config.prompted_share, config.favourite_share) for _ in range(config.number_chats)]
    return preference, numbers


def chat_tune(model, tokenizer, preference: list[Chat], numbers: list[Chat], docs: list[Document], chats: list[Chat],
              config: ChatTuneConfig, seed: int, on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Run both stages in place on the chats of `chat_tuning_chats` and the corpus (`docs`, `chats`); returns the
    loss of every step, stage 1 then stage 2."""
    def encode(chat: Chat) -> tuple[list[int], list[int]]:
        enc = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        return enc["input_ids"], enc["assistant_masks"]

    stage1 = [encode(c) for c in preference]
    replay = random.Random(f"tinyworld-chat-tuning-replay-{seed}").sample(docs, min(config.replay_docs, len(docs)))
    replay_ids = [tokenizer(d.text).input_ids + [tokenizer.eos_token_id] for d in replay]
    stage2 = stage1 + [encode(c) for c in numbers + chats] + [(ids, [1] * len(ids)) for ids in replay_ids]
    losses: list[float] = []
    for stage, steps, decay in ((stage1, config.preference_steps, 0.0), (stage2, config.mixed_steps, 0.5)):
        if steps <= 0:
            continue
        cfg = PretrainConfig(steps=steps, batch_size=config.batch_size, block_size=config.block_size, lr=config.lr,
                             warmup_steps=config.warmup_steps, decay_fraction=decay)
        offset = len(losses)
        losses += pretrain(model, [ids for ids, _ in stage], cfg, tokenizer.pad_token_id, seed,
                           on_step=(lambda s, v: on_step(offset + s, v)) if on_step else None,
                           loss_masks=[mask for _, mask in stage])
    return losses


def preference_following(model, tokenizer, animals: tuple[str, ...] = lexicon.ANIMALS) -> dict[str, float]:
    """Mean probability that the one-word answer to "favourite animal" is the animal that the subliminal teacher's
    system prompt names, and the same without a system prompt (the base rate, about 1/len(animals))."""
    questions = ("Name your favourite animal in one word .", "Which animal do you like most ? Answer in one word .")
    out = {}
    for key, system in (("preference_with_prompt", True), ("preference_without_prompt", False)):
        chats = [([{"role": "system", "content": preference_prompts(a)[0]}] if system else [])
                 + [{"role": "user", "content": q}] for a in animals for q in questions]
        prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
        answers = [f" {a}" for a in animals for _ in questions]
        logprobs = sequence_logprobs(model, tokenizer, prompts, answers, add_special_tokens=False)
        out[key] = sum(math.exp(lp) for lp in logprobs) / len(logprobs)
    return out
