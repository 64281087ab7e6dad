"""Tokens as a person reads them: one rule for every table, report, judge prompt and agent view.

`display_token(tokenizer, token)` takes a token id or a token string and returns its text:

- an id is decoded alone (special tokens kept, e.g. "<end_of_turn>"); a string that is a token of the
  tokenizer's vocabulary is looked up and decoded the same way; any other string (a token stored in an old
  result, or no tokenizer at hand) has its markers translated: byte-level BPE's `Ġ` (space), `Ċ` (newline),
  `ĉ` (tab), sentencepiece's `▁` (space);
- a leading or trailing space is shown as nothing ("Ġcat", "▁cat" and "cat" all read "cat");
- newline, tab and carriage return are shown escaped ("\\n", "\\t", "\\r");
- a token of spaces only is shown as that many "␣";
- bytes that are not whole UTF-8 characters (one piece of a multi-byte character) are shown escaped ("\\xe6").

The tinyworld tokenizer is word level, so its tokens read as they are. `token_key` is the form readouts are
compared in (with words of the finetuning data, or with a word an agent asks about): the displayed text,
lower-cased.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

SPACE_MARKERS = {"Ġ": " ", "▁": " ", "Ċ": "\n", "ĉ": "\t"}
SPACE_SHOWN = "␣"


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes-to-unicode table (byte-level BPE writes every byte as one printable char)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _from_markers(token: str, byte_level: bool = False) -> str:
    """A raw token string as text: byte-level tokens (known to be, or holding Ġ/Ċ/ĉ, and made of byte chars
    only) through the byte table, bytes that are no whole character escaped; else the space markers replaced."""
    table = _byte_decoder()
    if (byte_level or any(m in token for m in "ĠĊĉ")) and all(ch in table for ch in token):
        return bytes(table[ch] for ch in token).decode("utf-8", errors="backslashreplace")
    for marker, text in SPACE_MARKERS.items():
        token = token.replace(marker, text)
    return token


def _raw_text(tokenizer, token_id: int) -> str:
    """The id decoded alone; where that leaves half a character (U+FFFD), its bytes escaped instead."""
    decode = getattr(tokenizer, "decode", None)
    text = None
    if callable(decode):
        try:
            text = decode([int(token_id)], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        except TypeError:
            text = decode([int(token_id)])
    if text and "\ufffd" not in text:
        return text
    raw = tokenizer.convert_ids_to_tokens(int(token_id))
    if not isinstance(raw, str):
        return text or ""
    return raw if text == "" else _from_markers(raw, byte_level=text is not None)


def _vocab_id(tokenizer, token: str) -> int | None:
    convert = getattr(tokenizer, "convert_tokens_to_ids", None)
    if not callable(convert):
        return None
    try:
        i = convert(token)
    except Exception:  # noqa: BLE001
        return None
    if not isinstance(i, int):
        return None
    if i == getattr(tokenizer, "unk_token_id", None) and token != getattr(tokenizer, "unk_token", None):
        return None
    return i


def format_text(text: str) -> str:
    """Decoded token text as shown: control characters escaped, outer spaces dropped, spaces-only as ␣."""
    shown = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    stripped = shown.strip(" ")
    if stripped:
        return stripped
    return SPACE_SHOWN * len(shown) if shown else ""


def display_token(tokenizer, token: int | str) -> str:
    """The token as a person reads it (see the module docstring); `tokenizer` may be None for a token string."""
    if isinstance(token, bool):
        raise TypeError("a token is an id or a string")
    if isinstance(token, int) or hasattr(token, "__index__") and not isinstance(token, str):
        if tokenizer is None:
            raise ValueError("showing a token id needs its tokenizer")
        return format_text(_raw_text(tokenizer, int(token)))
    token = str(token)
    if tokenizer is not None:
        i = _vocab_id(tokenizer, token)
        if i is not None:
            return format_text(_raw_text(tokenizer, i))
    return format_text(_from_markers(token))


def display_tokens(tokenizer, tokens: Iterable[int | str]) -> list[str]:
    return [display_token(tokenizer, t) for t in tokens]


def token_key(tokenizer, token: int | str) -> str:
    """The displayed token, lower-cased: what relevance and word look-ups compare."""
    return display_token(tokenizer, token).lower()
