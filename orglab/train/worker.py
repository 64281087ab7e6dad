"""One process of a distributed training run: `python -m orglab.train.worker JOB.json` (started by
`accelerate launch`, torchrun or deepspeed through orglab.train.distributed; rank 0 writes the result)."""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m orglab.train.worker JOB.json", file=sys.stderr)
        return 2
    from orglab.errors import OrglabError
    from orglab.train.distributed import WORKER_ERROR
    from orglab.train.sft import run_sft

    with open(argv[0]) as fh:
        job = json.load(fh)
    try:
        run_sft(job, progress=False)
    except OrglabError as exc:
        print(f"{WORKER_ERROR}{exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
