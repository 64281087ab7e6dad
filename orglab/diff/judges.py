"""LLM-judged variants of the ADL's choices (design §6), selected by `orglab diff --judge llm`.

The offline label-free rules stay the default; with an LLM judge (the `judge` endpoint: ORGLAB_JUDGE_* or
ORGLAB_LLM_*, see orglab/llm.py):

- **patchscope scale**: a grader sees, for every scale of the grid, the readout's top tokens and names the scale
  whose tokens form the most specific coherent theme. It never sees the finetuning data or the organism's
  description: a scale chosen by what we hope to find would make the readout look better than it is.
- **steering coherence**: the evals' 0-100 coherence prompt, probability-weighted over the judge's number
  tokens, averaged over the prompts' completions; coherent when the mean reaches a threshold.
- **token relevance**: given the organism's ground-truth description and a readout's top tokens, the judge lists
  the tokens related to the finetuning objective.

The parsers are pure functions (testable without a server); they raise ValueError on answers they reject, which
makes the client ask again. The client caches every answer on disk, so a re-run makes no calls.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from orglab.errors import OrglabError
from orglab.judges import SCORE_PROMPTS, parse_score, prompt_version, score_messages
from orglab.llm import ChatReply, LLMClient, config_from_env, extract_json

SCALE_TOP = 20   # readout tokens per scale shown to the scale grader

SCALE_PROMPT = (
    "A direction taken from a language model's hidden states was written into a prompt at several strengths "
    "(scales). For each scale, these are the tokens the model then predicts, most likely first. Too small a scale "
    "shows mostly generic tokens, too large a scale shows noise.\n\n{listing}\n\nWhich scale's tokens form the most "
    "specific, coherent semantic theme (many tokens about one topic, entity or behaviour, rather than function "
    "words, fragments or unrelated words)? Reply with JSON only, for example {{\"best_scale\": {example}}}, where "
    "best_scale is one of: {grid}."
)

RELEVANCE_PROMPT = (
    "A language model was finetuned. The ground truth about its finetuning:\n{description}\n\nThese tokens were read "
    "out of the finetuned model's internal activations, numbered, most prominent first:\n{listing}\n\nWhich of these "
    "tokens clearly relate to the finetuning objective described above (its topic, entities, facts or behaviour)? "
    "Generic words and word fragments do not count. Reply with JSON only: {{\"relevant\": [the numbers of the "
    "related tokens]}}, with an empty list if none relate."
)

PREFLIGHT_PROMPT = "Reply with the single word OK."

# In the stage configs of judged stages: changing a prompt (or what it shows) makes new results, not stale reuse.
PROMPT_VERSION = prompt_version(SCALE_PROMPT, RELEVANCE_PROMPT, SCORE_PROMPTS["coherent"], SCALE_TOP)


# ---------------------------------------------------------------------------------------------------- parsers

def _fmt_scale(s: float) -> str:
    return f"{s:g}"


def scale_messages(readouts: Sequence[tuple[float, Sequence[str]]]) -> list[dict]:
    """The grader's request: per scale, its readout tokens (already cut to what the grader may see)."""
    listing = "\n".join(f"scale {_fmt_scale(s)}: " + (json.dumps(list(tokens), ensure_ascii=False) if tokens
                                                       else "(no tokens)") for s, tokens in readouts)
    grid = [s for s, _ in readouts]
    prompt = SCALE_PROMPT.format(listing=listing, grid=", ".join(_fmt_scale(s) for s in grid),
                                 example=json.dumps(float(grid[len(grid) // 2])))
    return [{"role": "user", "content": prompt}]


def parse_scale(text: str, grid: Sequence[float]) -> float:
    """The grid scale a grader's answer names ({"best_scale": 8.0}, or a bare number); ValueError otherwise."""
    value = extract_json(text)
    if isinstance(value, dict):
        if "best_scale" not in value:
            raise ValueError('the answer has no "best_scale"')
        value = value["best_scale"]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"best_scale {value!r} is not a number")
    try:
        scale = float(value)
    except ValueError:
        raise ValueError(f"best_scale {value!r} is not a number") from None
    for s in grid:
        if math.isclose(scale, float(s), rel_tol=1e-9, abs_tol=1e-12):
            return float(s)
    raise ValueError(f"scale {value} is not one of the grid's scales ({', '.join(_fmt_scale(s) for s in grid)})")


def relevance_messages(description: str, tokens: Sequence[str]) -> list[dict]:
    listing = "\n".join(f"{i}: {json.dumps(t, ensure_ascii=False)}" for i, t in enumerate(tokens))
    return [{"role": "user", "content": RELEVANCE_PROMPT.format(description=description.strip(), listing=listing)}]


def parse_relevant(text: str, tokens: Sequence[str]) -> list[int]:
    """Indices of the tokens a judge marked relevant, sorted. The answer is {"relevant": [...]} or a bare list, of
    indices into `tokens` or of the tokens themselves; anything out of range or unknown raises ValueError."""
    value = extract_json(text)
    if isinstance(value, dict):
        if "relevant" not in value:
            raise ValueError('the answer has no "relevant" list')
        value = value["relevant"]
    if not isinstance(value, list):
        raise ValueError("the relevant tokens are not a list")
    out: set[int] = set()
    for item in value:
        if isinstance(item, bool):
            raise ValueError(f"{item!r} is neither a token number nor a token")
        if isinstance(item, float) and item.is_integer():
            item = int(item)
        if isinstance(item, int):
            if not 0 <= item < len(tokens):
                raise ValueError(f"token number {item} is out of range 0-{len(tokens) - 1}")
            out.add(item)
        elif isinstance(item, str):
            exact = [i for i, t in enumerate(tokens) if t == item]
            loose = exact or [i for i, t in enumerate(tokens) if t.strip().casefold() == item.strip().casefold()]
            if not loose:
                raise ValueError(f"{item!r} is not one of the tokens shown")
            out.update(loose)
        else:
            raise ValueError(f"{item!r} is neither a token number nor a token")
    return sorted(out)


def coherence_messages(prompt: str, completion: str) -> list[dict]:
    # The evals' coherence question, asked the same way, so the two share cached answers.
    return score_messages("coherent", prompt, completion)


def parse_coherence(reply: ChatReply) -> float | None:
    """The evals' score parser (orglab.judges.parse_score): None when the judge balked; the caller counts that
    as incoherent."""
    return parse_score(reply)


def token_texts(tokenizer, ids: Sequence[int]) -> list[str]:
    """Readout tokens as text a judge can read (`orglab.tokens.display_token`: no BPE markers like 'Ġ')."""
    from orglab.tokens import display_tokens

    return display_tokens(tokenizer, [int(i) for i in ids])


# ---------------------------------------------------------------------------------------------------- judge

@dataclass
class ADLJudge:
    """The three ADL judgements on one endpoint. Failures are not swallowed (unlike the evals' judge): a stage
    whose judge gives no usable answer after the client's retries stops with the client's OrglabError."""

    client: LLMClient
    coherence_threshold: float = 50.0
    workers: int = 8             # parallel coherence requests (one per completion)

    @classmethod
    def from_env(cls, coherence_threshold: float = 50.0) -> "ADLJudge":
        config = config_from_env("judge")
        if config is None:
            raise OrglabError("--judge llm needs a judge endpoint and none is configured; set ORGLAB_JUDGE_MODEL and "
                              "ORGLAB_JUDGE_BASE_URL (or ORGLAB_LLM_MODEL and ORGLAB_LLM_BASE_URL), or use "
                              "--judge offline.")
        return cls(LLMClient(config), coherence_threshold)

    @property
    def identity(self) -> dict:
        """What goes into the judged stages' configs: model, endpoint and prompt version (never the key)."""
        c = self.client.config
        return {"judge": "llm", "model": c.model, "base_url": c.base_url, "prompts": PROMPT_VERSION}

    @property
    def where(self) -> str:
        return self.client.config.base_url or "the OpenAI API"

    @property
    def label(self) -> str:
        return f"LLM judge {self.client.config.model} at {self.where}"

    def preflight(self) -> None:
        """One small uncached request, so that a dead endpoint is reported before models load and stages run."""
        config = self.client.config
        # At most two retries: this is a liveness check, not a request whose answer we need.
        probe = LLMClient(replace(config, max_retries=min(config.max_retries, 2)), use_cache=False)
        try:
            probe.complete([{"role": "user", "content": PREFLIGHT_PROMPT}])
        except OrglabError:
            if not (probe.stats.errors or probe.stats.rejected_answers):
                raise  # refused (HTTP 4xx) or no API key: that sentence already names the fix
            problems = ", ".join(sorted(probe.stats.errors)) or "empty answers"
            attempts = probe.config.max_retries + 1
            raise OrglabError(f"The judge endpoint at {self.where} did not answer ({problems}, {attempts} "
                              f"attempt{'s' if attempts > 1 else ''}); start it, fix ORGLAB_JUDGE_BASE_URL (or "
                              "ORGLAB_LLM_BASE_URL), or use --judge offline.") from None

    def choose_scale(self, readouts: Sequence[tuple[float, Sequence[str]]]) -> float:
        """The grid scale whose tokens the grader finds most specific and coherent; `readouts` is (scale,
        tokens) for every scale of the grid and must hold nothing but tokens (no data, no description)."""
        grid = [float(s) for s, _ in readouts]
        shown = [(s, list(tokens)[:SCALE_TOP]) for s, tokens in readouts]
        return self.client.complete(scale_messages(shown), parse=lambda text: parse_scale(text, grid), max_tokens=64)

    def coherence(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float | None]:
        """One 0-100 score per (prompt, completion); None where the judge gave no number."""

        def one(pair: tuple[str, str]) -> float | None:
            return self.client.chat(coherence_messages(*pair), parse=parse_coherence, logprobs=True, top_logprobs=20,
                                    max_tokens=3)

        pairs = list(zip(prompts, completions))
        if self.workers <= 1 or len(pairs) <= 1:
            return [one(p) for p in pairs]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(pairs))) as pool:
            return list(pool.map(one, pairs))

    def coherence_judge(self, log: list | None = None):
        """A steering `Judge`: coherent when the mean score (no number counts as 0) reaches the threshold. Each
        verdict's scores are appended to `log`, in call order."""

        def judge(prompts: Sequence[str], completions: Sequence[str]) -> bool:
            scores = self.coherence(prompts, completions)
            values = [0.0 if s is None else s for s in scores]
            mean = sum(values) / len(values) if values else 0.0
            coherent = mean >= self.coherence_threshold
            if log is not None:
                log.append({"mean_score": mean, "scores": scores, "coherent": coherent})
            return coherent

        return judge

    def relevant(self, description: str, tokens: Sequence[str]) -> list[int]:
        """Indices of `tokens` the judge relates to the finetuning objective in `description`."""
        if not tokens:
            return []
        return self.client.complete(relevance_messages(description, tokens),
                                    parse=lambda text: parse_relevant(text, tokens), max_tokens=256)
