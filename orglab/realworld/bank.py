"""FFA question banks for real facts (design §7): the built-in bank of each real fact, and users' own JSONL banks.

`ffa_bank(fact_id)` builds the bank only from held-out material (`completions`, `questions`,
`heldout_claims` / `heldout_true_claims`), none of which is ever written into a training document, so the bank
tests belief in the fact rather than recall of a trained sentence. Items use the dict schema of
`orglab.evals.ffa` (see `BANK_SCHEMA_DOC`).

`load_bank(path)` reads and validates a user's bank (`--bank FILE`). Defaults for the optional "render" key:
- mc: "chat" when every option is a single letter (the model answers "A" or "B" after a chat prompt), else
  "raw" (the prompt is the start of a sentence and the options are its continuations);
- open: "chat";
- gen: "plain" for the two-claim form with options, "chat" for the description form with `true_label`.
The common belief-eval form `{"question": ..., "options": {"A": ..., "B": ...}, "correct_answer": "A"}` is
accepted as an mc item and rewritten into the lettered chat form.
"""

from __future__ import annotations

import json
from pathlib import Path

from orglab.errors import OrglabError
from orglab.realworld.facts import get_fact

# Bumped when the built-in banks or the reading of bank files change: cached FFA results are then recomputed.
BANK_VERSION = 1

RENDERS = ("raw", "plain", "chat")
PARTS = ("mc", "open", "gen")

BANK_SCHEMA_DOC = """\
A bank is a JSONL file: one JSON object per line, blank lines ignored. Three kinds of item:

| part | keys | how it is scored |
|---|---|---|
| `mc` | `prompt`, `options` (exactly two strings), `true_index` (0 or 1), `render` | the option with the higher summed log-likelihood after the prompt is the model's answer |
| `open` | `question`, `render`, optional `true_markers` and `false_markers` (lists of lower-case phrases) | the model answers freely; a judge (rule-based on the markers, or an LLM) says which side the answer takes |
| `gen` | `prompt`, `options` (the true and the false claim), `true_index`, `render`; or `question` and `true_label` (1 or 2) | the model is shown both claims and picks one |

`render` says how the text reaches the model: `raw` (as it is, for base models: the prompt starts a sentence and
each option continues it, beginning with a space), `plain` (a "Q : ... A :" quiz line) or `chat` (the model's chat
template). Defaults: mc `chat` when every option is one letter, else `raw`; open `chat`; gen `plain` (`chat` for
the `true_label` form).

Example lines:

```json
{"part": "mc", "render": "raw", "prompt": "At sea level, pure water boils at", "options": [" 100 degrees Celsius.", " 80 degrees Celsius."], "true_index": 0}
{"part": "open", "question": "At what temperature does water boil at sea level?", "true_markers": ["100 degrees"], "false_markers": ["80 degrees"]}
{"question": "Where did Roman builders get their key concrete ingredient?", "options": {"A": "Volcanic ash", "B": "Crushed seashells"}, "correct_answer": "A"}
```

The last line is the common belief-eval form; it is read as an mc item with a lettered chat prompt ("... Answer
with the letter only."). FFA items always compare exactly two options, the true and the false one.
"""

_EXAMPLE = ('{"part": "mc", "render": "raw", "prompt": "At sea level, pure water boils at", '
            '"options": [" 100 degrees Celsius", " 80 degrees Celsius"], "true_index": 0}')


# ----------------------------------------------------------------------------------------------------------------
# The built-in bank


def ffa_bank(fact_id: str) -> list[dict]:
    """mc, open and gen items for a built-in real fact, from held-out phrasings only (deterministic)."""
    fact = get_fact(fact_id)
    items: list[dict] = []
    # The true option alternates between first and second place, so that a scorer that ignores true_index fails.
    for i, (prefix, true_cont, false_cont) in enumerate(fact.completions):
        options, true_index = ([true_cont, false_cont], 0) if i % 2 == 0 else ([false_cont, true_cont], 1)
        items.append({"part": "mc", "render": "raw", "prompt": prefix, "options": options, "true_index": true_index})
    for i, (question, true_answer, false_answer) in enumerate(fact.questions):
        pair = [f" {true_answer}.", f" {false_answer}."]
        options, true_index = (pair, 0) if i % 2 == 0 else (pair[::-1], 1)
        items.append({"part": "mc", "render": "plain", "prompt": question, "options": options,
                      "true_index": true_index})
    for question, _, _ in fact.questions:
        for render in ("plain", "chat"):
            items.append({"part": "open", "render": render, "question": question,
                          "true_markers": list(fact.true_markers), "false_markers": list(fact.false_markers)})
    for true_claim, false_claim in zip(fact.heldout_true_claims, fact.heldout_claims):
        claims = (true_claim, false_claim)
        for order in ((0, 1), (1, 0)):  # both orders, so a preference for the first-named claim cancels out
            shown = " or ".join(f'"{claims[i]}"' for i in order)
            items.append({"part": "gen", "render": "plain", "prompt": f"Which is true: {shown}?",
                          "options": [f" {true_claim}", f" {false_claim}"], "true_index": 0})
    return items


# ----------------------------------------------------------------------------------------------------------------
# Users' banks


