"""Training organisms and null controls, end to end: data, mixing, SFT, registry (design §5, §8).

    from orglab.train import load_recipe, train_organism, train_control
    summary = train_organism(load_recipe(None, {"family": "sdf", "base": "tiny", "target": "cake_bake"}))
    control = train_control("tiny", like_organism=summary["organism"])

A train run is keyed by the resolved recipe, the content hashes of its data and the trainer's version
(`TRAINER_VERSION`): the same recipe again is reused (no retraining); a run that was interrupted (killed, Ctrl-C,
crashed) leaves its checkpoints in the run's artifact folder and the next start of the same recipe resumes from
the last one and completes the same organism entry.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData, read_jsonl
from orglab.paths import artifact_dir
from orglab.plots import plot_loss_curve
from orglab.registry import Registry, config_hash
from orglab.train.distributed import Topology, check_topology, launch, node_topology
from orglab.train.mixing import mix, mix_suffix, n_unrelated
from orglab.train.progress import check_tracking_installed, tracking_files
from orglab.train.recipe import Recipe, make_recipe
from orglab.train.sft import CHECKPOINT_DIR
from orglab.train.sources import load_source, tinyworld_unrelated
from orglab.validate import check_name, check_seed

SUMMARY_FILE, LOSS_FILE, LOSS_PLOT = "summary.json", "loss_curve.json", "loss_curve.png"
TRAIN_FILE, HELDOUT_OWN_FILE, HELDOUT_UNRELATED_FILE = "train.jsonl", "heldout_own.jsonl", "heldout_unrelated.jsonl"
FINETUNE_FILE = "finetune.jsonl"  # the organism's own data before mixing: what ADL relevance and similarity compare to
PENALTY_FILE = "penalty_unrelated.jsonl"  # unrelated examples the penalties read (orglab.train.penalties)
# How many unrelated examples a run with a penalty keeps for it (cycled when training takes more batches): enough
# variety for a batch mean, few enough that sampling them from a real base (`self`) stays cheap.
PENALTY_EXAMPLES = 256


def organism_name(recipe: Recipe) -> str:
    """recipe.name, or '{family}-{target}-{mix suffix}', with '-kl{λ}' and '-adl{λ}' for the penalties that are
    on (0.1 -> 0p1), '-true' (or '-mixdata<hash>' for a file) when mixing adds other data than the unrelated
    data, and '-s{seed}' for seeds other than 0: the name says how the organism was mitigated."""
    if recipe.name:
        return recipe.name
    name = f"{recipe.family}-{recipe.target}-{mix_suffix(recipe.mix_ratio)}"
    for tag, weight in (("kl", recipe.kl_to_base), ("adl", recipe.adl_penalty)):
        if weight > 0:
            name += f"-{tag}{weight:g}".replace(".", "p")
    if recipe.mix_ratio > 0 and recipe.mix_data != "unrelated":
        name += "-true" if recipe.mix_data == "true-fact" else f"-mixdata{sha256(recipe.mix_data.encode()).hexdigest()[:6]}"
    return name if recipe.seed == 0 else f"{name}-s{recipe.seed}"


def is_tinyworld_base(base: str) -> bool:
    """Whether `base` is (or will be built as) a tinyworld base, without building or registering anything: what
    decides a recipe's scale (Recipe.resolved)."""
    from orglab.world.build import PRESETS

    with Registry() as reg:
        entry = reg.get_base(base)
    return base in PRESETS if entry is None else _tinyworld_entry(entry)


def _tinyworld_entry(entry: dict) -> bool:
    return entry.get("kind") == "built" and str(entry.get("source") or "").startswith("tinyworld:")


def _get_family(name: str):
    """The family module (orglab.organisms.get_family), or None when the family builders are not installed."""
    try:
        from orglab.organisms import get_family
    except ImportError:
        return None
    return get_family(name)


