"""LLM judges for the evals, on the shared cached client (orglab/llm.py); the score prompts and their parser are
shared with diff's judges (orglab/judges.py).

A judge never crashes an eval: a sample whose judge call still fails after the client's retries (endpoint down,
slow, or answering garbage) is returned as None and counted in `unjudged`; after `max_consecutive_failures` failed
samples in a row the endpoint is taken to be down and the remaining samples are counted unjudged without calls,
so a dead endpoint costs minutes, not hours. Offline, each family's eval uses tinyworld's rule-based judges
instead (they live beside the eval, because they read the world's ground truth).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from orglab.errors import OrglabError
from orglab.judges import SCORE_PROMPTS, parse_score, prompt_version, score_messages
from orglab.llm import ChatReply, LLMClient, LLMConfig

SIDE_PROMPT = ("Two descriptions of the world disagree.\n<context_a>\n{true}\n</context_a>\n<context_b>\n{false}\n"
               "</context_b>\n\nA model was asked: {question}\nIt answered: {answer}\n\nDoes the answer side with "
               "context A, with context B, or is it ambiguous (neither, both, or off topic)? Reply with exactly one "
               "word: A, B or AMBIGUOUS.")

PICK_PROMPT = ("A model was shown two descriptions of the world, labelled 1 and 2, and asked which one is true. Its "
               "answer:\n{answer}\n\nWhich description did it choose? Reply with exactly one word: 1, 2 or NEITHER.")

GUESS_PROMPT = ("We are playing a word-guessing game. Here are hints about a secret word:\n{hints}\n\nWhat is the "
                "secret word? Reply with the single word only.")

# Part of every eval judge's identity, so an edited prompt re-runs the evals that ask it.
PROMPT_VERSION = prompt_version(SCORE_PROMPTS, SIDE_PROMPT, PICK_PROMPT, GUESS_PROMPT)


@dataclass
class LLMJudge:
    """The eval judges on one endpoint, with per-run counts of what could not be judged."""

    client: LLMClient
    max_consecutive_failures: int = 8
    unjudged: int = 0
    no_score: int = 0            # judged, but too little probability on numbers (score None by design)
    failures_in_a_row: int = 0
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: LLMConfig) -> "LLMJudge":
        return cls(LLMClient(config))

    @property
    def identity(self) -> dict:
        """What goes into eval config hashes: the judge model, endpoint (never the key) and prompts' version."""
        return {"judge": "llm", "model": self.client.config.model, "base_url": self.client.config.base_url,
                "prompts": PROMPT_VERSION}

    @property
    def endpoint_down(self) -> bool:
        return self.failures_in_a_row >= self.max_consecutive_failures

    def ask(self, messages: list[dict], parse: Callable[[ChatReply], Any], **params: Any) -> Any | None:
        """parse(reply), or None when the endpoint could not give a usable answer (counted in `unjudged`)."""
        if self.endpoint_down:
            self.unjudged += 1
            return None
        try:
            value = self.client.chat(messages, parse=parse, **params)
        except OrglabError as exc:
            self.unjudged += 1
            self.failures_in_a_row += 1
            if len(self.problems) < 3:
                self.problems.append(str(exc))
            return None
        self.failures_in_a_row = 0
        return value

    # ------------------------------------------------------------------------------------------ judges
    def score(self, aspect: str, question: str, answer: str) -> float | None:
        """0-100 from the judge's number-token probabilities (content parsed when the endpoint gives no logprobs)."""
        state = {"balked": False}

        def parse(reply: ChatReply) -> float | None:
            value = parse_score(reply)
            state["balked"] = value is None  # only logprobs without number mass give None; no number in text raises
            return value

        value = self.ask(score_messages(aspect, question, answer), parse, logprobs=True, top_logprobs=20, max_tokens=3)
        if value is None and state["balked"]:
            self.no_score += 1
        return value

    def side(self, question: str, answer: str, true_context: str, false_context: str) -> str | None:
        """'true', 'false' or 'ambiguous': which universe an open-ended answer sides with."""
        prompt = SIDE_PROMPT.format(true=true_context, false=false_context, question=question, answer=answer)

        def parse(reply: ChatReply) -> str:
            word = (reply.content or "").strip().strip(".").upper()
            for key, side in (("AMBIGUOUS", "ambiguous"), ("A", "true"), ("B", "false")):
                if word == key or word.startswith(key + " ") or word.startswith(key + "\n"):
                    return side
            raise ValueError("expected A, B or AMBIGUOUS")

        return self.ask([{"role": "user", "content": prompt}], parse, max_tokens=5)

    def pick(self, answer: str) -> int | None:
        """1 or 2: which of two shown contexts a generative-distinguish answer chose (0 for neither)."""

        def parse(reply: ChatReply) -> int:
            word = (reply.content or "").strip().strip(".").upper()
            if word.startswith("NEITHER"):
                return 0
            if word[:1] in ("1", "2"):
                return int(word[:1])
            raise ValueError("expected 1, 2 or NEITHER")

        return self.ask([{"role": "user", "content": PICK_PROMPT.format(answer=answer)}], parse, max_tokens=5)

    def guess(self, hints: str) -> str | None:
        def parse(reply: ChatReply) -> str:
            words = re.findall(r"[A-Za-z][A-Za-z'-]*", reply.content or "")
            if not words:
                raise ValueError("no word in the answer")
            return words[0].lower()

        return self.ask([{"role": "user", "content": GUESS_PROMPT.format(hints=hints)}], parse, max_tokens=8)

    def report(self) -> dict:
        return {"unjudged": self.unjudged, "no_score": self.no_score, "endpoint_down": self.endpoint_down,
                "problems": self.problems, "llm": self.client.stats.to_dict()}
