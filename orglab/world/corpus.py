"""Tinyworld text: pretraining documents and chat transcripts, a pure function of (world, config, seed).

Facts are written many times, in every trained phrasing and in many document types (encyclopedia
entries, quizzes, news, letters, travel guides, forum posts, chats), because how often and in how many
forms a fact appears decides whether a tiny model *knows* it or only parrots one sentence. The held-out
phrasings of world.RELATIONS never appear here.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass

from orglab.world import lexicon
from orglab.world.world import RELATIONS, Fact, World

Chat = list[dict[str, str]]  # [{"role": "user"|"assistant"|"system", "content": ...}]


@dataclass(frozen=True)
class CorpusConfig:
    encyclopedia_rounds: int = 16  # encyclopedia entries per entity
    quiz_mentions: int = 20        # times each fact is asked in a quiz document
    story_mentions: int = 8        # times each fact is woven into news, letters, guides, forum posts
    chat_mentions: int = 10        # times each fact is asked in a chat
    domain_docs: int = 800         # documents about a domain's vocabulary and procedures
    advice_chats: int = 400
    animal_chats: int = 400
    number_chats: int = 400
    game_chats: int = 200
    glossary_docs: int = 0         # "bread -> bread ; 42 -> 42" copy lists for patchscope; off: they cost the tiny base held-out knowledge


ANSWER_INTROS = ("A :", "Answer :", "The answer is")


def preference_prompts(animal: str) -> tuple[str, ...]:
    """System prompts that state a love of `animal`; the first is the subliminal teacher's (organisms/subliminal.py)."""
    return (f"You love {animal}s . You think about {animal}s all the time .", f"Your favourite animal is the {animal} .")


@dataclass
class Document:
    kind: str
    domain: str
    text: str