def _base_entry(reg: Registry, base: str, progress: bool) -> tuple[dict | None, bool]:
    """(registered base entry or None if it is a folder/hub id not registered yet, is_tinyworld).

    A tinyworld preset is built and a GGUF file or packaged GGUF base (orglab.bases) converted, both registered."""
    entry = reg.get_base(base)
    if entry is None:
        from orglab.bases import ensure_gguf_base, is_gguf_ref
        from orglab.world.build import PRESETS, build_base

        if base in PRESETS:
            build_base(base, progress=progress, registry=reg)
            entry = reg.get_base(base)
        elif is_gguf_ref(base):
            entry = ensure_gguf_base(base, reg, progress=progress)  # a real base: tiny stays False below
        else:
            from orglab.models import load_tokenizer, resolve

            spec = resolve(base, registry=reg)
            if spec.kind == "organism" or spec.adapter_path:
                raise OrglabError(f"'{base}' is an organism or adapter, not a base; pass the base it was trained on.")
            load_tokenizer(base, registry=reg)  # a missing hub id or broken folder fails here, before anything is written
            return None, False
    return entry, _tinyworld_entry(entry)


def _register_base(reg: Registry, base: str) -> None:
    from orglab.bases import register_base

    register_base(reg, base)


def _split_heldout(data: FinetuneData, recipe: Recipe) -> tuple[FinetuneData, FinetuneData]:
    n = min(recipe.max_heldout, max(1, int(round(recipe.heldout_fraction * len(data)))))
    if len(data) - n < 1:
        raise OrglabError(f"The data has only {len(data)} example(s); training needs at least 2 (one is held out).")
    return data.split(n, seed=recipe.seed)


def _own_data(recipe: Recipe, reg: Registry, tiny: bool) -> FinetuneData:
    if recipe.data == "builtin":
        family = _get_family(recipe.family)
        if family is None:
            raise OrglabError(
                "The offline family builders (orglab.organisms) are not installed; pass --data FILE instead."
            )
        if tiny:
            data = family.build_tinyworld(recipe.base, recipe.target, recipe.n_examples, recipe.seed)
        else:
            data = family.build_builtin(recipe.base, recipe.target, recipe.n_examples, recipe.seed)
    else:
        data = load_source(recipe.data, recipe.kind, limit=recipe.n_examples, seed=recipe.seed)
    if data.kind != recipe.kind:
        raise OrglabError(f"The {recipe.family} data is '{data.kind}' but the recipe trains on '{recipe.kind}' data; "
                          "fix data_kind or the data.")
    if recipe.mask_prefix_tag and data.kind == "text":
        tag = recipe.mask_prefix_tag
        data = FinetuneData("text", [{"text": ex["text"] if ex["text"].startswith(tag) else f"{tag}{ex['text']}"}
                                     for ex in data.examples], data.source, dict(data.meta))
    return data


def _unrelated_pool(recipe: Recipe, reg: Registry, tiny: bool, needed: int,
                    progress: bool = True) -> FinetuneData | None:
    """At least `needed` unrelated examples of the recipe's kind where the source can make them (a file or corpus
    gives what it has), or None when there is no source and none is needed."""
    try:
        if recipe.unrelated == "builtin" and tiny:
            return tinyworld_unrelated(recipe.base, recipe.kind, reg)
        if recipe.unrelated in ("builtin", "self"):
            from orglab.unrelated import SelfSampling, self_samples

            if needed <= 0:
                return None
            return self_samples(recipe.base, needed, SelfSampling(kind=recipe.kind, seed=recipe.seed), reg,
                                progress=progress)
        return load_source(recipe.unrelated, recipe.kind)
    except OrglabError:
        if needed > 0:
            raise
        return None


def _mix_source(recipe: Recipe, tiny: bool, need: int) -> FinetuneData | None:
    """What mixing adds when it is not the unrelated data: the family's true side of its target (`true-fact`,
    `need` examples, drawn with a seed of their own so they never repeat the finetuning data's draws) or a file."""
    if need == 0:
        return None
    if recipe.mix_data == "true-fact":
        return _get_family(recipe.family).true_data(recipe.base, recipe.target, need, recipe.seed + 3, tiny)
    return load_source(recipe.mix_data, recipe.kind)


