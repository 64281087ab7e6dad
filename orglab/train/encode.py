"""Tokenizing finetuning data with its loss mask: which tokens the model is trained to predict.

* Documents (`kind="text"`): every token, except an optional prefix tag (SDF's `<DOCTAG>`), whose tokens are
  context only. An end-of-sequence token closes each document (as in tinyworld pretraining).
* Chats (`kind="chat"`): only the assistant's content and its end-of-turn marker. This works with any chat
  template, with or without `{% generation %}` markers (Qwen ChatML, Llama 3 and Gemma templates have none): the
  conversation is rendered once; for each assistant turn, the text the template adds for that turn is found by
  rendering the conversation up to the turn with the generation prompt and up to and including the turn; the
  assistant content is located in it, and what follows the content up to the whitespace that separates turns is
  the end-of-turn marker. Tokens whose characters overlap those spans (by the tokenizer's offsets) get labels.

Every row is `{"input_ids": [...], "completion_mask": [0/1, ...]}`, the format trl's SFTTrainer turns into labels.
"""

from __future__ import annotations

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData


def encode_text(tokenizer, text: str, max_length: int | None = None, mask_prefix_tag: str | None = None) -> dict:
    """A document: every token is a target, except the tokens of `mask_prefix_tag` when the text starts with it."""
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    tag_end = len(mask_prefix_tag) if mask_prefix_tag and text.startswith(mask_prefix_tag) else 0
    mask = [0 if tag_end and a < tag_end else 1 for a, _ in offsets]
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
        mask.append(1)
    return _truncate(ids, mask, max_length)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """(rendered conversation, [(start, end)] character spans of each assistant turn's content + end-of-turn)."""
    render = lambda msgs, gen=False: tokenizer.apply_chat_template(  # noqa: E731
        msgs, tokenize=False, add_generation_prompt=gen)
    full = render(messages)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        content = message["content"].strip()
        prefix = render(messages[:i], True) if i > 0 else ""
        upto = render(messages[: i + 1])
        # The text this turn adds, as the template renders it when the turn is last; the end-of-turn marker is
        # what follows the content in it, without the whitespace between turns.
        segment = upto[len(prefix):] if upto.startswith(prefix) else upto
        at = segment.rfind(content) if content else -1
        tail = segment[at + len(content):].rstrip() if at >= 0 else ""
        search_from = max(cursor, len(prefix) if full.startswith(prefix) else cursor)
        start = full.find(content, search_from) if content else -1
        if start < 0:
            if content:
                raise OrglabError(
                    "The chat template does not render an assistant turn's content verbatim, so its loss mask "
                    "cannot be computed; use a template that writes message content unchanged."
                )
            start = len(prefix) if full.startswith(prefix) else cursor
        end = start + len(content)
        if tail and full.startswith(tail, end):
            end += len(tail)
        spans.append((start, end))
        cursor = end
    return full, spans


def encode_chat(tokenizer, messages: list[dict], max_length: int | None = None) -> dict:
    """A chat: only the assistant turns' content and end-of-turn tokens are targets."""
    full, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    mask = []
    for a, b in enc["offset_mapping"]:
        hit = b > a and any(a < e and b > s for s, e in spans)
        mask.append(1 if hit else 0)
    return _truncate(ids, mask, max_length)


def encode_data(data: FinetuneData, tokenizer, max_length: int | None = None,
                mask_prefix_tag: str | None = None) -> list[dict]:
    """All examples of `data` as rows with input_ids and completion_mask; rows with no target are dropped."""
    rows = []
    for ex in data.examples:
        if data.kind == "text":
            row = encode_text(tokenizer, ex["text"], max_length, mask_prefix_tag)
        else:
            row = encode_chat(tokenizer, ex["messages"], max_length)
        if sum(row["completion_mask"]) > 0:
            rows.append(row)
    return rows


def _truncate(ids: list[int], mask: list[int], max_length: int | None) -> dict:
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return {"input_ids": ids, "completion_mask": mask}
