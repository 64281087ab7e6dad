"""Loading a base or an organism, for every other module (trainer, diff, evals).

One code path serves real models (Qwen3, Llama 3, Gemma 2/3 from the Hugging Face hub or a local folder, on GPUs)
and the tiny models orglab builds itself: both are ordinary Hugging Face model folders loaded by `from_pretrained`.

A name resolves, in this order, to a registered organism, a registered base, a GGUF file or packaged GGUF base
(`model.gguf`, `gemma3-270m`: dequantized once into a registered base folder by orglab.bases), an existing local
folder (a full model folder with config.json, or a LoRA adapter folder with adapter_config.json) or a hub id
("org/name"). An organism with a LoRA adapter is loaded as its base plus a `peft.PeftModel` on top, so one copy of
the base weights serves both sides of a diff: `with model.disable_adapter(): ...` runs the base.

Everything a user can get wrong (unknown name, missing folder, model not cached while offline, bad dtype or device,
a model that needs remote code) ends in one `OrglabError` sentence.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlparse

from orglab.bases import is_gguf_ref
from orglab.errors import OrglabError

DTYPES = ("auto", "bf16", "fp16", "fp32")
_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_DTYPE_SHORT = {v: k for k, v in _DTYPE_NAMES.items()}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_HUB_PROBE_TIMEOUT_S = 3.0
_hub_reachable_cache: dict[str, bool] = {}


# ----------------------------------------------------------------------------------------------------------------
# Options and specs


@dataclass
class LoadOptions:
    """How to load: dtype auto|bf16|fp16|fp32, device auto|cpu|cuda|cuda:N, 4-bit NF4, remote code (off)."""

    dtype: str = "auto"
    device: str = "auto"
    load_in_4bit: bool = False
    trust_remote_code: bool = False

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            raise OrglabError(f"dtype '{self.dtype}' is not supported; use one of {', '.join(DTYPES)}.")
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise OrglabError(f"device '{self.device}' is not supported; use auto, cpu, cuda or cuda:N.")

    def resolved_device(self) -> str:
        """The concrete device: 'cpu' or 'cuda:N'."""
        import torch

        self.validate()
        if self.device == "auto":
            return f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            return "cpu"
        if not torch.cuda.is_available():
            raise OrglabError(f"device '{self.device}' was requested but no CUDA GPU is visible; use --device cpu.")
        index = torch.cuda.current_device() if self.device == "cuda" else int(self.device.split(":")[1])
        if index >= torch.cuda.device_count():
            raise OrglabError(
                f"device '{self.device}' does not exist (this machine has {torch.cuda.device_count()} GPU(s)); "
                "use cuda:0 or another visible GPU."
            )
        return f"cuda:{index}"

    def resolved_dtype(self, device: str, checkpoint_dtype: Any = None):
        """The torch dtype to load in.

        auto: bf16 on a GPU that supports it (fp16 on older GPUs, fp32 if the checkpoint is fp32), fp32 on CPU.
        """
        import torch

        self.validate()
        if self.dtype != "auto":
            return getattr(torch, _DTYPE_NAMES[self.dtype])
        if device.startswith("cuda"):
            if torch.cuda.is_bf16_supported():
                return torch.bfloat16
            return torch.float32 if _as_torch_dtype(checkpoint_dtype) == torch.float32 else torch.float16
        return torch.float32


@dataclass
class ModelSpec:
    """What a name resolves to.

    kind: 'base' | 'organism' (registered names), 'path' (a local folder) or 'hub' (a hub id).
    base_source: local folder or hub id of the base weights; adapter_path: LoRA adapter folder or None;
    full_model_path: full finetuned model folder or None (then it replaces base_source as the weights).
    """

    kind: str
    name: str
    base_source: str
    adapter_path: str | None = None
    full_model_path: str | None = None
    base_name: str | None = None  # the registered base name, when known

    @property
    def weights_source(self) -> str:
        """Folder or hub id whose weights `from_pretrained` loads (before any adapter)."""
        return self.full_model_path or self.base_source

    @property
    def tokenizer_source(self) -> str:
        """Adapter or finetuned folder if it ships tokenizer files, else the base."""
        for candidate in (self.adapter_path, self.full_model_path):
            if candidate and _has_tokenizer_files(Path(candidate)):
                return candidate
        return self.base_source


@dataclass
class LoadedModel:
    """A loaded model; `options` holds the concrete choices made (dtype bf16|fp16|fp32, device cpu|cuda:N)."""

    model: Any
    tokenizer: Any
    spec: ModelSpec
    options: LoadOptions = field(default_factory=LoadOptions)

    @property
    def is_adapter(self) -> bool:
        """True when `model` is a PeftModel whose adapter can be switched off with `model.disable_adapter()`."""
        return self.spec.adapter_path is not None


# ----------------------------------------------------------------------------------------------------------------
# Resolution


def resolve(name_or_path: str, registry=None) -> ModelSpec:
    """Resolve a registered organism or base name, a local folder or a hub id to a ModelSpec."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise OrglabError("An empty model name was given; pass a registered base or organism, a folder or a hub id.")
    name = name_or_path.strip()
    with _registry(registry) as reg:
        if reg is not None:
            organism = reg.get_organism(name)
            if organism is not None:
                return _organism_spec(organism, reg)
            base = reg.get_base(name)
            if base is not None:
                return ModelSpec(kind="base", name=name, base_source=_base_entry_source(base), base_name=name)
        if is_gguf_ref(name):
            return _gguf_spec(name, reg)
        return _path_or_hub_spec(name, reg)


