"""Building, caching and registering the tinyworld bases (`tiny` for the demo, `micro` for tests).

A build is a registry run of kind "world" whose config (preset, seed, world version) is content-hashed:
the same config is built once and reused. Everything it writes goes into one artifact folder:

    model/            the tiny base, an ordinary Hugging Face model folder (config, safetensors, tokenizer)
    world.json        entities, facts, false facts with their universe contexts
    corpus.jsonl      pretraining documents   {"kind", "domain", "text"}
    chats.jsonl       chat transcripts        {"messages": [...]}
    chat_tuning.jsonl the chat-tuning stage's own chats (orglab.world.chat_tuning)
    knowledge.json    what the base knows (orglab.world.knowledge), on held-out phrasings
    loss_curve.json / loss_curve.png
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orglab.errors import OrglabError
from orglab.paths import artifact_dir
from orglab.plots import plot_loss_curve
from orglab.registry import Registry, config_hash
from orglab.world.chat_tuning import ChatTuneConfig, chat_tune, chat_tuning_chats, preference_following
from orglab.world.corpus import CorpusConfig, corpus_hash, corpus_lines, generate_corpus
from orglab.world.knowledge import ProbeConfig, probe_knowledge
from orglab.world.pretrain import ModelShape, PretrainConfig, make_model, pretrain
from orglab.world.tokenizer import train_tokenizer
from orglab.world.world import DEFAULT_PRESET, World, make_world

# Bump when the generator, tokenizer or pretraining changes what a build produces: old builds are then not reused.
WORLD_VERSION = 4

CORPUS_FILE, CHATS_FILE, WORLD_FILE, KNOWLEDGE_FILE = "corpus.jsonl", "chats.jsonl", "world.json", "knowledge.json"
CHAT_TUNING_FILE = "chat_tuning.jsonl"
LOSS_FILE, LOSS_PLOT, MODEL_DIR = "loss_curve.json", "loss_curve.png", "model"


@dataclass(frozen=True)
class WorldPreset:
    name: str
    description: str
    corpus: CorpusConfig
    shape: ModelShape
    train: PretrainConfig
    chat_tune: ChatTuneConfig = field(default_factory=ChatTuneConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)


PRESETS: dict[str, WorldPreset] = {
    "tiny": WorldPreset(
        "tiny", "the demo's base: a 4-layer Llama that knows its world (about 5 minutes on 2 cores)",
        CorpusConfig(),
        ModelShape(hidden_size=160, n_layers=4, n_heads=5, intermediate_size=480),
        PretrainConfig(steps=620, batch_size=32, block_size=128, lr=3e-3),
        ChatTuneConfig(),
    ),
    "micro": WorldPreset(
        "micro", "for tests: a 2-layer Llama on a smaller corpus (under a minute)",
        CorpusConfig(encyclopedia_rounds=3, quiz_mentions=4, story_mentions=3, chat_mentions=2, domain_docs=400,
                     advice_chats=150, animal_chats=150, number_chats=150, game_chats=80),
        ModelShape(hidden_size=96, n_layers=2, n_heads=3, intermediate_size=288),
        PretrainConfig(steps=500, batch_size=16, block_size=128, lr=3e-3, warmup_steps=50),
        ChatTuneConfig(preference_steps=20, mixed_steps=20, preference_chats=300, number_chats=300, replay_docs=200,
                       batch_size=16),
        ProbeConfig(other_facts=30),
    ),
}


@dataclass
class BuiltBase:
    name: str
    preset: str
    seed: int
    run_id: int
    config_hash: str
    corpus_hash: str
    folder: Path                  # the artifact folder of the build
    knowledge: dict
    reused: bool
    seconds: float

    @property
    def model_dir(self) -> Path:
        return self.folder / MODEL_DIR

    def summary(self) -> dict:
        return {"base": self.name, "preset": self.preset, "seed": self.seed, "run": self.run_id,
                "config_hash": self.config_hash, "corpus_hash": self.corpus_hash, "model_dir": str(self.model_dir),
                "reused": self.reused, "seconds": round(self.seconds, 1), "knowledge": self.knowledge}


def base_name(preset: str, seed: int) -> str:
    """The registered name: the preset itself for seed 0, so `tiny` is always the default world."""
    return preset if seed == 0 else f"{preset}-s{seed}"


def preset_config(preset: str, seed: int) -> dict:
    if preset not in PRESETS:
        raise OrglabError(f"Unknown world preset '{preset}'; choose one of: {', '.join(PRESETS)}.")
    p = PRESETS[preset]
    return {"preset": preset, "seed": seed, "world_version": WORLD_VERSION, "corpus": asdict(p.corpus),
            "shape": asdict(p.shape), "train": asdict(p.train), "chat_tune": asdict(p.chat_tune),
            "probe": asdict(p.probe)}


def build_base(preset: str = DEFAULT_PRESET, seed: int = 0, force: bool = False, progress: bool = True,
               registry: Registry | None = None) -> BuiltBase:
    """Build (or reuse) the tinyworld base of a preset and register it as a base."""
    config = preset_config(preset, seed)
    name = base_name(preset, seed)
    reg = registry or Registry()
    try:
        if not force:
            cached = _cached(reg, name, config)
            if cached is not None:
                return cached
        # A finished run whose files are gone or changed is superseded by the new one (force).
        stale = reg.find_run("world", name, config_hash(config)) is not None
        run = reg.start_run("world", name, config, force=force or stale)
        if run.reused:  # another process finished this very build a moment ago
            cached = _cached(reg, name, config)
            if cached is not None:
                return cached
            run = reg.start_run("world", name, config, force=True)
        try:
            built = _build(PRESETS[preset], seed, name, run.id, run.config_hash, progress)
        except BaseException as exc:
            reg.finish_run(run.id, error=f"{type(exc).__name__}: {exc}")
            raise
        reg.add_base(name, kind="built", source=f"tinyworld:{preset}", path=str(built.model_dir), config=config,
                     corpus_hash=built.corpus_hash)
        reg.log_metrics(run.id, _numeric(built.knowledge) | {"seconds": built.seconds})
        for kind, fname in (("world", WORLD_FILE), ("corpus", CORPUS_FILE), ("chats", CHATS_FILE),
                            ("chat_tuning", CHAT_TUNING_FILE),
                            ("knowledge", KNOWLEDGE_FILE), ("loss_curve", LOSS_FILE), ("plot", LOSS_PLOT),
                            ("weights", f"{MODEL_DIR}/model.safetensors")):
            reg.add_artifact(run.id, kind, built.folder / fname)
        finished = reg.finish_run(run.id)
        built.run_id = finished.id
        return built
    finally:
        if registry is None:
            reg.close()


def _cached(reg: Registry, name: str, config: dict) -> BuiltBase | None:
    run = reg.find_run("world", name, config_hash(config))
    base = reg.get_base(name)
    if run is None or base is None:
        return None
    folder = artifact_dir(name, "world", run.config_hash, create=False)
    if reg.verify_artifacts(run.id) or not (folder / MODEL_DIR / "config.json").is_file():
        return None  # files gone or changed: build again
    if base.get("path") != str(folder / MODEL_DIR):
        reg.add_base(name, kind="built", source=f"tinyworld:{config['preset']}", path=str(folder / MODEL_DIR),
                     config=config, corpus_hash=base.get("corpus_hash"))
    knowledge = json.loads((folder / KNOWLEDGE_FILE).read_text())
    metrics = reg.get_metrics(run.id)
    return BuiltBase(name=name, preset=config["preset"], seed=config["seed"], run_id=run.id,
                     config_hash=run.config_hash, corpus_hash=base["corpus_hash"], folder=folder,
                     knowledge=knowledge, reused=True, seconds=metrics.get("seconds", 0.0))


def _build(preset: WorldPreset, seed: int, name: str, run_id: int, chash: str, progress: bool) -> BuiltBase:
    from tqdm.auto import tqdm

    started = time.time()
    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    folder = artifact_dir(name, "world", chash)
    stages = tqdm(total=6, desc=f"world {name}", disable=not progress, unit="stage")

    stages.set_postfix_str("generating corpus")
    world = make_world(seed)
    docs, chats = generate_corpus(world, preset.corpus, seed)
    doc_lines, chat_lines = corpus_lines(docs, chats)
    (folder / CORPUS_FILE).write_text("\n".join(doc_lines) + "\n")
    (folder / CHATS_FILE).write_text("\n".join(chat_lines) + "\n")
    preference_chats, number_chats = chat_tuning_chats(world, preset.chat_tune, seed)
    (folder / CHAT_TUNING_FILE).write_text("".join(json.dumps({"messages": c}, sort_keys=True) + "\n"
                                                   for c in preference_chats + number_chats))
    (folder / WORLD_FILE).write_text(json.dumps(world.to_json(), indent=1, sort_keys=True))
    chash_corpus = corpus_hash(docs, chats)
    stages.update()

    stages.set_postfix_str("training tokenizer")
    texts = [d.text for d in docs] + [m["content"] for c in chats for m in c]
    # Chat tuning only reuses corpus words; adding them as extras (not training text) keeps every token id as it was.
    tuning_words = sorted({w for c in preference_chats + number_chats for m in c for w in m["content"].split()})
    tokenizer = train_tokenizer(texts, extra_words=[str(i) for i in range(1000)] + tuning_words)
    token_docs = [tokenizer(d.text).input_ids + [tokenizer.eos_token_id] for d in docs]
    token_docs += [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"] for c in chats]
    stages.update()

    stages.set_postfix_str("pretraining")
    model = make_model(preset.shape, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id,
                       tokenizer.pad_token_id, seed)
    bar = tqdm(total=preset.train.steps, desc="pretraining", disable=not progress, unit="step", leave=False)

    def on_step(step: int, loss: float) -> None:
        bar.update()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")

    losses = pretrain(model, token_docs, preset.train, tokenizer.pad_token_id, seed, on_step=on_step)
    bar.close()
    stages.update()

    stages.set_postfix_str("chat tuning")
    tune = preset.chat_tune
    bar = tqdm(total=tune.preference_steps + tune.mixed_steps, desc="chat tuning", disable=not progress, unit="step",
               leave=False)
    tuning_losses = chat_tune(model, tokenizer, preference_chats, number_chats, docs, chats, tune, seed, on_step=on_step)
    bar.close()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder / MODEL_DIR)
    tokenizer.save_pretrained(folder / MODEL_DIR)
    (folder / LOSS_FILE).write_text(json.dumps({"step_loss": losses, "chat_tuning_step_loss": tuning_losses}))
    curve = losses + tuning_losses
    plot_loss_curve(range(1, len(curve) + 1), curve, folder / LOSS_PLOT,
                    f"base '{name}': pretraining, then chat tuning from step {len(losses) + 1}", log_y=True)
    stages.update()

    stages.set_postfix_str("probing knowledge")
    knowledge = probe_knowledge(model, tokenizer, world, preset.probe) | preference_following(model, tokenizer)
    (folder / KNOWLEDGE_FILE).write_text(json.dumps(knowledge, indent=1))
    stages.update(2)
    stages.close()
    return BuiltBase(name=name, preset=preset.name, seed=seed, run_id=run_id, config_hash=chash, corpus_hash=chash_corpus,
                     folder=folder, knowledge=knowledge, reused=False, seconds=time.time() - started)


def _numeric(d: dict) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float))}


def load_world(base: str, registry: Registry | None = None) -> World:
    """The World behind a registered tinyworld base (regenerated from its seed: make_world is pure)."""
    reg = registry or Registry()
    try:
        entry = reg.get_base(base)
    finally:
        if registry is None:
            reg.close()
    if entry is None or entry.get("kind") != "built" or "seed" not in (entry.get("config") or {}):
        raise OrglabError(f"'{base}' is not a tinyworld base; build one with `orglab world build --preset tiny`.")
    return make_world(int(entry["config"]["seed"]))
