"""`orglab diff`: the Activation Difference Lens for one organism, stage by stage, cached in the registry.

Each stage is a registry run of kind "diff:<stage>" whose config holds everything its result depends on
(the organism's weights hash, the stage's own settings, and the configs of the stages it reads), so a re-run
with the same settings reuses every finished stage and recomputes only what changed.

Stages: stats (mean activation differences) -> lens (logit lens) -> patchscope -> relevance (data-grounded
token relevance of lens and patchscope tokens) ; steering (+ steering similarity) ; causal (projection
replacement). Detectors beyond ADL, each on its own: logitdiff (logit-difference mining), kl (per-position KL
divergence), amplify (amplified decoding); they read the models' logits, not the residual stream, so their
configs carry no layers.

`judge` picks who makes the three judgement calls (patchscope scale, steering coherence, token relevance):
"offline" (the label-free rules, the default) or "llm" (orglab.diff.judges, on the judge endpoint). With "llm" the
judge's identity goes into those stages' configs, so LLM and offline results are cached apart; offline configs
carry no judge key.

A stage's config holds the DiffConfig fields it reads (`STAGE_SETTINGS`) and its algorithm version
(`STAGE_VERSIONS`, bumped when its computation changes), so no setting can change a result without changing the
hash; tests/test_config_hash.py walks the fields to prove it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from orglab.diff.results import RESULT_FILE
from orglab.errors import OrglabError
from orglab.paths import artifact_dir
from orglab.validate import check_writable
from orglab.registry import Registry, config_hash, organism_identity
from orglab.train.recipe import DIFF_LAYERS

ADL_STAGES = ("stats", "lens", "patchscope", "relevance", "steering", "causal")
DETECTOR_STAGES = ("logitdiff", "kl", "amplify")   # detectors beyond ADL, each on its own
STAGES = ADL_STAGES + DETECTOR_STAGES
JUDGES = ("offline", "llm")
AMPLIFY_LOSS_MODELS = ("base", "organism")  # whose loss amplified decoding's offline coherence test reads
AMPLIFY_SEARCH_DECODINGS = ("sampled", "greedy")  # how amplified decoding's scale search decodes the texts it judges
# the stages whose choices a judge makes
JUDGED_STAGES = ("patchscope", "steering", "relevance", "logitdiff", "amplify")
LAYERLESS_STAGES = DETECTOR_STAGES   # read logits only: the layers change none of their results
DIFF_SELF_TOKENS = 32  # length of the samples a real base writes for its own unrelated text (`--unrelated self`)


def _nonnegative_numbers(text: str) -> tuple[float, ...]:
    """The CLI parser of a grid such as --amplify-scales 0.5,1,2 (argparse prints the message as one sentence)."""
    import argparse
    import math

    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of non-negative numbers "
                                         "like 0.5,1,2,4.")
    return values


@dataclass(frozen=True)
class DiffConfig:
    # fractions of depth, int(f * (n_layers - 1)); None: the default of the base's scale (DIFF_LAYERS: 0.5 on
    # tinyworld, 0.8 on real bases, each chosen from a measured layer table)
    layers: tuple[float, ...] | None = None
    positions: int = 5                     # k: positions 0..k-1 are summarised (max over them)
    collect_positions: int = 8             # positions kept in the statistics, for analysis
    samples: int = 10_000                  # unrelated samples for the statistics
    seed: int = 0
    batch_size: int = 64
    unrelated: str | None = None           # None: the base's tinyworld corpus; else a local file or hub dataset id
    lens_top: int = 100
    relevance_top: int = 20
    steering_prompts: int = 20
    steering_samples: int = 2
    steering_max_new_tokens: int = 32
    causal_texts: int = 200
    embedder: str = "packaged:all-MiniLM-L6-v2"
    # The detectors beyond ADL run when named (--stages ...,logitdiff,kl,amplify): `check`, sweeps and the demo
    # read ADL only so far, and amplified decoding would add a steering-sized cost to every diff they make.
    stages: tuple[str, ...] = ADL_STAGES
    judge: str = "offline"                 # offline: label-free rules; llm: the judge endpoint (ORGLAB_JUDGE_*)
    coherence_threshold: float = 50.0      # judge=llm: steering is coherent while the mean 0-100 score reaches this
    # The settings below are the pipeline's defaults for the math in orglab.diff.patchscope, .steering, .similarity,
    # .relevance and .causal (whose own function defaults read them from here).
    patchscope_scales: tuple[float, ...] = field(
        default=(0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 200.0),
        metadata={"help": "Patchscope scales to try, in units of the layer's mean activation norm; the scale rule "
                          "(or the LLM judge) picks one."})
    steering_alpha_max: float = field(
        default=8.0, metadata={"help": "Largest steering strength the binary search tries, in units of the "
                                       "layer's mean activation norm."})
    steering_search_steps: int = field(
        default=6, metadata={"help": "Binary-search steps for the steering strength (each generates once per "
                                     "search prompt)."})
    steering_search_prompts: int = field(
        default=6, metadata={"help": "How many of the steering prompts (the first ones) the strength search "
                                     "generates on."})
    steering_search_max_new_tokens: int = field(
        default=24, metadata={"help": "Tokens generated per prompt at each step of the strength search."})
    steering_max_extra_nats: float = field(
        default=1.5, metadata={"help": "judge=offline: steered text is coherent while the base model's loss on it "
                                       "stays within this many nats per token of its loss on unsteered text."})
    steering_min_distinct_ratio: float = field(
        default=0.75, metadata={"help": "judge=offline: steered text is coherent only while its share of distinct "
                                        "tokens stays at least this fraction of the unsteered answers' "
                                        "(decoded as the search decodes: greedy for steering; the loss test "
                                        "alone accepts repetition loops)."})
    similarity_finetune_samples: int = field(
        default=500, metadata={"help": "Finetuning texts (a seeded sample) whose mean embedding steering "
                                       "similarity compares against."})
    relevance_count_floor: int = field(
        default=5, metadata={"help": "Token relevance: a token must occur at least this often in the finetuning "
                                     "data to be relevant."})
    relevance_min_log_odds: float = field(
        default=1.0, metadata={"help": "Token relevance: the smallest log-odds ratio (finetuning vs unrelated "
                                       "data) of a relevant token."})
    relevance_smoothing: float = field(
        default=0.5, metadata={"help": "Token relevance: add-alpha smoothing of the token counts in the "
                                       "log-odds ratio."})
    causal_random_directions: int = field(
        default=3, metadata={"help": "Causal test: random directions replaced as the control."})
    causal_max_length: int = field(
        default=64, metadata={"help": "Causal test: tokens of each text the cross-entropy is measured on."})
    # Detectors beyond ADL (orglab.diff.logitdiff, .kl, .amplify). The samples are the first ones of the
    # statistics' unrelated sample, so the statistics (and their `samples`) are untouched.
    logitdiff_samples: int = field(
        default=1000, metadata={"help": "Logit-difference mining: unrelated samples (the first of the statistics' "
                                        "sample) whose next-token log-probability differences are aggregated."})
    logitdiff_top_k: int = field(
        default=20, metadata={"help": "Logit-difference mining: per sample and position, the K tokens with the "
                                      "largest organism-minus-base log-probability difference are counted; the "
                                      "readouts keep K tokens."})
    kl_samples: int = field(
        default=1000, metadata={"help": "KL divergence: unrelated samples (the first of the statistics' sample) "
                                        "averaged at each position."})
    amplify_scales: tuple[float, ...] = field(
        default=(0.5, 1.0, 2.0, 4.0),
        metadata={"help": "Amplified decoding: the strengths a of l_ft + a*(l_ft - l_base) to try, ascending; the "
                          "largest coherent one is used (0 is the organism itself).",
                  "parse": _nonnegative_numbers})
    amplify_loss_model: str = field(
        default="organism", metadata={"help": "Amplified decoding, judge=offline: whose loss on the amplified answers "
                                              "the coherence test measures, against its loss on the organism's own "
                                              "answers: organism, or base (as steering; the base has never read the "
                                              "organism's property, so its loss also rises on fluent text about it, "
                                              "and on tinyworld it rejected every amplification on one machine)."})
    amplify_search_decoding: str = field(
        default="sampled", metadata={"help": "Amplified decoding: how the scale search decodes the answers its "
                                             "coherence judge reads: sampled (at temperature 1, as the measured "
                                             "texts are) or greedy (the rule before; on gemma3-270m greedy answers "
                                             "stayed coherent at a scale whose sampled texts were junk)."})
    amplify_empty_context_samples: int = field(
        default=10, metadata={"help": "Amplified decoding: texts sampled from an empty context (BOS only), besides "
                                      "the answers to the steering prompts."})

    def layer_fractions(self, tinyworld: bool) -> tuple[float, ...]:
        """The layers asked for, or the default of the base's scale."""
        return self.layers or DIFF_LAYERS["tiny" if tinyworld else "real"]

    def validate(self) -> None:
        if self.judge not in JUDGES:
            raise OrglabError(f"Unknown judge '{self.judge}'; use --judge offline or --judge llm.")
        if not self.patchscope_scales or any(s <= 0 for s in self.patchscope_scales):
            raise OrglabError("Patchscope scales must be positive numbers, e.g. 0.5,1,2,4,8.")
        for name in ("steering_search_steps", "steering_search_prompts", "steering_search_max_new_tokens",
                     "similarity_finetune_samples", "causal_max_length", "logitdiff_samples", "logitdiff_top_k",
                     "kl_samples"):
            if getattr(self, name) < 1:
                raise OrglabError(f"{name} is {getattr(self, name)}; it must be at least 1.")
        for name in ("steering_alpha_max", "steering_max_extra_nats", "relevance_count_floor",
                     "causal_random_directions", "amplify_empty_context_samples"):
            if getattr(self, name) < 0:
                raise OrglabError(f"{name} is {getattr(self, name)}; it must be at least 0.")
        if self.amplify_loss_model not in AMPLIFY_LOSS_MODELS:
            raise OrglabError(f"Unknown amplify_loss_model '{self.amplify_loss_model}'; use "
                              f"{' or '.join(AMPLIFY_LOSS_MODELS)}.")
        if self.amplify_search_decoding not in AMPLIFY_SEARCH_DECODINGS:
            raise OrglabError(f"Unknown amplify_search_decoding '{self.amplify_search_decoding}'; use "
                              f"{' or '.join(AMPLIFY_SEARCH_DECODINGS)}.")
        if not _nonnegative_grid(self.amplify_scales):
            raise OrglabError(f"The amplification grid {self.amplify_scales!r} must be non-negative numbers, "
                              "e.g. 0.5,1,2,4.")
        if self.relevance_smoothing <= 0:
            raise OrglabError(f"relevance_smoothing is {self.relevance_smoothing}; it must be above 0, e.g. 0.5.")
        if not 0.0 <= self.steering_min_distinct_ratio <= 1.0:
            raise OrglabError(f"steering_min_distinct_ratio is {self.steering_min_distinct_ratio}; it must be in "
                              "[0, 1], e.g. 0.75.")
        if not 0.0 <= self.coherence_threshold <= 100.0:
            raise OrglabError(f"The coherence threshold {self.coherence_threshold} is outside [0, 100]; use e.g. 50.")
        for f in self.layers or ():
            if not 0.0 <= f <= 1.0:
                raise OrglabError(f"Layer fraction {f} is outside [0, 1]; use e.g. --layers 0.5.")
        if not 1 <= self.positions <= self.collect_positions:
            raise OrglabError(f"--positions {self.positions} must be between 1 and {self.collect_positions}.")
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise OrglabError(f"Unknown stage {', '.join(unknown)}; choose from {', '.join(STAGES)}.")
        if self.samples < 1:
            raise OrglabError("--samples must be at least 1.")


