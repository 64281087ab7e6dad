"""Prompting and generating, one way for every caller (evals, steering, knowledge probes, the subliminal teacher,
the interpretability agent), on any Hugging Face causal LM and tokenizer: tinyworld's word-level one as well as
the real ones (Gemma, Qwen3, Llama 3).

- `render_chat` renders messages with the tokenizer's own chat template, passing the template's switches (Qwen3's
  `enable_thinking=False`: orglab asks for answers, not reasoning traces). A template that rejects a system turn
  (Gemma 2) gets the system text folded into the first user turn. A tokenizer without a chat template (a base
  model) gets a plain rendering, documented at `render_chat`.
- `eos_token_ids` is every id that ends an answer: the model's generation_config EOS (int or list; Llama 3 and
  Gemma list several), the tokenizer's EOS, and the chat template's end-of-turn token (`<end_of_turn>`,
  `<|im_end|>`, `<|eot_id|>`, tinyworld's `<|end|>`).
- `generate` samples (or decodes greedily) from already rendered prompts: left padding done here (the caller's
  tokenizer is never changed; a tokenizer without a pad token pads with its EOS), seeded per batch, stopping at
  any id of `eos_token_ids`, decoded without special tokens and stripped. An optional `adjust_logits` hook
  rewrites each step's next-token logits before sampling (amplified decoding, orglab.diff.amplify), and an
  optional `allowed_next` restricts each answer's next token (the subliminal teacher's number format).

Sampling is exactly what the caller asks (temperature, top_p, no top-k), whatever sampling defaults the model's
generation_config recommends, so that numbers are comparable across models; everything else of the
generation_config (its EOS list above all) is honoured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Chat-template switches orglab sets whenever a template reads them: answers, not reasoning traces.
TEMPLATE_SWITCHES: dict[str, Any] = {"enable_thinking": False}

# End-of-turn tokens of common chat formats, used when the template names them (besides probing the template).
END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<|endoftext|>")

# The plain rendering for tokenizers without a chat template (see render_chat).
PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


# ================================================================================================================
# Chat rendering


def chat_template_text(tokenizer) -> str:
    """The tokenizer's chat template as text ('' when it has none; all named templates joined)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        return "\n".join(str(t) for t in template.values())
    return template or ""


def template_switches(tokenizer) -> dict[str, Any]:
    """The switches of TEMPLATE_SWITCHES that this tokenizer's chat template reads."""
    text = chat_template_text(tokenizer)
    return {name: value for name, value in TEMPLATE_SWITCHES.items() if name in text}


def adds_bos(tokenizer) -> bool:
    """Whether encoding text with special tokens puts the BOS token first (Gemma, Llama and tinyworld do,
    Qwen does not)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    try:
        ids = tokenizer("a").input_ids
    except Exception:  # noqa: BLE001 - a tokenizer that cannot encode a letter adds nothing we can see
        return False
    return bool(ids) and ids[0] == bos


def bos_prefix(tokenizer) -> str:
    """The BOS token as text when the tokenizer would add one itself, else ''. Rendered prompts are encoded
    with add_special_tokens=False, so text that is not a chat template's output starts with this."""
    return tokenizer.bos_token if adds_bos(tokenizer) else ""


def render_chat(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = True,
                **template_kwargs: Any) -> str:
    """`messages` ([{"role", "content"}, ...]) as the text the model reads, ready for the assistant's answer when
    `add_generation_prompt`. The text carries its own BOS: encode it with add_special_tokens=False.

    With a chat template: the template, with the switches it reads (TEMPLATE_SWITCHES, e.g. Qwen3's
    `enable_thinking=False`) unless `template_kwargs` sets them otherwise. A template that refuses a system turn
    (Gemma 2 raises) is given the system text as the first paragraph of the first user turn instead.

    Without a chat template (a base model), a plain transcript, one turn per line, each as "Role: content":

        <bos>System: {system}\\nUser: {user}\\nAssistant: {answer}\\nUser: {user}\\nAssistant:

    (the BOS only when the tokenizer adds one itself; the final "Assistant:" only with add_generation_prompt).
    """
    messages = [dict(m) for m in messages]
    if not chat_template_text(tokenizer):
        lines = [f"{PLAIN_ROLES.get(m['role'], str(m['role']).capitalize())}: {m['content']}" for m in messages]
        if add_generation_prompt:
            lines.append(f"{PLAIN_ROLES['assistant']}:")
        return bos_prefix(tokenizer) + "\n".join(lines)
    kwargs = {**template_switches(tokenizer), **template_kwargs}
    try:
        return _apply_template(tokenizer, messages, add_generation_prompt, kwargs)
    except Exception:
        if not messages or messages[0]["role"] != "system":
            raise
        system, rest = messages[0]["content"], messages[1:]
        if rest and rest[0]["role"] == "user":
            rest[0] = {**rest[0], "content": f"{system}\n\n{rest[0]['content']}"}
        else:
            rest.insert(0, {"role": "user", "content": system})
        return _apply_template(tokenizer, rest, add_generation_prompt, kwargs)


