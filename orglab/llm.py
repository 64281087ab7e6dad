"""The OpenAI-compatible LLM client shared by data generators, judges and the interpretability agent.

Any OpenAI-compatible endpoint works (OpenAI, vLLM, a local server): the real `openai` client is pointed at
`base_url`. Three properties matter for research use:

- **Deterministic and cheap to re-run**: temperature 0 by default, and every answer is cached on disk under
  ORGLAB_HOME/llm_cache, keyed by the sha256 of the full request (model, messages, parameters), so re-running a
  data build or an eval makes no calls at all.
- **Robust**: API errors, rate limits (429), timeouts and answers the caller's `parse` function rejects are
  retried with exponential backoff; only then does one `OrglabError` sentence reach the user.
- **Safe**: the API key is read from the environment variable named in the config at call time and is never
  stored in the config, the cache or any log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from orglab.errors import OrglabError
from orglab.paths import orglab_home

Messages = list[dict[str, Any]]
Parse = Callable[[str], Any]  # returns the parsed value, raises ValueError to reject the answer

CACHE_DIR = "llm_cache"
CACHE_VERSION = 2  # bump when the cache key or the stored record changes


@dataclass
class ChatReply:
    """One whole answer: text, tool calls (for agents) and per-token top logprobs (for probability-weighted judges)."""

    content: str | None
    tool_calls: list[dict] = field(default_factory=list)   # [{"id", "name", "arguments" (a JSON string)}]
    top_logprobs: list[dict[str, float]] | None = None       # per generated token: {token: logprob}
    usage: dict = field(default_factory=dict)                # prompt_tokens, completion_tokens, total_tokens

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ChatReply":
        return cls(content=d.get("content"), tool_calls=list(d.get("tool_calls") or []),
                   top_logprobs=d.get("top_logprobs"), usage=dict(d.get("usage") or {}))

    def assistant_message(self) -> dict:
        """The reply as a message to append to the conversation (OpenAI's tool-calling format)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [{"id": c["id"], "type": "function",
                                      "function": {"name": c["name"], "arguments": c["arguments"]}}
                                     for c in self.tool_calls]
        return message


@dataclass
class LLMConfig:
    """Where and how to ask. `api_key_env` names the variable holding the key (None: the endpoint needs none)."""

    model: str
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int | None = None
    max_retries: int = 5          # attempts after the first one
    timeout: float = 60.0         # seconds per request
    backoff_s: float = 1.0        # first wait; doubled after every failed attempt
    max_backoff_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.model:
            raise OrglabError("The LLM config has no model name; set `model` to the model the endpoint serves.")
        if self.max_retries < 0 or self.timeout <= 0:
            raise OrglabError("The LLM config needs max_retries >= 0 and timeout > 0; fix those fields.")


ROLES = ("judge", "agent", "generator")


def config_from_env(role: str = "judge", environ: dict | None = None) -> LLMConfig | None:
    """The endpoint for one role, from ORGLAB_<ROLE>_MODEL / _BASE_URL / _API_KEY_ENV, each falling back to
    ORGLAB_LLM_<...>; None when no model is named (callers then use tinyworld's offline rule-based judges).

    Example: ORGLAB_LLM_BASE_URL=http://localhost:8000/v1 ORGLAB_LLM_MODEL=qwen3-8b ORGLAB_LLM_API_KEY_ENV=none.
    Optional: _MAX_RETRIES, _TIMEOUT (seconds per request), _BACKOFF_S (first wait between retries).
    """
    env = os.environ if environ is None else environ
    if role not in ROLES:
        raise OrglabError(f"Unknown LLM role '{role}'; use one of {', '.join(ROLES)}.")

    def get(name: str) -> str | None:
        value = env.get(f"ORGLAB_{role.upper()}_{name}") or env.get(f"ORGLAB_LLM_{name}")
        return value.strip() if value and value.strip() else None

    model = get("MODEL")
    if model is None:
        return None
    key_env = get("API_KEY_ENV") or "OPENAI_API_KEY"
    tuning = {}
    for name, field_name, cast in (("MAX_RETRIES", "max_retries", int), ("TIMEOUT", "timeout", float),
                                   ("BACKOFF_S", "backoff_s", float)):
        value = get(name)
        if value is not None:
            try:
                tuning[field_name] = cast(value)
            except ValueError:
                raise OrglabError(f"ORGLAB_{role.upper()}_{name} (or ORGLAB_LLM_{name}) is '{value}', not a "
                                  "number; set it to a number or unset it.") from None
    return LLMConfig(model=model, base_url=get("BASE_URL"), api_key_env=None if key_env.lower() == "none" else key_env,
                     **tuning)


