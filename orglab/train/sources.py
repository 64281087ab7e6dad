"""Where training data comes from: the family's tinyworld builder, a local JSONL/Parquet file or a hub dataset,
and the unrelated (pretraining-like) data: the tinyworld base's registered corpus or chats, a file or a hub id."""

from __future__ import annotations

import random
from pathlib import Path

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData, read_jsonl
from orglab.registry import Registry

_COLUMN = {"text": "text", "chat": "messages"}


def load_source(source: str, kind: str, limit: int | None = None, seed: int = 0) -> FinetuneData:
    """Examples of `kind` from a JSONL/Parquet file or a hub dataset id (orglab.organisms.loaders); `limit`
    picks a seeded random subset rather than the file's first rows."""
    from orglab.organisms.loaders import load_dataset_source

    data = load_dataset_source(source, kind)
    if limit is not None and limit < len(data):
        order = list(range(len(data)))
        random.Random(seed).shuffle(order)
        data = FinetuneData(kind, [data.examples[i] for i in sorted(order[:limit])], data.source, data.meta)
    return data


def tinyworld_unrelated(base: str, kind: str, registry: Registry) -> FinetuneData:
    """The registered corpus (text) or chats (chat) of a tinyworld base's world run."""
    artifact_kind = "corpus" if kind == "text" else "chats"
    for run in registry.list_runs(subject=base, kind="world", status="done"):
        for art in registry.get_artifacts(run.id):
            if art["kind"] == artifact_kind and Path(art["path"]).is_file():
                rows = read_jsonl(art["path"])
                column = _COLUMN[kind]
                return FinetuneData(kind, [{column: r[column]} for r in rows], source=f"tinyworld:{base}:{artifact_kind}")
    raise OrglabError(
        f"Base '{base}' has no registered tinyworld {artifact_kind}; pass unrelated data with --unrelated FILE "
        "(a JSONL/Parquet file or hub dataset id)."
    )
