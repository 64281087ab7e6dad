"""`orglab demo`: the whole loop in one command, on the embedded default or on a real base.

tiny base -> SDF organisms of the world's first false fact at 1:0, 1:0.1, 1:1, 1:2 with two null controls -> ADL,
the detectors beyond it and FFA on each -> check -> HTML report, ending with the paper's ablation table in
miniature (every detector per ratio) and the ratio at which each detector stops seeing the organism.

`--base gemma3-270m` (or any real base) runs the same loop offline on a real model: the built-in real false fact
REAL_FACT (orglab.realworld), unrelated text sampled from the base itself, and a profile sized for a 2-core CPU
(docs/real-models.md measures it): REAL_DIFF_SAMPLES unrelated samples for the ADL statistics instead of the
paper's 10,000, the detectors that read forward passes only (REAL_DETECTORS: steering and amplified decoding
generate text at several strengths, together 3-7 minutes per model on 2 quiet cores, half an hour more for the
demo's five) and REAL_CONTROLS null control, judged with the margins calibrated on the base where orglab has them
(CALIBRATED_MARGINS: gemma3-270m).
On a CPU the organisms train with the full-logits loss (recipe `fused_lm_head=False`: the same loss as trl's chunked LM
head, 1.6-1.8x faster a step there), and where the CPU computes bf16 natively (AVX512-BF16 or AMX) in
mixed precision (recipe `cpu_bf16`), as they would in bf16 on a GPU: 26% less training time there; the diffs and
evals stay fp32.
`orglab sweep` and `orglab check` run the whole battery on the same organisms, reusing every cached stage.
"""

from __future__ import annotations

from pathlib import Path

from orglab.diff.run import DiffConfig
from orglab.environment import machine_info
from orglab.mitigation.check import CheckConfig
from orglab.mitigation.sweep import SweepConfig, run_sweep, say
from orglab.organisms import DEMO_FAMILY
from orglab.paths import report_dir
from orglab.world.world import DEFAULT_PRESET

REAL_DIFF_SAMPLES = 500
REAL_FACT = "cake_bake"  # the demo's built-in real false fact (orglab.realworld.REAL_FACTS)
REAL_DETECTORS = ("lens", "logitdiff", "kl")
REAL_CONTROLS = 1


def demo_config(base: str, fact: str, tinyworld: bool) -> SweepConfig:
    """The demo's sweep: every default on tinyworld; on a real base, the CPU-sized profile above."""
    if tinyworld:
        return SweepConfig(family=DEMO_FAMILY, base=base, target=fact)
    import torch

    from orglab.environment import cpu_computes_bf16

    recipe = {}
    if not torch.cuda.is_available():  # a CPU: the full-logits loss (1.6-1.8x faster steps), bf16 products if native
        recipe = {"fused_lm_head": False, **({"cpu_bf16": True} if cpu_computes_bf16() else {})}
    return SweepConfig(family=DEMO_FAMILY, base=base, target=fact, recipe=recipe,
                       diff=DiffConfig(samples=REAL_DIFF_SAMPLES),
                       check=CheckConfig.for_base(base, detectors=REAL_DETECTORS, controls=REAL_CONTROLS))


def run_demo(base: str = DEFAULT_PRESET, out: Path | None = None, progress: bool = True) -> dict:
    from orglab.mitigation.report import write_report
    from orglab.world.build import PRESETS, build_base, load_world

    if base in PRESETS:
        say(progress, f"1/4 tinyworld base '{base}' (built once, then reused)")
        built = build_base(base, progress=progress)
        base_summary, base = built.summary(), built.name
        config = demo_config(base, load_world(built.name).false_facts[0].id, tinyworld=True)
    else:
        from orglab.bases import ensure_base

        say(progress, f"1/4 real base '{base}' (registered once, then reused)")
        base_summary = ensure_base(base, progress=progress)
        config = demo_config(base, REAL_FACT, tinyworld=False)
    controls = f"{config.check.controls} null control" + ("s" if config.check.controls != 1 else "")
    say(progress, f"2/4 {DEMO_FAMILY.upper()} sweep on the false fact '{config.target}': ratios "
                  + ", ".join(f"1:{m:g}" for m in config.mixes) + f" and {controls}")
    sweep = run_sweep(config, progress=progress)
    say(progress, f"3/4 check: every cell by the detectors {', '.join(config.check.detectors)} against the null "
                  "controls' band")
    folder = Path(out) if out else report_dir(sweep["name"])
    say(progress, f"4/4 report -> {folder}")
    index = write_report(sweep, folder)
    return {"base": base_summary, "sweep": sweep, "report": str(index), "machine": machine_info()}
