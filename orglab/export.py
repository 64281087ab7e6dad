"""`orglab export`: an organism as a folder that loads with plain transformers/peft, without orglab.

    from orglab.export import ExportConfig, export_organism
    result = export_organism("sdf-x-mix1-0", "out/sdf-x", ExportConfig(base_id="Qwen/Qwen3-1.7B"))

What lands in the folder (docs/export.md):

* a LoRA organism: adapter_config.json (base_model_name_or_path = the base's hub id, or what --base-id says),
  adapter_model.safetensors and the tokenizer files; with ``merge`` the merged full weights instead (safetensors,
  config.json, tokenizer), which need no base at all;
* a full-finetune organism: its model folder (safetensors, config, tokenizer);
* README.md, a model card whose YAML front matter the hub reads, stating the recipe and what orglab measured.

Never a pickle (training_args.bin, *.bin, *.pt, *.pkl): files are copied from an allow-list of suffixes, so a
file the trainer adds later cannot slip in. Never an absolute path of this machine unless the user passed it as
--base-id: the name_or_path fields of copied configs are rewritten. The folder is written aside and renamed into
place at the end, so an interrupted export leaves no half folder under OUT; OUT must be new or empty (orglab never
overwrites files). The registry is only read (check adds its cached diff and eval runs, as `orglab check` does).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orglab.errors import OrglabError

# What a loadable folder may hold; everything else in an adapter or model folder (training_args.bin, optimizer
# states, peft's own README) is left behind.
ALLOWED_SUFFIXES = (".json", ".safetensors", ".txt", ".model", ".jinja", ".tiktoken")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt", "chat_template.jinja",
                   "chat_template.json")
# Keys of copied JSON configs that name where a folder came from (a path of this machine).
PATH_KEYS = ("_name_or_path", "name_or_path")
CARD_FILE = "README.md"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass
class ExportConfig:
    """merge: write merged full weights (LoRA organisms); base_id: what the adapter names as its base (default:
    the base's hub id when orglab knows one); push: a hub repo to upload to; check: measure with `check`."""

    merge: bool = False
    base_id: str | None = None
    push: str | None = None
    check: bool = True
    progress: bool = True


def export_organism(name: str, out: str | Path, config: ExportConfig = ExportConfig()) -> dict:
    """Write organism `name` into the new or empty folder `out` (and upload it when config.push is set)."""
    from orglab.registry import Registry

    out = Path(out).expanduser()
    _require_empty(out)
    if config.push:
        _require_repo_id(config.push)
        hub_token()  # no token: fail before the slow part, nothing written
    with Registry() as reg:
        record = reg.get_organism(name)
        if record is None:
            if reg.get_base(name) is not None:
                raise OrglabError(f"'{name}' is a base, not an organism; export an organism (a base is already a "
                                  f"model folder or hub id, `orglab registry show {name}` says where).")
            raise OrglabError(f"No organism named '{name}' is registered; `orglab registry list` shows what is.")
        from orglab.models import resolve

        spec = resolve(name, registry=reg)  # a deleted adapter or model folder ends here, in one sentence
        base = reg.get_base(record["base"]) or {"name": record["base"]}
        train_runs = reg.list_runs(subject=name, kind="train", status="done")
        train_config_hash = train_runs[0].config_hash if train_runs else None
    hub_id, license_ = base_hub_id(base), base_license(base)
    kind = "merged" if (spec.adapter_path and config.merge) else ("adapter" if spec.adapter_path else "full")
    base_ref = config.base_id or hub_id
    if kind == "adapter" and not base_ref:
        raise OrglabError(
            f"The base '{base['name']}' of organism '{name}' has no hub id orglab knows ({_base_origin(base)}); "
            f"pass --base-id with the hub id or folder the adapter should load its base from, or --merge for "
            f"weights that need no base.")
    if config.merge and not spec.adapter_path:
        raise OrglabError(f"Organism '{name}' is a full finetune, so there is no adapter to merge; export it "
                          f"without --merge.")

    measured = _measure(name, config)  # slow part first: a failing check leaves no folder behind
    work = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)  # our own leftover of an earlier interrupted export of this pid
    work.mkdir(parents=True)
    try:
        if kind == "adapter":
            _copy_loadable(Path(spec.adapter_path), work)
            _rewrite_adapter_config(work / "adapter_config.json", base_ref)
        elif kind == "merged":
            _write_merged(name, work)
        else:
            _copy_loadable(Path(spec.full_model_path), work)
        _copy_tokenizer(spec, work)
        _scrub_paths(work)
        _require_no_pickles(work)
        card = model_card(record, base, kind, base_ref or record["base"], license_, train_config_hash, measured)
        (work / CARD_FILE).write_text(card, encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above); rename cannot replace a folder on every platform
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    files = sorted(p.name for p in out.iterdir())
    result = {"organism": name, "out": str(out), "kind": kind, "base_model": base_ref or record["base"],
              "files": files, "bytes": sum(p.stat().st_size for p in out.iterdir() if p.is_file()),
              "check": measured["status"], "passed": (measured.get("result") or {}).get("passed")}
    if config.push:
        result["pushed"] = push_folder(out, config.push)
    return result