def _gguf_spec(name: str, reg) -> ModelSpec:
    """A .gguf file or packaged GGUF base: converted and registered on first use (orglab.bases), then a base."""
    from orglab.bases import ensure_gguf_base

    if reg is None:
        from orglab.registry import Registry

        with Registry() as own:
            return _gguf_spec(name, own)
    base = ensure_gguf_base(name, reg)
    return ModelSpec(kind="base", name=base["name"], base_source=_base_entry_source(base), base_name=base["name"])


def _organism_spec(organism: dict, reg) -> ModelSpec:
    name = organism["name"]
    adapter, full = organism.get("adapter_path"), organism.get("model_path")
    if not adapter and not full:
        raise OrglabError(
            f"Organism '{name}' has neither a LoRA adapter nor a model folder registered (training did not finish); "
            f"train it again or remove it with `orglab registry rm {name}`."
        )
    for label, folder in (("adapter", adapter), ("model", full)):
        if folder and not Path(folder).expanduser().is_dir():
            raise OrglabError(
                f"The {label} folder {folder} of organism '{name}' does not exist; train it again or remove it "
                f"with `orglab registry rm {name}`."
            )
    base_ref = organism.get("base")
    base_entry = reg.get_base(base_ref) if base_ref else None
    if base_entry is not None:
        base_source = _base_entry_source(base_entry)
    elif base_ref:
        base_source = _base_source_from_ref(base_ref, None, f"the base of organism '{name}'")
    elif full:
        base_source = str(Path(full).expanduser().resolve())
    else:
        raise OrglabError(f"Organism '{name}' has no base registered; register its base or train it again.")
    return ModelSpec(
        kind="organism",
        name=name,
        base_source=base_source,
        adapter_path=str(Path(adapter).expanduser().resolve()) if adapter else None,
        full_model_path=str(Path(full).expanduser().resolve()) if full else None,
        base_name=base_ref if base_entry is not None else None,
    )


def _base_entry_source(base: dict) -> str:
    path = base.get("path")
    if path:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise OrglabError(
                f"Base '{base['name']}' is registered with folder {path}, which does not exist; rebuild it "
                f"(`orglab world build` for tiny) or remove it with `orglab registry rm {base['name']}`."
            )
        return str(folder.resolve())
    source = base.get("source")
    if not source:
        raise OrglabError(f"Base '{base['name']}' has no folder or hub id registered; register it again.")
    return source


def _path_or_hub_spec(name: str, reg) -> ModelSpec:
    folder = Path(name).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise OrglabError(f"'{name}' is a file, not a model folder; pass the folder that holds config.json.")
        folder = folder.resolve()
        adapter_cfg = folder / "adapter_config.json"
        if adapter_cfg.is_file():
            base_ref = _read_json(adapter_cfg).get("base_model_name_or_path")
            if not base_ref:
                raise OrglabError(
                    f"The adapter folder {folder} does not name its base (base_model_name_or_path is empty in "
                    "adapter_config.json); set it to the base's folder or hub id."
                )
            base_source = _base_source_from_ref(base_ref, reg, f"the base of adapter {folder}")
            return ModelSpec(kind="path", name=name, base_source=base_source, adapter_path=str(folder))
        if (folder / "config.json").is_file():
            return ModelSpec(kind="path", name=name, base_source=str(folder))
        raise OrglabError(
            f"Folder '{name}' has neither config.json nor adapter_config.json, so it is not a model or LoRA "
            "adapter folder; pass the folder written by save_pretrained."
        )
    if _looks_like_path(name):
        raise OrglabError(
            f"Folder '{name}' does not exist; pass an existing model folder, a registered name or a hub id."
        )
    if _HUB_ID.match(name):
        return ModelSpec(kind="hub", name=name, base_source=name)
    raise OrglabError(
        f"'{name}' is not a registered base or organism, a local model folder, or a hub id; "
        "run `orglab registry list` to see the registered names, or pass a folder or an id like 'org/model'."
    )