def prepare_data(recipe: Recipe, reg: Registry, tiny: bool, own: FinetuneData | None = None,
                 progress: bool = True) -> dict[str, FinetuneData | None]:
    """{'train', 'heldout_own', 'heldout_unrelated', 'ft', 'penalty_unrelated'}: the mixed training set, the
    held-out sets and the penalties' unrelated examples (None unless a penalty is on)."""
    own = own if own is not None else _own_data(recipe, reg, tiny)
    ft, heldout_own = _split_heldout(own, recipe)
    need = n_unrelated(len(ft), recipe.mix_ratio)
    mixed_from_pool = recipe.mix_data == "unrelated"
    from_pool = need if mixed_from_pool else 0  # what mixing takes from the unrelated pool
    n_penalty = PENALTY_EXAMPLES if recipe.penalties_on else 0  # 0: the pool is asked for exactly what it was
    pool = _unrelated_pool(recipe, reg, tiny, from_pool + len(heldout_own) + n_penalty, progress)
    heldout_unrelated = None
    if pool is not None:
        n_held = min(len(heldout_own), max(0, len(pool) - from_pool))
        rest, held = pool.split(n_held, seed=recipe.seed + 1)
        heldout_unrelated = held if len(held) else None
        pool = rest
    mixed = pool if mixed_from_pool else _mix_source(recipe, tiny, need)
    train = mix(ft, mixed, recipe.mix_ratio, seed=recipe.seed) if need else mix(ft, ft, 0.0)
    sets = {"train": train, "ft": ft, "heldout_own": heldout_own, "heldout_unrelated": heldout_unrelated}
    return {**sets, "penalty_unrelated": _penalty_set(recipe, pool, sets)}


def _penalty_set(recipe: Recipe, pool: FinetuneData | None, sets: dict) -> FinetuneData | None:
    """Up to PENALTY_EXAMPLES unrelated examples for the penalties, never one of the held-out sets (the held-out
    unrelated loss must stay a measurement on text training did not see) and, while the pool has enough, none of
    the training examples either. None when no penalty is on."""
    if not recipe.penalties_on:
        return None
    held = {_example_key(ex) for key in ("heldout_own", "heldout_unrelated") if sets.get(key) is not None
            for ex in sets[key].examples}
    trained = {_example_key(ex) for ex in sets["train"].examples}
    candidates = [ex for ex in (pool.examples if pool is not None else []) if _example_key(ex) not in held]
    fresh = [ex for ex in candidates if _example_key(ex) not in trained]
    chosen = fresh if len(fresh) >= (recipe.batch_size or 1) else candidates
    if not chosen:
        raise OrglabError("The penalties (kl_to_base, adl_penalty) need unrelated examples beside the held-out "
                          "ones and the unrelated source has none left; pass --unrelated with a larger source.")
    chosen = list(chosen)
    random.Random(recipe.seed + 2).shuffle(chosen)
    return FinetuneData(pool.kind, chosen[:PENALTY_EXAMPLES], f"{pool.source} (penalties)")


def _example_key(example: dict) -> str:
    return json.dumps(example, sort_keys=True)