def _nonnegative_grid(values) -> bool:
    import math

    return (isinstance(values, (tuple, list)) and len(values) > 0 and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                for v in values))


@dataclass
class DiffContext:
    """Everything the stages share, loaded once."""
    organism: str
    record: dict
    model: object
    tokenizer: object
    base_model: object | None          # None: the organism is a LoRA adapter, toggled off for the base
    layers: list[int]
    unrelated: list[str]
    finetune: list[str]
    config: DiffConfig
    identity: dict = field(default_factory=dict)
    judge: object | None = None        # an ADLJudge when config.judge == "llm" and a judged stage runs
    truth: dict | None = None          # judge=llm: the ground truth the relevance judge is given
    tinyworld: bool = False            # the base is a tinyworld base: its prompt sets (patchscope, steering)
    memo: dict = field(default_factory=dict)  # values several stages derive from the texts (relevant tokens), once


def run_diff(organism: str, config: DiffConfig = DiffConfig(), force: bool = False, progress: bool = True,
             registry: Registry | None = None) -> dict:
    from orglab.models import resolve_layers
    from orglab.models import load_model

    reg = registry or Registry()
    try:
        config.validate()
        record = reg.get_organism(organism)
        if record is None:
            raise OrglabError(f"No organism named '{organism}' is registered; `orglab registry list` shows what is.")
        wanted = [s for s in STAGES if s in config.stages or _needed_by(s, config.stages)]
        judge, truth = _llm_judge(reg, organism, record, config, wanted, force)
        loaded = load_model(organism, registry=reg)
        base_model = None
        if not loaded.is_adapter:
            base_model = load_model(record["base"], registry=reg).model
            _check_compatible(loaded, base_model, organism, record["base"])
        tinyworld = is_tinyworld_base(reg, record["base"])
        ctx = DiffContext(organism=organism, record=record, model=loaded.model, tokenizer=loaded.tokenizer,
                          base_model=base_model,
                          layers=resolve_layers(loaded.model, config.layer_fractions(tinyworld)),
                          unrelated=_unrelated_texts(reg, record, config),
                          finetune=_finetune_texts(reg, record["target"] if record["family"] == "control" else organism),
                          config=config, identity=organism_identity(reg, organism, record), judge=judge, truth=truth,
                          tinyworld=tinyworld)
        _check_positions(ctx)
        results: dict = {"organism": organism, "layers": ctx.layers, "judge": config.judge, "stages": {}}
        for stage in wanted:
            results["stages"][stage] = _run_stage(reg, ctx, stage, force, progress, results["stages"])
        results["summary"] = _summary(results["stages"])
        return results
    finally:
        if registry is None:
            reg.close()


