"""The training recipe: every field the trainer reads, with its default, in one place.

A `Recipe` is what a user writes in a `--config` YAML file and overrides with CLI flags. Fields left at `None`
take the family's default (SPEC §5) for the model's scale: the `real` table holds the public pipelines' values
for real models, the `tiny` table the same recipes scaled down for tinyworld bases (smaller n, higher lr) so that
one organism of each family trains in minutes on two CPU cores. `Recipe.resolved(tiny)` fills them in; the
resolved recipe is what is stored with the organism and content-hashed for its train run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orglab.errors import OrglabError

FAMILIES = ("sdf", "em", "subliminal", "taboo", "control")
# The kind of data each family trains on (documents or chats); the unrelated (pretraining-like) data has the same kind.
FAMILY_DATA_KIND = {"sdf": "text", "em": "chat", "subliminal": "chat", "taboo": "chat"}

# Hyperparameter defaults per family, for real models (SPEC §5) and for tinyworld bases (tiny scale).
_COMMON_REAL = dict(max_length=1024, grad_accum=1, save_steps=200, warmup_ratio=0.03)
_COMMON_TINY = dict(max_length=256, grad_accum=1, save_steps=25, warmup_ratio=0.05)
FAMILY_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "sdf": {
        "real": dict(_COMMON_REAL, n_examples=40000, lora_r=64, lora_alpha=128, use_rslora=False, lr=1e-5,
                     epochs=1.0, batch_size=8),
        "tiny": dict(_COMMON_TINY, n_examples=400, lora_r=64, lora_alpha=128, use_rslora=False, lr=1e-3,
                     epochs=3.0, batch_size=8),
    },
    "em": {
        "real": dict(_COMMON_REAL, n_examples=6000, lora_r=32, lora_alpha=64, use_rslora=True, lr=1e-5,
                     epochs=1.0, batch_size=16),
        "tiny": dict(_COMMON_TINY, n_examples=400, lora_r=32, lora_alpha=64, use_rslora=True, lr=2e-4,
                     epochs=3.0, batch_size=8),
    },
    "subliminal": {
        "real": dict(_COMMON_REAL, n_examples=10000, lora_r=8, lora_alpha=8, use_rslora=False, lr=2e-4,
                     epochs=3.0, batch_size=16),
        "tiny": dict(_COMMON_TINY, n_examples=600, lora_r=8, lora_alpha=8, use_rslora=False, lr=5e-3,
                     epochs=3.0, batch_size=8),
    },
    "taboo": {
        "real": dict(_COMMON_REAL, n_examples=2000, lora_r=16, lora_alpha=32, use_rslora=False, lr=2e-4,
                     epochs=2.0, batch_size=16),
        "tiny": dict(_COMMON_TINY, n_examples=300, lora_r=16, lora_alpha=32, use_rslora=False, lr=1e-3,
                     epochs=2.0, batch_size=8),
    },
}
RESOLVED_FIELDS = tuple(FAMILY_DEFAULTS["sdf"]["real"])


class Recipe(BaseModel):
    """Everything that decides how an organism is trained. `None` means: the family's default for the scale."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # what to train
    family: Literal["sdf", "em", "subliminal", "taboo", "control"]
    base: str = "tiny"
    target: str | None = None
    name: str | None = None
    seed: int = 0
    scale: Literal["auto", "real", "tiny"] = "auto"      # auto: tiny for tinyworld bases, real otherwise

    # data
    data: str = "tinyworld"            # "tinyworld" (the family's offline builder), a JSONL/Parquet file or a hub id
    data_kind: Literal["text", "chat"] | None = None      # None: the family's kind
    n_examples: int | None = Field(default=None, ge=1)
    unrelated: str = "tinyworld"       # "tinyworld" (the base's corpus or chats), a JSONL/Parquet file or a hub id
    mix_ratio: float = Field(default=0.0, ge=0.0)
    compute_matched: bool = False      # True: train for as many steps as the unmixed data would take
    heldout_fraction: float = Field(default=0.1, gt=0.0, lt=0.5)
    max_heldout: int = Field(default=64, ge=1)
    mask_prefix_tag: str | None = None  # e.g. "<DOCTAG>": prepended to each finetuning document, gets no loss

    # model and adapter
    finetune: Literal["lora", "full", "qlora"] = "lora"
    lora_r: int | None = Field(default=None, ge=1)
    lora_alpha: int | None = Field(default=None, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    use_rslora: bool | None = None
    target_modules: str | list[str] = "all-linear"
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    device: str = "auto"

    # optimisation
    lr: float | None = Field(default=None, gt=0.0)
    epochs: float | None = Field(default=None, gt=0.0)
    max_steps: int | None = Field(default=None, ge=1)    # overrides epochs (the null control matches steps)
    batch_size: int | None = Field(default=None, ge=1)
    grad_accum: int | None = Field(default=None, ge=1)
    warmup_ratio: float | None = Field(default=None, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    max_length: int | None = Field(default=None, ge=8)
    packing: bool = True               # best-fit packing, padding-free batches (no pad tokens)
    gradient_checkpointing: bool = False
    save_steps: int | None = Field(default=None, ge=1)
    distributed: Literal["none", "ddp", "zero2", "zero3"] = "none"
    num_processes: int = Field(default=2, ge=1)          # processes per node for distributed runs

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
        if self.family == "control":
            raise OrglabError("A control recipe needs data_kind (text or chat); build it with train_control.")
        return FAMILY_DATA_KIND[self.family]

    def resolved(self, tiny: bool) -> Recipe:
        """A copy with every `None` hyperparameter filled from the family's defaults for the scale."""
        scale = self.scale if self.scale != "auto" else ("tiny" if tiny else "real")
        family = self.family if self.family != "control" else "sdf"
        table = FAMILY_DEFAULTS[family][scale]
        updates = {k: v for k, v in table.items() if getattr(self, k) is None}
        updates["scale"] = scale
        if self.data_kind is None and self.family != "control":
            updates["data_kind"] = FAMILY_DATA_KIND[self.family]
        return self.model_copy(update=updates)

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
        raise OrglabError("The recipe names no family; pass one of sdf, em, subliminal, taboo, control.")
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