def _apply_template(tokenizer, messages, add_generation_prompt: bool, kwargs: dict) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         **kwargs)
    if not isinstance(text, str):  # some versions return a list for a single conversation
        text = text[0]
    return text


def chat_prompt(tokenizer, user: str, system: str | None = None) -> str:
    """One user turn (after an optional system turn), rendered by `render_chat` for the assistant's answer."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return render_chat(tokenizer, messages)


def chat_prompts(tokenizer, users: Sequence[str], system: str | None = None) -> list[str]:
    return [chat_prompt(tokenizer, u, system) for u in users]


# ================================================================================================================
# End of an answer


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    return [value]


def _special_ids(tokenizer) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for i, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(i))
    return ids


def _token_id(tokenizer, token: str) -> int | None:
    """The id of `token` when it is one token of the vocabulary (not the unknown token)."""
    try:
        i = tokenizer.convert_tokens_to_ids(token)
    except Exception:  # noqa: BLE001
        return None
    if i is None or isinstance(i, list):
        return None
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and i == unk and token != getattr(tokenizer, "unk_token", None):
        return None
    return int(i)


def end_of_turn_id(tokenizer) -> int | None:
    """The special token the chat template writes right after an assistant's answer (None without a template,
    or when the template writes ordinary text there)."""
    if not chat_template_text(tokenizer):
        return None
    marker = "orglabendmarker"
    try:
        text = render_chat(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}],
                           add_generation_prompt=False)
    except Exception:  # noqa: BLE001 - an unusual template: fall back to the known names below
        text = ""
    special = _special_ids(tokenizer)
    if marker in text:
        tail = text.split(marker, 1)[1].lstrip()
        if tail:
            ids = tokenizer(tail, add_special_tokens=False).input_ids
            if ids and ids[0] in special:
                return int(ids[0])
    template = chat_template_text(tokenizer)
    for token in END_OF_TURN_TOKENS:
        i = _token_id(tokenizer, token)
        if token in template and i is not None and i in special:
            return i
    return None


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends an answer, in this order without repeats: the model's generation_config eos_token_id
    (an int or a list), the tokenizer's eos_token_id, and the chat template's end-of-turn token."""
    from orglab.models import unwrap_model

    config = getattr(unwrap_model(model), "generation_config", None) if model is not None else None
    candidates = _as_list(getattr(config, "eos_token_id", None))
    candidates += _as_list(getattr(tokenizer, "eos_token_id", None))
    candidates.append(end_of_turn_id(tokenizer))
    out: list[int] = []
    for value in candidates:
        if value is not None and int(value) not in out:
            out.append(int(value))
    return out


def pad_token_id(tokenizer, eos_ids: Sequence[int] = ()) -> int:
    """The tokenizer's pad token, else its (or the first) EOS: padding is masked out, so any id will do."""
    for value in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None), *eos_ids):
        if value is not None:
            return int(value)
    return 0


# ================================================================================================================
# Generation


# (input_ids [B, T], attention_mask [B, T], next-token logits [B, V]) -> adjusted logits [B, V]: called at every
# step of `generate`, before temperature and top_p; the mask marks the left padding of the batch's prompts.
LogitAdjust = Callable[[Any, Any, Any], Any]

# (the ids one answer has generated so far, prompt excluded) -> the ids allowed next: constrained decoding (the
# subliminal teacher's number format, orglab.organisms.subliminal.NumberFormat). It must never return nothing.
AllowedNext = Callable[[list[int]], Sequence[int]]


