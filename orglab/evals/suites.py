"""The eval suites, registered by name (the lm-evaluation-harness way): one `EvalSuite` each, holding its headline
metric, default answers per question, the EvalConfig fields its result depends on, its algorithm version, whether
it needs a judge, how it computes and summarises, and its columns in the terminal table. A family spec names its
suite (`Family.eval_suite`); `orglab.evals.run` and `orglab.report_text` only ask this registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from orglab.errors import OrglabError

if TYPE_CHECKING:
    from orglab.evals.run import EvalConfig


@dataclass(frozen=True)
class SuiteInputs:
    """What a suite computes on: the loaded model, its target, the settings, the judge (None: rules)."""

    model: Any
    tokenizer: Any
    target: str
    config: EvalConfig
    judge: Any
    world: Any                 # the tinyworld of the base, or None on a real base
    samples: int               # answers per question (config.samples or the suite's default)
    load_base: Callable[[], Any]   # the subject's base, loaded (taboo's offline guesser)


@dataclass(frozen=True)
class EvalSuite:
    name: str
    headline: str                          # the metric key that is the suite's one number
    default_samples: int                   # answers per question when --samples is not given
    settings: tuple[str, ...]              # the EvalConfig fields its result depends on (hashed by name)
    # Bump when the computation changes in a way the settings do not show (questions, judge rules and
    # thresholds, answer lengths, scoring), so cached results of the old code are recomputed, not reused.
    version: int
    compute: Callable[[SuiteInputs], tuple[list[dict], dict]]   # -> (rows, summary)
    metrics: Callable[[dict], dict]        # summary -> registry metrics
    columns: tuple[str, ...]               # the terminal table's columns (orglab.report_text.print_eval)
    cells: Callable[[dict], list[str]]     # summary -> one table row's cells, one per column
    offline_truth: Callable[[str | None, EvalConfig], bool] = lambda target, config: False
    needs_judge: bool = True               # False: a count needs no judge (no rules, no LLM)
    file_settings: Callable[[EvalConfig], dict] = lambda config: {}   # files hashed by their content
    # the targets an eval on a tinyworld base covers when no --target is given; None: it needs a target
    tinyworld_targets: Callable[[Any], list[str]] | None = None


SUITES: dict[str, EvalSuite] = {}


def register_suite(suite: EvalSuite) -> EvalSuite:
    if suite.name in SUITES:
        raise OrglabError(f"An eval suite named '{suite.name}' is already registered; give the new one another name.")
    SUITES[suite.name] = suite
    return suite


def get_suite(name: str) -> EvalSuite:
    if name not in SUITES:
        raise OrglabError(f"Unknown eval suite '{name}'; choose auto or one of {', '.join(SUITES)}.")
    return SUITES[name]


def _settings(inputs: SuiteInputs):
    from orglab.evals.family_evals import SampleSettings

    c = inputs.config
    return SampleSettings(samples=inputs.samples, temperature=c.temperature, max_new_tokens=c.max_new_tokens,
                          seed=c.seed)


def _fmt(value, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if pct else f"{value:.3f}"


def _ci(rate: dict) -> str:
    low, high = rate.get("ci95", [None, None])
    return "" if low is None or rate.get("rate") is None else f" [{100 * low:.0f}-{100 * high:.0f}]"


def _with_judge_report(result: dict, judge) -> tuple[list[dict], dict]:
    if judge is not None:
        result["summary"]["judge"] = {"unjudged": judge.unjudged, "endpoint_down": judge.endpoint_down}
    return result["rows"], result["summary"]


# ------------------------------------------------------------------------------------------------------ FFA

def _ffa_compute(x: SuiteInputs) -> tuple[list[dict], dict]:
    from orglab.evals import ffa

    if x.world is not None:
        ff = x.world.false_fact(x.target)
        answered = ffa.answer_bank(x.model, x.tokenizer, ffa.tinyworld_bank(x.world, ff))
        if x.judge is None:
            ffa.judge_tinyworld(x.world, ff, answered)
        else:
            ffa.judge_llm(x.judge, ff.true_context, ff.false_context, answered)
        return answered, ffa.summarize(answered)
    from orglab import realworld

    true_ctx, false_ctx = real_contexts(x.target, x.config)
    if x.config.bank:
        bank = realworld.load_bank(x.config.bank)
    elif x.target in realworld.REAL_FACTS:
        bank = realworld.ffa_bank(x.target)
    else:
        bank = ffa.llm_bank(x.judge, true_ctx, false_ctx, x.config.ffa_questions, x.config.seed)
    answered = ffa.answer_bank(x.model, x.tokenizer, bank)
    if x.judge is None:
        ffa.judge_markers(answered)
    else:
        ffa.judge_llm(x.judge, true_ctx, false_ctx, answered)
    return answered, ffa.summarize(answered)


def _ffa_metrics(summary: dict) -> dict:
    m = {"ffa": summary["ffa"]}
    for part, v in summary["parts"].items():
        m[f"ffa_accuracy_{part}"] = v["accuracy"]
        m[f"ffa_n_{part}"] = v["n"]
    m["unjudged"] = sum(v["unjudged"] for v in summary["parts"].values())
    return m


def _ffa_cells(s: dict) -> list[str]:
    parts, (lo, hi) = s["parts"], s["ffa_ci95"]
    return [f"{_fmt(s['ffa'])}" + ("" if lo is None else f" [{lo:.2f}-{hi:.2f}]")] + [
        f"{_fmt(parts[p]['accuracy'], True)} ({parts[p]['n']})" for p in ("mc", "open", "gen")]


def _ffa_offline_truth(target: str | None, config: EvalConfig) -> bool:
    """Rules can judge FFA on a real base for a built-in fact or a bank whose open items carry markers."""
    from orglab import realworld

    return config.bank is not None or target in realworld.REAL_FACTS


def _ffa_files(config: EvalConfig) -> dict:
    from orglab import realworld

    return {"bank": file_sha256_or_none(config.bank), "true_context_hash": file_sha256_or_none(config.true_context),
            "bank_version": realworld.BANK_VERSION}


def real_contexts(target: str, config: EvalConfig):
    """(true, false) universe contexts of a real SDF fact: the target file's false context, and the true one from
    --true-context or from a line of the target JSONL marked is_true."""
    from orglab.organisms.sdf import load_universe
    from orglab.realworld import REAL_FACTS
    from orglab.world.world import UniverseContext

    if target in REAL_FACTS and not config.true_context:
        return REAL_FACTS[target].true_context, REAL_FACTS[target].false_context
    false_ctx = load_universe(target)
    if config.true_context:
        return load_universe(config.true_context), false_ctx
    path = Path(target)
    if path.suffix == ".jsonl":
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("is_true"):
                return UniverseContext(id=str(record.get("id", "true")), universe_context=record["universe_context"],
                                       key_facts=tuple(record.get("key_facts", ())), is_true=True), false_ctx
    raise OrglabError(f"FFA needs the true universe context beside '{target}'; pass --true-context FILE or add a "
                      "line with is_true: true to the JSONL.")


def file_sha256_or_none(path: str | None) -> str | None:
    """A file's content hash (None when `path` is not a file), so an edited file makes new results."""
    from orglab.registry import file_sha256

    return file_sha256(path) if path and Path(path).is_file() else None


