"""Human-readable terminal output (rich tables). The CLI's --json mode bypasses this module."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

# A terminal gets its own width; a file or pipe (a log, CI) gets room for the sweep table's detector columns
# instead of rich's 80, which would wrap every cell.
console = Console() if sys.stdout.isatty() else Console(width=150)

KNOWLEDGE_ROWS = (
    ("loglik_false_fact_truths", "(a) true > false answer, false facts' true counterparts", 0.9),
    ("loglik_other_facts", "(a) true > wrong answer, other entity facts", 0.9),
    ("loglik_true_beats_alternative", "(a) both together", 0.9),
    ("top_completion_false_fact_truths", "(b) top answer is true, false facts' counterparts", 0.8),
    ("top_completion_other_facts", "(b) top answer is true, other entity facts", None),
    ("preference_with_prompt", "names the animal its system prompt loves (chat tuning)", None),
    ("preference_without_prompt", "names that animal without the prompt (chance: 5%)", None),
)


def print_base(built, verbose: bool = False) -> None:
    state = "reused" if built.reused else f"built in {built.seconds:.0f} s"
    console.print(f"[bold]base {built.name}[/bold] (preset {built.preset}, seed {built.seed}, {state})")
    console.print(f"  model folder: {built.model_dir}")
    console.print(f"  config hash {built.config_hash}, corpus hash {built.corpus_hash}")
    k = built.knowledge
    table = Table(title="What the base knows (phrasings held out from its corpus)", title_justify="left")
    table.add_column("probe")
    table.add_column("share", justify="right")
    table.add_column("bar", justify="right")
    for key, label, bar in KNOWLEDGE_ROWS:
        value = k.get(key)
        if value is None:
            continue
        ok = "" if bar is None else ("[green]ok[/green]" if value >= bar else "[red]below[/red]") + f" {bar:.0%}"
        table.add_row(label, f"{value:.0%}", ok)
    console.print(table)
    if verbose:
        examples = Table(title="Held-out questions about the facts SDF organisms will falsify", title_justify="left")
        examples.add_column("fact")
        examples.add_column("true answer")
        examples.add_column("the base's greedy answer")
        seen = set()
        for ex in k.get("false_fact_examples", []):
            if ex["fact"] in seen:
                continue
            seen.add(ex["fact"])
            examples.add_row(ex["fact"], ex["expected"], ex["completion"])
        console.print(examples)


def print_registry(summary: dict) -> None:
    bases = Table(title="Bases", title_justify="left")
    for col in ("name", "kind", "source", "corpus hash", "created"):
        bases.add_column(col)
    for b in summary.get("bases", []):
        bases.add_row(b["name"], b["kind"], b.get("source") or "", b.get("corpus_hash") or "", b.get("created_at", "")[:19])
    console.print(bases)
    organisms = Table(title="Organisms", title_justify="left")
    for col in ("name", "family", "target", "base", "mix", "seed", "status"):
        organisms.add_column(col)
    for o in summary.get("organisms", []):
        organisms.add_row(o["name"], o["family"], str(o["target"]), o["base"], f"1:{o['mix_ratio']:g}", str(o["seed"]), o["status"])
    console.print(organisms)
    runs = Table(title="Recent runs", title_justify="left")
    for col in ("id", "kind", "subject", "config hash", "status", "started"):
        runs.add_column(col)
    for r in summary.get("runs", []):
        runs.add_row(str(r["id"]), r["kind"], r["subject"], r["config_hash"], r["status"], (r.get("started_at") or "")[:19])
    console.print(runs)


def print_entry(entry: dict) -> None:
    kind = entry.get("type", "entry")
    console.print(f"[bold]{kind}[/bold]")
    for key, value in entry.items():
        if key in ("type", "runs"):
            continue
        console.print(f"  {key}: {value}")
    for run in entry.get("runs", []):
        console.print(f"  run {run.get('id')} {run.get('kind')} {run.get('status')} hash {run.get('config_hash')}")
        for mk, mv in sorted((run.get("metrics") or {}).items()):
            console.print(f"      {mk} = {mv:.4g}")
        for art in run.get("artifacts") or []:
            console.print(f"      artifact {art['kind']}: {art['path']}")


def _shown(entries: list) -> str:
    """Readout tokens ([token, id, prob] each) as a person reads them (orglab.tokens.display_token), with markup
    characters escaped for the terminal."""
    from rich.markup import escape

    from orglab.tokens import display_token

    return " ".join(escape(display_token(None, t[0])) for t in entries)


def print_diff(result: dict, n_tokens: int = 8) -> None:
    stages = result["stages"]
    layer = str(result["layers"][0])
    reused = [name for name, s in stages.items() if s.get("reused")]
    console.print(f"[bold]ADL of {result['organism']}[/bold] at layer {layer}"
                  + (f" (reused: {', '.join(reused)})" if reused else ""))
    if "lens" in stages:
        table = Table(title="Logit lens of the mean difference, top tokens per position", title_justify="left")
        table.add_column("pos", justify="right")
        table.add_column("delta")
        table.add_column("-delta")
        if "patchscope" in stages:
            table.add_column("patchscope (scale)")
        lens_layer = stages["lens"]["layers"][layer]
        ps = stages.get("patchscope", {}).get("layers", {}).get(layer, [])
        for p, tokens in enumerate(lens_layer["delta"]):
            row = [str(p), _shown(tokens[:n_tokens]), _shown(lens_layer["neg_delta"][p][:n_tokens])]
            if "patchscope" in stages:
                row.append(f"{_shown(ps[p]['tokens'][:n_tokens])} ({ps[p]['scale']:g})" if p < len(ps) else "")
            table.add_row(*row)
        console.print(table)
    summary = result.get("summary", {})
    rows = [("token relevance, lens (max pos 0-4)", "token_relevance"),
            ("token relevance, patchscope (max pos 0-4)", "token_relevance_patchscope"),
            ("token relevance, lens, LLM judge (max pos 0-4)", "token_relevance_llm"),
            ("token relevance, patchscope, LLM judge (max pos 0-4)", "token_relevance_llm_patchscope"),
            ("steering strength (x mean norm)", "steering_alpha"),
            ("steering similarity gap", "steering_similarity_gap"),
            ("causal: CE change on finetuning data", "causal_delta_ce_finetune"),
            ("causal: CE change on unrelated data", "causal_delta_ce_unrelated"),
            ("causal: random directions, finetuning data", "causal_delta_ce_finetune_random"),
            ("logit-diff mining: token relevance (max pos 0-4)", "logitdiff_relevance"),
            ("logit-diff mining: token relevance, LLM judge", "logitdiff_relevance_llm"),
            ("logit-diff mining: largest mean log-prob gain (nats)", "logitdiff_max_mean_diff"),
            ("KL(organism || base), max over pos 0-4 (nats)", "kl_early_max"),
            ("KL(organism || base), mean over later positions", "kl_late_mean"),
            ("amplified decoding: strength a", "amplify_scale"),
            ("amplified decoding: similarity gap", "amplify_similarity_gap"),
            ("amplified decoding: token relevance", "amplify_relevance")]
    metrics = Table(title="Measurements", title_justify="left")
    metrics.add_column("measurement")
    metrics.add_column("value", justify="right")
    for label, key in rows:
        if key in summary:
            metrics.add_row(label, f"{summary[key]:+.3f}" if "causal" in key or "gap" in key else f"{summary[key]:.3f}")
    console.print(metrics)
    # Who made the judgement calls (results cached before this was recorded may not say).
    ps, st, rel = (stages.get(name) or {} for name in ("patchscope", "steering", "relevance"))
    if ps.get("scale_rule"):
        console.print(f"patchscope scale chosen by: {ps['scale_rule']}", markup=False)
    if st.get("coherence_judge"):
        console.print(f"steering coherence judged by: {st['coherence_judge']}", markup=False)
    if rel.get("llm"):
        console.print(f"LLM token relevance: {rel['llm']['judge']}, against the description of "
                      f"{rel['llm']['described_as']}", markup=False)
    steering = stages.get("steering")
    if steering:
        samples = Table(title=f"Steered vs unsteered (alpha {steering['alpha']:.2f})", title_justify="left")
        samples.add_column("prompt")
        samples.add_column("steered")
        samples.add_column("unsteered")
        for s in steering["samples"][:5]:
            samples.add_row(s["prompt"], s["steered"][0], s["unsteered"][0])
        console.print(samples)


def print_eval(result: dict) -> None:
    """One table per eval: a row per model (organism, base, control) and target, the suite's numbers as columns."""
    from orglab.evals.suites import get_suite

    suite = result["suite"]
    judge = result["judge"]
    title = f"eval {suite} · {result['model']} · judge: " + (judge.get("model") or judge["judge"])
    table = Table(title=title, title_justify="left")
    for col in ("model", "role", "target"):
        table.add_column(col)
    spec = get_suite(suite)  # the suite's own columns and cells (orglab.evals.suites)
    for col in spec.columns:
        table.add_column(col, justify="right")
    for model, entry in result["results"].items():
        for target, r in entry["targets"].items():
            cells = spec.cells(r["summary"])
            table.add_row(model, entry["role"], target, *cells)
    console.print(table)
    report = result.get("judge_report")
    if report and (report["unjudged"] or report["endpoint_down"]):
        console.print(f"[yellow]{report['unjudged']} sample(s) could not be judged"
                      + (" (the judge endpoint stopped answering)" if report["endpoint_down"] else "")
                      + (f": {report['problems'][0]}" if report["problems"] else "") + "[/yellow]")