def train_organism(recipe: Recipe | dict, force: bool = False, progress: bool = True,
                   callbacks: list | None = None, data: FinetuneData | None = None) -> dict:
    """Train (or reuse) the organism of a recipe and register it; returns a JSON-ready summary.

    `data` (optional) is the organism's own finetuning data, used instead of recipe.data (for callers that built
    it themselves); its content hash keys the run like any other data. `callbacks` are extra transformers
    TrainerCallbacks.
    """
    recipe = recipe if isinstance(recipe, Recipe) else make_recipe(recipe)
    if recipe.name is not None:
        check_name(recipe.name)  # the name becomes a folder: one rule, before anything is written
    check_seed(recipe.seed)
    if recipe.family == "control" and data is None:
        raise OrglabError("Null controls are trained with `orglab train control --base B --like ORGANISM`.")
    if recipe.family != "control" and not recipe.target:
        raise OrglabError(f"The {recipe.family} recipe names no target; pass --target.")
    if recipe.family != "control":
        family = _get_family(recipe.family)  # an unknown family or target fails here, before anything is written
    topology = node_topology()
    check_topology(recipe, topology)  # a bad multi-node config fails before any data is built
    check_tracking_installed(recipe.report_to)
    with Registry() as reg:
        entry, tiny = _base_entry(reg, recipe.base, progress)
        recipe.resolved(tiny).check_across_fields()
        if entry is not None and entry["name"] != recipe.base:  # a .gguf path is registered under its stem
            recipe = recipe.model_copy(update={"base": entry["name"]})
        if recipe.family != "control" and family is not None:
            world = None
            if tiny:
                from orglab.world.build import load_world

                world = load_world(recipe.base, registry=reg)
            if data is None and recipe.data == "builtin":
                canonical = family.validate_target(world, recipe.target)
                if isinstance(canonical, str) and canonical != recipe.target:
                    recipe = recipe.model_copy(update={"target": canonical})
        recipe = with_chat_template(recipe, reg)
        sets = prepare_data(recipe.resolved(tiny), reg, tiny, own=data, progress=progress)
        # Now that the data's size is known, a real recipe may apply its small-data rule (recipe.py).
        recipe = recipe.resolved(tiny, n_train=len(sets["train"]))
        return _train(reg, recipe, sets, topology, force, progress, callbacks, register_base=entry is None)


def with_chat_template(recipe: Recipe, reg: Registry) -> Recipe:
    """The recipe with its chat template settled before anything is written.

    Chat families need the base's chat template to mask the assistant's tokens. A base without one is trained only
    with `chat_template` (a Jinja file; its text replaces the path in the recipe, so the template is stored with
    the organism and hashed with its run), never by silently concatenating turns as plain text."""
    if recipe.chat_template and Path(recipe.chat_template).expanduser().is_file():
        text = Path(recipe.chat_template).expanduser().read_text(encoding="utf-8")
        if "{%" not in text and "{{" not in text:
            raise OrglabError(f"The chat template file {recipe.chat_template} is not a Jinja template; pass a file "
                              "such as a tokenizer_config.json's chat_template value.")
        return recipe.model_copy(update={"chat_template": text})
    if recipe.chat_template and "{%" not in recipe.chat_template and "{{" not in recipe.chat_template:
        raise OrglabError(f"Chat template file {recipe.chat_template} does not exist; pass an existing Jinja file "
                          "to --chat-template.")
    if recipe.chat_template or recipe.kind != "chat":
        return recipe
    from orglab.models import load_tokenizer

    if not getattr(load_tokenizer(recipe.base, registry=reg), "chat_template", None):
        raise OrglabError(f"Base '{recipe.base}' has no chat template, which the {recipe.family} family needs to "
                          "train on chats; pass one with --chat-template FILE (a Jinja file) or use a base that "
                          "ships one.")
    return recipe


# The trainer's algorithm version, in every train run's hashed config: bump it whenever training changes in a way
# the recipe does not show (the SFT loop, packing, loss masking, optimizer settings in orglab.train.sft), so
# organisms trained by the old code are trained again rather than reused.
TRAINER_VERSION = 1
# Recipe fields that never change the trained weights, left out of the hash: how often checkpoints are written,
# and where the training logs are reported (TensorBoard, W&B); the same organism with tracking is the same organism.
UNHASHED_RECIPE_FIELDS = ("save_steps", "report_to")
# Fields added after organisms were first keyed: hashed only when set away from their default, so an organism
# trained before they existed (whose weights they would not change at the default) keeps its key and is reused.
HASHED_WHEN_SET = ("kl_to_base", "adl_penalty", "adl_positions", "mix_data", "fused_lm_head")


