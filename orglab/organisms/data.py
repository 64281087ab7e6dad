"""Finetuning data: the one format every family builder produces and the trainer consumes.

A `FinetuneData` is either documents (`kind="text"`, examples `{"text": ...}`, trained with a plain LM loss)
or chats (`kind="chat"`, examples `{"messages": [{"role", "content"}, ...]}`, trained on assistant turns
only). Its content hash identifies it in the registry (`data_hash` of an organism).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orglab.errors import OrglabError

DataKind = Literal["text", "chat"]
ROLES = ("system", "user", "assistant")


@dataclass
class FinetuneData:
    kind: DataKind
    examples: list[dict]
    source: str = ""                       # where it came from: builder and parameters, or a file / hub id
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("text", "chat"):
            raise OrglabError(f"Data kind '{self.kind}' is unknown; use 'text' (documents) or 'chat'.")
        for i, ex in enumerate(self.examples):
            validate_example(ex, self.kind, where=f"{self.source or 'data'} example {i}")

    def __len__(self) -> int:
        return len(self.examples)

    def hash(self) -> str:
        """Content hash of the examples (order included): same data, same hash."""
        h = hashlib.sha256(self.kind.encode())
        for ex in self.examples:
            h.update(json.dumps(ex, sort_keys=True, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()[:16]

    def split(self, heldout: float | int, seed: int = 0) -> tuple[FinetuneData, FinetuneData]:
        """(train, held-out): a deterministic shuffle, then the first `heldout` examples (share or count) held out."""
        order = list(range(len(self.examples)))
        random.Random(seed).shuffle(order)
        n = int(round(heldout * len(order))) if isinstance(heldout, float) else int(heldout)
        n = max(0, min(n, len(order)))
        pick = lambda idx: [self.examples[i] for i in idx]  # noqa: E731
        return (FinetuneData(self.kind, pick(order[n:]), self.source, dict(self.meta)),
                FinetuneData(self.kind, pick(order[:n]), self.source + " (held out)", dict(self.meta)))

    def to_jsonl(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as fh:
            for ex in self.examples:
                fh.write(json.dumps(ex, sort_keys=True, ensure_ascii=False) + "\n")
        return path


def read_jsonl(path: str | Path) -> list[dict]:
    """The JSON objects of a JSONL file orglab wrote. Lines end only at "\n": `str.splitlines` also splits at
    U+2028, U+0085 and other separators that `json.dumps(ensure_ascii=False)` leaves raw inside strings (a real
    base's samples contain them), which cut one record in two."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def validate_example(ex: dict, kind: DataKind, where: str) -> None:
    if not isinstance(ex, dict):
        raise OrglabError(f"{where} is not an object; each line must be a JSON object.")
    if kind == "text":
        if not isinstance(ex.get("text"), str) or not ex["text"].strip():
            raise OrglabError(f"{where} has no non-empty 'text' field; document data needs a 'text' column.")
        return
    messages = ex.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OrglabError(f"{where} has no 'messages' list; chat data needs a 'messages' column of role/content turns.")
    for turn in messages:
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            raise OrglabError(f"{where} has a turn without a valid role ({', '.join(ROLES)}) and string content.")
    if not any(t["role"] == "assistant" for t in messages):
        raise OrglabError(f"{where} has no assistant turn, so there is nothing to train on.")
