"""Existing datasets as finetuning data: local JSONL / JSON / Parquet files or a Hugging Face hub dataset id.

Published organism datasets (the paper's SDF documents, taboo dialogues, chat mixes such as UltraChat) come in
many column layouts; the caller names the text or messages column, and ShareGPT-style turns
({"from": "human"|"gpt", "value"}) are mapped onto role/content. A missing column, an unreadable file or a hub
id that cannot be fetched ends in one OrglabError sentence.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from orglab.errors import OrglabError
from orglab.organisms.data import DataKind, FinetuneData

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?(:[\w.\-\[\]:%]+)?$")
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "model": "assistant", "system": "system"}
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


def load_dataset_source(source: str, kind: DataKind, text_field: str = "text", messages_field: str = "messages",
                        limit: int | None = None) -> FinetuneData:
    """Read `source` (a local .jsonl/.json/.parquet file, or a hub id, optionally 'id:split') as FinetuneData."""
    if kind not in ("text", "chat"):
        raise OrglabError(f"Data kind '{kind}' is unknown; use 'text' (documents) or 'chat'.")
    if limit is not None and limit < 1:
        raise OrglabError(f"limit {limit} is not positive; pass a number of examples >= 1 or none.")
    field = text_field if kind == "text" else messages_field
    path = Path(source).expanduser()
    if path.suffix.lower() in LOCAL_SUFFIXES or path.exists() or source.startswith((".", "/", "~")):
        rows = _read_local(path, limit)
        where = str(path)
    else:
        rows = _read_hub(source, limit)
        where = f"hub dataset {source}"
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise OrglabError(f"{where} holds no examples; check the file or the split.")
    examples = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or field not in row:
            columns = ", ".join(sorted(row)) if isinstance(row, dict) else "none"
            raise OrglabError(f"{where} has no column '{field}' (row {i} has: {columns}); "
                              f"rename the column holding the {'text' if kind == 'text' else 'chats'} to '{field}'.")
        value = row[field]
        examples.append({"text": value} if kind == "text" else {"messages": _messages(value, where, i)})
    return FinetuneData(kind, examples, source=str(source), meta={"loaded_from": where, "field": field})


def _read_local(path: Path, limit: int | None) -> list[Any]:
    if not path.is_file():
        raise OrglabError(f"Dataset file {path} does not exist; check the path.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            if limit is not None:
                table = table.slice(0, limit)
            return table.to_pylist()
        text = path.read_text()
        if suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        rows = []
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise OrglabError(f"Line {line_no} of {path} is not valid JSON; fix or remove it.") from None
            if limit is not None and len(rows) >= limit:
                break
        return rows
    except OrglabError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise OrglabError(f"Dataset file {path} cannot be read ({_first_line(exc)}); check that it is valid "
                          f"{suffix.lstrip('.').upper() or 'JSONL'}.") from None
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise OrglabError(f"Dataset file {path} cannot be read ({_first_line(exc)}); check that it is valid "
                          f"{suffix.lstrip('.').upper()}.") from None


def _read_hub(source: str, limit: int | None) -> list[Any]:
    if not _HUB_ID.match(source):
        raise OrglabError(f"'{source}' is neither an existing file nor a hub dataset id; pass a .jsonl/.parquet "
                          "path or an id like 'org/name' (optionally 'org/name:split').")
    dataset_id, _, split = source.partition(":")
    split = split or "train"
    if limit is not None and "[" not in split:
        split = f"{split}[:{limit}]"
    try:
        import datasets

        ds = datasets.load_dataset(dataset_id, split=split)
    except Exception as exc:  # offline, unknown id, bad split: datasets raises many unrelated types
        raise OrglabError(f"The hub dataset '{dataset_id}' (split {split}) could not be loaded "
                          f"({_first_line(exc)}); check the id and your network, or pass a local JSONL/Parquet "
                          "file.") from None
    return [dict(r) for r in ds]


def _messages(value: Any, where: str, row: int) -> list[dict]:
    """Role/content turns from a list (or its JSON string), mapping ShareGPT-style keys and dropping extra keys."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise OrglabError(f"Row {row} of {where} has a messages value that is not a list of turns.") from None
    if not isinstance(value, list):
        raise OrglabError(f"Row {row} of {where} has a messages value that is not a list of turns.")
    turns = []
    for turn in value:
        if not isinstance(turn, dict):
            raise OrglabError(f"Row {row} of {where} has a turn that is not an object with role and content.")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        turns.append({"role": _SHAREGPT_ROLES.get(str(role).lower(), str(role)), "content": content})
    return turns


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