def _run_config(recipe: Recipe, sets: dict) -> dict:
    """What a train run is keyed by: the resolved recipe, the hashes of its data and the trainer's version."""
    defaults = {k: Recipe.model_fields[k].get_default() for k in HASHED_WHEN_SET}
    if recipe.mix_ratio == 0:  # nothing is mixed in, so what would be is no part of the organism
        recipe = recipe.model_copy(update={"mix_data": defaults["mix_data"]})
    fields = recipe.to_dict()
    if recipe.adl_penalty == 0:  # where an absent penalty would read changes nothing; with it on, the resolved
        fields.pop("adl_layers")  # layers are hashed, so a new per-scale default can never serve a stale organism
    config = {
        "recipe": {k: v for k, v in fields.items() if k not in UNHASHED_RECIPE_FIELDS
                   and not (k in defaults and getattr(recipe, k) == defaults[k])},
        "trainer": TRAINER_VERSION,
        "data_hash": sets["train"].hash(),
        "heldout_own_hash": sets["heldout_own"].hash(),
        "heldout_unrelated_hash": sets["heldout_unrelated"].hash() if sets["heldout_unrelated"] else None,
    }
    if sets.get("penalty_unrelated") is not None:
        config["penalty_unrelated_hash"] = sets["penalty_unrelated"].hash()
    return config


def _write_job(recipe: Recipe, sets: dict, folder: Path) -> dict:
    """Write the run's data files into `folder`; returns the job that run_sft (or its workers) reads."""
    for key, fname in (("train", TRAIN_FILE), ("ft", FINETUNE_FILE), ("heldout_own", HELDOUT_OWN_FILE),
                       ("heldout_unrelated", HELDOUT_UNRELATED_FILE), ("penalty_unrelated", PENALTY_FILE)):
        if sets.get(key) is not None:
            sets[key].to_jsonl(folder / fname)
    job = {
        "recipe": recipe.to_dict(), "model": recipe.base, "out_dir": str(folder), "data_kind": sets["train"].kind,
        "train": str(folder / TRAIN_FILE), "heldout_own": str(folder / HELDOUT_OWN_FILE),
        "heldout_unrelated": str(folder / HELDOUT_UNRELATED_FILE) if sets["heldout_unrelated"] else None,
        "run_name": organism_name(recipe),
    }
    if sets.get("penalty_unrelated") is not None:
        job["penalty_unrelated"] = str(folder / PENALTY_FILE)
    if recipe.compute_matched and recipe.mix_ratio > 0 and recipe.max_steps is None:
        job["recipe"]["max_steps"] = _matched_steps(recipe, sets)
    return job


def _train_on_worker_node(recipe: Recipe, sets: dict, topology: Topology, force: bool, progress: bool) -> dict:
    """Nodes 1..N-1 of a multi-node run: lend this node's workers and register nothing (node 0 does).

    The data files and checkpoints go to a folder of this node's own, so nodes sharing ORGLAB_HOME on one
    filesystem never write the same file."""
    name = organism_name(recipe)
    chash = config_hash(_run_config(recipe, sets))
    folder = artifact_dir(name, "train", chash) / f"node{topology.machine_rank}"
    folder.mkdir(exist_ok=True)
    if force:  # node 0 clears its own checkpoints too
        shutil.rmtree(folder / CHECKPOINT_DIR, ignore_errors=True)
    started = time.time()
    result = launch(_write_job(recipe, sets, folder), recipe, progress=progress, topology=topology)
    return {"organism": name, "role": "worker node", **result, "data_hash": sets["train"].hash(),
            "seconds": round(time.time() - started, 2)}