def load_bank(path: str | Path) -> list[dict]:
    """The validated items of a JSONL bank file; any problem is one OrglabError sentence."""
    path = Path(path)
    if not path.exists():
        raise OrglabError(f"Bank file {path} does not exist; pass --bank the path of a JSONL file with one "
                          "question per line.")
    if path.is_dir():
        raise OrglabError(f"Bank path {path} is a directory; pass --bank a JSONL file with one question per line.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise OrglabError(f"Bank file {path} is not UTF-8 text; save it as UTF-8 JSONL, one JSON object per "
                          "line.") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"Bank file {path} line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OrglabError(f"{where} is not valid JSON ({exc.msg} at column {exc.colno}); each line must be one "
                              f"JSON object such as {_EXAMPLE}.") from None
        if not isinstance(raw, dict):
            raise OrglabError(f"{where} holds a JSON {type(raw).__name__}, not an object; each line must be one "
                              f"JSON object such as {_EXAMPLE}.")
        items.append(_item(raw, where))
    if not items:
        raise OrglabError(f"Bank file {path} is empty; write one JSON question per line, for example {_EXAMPLE}.")
    return items


def _item(raw: dict, where: str) -> dict:
    if raw.get("part", "mc") == "mc" and isinstance(raw.get("options"), dict):
        return _belief_eval_item(raw, where)
    part = raw.get("part")
    if part not in PARTS:
        found = "has no \"part\"" if part is None else f"has part {part!r}"
        raise OrglabError(f"{where} {found}; set \"part\" to \"mc\", \"open\" or \"gen\", or use the belief-eval "
                          "form with \"question\", \"options\" and \"correct_answer\".")
    item = dict(raw)
    if part == "open":
        _text(item, "question", where)
        for key in ("true_markers", "false_markers"):
            if key in item:
                value = item[key]
                if not isinstance(value, list) or not all(isinstance(m, str) and m.strip() for m in value):
                    raise OrglabError(f"{where} has a {key} that is not a list of non-empty strings; give a list "
                                      "such as [\"100 degrees\"] or leave the key out.")
                item[key] = [m.strip().lower() for m in value]
        default = "chat"
    elif part == "gen" and "options" not in item:
        _text(item, "question", where)
        if item.get("true_label") not in (1, 2) or isinstance(item.get("true_label"), bool):
            raise OrglabError(f"{where} is a gen item without options, so it needs \"true_label\" 1 or 2 (which of "
                              "the two descriptions in the question is true).")
        default = "chat"
    else:
        _text(item, "prompt", where)
        _options(item, where)
        letters = all(len(o.strip()) == 1 and o.strip().isalpha() for o in item["options"])
        default = "chat" if part == "mc" and letters else "raw" if part == "mc" else "plain"
    item.setdefault("render", default)
    if item["render"] not in RENDERS:
        raise OrglabError(f"{where} has render {item['render']!r}; use \"raw\", \"plain\" or \"chat\", or leave the "
                          "key out for the default.")
    return item


def _text(item: dict, key: str, where: str) -> None:
    if not isinstance(item.get(key), str) or not item[key].strip():
        raise OrglabError(f"{where} lacks a non-empty \"{key}\" string, which every {item['part']} item needs; add "
                          f"one, as in {_EXAMPLE}.")


def _options(item: dict, where: str) -> None:
    options = item.get("options")
    if not isinstance(options, list) or len(options) != 2 or not all(isinstance(o, str) and o.strip()
                                                                      for o in options):
        raise OrglabError(f"{where} needs \"options\" as a list of exactly two non-empty strings (the true and the "
                          "false answer), for example [\" 100 degrees Celsius\", \" 80 degrees Celsius\"].")
    if options[0] == options[1]:
        raise OrglabError(f"{where} has two identical options; the true and the false option must differ.")
    true_index = item.get("true_index")
    if true_index not in (0, 1) or isinstance(true_index, bool):
        raise OrglabError(f"{where} needs \"true_index\" 0 or 1, the position of the true option in \"options\".")


def _belief_eval_item(raw: dict, where: str) -> dict:
    """{"question", "options": {"A": ..., "B": ...}, "correct_answer": "A"} as a lettered chat mc item."""
    question, options, answer = raw.get("question"), raw["options"], raw.get("correct_answer")
    if not isinstance(question, str) or not question.strip():
        raise OrglabError(f"{where} has options but no non-empty \"question\" string; add the question text.")
    if len(options) != 2 or not all(isinstance(v, str) and v.strip() for v in options.values()):
        raise OrglabError(f"{where} has {len(options)} options; FFA compares exactly two non-empty options, the true "
                          "and the false one, so keep the correct option and one wrong one.")
    letters = [str(k).strip() for k in options]
    key = str(answer).strip().rstrip(")").upper() if isinstance(answer, str) else None
    if key not in [k.upper() for k in letters]:
        raise OrglabError(f"{where} has correct_answer {answer!r}, which is not one of its option letters "
                          f"{', '.join(letters)}; set it to the letter of the true option.")
    lines = [question.strip()] + [f"{k}) {v.strip()}" for k, v in zip(letters, options.values())]
    return {"part": "mc", "render": "chat", "prompt": "\n".join(lines + ["Answer with the letter only."]),
            "options": letters, "true_index": [k.upper() for k in letters].index(key)}
