"""`orglab demo`: the whole loop on the embedded default, in one command.

tiny base -> SDF organisms of the world's first false fact at 1:0, 1:0.1, 1:1, 1:2 with a null control -> ADL
and FFA on each -> check -> HTML report, ending with the paper's ablation table in miniature.
"""

from __future__ import annotations

from pathlib import Path

from orglab.mitigation.sweep import DEFAULT_MIXES, SweepConfig, run_sweep, say
from orglab.paths import report_dir


def run_demo(preset: str = "tiny", out: Path | None = None, progress: bool = True) -> dict:
    from orglab.mitigation.report import write_report
    from orglab.world.build import build_base, load_world

    say(progress, f"1/4 tinyworld base '{preset}' (built once, then reused)")
    built = build_base(preset, progress=progress)
    fact = load_world(built.name).false_facts[0].id
    say(progress, f"2/4 SDF sweep on the false fact '{fact}': ratios "
                  + ", ".join(f"1:{m:g}" for m in DEFAULT_MIXES) + " and a null control")
    sweep = run_sweep(SweepConfig(family="sdf", base=built.name, target=fact), progress=progress)
    say(progress, "3/4 check: every cell against the null control")
    folder = Path(out) if out else report_dir(sweep["name"])
    say(progress, f"4/4 report -> {folder}")
    index = write_report(sweep, folder)
    return {"base": built.summary(), "sweep": sweep, "report": str(index)}
