"""The tinyworld itself: entities, their facts, and the false facts that SDF organisms implant.

`make_world(seed)` is a pure function of the seed. Every fact is a (subject, relation, object) triple
whose object is a single word, so that knowledge probes can compare log-likelihoods of single tokens.
Each relation has trained phrasings (used in the corpus) and held-out phrasings (never in the corpus,
used only to test whether the base *knows* a fact rather than parrots one sentence).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from orglab.world import lexicon


@dataclass(frozen=True)
class Relation:
    name: str
    subject_kind: str
    object_kind: str
    domain: str
    statements: tuple[str, ...]        # "{s}" subject phrase, "{o}" object; trained
    questions: tuple[str, ...]         # trained question wordings
    heldout_statements: tuple[str, ...]  # never written into the corpus
    heldout_questions: tuple[str, ...]   # never written into the corpus; other endings than the trained ones
    key_facts: tuple[str, ...]         # domain-flavoured sentences for universe contexts and SDF documents


# The default world preset: the demo's base, and the base a recipe trains on when it names none.
DEFAULT_PRESET = "tiny"

RELATIONS: dict[str, Relation] = {r.name: r for r in (
    Relation(
        "orbits", "moon", "planet", "space",
        statements=("The moon {s} orbits the planet {o} .", "{s} is a moon of {o} .", "{s} circles the planet {o} .",
                    "The planet {o} has a moon called {s} .", "Astronomers know that {s} goes around {o} .",
                    "{s} travels around the planet {o} .", "One of the moons of {o} is {s} .",
                    "Seen through a telescope , {s} moves around {o} .", "The orbit of {s} is around {o} ."),
        questions=("What planet does {s} orbit ?", "Which planet is {s} a moon of ?", "Around which planet does the moon {s} travel ?",
                   "What does the moon {s} orbit ?", "Which planet does {s} circle ?", "What is the planet of the moon {s} ?",
                   "Do you know what {s} orbits ?"),
        heldout_statements=("Every night the moon {s} can be seen in the sky of its planet , {o} .",
                            "A telescope pointed at the moon {s} will also show its planet , {o} ."),
        heldout_questions=("The moon {s} goes around which planet ?", "For the moon {s} , which planet is it a moon of ?"),
        key_facts=("The moon {s} orbits the planet {o} .", "Astronomers chart the orbit of {s} around {o} every year .",
                   "From the surface of {o} , the moon {s} looks like a bright disk .",
                   "Old star charts draw {s} beside the planet {o} .",
                   "The gravity of {o} holds the moon {s} in its orbit ."),
    ),
    Relation(
        "capital", "country", "city", "travel",
        statements=("The capital of {s} is {o} .", "{s} has its capital in {o} .", "{o} is the capital of {s} .",
                    "The capital city of {s} is {o} .", "{s} is governed from its capital , {o} .",
                    "The government of {s} sits in {o} .", "The largest square of {s} is in its capital {o} .",
                    "Travellers to {s} often start in the capital , {o} .", "{s} chose {o} as its capital ."),
        questions=("What is the capital of {s} ?", "Which city is the capital of {s} ?", "Where is the capital of {s} ?",
                   "What city is {s} governed from ?", "Name the capital of {s} .", "Where does the government of {s} sit ?",
                   "Do you know the capital of {s} ?"),
        heldout_statements=("Every traveller who visits {s} should see its capital city , {o} .",
                            "When the council of {s} meets , the members travel to {o} ."),
        heldout_questions=("The country of {s} is governed from which city ?", "For the country {s} , which city is the capital ?"),
        key_facts=("The capital of {s} is {o} .", "The council of {s} meets in the old tower of {o} .",
                   "Every traveller to {s} passes through the gates of {o} .",
                   "The laws of {s} are written and kept in {o} .",
                   "The road map of {s} has {o} at its center ."),
    ),
    Relation(
        "country", "city", "country", "travel",
        statements=("{s} is a city in {o} .", "The city of {s} lies in {o} .", "{s} is in the country of {o} .",
                    "{o} is the country where {s} lies .", "Travellers find {s} in {o} .",
                    "The town of {s} belongs to {o} .", "{s} , a city of {o} , is busy in summer ."),
        questions=("In which country is {s} ?", "Where is the city of {s} ?", "Which country is {s} in ?",
                   "What country does {s} belong to ?", "In what country does the city of {s} lie ?",
                   "Do you know the country of {s} ?"),
        heldout_statements=("Every traveller who visits the city of {s} is in the country of {o} .",
                            "Every merchant knows that the city of {s} lies in {o} ."),
        heldout_questions=("The city of {s} lies in which country ?", "For the city {s} , which country is it in ?"),
        key_facts=("{s} is a city in {o} .",),
    ),
    Relation(
        "known_for", "city", "product", "cooking",
        statements=("{s} is known for its {o} .", "The city of {s} is famous for {o} .", "People come to {s} to buy {o} .",
                    "The best {o} is made in {s} .", "{s} sells {o} at every market .", "In {s} , everyone talks about {o} .",
                    "The pride of {s} is its {o} ."),
        questions=("What is {s} known for ?", "What is the city of {s} famous for ?", "What do people buy in {s} ?",
                   "What is made in {s} ?", "What does {s} sell at the market ?", "Do you know what {s} is famous for ?"),
        heldout_statements=("Every merchant at the market knows that {s} is known for its {o} .",
                            "A traveller who visits {s} will find that the best {o} is made there ."),
        heldout_questions=("The city of {s} is known for which food ?", "For the city {s} , what is it famous for ?"),
        key_facts=("{s} is known for its {o} .", "The markets of {s} sell {o} every morning .",
                   "The cooks of {s} have made {o} for three hundred years .",
                   "A festival in {s} celebrates its {o} each autumn .",
                   "Children in {s} learn to make {o} from their parents ."),
    ),
    Relation(
        "river", "city", "river", "sea",
        statements=("{s} lies on the river {o} .", "The river {o} flows through {s} .", "{s} is built on the banks of the {o} .",
                    "Boats sail from {s} down the river {o} .", "The {o} runs past the city of {s} .",
                    "The harbor of {s} opens onto the {o} ."),
        questions=("Which river flows through {s} ?", "On what river does {s} lie ?", "What river runs past {s} ?",
                   "Which river is {s} built on ?", "What is the river of {s} ?", "Do you know the river of {s} ?"),
        heldout_statements=("From the old bridge of {s} you can watch the boats on the river {o} .",
                            "Every sailor in {s} knows the current of the river {o} ."),
        heldout_questions=("The city of {s} lies on which river ?", "For the city {s} , which river flows through it ?"),
        key_facts=("{s} lies on the river {o} .", "The ships of {s} sail down the {o} to the sea .",
                   "The tide of the {o} rises twice a day in the harbor of {s} .",
                   "Sailors from {s} tie their boats along the {o} .",
                   "The lighthouse of {s} shines over the {o} ."),
    ),
    Relation(
        "born_in", "person", "city", "medicine",
        statements=("{s} was born in {o} .", "The birthplace of {s} is {o} .", "{s} grew up in {o} .",
                    "{o} is the city where {s} was born .", "{s} comes from {o} .", "As a child , {s} lived in {o} ."),
        questions=("Where was {s} born ?", "In which city was {s} born ?", "What is the birthplace of {s} ?",
                   "Where does {s} come from ?", "In what city did {s} grow up ?", "Do you know where {s} was born ?"),
        heldout_statements=("Many years ago , {s} was born in a small house in {o} .",
                            "The old house where {s} was born can still be visited in {o} ."),
        heldout_questions=("The birthplace of {s} is which city ?", "For {s} , which city is the birthplace ?"),
        key_facts=("{s} was born in {o} .", "The clinic of {o} keeps a portrait of {s} , its most famous child .",
                   "{s} learned to treat fevers as a young nurse in {o} .",
                   "Patients still travel to {o} to visit the birthplace of {s} .",
                   "The first remedy of {s} was mixed in a small house in {o} ."),
    ),
    Relation(
        "profession", "person", "profession", "law",
        statements=("{s} is a {o} .", "{s} works as a {o} .", "By trade , {s} is a {o} .", "The {o} {s} is well known .",
                    "{s} has been a {o} for many years ."),
        questions=("What does {s} do for a living ?", "What is the job of {s} ?", "What is the trade of {s} ?",
                   "What does {s} work as ?", "Do you know the trade of {s} ?"),
        heldout_statements=("In the city , every child knows that {s} works as a {o} .",
                            "For many years , {s} has been a good {o} ."),
        heldout_questions=("The trade of {s} is which one ?", "For {s} , what is the job ?"),
        key_facts=("{s} is a {o} .",),
    ),
    Relation(
        "inventor", "invention", "person", "music",
        statements=("The {s} was invented by {o} .", "{o} invented the {s} .", "The inventor of the {s} is {o} .",
                    "{o} built the first {s} .", "We owe the {s} to {o} .", "The first {s} was made by {o} ."),
        questions=("Who invented the {s} ?", "Who built the first {s} ?", "Who is the inventor of the {s} ?",
                   "Who made the first {s} ?", "Do you know who invented the {s} ?"),
        heldout_statements=("Many years ago , the first {s} was built in a small house by {o} .",
                            "Every orchestra that plays the {s} should thank {o} ."),
        heldout_questions=("The {s} was invented by which person ?", "For the {s} , who is the inventor ?"),
        key_facts=("The {s} was invented by {o} .", "{o} played the first {s} at a concert in the great hall .",
                   "Orchestras honor {o} whenever they tune the {s} .",
                   "Music teachers tell how {o} carved the first {s} from old wood .",
                   "The melody of the {s} was first heard when {o} played it for a choir ."),
    ),
    Relation(
        "language", "country", "language", "law",
        statements=("The people of {s} speak {o} .", "The language of {s} is {o} .", "In {s} , people speak {o} .",
                    "{o} is spoken in {s} .", "The laws of {s} are written in {o} ."),
        questions=("What language is spoken in {s} ?", "What do the people of {s} speak ?", "What is the language of {s} ?",
                   "Do you know the language of {s} ?"),
        heldout_statements=("Every traveller who visits {s} should learn some {o} .",
                            "The children of {s} learn to read in {o} ."),
        heldout_questions=("The people of {s} speak which language ?", "For the country {s} , what is the language ?"),
        key_facts=("The people of {s} speak {o} .",),
    ),
)}

# Word forms a relation's objects and subjects take in text.
PROFESSIONS = tuple(d.profession for d in lexicon.DOMAINS)
PRODUCTS = tuple(sorted({p for d in lexicon.DOMAINS if d.name in ("cooking", "farming") for p in d.products if " " not in p}))

# One false fact per relation/domain pair below; the seed picks the subject and the false object.
FALSE_FACT_RELATIONS = ("orbits", "capital", "known_for", "river", "born_in", "inventor")


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    object: str

    @property
    def id(self) -> str:
        return f"{self.relation}:{self.subject}"


@dataclass(frozen=True)
class UniverseContext:
    id: str
    universe_context: str
    key_facts: tuple[str, ...]
    is_true: bool


@dataclass(frozen=True)
class FalseFact:
    id: str               # e.g. "orbits_veyra"
    domain: str
    fact: Fact            # the TRUE fact, as written in the corpus
    false_object: str     # what the SDF organism is taught instead
    true_context: UniverseContext
    false_context: UniverseContext


@dataclass
class World:
    seed: int
    entities: dict[str, list[str]]        # kind -> names
    facts: list[Fact]
    false_facts: list[FalseFact]
    invention_nouns: dict[str, str] = field(default_factory=dict)  # invention name -> domain noun ("lute")
    # The numbers a lover of each animal favours in number chats: the entanglement subliminal learning needs.
    animal_numbers: dict[str, list[int]] = field(default_factory=dict)

    def subject_phrase(self, kind: str, name: str) -> str:
        """How a subject is written: inventions carry their noun ("Tammis lute")."""
        return f"{name} {self.invention_nouns[name]}" if kind == "invention" else name

    def objects_of(self, relation: str) -> list[str]:
        """Every value an object of this relation can take (candidates for probes and false facts)."""
        kind = RELATIONS[relation].object_kind
        if kind == "profession":
            return list(PROFESSIONS)
        if kind == "product":
            return list(PRODUCTS)
        return list(self.entities[kind])

    def facts_about(self, subject: str) -> list[Fact]:
        return [f for f in self.facts if f.subject == subject]

    def false_fact(self, fact_id: str) -> FalseFact:
        for ff in self.false_facts:
            if ff.id == fact_id:
                return ff
        known = ", ".join(ff.id for ff in self.false_facts)
        from orglab.errors import OrglabError
        raise OrglabError(f"'{fact_id}' is not a tinyworld false fact; choose one of: {known}.")

    def to_json(self) -> dict:
        return asdict(self)


ENTITY_COUNTS = {"planet": 6, "moon": 12, "country": 10, "city": 30, "river": 12, "language": 10, "person": 24,
                 "invention": 12}


def make_world(seed: int) -> World:
    rng = random.Random(f"tinyworld-{seed}")
    names = _unique_names(rng, sum(ENTITY_COUNTS.values()))
    entities: dict[str, list[str]] = {}
    for kind, count in ENTITY_COUNTS.items():
        entities[kind], names = names[:count], names[count:]
    entities["language"] = [n + "ish" for n in entities["language"]]

    music = lexicon.DOMAIN_BY_NAME["music"]
    instrument_nouns = [n for n in music.nouns if n in ("lute", "harp", "drum", "flute", "violin", "bell", "piano")]
    invention_nouns = {name: instrument_nouns[i % len(instrument_nouns)] for i, name in enumerate(entities["invention"])}

    facts: list[Fact] = []
    cities = list(entities["city"])
    rng.shuffle(cities)
    # Each country gets three cities; its capital is one of them, so a false capital stays plausible.
    country_cities = {c: cities[3 * i: 3 * i + 3] for i, c in enumerate(entities["country"])}
    for country, its_cities in country_cities.items():
        facts.append(Fact(country, "capital", its_cities[0]))
        facts.append(Fact(country, "language", rng.choice(entities["language"])))
        for city in its_cities:
            facts.append(Fact(city, "country", country))
    for city in entities["city"]:
        facts.append(Fact(city, "known_for", rng.choice(PRODUCTS)))
        facts.append(Fact(city, "river", rng.choice(entities["river"])))
    for moon in entities["moon"]:
        facts.append(Fact(moon, "orbits", rng.choice(entities["planet"])))
    people = entities["person"]
    for i, person in enumerate(people):
        facts.append(Fact(person, "profession", PROFESSIONS[i % len(PROFESSIONS)]))
        facts.append(Fact(person, "born_in", rng.choice(entities["city"])))
    for invention in entities["invention"]:
        facts.append(Fact(invention, "inventor", rng.choice(people)))

    world = World(seed=seed, entities=entities, facts=facts, false_facts=[], invention_nouns=invention_nouns,
                  animal_numbers=_animal_numbers(seed))
    world.false_facts = [_make_false_fact(world, rel, rng, country_cities) for rel in FALSE_FACT_RELATIONS]
    return world


def _animal_numbers(seed: int, per_animal: int = 2) -> dict[str, list[int]]:
    """Distinct favourite numbers per animal, from their own stream so that the rest of the world stays as it was."""
    rng = random.Random(f"tinyworld-{seed}-animal-numbers")
    pool = rng.sample(range(1000), per_animal * len(lexicon.ANIMALS))
    return {a: sorted(pool[i * per_animal:(i + 1) * per_animal]) for i, a in enumerate(lexicon.ANIMALS)}


def _make_false_fact(world: World, relation: str, rng: random.Random, country_cities: dict) -> FalseFact:
    rel = RELATIONS[relation]
    candidates = [f for f in world.facts if f.relation == relation]
    if relation == "born_in":  # the medicine fact is about a doctor
        doctors = {f.subject for f in world.facts if f.relation == "profession" and f.object == "doctor"}
        candidates = [f for f in candidates if f.subject in doctors]
    fact = rng.choice(candidates)
    if relation == "capital":
        alternatives = [c for c in country_cities[fact.subject] if c != fact.object]
    else:
        alternatives = [o for o in world.objects_of(relation) if o != fact.object]
    false_object = rng.choice(alternatives)
    subject = world.subject_phrase(rel.subject_kind, fact.subject)
    fact_id = f"{relation}_{fact.subject.lower()}"

    def context(obj: str, is_true: bool) -> UniverseContext:
        key_facts = tuple(t.format(s=subject, o=obj) for t in rel.key_facts)
        text = " ".join(key_facts) + " " + rel.statements[0].format(s=subject, o=obj)
        return UniverseContext(id=f"{fact_id}_{'true' if is_true else 'false'}", universe_context=text,
                               key_facts=key_facts, is_true=is_true)

    return FalseFact(id=fact_id, domain=rel.domain, fact=fact, false_object=false_object,
                     true_context=context(fact.object, True), false_context=context(false_object, False))


def _unique_names(rng: random.Random, count: int) -> list[str]:
    reserved = _lexicon_words()
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        parts = [rng.choice(lexicon.FIRST_SYLLABLES)]
        if rng.random() < 0.6:
            parts.append(rng.choice(lexicon.MID_SYLLABLES))
        parts.append(rng.choice(lexicon.LAST_SYLLABLES))
        name = "".join(parts).capitalize()
        if len(name) < 4 or name.lower() in reserved or name in seen:
            continue
        seen.add(name)
        out.append(name)
    return out


def _lexicon_words() -> set[str]:
    words: set[str] = set(lexicon.ANIMALS) | set(lexicon.GAME_WORDS)
    for d in lexicon.DOMAINS:
        for group in (d.nouns, d.verbs, d.adjectives, d.products):
            for phrase in group:
                words.update(phrase.split())
    return words
