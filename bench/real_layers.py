"""Where is the trace readable on a real model? Token relevance of an organism and its null control by layer and
readout (logit lens of the mean difference; patchscope with the identity prompts and the label-free scale).

    ORGLAB_HOME=... python bench/real_layers.py sdf-cake_bake-mix1-0 control-sdf-cake_bake-mix1-0 --samples 1000

Runs `orglab diff`'s stats, lens, patchscope and relevance stages at every layer (the statistics of all layers come
from one pass, so this costs little more than one layer) and prints one markdown row per layer: the data-grounded
relevance (max over positions 0..k-1) of each readout for the organism and for the control, and their gap. The
defaults for real models in docs/real-models.md were chosen from this table.
"""

from __future__ import annotations

import argparse
import json
import time


def layer_fractions(organism: str) -> tuple[float, ...]:
    """One fraction per layer, each mapping back to its own layer index under int(f * (n_layers - 1))."""
    from orglab.models import get_decoder_layers, load_model

    depth = len(get_decoder_layers(load_model(organism).model))
    return tuple((i + 0.5) / (depth - 1) if i < depth - 1 else 1.0 for i in range(depth))


def relevance_by_layer(organism: str, fractions: tuple[float, ...], samples: int) -> tuple[dict, float]:
    from orglab.diff.run import DiffConfig, run_diff

    started = time.time()
    result = run_diff(organism, DiffConfig(layers=fractions, samples=samples,
                                           stages=("stats", "lens", "patchscope", "relevance")), progress=True)
    layers = result["stages"]["relevance"]["result"]["layers"] if "result" in result["stages"]["relevance"] \
        else result["stages"]["relevance"]["layers"]
    return {int(k): {r: v["max"] for r, v in entry.items() if isinstance(v, dict) and "max" in v}
            for k, entry in layers.items()}, time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("organism")
    parser.add_argument("control")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--json", default=None, help="also write the table to this JSON file")
    args = parser.parse_args()
    fractions = layer_fractions(args.organism)
    org, t_org = relevance_by_layer(args.organism, fractions, args.samples)
    ctl, t_ctl = relevance_by_layer(args.control, fractions, args.samples)
    print(f"\n{args.organism} vs {args.control}, {args.samples} unrelated samples "
          f"({t_org:.0f} s and {t_ctl:.0f} s)\n")
    print("| layer | lens organism | lens control | lens gap | patchscope organism | patchscope control | patchscope gap |")
    print("|---|---|---|---|---|---|---|")
    for layer in sorted(org):
        lo, lc = org[layer].get("lens_delta"), ctl[layer].get("lens_delta")
        po, pc = org[layer].get("patchscope"), ctl[layer].get("patchscope")
        print(f"| {layer} | {lo:.2f} | {lc:.2f} | {lo - lc:+.2f} | {po:.2f} | {pc:.2f} | {po - pc:+.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"organism": org, "control": ctl, "samples": args.samples,
                       "seconds": {"organism": t_org, "control": t_ctl}}, fh, indent=1)


if __name__ == "__main__":
    main()
