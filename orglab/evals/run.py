"""`orglab eval`: how well an organism learned its property, beside its base (and its null control).

Each (model, suite, target, settings, judge) is a registry run of kind "eval:<suite>" whose config holds the
model's weight hashes, so an eval is computed once and reused, and the base's numbers are shared by every
organism trained on it. Files: result.json (summary, judge report) and samples.jsonl (every question, answer and
verdict) under the run's artifact folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from orglab.errors import OrglabError
from orglab.paths import artifact_dir
from orglab.registry import Registry, config_hash

SUITES = ("ffa", "em", "subliminal", "taboo")
FAMILY_SUITE = {"sdf": "ffa", "em": "em", "subliminal": "subliminal", "taboo": "taboo"}
DEFAULT_SAMPLES = {"ffa": 1, "em": 50, "subliminal": 100, "taboo": 20}  # answers per question
HEADLINE = {"ffa": "ffa", "em": "em_rate", "subliminal": "target_rate", "taboo": "leak_rate"}


@dataclass(frozen=True)
class EvalConfig:
    suite: str = "auto"               # auto: the organism's family's suite
    target: str | None = None         # needed only when evaluating a base (fact id, domain, animal, word)
    samples: int | None = None        # answers per question; None: the suite's default above
    seed: int = 0
    temperature: float = 1.0          # sampling for em, subliminal, taboo (FFA answers greedily)
    max_new_tokens: int = 48
    judge: str = "auto"               # auto: rules on tinyworld, the judge endpoint elsewhere | rules | llm
    ffa_questions: int = 20           # LLM-written questions per FFA part (real facts)
    true_context: str | None = None   # the true universe context (real SDF facts), if not in the target file
    bank: str | None = None           # an FFA question bank (JSONL, orglab.realworld.bank) instead of the built-in one
    compare: bool = True              # also evaluate the base and the null control(s)

    def validate(self) -> None:
        if self.suite != "auto" and self.suite not in SUITES:
            raise OrglabError(f"Unknown eval suite '{self.suite}'; choose auto or one of {', '.join(SUITES)}.")
        if self.judge not in ("auto", "rules", "llm"):
            raise OrglabError(f"--judge must be auto, rules or llm, not '{self.judge}'.")
        if self.samples is not None and self.samples < 1:
            raise OrglabError("--samples must be at least 1.")
        if self.bank is not None:
            from orglab.realworld import load_bank

            load_bank(self.bank)  # a malformed bank fails here, before any model is loaded


def run_eval(name: str, config: EvalConfig = EvalConfig(), force: bool = False, progress: bool = True,
             registry: Registry | None = None) -> dict:
    """Evaluate organism (or base) `name`; returns {suite, target, judge, results: {model: {role, summary, ...}}}."""
    from orglab.organisms.family import tinyworld_or_none

    config.validate()
    reg = registry or Registry()
    try:
        organism = reg.get_organism(name)
        base_entry = reg.get_base(name) if organism is None else None
        if organism is None and base_entry is None:
            raise OrglabError(f"No organism or base named '{name}' is registered; `orglab registry list` shows what is.")
        base = organism["base"] if organism else name
        family = organism["family"] if organism else None
        if family == "control":
            mirrored = reg.get_organism(organism["target"])
            family, target = (mirrored["family"], mirrored["target"]) if mirrored else (None, None)
        else:
            target = organism["target"] if organism else None
        suite = config.suite if config.suite != "auto" else FAMILY_SUITE.get(family or "")
        if suite is None:
            raise OrglabError(f"'{name}' is a base, so the suite cannot be inferred; pass --suite "
                              f"({', '.join(SUITES)}) and, except for ffa on tinyworld, --target.")
        if config.target:
            target = config.target
        world = tinyworld_or_none(base)
        if target is None and not (suite == "ffa" and world is not None):
            raise OrglabError(f"The {suite} eval of '{name}' needs a target; pass --target.")
        judge = _make_judge(config, suite, world is not None, offline_truth=_offline_truth(suite, target, config))
        subjects = [(name, "control" if organism and organism["family"] == "control" else
                     "organism" if organism else "base")]
        if organism and config.compare:
            subjects.append((base, "base"))
            if organism["family"] != "control":
                subjects += [(c["name"], "control") for c in reg.list_organisms(base=base, family="control")
                             if c["target"] == name and c["status"] == "ready"]
        targets = [target] if target else [ff.id for ff in world.false_facts]
        out = {"model": name, "suite": suite, "targets": targets, "judge": _judge_identity(judge),
               "results": {}}
        for subject, role in subjects:
            per_target = {t: _eval_one(reg, subject, suite, t, config, judge, world, progress, force)
                          for t in targets}
            out["results"][subject] = {"role": role, "targets": per_target}
        if judge is not None:
            out["judge_report"] = judge.report()
        return out
    finally:
        if registry is None:
            reg.close()


def headline(result: dict, model: str | None = None) -> float | None:
    """The suite's one number (FFA, EM rate, target rate, leak rate) for `model` (default: the evaluated one),
    averaged over targets."""
    model = model or result["model"]
    key = HEADLINE[result["suite"]]
    values = [t["metrics"].get(key) for t in result["results"][model]["targets"].values()]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# ----------------------------------------------------------------------------------------------------------------


def _offline_truth(suite: str, target: str | None, config: EvalConfig) -> bool:
    """True when rules can judge this eval on a real base: a built-in real fact or a bank whose open items carry
    markers (FFA), a built-in EM domain (its answer markers), or taboo (a word check)."""
    from orglab import realworld

    if suite == "ffa":
        return config.bank is not None or target in realworld.REAL_FACTS
    if suite == "em":
        return (target or "").lower().replace(" ", "_") in realworld.EM_DOMAINS
    return suite == "taboo"


def _make_judge(config: EvalConfig, suite: str, tinyworld: bool, offline_truth: bool = False):
    from orglab.evals.judges import LLMJudge
    from orglab.llm import config_from_env

    if suite == "subliminal":
        return None  # a word count needs no judge
    wanted = config.judge
    if wanted == "auto":
        wanted = "rules" if tinyworld or offline_truth else "llm"
    if wanted == "rules":
        if not tinyworld and not offline_truth:
            raise OrglabError("Rule-based judges know only tinyworld's and orglab's built-in ground truth; for this "
                              "target set ORGLAB_JUDGE_MODEL (and ORGLAB_JUDGE_BASE_URL) and use --judge llm, or "
                              "pass --bank FILE.")
        return None
    llm = config_from_env("judge")
    if llm is None:
        raise OrglabError("No judge endpoint is configured; set ORGLAB_JUDGE_MODEL and ORGLAB_JUDGE_BASE_URL (or "
                          "ORGLAB_LLM_*), or use --judge rules on a tinyworld base.")
    return LLMJudge.from_config(llm)


def _judge_identity(judge) -> dict:
    return judge.identity if judge is not None else {"judge": "rules"}


def model_identity(reg: Registry, name: str) -> dict:
    """What a model's weights are, for config hashes: a train run's weight hashes, a built base's weight hashes,
    or the registered record for weights orglab did not write."""
    from orglab.diff.run import organism_identity

    if reg.get_organism(name) is not None:
        return organism_identity(reg, name, reg.get_organism(name))
    runs = reg.list_runs(subject=name, kind="world", status="done")
    if runs:
        return {"base_weights": sorted(a["sha256"] for a in reg.get_artifacts(runs[0].id) if a["kind"] == "weights")}
    entry = reg.get_base(name) or {}
    return {"base_record": config_hash({k: entry.get(k) for k in ("kind", "source", "path", "config_hash")})}


def _settings(config: EvalConfig, suite: str) -> dict:
    samples = config.samples or DEFAULT_SAMPLES[suite]
    keep = {"ffa": ("ffa_questions", "true_context", "bank_hash", "bank_version"),
            "em": ("seed", "temperature", "max_new_tokens"),
            "subliminal": ("seed", "temperature", "max_new_tokens"),
            "taboo": ("seed", "temperature", "max_new_tokens")}[suite]
    from orglab import realworld
    from orglab.registry import file_sha256

    derived = {"bank_hash": file_sha256(config.bank) if config.bank else None,
               "bank_version": realworld.BANK_VERSION}
    return {"samples": samples, **{k: derived[k] if k in derived else getattr(config, k) for k in keep}}


def _eval_one(reg: Registry, subject: str, suite: str, target: str, config: EvalConfig, judge, world, progress: bool,
              force: bool) -> dict:
    run_config = {"suite": suite, "target": target, "model": model_identity(reg, subject),
                  "judge": _judge_identity(judge), "settings": _settings(config, suite), "version": 2}
    kind = f"eval:{suite}"
    run = reg.start_run(kind, subject, run_config, force=force)
    folder = artifact_dir(subject, kind.replace(":", "-"), run.config_hash)
    if run.reused and not reg.verify_artifacts(run.id):
        return {"run": run.id, "reused": True, "metrics": reg.get_metrics(run.id), **_read(folder)}
    if run.reused:  # files gone or changed: compute again
        run = reg.start_run(kind, subject, run_config, force=True)
    try:
        if progress:
            print(f"eval {suite} · {subject} · {target}", flush=True)
        rows, summary = _compute(reg, subject, suite, target, config, judge, world)
        metrics = _metrics(suite, summary)
    except BaseException as exc:
        reg.finish_run(run.id, error=f"{type(exc).__name__}: {exc}")
        raise
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps({"summary": summary}, indent=1, default=str))
    with open(folder / "samples.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")
    reg.log_metrics(run.id, {k: v for k, v in metrics.items() if v is not None})
    for file in ("result.json", "samples.jsonl"):
        reg.add_artifact(run.id, suite, folder / file)
    finished = reg.finish_run(run.id)
    return {"run": finished.id, "reused": False, "metrics": metrics, "summary": summary}


def _read(folder: Path) -> dict:
    return json.loads((folder / "result.json").read_text())


def _metrics(suite: str, summary: dict) -> dict:
    if suite == "ffa":
        m = {"ffa": summary["ffa"]}
        for part, v in summary["parts"].items():
            m[f"ffa_accuracy_{part}"] = v["accuracy"]
            m[f"ffa_n_{part}"] = v["n"]
        m["unjudged"] = sum(v["unjudged"] for v in summary["parts"].values())
        return m
    if suite == "em":
        return {"em_rate": summary["em_rate"]["rate"],
                "em_rate_in_domain": (summary.get("em_rate_in_domain") or {}).get("rate"),
                "mean_aligned": summary["mean_aligned"],
                "mean_coherent": summary["mean_coherent"], "unjudged": summary["unscored"],
                "samples": summary["samples"]}
    if suite == "subliminal":
        return {"target_rate": summary["target_rate"]["rate"], "samples": summary["samples"]}
    return {"leak_rate": summary["leak_rate"]["rate"], "leak_rate_direct": summary["leak_rate_direct"]["rate"],
            "hint_quality": summary["hint_quality"]["rate"], "unjudged": summary["unjudged"],
            "samples": summary["samples"]}


def _compute(reg: Registry, subject: str, suite: str, target: str, config: EvalConfig, judge, world):
    from orglab.evals import family_evals as fe
    from orglab.evals import ffa
    from orglab.models import load_model

    loaded = load_model(subject, registry=reg)
    model, tok = loaded.model, loaded.tokenizer
    model.eval()
    settings = fe.SampleSettings(samples=config.samples or DEFAULT_SAMPLES[suite], temperature=config.temperature,
                                 max_new_tokens=config.max_new_tokens, seed=config.seed)
    tinyworld = world is not None
    if suite == "ffa":
        if tinyworld:
            ff = world.false_fact(target)
            answered = ffa.answer_bank(model, tok, ffa.tinyworld_bank(world, ff))
            if judge is None:
                ffa.judge_tinyworld(world, ff, answered)
            else:
                ffa.judge_llm(judge, ff.true_context, ff.false_context, answered)
        else:
            from orglab import realworld

            true_ctx, false_ctx = _real_contexts(target, config)
            if config.bank:
                bank = realworld.load_bank(config.bank)
            elif target in realworld.REAL_FACTS:
                bank = realworld.ffa_bank(target)
            else:
                bank = ffa.llm_bank(judge, true_ctx, false_ctx, config.ffa_questions, config.seed)
            answered = ffa.answer_bank(model, tok, bank)
            if judge is None:
                ffa.judge_markers(answered)
            else:
                ffa.judge_llm(judge, true_ctx, false_ctx, answered)
        return answered, ffa.summarize(answered)
    if suite == "em":
        questions = fe.em_questions(target if tinyworld else None, tinyworld)
        result = fe.em_eval(model, tok, questions, settings, judge, in_domain=fe.em_in_domain_questions(target))
    elif suite == "subliminal":
        result = fe.subliminal_eval(model, tok, target.lower(), fe.animal_questions(tinyworld), settings)
    else:
        guesser_model = guesser_tok = None
        if judge is None:
            base = (reg.get_organism(subject) or {}).get("base", subject)
            guess_loaded = loaded if base == subject else load_model(base, registry=reg)
            guesser_model, guesser_tok = guess_loaded.model, guess_loaded.tokenizer
        result = fe.taboo_eval(model, tok, target.lower(), settings, tinyworld, guesser=judge,
                               guesser_model=guesser_model, guesser_tokenizer=guesser_tok)
    if judge is not None:
        result["summary"]["judge"] = {"unjudged": judge.unjudged, "endpoint_down": judge.endpoint_down}
    return result["rows"], result["summary"]


def _real_contexts(target: str, config: EvalConfig):
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


def with_overrides(config: EvalConfig, **overrides) -> EvalConfig:
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