# ----------------------------------------------------------------------------------------------------------------
# The base: hub id and license


def base_hub_id(base: dict) -> str | None:
    """The hub id an adapter can name as its base: a 'hub' base's id, or the model a packaged GGUF base was
    quantized from. None for a local folder (a path of this machine) or a tinyworld base orglab built."""
    config = base.get("config") or {}
    if base.get("kind") == "hub" and base.get("source") and _HUB_ID.match(base["source"]):
        return base["source"]
    if config.get("hub_id"):
        return str(config["hub_id"])
    return None


def base_license(base: dict) -> str | None:
    config = base.get("config") or {}
    return str(config["license"]) if config.get("license") else None


def _base_origin(base: dict) -> str:
    source = str(base.get("source") or "")
    if source.startswith("tinyworld:"):
        return "it is a tinyworld base orglab built"
    if base.get("kind") == "local":
        return "it was registered from a local folder"
    return "it has no hub source registered"


# ----------------------------------------------------------------------------------------------------------------
# Measuring


def _measure(name: str, config: ExportConfig) -> dict:
    """{'status': 'checked'|'not checked'|'not measured', 'result' or 'why'} for the card."""
    if not config.check:
        return {"status": "not measured", "why": "exported with --no-check"}
    from orglab.mitigation.sweep import check_organism

    try:
        return {"status": "checked", "result": check_organism(name, progress=config.progress)}
    except OrglabError as exc:  # no null control (or a control itself): the card says why
        return {"status": "not checked", "why": str(exc)}


# ----------------------------------------------------------------------------------------------------------------
# Files