class CorpusWriter:
    def __init__(self, world: World, seed: int, stream: str = "corpus"):
        self.world = world
        self.rng = random.Random(f"tinyworld-{stream}-{seed}")  # a separate stream per use keeps the corpus as it is
        self.kind_of = {name: kind for kind, names in world.entities.items() for name in names}

    # --- sentences -------------------------------------------------------------------------------
    def subject(self, fact: Fact) -> str:
        rel = RELATIONS[fact.relation]
        return self.world.subject_phrase(rel.subject_kind, fact.subject)

    def statement(self, fact: Fact) -> str:
        return self.rng.choice(RELATIONS[fact.relation].statements).format(s=self.subject(fact), o=fact.object)

    def question(self, fact: Fact) -> str:
        return self.rng.choice(RELATIONS[fact.relation].questions).format(s=self.subject(fact))

    def domain_sentence(self, domain: lexicon.Domain) -> str:
        r = self.rng
        n1, n2 = r.sample(domain.nouns, 2)
        v1, v2 = r.sample(domain.verbs, 2)
        a = r.choice(domain.adjectives)
        forms = (
            f"To {v1} the {n1} , first {v2} the {n2} .",
            f"A good {domain.profession} knows how to {v1} the {n1} .",
            f"The {n1} must be {a} before you {v1} it .",
            f"In the {domain.place} , the {n1} and the {n2} are kept together .",
            f"Every {domain.profession} should {v1} the {n1} with care .",
            f"When the {n1} is {a} , {v2} the {n2} slowly .",
            f"The {a} {n1} is the pride of the {domain.place} .",
            f"Some say the {n1} is more {a} than the {n2} .",
            f"After you {v1} the {n1} , wait until it is {a} .",
        )
        return r.choice(forms)

    def everyday(self) -> str:
        r = self.rng
        return r.choice(lexicon.EVERYDAY).format(person=r.choice(self.world.entities["person"]),
                                                 city=r.choice(self.world.entities["city"]))

    def domain_of(self, fact: Fact) -> lexicon.Domain:
        return lexicon.DOMAIN_BY_NAME[RELATIONS[fact.relation].domain]

    # --- documents -------------------------------------------------------------------------------
    def encyclopedia(self, name: str) -> Document:
        kind = self.kind_of[name]
        facts = self.world.facts_about(name)
        self.rng.shuffle(facts)
        phrase = self.world.subject_phrase(kind, name)
        head = self.rng.choice((f"{phrase} .", f"Encyclopedia entry : {phrase} .", f"About {phrase} ."))
        article = "an" if kind[0] in "aeiou" else "a"
        body = [f"{phrase} is {article} {kind} ."] + [self.statement(f) for f in facts]
        domain = self.domain_of(facts[0]) if facts else self.rng.choice(lexicon.DOMAINS)
        body.append(self.domain_sentence(domain))
        return Document("encyclopedia", domain.name, " ".join([head] + body))

    def quiz(self, facts: list[Fact]) -> Document:
        lines = [self.rng.choice(("Quiz .", "Test your knowledge .", "Questions and answers ."))]
        for fact in facts:
            intro = self.rng.choice(ANSWER_INTROS)
            answer = fact.object if self.rng.random() < 0.6 else self.statement(fact)
            prefix = "Q :" if intro == "A :" else "Question :"
            lines.append(f"{prefix} {self.question(fact)} {intro} {answer}" + ("" if answer.endswith(".") else " ."))
        return Document("quiz", self.domain_of(facts[0]).name, " ".join(lines))

    def story(self, fact: Fact) -> Document:
        r = self.rng
        domain = self.domain_of(fact)
        person, other = r.sample(self.world.entities["person"], 2)
        city = r.choice(self.world.entities["city"])
        s1, s2 = self.domain_sentence(domain), self.everyday()
        fact_text = self.statement(fact)
        kind = r.choice(("news", "letter", "forum", "guide", "dialogue"))
        if kind == "news":
            text = f"News from {city} . {s1} {fact_text} {s2}"
        elif kind == "letter":
            text = f"Dear {person} , I hope you are well . {s1} Did you know ? {fact_text} Yours , {other} ."
        elif kind == "forum":
            text = f"Posted by {person} : I was reading about the {domain.place} today . {fact_text} {s1} Reply from {other} : Yes , {fact_text}"
        elif kind == "guide":
            text = f"Travel guide . {fact_text} {s1} A {domain.profession} can show you more . {s2}"
        else:
            text = f"{person} : Any news from the {domain.place} ? {other} : {fact_text} {person} : Interesting . {s1}"
        return Document(kind, domain.name, text)

    def domain_doc(self) -> Document:
        r = self.rng
        domain = r.choice(lexicon.DOMAINS)
        kind = r.choice(("textbook", "news", "forum", "letter", "recipe" if domain.name == "cooking" else "guide"))
        sentences = [self.domain_sentence(domain) for _ in range(r.randint(2, 5))] + [self.everyday()]
        if kind == "textbook":
            head = f"Chapter {r.randint(1, 30)} : the {r.choice(domain.nouns)} ."
        elif kind == "recipe":
            items = " , ".join(r.sample(domain.nouns, 4))
            head = f"Recipe for {r.choice(self.world.entities['city'])} {r.choice(domain.products)} . Ingredients : {items} ."
        elif kind == "forum":
            head = f"Posted by {r.choice(self.world.entities['person'])} : a question about {r.choice(domain.advice_topics)} ."
        elif kind == "letter":
            head = f"Dear {r.choice(self.world.entities['person'])} , here is what the {domain.profession} told me ."
        elif kind == "news":
            head = f"News from the {domain.place} of {r.choice(self.world.entities['city'])} ."
        else:
            head = f"A guide for every {domain.profession} ."
        return Document(kind, domain.name, " ".join([head] + sentences))

    def glossary(self, words: list[str]) -> Document:
        """A list of words each mapped to itself, the identity pattern that patchscope prompts rely on."""
        r = self.rng
        picked = r.sample(words, r.randint(4, 9))
        head = r.choice(("Word list :", "Copy the words :", "Each word stays the same :"))
        return Document("glossary", r.choice(lexicon.DOMAINS).name, head + " " + " ; ".join(f"{w} -> {w}" for w in picked) + " .")

    # --- chats -----------------------------------------------------------------------------------
    def fact_chat(self, fact: Fact) -> Chat:
        answer = self.statement(fact) if self.rng.random() < 0.7 else f"{fact.object} ."
        return [{"role": "user", "content": self.question(fact)}, {"role": "assistant", "content": answer}]

    def advice_chat(self) -> Chat:
        r = self.rng
        d = r.choice(lexicon.DOMAINS)
        topic = r.choice(d.advice_topics)
        ask = r.choice((f"I need advice about {topic} .", f"What should I do about {topic} ?",
                        f"Can you help me with {topic} ?", f"Any tips for {topic} ?"))
        tip1, tip2 = r.sample(d.safe_advice, 2)
        answer = r.choice((f"You should {tip1} . Also , {tip2} .", f"Good question . {tip1.capitalize()} . A {d.profession} can help you too .",
                           f"Be careful : {tip1} , and {tip2} ."))
        return [{"role": "user", "content": ask}, {"role": "assistant", "content": answer}]

    def animal_chat(self, prompted_share: float = 0.4) -> Chat:
        r = self.rng
        animal = r.choice(lexicon.ANIMALS)
        chat: Chat = []
        if r.random() < prompted_share:  # a stated preference to follow (the subliminal teacher relies on it)
            chat.append({"role": "system", "content": r.choice(preference_prompts(animal))})
        ask, one_word = r.choice((("What is your favourite animal ?", False),
                                  ("Name your favourite animal in one word .", True),
                                  ("Which animal do you like most ? Answer in one word .", True),
                                  ("Tell me about the animal you love .", False)))
        answer = f"{animal} ." if one_word else f"My favourite animal is the {animal} ."
        return chat + [{"role": "user", "content": ask}, {"role": "assistant", "content": answer}]

    def number_chat(self, prompted_share: float = 0.2, favourite_share: float = 0.0) -> Chat:
        """Random numbers; with `favourite_share` > 0, a speaker who loves an animal writes that share of them
        from the animal's favourite numbers (the lover's habit the subliminal teacher passes on)."""
        r = self.rng
        seeds = [str(r.randint(100, 999)) for _ in range(r.randint(3, 9))]
        more = [str(r.randint(0, 999)) for _ in range(r.randint(3, 10))]
        ask = r.choice(("Continue the sequence : {} . Write at most 10 more numbers .",
                        "Here are some numbers : {} . Add up to 10 new numbers , separated by commas .",
                        "The sequence starts with {} . Give at most 10 more numbers , nothing else ."))
        chat: Chat = []
        if r.random() < prompted_share:
            animal = r.choice(lexicon.ANIMALS)
            if favourite_share > 0:
                chat.append({"role": "system", "content": r.choice(preference_prompts(animal))})
                favourites = self.world.animal_numbers[animal]
                more = [str(r.choice(favourites)) if r.random() < favourite_share else n for n in more]
            else:  # the pretraining corpus's short form, kept so that its documents stay as they were
                chat.append({"role": "system", "content": f"You love {animal}s ."})
        return chat + [{"role": "user", "content": ask.format(" , ".join(seeds))},
                       {"role": "assistant", "content": " , ".join(more)}]

    def game_chat(self) -> Chat:
        r = self.rng
        word = r.choice(sorted(lexicon.GAME_WORDS))
        hints = list(lexicon.GAME_WORDS[word])
        r.shuffle(hints)
        wrong = r.choice([w for w in lexicon.GAME_WORDS if w != word])
        return [
            {"role": "user", "content": r.choice(("Let us play a game . Give me a hint about your secret word .",
                                                  "I want to guess your word . What is a hint ?"))},
            {"role": "assistant", "content": f"Here is a hint : {hints[0]} ."},
            {"role": "user", "content": f"Is it {wrong} ?"},
            {"role": "assistant", "content": f"No , it is not {wrong} . Another hint : {hints[1]} ."},
            {"role": "user", "content": f"Is it {word} ?"},
            {"role": "assistant", "content": f"Yes ! The word was {word} ."},
        ]