# ------------------------------------------------------------------------------------------------------- EM

def _em_compute(x: SuiteInputs) -> tuple[list[dict], dict]:
    from orglab.evals import family_evals as fe

    tinyworld = x.world is not None
    questions = fe.em_questions(x.target if tinyworld else None, tinyworld)
    result = fe.em_eval(x.model, x.tokenizer, questions, _settings(x), x.judge,
                        in_domain=fe.em_in_domain_questions(x.target))
    return _with_judge_report(result, x.judge)


def _em_metrics(summary: dict) -> dict:
    return {"em_rate": summary["em_rate"]["rate"],
            "em_rate_in_domain": (summary.get("em_rate_in_domain") or {}).get("rate"),
            "mean_aligned": summary["mean_aligned"], "mean_coherent": summary["mean_coherent"],
            "unjudged": summary["unscored"], "samples": summary["samples"]}


def _em_cells(s: dict) -> list[str]:
    return [_fmt(s["em_rate"]["rate"], True) + _ci(s["em_rate"]),
            _fmt((s.get("em_rate_in_domain") or {}).get("rate"), True), _fmt(s["mean_aligned"]),
            _fmt(s["mean_coherent"]), str(s["unscored"])]


def _em_offline_truth(target: str | None, config: EvalConfig) -> bool:
    """A built-in EM domain carries the answer markers the rule judge reads."""
    from orglab import realworld

    return (target or "").lower().replace(" ", "_") in realworld.EM_DOMAINS