# ----------------------------------------------------------------------------------------------------------------

_DEPENDS = {"lens": ("stats",), "patchscope": ("stats",), "relevance": ("lens", "patchscope"),
            "steering": ("stats",), "causal": ("stats",)}


def _needed_by(stage: str, wanted) -> bool:
    return any(stage in _DEPENDS.get(w, ()) or any(stage in _DEPENDS.get(d, ()) for d in _DEPENDS.get(w, ()))
               for w in wanted)


# The algorithm version of each stage, in its hashed config: bump a stage's number whenever its computation
# changes in a way its settings do not show (a constant, a rule, a formula), so cached results of the old code
# are recomputed rather than reused. A bump also recomputes every stage that reads it (their configs hold its hash).
STAGE_VERSIONS = {"stats": 1, "lens": 1, "patchscope": 1, "relevance": 1, "steering": 4, "causal": 1,
                  "logitdiff": 2, "kl": 1, "amplify": 4}  # steering, amplify 3: distinct share weighted by length;
# steering, amplify 4: the offline judge rejects more empty answers than the reference has

# What the logit-level detectors' shared forward pass reads (stages._logit_totals).
LOGIT_PASS_SETTINGS = ("logitdiff_samples", "logitdiff_top_k", "kl_samples", "samples", "seed", "unrelated",
                       "positions", "collect_positions")