@dataclass
class LLMStats:
    """What a client did: real calls (attempts sent), cache hits, retries and why."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    rejected_answers: int = 0     # answers `parse` refused (each one retried)
    errors: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class _Retryable(Exception):
    """An attempt failed in a way that another attempt may fix."""

    def __init__(self, reason: str, wait_hint: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.wait_hint = wait_hint


class LLMClient:
    """Chat completions with retries and a disk cache; thread-safe, so `complete_many` can fan out."""

    def __init__(self, config: LLMConfig, cache_dir: Path | str | None = None, use_cache: bool = True,
                 sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.cache_dir = Path(cache_dir) if cache_dir is not None else orglab_home() / CACHE_DIR
        self.use_cache = use_cache
        self.stats = LLMStats()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._client: Any = None

    # ------------------------------------------------------------------------------------------ public
    def complete(self, messages: Messages, parse: Parse | None = None, **params: Any) -> Any:
        """The answer's text, or `parse(text)` when `parse` is given (a ValueError from it means: ask again).

        `params` are extra chat-completion parameters (temperature, max_tokens, seed, stop, ...); they are part
        of the cache key, so the same request is answered from disk the second time.
        """

        def parse_reply(reply: ChatReply) -> Any:
            if not reply.content or not reply.content.strip():
                raise ValueError("the answer has no text")
            return parse(reply.content) if parse else reply.content

        return self.chat(messages, parse=parse_reply, **params)

    def chat(self, messages: Messages, parse: Callable[[ChatReply], Any] | None = None, **params: Any) -> Any:
        """The whole reply (`ChatReply`: text, tool calls, logprobs), or `parse(reply)`; cached and retried like
        `complete`. Pass `tools=[...]` for tool calling and `logprobs=True, top_logprobs=20` for judges."""
        request = self._request(messages, params)
        key = request_key(request)
        cached = self._cache_get(key)
        if cached is not None:
            try:
                value = parse(cached) if parse else cached
            except ValueError:
                value = _MISSING  # the caller's parser changed since: ask again
            if value is not _MISSING:
                self._count("cache_hits")
                return value

        attempts = self.config.max_retries + 1
        last = "no attempt made"
        for attempt in range(attempts):
            if attempt:
                self._count("retries")
            try:
                reply = self._call(request)
                value = parse(reply) if parse else reply
            except _Retryable as exc:
                last = exc.reason
                self._count_error(exc.reason.split(":")[0])
                if attempt + 1 < attempts:
                    self._sleep(self._wait(attempt, exc.wait_hint))
                continue
            except ValueError as exc:
                last = f"answer rejected by the parser ({_first_line(exc)})"
                self._count("rejected_answers")
                if attempt + 1 < attempts:
                    self._sleep(self._wait(attempt, None))
                continue
            self._cache_put(key, request, reply)
            return value
        where = self.config.base_url or "the OpenAI API"
        raise OrglabError(
            f"The LLM '{self.config.model}' at {where} gave no usable answer after {attempts} attempts "
            f"(last problem: {last}); check the endpoint, the model name and the prompt."
        )

    def complete_json(self, messages: Messages, check: Callable[[Any], Any] | None = None, **params: Any) -> Any:
        """The answer parsed as JSON (code fences and text around the JSON are tolerated); `check` may reject it."""

        def parse(text: str) -> Any:
            value = extract_json(text)
            return check(value) if check else value

        return self.complete(messages, parse=parse, **params)

    def complete_many(self, requests: list[Messages], parse: Parse | None = None, workers: int = 8,
                      skip_failures: bool = False, **params: Any) -> list[Any]:
        """`complete` over many requests in threads, results in input order.

        With `skip_failures`, a request that exhausts its retries gives None instead of stopping the batch (data
        generation drops it); otherwise its OrglabError is raised.
        """

        def one(messages: Messages) -> Any:
            try:
                return self.complete(messages, parse=parse, **params)
            except OrglabError:
                if skip_failures:
                    return None
                raise

        if workers <= 1 or len(requests) <= 1:
            return [one(m) for m in requests]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, requests))

    # ------------------------------------------------------------------------------------------ internals
    def _request(self, messages: Messages, params: dict) -> dict:
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise OrglabError("LLM messages must be a list of {'role', 'content'} objects; fix the caller's prompt.")
        body = {"temperature": self.config.temperature}
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        body.update(params)
        return {"model": self.config.model, "messages": [dict(m) for m in messages], **body}

    def _openai(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(base_url=self.config.base_url, api_key=self._api_key(),
                                             max_retries=0, timeout=self.config.timeout)
            return self._client

    def _api_key(self) -> str:
        env = self.config.api_key_env
        if env is None:
            return "none"  # servers without auth still need some value in the header
        key = os.environ.get(env, "").strip()
        if not key:
            raise OrglabError(f"The environment variable {env} is not set; export it with the API key of the "
                              f"LLM endpoint (or set api_key_env to another variable).")
        return key

    def _call(self, request: dict) -> str:
        import openai

        client = self._openai()
        self._count("calls")
        try:
            response = client.chat.completions.create(**request)
        except openai.RateLimitError as exc:
            raise _Retryable("rate limited (HTTP 429)", _retry_after(exc)) from None
        except openai.APITimeoutError:
            raise _Retryable(f"timeout after {self.config.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection error: {_first_line(exc)}") from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise _Retryable(f"server error: HTTP {exc.status_code}") from None
            hint = {401: "check the API key in " + str(self.config.api_key_env),
                    403: "check that the key may use this model",
                    404: "check base_url and the model name"}.get(exc.status_code, "check the request")
            raise OrglabError(f"The LLM endpoint refused the request with HTTP {exc.status_code} "
                              f"({_first_line(exc)}); {hint}.") from None
        except openai.APIError as exc:  # malformed bodies and other protocol problems
            raise _Retryable(f"bad response: {_first_line(exc)}") from None
        except ValueError as exc:  # a body that is not JSON at all; kept apart from the caller's parse rejections
            raise _Retryable(f"malformed response body: {_first_line(exc)}") from None
        try:
            choice = response.choices[0]
            message = choice.message
        except (AttributeError, IndexError, TypeError):
            raise _Retryable("malformed answer: no choices") from None
        text = message.content if isinstance(getattr(message, "content", None), str) else None
        calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments or "{}"}
                 for c in (getattr(message, "tool_calls", None) or []) if getattr(c, "function", None)]
        if not (text and text.strip()) and not calls:
            raise _Retryable("malformed answer: no message content")
        top = None
        content_logprobs = getattr(getattr(choice, "logprobs", None), "content", None)
        if content_logprobs:
            top = [{alt.token: float(alt.logprob) for alt in (tok.top_logprobs or [])} or {tok.token: float(tok.logprob)}
                   for tok in content_logprobs]
        usage = response.usage.model_dump() if getattr(response, "usage", None) is not None else {}
        usage = {k: v for k, v in usage.items() if k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return ChatReply(content=text, tool_calls=calls, top_logprobs=top, usage=usage)

    def _wait(self, attempt: int, hint: float | None) -> float:
        wait = min(self.config.max_backoff_s, self.config.backoff_s * 2 ** attempt)
        if hint is not None:
            wait = min(self.config.max_backoff_s, max(wait, hint))
        return wait

    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> ChatReply | None:
        if not self.use_cache:
            return None
        path = self._cache_path(key)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # absent or half-written: ask again
        response = record.get("response") if isinstance(record, dict) else None
        return ChatReply.from_dict(response) if isinstance(response, dict) else None

    def _cache_put(self, key: str, request: dict, reply: ChatReply) -> None:
        if not self.use_cache:
            return
        path = self._cache_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The request is stored for inspection; it holds model, messages and parameters, never the API key.
        tmp = path.with_suffix(f".tmp{threading.get_ident()}")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "request": request, "response": reply.to_dict()},
                                  ensure_ascii=False, sort_keys=True))
        os.replace(tmp, path)

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self.stats, what, getattr(self.stats, what) + 1)

    def _count_error(self, kind: str) -> None:
        with self._lock:
            self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1


_MISSING = object()


def request_key(request: dict) -> str:
    """sha256 of the canonical JSON of the full request (model, messages, parameters) and the cache version."""
    blob = json.dumps({"v": CACHE_VERSION, **request}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The first JSON value in an answer: a fenced block, the whole text, or the first {...} / [...] span."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        candidate = candidate.strip()
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        decoder = json.JSONDecoder()
        for i, ch in enumerate(candidate):
            if ch in "[{":
                try:
                    return decoder.raw_decode(candidate[i:])[0]
                except ValueError:
                    continue
    raise ValueError("no JSON value in the answer")


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
