"""ADL statistics stage: orglab's streaming computation against the paper's code's way, side by side.

    python bench/adl_speed.py [--samples 2000] [--base tiny] [--organism NAME]

Reference (the paper's way): every sample cut to 128 tokens, the organism run over all samples and then the
base, every sample's activations kept, then averaged. orglab's way: inputs cut to the positions that are used,
both models per batch, running fp32 sums. Each method runs in its own process so that its peak memory is its
own; 'activation memory' is the peak RSS above what the process held once the models were loaded.
Without --organism, a LoRA adapter with random (non-zero) weights on the base stands in for an organism.
Targets (ADL issue): equal means within 1e-4 relative, >= 10x faster, >= 10x less activation memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRSS:
    """Highest RSS seen while the block runs (sampled every 2 ms in a thread): the process's lifetime peak
    (ru_maxrss) would also count transient memory of loading the models."""

    def __enter__(self):
        import threading

        self.peak, self._stop = rss_mb(), False

        def sample():
            while not self._stop:
                self.peak = max(self.peak, rss_mb())
                time.sleep(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def load_pair(base: str, organism: str | None):
    from orglab.models import load_model

    if organism:
        loaded = load_model(organism)
        return loaded.model, loaded.tokenizer
    from peft import LoraConfig, get_peft_model

    loaded = load_model(base)
    torch.manual_seed(0)
    model = get_peft_model(loaded.model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                    init_lora_weights=False)).eval()
    return model, loaded.tokenizer


def unrelated_texts(base: str, n: int, seed: int) -> list[str]:
    from orglab.diff.stats import sample_texts
    from orglab.registry import Registry

    with Registry() as reg:
        run = reg.list_runs(subject=base, kind="world", status="done")[0]
        corpus = next(a["path"] for a in reg.get_artifacts(run.id) if a["kind"] == "corpus")
    texts = [json.loads(line)["text"] for line in Path(corpus).read_text().splitlines()]
    return sample_texts(texts, n, seed)


@torch.no_grad()
def reference_means(model, tok, texts, layer: int, k: int) -> torch.Tensor:
    """The paper's way: 128-token samples, all activations of one model, then of the other, then averages."""
    def all_activations():
        kept = []
        for text in texts:
            ids = tok(text, truncation=True, max_length=128, return_tensors="pt").input_ids
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1][0]
            kept.append(hidden.float().clone())  # [T, H], held until the end
        return kept

    organism_acts = all_activations()
    with model.disable_adapter():
        base_acts = all_activations()
    diffs = torch.zeros(k, organism_acts[0].shape[-1])
    counts = torch.zeros(k)
    for o, b in zip(organism_acts, base_acts):
        t = min(k, o.shape[0])
        diffs[:t] += (o[:t] - b[:t])
        counts[:t] += 1
    return diffs / counts[:, None]


def run_method(args) -> None:
    from orglab.models import layer_index
    from orglab.diff.stats import activation_difference_stats
    from orglab.models import n_layers

    model, tok = load_pair(args.base, args.organism)
    texts = unrelated_texts(args.base, args.samples, seed=0)
    layer = layer_index(0.5, n_layers(model))
    before = rss_mb()
    start = time.perf_counter()
    with PeakRSS() as peak:
        if args.method == "reference":
            means = reference_means(model, tok, texts, layer, args.positions)
        else:
            stats = activation_difference_stats(model, tok, texts, [layer], n_positions=args.positions, batch_size=64)
            means = stats.mean_diff[0]
    seconds = time.perf_counter() - start
    from safetensors.torch import save_file

    save_file({"means": means.contiguous()}, args.out)
    print(json.dumps({"method": args.method, "seconds": seconds, "activation_mb": max(0.0, peak.peak - before),
                      "samples": len(texts), "layer": layer}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--base", default="tiny")
    parser.add_argument("--organism", default=None)
    parser.add_argument("--positions", type=int, default=5)
    parser.add_argument("--method", choices=["reference", "streaming"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        run_method(args)
        return
    from orglab.world.build import build_base

    if args.base in ("tiny", "micro"):
        build_base(args.base, progress=False)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("reference", "streaming"):
            out = str(Path(tmp) / f"{method}.safetensors")
            cmd = [sys.executable, __file__, "--method", method, "--out", out, "--samples", str(args.samples),
                   "--base", args.base, "--positions", str(args.positions)]
            if args.organism:
                cmd += ["--organism", args.organism]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
            from safetensors.torch import load_file

            results[method]["means"] = load_file(out)["means"]
    ref, ours = results["reference"]["means"], results["streaming"]["means"]
    rel = float((ref - ours).norm() / ref.norm())
    print(json.dumps({
        "samples": results["streaming"]["samples"], "layer": results["streaming"]["layer"],
        "reference_s": round(results["reference"]["seconds"], 2), "streaming_s": round(results["streaming"]["seconds"], 2),
        "speedup": round(results["reference"]["seconds"] / results["streaming"]["seconds"], 1),
        "reference_activation_mb": round(results["reference"]["activation_mb"], 1),
        "streaming_activation_mb": round(results["streaming"]["activation_mb"], 1),
        "memory_ratio": round(results["reference"]["activation_mb"] / max(results["streaming"]["activation_mb"], 1.0), 1),
        "relative_difference_of_means": rel,
    }, indent=1))


if __name__ == "__main__":
    main()