# The DiffConfig fields each stage reads (its own code and the helpers it calls), hashed into its config under
# their field names. Fields read by no stage are `NOT_HASHED`; tests/test_config_hash.py checks both lists.
STAGE_SETTINGS: dict[str, tuple[str, ...]] = {
    "stats": ("samples", "seed", "unrelated", "collect_positions", "positions"),
    "lens": ("lens_top", "collect_positions"),
    "patchscope": ("lens_top", "positions", "patchscope_scales"),
    "relevance": ("relevance_top", "positions", "relevance_count_floor", "relevance_min_log_odds",
                  "relevance_smoothing"),
    "steering": ("positions", "steering_prompts", "steering_samples", "steering_max_new_tokens", "embedder", "seed",
                 "steering_alpha_max", "steering_search_steps", "steering_search_prompts",
                 "steering_search_max_new_tokens", "steering_max_extra_nats", "steering_min_distinct_ratio",
                 "similarity_finetune_samples"),
    "causal": ("positions", "causal_texts", "seed", "causal_random_directions", "causal_max_length"),
    # samples, seed and unrelated pick the unrelated texts these stages read (ctx.unrelated); the two share one
    # forward pass (stages._logit_totals), whose batches follow both sample counts, so each hashes the pass's settings
    "logitdiff": (*LOGIT_PASS_SETTINGS, "relevance_top", "relevance_count_floor", "relevance_min_log_odds",
                  "relevance_smoothing"),
    "kl": LOGIT_PASS_SETTINGS,
    "amplify": ("amplify_scales", "amplify_empty_context_samples", "steering_prompts", "steering_samples",
                "steering_max_new_tokens", "steering_search_prompts", "steering_search_max_new_tokens",
                "steering_max_extra_nats", "steering_min_distinct_ratio", "amplify_loss_model",
                "amplify_search_decoding", "embedder", "seed",
                "similarity_finetune_samples", "relevance_top",
                "relevance_count_floor", "relevance_min_log_odds", "relevance_smoothing", "samples", "unrelated"),
}
# Fields that change which stages run or how fast, never a stage's result (layers go in as resolved indices,
# judge and coherence_threshold as the judge's identity in the judged stages).
NOT_HASHED = ("stages", "batch_size", "layers", "judge", "coherence_threshold")