def _base_source_from_ref(ref: str, reg, what: str) -> str:
    """A base named by an organism or adapter: registered base, existing folder or hub id."""
    if reg is not None:
        entry = reg.get_base(ref)
        if entry is not None:
            return _base_entry_source(entry)
    folder = Path(ref).expanduser()
    if folder.is_dir():
        return str(folder.resolve())
    if _HUB_ID.match(ref) and not _looks_like_path(ref):
        return ref
    raise OrglabError(
        f"{what[0].upper()}{what[1:]} is '{ref}', which is neither an existing folder, a registered base nor a hub "
        "id; restore that folder or point base_model_name_or_path at the base."
    )


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", ".\\"))
        or name in {".", ".."}
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
    )


@contextmanager
def _registry(registry) -> Iterator[Any]:
    """The given registry, or the one under ORGLAB_HOME if its file exists (opened and closed here), or None."""
    if registry is not None:
        yield registry
        return
    from orglab.paths import registry_path

    if not registry_path(create=False).exists():
        yield None
        return
    from orglab.registry import Registry

    reg = Registry()
    try:
        yield reg
    finally:
        reg.close()


# ----------------------------------------------------------------------------------------------------------------
# Loading


def load_tokenizer(name_or_path: str, registry=None, options: LoadOptions | None = None):
    """The tokenizer of a base or organism; pad token set to eos when missing (padding side left as shipped)."""
    options = options or LoadOptions()
    options.validate()
    spec = resolve(name_or_path, registry=registry)
    return _load_tokenizer(spec, options)


def load_model(
    name_or_path: str,
    options: LoadOptions | None = None,
    registry=None,
    trainable_adapter: bool = False,
) -> LoadedModel:
    """Load a base or organism with its tokenizer.

    A LoRA organism is its base (loaded once) wrapped in `peft.PeftModel`; `model.disable_adapter()` gives the base.
    The model is in eval mode, unless `trainable_adapter` is set and there is an adapter (then it is trainable and
    in train mode).
    """
    from transformers import AutoModelForCausalLM

    options = options or LoadOptions()
    options.validate()
    spec = resolve(name_or_path, registry=registry)
    device = options.resolved_device()
    tokenizer = _load_tokenizer(spec, options)

    source = spec.weights_source
    folder, local_only = _locate(source)
    config = _call_hf(source, local_only, lambda: _auto_config(folder, local_only, options.trust_remote_code))
    checkpoint_dtype = getattr(_text_config(config), "dtype", None) or getattr(config, "dtype", None)
    dtype = options.resolved_dtype(device, checkpoint_dtype)
    kwargs: dict[str, Any] = {
        "config": config,
        "dtype": dtype,
        "device_map": {"": device},
        "trust_remote_code": options.trust_remote_code,
        "local_files_only": local_only,
    }
    if options.load_in_4bit:
        kwargs["quantization_config"] = _bnb_4bit_config(dtype)
    model = _call_hf(source, local_only, lambda: AutoModelForCausalLM.from_pretrained(folder, **kwargs))
    if options.load_in_4bit:
        _fix_bnb_cpu_packing(model, device)

    trainable = bool(trainable_adapter and spec.adapter_path)
    if spec.adapter_path:
        from peft import PeftModel

        adapter = spec.adapter_path
        try:
            model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise OrglabError(
                f"The LoRA adapter {adapter} cannot be loaded onto {spec.base_source} ({_first_line(exc)}); "
                "check that the adapter was trained on this base."
            ) from None
    model.train(trainable)
    resolved = replace(options, dtype=_DTYPE_SHORT[str(dtype).replace("torch.", "")], device=device)
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, options=resolved)


