"""How far apart null controls of different seeds fall, per detector: the noise `check`'s margins must cover.

    python bench/control_band.py --like sdf-orbits_torvin-mix1-0 --seeds 2000,3000,4000,5000,6000,7000
    python bench/control_band.py --like sdf-cake_bake-mix1-0 --detectors lens,logitdiff,kl --samples 500 \
        --seeds 0,1000,2000,3000,4000,5000,6000,7000     # gemma3-270m, with the real demo's profile
    python bench/control_band.py --like sdf-cake_bake-mix1-0 --detectors steering,amplify --samples 500 \
        --seeds 0,1000,2000,3000,4000,5000,6000,7000     # gemma3-270m, the two generating detectors

Trains (or reuses) one null control of organism `--like` per seed, runs every detector's diff stage on each
(DiffConfig and CheckConfig defaults, as a sweep does, unless --detectors or --samples narrow them), and plays
every false-positive trial `check` could meet: each control judged against the band of every set of `--band`
others (the band is their min-max, as in `check`; the default, one other, is how a sweep's two controls are judged
against each other).
Per detector it prints the controls' values, the largest excess of a control over the top of such a band, that
excess's `--quantile`, and how many trials the margin `check` uses on this base today (its CALIBRATED_MARGINS,
else tinyworld's) would flag. A margin below the largest excess flags a control somewhere; the table says which
margin would not, on this base. Results go to ORGLAB_HOME/bench/control_band-<like>.json. Margins are in each
detector's own units, so a real base needs its own run (its KL, for one, is on another scale).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from dataclasses import fields

from orglab.diff.run import DiffConfig, run_diff, with_overrides
from orglab.mitigation.check import DETECTORS, CheckConfig
from orglab.mitigation.sweep import with_detector_stages
from orglab.paths import orglab_home
from orglab.registry import Registry
from orglab.train.api import train_control


# check's own parser of --detectors (one sentence for an unknown name)
DETECTORS_PARSER = next(f for f in fields(CheckConfig) if f.name == "detectors").metadata["parse"]


def control_values(like: str, seeds: list[int], check: CheckConfig = CheckConfig(),
                   diff: DiffConfig = DiffConfig()) -> dict[int, dict]:
    """seed -> the detector summary of that seed's null control of `like` (trained and diffed, or cached)."""
    with Registry() as reg:
        organism = reg.get_organism(like)
    if organism is None:
        raise SystemExit(f"No organism named '{like}' is registered; train it first (orglab demo trains the "
                         "demo's).")
    diff = with_detector_stages(diff, check)
    out = {}
    for seed in seeds:
        name = train_control(organism["base"], like, seed=seed, progress=False)["organism"]
        summary = run_diff(name, diff, progress=False)["summary"]
        measured = {d.name: summary.get(d.metric) for d in DETECTORS if d.name in check.detectors}
        out[seed] = measured | {"organism": name}
    return out


def excesses(values: list[float], band: int) -> list[float]:
    """Each value minus the top of the band of every `band`-subset of the other values: the trials."""
    out = []
    for i, v in enumerate(values):
        others = values[:i] + values[i + 1:]
        out += [v - max(subset) for subset in itertools.combinations(others, band)]
    return out


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--like", required=True, help="the organism whose null controls are trained")
    p.add_argument("--seeds", default="2000,3000,4000,5000,6000,7000", help="control seeds, comma-separated")
    # The smallest band `check` judges against: with 2 controls, each control is checked against the other one.
    p.add_argument("--band", type=int, default=CheckConfig().controls - 1,
                   help="controls in a band (default: check's --controls minus the control being judged)")
    p.add_argument("--quantile", type=float, default=0.95, help="the quantile of the excess to report")
    # The real demo's profile (orglab/mitigation/demo.py) is --detectors lens,logitdiff,kl --samples 500, so its
    # cached control stages are reused; steering and amplify, which generate, are calibrated in a run of their own.
    p.add_argument("--detectors", type=DETECTORS_PARSER, default=CheckConfig().detectors,
                   help="the detectors to calibrate, comma-separated (default: check's)")
    p.add_argument("--samples", type=int, default=None, help="unrelated samples for the diff (default: the diff's)")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < args.band + 1:
        raise SystemExit(f"--seeds gives {len(seeds)} controls; a band of {args.band} needs at least "
                         f"{args.band + 1} to judge one against the others.")
    with Registry() as reg:
        organism = reg.get_organism(args.like)
    # the margins check uses on this base today: its calibrated ones (CALIBRATED_MARGINS), else tinyworld's
    defaults = CheckConfig.for_base(organism["base"] if organism else None, detectors=args.detectors)
    values = control_values(args.like, seeds, defaults, with_overrides(DiffConfig(), samples=args.samples))
    rows = []
    print(f"{len(seeds)} null controls of {args.like}, bands of {args.band}, "
          f"{len(seeds) * len(list(itertools.combinations(range(len(seeds) - 1), args.band)))} trials per detector")
    print(f"{'detector':10} {'controls mean':>13} {'sd':>7} {'max excess':>10} {'q' + str(args.quantile):>8} "
          f"{'margin':>7} {'flagged':>8}")
    for d in (d for d in DETECTORS if d.name in defaults.detectors):
        vals = [values[s][d.name] for s in seeds]
        if any(v is None for v in vals):
            print(f"{d.name:10} not measured on every control")
            continue
        ex = excesses(vals, args.band)
        margin = getattr(defaults, d.margin)
        row = {"detector": d.name, "values": dict(zip(seeds, vals)), "mean": statistics.mean(vals),
               "sd": statistics.stdev(vals), "max_excess": max(ex), "quantile": quantile(ex, args.quantile),
               "margin": margin, "trials": len(ex), "flagged": sum(e > margin for e in ex)}
        rows.append(row)
        print(f"{d.name:10} {row['mean']:13.3f} {row['sd']:7.3f} {row['max_excess']:10.3f} {row['quantile']:8.3f} "
              f"{margin:7.3f} {row['flagged']:>4}/{len(ex)}")
    out = orglab_home() / "bench" / f"control_band-{args.like}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"like": args.like, "seeds": seeds, "band": args.band, "quantile": args.quantile,
                               "controls": values, "detectors": rows}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