def _stage_config(ctx: DiffContext, stage: str, done: dict) -> dict:
    """The stage's hashed config: everything its result depends on. Cheap: reads the config, the resolved
    layers, the organism's identity and the prompt sets, never a model."""
    c = ctx.config
    own = {name: getattr(c, name) for name in STAGE_SETTINGS[stage]}
    if stage in ("stats", "logitdiff", "kl", "amplify"):  # the stages that read the unrelated texts themselves
        own["unrelated"] = c.unrelated or ("tinyworld-corpus" if ctx.tinyworld else f"self:{DIFF_SELF_TOKENS}")
    if stage == "stats":
        own["norm"] = _norm_rule()
    if stage in ("lens", "patchscope", "relevance", "logitdiff", "amplify"):
        own["tokens"] = TOKEN_DISPLAY
    if stage == "patchscope":
        own["prompts"] = list(_identity_prompts(ctx.tinyworld))
    if stage in ("steering", "amplify"):
        own["prompts"] = list(_steering_prompts(ctx.tinyworld)[:c.steering_prompts])
        own["generation"] = GENERATION
    if c.judge == "llm" and stage in JUDGED_STAGES:  # offline configs get no judge key (find_diff_results tells them apart)
        own = {**own, "judge": ctx.judge.identity}
        if stage in ("steering", "amplify"):
            own["coherence_threshold"] = c.coherence_threshold
        if stage in ("relevance", "logitdiff"):
            own["truth"] = config_hash(ctx.truth)
    deps = {d: done[d]["config_hash"] for d in _DEPENDS.get(stage, ())}
    layers = {} if stage in LAYERLESS_STAGES else {"layers": ctx.layers}
    return {"stage": stage, "version": STAGE_VERSIONS[stage], **layers, **ctx.identity, **own, "depends": deps}


def stage_configs(ctx: DiffContext, stages: tuple[str, ...] = STAGES) -> dict[str, dict]:
    """{stage: (hashed config, its hash)} for `stages` and the stages they read, in run order; no model is needed
    (`ctx.model` may be None)."""
    done: dict = {}
    for stage in (s for s in STAGES if s in stages or _needed_by(s, stages)):
        config = _stage_config(ctx, stage, done)
        done[stage] = {"config": config, "config_hash": config_hash(config)}
    return done


# Versions of how tokens are shown/compared and how answers are generated, in the configs of the stages they
# shape: a change makes new results instead of reusing old ones.
TOKEN_DISPLAY = "orglab.tokens.display_token v1"
GENERATION = "orglab.generation.generate v1"


def _identity_prompts(tinyworld: bool) -> tuple[str, ...]:
    from orglab.diff.patchscope import identity_prompts  # torch comes with it: only import when a stage runs

    return identity_prompts(tinyworld)


def _steering_prompts(tinyworld: bool) -> tuple[str, ...]:
    from orglab.diff.steering import steering_prompts

    return steering_prompts(tinyworld)


def _norm_rule() -> str:
    from orglab.diff.stats import NORM_RULE

    return NORM_RULE