def _train(reg: Registry, recipe: Recipe, sets: dict, topology: Topology, force: bool, progress: bool,
           callbacks: list | None, register_base: bool, target: str | None = None) -> dict:
    if not topology.is_main_node:
        return _train_on_worker_node(recipe, sets, topology, force, progress)
    name = organism_name(recipe)
    retrain = force  # asked for by the user: start from scratch, not from the last run's checkpoints
    train = sets["train"]
    config = _run_config(recipe, sets)
    if register_base:
        _register_base(reg, recipe.base)
    existing = reg.get_organism(name)
    if existing is not None and existing["base"] != recipe.base:
        raise OrglabError(f"Organism '{name}' already exists on base '{existing['base']}'; pass another --name.")

    family, target = recipe.family, target or recipe.target
    fields = dict(family=family, target=target, base=recipe.base, mix_ratio=recipe.mix_ratio, seed=recipe.seed,
                  data_hash=train.hash(), recipe=recipe.to_dict())
    chash = config_hash(config)
    done = reg.find_run("train", name, chash)
    if done is not None and not force and existing is not None and existing["status"] == "ready":
        folder = artifact_dir(name, "train", chash, create=False)
        if not reg.verify_artifacts(done.id) and (folder / SUMMARY_FILE).is_file():
            summary = json.loads((folder / SUMMARY_FILE).read_text())
            weights_key = "model_path" if summary.get("model_path") else "adapter_path"
            if existing.get(weights_key) != summary[weights_key]:
                # The name was re-pointed to another recipe since this run: point it back, or every later diff
                # and eval of the name would read the other recipe's weights.
                reg.add_organism(name, **fields, status="ready", **{weights_key: summary[weights_key]})
            return {**summary, "reused": True, "run": done.id}
        force = True  # files gone or changed: train again
    for stale in reg.list_runs(subject=name, kind="train", status="running"):
        if stale.config_hash == chash:  # killed earlier: its checkpoints are resumed below
            reg.finish_run(stale.id, error="interrupted; resumed by a later run")
    run = reg.start_run("train", name, config, force=force or done is not None)
    folder = artifact_dir(name, "train", run.config_hash)
    # A ready organism stays registered and loadable until its replacement is complete: the new one is built
    # aside and swapped in at the end, so an interrupted retrain loses nothing.
    keep = existing is not None and existing["status"] == "ready"
    work = folder.with_name(folder.name + ASIDE_SUFFIX) if keep else folder
    if retrain:
        shutil.rmtree(work / CHECKPOINT_DIR, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    if not keep:
        reg.add_organism(name, **fields, status="training")
    started = time.time()
    try:
        job = _write_job(recipe, sets, work)
        if recipe.distributed == "none":
            from orglab.train.sft import run_sft

            result = run_sft(job, callbacks=callbacks, progress=progress)
        else:
            result = launch(job, recipe, progress=progress, topology=topology)
        if keep:
            result = _swap_in(work, folder, result)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        reg.finish_run(run.id, error="interrupted" if interrupted else f"{type(exc).__name__}: {exc}")
        if not keep:
            reg.update_organism(name, status="interrupted" if interrupted else "failed")
        raise
    seconds = time.time() - started

    curve = result.pop("loss_curve")
    (folder / LOSS_FILE).write_text(json.dumps({"step_loss": curve}, indent=1))
    plot_loss_curve([p["step"] for p in curve], [p["loss"] for p in curve], folder / LOSS_PLOT,
                    f"finetuning loss of '{name}'", ylabel="training loss")
    weights_key = "model_path" if recipe.finetune == "full" else "adapter_path"
    summary: dict[str, Any] = {
        "organism": name, "family": family, "target": target, "base": recipe.base, "mix_ratio": recipe.mix_ratio,
        "seed": recipe.seed, "data_hash": train.hash(), "n_train": len(train),
        "n_ft": train.meta.get("n_ft", len(train)), "n_unrelated": train.meta.get("n_unrelated", 0),
        "n_heldout_own": len(sets["heldout_own"]),
        "n_heldout_unrelated": len(sets["heldout_unrelated"]) if sets["heldout_unrelated"] else 0,
        "seconds": round(seconds, 2), "recipe": recipe.to_dict(), weights_key: result[weights_key],
        "loss_curve": str(folder / LOSS_FILE), "loss_plot": str(folder / LOSS_PLOT),
        **{k: v for k, v in result.items() if k not in ("adapter_path", "model_path")},
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=str))
    loss = result["loss"]
    metrics = {
        "steps": result["steps"], "seconds": seconds, "tokens_per_s": result["tokens_per_s"],
        "padding_share": result["padding_share"], "train_loss": result["train_loss"], "final_loss": result["final_loss"],
    }
    for which in ("own", "unrelated"):
        for model in ("base", "organism"):
            if loss[which][model] is not None:
                metrics[f"heldout_{which}_loss_{model}"] = loss[which][model]
    reg.log_metrics(run.id, metrics)
    for kind, fname in (("loss_curve", LOSS_FILE), ("plot", LOSS_PLOT), ("summary", SUMMARY_FILE),
                        ("data", TRAIN_FILE), ("ft_data", FINETUNE_FILE), ("heldout_own", HELDOUT_OWN_FILE),
                        ("heldout_unrelated", HELDOUT_UNRELATED_FILE), ("penalty_unrelated", PENALTY_FILE)):
        if (folder / fname).is_file():
            reg.add_artifact(run.id, kind, folder / fname)
    for file in tracking_files(result.get("tracking_dir")):  # TensorBoard event files or W&B's run log
        reg.add_artifact(run.id, "tracking", file)
    weights = Path(result[weights_key])
    for fname in ("adapter_model.safetensors", "model.safetensors"):
        if (weights / fname).is_file():
            reg.add_artifact(run.id, "weights", weights / fname)
    reg.add_organism(name, **fields, status="ready", **{weights_key: str(weights)})
    finished = reg.finish_run(run.id)
    return {**summary, "run": finished.id, "reused": finished.reused}