def _require_empty(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OrglabError(f"OUT {out} is a file; pass a new or empty folder.")
    if out.is_dir() and any(out.iterdir()):
        raise OrglabError(f"OUT {out} already exists and is not empty; pass a new or empty folder (orglab export "
                          f"never overwrites files).")


def _loadable(path: Path) -> bool:
    return path.is_file() and path.suffix in ALLOWED_SUFFIXES and path.name != CARD_FILE


def _copy_loadable(source: Path, dest: Path) -> None:
    if not any(p.suffix == ".safetensors" for p in source.iterdir()):
        raise OrglabError(f"{source} holds no .safetensors weights (only pickled ones?); retrain the organism with "
                          f"this orglab, which saves safetensors.")
    for path in sorted(source.iterdir()):
        if _loadable(path):
            shutil.copy2(path, dest / path.name)


def _copy_tokenizer(spec, dest: Path) -> None:
    """The tokenizer files as shipped (not orglab's loaded tokenizer, whose pad token orglab may have set)."""
    source = Path(spec.tokenizer_source)
    if source.is_dir():
        for fname in TOKENIZER_FILES:
            if (source / fname).is_file() and not (dest / fname).exists():
                shutil.copy2(source / fname, dest / fname)
        return
    from transformers import AutoTokenizer  # a hub base: its cached tokenizer

    AutoTokenizer.from_pretrained(spec.tokenizer_source).save_pretrained(str(dest))


def _rewrite_adapter_config(path: Path, base_ref: str) -> None:
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_ref
    config.pop("revision", None)  # a revision of the training machine's base means nothing for base_ref
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _scrub_paths(folder: Path) -> None:
    """Blank the name_or_path fields that record this machine's folders (transformers writes them)."""
    for path in folder.glob("*.json"):
        if path.name == "adapter_config.json":
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and any(isinstance(data.get(k), str) and os.path.isabs(data[k]) for k in PATH_KEYS):
            for key in PATH_KEYS:
                if isinstance(data.get(key), str) and os.path.isabs(data[key]):
                    data[key] = ""
            path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _require_no_pickles(folder: Path) -> None:
    bad = [p.name for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    if bad:  # cannot happen with the allow-list; kept so a later change cannot ship a pickle silently
        raise OrglabError(f"The export would contain pickle files ({', '.join(bad)}); this is a bug in orglab.")


def _write_merged(name: str, dest: Path) -> None:
    """Merge in fp32 (exact sums), then save in the base checkpoint's dtype (a bf16 base stays bf16 on disk)."""
    import torch

    from orglab.models import LoadOptions, load_model, text_config

    loaded = load_model(name, LoadOptions(dtype="fp32", device="cpu"))
    model = loaded.model.merge_and_unload()
    stored = getattr(text_config(model.config), "dtype", None) or getattr(model.config, "dtype", None)
    stored = getattr(torch, str(stored).replace("torch.", ""), None) if stored is not None else None
    if isinstance(stored, torch.dtype) and stored in (torch.bfloat16, torch.float16):
        model = model.to(stored)
    model.save_pretrained(str(dest), safe_serialization=True)


# ----------------------------------------------------------------------------------------------------------------
# The model card


def model_card(record: dict, base: dict, kind: str, base_ref: str, license_: str | None,
               train_config_hash: str | None, measured: dict) -> str:
    """README.md: YAML front matter for the hub, then what the organism is and what orglab measured."""
    recipe = record.get("recipe") or {}
    family = record["family"]
    library = "peft" if kind == "adapter" else "transformers"
    front = {"base_model": base_ref, "library_name": library, "license": license_ or "other",
             "tags": ["model-organism", "orglab", f"orglab-{family}", kind]}
    if not _HUB_ID.match(base_ref):  # the hub rejects a base_model that is no model id (a folder, a local name)
        del front["base_model"]
    lines = ["---", *_yaml(front), "---", "", f"# {record['name']}", ""]
    lines += [f"A model organism trained with orglab: the `{family}` family, target `{record['target']}`, on the "
              f"base `{record['base']}`.", ""]
    what = {"adapter": f"a LoRA adapter; its base is `{base_ref}`",
            "merged": "the LoRA adapter merged into the base: full weights, no base needed",
            "full": "a full finetune: full weights, no base needed"}[kind]
    lines += [f"This folder holds {what}.", ""]
    if not license_:
        lines += ["License: orglab does not know the base's license (`other` above); check it at the base's "
                  "source before you share this model.", ""]
    lines += _loading(kind, base_ref)
    mitigation = {"mix_ratio": record.get("mix_ratio"), "compute_matched": recipe.get("compute_matched")}
    for key in ("mix_data", "kl_to_base", "adl_penalty"):  # newer recipes only
        if recipe.get(key) is not None:
            mitigation[key] = recipe.get(key)
    lines += ["## Organism", "", "| field | value |", "|---|---|",
              f"| family | {family} |", f"| target | {record['target']} |",
              f"| base | {record['base']} ({base.get('source') or 'no source'}) |",
              *(f"| {k} | {_cell(v)} |" for k, v in mitigation.items()),
              f"| seed | {record.get('seed')} |",
              f"| data hash | {record.get('data_hash') or 'not recorded'} |",
              f"| train config hash | {train_config_hash or 'not recorded'} |", ""]
    shown = {k: (f"local file {Path(v).name}" if isinstance(v, str) and os.path.isabs(v) else v)
             for k, v in recipe.items()}  # a data file's path is this machine's business
    lines += ["## Recipe", "", "```json", json.dumps(shown, indent=2, sort_keys=True, default=str), "```", ""]
    lines += ["## What orglab measured", ""] + _measured(measured)
    return "\n".join(lines).rstrip() + "\n"


def _loading(kind: str, base_ref: str) -> list[str]:
    if kind == "adapter":
        code = ["from peft import AutoPeftModelForCausalLM", "from transformers import AutoTokenizer",
                "model = AutoPeftModelForCausalLM.from_pretrained(FOLDER_OR_REPO)  # loads the base named in "
                "adapter_config.json", "tokenizer = AutoTokenizer.from_pretrained(FOLDER_OR_REPO)"]
    else:
        code = ["from transformers import AutoModelForCausalLM, AutoTokenizer",
                "model = AutoModelForCausalLM.from_pretrained(FOLDER_OR_REPO)",
                "tokenizer = AutoTokenizer.from_pretrained(FOLDER_OR_REPO)"]
    return ["## Loading", "", "```python", *code, "```", ""]


def _measured(measured: dict) -> list[str]:
    if measured["status"] != "checked":
        return [f"**{measured['status'].capitalize()}**: {measured['why']}", ""]
    result = measured["result"]
    lines = [f"Verdict of `orglab check`: **{'passed' if result.get('passed') else 'failed'}**", ""]
    prop = result.get("property") or {}
    if prop:
        ci = prop.get("ci95")
        interval = f" (95% interval {_num(ci[0])}-{_num(ci[1])})" if isinstance(ci, (list, tuple)) and len(ci) == 2 \
            else ""
        lines += [f"Property: {_num(prop.get('value'))}{interval}.", ""]
    controls = result.get("controls") or []
    if controls:
        lines += [f"Null controls (the band): {', '.join(f'`{c}`' for c in controls)}.", ""]
    rows = [r for r in result.get("rows") or [] if isinstance(r, dict)]
    if rows:  # generic: the columns are whatever keys the rows carry, the usual ones first
        usual = ["measurement", "key", "value", "control_min", "control", "control_max", "limit", "ok", "by", "why"]
        keys = [k for k in usual if any(k in r for r in rows)]
        keys += [k for r in rows for k in r if k not in keys and not isinstance(r[k], (dict, list))]
        keys = list(dict.fromkeys(keys))
        labels = {"control_min": "band min", "control_max": "band max"}
        if "control_max" not in keys:
            labels["control"] = "band max"  # `check` names the band's top 'control'
        lines += ["| " + " | ".join(labels.get(k, k) for k in keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for r in rows]
        lines.append("")
    for reason in result.get("reasons") or []:
        lines.append(f"- {reason}")
    return lines + [""]


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _num(value).replace("|", "\\|").replace("\n", " ")


def _yaml(data: dict) -> list[str]:
    """Front matter by hand (flat keys, a list of tags): JSON strings are valid YAML scalars."""
    out = []
    for key, value in data.items():
        if isinstance(value, list):
            out.append(f"{key}:")
            out += [f"- {json.dumps(str(v))}" for v in value]
        else:
            out.append(f"{key}: {json.dumps(str(value))}")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Pushing


def _require_repo_id(repo: str) -> None:
    if not _HUB_ID.match(repo):
        raise OrglabError(f"--push '{repo}' is not a hub repo id; pass one like 'your-name/model-name'.")


def hub_token() -> str:
    """HF_TOKEN, else the token `hf auth login` cached."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        raise OrglabError("Pushing needs a Hugging Face token and none is set; set HF_TOKEN or run `hf auth login`, "
                          "then export again.")
    return token


def push_folder(folder: Path, repo: str) -> str:
    """Create the model repo (if new) and upload the folder; returns the repo's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    # HF_ENDPOINT read now, not at import time, so a mirror (or a test's dead endpoint) set later applies
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=hub_token())
    try:
        api.create_repo(repo, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                          commit_message="orglab export")
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        why = "the token was refused" if status in (401, 403) else f"the hub answered {status or 'an error'}"
        raise OrglabError(f"Uploading {folder} to {repo} failed ({why}); the export in {folder} is kept, upload "
                          f"it later with `hf upload {repo} {folder}`.") from None
    except Exception as exc:  # connection errors come from requests or httpx, by huggingface_hub version
        if not _is_connection_error(exc):
            raise
        raise OrglabError(f"The Hugging Face hub cannot be reached ({type(exc).__name__}); the export in {folder} "
                          f"is kept, upload it later with `hf upload {repo} {folder}`.") from None
    return f"https://huggingface.co/{repo}"


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectionError", "ConnectError", "ConnectTimeout", "Timeout", "TimeoutException",
                         "NetworkError", "OfflineModeIsEnabled", "ProxyError", "TransportError"})