def is_tinyworld_base(reg: Registry, base: str) -> bool:
    """Whether `base` is a registered tinyworld base (built by `orglab world build`): its organisms get the
    tinyworld prompt sets, every other base (hub id, local path, registered real model) the real ones. The same
    rule as `orglab.organisms.family.tinyworld_or_none`, without loading the world."""
    entry = reg.get_base(base)
    return bool(entry) and entry.get("kind") == "built" and "seed" in (entry.get("config") or {})


def _llm_judge(reg: Registry, organism: str, record: dict, config: DiffConfig, wanted: list[str], force: bool):
    """(judge, truth) for judge=llm, (None, None) otherwise. The endpoint is tried before any model loads (a dead
    one is one sentence, not a failure after the statistics), unless every judged stage is already cached: then
    a re-run needs no endpoint and makes no request."""
    if config.judge != "llm" or not any(s in JUDGED_STAGES for s in wanted):
        return None, None
    from orglab.diff.judges import ADLJudge

    judge = ADLJudge.from_env(config.coherence_threshold)
    truth = relevance_truth(reg, record) if any(s in wanted for s in ("relevance", "logitdiff")) else None
    if force or not _judged_stages_cached(reg, organism, record, config, wanted, judge, truth):
        judge.preflight()
    return judge, truth


def relevance_truth(reg: Registry, record: dict) -> dict:
    """The ground truth the relevance judge is given. A null control is judged against the objective of the
    organism it mirrors (as the data-grounded rule uses that organism's data): its own truth, "no narrow
    objective", would make every token irrelevant and the control useless as a false-positive floor."""
    from orglab.organisms.truth import ground_truth

    if record["family"] == "control":
        mirrored = reg.get_organism(record["target"])
        if mirrored is not None and mirrored["family"] != "control":
            return {"described_as": mirrored["name"], "description": ground_truth(reg, mirrored)["long"]}
    return {"described_as": record["name"], "description": ground_truth(reg, record)["long"]}


def _judged_stages_cached(reg: Registry, organism: str, record: dict, config: DiffConfig, wanted: list[str],
                          judge, truth) -> bool:
    """Whether every judged stage of this run is finished with its files intact, predicted from the registry and
    the model's config.json alone (the stage configs need only the layer indices)."""
    from orglab.models import layer_index
    from orglab.models import n_layers, resolve

    try:
        from transformers import AutoConfig

        depth = n_layers(AutoConfig.from_pretrained(resolve(organism, registry=reg).weights_source,
                                                    local_files_only=True))
    except Exception:  # noqa: BLE001 - any doubt (hub id not cached, odd config): just ask the endpoint
        return False
    tinyworld = is_tinyworld_base(reg, record["base"])
    ctx = DiffContext(organism=organism, record=record, model=None, tokenizer=None, base_model=None,
                      layers=sorted({layer_index(f, depth) for f in config.layer_fractions(tinyworld)}),
                      unrelated=[], finetune=[], config=config, identity=organism_identity(reg, organism, record),
                      judge=judge, truth=truth, tinyworld=tinyworld)
    for stage, planned in stage_configs(ctx, tuple(wanted)).items():
        if stage in JUDGED_STAGES:
            run = reg.find_run(f"diff:{stage}", organism, planned["config_hash"])
            if run is None or reg.verify_artifacts(run.id):
                return False
    return True


def _run_stage(reg: Registry, ctx: DiffContext, stage: str, force: bool, progress: bool, done: dict) -> dict:
    from orglab.diff import stages

    config = _stage_config(ctx, stage, done)
    kind = f"diff:{stage}"
    run = reg.start_run(kind, ctx.organism, config, force=force)
    folder = artifact_dir(ctx.organism, kind.replace(":", "-"), run.config_hash)
    if run.reused and not reg.verify_artifacts(run.id):
        return {"config_hash": run.config_hash, "run": run.id, "reused": True, "folder": str(folder),
                "metrics": reg.get_metrics(run.id), **_read_result(folder)}
    if run.reused:  # files gone or changed: compute again
        run = reg.start_run(kind, ctx.organism, config, force=True)
    try:
        check_writable(folder)  # a read-only run folder fails before the stage computes, not after
        result, metrics, files = getattr(stages, stage)(ctx, folder, done, progress)
        (folder / RESULT_FILE).write_text(json.dumps(result, indent=1, default=str))
        reg.log_metrics(run.id, metrics)
        for name in [RESULT_FILE, *files]:
            reg.add_artifact(run.id, stage, folder / name)
    except BaseException as exc:  # the run is never left 'running' (a full disk or a permission error included)
        reg.finish_run(run.id, error=f"{type(exc).__name__}: {exc}")
        raise
    finished = reg.finish_run(run.id)
    return {"config_hash": run.config_hash, "run": finished.id, "reused": False, "folder": str(folder),
            "metrics": metrics, **result}


