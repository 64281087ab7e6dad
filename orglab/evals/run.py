"""`orglab eval`: how well an organism learned its property, beside its base (and its null control).

Each (model, suite, target, settings, judge) is a registry run of kind "eval:<suite>" whose config holds the
model's weight hashes, so an eval is computed once and reused, and the base's numbers are shared by every
organism trained on it. Files: result.json (summary, judge report) and samples.jsonl (every question, answer and
verdict) under the run's artifact folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from orglab.errors import OrglabError
from orglab.evals.suites import SUITES, SuiteInputs, file_sha256_or_none, get_suite
from orglab.paths import artifact_dir
from orglab.registry import Registry, config_hash


@dataclass(frozen=True)
class EvalConfig:
    suite: str = "auto"               # auto: the organism's family's suite (orglab.evals.suites)
    target: str | None = None         # needed only when evaluating a base (fact id, domain, animal, word)
    samples: int | None = field(default=None, metadata={
        "help": "answers per question; unset: the suite's own default (" + ", ".join(
            f"{s.name} {s.default_samples}" for s in SUITES.values()) + ")"})
    seed: int = field(default=0, metadata={"help": "sampling seed (and the seed of an LLM-written FFA bank)"})
    temperature: float = field(default=1.0, metadata={
        "help": "sampling temperature of the suites that sample (FFA answers greedily)"})
    max_new_tokens: int = field(default=48, metadata={"help": "tokens per sampled answer"})
    judge: str = "auto"               # auto: rules on tinyworld, the judge endpoint elsewhere | rules | llm
    ffa_questions: int = field(default=20, metadata={
        "help": "LLM-written questions per FFA part (a real fact with no built-in bank)"})
    true_context: str | None = field(default=None, metadata={
        "help": "the true universe context file of a real SDF fact, if the target file does not hold it"})
    bank: str | None = field(default=None, metadata={
        "help": "an FFA question bank, JSONL (schema in docs/real-models.md), instead of the built-in or "
                "LLM-written one"})
    compare: bool = True              # also evaluate the base and the null control(s)

    def validate(self) -> None:
        if self.suite != "auto":
            get_suite(self.suite)
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
        suite = config.suite if config.suite != "auto" else _family_suite(family)
        if config.suite != "auto" and _family_suite(family) not in (None, suite):
            raise OrglabError(f"The {suite} suite does not measure '{name}', a {family} organism; use --suite "
                              f"{_family_suite(family)} or leave --suite at auto.")
        if suite is None:
            raise OrglabError(f"'{name}' is a base, so the suite cannot be inferred; pass --suite "
                              f"({', '.join(SUITES)}) and, for a real base or a suite other than tinyworld's FFA, "
                              "--target.")
        if config.target:
            target = config.target
        world = tinyworld_or_none(base)
        all_targets = get_suite(suite).tinyworld_targets  # what a tinyworld eval without --target covers
        if target is None and not (all_targets is not None and world is not None):
            raise OrglabError(f"The {suite} eval of '{name}' needs a target; pass --target.")
        judge = _make_judge(config, suite, world is not None,
                            offline_truth=get_suite(suite).offline_truth(target, config))
        subjects = [(name, "control" if organism and organism["family"] == "control" else
                     "organism" if organism else "base")]
        if organism and config.compare:
            subjects.append((base, "base"))
            if organism["family"] != "control":
                subjects += [(c["name"], "control") for c in reg.list_organisms(base=base, family="control")
                             if c["target"] == name and c["status"] == "ready"]
        targets = [target] if target else all_targets(world)
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
    key = get_suite(result["suite"]).headline
    values = [t["metrics"].get(key) for t in result["results"][model]["targets"].values()]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# ----------------------------------------------------------------------------------------------------------------


def _family_suite(family: str | None) -> str | None:
    from orglab.organisms import FAMILIES

    return FAMILIES[family].eval_suite if family in FAMILIES else None


def _make_judge(config: EvalConfig, suite: str, tinyworld: bool, offline_truth: bool = False):
    from orglab.evals.judges import LLMJudge
    from orglab.llm import config_from_env

    if not get_suite(suite).needs_judge:
        return None
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
    if llm.api_key_env and not os.environ.get(llm.api_key_env, "").strip():
        # every judge call would fail: refuse now rather than compute an eval nobody judged
        raise OrglabError(f"The judge's API key variable {llm.api_key_env} is not set; export it, or set "
                          "ORGLAB_JUDGE_API_KEY_ENV=none for an endpoint without a key.")
    return LLMJudge.from_config(llm)


def _judge_identity(judge) -> dict:
    return judge.identity if judge is not None else {"judge": "rules"}


def model_identity(reg: Registry, name: str) -> dict:
    """What a model's weights are, for config hashes: a train run's weight hashes, a built base's weight hashes,
    or the registered record for weights orglab did not write."""
    from orglab.registry import organism_identity

    if reg.get_organism(name) is not None:
        return organism_identity(reg, name, reg.get_organism(name))
    runs = reg.list_runs(subject=name, kind="world", status="done")
    if runs:
        return {"base_weights": sorted(a["sha256"] for a in reg.get_artifacts(runs[0].id) if a["kind"] == "weights")}
    entry = reg.get_base(name) or {}
    return {"base_record": config_hash({k: entry.get(k) for k in ("kind", "source", "path", "config_hash")})}


# `compare` only picks which models are evaluated; suite, target and judge go into the run config resolved.
# Every other field is hashed by the suites that read it (EvalSuite.settings); tests/test_config_hash.py checks it.
NOT_HASHED = ("compare",)


def _settings(config: EvalConfig, suite: str) -> dict:
    spec = get_suite(suite)
    out = {k: getattr(config, k) for k in spec.settings}
    if "samples" in out:
        out["samples"] = config.samples or spec.default_samples
    out.update(spec.file_settings(config))
    return out


def eval_run_config(suite: str, target: str, model: dict, judge: dict, config: EvalConfig) -> dict:
    """The hashed config of one eval run: the model's identity, the judge's, the suite's settings and version.
    Pure and cheap (no model is loaded); `target` is the resolved target, a file target also by its content."""
    out = {"suite": suite, "target": target, "model": model, "judge": judge, "settings": _settings(config, suite),
           "version": get_suite(suite).version}
    target_file = file_sha256_or_none(target)  # a universe-context file (real SDF facts)
    if target_file:
        out["target_hash"] = target_file
    return out


def _eval_one(reg: Registry, subject: str, suite: str, target: str, config: EvalConfig, judge, world, progress: bool,
              force: bool) -> dict:
    run_config = eval_run_config(suite, target, model_identity(reg, subject), _judge_identity(judge), config)
    kind = f"eval:{suite}"
    run = reg.start_run(kind, subject, run_config, force=force)
    folder = artifact_dir(subject, kind.replace(":", "-"), run.config_hash)
    if run.reused and not reg.verify_artifacts(run.id):
        return {"run": run.id, "reused": True, "metrics": reg.get_metrics(run.id), **_read(folder)}
    if run.reused:  # files gone or changed: compute again
        run = reg.start_run(kind, subject, run_config, force=True)
    unjudged_before = judge.unjudged if judge is not None else 0
    try:
        if progress:
            print(f"eval {suite} · {subject} · {target}", flush=True)
        rows, summary = _compute(reg, subject, suite, target, config, judge, world)
        metrics = get_suite(suite).metrics(summary)
        unjudged = judge.unjudged - unjudged_before if judge is not None else 0
        if judge is not None:  # this eval's own count (the judge is shared by every model and target)
            summary["judge"] = {"unjudged": unjudged, "endpoint_down": judge.endpoint_down}
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
    if unjudged or (judge is not None and judge.endpoint_down):
        # degraded: returned and kept for reading, but recorded as a failed run, so it is never reused and the next
        # eval computes it again (with the judge back)
        where = judge.client.config.base_url or "the judge endpoint"
        finished = reg.finish_run(run.id, error=f"degraded: {unjudged} sample(s) could not be judged by {where}")
        return {"run": finished.id, "reused": False, "degraded": True, "metrics": metrics, "summary": summary}
    finished = reg.finish_run(run.id)
    return {"run": finished.id, "reused": False, "metrics": metrics, "summary": summary}


def _read(folder: Path) -> dict:
    return json.loads((folder / "result.json").read_text())


def _compute(reg: Registry, subject: str, suite: str, target: str, config: EvalConfig, judge, world):
    from orglab.models import load_model

    loaded = load_model(subject, registry=reg)
    loaded.model.eval()

    def load_base():
        base = (reg.get_organism(subject) or {}).get("base", subject)
        return loaded if base == subject else load_model(base, registry=reg)

    spec = get_suite(suite)
    return spec.compute(SuiteInputs(model=loaded.model, tokenizer=loaded.tokenizer, target=target, config=config,
                                    judge=judge, world=world, samples=config.samples or spec.default_samples,
                                    load_base=load_base))


def with_overrides(config: EvalConfig, **overrides) -> EvalConfig:
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