def _load_tokenizer(spec: ModelSpec, options: LoadOptions):
    from transformers import AutoTokenizer

    source = spec.tokenizer_source
    folder, local_only = _locate(source)
    tokenizer = _call_hf(
        source,
        local_only,
        lambda: AutoTokenizer.from_pretrained(
            folder, trust_remote_code=options.trust_remote_code, local_files_only=local_only
        ),
    )
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _auto_config(source: str, local_only: bool, trust_remote_code: bool):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, local_files_only=local_only)


def _bnb_4bit_config(compute_dtype):
    from transformers import BitsAndBytesConfig

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise OrglabError("4-bit loading needs bitsandbytes; install it with `pip install bitsandbytes`.") from None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_use_double_quant=False,
    )


def _fix_bnb_cpu_packing(model, device: str) -> None:
    """Keep bitsandbytes on its generic 4-bit kernel on the CPU (turn off its packed AVX512-bf16 fast path).

    On CPUs with AVX512-bf16, a Linear4bit repacks its weight in place on its first no-grad eval forward; from then
    on (1) backward no longer reaches through it, so a QLoRA step after any evaluation gets no gradients, (2) it
    computes with bf16 scales, so eval and train activations differ, and (3) the repacking crashes for layers whose
    in_features is not a multiple of the block size (64), e.g. hidden size 32. Correctness first: off for all layers.
    """
    if device != "cpu":
        return
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


# ----------------------------------------------------------------------------------------------------------------
# Hub access: never hang, never print a traceback for a missing model


def _locate(source: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, local_files_only) for a folder or a hub id.

    Offline (HF_HUB_OFFLINE set, or the hub not reachable within a few seconds) a hub id becomes its snapshot
    folder in the local Hugging Face cache, so that no later step (transformers also probes the hub for
    adapter_config.json, with retries) touches the network.
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        return str(folder), True
    if not _hub_offline():
        return source, False
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(source, local_files_only=True), True
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise OrglabError(_not_cached_message(source)) from None


def _not_cached_message(source: str) -> str:
    return (
        f"Model '{source}' is not in the local Hugging Face cache and the hub cannot be reached (or HF_HUB_OFFLINE "
        f"is set); download it on a machine with network (`hf download {source}`) or pass a local folder."
    )


def _hub_offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        endpoint = "https://huggingface.co"
    return not _hub_reachable(endpoint)


def _hub_reachable(endpoint: str) -> bool:
    """A TCP connection to the hub within a few seconds (DNS included), cached per process."""
    if endpoint in _hub_reachable_cache:
        return _hub_reachable_cache[endpoint]
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=_HUB_PROBE_TIMEOUT_S):
                result["ok"] = True
        except OSError:
            result["ok"] = False

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_HUB_PROBE_TIMEOUT_S + 0.5)  # getaddrinfo has no timeout of its own
    _hub_reachable_cache[endpoint] = result["ok"]
    return result["ok"]


def _call_hf(source: str, local_only: bool, load):
    """Run a `from_pretrained`, turning a missing model or remote-code refusal into one OrglabError sentence."""
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    is_local = Path(source).expanduser().is_dir()
    try:
        return load()
    except GatedRepoError:
        raise OrglabError(
            f"Model '{source}' is gated on the Hugging Face hub; accept its license on the hub and log in with "
            "`hf auth login`, or pass a local folder."
        ) from None
    except RepositoryNotFoundError:
        raise OrglabError(
            f"Model '{source}' does not exist on the Hugging Face hub (or is private); check the id, log in with "
            "`hf auth login`, or pass a local folder."
        ) from None
    except HFValidationError:
        raise OrglabError(f"'{source}' is not a valid hub id; pass an id like 'org/model' or a local folder.") from None
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise OrglabError(
                f"Model '{source}' ships its own Python code; set LoadOptions(trust_remote_code=...) to true "
                "only if you trust that code."
            ) from None
        raise
    except OSError as exc:  # transformers wraps hub and file errors in OSError (EnvironmentError)
        if is_local:
            raise OrglabError(
                f"The model folder {source} cannot be loaded ({_first_line(exc)}); rebuild or re-save it with "
                "save_pretrained."
            ) from None
        if local_only:
            raise OrglabError(
                f"The cached copy of model '{source}' cannot be loaded ({_first_line(exc)}); download it again on "
                f"a machine with network (`hf download {source}`) or pass a local folder."
            ) from None
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, GatedRepoError):
            raise OrglabError(
                f"Model '{source}' is gated on the Hugging Face hub; accept its license on the hub and log in "
                "with `hf auth login`, or pass a local folder."
            ) from None
        if isinstance(cause, RepositoryNotFoundError) or "not a valid model identifier" in str(exc):
            raise OrglabError(
                f"Model '{source}' does not exist on the Hugging Face hub (or is private); check the id, log in "
                "with `hf auth login`, or pass a local folder."
            ) from None
        raise OrglabError(
            f"Model '{source}' cannot be downloaded from the Hugging Face hub ({_first_line(exc)}); check the "
            "network or pass a local folder."
        ) from None