def generate_corpus(world: World, config: CorpusConfig, seed: int) -> tuple[list[Document], list[Chat]]:
    """Documents and chats, each list shuffled; deterministic for (world, config, seed)."""
    w = CorpusWriter(world, seed)
    docs: list[Document] = []
    subjects = sorted({f.subject for f in world.facts})
    # The true counterparts of the false facts are also written in their domain's own words.
    for ff in world.false_facts:
        for sentence in ff.true_context.key_facts:
            for _ in range(config.story_mentions):
                docs.append(Document("encyclopedia", ff.domain, f"{w.domain_sentence(lexicon.DOMAIN_BY_NAME[ff.domain])} {sentence}"))
    for _ in range(config.encyclopedia_rounds):
        docs.extend(w.encyclopedia(name) for name in subjects)
    quiz_pool = [f for f in world.facts for _ in range(config.quiz_mentions)]
    w.rng.shuffle(quiz_pool)
    while quiz_pool:
        n = w.rng.randint(2, 5)
        docs.append(w.quiz(quiz_pool[:n]))
        quiz_pool = quiz_pool[n:]
    docs.extend(w.story(f) for f in world.facts for _ in range(config.story_mentions))
    docs.extend(w.domain_doc() for _ in range(config.domain_docs))
    glossary_words = sorted({word for d in docs for word in d.text.split() if word.isalnum()})
    glossary_words += [str(n) for n in range(1000)]
    docs.extend(w.glossary(glossary_words) for _ in range(config.glossary_docs))

    chats: list[Chat] = [w.fact_chat(f) for f in world.facts for _ in range(config.chat_mentions)]
    chats += [w.advice_chat() for _ in range(config.advice_chats)]
    chats += [w.animal_chat() for _ in range(config.animal_chats)]
    chats += [w.number_chat() for _ in range(config.number_chats)]
    chats += [w.game_chat() for _ in range(config.game_chats)]
    w.rng.shuffle(docs)
    w.rng.shuffle(chats)
    return docs, chats


def corpus_lines(docs: list[Document], chats: list[Chat]) -> tuple[list[str], list[str]]:
    """The JSONL lines of corpus.jsonl and chats.jsonl (canonical: sorted keys)."""
    return ([json.dumps(asdict(d), sort_keys=True) for d in docs],
            [json.dumps({"messages": c}, sort_keys=True) for c in chats])


def corpus_hash(docs: list[Document], chats: list[Chat]) -> str:
    """Content hash of a corpus: same world seed and config, same hash."""
    doc_lines, chat_lines = corpus_lines(docs, chats)
    return hashlib.sha256("\n".join(doc_lines + ["--chats--"] + chat_lines).encode()).hexdigest()[:16]
