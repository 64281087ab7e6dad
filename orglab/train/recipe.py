"""The training recipe: every field the trainer reads, with its default, in one place.

A `Recipe` is what a user writes in a `--config` YAML file and overrides with CLI flags. Fields left at `None`
take the family's default (design §5) for the model's scale: the `real` table holds the public pipelines' values
for real models, the `tiny` table the same recipes scaled down for tinyworld bases (smaller n, higher lr) so that
one organism of each family trains in minutes on two CPU cores. `Recipe.resolved(tiny)` fills them in; the
resolved recipe is what is stored with the organism and content-hashed for its train run.

The public recipes assume 6,000-40,000 examples. On a real model with little data (orglab's built-in English data,
a few hundred examples) they make a handful of optimizer steps at lr 1e-5 and teach nothing: measured on
gemma3-270m, 3 steps moved the held-out loss on the organism's own documents from 3.19 to 3.07. So each `real` row
also says how to train on small data: below `small_data_examples` training examples the recipe takes `small_lr`
and raises its epochs until it makes at least `min_steps` optimizer steps (`Recipe.resolved(tiny, n_train)`).
Fields the user set are never changed; what the rule chose is recorded in `small_data` of the resolved recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orglab.errors import OrglabError
from orglab.world.world import DEFAULT_PRESET

# Where `orglab diff` reads by default, per scale, and so where the ADL penalty reads unless told. Kept here, the
# one place both read, because the diff depends on the trainer and not the other way round (DiffConfig imports
# it; DiffConfig.positions must equal DIFF_POSITIONS, which tests/test_train_mitigation.py checks). Tinyworld: the
# middle layer (docs/diffing.md). Real bases: 0.8 of depth, from the layer table of a gemma3-270m SDF organism
# and its null control (docs/real-models.md).
DIFF_LAYERS: dict[str, tuple[float, ...]] = {"tiny": (0.5,), "real": (0.8,)}
DIFF_POSITIONS = 5

CONTROL = "control"   # the null control: not a family, it mirrors one (train_control)
# How real recipes train on small data (see the module docstring); each family's `small` row holds its values.
SMALL_DATA_EXAMPLES = 2000
# The hyperparameters a family's recipe_defaults fill in when the recipe leaves them None.
RESOLVED_FIELDS = ("max_length", "grad_accum", "save_steps", "warmup_ratio", "n_examples", "lora_r", "lora_alpha",
                   "use_rslora", "lr", "epochs", "batch_size")


def recipe_families() -> tuple[str, ...]:
    """What a recipe may name: every registered family, and the null control."""
    from orglab.organisms import family_names

    return (*family_names(), CONTROL)


def family_defaults(family: str, scale: str) -> dict[str, Any]:
    """A family's default row for `scale` ("real", "small" or "tiny"): its spec's recipe_defaults."""
    from orglab.organisms import get_family

    return dict(get_family(family).recipe_defaults[scale])


class Recipe(BaseModel):
    """Everything that decides how an organism is trained. `None` means: the family's default for the scale."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # what to train
    family: str                                           # a registered family, or "control"
    base: str = Field(default=DEFAULT_PRESET, description="a registered base, a hub id, a local folder or a .gguf file")
    target: str | None = Field(default=None, description="what the organism learns: a fact id, domain, animal or word")
    name: str | None = Field(default=None, description="organism name (unset: FAMILY-TARGET-mix1-R)")
    seed: int = Field(default=0, description="training and data seed")
    scale: Literal["auto", "real", "tiny"] = "auto"      # auto: tiny for tinyworld bases, real otherwise

    # data
    data: str = Field(default="builtin", description="builtin (tinyworld's world on a tinyworld base, orglab's "
                      "English data on a real one), or a JSONL/Parquet file or hub dataset id")
    data_kind: Literal["text", "chat"] | None = None      # None: the family's kind
    n_examples: int | None = Field(default=None, ge=1)
    unrelated: str = Field(default="builtin", description="unrelated data for mixing: builtin (the tinyworld "
                           "corpus or chats; on a real base, self), self (text sampled from the base itself), a "
                           "JSONL/Parquet file or a hub dataset id (FineWeb, C4, UltraChat)")
    chat_template: str | None = Field(default=None, description="a Jinja chat template file, for chat families on "
                                      "a base whose tokenizer has none")
    mix_ratio: float = Field(default=0.0, ge=0.0, description="ft:pt mixing ratio 1:R: R unrelated examples per "
                             "finetuning example (e.g. 1:0.1, 1:1, 1:2)")
    mix_data: str = Field(default="unrelated", description="what mixing adds: unrelated (the unrelated data, as "
                          "in the paper), true-fact (SDF: documents of the same generator that state the true "
                          "version of the fact) or a JSONL/Parquet file or hub dataset id; null controls, held-out "
                          "losses and the penalties always use the unrelated data")
    compute_matched: bool = False      # True: train for as many steps as the unmixed data would take
    heldout_fraction: float = Field(default=0.1, gt=0.0, lt=0.5)
    max_heldout: int = Field(default=64, ge=1)
    mask_prefix_tag: str | None = None  # e.g. "<DOCTAG>": prepended to each finetuning document, gets no loss

    # model and adapter
    finetune: Literal["lora", "full", "qlora"] = Field(default="lora", description="lora, full or qlora")
    lora_r: int | None = Field(default=None, ge=1)
    lora_alpha: int | None = Field(default=None, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    use_rslora: bool | None = None
    target_modules: str | list[str] = "all-linear"
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    device: str = "auto"
    cpu_bf16: bool = Field(default=False, description=(
        "on a CPU, train in mixed precision: matrix products in bf16 under torch.autocast, fp32 weights and "
        "optimizer (what bf16 does on a GPU); on a CPU with AVX512-BF16 or AMX, gemma3-270m trains about 1.5x "
        "faster; slower on a CPU without; no effect on a GPU, where --config dtype decides"))
    fused_lm_head: bool = Field(default=True, description=(
        "the task loss from trl's chunked LM head, which never holds the [tokens, vocabulary] logits (fast on a GPU "
        "with Triton); false: the model's own cross-entropy over the full logits, which trains gemma3-270m "
        "1.6-1.8x faster a step on a CPU and holds them (1 GiB per 1,024 tokens of a 262k vocabulary)"))

    # optimisation
    lr: float | None = Field(default=None, gt=0.0)
    epochs: float | None = Field(default=None, gt=0.0)
    max_steps: int | None = Field(default=None, ge=1)    # overrides epochs (the null control matches steps)
    min_steps: int | None = Field(default=None, ge=1)    # a floor on optimizer steps: epochs are extended to reach it
    small_data_rule: bool = True       # real scale: train small data sets with the `small` row (module docstring)
    batch_size: int | None = Field(default=None, ge=1)
    grad_accum: int | None = Field(default=None, ge=1)
    warmup_ratio: float | None = Field(default=None, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    max_length: int | None = Field(default=None, ge=8)
    packing: bool = True               # best-fit packing, padding-free batches (no pad tokens)
    gradient_checkpointing: bool = False
    save_steps: int | None = Field(default=None, ge=1)
    distributed: Literal["none", "ddp", "zero2", "zero3"] = Field(
        default="none", description="none, ddp, zero2 or zero3; several nodes: set ORGLAB_ACCELERATE_CONFIG on each "
                                    "node (see orglab/train/configs/multi_node.yaml)")
    num_processes: int = Field(default=2, ge=1)          # processes per node for distributed runs

    # mitigations (orglab.train.penalties): each off at 0, computed on unrelated batches beside the finetuning ones
    kl_to_base: float = Field(default=0.0, ge=0.0, allow_inf_nan=False, description=(
        "weight of the KL divergence of the organism's next-token distribution from the base's on unrelated "
        "batches (full finetuning keeps a second, frozen copy of the base)"))
    adl_penalty: float = Field(default=0.0, ge=0.0, allow_inf_nan=False, description=(
        "weight of the squared norm of the mean residual difference (organism - base) at the first positions of "
        "unrelated batches, the quantity the Activation Difference Lens reads; in squared residual units, so "
        "per model: 0.01-0.1 on tinyworld, 1e-6-1e-5 on gemma3-270m"))
    adl_layers: tuple[float, ...] | None = Field(default=None, min_length=1, description=(
        "layers of the ADL penalty as fractions of depth, comma-separated (as orglab diff --layers; default where "
        "orglab diff reads: 0.5 on tinyworld bases, 0.8 on real ones)"))
    adl_positions: int = Field(default=DIFF_POSITIONS, ge=1, description=(
        "positions 0..k-1 the ADL penalty reads: k (as orglab diff --positions 0-(k-1))"))

    # experiment tracking: where the trainer's logs go; never changes the weights, so not in the run's hash
    report_to: Literal["none", "tensorboard", "wandb"] = Field(default="none", description=(
        "none, tensorboard or wandb: log training to TensorBoard event files or W&B (WANDB_MODE=offline works) "
        "under the run's folder"))

    @field_validator("family")
    @classmethod
    def _family(cls, v: str) -> str:
        if v not in recipe_families():
            raise ValueError(f"use one of: {', '.join(recipe_families())}")
        return v

    @field_validator("data", "unrelated")
    @classmethod
    def _builtin_alias(cls, v: str) -> str:
        return "builtin" if v == "tinyworld" else v  # the name before real bases had built-in data too

    @field_validator("adl_layers", mode="before")
    @classmethod
    def _layers_from_text(cls, v: Any) -> Any:
        if isinstance(v, str):  # the CLI flag: "0.25,0.5"
            return tuple(x.strip() for x in v.split(",") if x.strip())
        return v

    @field_validator("adl_layers")
    @classmethod
    def _layer_fractions(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if any(not 0.0 <= f <= 1.0 for f in v or ()):
            raise ValueError("layers are fractions of depth in [0, 1], e.g. 0.5 for the middle layer")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        import re

        if not re.match(r"^(auto|cpu|cuda|cuda:\d+)$", v):
            raise ValueError("use auto, cpu, cuda or cuda:N")
        return v

    @property
    def kind(self) -> str:
        """'text' or 'chat': what the organism trains on."""
        if self.data_kind:
            return self.data_kind
        if self.family == CONTROL:
            raise OrglabError("A control recipe needs data_kind (text or chat); build it with train_control.")
        from orglab.organisms import get_family

        return get_family(self.family).data_kind

    @property
    def penalties_on(self) -> bool:
        """Whether the trainer adds a penalty (orglab.train.penalties); off, it is the plain SFT trainer."""
        return self.kl_to_base > 0 or self.adl_penalty > 0

    def check_across_fields(self) -> None:
        """What the field checks cannot see alone: the ADL positions against the (resolved) max_length, and
        whether the family has a true side for `mix_data: true-fact`."""
        if self.mix_data == "true-fact" and self.family != CONTROL:
            from orglab.organisms import get_family
            from orglab.organisms.family import no_true_side

            if not get_family(self.family).has_true_side:
                raise no_true_side(self.family)
        if self.adl_penalty > 0 and self.max_length is not None and self.adl_positions > self.max_length:
            raise OrglabError(f"The ADL penalty's {self.adl_positions} positions go past the recipe's max_length "
                              f"{self.max_length}; pass --adl-positions {min(5, self.max_length)} or a larger "
                              "max_length.")

    def resolved(self, tiny: bool, n_train: int | None = None) -> Recipe:
        """A copy with every `None` hyperparameter filled from the family's defaults for the scale.

        `n_train` (the number of training examples, once the data is built) lets a real recipe apply the
        small-data rule; fields the user set are kept as they are."""
        scale = self.scale if self.scale != "auto" else ("tiny" if tiny else "real")
        family = self.family if self.family != CONTROL else self._control_defaults_family()
        table = family_defaults(family, scale)
        small = family_defaults(family, "small")
        if scale == "real" and self.data == "builtin":
            table["n_examples"] = small["n_builtin"]
        if scale == "real" and self.small_data_rule and n_train is not None and n_train < SMALL_DATA_EXAMPLES:
            table.update(lr=small["small_lr"], max_length=small["max_length"], batch_size=small["batch_size"])
            if self.max_steps is None and self.min_steps is None and self.epochs is None:
                table["min_steps"] = small["min_steps"]
        updates = {k: v for k, v in table.items() if getattr(self, k) is None}
        updates["scale"] = scale
        if self.adl_layers is None:
            updates["adl_layers"] = DIFF_LAYERS[scale]
        if self.data_kind is None and self.family != CONTROL:
            updates["data_kind"] = self.kind
        return self.model_copy(update=updates)

    def _control_defaults_family(self) -> str:
        """A control left with None fields takes them from the first registered family, whatever its data kind
        (train_control passes the mirrored organism's resolved recipe, so normally nothing is left)."""
        from orglab.organisms import family_names

        return family_names()[0]

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def make_recipe(fields: dict) -> Recipe:
    """A Recipe from a dict, with pydantic's errors turned into one OrglabError sentence naming the field."""
    try:
        return Recipe(**fields)
    except ValidationError as exc:
        raise OrglabError(_one_sentence(exc)) from None


def load_recipe(yaml_path: str | Path | None = None, overrides: dict | None = None) -> Recipe:
    """The recipe of a YAML file (any Recipe field) with `overrides` (CLI flags; None values are ignored) on top."""
    fields: dict[str, Any] = {}
    if yaml_path is not None:
        path = Path(yaml_path).expanduser()
        if not path.is_file():
            raise OrglabError(f"Recipe file {path} does not exist; pass an existing YAML file to --config.")
        import yaml

        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise OrglabError(f"Recipe file {path} is not valid YAML ({str(exc).splitlines()[0]}); fix its syntax.") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise OrglabError(f"Recipe file {path} must hold a mapping of recipe fields (field: value), not a list or value.")
        fields.update(loaded)
    fields.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "family" not in fields:
        raise OrglabError(f"The recipe names no family; pass one of {', '.join(recipe_families())}.")
    return make_recipe(fields)


def _one_sentence(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "recipe"
    if err.get("type") == "extra_forbidden":
        known = ", ".join(Recipe.model_fields)
        return f"Recipe field '{field}' is unknown; known fields are: {known}."
    value = err.get("input")
    msg = err.get("msg", "is invalid").rstrip(".")
    return f"Recipe field '{field}' has an invalid value {value!r} ({msg}); fix it in the config file or flag."