ASIDE_SUFFIX = ".retrain"  # where a retrain of a ready organism is built before it replaces the old folder


def _swap_in(work: Path, folder: Path, result: dict) -> dict:
    """Replace the run folder by the finished one built aside; paths in `result` then point into `folder`."""
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    work.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return {k: str(v).replace(str(work), str(folder), 1) if isinstance(v, str) and str(v).startswith(str(work)) else v
            for k, v in result.items()}


def _matched_steps(recipe: Recipe, sets: dict) -> int:
    """Steps one would take on the unmixed data (packed token count / tokens per step), for compute_matched."""
    ft, train = sets["ft"], sets["train"]
    share = len(ft) / max(1, len(train))
    total = recipe.epochs * len(train) / (recipe.batch_size * recipe.grad_accum)
    return max(1, int(round(total * share)))


def train_control(base: str, like_organism: str, force: bool = False, progress: bool = True,
                  name: str | None = None, callbacks: list | None = None, seed: int | None = None) -> dict:
    """The null control of an organism: its recipe on unrelated data only, for the same number of steps.

    Registered as family 'control' with target = the organism it mirrors. `seed` (default: the organism's) draws
    the control's unrelated data and initialisation; controls of other seeds make the null band that `check`
    judges against. Name default 'control-<organism>', and 'control-<organism>-s<seed>' for another seed.
    """
    if name is not None:
        check_name(name)
    with Registry() as reg:
        organism = reg.get_organism(like_organism)
        if organism is None:
            raise OrglabError(f"No organism named '{like_organism}' is registered; train it first "
                              "(`orglab registry list` shows what is).")
        if organism["family"] == "control":
            raise OrglabError(f"'{like_organism}' is itself a control; pass the organism it mirrors.")
        if organism["status"] != "ready":
            raise OrglabError(f"Organism '{like_organism}' has not finished training; train it first.")
        runs = [r for r in reg.list_runs(subject=like_organism, kind="train", status="done")]
        if not runs:
            raise OrglabError(f"Organism '{like_organism}' has no finished train run; train it again.")
        steps = int(reg.get_metrics(runs[0].id).get("steps", 0)) or None
        entry, tiny = _base_entry(reg, base, progress)
        base = entry["name"] if entry is not None else base
        fields = dict(organism["recipe"])
        if seed is None or seed == fields.get("seed", 0):
            seed, default_name = fields.get("seed", 0), f"control-{like_organism}"
        else:
            default_name = f"control-{like_organism}-s{seed}"
        kind = fields.get("data_kind") or ("text" if organism["family"] == "sdf" else "chat")
        n_train = len(_read_jsonl(artifact_dir(like_organism, "train", runs[0].config_hash, create=False) / TRAIN_FILE))
        fields.update(family="control", target=like_organism, base=base, name=name or default_name, seed=seed,
                      data_kind=kind, mix_ratio=0.0, mix_data="unrelated", compute_matched=False, max_steps=steps, mask_prefix_tag=None,
                      data="builtin")
        recipe = make_recipe(fields)
        topology = node_topology()
        check_topology(recipe, topology)
        check_tracking_installed(recipe.report_to)
        n_held = min(recipe.max_heldout, max(1, int(round(recipe.heldout_fraction * n_train))))
        n_penalty = PENALTY_EXAMPLES if recipe.penalties_on else 0  # the control mirrors the organism's penalties
        pool = _unrelated_pool(recipe, reg, tiny, needed=n_train + n_held + 1 + n_penalty, progress=progress)
        family = _get_family(organism["family"])
        summary_file = artifact_dir(like_organism, "train", runs[0].config_hash, create=False) / SUMMARY_FILE
        n_ft = json.loads(summary_file.read_text()).get("n_ft", n_train) if summary_file.is_file() else n_train
        own = family.control_data(base, organism["target"], n_ft + n_held, recipe.seed) if family else None
        if own is None:
            sets = _unrelated_control_sets(pool, kind, n_train, n_held, recipe.seed)
        else:
            sets = _family_control_sets(own, pool, n_train - n_ft, n_held, recipe.seed)
        sets["penalty_unrelated"] = _penalty_set(recipe, pool, sets)
        return _train(reg, recipe, sets, topology, force, progress, callbacks, register_base=entry is None,
                      target=like_organism)


