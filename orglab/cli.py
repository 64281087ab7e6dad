"""The `orglab` command. Thin: parse arguments, call the modules, print (a table, or one JSON object)."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from pathlib import Path

from orglab import __version__
from orglab.errors import OrglabError

EPILOG = "Every command that reports results accepts --json and then prints one JSON object on stdout. " \
         "ORGLAB_HOME (default ~/.orglab) holds the registry and all artifacts."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "json", False):
            # Libraries (deepspeed, transformers) print to stdout; in --json mode stdout carries one JSON object only.
            with contextlib.redirect_stdout(sys.stderr):
                return args.handler(args) or 0
        return args.handler(args) or 0
    except OrglabError as exc:
        print(f"orglab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
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
    build.add_argument("--preset", default="tiny", help="tiny (the demo's base, ~5 min) or micro (tests, <1 min)")
    build.add_argument("--seed", type=int, default=0, help="world seed; seed 0 registers the base under the preset's name")
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

    demo = sub.add_parser("demo", help="the main job on the embedded default: build the tiny base, show what it knows",
                          description="Build (or reuse) the tinyworld base 'tiny' and report what it knows, "
                                      "measured on phrasings held out from its corpus.")
    demo.add_argument("--preset", default="tiny", help=argparse.SUPPRESS)
    _json_flag(demo)
    demo.set_defaults(handler=cmd_demo)
    return parser


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")


def _print_json(obj: dict) -> None:
    """The one JSON object of --json mode, on the real stdout (sys.stdout is redirected to stderr meanwhile)."""
    sys.__stdout__.write(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")
    sys.__stdout__.flush()


# --- world ----------------------------------------------------------------------------------------------------

def cmd_world_build(args) -> int:
    from orglab.world.build import build_base

    built = build_base(args.preset, seed=args.seed, force=args.force, progress=not args.json)
    if args.json:
        _print_json(built.summary())
    else:
        from orglab import report_text

        report_text.print_base(built)
    return 0


def cmd_demo(args) -> int:
    from orglab.world.build import build_base

    built = build_base(args.preset, progress=not args.json)
    if args.json:
        _print_json({"base": built.summary()})
        return 0
    from orglab import report_text

    report_text.print_base(built, verbose=True)
    return 0


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
    deleted = [] if args.keep_files else _delete_owned(removed.get("paths", []), orglab_home())
    result = {"removed": removed.get("type"), "name": removed.get("name"), "runs": removed.get("runs", []),
              "deleted_paths": deleted}
    if args.json:
        _print_json(result)
    else:
        print(f"removed {result['removed']} {result['name']} ({len(result['runs'])} runs, {len(deleted)} paths deleted)")
    return 0


def _delete_owned(paths: list[str], home: Path) -> list[str]:
    """Delete files and folders that orglab wrote (under ORGLAB_HOME); never anything of the user's elsewhere."""
    deleted = []
    home = home.resolve()
    for p in paths:
        path = Path(p).resolve()
        if not path.exists() or home not in path.parents:
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        deleted.append(str(path))
    return deleted


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