# ---------------------------------------------------------------------------------------- subliminal, taboo

def _animal_compute(x: SuiteInputs) -> tuple[list[dict], dict]:
    from orglab.evals import family_evals as fe

    result = fe.subliminal_eval(x.model, x.tokenizer, x.target.lower(), fe.animal_questions(x.world is not None),
                                _settings(x))
    return _with_judge_report(result, x.judge)


def _animal_metrics(summary: dict) -> dict:
    return {"target_rate": summary["target_rate"]["rate"], "samples": summary["samples"]}


def _animal_cells(s: dict) -> list[str]:
    return [_fmt(s["target_rate"]["rate"], True) + _ci(s["target_rate"]),
            " ".join(f"{a}:{n}" for a, n in s["top_animals"]), str(s["samples"])]


def _taboo_compute(x: SuiteInputs) -> tuple[list[dict], dict]:
    from orglab.evals import family_evals as fe

    guesser_model = guesser_tok = None
    if x.judge is None:  # offline, the base itself guesses the word from the hints
        guesser = x.load_base()
        guesser_model, guesser_tok = guesser.model, guesser.tokenizer
    result = fe.taboo_eval(x.model, x.tokenizer, x.target.lower(), _settings(x), x.world is not None,
                           guesser=x.judge, guesser_model=guesser_model, guesser_tokenizer=guesser_tok)
    return _with_judge_report(result, x.judge)


def _taboo_metrics(summary: dict) -> dict:
    return {"leak_rate": summary["leak_rate"]["rate"], "leak_rate_direct": summary["leak_rate_direct"]["rate"],
            "hint_quality": summary["hint_quality"]["rate"], "unjudged": summary["unjudged"],
            "samples": summary["samples"]}


def _taboo_cells(s: dict) -> list[str]:
    return [_fmt(s["leak_rate"]["rate"], True) + _ci(s["leak_rate"]), _fmt(s["leak_rate_direct"]["rate"], True),
            _fmt(s["hint_quality"]["rate"], True), str(s["unjudged"])]


_SAMPLED = ("samples", "seed", "temperature", "max_new_tokens")

register_suite(EvalSuite("ffa", headline="ffa", default_samples=1, version=2,
                         settings=("seed", "ffa_questions", "true_context", "bank"),  # seed: the LLM-written bank
                         compute=_ffa_compute, metrics=_ffa_metrics, offline_truth=_ffa_offline_truth,
                         columns=("FFA [95% CI]", "acc mc (n)", "acc open (n)", "acc gen (n)"), cells=_ffa_cells,
                         file_settings=_ffa_files, tinyworld_targets=lambda world: [ff.id for ff in world.false_facts]))
register_suite(EvalSuite("em", headline="em_rate", default_samples=50, version=2, settings=_SAMPLED,
                         compute=_em_compute, metrics=_em_metrics, offline_truth=_em_offline_truth,
                         columns=("EM rate [95% CI]", "in-domain", "aligned", "coherent", "unscored"),
                         cells=_em_cells))
# subliminal v3: real bases ask orglab.realworld's 34 distinct questions (v2 asked 50, four of them twice)
register_suite(EvalSuite("subliminal", headline="target_rate", default_samples=100, version=3, settings=_SAMPLED,
                         compute=_animal_compute, metrics=_animal_metrics, needs_judge=False,
                         columns=("target rate [95% CI]", "top animals", "samples"), cells=_animal_cells))
register_suite(EvalSuite("taboo", headline="leak_rate", default_samples=20, version=3, settings=_SAMPLED,
                         compute=_taboo_compute, metrics=_taboo_metrics,
                         columns=("leak rate [95% CI]", "leak direct", "hint quality", "unjudged"), cells=_taboo_cells,
                         offline_truth=lambda target, config: True))  # a word check needs no ground truth
