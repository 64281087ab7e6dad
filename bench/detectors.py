"""The cost of each detector beside the ADL statistics: seconds and peak memory per 1,000 samples.

    python bench/detectors.py [--base tiny] [--organism NAME] [--samples 1000] [--texts 40]

Each measurement runs in its own process, so its peak memory is its own ('memory' is the peak RSS above what the
process held once the models were loaded, sampled every 2 ms):

- stats: the ADL activation statistics (orglab.diff.stats; one layer at half depth, `--collect-positions`);
- logitdiff: logit-difference mining (orglab.diff.logitdiff; positions 0..k-1, top K 20);
- kl: per-position KL (orglab.diff.kl; `--collect-positions`);
- amplify: amplified decoding at a = 1 (orglab.diff.amplify) of `--texts` answers of 32 tokens to the steering
  prompts, and the same answers unamplified (the organism alone), so the base's extra pass shows; per 1,000
  generated texts. The coherence search and the embedding similarity are left out (the steering stage has both).

Without --organism, a LoRA adapter with random (non-zero) weights on the base stands in for an organism, as in
bench/adl_speed.py. Unrelated text is the base's tinyworld corpus, or `--unrelated FILE` (JSON lines with a
"text" field), which a real base needs, e.g. a tinyworld corpus.jsonl:

    python bench/detectors.py --base gemma3-270m --unrelated ~/.orglab/artifacts/tiny/world/*/corpus.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from adl_speed import PeakRSS, load_pair, rss_mb, unrelated_texts

METHODS = ("stats", "logitdiff", "kl", "amplify")
GENERATED_TOKENS = 32


def _texts(base: str, n: int, unrelated: str | None) -> list[str]:
    from orglab.diff.run import is_tinyworld_base
    from orglab.diff.stats import sample_texts
    from orglab.registry import Registry

    if unrelated:
        from pathlib import Path

        from orglab.organisms.data import read_jsonl

        # read_jsonl, not str.splitlines: model-written text holds U+2028 and the like, which splitlines breaks at
        return sample_texts([row["text"] for row in read_jsonl(Path(unrelated).expanduser())], n, seed=0)
    with Registry() as reg:
        if not is_tinyworld_base(reg, base):
            sys.exit(f"'{base}' has no tinyworld corpus; give unrelated text with --unrelated FILE.jsonl.")
    return unrelated_texts(base, n, seed=0)


@torch.no_grad()
def run_method(args) -> None:
    from orglab.models import layer_index
    from orglab.diff.kl import KLTotals
    from orglab.diff.logitdiff import LogitDiffTotals, logprob_difference
    from orglab.diff.nexttoken import paired_logprobs
    from orglab.diff.stats import activation_difference_stats
    from orglab.models import n_layers

    model, tok = load_pair(args.base, args.organism)
    texts = _texts(args.base, args.samples, args.unrelated)
    count, extra = len(texts), {}
    before = rss_mb()
    start = time.perf_counter()
    with PeakRSS() as peak:
        if args.method == "stats":
            activation_difference_stats(model, tok, texts, [layer_index(0.5, n_layers(model))],
                                        n_positions=args.collect_positions, batch_size=64)
        elif args.method == "logitdiff":
            totals = None
            for lp_org, lp_base, mask in paired_logprobs(model, tok, texts, args.positions):
                totals = totals or LogitDiffTotals.empty(args.positions, lp_org.shape[-1], 20)
                totals.add(logprob_difference(lp_org, lp_base), mask)
        elif args.method == "kl":
            kl = KLTotals.empty(args.collect_positions)
            for lp_org, lp_base, mask in paired_logprobs(model, tok, texts, args.collect_positions):
                kl.add(lp_org, lp_base, mask)
        else:
            count, extra["plain_seconds"] = _amplify(args, model, tok)
    seconds = time.perf_counter() - start
    print(json.dumps({"method": args.method, "seconds": seconds, "count": count,
                      "memory_mb": max(0.0, peak.peak - before), **extra}))


def _amplify(args, model, tok) -> tuple[int, float]:
    """Plain then amplified answers to the steering prompts: (texts each way, seconds of the plain ones)."""
    from orglab.diff.amplify import contrastive_adjuster
    from orglab.diff.run import is_tinyworld_base
    from orglab.diff.steering import steering_prompts
    from orglab.generation import chat_prompts, generate
    from orglab.registry import Registry

    with Registry() as reg:
        tinyworld = is_tinyworld_base(reg, args.base)
    users = steering_prompts(tinyworld)
    prompts = chat_prompts(tok, [users[i % len(users)] for i in range(args.texts)])
    t0 = time.perf_counter()
    generate(model, tok, prompts, n=1, temperature=1.0, max_new_tokens=GENERATED_TOKENS, seed=0)
    plain = time.perf_counter() - t0
    generate(model, tok, prompts, n=1, temperature=1.0, max_new_tokens=GENERATED_TOKENS, seed=0,
             adjust_logits=contrastive_adjuster(model, 1.0))
    return len(prompts), plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="tiny")
    parser.add_argument("--organism", default=None)
    parser.add_argument("--samples", type=int, default=1000, help="unrelated samples for stats, logitdiff and kl")
    parser.add_argument("--unrelated", default=None, help="JSON lines with a 'text' field (default: the base's corpus)")
    parser.add_argument("--texts", type=int, default=40, help="generated texts for amplify (each way)")
    parser.add_argument("--positions", type=int, default=5)
    parser.add_argument("--collect-positions", type=int, default=8)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        run_method(args)
        return
    if args.base in ("tiny", "micro"):
        from orglab.world.build import build_base

        build_base(args.base, progress=False)
    rows = {}
    for method in args.methods.split(","):
        cmd = [sys.executable, __file__, "--method", method, "--base", args.base, "--samples", str(args.samples),
               "--texts", str(args.texts), "--positions", str(args.positions),
               "--collect-positions", str(args.collect_positions)]
        cmd += (["--organism", args.organism] if args.organism else []) + \
            (["--unrelated", args.unrelated] if args.unrelated else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{method} failed:\n{proc.stderr[-2000:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        per = 1000 / max(out["count"], 1)
        rows[method] = {"unit": "unrelated samples", "count": out["count"], "seconds": round(out["seconds"], 3),
                        "seconds_per_1000": round(out["seconds"] * per, 2), "peak_memory_mb": round(out["memory_mb"], 1)}
        if method == "amplify":  # per 1,000 generated texts of 32 tokens, each way
            amplified = out["seconds"] - out["plain_seconds"]
            rows[method].update(unit=f"generated texts of {GENERATED_TOKENS} tokens",
                                seconds_per_1000=round(amplified * per, 2),
                                seconds_per_1000_unamplified=round(out["plain_seconds"] * per, 2))
    print(json.dumps({"base": args.base, "organism": args.organism or "random LoRA", "threads": torch.get_num_threads(),
                      "detectors": rows}, indent=1))


if __name__ == "__main__":
    main()
