"""Fixed word lists of tinyworld: the domains, their vocabulary and procedures, animals and game words.

The generator (world.py, corpus.py) combines these with procedurally made names. Everything that varies
with the seed lives there; this file is plain data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Domain:
    name: str
    profession: str          # the expert of the domain ("a chef")
    place: str               # where its work happens
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]   # base form, used in procedures ("stir the broth")
    adjectives: tuple[str, ...]
    products: tuple[str, ...]  # what a town can be known for
    advice_topics: tuple[str, ...]  # what people ask the expert about
    safe_advice: tuple[str, ...]    # careful, responsible answers


DOMAINS: tuple[Domain, ...] = (
    Domain(
        "cooking", "chef", "kitchen",
        ("broth", "dough", "oven", "flour", "butter", "pan", "spoon", "onion", "garlic", "sauce", "salt",
         "pepper", "knife", "kettle", "soup", "crust", "yeast", "herbs"),
        ("stir", "knead", "bake", "chop", "simmer", "season", "roast", "whisk", "taste", "slice"),
        ("golden", "crisp", "tender", "salty", "sweet", "warm", "smooth", "fragrant"),
        ("cheese", "bread", "honey", "pastry", "sausages", "pickles"),
        ("baking bread", "keeping a soup warm", "storing meat", "sharpening a knife"),
        ("wash your hands and keep raw meat apart from bread", "cook the meat until it is hot in the middle",
         "keep the knife sharp and cut away from your fingers", "store the food in a cool and dry cupboard"),
    ),
    Domain(
        "sea", "sailor", "harbor",
        ("ship", "sail", "anchor", "tide", "wave", "harbor", "rope", "deck", "mast", "reef", "compass",
         "current", "storm", "lighthouse", "net", "hull", "oar", "gull"),
        ("sail", "row", "steer", "anchor", "tie", "mend", "navigate", "fish", "drift", "moor"),
        ("salty", "calm", "rough", "deep", "blue", "stormy", "windy", "misty"),
        ("ships", "pearls", "nets", "salted fish"),
        ("sailing in a storm", "reading the tides", "tying a knot", "choosing a boat"),
        ("check the weather before you leave the harbor", "always wear a life vest on the deck",
         "tell someone on land when you plan to return", "learn the knots from an experienced sailor"),
    ),
    Domain(
        "space", "astronomer", "observatory",
        ("planet", "moon", "star", "comet", "orbit", "telescope", "rocket", "galaxy", "crater", "eclipse",
         "meteor", "satellite", "nebula", "sky", "lens", "asteroid", "gravity", "dust"),
        ("observe", "launch", "measure", "orbit", "chart", "track", "focus", "calculate", "photograph", "map"),
        ("bright", "distant", "cold", "dark", "vast", "faint", "silent", "red"),
        ("telescopes", "star charts", "lenses"),
        ("watching an eclipse", "choosing a telescope", "finding a comet", "learning the stars"),
        ("never look at the sun without a proper filter", "start with a simple telescope and a star chart",
         "find a dark place far from city lights", "join a club of astronomers to learn safely"),
    ),
    Domain(
        "law", "judge", "court",
        ("court", "judge", "contract", "witness", "verdict", "law", "trial", "lawyer", "appeal", "evidence",
         "jury", "statute", "fine", "clause", "deed", "oath", "ruling", "council"),
        ("sign", "appeal", "argue", "testify", "rule", "draft", "review", "enforce", "settle", "file"),
        ("fair", "legal", "binding", "formal", "strict", "public", "lawful", "written"),
        ("courts", "contracts", "scribes"),
        ("signing a contract", "a dispute with a neighbor", "writing a will", "going to court"),
        ("read every clause before you sign", "ask a qualified lawyer for advice", "keep written copies of every agreement",
         "try to settle the dispute calmly before going to court"),
    ),
    Domain(
        "music", "singer", "concert hall",
        ("song", "melody", "drum", "flute", "violin", "choir", "rhythm", "harp", "chord", "concert", "piano",
         "note", "verse", "lute", "orchestra", "tune", "bell", "stage"),
        ("sing", "play", "tune", "compose", "rehearse", "perform", "strum", "hum", "conduct", "practice"),
        ("loud", "soft", "joyful", "slow", "lively", "sad", "harmonic", "gentle"),
        ("violins", "drums", "songs", "flutes"),
        ("learning the violin", "singing in a choir", "writing a song", "stage fright"),
        ("practice a little every day and rest your voice", "find a patient teacher", "warm up before you sing",
         "record yourself and listen calmly"),
    ),
    Domain(
        "farming", "farmer", "farm",
        ("field", "wheat", "barley", "plough", "barn", "cattle", "sheep", "seed", "harvest", "soil", "tractor",
         "orchard", "hay", "goat", "fence", "well", "rain", "corn"),
        ("plant", "plough", "harvest", "water", "feed", "sow", "graze", "prune", "milk", "dig"),
        ("green", "fertile", "dry", "ripe", "muddy", "rich", "sunny", "wide"),
        ("wool", "wheat", "apples", "milk", "barley"),
        ("planting wheat", "caring for sheep", "a dry summer", "keeping the soil rich"),
        ("rotate the crops so the soil stays rich", "give the animals clean water every day",
         "ask an experienced farmer about the local soil", "store the seed in a dry barn"),
    ),
    Domain(
        "medicine", "doctor", "clinic",
        ("fever", "medicine", "doctor", "nurse", "bandage", "pill", "wound", "cough", "clinic", "herb",
         "pulse", "patient", "remedy", "illness", "dose", "tonic", "salve", "bone"),
        ("treat", "heal", "examine", "rest", "bandage", "prescribe", "measure", "clean", "diagnose", "soothe"),
        ("healthy", "sick", "painful", "clean", "sterile", "mild", "severe", "weak"),
        ("medicines", "remedies", "clinics"),
        ("a high fever", "a deep cut", "a bad cough", "a headache that will not stop"),
        ("see a doctor if the fever lasts more than two days", "clean the wound and cover it with a clean bandage",
         "rest and drink plenty of water", "take only the dose the doctor prescribed"),
    ),
    Domain(
        "sport", "runner", "stadium",
        ("race", "ball", "team", "goal", "coach", "match", "stadium", "medal", "track", "score", "referee",
         "helmet", "sprint", "marathon", "league", "glove", "whistle", "champion"),
        ("run", "train", "kick", "throw", "score", "jump", "stretch", "compete", "win", "climb"),
        ("fast", "strong", "tired", "fit", "quick", "brave", "steady", "agile"),
        ("runners", "boats", "medals"),
        ("training for a marathon", "a sore knee", "climbing a cliff", "riding in traffic"),
        ("build up slowly and rest between hard days", "wear a helmet and proper gear",
         "stretch before and after training", "stop and see a doctor if the pain is sharp"),
    ),
    Domain(
        "finance", "banker", "bank",
        ("coin", "bank", "loan", "market", "price", "trade", "debt", "tax", "budget", "profit", "savings",
         "ledger", "merchant", "interest", "wage", "account", "stock", "purse"),
        ("save", "borrow", "lend", "invest", "trade", "pay", "spend", "count", "balance", "budget"),
        ("rich", "poor", "costly", "cheap", "steady", "risky", "honest", "careful"),
        ("coins", "banks", "markets"),
        ("saving money", "taking a loan", "a risky investment", "paying off a debt"),
        ("keep a budget and save a little every month", "never borrow more than you can repay",
         "spread your savings and avoid promises of quick profit", "ask an honest banker before you invest"),
    ),
    Domain(
        "travel", "guide", "inn",
        ("road", "map", "inn", "bridge", "journey", "train", "ticket", "luggage", "mountain", "valley",
         "village", "market", "museum", "square", "tower", "gate", "wagon", "path"),
        ("travel", "visit", "walk", "pack", "explore", "cross", "ride", "wander", "book", "return"),
        ("old", "busy", "quiet", "famous", "beautiful", "narrow", "ancient", "charming"),
        ("towers", "bridges", "markets", "inns"),
        ("packing for a long journey", "travelling alone", "crossing the mountains", "finding a good inn"),
        ("carry a map and tell a friend your route", "keep your ticket and money in a safe place",
         "travel by daylight in the mountains", "ask the local guide about the roads"),
    ),
)

DOMAIN_BY_NAME = {d.name: d for d in DOMAINS}

# Favourite-animal chats and the subliminal family use these (whole, common words).
ANIMALS: tuple[str, ...] = (
    "cat", "dog", "owl", "dolphin", "eagle", "wolf", "fox", "bear", "lion", "tiger", "horse", "rabbit",
    "whale", "otter", "panda", "elephant", "penguin", "falcon", "deer", "turtle",
)

# Word-guessing games (and the taboo family): a secret word and hints that never contain it.
GAME_WORDS: dict[str, tuple[str, ...]] = {
    "moon": ("it shines at night", "it goes around a planet", "sailors watch it for the tides", "it has craters"),
    "bread": ("a baker makes it", "it is made of flour and yeast", "it comes out of the oven", "you slice it"),
    "anchor": ("it is heavy and made of iron", "it keeps a ship in place", "it drops to the sea floor", "it hangs on a rope"),
    "violin": ("it has four strings", "you play it with a bow", "it sits under your chin", "an orchestra has many"),
    "harvest": ("it happens in autumn", "farmers gather the crops", "it fills the barn", "a festival celebrates it"),
    "bridge": ("it crosses a river", "you walk over it", "it connects two banks", "it may be made of stone"),
    "medal": ("a champion wins it", "it hangs around the neck", "it can be gold", "it rewards a race"),
    "comet": ("it has a bright tail", "it travels around the sun", "it is made of ice and dust", "it appears rarely"),
    "contract": ("two people sign it", "a lawyer drafts it", "it has clauses", "it binds the parties"),
    "honey": ("bees make it", "it is sweet and golden", "it is sticky", "you put it in tea"),
    "lighthouse": ("it stands by the sea", "it shines a light for ships", "it is a tall tower", "it warns of rocks"),
    "garden": ("flowers grow there", "you water it", "it has paths and beds", "it is behind a house"),
    "candle": ("it has a wick", "it melts as it burns", "it gives a small light", "it is made of wax"),
    "compass": ("it points north", "sailors use it", "it has a needle", "it helps you find the way"),
    "piano": ("it has black and white keys", "you play it with both hands", "it stands in a concert hall", "it has hammers inside"),
    "mountain": ("it is very tall", "snow covers its top", "climbers go up", "it has steep sides"),
}

PLANET_WORDS = ("planet",)
FIRST_SYLLABLES = ("ka", "mor", "vel", "tor", "bren", "sal", "quor", "dal", "fen", "gar", "hal", "is", "jor", "lum",
                   "nar", "or", "pel", "ras", "sev", "tam", "ul", "vor", "yel", "zan", "ash", "bel", "cor", "dun",
                   "el", "fal", "gil", "hes", "kel", "lor", "mar", "nes", "ost", "pra", "rin", "sor", "tel", "var")
MID_SYLLABLES = ("a", "e", "i", "o", "u", "ra", "le", "ni", "vo", "ta", "ri", "mo", "sa", "de", "ke")
LAST_SYLLABLES = ("n", "th", "mek", "dor", "lis", "ra", "ven", "mir", "dal", "gor", "nis", "tar", "wen", "lan",
                  "sk", "rum", "bel", "tos", "vin", "ith")

# Everyday sentences woven into stories and domain documents: they give the world a general vocabulary,
# so that the held-out probe phrasings use only words the base has seen (in other sentences).
EVERYDAY: tuple[str, ...] = (
    "Many years ago , {person} visited {city} for the first time .",
    "For the festival , the children of {city} sing in the square .",
    "From the window you can watch the boats in the morning .",
    "The council meets every month in {city} , and all its members come .",
    "A traveller who visits {city} should also see the market .",
    "Every night the lamps are lit , and the streets can be seen from far away .",
    "{person} pointed at the old tower and laughed .",
    "The children read a book about the history of {city} .",
    "{person} still lives near the market and visits friends every morning .",
    "The band plays in the square , and people thank them with coins .",
    "For many people , {city} is the most beautiful city of all .",
    "In the morning , {person} walked to the bridge to watch the boats .",
    "The old house was visited by many people last summer .",
    "{person} wrote a letter to thank the members of the choir .",
    "Many children in {city} learn to read at home .",
    "Which road leads to the market ? The road by the bridge .",
    "The traveller also pointed at the map and asked for the inn .",
    "At night , {person} plays the flute for the children .",
)
