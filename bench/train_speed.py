"""Training speed of the default tiny-scale recipe: tokens per second and the share of padding tokens.

    python bench/train_speed.py [--base tiny] [--family sdf] [--target ID] [--steps N] [--no-packing] [--full-logits]

Trains one organism in a throwaway ORGLAB_HOME copy-free way: it uses the current ORGLAB_HOME (building the base
on first use) with --force and a bench-specific name, and prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny")
    p.add_argument("--family", default="sdf")
    p.add_argument("--target", default=None, help="default: the family's first valid tinyworld target")
    p.add_argument("--steps", type=int, default=None, help="cap the steps (default: the full default recipe)")
    p.add_argument("--no-packing", action="store_true", help="padded batches instead of packing, for comparison")
    p.add_argument("--full-logits", action="store_true", help="recipe fused_lm_head=False: the model's own loss over "
                   "the full logits instead of trl's chunked LM head, for comparison")
    args = p.parse_args(argv)

    from orglab.errors import OrglabError
    from orglab.organisms import get_family
    from orglab.train import make_recipe, train_organism
    from orglab.world.build import PRESETS, build_base, load_world

    if args.base in PRESETS:
        build_base(args.base, progress=False)
    target = args.target
    if target is None:
        try:
            get_family(args.family).validate_target(load_world(args.base), "\x00")
        except OrglabError as exc:
            target = str(exc).split("choose one of: ")[1].split(",")[0].strip(" .")
    recipe = make_recipe({"family": args.family, "base": args.base, "target": target, "max_steps": args.steps,
                          "packing": not args.no_packing, "fused_lm_head": not args.full_logits,
                          "name": f"bench-{args.family}-{'padded' if args.no_packing else 'packed'}"
                                  f"{'-full-logits' if args.full_logits else ''}"})
    started = time.time()
    s = train_organism(recipe, force=True, progress=False)
    out = {"base": args.base, "family": args.family, "target": target, "packing": not args.no_packing,
           "fused_lm_head": not args.full_logits,
           "steps": s["steps"], "train_seconds": round(s["seconds"], 1), "total_seconds": round(time.time() - started, 1),
           "tokens_per_s": round(s["tokens_per_s"], 1), "padding_share": round(s["padding_share"], 4),
           "heldout_own_loss": s["loss"]["own"], "heldout_unrelated_loss": s["loss"]["unrelated"]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