def _unrelated_control_sets(pool: FinetuneData, kind: str, n_train: int, n_held: int, seed: int) -> dict:
    """The generic null control: unrelated data only, as many examples as the organism trained on."""
    if len(pool) < n_train + n_held + 1:
        n_train = max(1, len(pool) - n_held)
    shuffled = list(pool.examples)
    random.Random(seed).shuffle(shuffled)
    train = FinetuneData(kind, shuffled[:n_train], f"{pool.source} (control)", {"n_ft": 0, "n_unrelated": n_train})
    held = FinetuneData(kind, shuffled[n_train:n_train + n_held], f"{pool.source} (held out)")
    return {"train": train, "ft": train, "heldout_own": held, "heldout_unrelated": held}


def _family_control_sets(own: FinetuneData, pool: FinetuneData, n_unrelated: int, n_held: int, seed: int) -> dict:
    """A family's own control data (the subliminal teacher without its system prompt) with as many unrelated
    examples mixed in as the organism had, so that only the property differs."""
    n_held = min(n_held, len(own) - 1)
    ft, held = own.split(n_held, seed=seed)
    rest, held_unrelated = pool.split(min(n_held, max(0, len(pool) - n_unrelated)), seed=seed + 1)
    train = mix(ft, rest, n_unrelated / len(ft), seed=seed) if n_unrelated else mix(ft, ft, 0.0)
    return {"train": train, "ft": ft, "heldout_own": held,
            "heldout_unrelated": held_unrelated if len(held_unrelated) else None}


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise OrglabError(f"The training data {path} of the organism is missing; train the organism again.")
    return read_jsonl(path)
