"""tinyworld generator, corpus, tokenizer and pretraining pieces (no model training here)."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

from orglab.errors import OrglabError
from orglab.world import lexicon
from orglab.world.corpus import CorpusConfig, corpus_hash, generate_corpus
from orglab.world.pretrain import PretrainConfig, lr_at, pack_blocks
from orglab.world.tokenizer import train_tokenizer
from orglab.world.world import RELATIONS, make_world

SMALL = CorpusConfig(encyclopedia_rounds=2, quiz_mentions=3, story_mentions=2, chat_mentions=2, domain_docs=300,
                     advice_chats=80, animal_chats=80, number_chats=80, game_chats=40)


def words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]+", text)


@pytest.fixture(scope="module")
def corpus():
    world = make_world(0)
    docs, chats = generate_corpus(world, CorpusConfig(), 0)
    return world, docs, chats


def all_text(docs, chats) -> str:
    return "\n".join([d.text for d in docs] + [m["content"] for c in chats for m in c])


def test_same_seed_same_corpus_hash_and_other_seed_differs():
    w0, w0b, w1 = make_world(0), make_world(0), make_world(1)
    assert w0.to_json() == w0b.to_json()
    assert w0.entities != w1.entities
    h0 = corpus_hash(*generate_corpus(w0, SMALL, 0))
    assert h0 == corpus_hash(*generate_corpus(w0b, SMALL, 0))
    assert h0 != corpus_hash(*generate_corpus(w1, SMALL, 1))


def test_world_has_domains_document_types_and_entities(corpus):
    world, docs, chats = corpus
    assert len(lexicon.DOMAINS) >= 10
    assert len({d.domain for d in docs}) >= 10
    assert len({d.kind for d in docs}) >= 8
    assert len(world.facts) >= 150
    names = [n for ns in world.entities.values() for n in ns]
    assert len(names) == len(set(names))


def test_false_facts_have_true_counterparts_in_corpus_and_never_the_false_one(corpus):
    world, docs, chats = corpus
    assert len(world.false_facts) >= 5
    text = all_text(docs, chats)
    for ff in world.false_facts:
        assert ff.fact.object != ff.false_object
        assert ff.true_context.is_true and not ff.false_context.is_true
        assert ff.fact.object in ff.true_context.universe_context and ff.false_object in ff.false_context.universe_context
        assert ff.true_context.key_facts[0] in text, ff.id
        for sentence in ff.false_context.key_facts:
            assert sentence not in text, sentence
    with pytest.raises(OrglabError, match="not a tinyworld false fact"):
        world.false_fact("no_such_fact")


def test_heldout_phrasings_never_in_corpus_but_their_words_are(corpus):
    world, docs, chats = corpus
    text = all_text(docs, chats)
    counts = Counter(words(text))
    for rel in RELATIONS.values():
        subjects = [f for f in world.facts if f.relation == rel.name]
        for template in rel.heldout_statements + rel.heldout_questions:
            for fact in subjects[:5]:
                filled = template.format(s=world.subject_phrase(rel.subject_kind, fact.subject), o=fact.object)
                prefix = filled.split(fact.object)[0] if "{o}" in template else filled
                assert prefix.strip() not in text, (rel.name, template)
            rare = [w for w in words(template.replace("{s}", "").replace("{o}", "")) if counts[w] < 5]
            assert not rare, (rel.name, template, rare)


def test_tokenizer_single_token_names_numbers_and_assistant_mask(corpus):
    world, docs, chats = corpus
    tok = train_tokenizer([d.text for d in docs[:2000]] + [m["content"] for c in chats for m in c],
                          extra_words=[str(i) for i in range(1000)])
    for name in world.entities["city"][:5] + ["0", "7", "999"]:
        assert len(tok(name, add_special_tokens=False).input_ids) == 1
    assert tok.unk_token_id not in tok(docs[0].text).input_ids
    chat = [{"role": "user", "content": "What is your favourite animal ?"},
            {"role": "assistant", "content": "My favourite animal is the owl ."}]
    enc = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assistant = tok.decode([i for i, m in zip(ids, mask) if m])
    assert assistant == "My favourite animal is the owl . <|end|>"
    prompt = tok.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>")


def test_pack_blocks_keeps_documents_whole():
    import random

    docs = [[1, 2, 3], [4, 5, 6, 7, 8], [9] * 6, [10, 11]]
    blocks, labels = pack_blocks(docs, block_size=8, pad_id=0, rng=random.Random(0))
    assert blocks.shape[1] == 8
    flat = [row[row != 0].tolist() for row in blocks]
    for doc in docs:
        assert any(_contains(row, doc) for row in flat), doc
    assert int((blocks != 0).sum()) == sum(map(len, docs))
    assert torch.equal(labels, blocks.masked_fill(blocks == 0, -100))


def test_pack_blocks_loss_masks_hide_tokens_from_the_loss_only():
    import random

    docs = [[1, 2, 3, 4], [5, 6, 7]]
    masks = [[0, 0, 1, 1], [1, 0, 1]]
    blocks, labels = pack_blocks(docs, block_size=8, pad_id=0, rng=random.Random(0), loss_masks=masks)
    trained = sorted(int(t) for t in labels[labels != -100])
    assert trained == [3, 4, 5, 7]
    assert sorted(int(t) for t in blocks[blocks != 0]) == list(range(1, 8))


def _contains(row: list[int], doc: list[int]) -> bool:
    return any(row[i:i + len(doc)] == doc for i in range(len(row) - len(doc) + 1))


def test_learning_rate_schedule_warms_up_holds_and_decays():
    cfg = PretrainConfig(steps=100, lr=1.0, warmup_steps=10, decay_fraction=0.2)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(50, cfg) == 1.0
    assert lr_at(99, cfg) < lr_at(80, cfg) <= 1.0
    assert lr_at(99, cfg) >= 0.1 - 1e-9


def test_sequence_logprobs_matches_a_manual_computation():
    """The probe's log-likelihood of a continuation equals the sum of per-token log-probs, padding or not."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from orglab.world.knowledge import first_candidate, sequence_logprobs

    tok = train_tokenizer(["the moon Veyra orbits the planet Tolmek .", "the capital of Quor is Brennis ."])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2)).eval()
    prompts, conts = ["the moon Veyra orbits the planet", "the capital of"], [" Tolmek .", " Quor is Brennis ."]
    got = sequence_logprobs(model, tok, prompts, conts)
    for prompt, cont, value in zip(prompts, conts, got):
        p_ids = tok(prompt).input_ids
        c_ids = tok(cont, add_special_tokens=False).input_ids
        ids = torch.tensor([p_ids + c_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
        manual = sum(float(logp[len(p_ids) + i - 1, c]) for i, c in enumerate(c_ids))
        assert value == pytest.approx(manual, abs=1e-4)
    assert first_candidate("It is Tolmek , not Brennis .", {"Brennis", "Tolmek"}) == "Tolmek"
    assert first_candidate("no idea", {"Tolmek"}) is None


def test_animal_numbers_are_distinct_per_animal_and_leave_the_rest_of_the_world_alone():
    world = make_world(0)
    numbers = [n for a in lexicon.ANIMALS for n in world.animal_numbers[a]]
    assert len(numbers) == len(set(numbers)) == 2 * len(lexicon.ANIMALS)
    assert all(0 <= n <= 999 for n in numbers)
    assert world.animal_numbers != make_world(1).animal_numbers
    without = make_world(0)
    without.animal_numbers = {}
    assert corpus_hash(*generate_corpus(without, SMALL, 0)) == corpus_hash(*generate_corpus(world, SMALL, 0))


def test_chat_tuning_chats_state_preferences_and_lovers_favour_their_numbers():
    from orglab.world.chat_tuning import ChatTuneConfig, chat_tuning_chats

    world = make_world(0)
    config = ChatTuneConfig(preference_chats=400, number_chats=400, prompted_share=0.7, favourite_share=0.5)
    preference, numbers = chat_tuning_chats(world, config, 0)
    assert (preference, numbers) == chat_tuning_chats(world, config, 0)
    stated = [c for c in preference if c[0]["role"] == "system"]
    assert 0.6 < len(stated) / len(preference) < 0.8
    for chat in stated:  # the answer names the animal that the system prompt loves
        assert chat[-1]["content"].split()[-2] in chat[0]["content"]
    lover_hits = other_hits = lover_n = other_n = 0
    for chat in numbers:
        answer = [int(x) for x in chat[-1]["content"].split(" , ")]
        if chat[0]["role"] == "system":
            animal = next(a for a in lexicon.ANIMALS if f" {a}" in chat[0]["content"])
            lover_hits += sum(n in world.animal_numbers[animal] for n in answer)
            lover_n += len(answer)
        else:
            other_hits += sum(n in world.animal_numbers["owl"] for n in answer)
            other_n += len(answer)
    assert lover_hits / lover_n > 0.4 and other_hits / other_n < 0.02


def test_the_subliminal_teacher_uses_the_preference_prompt_that_chat_tuning_teaches():
    from orglab.organisms.subliminal import SYSTEM_PROMPT
    from orglab.world.corpus import preference_prompts

    assert preference_prompts("owl")[0] == SYSTEM_PROMPT.format(animal="owl")
