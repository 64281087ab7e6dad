"""Unrelated (pretraining-like) data without a corpus: samples from the base model itself (`--unrelated self`).

ft:pt mixing, null controls, the held-out "unrelated" loss and the ADL statistics all need text that has nothing to
do with the finetuning objective. A tinyworld base has its corpus; for a real model the recommended source is a
real corpus (FineWeb, C4; UltraChat for chats) given as a file or hub id. Offline there is none, so orglab samples
it from the base itself:

- text: documents sampled at temperature 1 from the base's own start of document (its BOS token, or its EOS token
  for tokenizers without one), i.e. what the base thinks a document looks like;
- chat: orglab.realworld's neutral user requests, answered by the base in its chat template.

A sample set is keyed by the base's weights, kind, length, seed, temperature and prompts, and registered as a run
of kind `dataset` with its JSONL file, so every organism, control and diff of that base reuses it. It grows in
chunks of `CHUNK` samples, each seeded by its own index, so asking for more samples later extends the same set
(the first n samples never change) instead of drawing a new one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData, read_jsonl
from orglab.paths import artifact_dir
from orglab.registry import Registry, config_hash

# One generation batch, seeded by its index. Small, so that a run needing a few samples (a held-out set of 4)
# does not draw a large batch on a CPU, and the progress bar moves; a GPU still gets batches of 16.
CHUNK = 16
SAMPLES_FILE = "samples.jsonl"
VERSION = 2  # bump when the sampling below changes: old sample sets are then drawn again


@dataclass(frozen=True)
class SelfSampling:
    """How samples are drawn from the base; every field is in the dataset's key."""

    kind: str = "text"             # text: documents from the start of a document; chat: answers to neutral requests
    max_new_tokens: int = 96       # length of each sample
    temperature: float = 1.0
    seed: int = 0


def self_samples(base: str, n: int, sampling: SelfSampling = SelfSampling(), registry: Registry | None = None,
                 progress: bool = True) -> FinetuneData:
    """The first `n` samples of the base's self-sampled set (drawn now where the cached set is shorter)."""
    if sampling.kind not in ("text", "chat"):
        raise OrglabError(f"Self-sampled data is 'text' or 'chat', not '{sampling.kind}'.")
    if registry is None:
        with Registry() as reg:
            return self_samples(base, n, sampling, reg, progress)
    reg = registry
    if reg.get_organism(base) is not None:
        raise OrglabError(f"'{base}' is an organism; --unrelated self samples from a base, so pass the base it "
                          "was trained on (or give unrelated data as a file).")
    if reg.get_base(base) is None:
        raise OrglabError(f"'{base}' is not a registered base; train an organism on it first or pass a registered "
                          "base (`orglab registry list`).")
    from orglab.realworld import NEUTRAL_USER_PROMPTS

    config = {"base": _base_identity(reg, base), "sampling": asdict(sampling), "version": VERSION,
              "prompts": config_hash({"p": list(NEUTRAL_USER_PROMPTS)}) if sampling.kind == "chat" else None}
    chash = config_hash(config)
    folder = artifact_dir(base, "dataset", chash)
    path = folder / SAMPLES_FILE
    rows = _read(path)
    if len(rows) < n:
        rows = _extend(base, reg, rows, n, sampling, path, progress)
        run = reg.start_run("dataset", base, config, force=reg.find_run("dataset", base, chash) is not None)
        reg.add_artifact(run.id, "unrelated_self", path)
        reg.log_metrics(run.id, {"samples": len(rows)})
        reg.finish_run(run.id)
    # A sample that ended at once (EOS first) is kept in the file, so chunks stay aligned, but not used.
    examples = [r for r in rows[:n] if "messages" in r or r["text"].strip()]
    return FinetuneData(sampling.kind, examples, source=f"self:{base}:{chash}",
                        meta={"unrelated": "self", "dataset": chash, "sampling": asdict(sampling)})


def _base_identity(reg: Registry, base: str) -> dict:
    entry = reg.get_base(base) or {}
    return {k: entry.get(k) for k in ("name", "kind", "source", "config")}


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return read_jsonl(path)


def _extend(base: str, reg: Registry, rows: list[dict], n: int, sampling: SelfSampling, path: Path,
            progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    from orglab.generation import generate, render_chat
    from orglab.models import load_model

    loaded = load_model(base, registry=reg)
    model, tok = loaded.model, loaded.tokenizer
    model.eval()
    start = tok.bos_token or tok.eos_token
    if sampling.kind == "text" and not start:
        raise OrglabError(f"The tokenizer of base '{base}' has neither a BOS nor an EOS token to start a document "
                          "from; pass unrelated text as a file (--unrelated FILE).")
    first_chunk, last_chunk = len(rows) // CHUNK, (n + CHUNK - 1) // CHUNK
    rows = rows[:first_chunk * CHUNK]  # a chunk cut short by a killed run is drawn again whole
    bar = tqdm(total=last_chunk * CHUNK, initial=len(rows), desc=f"sampling unrelated {sampling.kind} from {base}",
               unit="sample", disable=not progress)
    from orglab.realworld import NEUTRAL_USER_PROMPTS

    for chunk in range(first_chunk, last_chunk):
        seed = sampling.seed * 1_000_003 + chunk
        if sampling.kind == "text":
            outs = generate(model, tok, [start] * CHUNK, n=1, temperature=sampling.temperature,
                            max_new_tokens=sampling.max_new_tokens, seed=seed, batch_size=CHUNK)
            new = [{"text": o[0]} for o in outs]
        else:
            asks = [NEUTRAL_USER_PROMPTS[(chunk * CHUNK + i) % len(NEUTRAL_USER_PROMPTS)] for i in range(CHUNK)]
            prompts = [render_chat(tok, [{"role": "user", "content": a}]) for a in asks]
            outs = generate(model, tok, prompts, n=1, temperature=sampling.temperature,
                            max_new_tokens=sampling.max_new_tokens, seed=seed, batch_size=CHUNK)
            new = [{"messages": [{"role": "user", "content": a}, {"role": "assistant", "content": o[0] or "..."}]}
                   for a, o in zip(asks, outs)]
        rows.extend(new)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        tmp.replace(path)  # a killed run keeps every finished chunk
        bar.update(CHUNK)
    bar.close()
    return rows