# ----------------------------------------------------------------------------------------------------------------
# Architecture helpers (Llama, Qwen2/3, Gemma/Gemma2/Gemma3, through a PeftModel too)


def unwrap_model(model):
    """The transformers model under a PeftModel (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    if callable(get_base):
        return get_base()
    return model


def text_config(model_or_config):
    """The language-model config (Gemma3 and other multimodal configs nest it in `text_config`)."""
    config = getattr(unwrap_model(model_or_config), "config", model_or_config)
    return _text_config(config)


def _text_config(config):
    getter = getattr(config, "get_text_config", None)
    if callable(getter):
        try:
            return getter(decoder=True)
        except TypeError:
            return getter()
    return getattr(config, "text_config", None) or config


def n_layers(model_or_config) -> int:
    return int(text_config(model_or_config).num_hidden_layers)


def layer_index(fraction: float, depth: int) -> int:
    """Layer as a fraction of depth (design §6: int(fraction * (n_layers - 1))): how `orglab diff --layers` and the
    trainer's ADL penalty (`--adl-layers`) address a layer, on any model."""
    if not 0.0 <= float(fraction) <= 1.0:
        raise OrglabError(f"Layer fraction {fraction} is outside [0, 1]; use e.g. 0.5 for the middle layer.")
    return int(float(fraction) * (depth - 1))


def resolve_layers(model, fractions: Sequence[float]) -> list[int]:
    depth = n_layers(model)
    return sorted({layer_index(f, depth) for f in fractions})


def hidden_size(model_or_config) -> int:
    return int(text_config(model_or_config).hidden_size)


def get_decoder(model):
    """The decoder stack (the module that holds `layers` and `norm`)."""
    import torch.nn as nn

    base = unwrap_model(model)
    candidates = []
    getter = getattr(base, "get_decoder", None)
    if callable(getter):
        candidates.append(getter())
    inner = getattr(base, "model", None)
    candidates += [inner, getattr(inner, "language_model", None), getattr(base, "language_model", None), base]
    for cand in candidates:
        if cand is None:
            continue
        for owner in (cand, getattr(cand, "language_model", None)):
            if owner is not None and isinstance(getattr(owner, "layers", None), nn.ModuleList):
                return owner
    raise OrglabError(
        f"orglab cannot find the transformer blocks of {type(base).__name__}; use a Llama, Qwen or Gemma "
        "style model (decoder with .layers)."
    )


def get_decoder_layers(model):
    """The nn.ModuleList of transformer blocks."""
    return get_decoder(model).layers


def get_final_norm(model):
    """The norm applied after the last block, before the unembedding."""
    decoder = get_decoder(model)
    for name in ("norm", "final_layernorm", "ln_f"):
        module = getattr(decoder, name, None)
        if module is not None:
            return module
    raise OrglabError(f"orglab cannot find the final norm of {type(unwrap_model(model)).__name__}.")


def get_unembedding(model):
    """The lm_head (output embedding)."""
    base = unwrap_model(model)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if head is None:
        head = getattr(base, "lm_head", None)
    if head is None:
        raise OrglabError(f"orglab cannot find the unembedding (lm_head) of {type(base).__name__}.")
    return head


# ----------------------------------------------------------------------------------------------------------------
# Small utilities


def _has_tokenizer_files(folder: Path) -> bool:
    return any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OrglabError(f"{path} cannot be read as JSON ({_first_line(exc)}); re-save the adapter.") from None
    if not isinstance(data, dict):
        raise OrglabError(f"{path} is not a JSON object; re-save the adapter.")
    return data


def _as_torch_dtype(value):
    import torch

    if value is None or isinstance(value, torch.dtype):
        return value
    return getattr(torch, str(value).replace("torch.", ""), None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".")
