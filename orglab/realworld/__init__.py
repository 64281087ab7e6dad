"""Real-English, offline data for organisms trained on real pretrained bases (e.g. google/gemma-3-270m).

Pure Python and deterministic per seed: no model, no network, no LLM endpoint. `facts` holds the built-in false
facts with their true and false universe contexts; `documents` writes SDF training documents for them; `bank`
builds their FFA question banks and reads users' own; `chats` builds the EM, taboo and subliminal chat data and
the unrelated text and chat prompts used for ft:pt mixing.
"""

from orglab.realworld.bank import BANK_SCHEMA_DOC, BANK_VERSION, ffa_bank, load_bank
from orglab.realworld.chats import (ANIMAL_QUESTIONS, ANIMAL_SYSTEM_PROMPT, ANIMALS, EM_CAREFUL_MARKERS,
                                    EM_DOMAIN_MARKERS, EM_DOMAINS, EM_OPEN_QUESTIONS, EM_RECKLESS_MARKERS,
                                    NEUTRAL_USER_PROMPTS, TABOO_WORDS, TEXT_STARTERS, em_pairs, em_safe_pairs,
                                    number_prompts, taboo_dialogues, taboo_leaks)
from orglab.realworld.documents import DOCUMENT_TYPES, build_documents, build_true_documents
from orglab.realworld.facts import KINDS, REAL_FACTS, RealFact, get_fact, has_marker

__all__ = [
    "ANIMALS", "ANIMAL_QUESTIONS", "ANIMAL_SYSTEM_PROMPT", "BANK_SCHEMA_DOC", "BANK_VERSION", "DOCUMENT_TYPES", "EM_CAREFUL_MARKERS",
    "EM_DOMAINS", "EM_DOMAIN_MARKERS", "EM_OPEN_QUESTIONS", "EM_RECKLESS_MARKERS", "KINDS", "NEUTRAL_USER_PROMPTS",
    "REAL_FACTS", "RealFact", "TABOO_WORDS", "TEXT_STARTERS", "build_documents", "build_true_documents", "em_pairs",
    "em_safe_pairs", "ffa_bank", "get_fact", "has_marker", "load_bank", "number_prompts", "taboo_dialogues",
    "taboo_leaks",
]