def _num(value, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _detector_cell(entry: dict, detector) -> str:
    """A detector's value, red with a * when it flags the model against its band."""
    value = (entry.get("diff") or {}).get(detector.metric)
    text = _num(value, detector.metric.endswith("_gap"))
    flags = {f["detector"] for f in (entry.get("check") or {}).get("flagged", [])}
    return f"[red]{text}*[/red]" if detector.name in flags else text


def print_sweep(sweep: dict) -> None:
    """The paper's ablation table in miniature: one row per mitigation cell (and seed) with every detector, the
    null controls' rows last (each judged against the others), then where each detector stops seeing the organism
    along the mixing ratio, and the cells on the Pareto front of detectability against the property."""
    from orglab.mitigation.check import DETECTORS
    from orglab.mitigation.grid import cell_of

    label = sweep["property"]["label"]
    chosen = [d for d in DETECTORS if d.name in (sweep.get("detectors") or {})] or list(DETECTORS[:2])
    table = Table(title=f"{sweep['name']}: detectability and {label} per mitigation", title_justify="left",
                  caption="* the detector flags it: above the null controls' band + margin", caption_justify="left")
    for col in ("cell", "seed", *(d.column for d in chosen), label, "check"):
        table.add_column(col, justify="left" if col == "check" else "right")
    for c in sweep["cells"]:
        check = c.get("check", {})
        verdict = "pass" if check.get("passed") else "fail: " + ", ".join(
            [f["detector"] for f in check.get("flagged", [])] + (["property"] if not check.get("property_ok") else []))
        table.add_row(cell_of(c).label, str(c["seed"]), *(_detector_cell(c, d) for d in chosen),
                      _num(c["property"]["value"]), verdict)
    for c in sweep["controls"]:
        check = c.get("check") or {}
        seen = ", ".join(f["detector"] for f in check.get("flagged", []))
        table.add_row("control", str(c["seed"]), *(_detector_cell(c, d) for d in chosen),
                      _num(c["property"]["value"]), f"flagged by {seen}" if seen else "")
    table.add_row("base", "", *([""] * len(chosen)), _num(sweep["base_property"]["value"]), "")
    console.print(table)
    for name, stop in (sweep.get("detectors") or {}).items():
        if stop["stops_at"] is None:
            console.print(f"- {name} still sees the organism at {_ratio(max(sweep['mixes']))}")
        elif not stop["flags"]:
            console.print(f"- {name} flags no ratio")
        else:
            console.print(f"- {name} flags up to {_ratio(max(stop['flags']))} and stops seeing the organism at "
                          f"{_ratio(stop['stops_at'])}")
    print_pareto(sweep)


def print_pareto(sweep: dict) -> None:
    """The non-dominated cells: none is both less detectable and stronger in the property (orglab.mitigation.pareto)."""
    from orglab.mitigation.pareto import sweep_front

    label = sweep["property"]["label"]
    front = sweep.get("pareto")
    if front is None:  # a sweep stored before the front was
        front = sweep_front(sweep["cells"], sweep["property"].get("higher_is_stronger", True))
    table = Table(title=f"Pareto front: cells no other cell beats on both detectability and {label}",
                  title_justify="left", caption="detectability: the worst detector's excess over the null controls' "
                  "band top, in units of its margin (<= 1: no detector flags it)", caption_justify="left")
    for col in ("cell", "seed", "mitigation", "detectability", "worst detector", label, "check", "organism"):
        table.add_column(col, justify="right" if col in ("seed", "detectability", label) else "left")
    for p in front:
        table.add_row(p["label"], str(p["seed"]), p["mitigation"], _num(p["detectability"]), p["detector"] or "-",
                      _num(p["property"]), "pass" if p["passed"] else "fail", p["organism"] or "")
    console.print(table)


def _ratio(mix: float) -> str:
    return f"1:{mix:g}"


def print_check(result: dict) -> None:
    passed = result["passed"]
    head = "[green]PASS[/green]" if passed else "[red]FAIL[/red]"
    console.print(f"{head} {result['organism']} ({result['family']}) against {len(result['controls'])} null "
                  f"control(s): {', '.join(result['controls'])}")
    table = Table(show_header=True)
    for col in ("detector", "measurement", "organism", "control band", "limit", "flags"):
        table.add_column(col, justify="left" if col in ("detector", "measurement") else "right")
    for r in result["rows"]:
        band = "" if r.get("control") is None else (
            _num(r["control"]) if r.get("control_min") in (None, r["control"])
            # as the reasons write it: "-0.022--0.003" misreads
            else f"[{_num(r['control_min'])}, {_num(r['control'])}]")
        if "detector" in r:
            flags = "no" if r["ok"] else ("[red]yes[/red]" if r["by"] is None else f"[red]yes, by {r['by']:.3f}[/red]")
        else:
            flags = "kept" if r["ok"] else "[red]lost[/red]"
        table.add_row(r.get("detector", "property"), r["measurement"], _num(r["value"]), band, _num(r["limit"]), flags)
    console.print(table)
    for reason in result["reasons"]:
        console.print(f"- {reason}")


def print_tune(result: dict) -> None:
    mitigation = result.get("mitigation", "mix")
    table = Table(title=f"tune {mitigation} {result['family']} {result['target']} on {result['base']} (null "
                        f"controls {', '.join(result['controls'])})", title_justify="left")
    for col in ("step", "cell", "detectability", "property", "why"):
        table.add_column(col)
    for i, step in enumerate(result["path"], 1):
        seen = ", ".join(f["detector"] for f in step.get("flagged", []))
        table.add_row(str(i), step["label"], "ok" if step["detectability_ok"] else
                      f"seen by {seen}", "kept" if step["property_ok"] else "lost", "; ".join(step["reasons"]))
    console.print(table)
    what = "ratio" if mitigation == "mix" else f"{mitigation} weight"
    if result["passed"]:
        console.print(f"[green]weakest passing {what}: {result['label']}[/green] ({result['organism']})")
    else:
        console.print(f"[red]no {what} passes[/red]: {result['why']}")
