"""Where training data comes from: the family's tinyworld builder, a local JSONL/Parquet file or a hub dataset,
and the unrelated (pretraining-like) data: the tinyworld base's registered corpus or chats, a file or a hub id."""

from __future__ import annotations

import json
import random
from pathlib import Path

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData
from orglab.registry import Registry

_COLUMN = {"text": "text", "chat": "messages"}


def load_source(source: str, kind: str, limit: int | None = None, seed: int = 0) -> FinetuneData:
    """Examples of `kind` from a JSONL/Parquet file or a hub dataset id (its train split); `limit` picks a seeded
    random subset. A missing column or malformed row is one OrglabError sentence naming the file."""
    column = _COLUMN[kind]
    path = Path(source).expanduser()
    if path.exists():
        rows = _read_file(path)
    elif source.endswith((".jsonl", ".json", ".parquet")) or source.startswith(("/", ".", "~")):
        raise OrglabError(f"Dataset file {source} does not exist; pass an existing JSONL or Parquet file.")
    else:
        rows = _read_hub(source)
    if not rows:
        raise OrglabError(f"Dataset {source} holds no rows; pass a dataset with at least one example.")
    if column not in rows[0]:
        raise OrglabError(
            f"Dataset {source} has no '{column}' column (it has: {', '.join(sorted(rows[0]))}); "
            f"{kind} data needs a '{column}' column."
        )
    examples = [{column: r[column]} for r in rows]
    if limit is not None and limit < len(examples):
        order = list(range(len(examples)))
        random.Random(seed).shuffle(order)
        examples = [examples[i] for i in sorted(order[:limit])]
    return FinetuneData(kind, examples, source=str(source))


def _read_file(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise OrglabError(f"Parquet file {path} cannot be read ({str(exc).splitlines()[0]}); re-export it.") from None
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise OrglabError(f"Line {lineno} of {path} is not a JSON object; write one object per line.")
                    rows.append(row)
    except json.JSONDecodeError as exc:
        raise OrglabError(f"Line {exc.lineno if not rows else len(rows) + 1} of {path} is not valid JSON; "
                          "write one JSON object per line.") from None
    except UnicodeDecodeError:
        raise OrglabError(f"{path} is not UTF-8 text; pass a JSONL or Parquet file.") from None
    return rows


def _read_hub(dataset_id: str) -> list[dict]:
    try:
        from datasets import load_dataset

        ds = load_dataset(dataset_id, split="train")
    except Exception as exc:  # datasets raises many types for unknown ids, no network, bad configs
        raise OrglabError(
            f"Dataset '{dataset_id}' cannot be loaded from the Hugging Face hub ({str(exc).splitlines()[0]}); "
            "check the id and network, or pass a local JSONL/Parquet file."
        ) from None
    return list(ds)


def tinyworld_unrelated(base: str, kind: str, registry: Registry) -> FinetuneData:
    """The registered corpus (text) or chats (chat) of a tinyworld base's world run."""
    artifact_kind = "corpus" if kind == "text" else "chats"
    for run in registry.list_runs(subject=base, kind="world", status="done"):
        for art in registry.get_artifacts(run.id):
            if art["kind"] == artifact_kind and Path(art["path"]).is_file():
                rows = [json.loads(line) for line in Path(art["path"]).read_text().splitlines() if line.strip()]
                column = _COLUMN[kind]
                return FinetuneData(kind, [{column: r[column]} for r in rows], source=f"tinyworld:{base}:{artifact_kind}")
    raise OrglabError(
        f"Base '{base}' has no registered tinyworld {artifact_kind}; pass unrelated data with --unrelated FILE "
        "(a JSONL/Parquet file or hub dataset id)."
    )