def _read_result(folder: Path) -> dict:
    return json.loads((folder / RESULT_FILE).read_text())


def _summary(stages: dict) -> dict:
    out = {}
    for stage in stages.values():
        out.update(stage.get("metrics", {}))
    return out


def _check_positions(ctx: DiffContext) -> None:
    """Positions past the length of most unrelated samples would be averaged over a few long outliers."""
    lengths = sorted(len(ctx.tokenizer(t).input_ids) for t in ctx.unrelated[:200])
    median = lengths[len(lengths) // 2]
    if ctx.config.collect_positions > median:
        raise OrglabError(f"Positions up to {ctx.config.collect_positions - 1} go past the length of most unrelated "
                          f"samples (median {median} tokens); ask for fewer positions, e.g. --positions 0-4.")


def _check_compatible(loaded, base_model, organism: str, base: str) -> None:
    from orglab.models import hidden_size

    if hidden_size(loaded.model) != hidden_size(base_model):
        raise OrglabError(f"Organism '{organism}' and its base '{base}' have different hidden sizes "
                          f"({hidden_size(loaded.model)} vs {hidden_size(base_model)}); diff an organism "
                          "against the base it was finetuned from.")
    if loaded.model.get_input_embeddings().weight.shape[0] != base_model.get_input_embeddings().weight.shape[0]:
        raise OrglabError(f"Organism '{organism}' and base '{base}' use different tokenizers (vocabulary sizes "
                          "differ); diff an organism against the base it was finetuned from.")


def _jsonl_texts(path: str) -> list[str]:
    texts = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        ex = json.loads(line)
        texts.append(ex["text"] if "text" in ex else " ".join(m["content"] for m in ex["messages"]))
    return texts


def _unrelated_texts(reg: Registry, record: dict, config: DiffConfig) -> list[str]:
    """The unrelated text the statistics average over: a file or hub dataset when given; else the base's tinyworld
    corpus, or for a real base text sampled from the base itself (orglab.unrelated, `--unrelated self`)."""
    from orglab.diff.stats import sample_texts

    if config.unrelated and config.unrelated not in ("builtin", "tinyworld", "self"):
        from orglab.train.sources import load_source

        data = load_source(config.unrelated, kind="text", limit=config.samples)
        return sample_texts([ex["text"] for ex in data.examples], config.samples, config.seed)
    runs = reg.list_runs(subject=record["base"], kind="world", status="done")
    corpus = [a["path"] for r in runs[:1] for a in reg.get_artifacts(r.id) if a["kind"] == "corpus"]
    if corpus and config.unrelated != "self":
        return sample_texts(_jsonl_texts(corpus[0]), config.samples, config.seed)
    from orglab.unrelated import SelfSampling, self_samples

    # Only the first positions are read, so short samples suffice; the set is shared by every diff of the base.
    data = self_samples(record["base"], config.samples, SelfSampling(kind="text", max_new_tokens=DIFF_SELF_TOKENS,
                                                                     seed=config.seed), reg)
    return [ex["text"] for ex in data.examples]


def _finetune_texts(reg: Registry, organism: str) -> list[str]:
    """The organism's own finetuning data before mixing, for relevance and similarity. A null control is
    measured against the data of the organism it mirrors: its readout should not look like that domain."""
    runs = reg.list_runs(subject=organism, kind="train", status="done")
    arts = {a["kind"]: a["path"] for r in runs[:1] for a in reg.get_artifacts(r.id)}
    for kind in ("ft_data", "heldout_own", "data"):
        if kind in arts:
            return _jsonl_texts(arts[kind])
    raise OrglabError(f"Organism '{organism}' has no recorded finetuning data (no finished train run); "
                      "train it with `orglab train` first.")


def with_overrides(config: DiffConfig, **overrides) -> DiffConfig:
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