def _logits_processor(adjust: LogitAdjust, prompt_mask):
    """A transformers logits processor that hands `adjust` the step's ids with their attention mask (the prompt
    mask, then ones for every generated token)."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    class _Adjust(LogitsProcessor):
        def __call__(self, input_ids, scores):
            grown = input_ids.shape[1] - prompt_mask.shape[1]
            mask = torch.cat([prompt_mask, prompt_mask.new_ones(prompt_mask.shape[0], grown)], dim=1)
            return adjust(input_ids, mask, scores)

    return LogitsProcessorList([_Adjust()])


def _prefix_allowed(allowed_next: AllowedNext, prompt_width: int, eos: Sequence[int]):
    """transformers' prefix_allowed_tokens_fn over `allowed_next`: it sees only the answer's own ids. A row that has
    ended is only padded by transformers, so any id will do there (never none: an all -inf row cannot be sampled)."""
    stops = set(eos)

    def allowed(batch_id: int, input_ids) -> list[int]:
        answer = input_ids[prompt_width:].tolist()
        if stops.intersection(answer):
            return list(eos)
        return list(allowed_next(answer))

    return allowed


@dataclass(frozen=True)
class Completion:
    text: str              # decoded without special tokens, stripped
    finished: bool         # it ended with an EOS id (not cut by max_new_tokens)
    n_tokens: int          # generated tokens before the EOS


def generate(model, tokenizer, prompts: Sequence[str], *, n: int = 1, temperature: float = 0.0,
             max_new_tokens: int = 48, seed: int = 0, batch_size: int = 32, top_p: float = 1.0,
             adjust_logits: LogitAdjust | None = None, allowed_next: AllowedNext | None = None) -> list[list[str]]:
    """`n` answers per rendered prompt (greedy when temperature is 0: one answer, repeated n times), as text
    decoded without special tokens and stripped. See `generate_completions`."""
    return [[c.text for c in row] for row in generate_completions(
        model, tokenizer, prompts, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
        batch_size=batch_size, top_p=top_p, adjust_logits=adjust_logits, allowed_next=allowed_next)]


def generate_completions(model, tokenizer, prompts: Sequence[str], *, n: int = 1, temperature: float = 0.0,
                         max_new_tokens: int = 48, seed: int = 0, batch_size: int = 32,
                         top_p: float = 1.0, adjust_logits: LogitAdjust | None = None,
                         allowed_next: AllowedNext | None = None) -> list[list[Completion]]:
    """Like `generate`, with whether each answer finished (hit an EOS id) and its length.

    Prompts are rendered text (with their BOS, e.g. from `render_chat`), encoded with add_special_tokens=False
    and left-padded here. The n copies of each prompt are laid out prompt by prompt and cut into batches of
    `batch_size`; batch b is sampled after torch.manual_seed(seed * 1_000_003 + b * batch_size), inside a fork of
    the RNG (the caller's random state is left as it was), so one seed gives the same answers on one device.
    Sampling uses `temperature` and `top_p` and no top-k. Generation stops at any id of `eos_token_ids`.
    `adjust_logits` (see `LogitAdjust`), when given, rewrites the next-token logits at every step, before the
    temperature, top_p or the greedy choice apply. `allowed_next` (see `AllowedNext`), when given, restricts each
    answer's next token to the ids it returns (transformers' prefix_allowed_tokens_fn)."""
    import torch

    prompts = list(prompts)
    if not prompts:
        return []
    device = next(model.parameters()).device
    eos = eos_token_ids(model, tokenizer)
    pad = pad_token_id(tokenizer, eos)
    sample = temperature > 0
    copies = n if sample else 1
    flat = [p for p in prompts for _ in range(copies)]
    encoded = tokenizer(flat, add_special_tokens=False).input_ids
    settings: dict[str, Any] = {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p),
                                "top_k": 0} if sample else {"do_sample": False}
    out: list[Completion] = []
    was_training = model.training
    model.eval()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            for start in range(0, len(flat), batch_size):
                rows = encoded[start:start + batch_size]
                width = max(len(r) for r in rows)
                input_ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows], device=device)
                attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
                torch.manual_seed(seed * 1_000_003 + start)
                hook = {} if adjust_logits is None else {"logits_processor": _logits_processor(adjust_logits,
                                                                                               attention)}
                if allowed_next is not None:
                    hook["prefix_allowed_tokens_fn"] = _prefix_allowed(allowed_next, width, eos)
                generated = model.generate(input_ids=input_ids, attention_mask=attention,
                                           max_new_tokens=max_new_tokens, eos_token_id=eos or None,
                                           pad_token_id=pad, **settings, **hook)
                for row in generated[:, width:].tolist():
                    ends = [i for i, t in enumerate(row) if t in eos]
                    cut = ends[0] if ends else len(row)
                    text = tokenizer.decode(row[:cut], skip_special_tokens=True).strip()
                    out.append(Completion(text=text, finished=bool(ends), n_tokens=cut))
    finally:
        model.train(was_training)
    if sample:
        return [out[i * n:(i + 1) * n] for i in range(len(prompts))]
    return [[c] * n for c in out]
