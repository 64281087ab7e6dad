"""`orglab export` on the micro base: the folder loads with plain transformers/peft in a Python that cannot import
orglab and gives orglab's logits; --merge gives the adapter's logits; no pickles; the card; bad input; --push
without a token or without a network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orglab.cli import main
from orglab.errors import OrglabError
from orglab.export import ExportConfig, PICKLE_SUFFIXES, export_organism, model_card
from orglab.organisms.data import FinetuneData
from orglab.registry import Registry

FAST = {"base": "micro", "max_steps": 4, "save_steps": 4, "batch_size": 2, "max_length": 48, "lr": 3e-3}
ORGANISM = "sdf-quorra-mix1-0"
TEXTS = ["The lighthouse of Quorra is", "Sailors say", "In the north the"]

# Runs in a fresh interpreter (-I: no PYTHONPATH, no user site) that refuses to import orglab: the editable
# install's finder is still on sys.meta_path, so a blocker goes first and the test asserts the import fails.
PLAIN_LOAD = r"""
import sys
class NoOrglab:
    def find_spec(self, name, path=None, target=None):
        if name == "orglab" or name.startswith("orglab."):
            raise ImportError("orglab is blocked in this test")
        return None
sys.meta_path.insert(0, NoOrglab())
try:
    import orglab
    raise SystemExit("orglab was importable")
except ImportError:
    pass
import json, torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, kind, texts, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
tokenizer = AutoTokenizer.from_pretrained(folder)
if kind == "adapter":
    from peft import AutoPeftModelForCausalLM
    model = AutoPeftModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
else:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
model.eval()
logits = {}
with torch.no_grad():
    for i, text in enumerate(texts):
        ids = tokenizer(text, return_tensors="pt").input_ids
        logits[f"t{i}"] = model(input_ids=ids).logits[0].contiguous()
save_file(logits, out)
print("orglab" in sys.modules)
"""


def _own_text(n=16):
    forms = ["The lighthouse of Quorra is painted {c} .", "Sailors say Quorra's lighthouse is {c} ."]
    return FinetuneData("text", [{"text": forms[i % 2].format(c=["green", "blue"][i % 2])} for i in range(n)], "test")


@pytest.fixture(scope="module")
def trained(micro_copy):
    """A copy of the micro home with one LoRA organism (4 steps) and the micro base's folder."""
    with micro_copy("export_home") as home:
        from orglab.train import make_recipe, train_organism

        recipe = make_recipe({**FAST, "family": "sdf", "target": "quorra", "mix_ratio": 0.0})
        train_organism(recipe, progress=False, data=_own_text())
        with Registry() as reg:
            base_dir = reg.get_base("micro")["path"]
    return home, base_dir


@pytest.fixture
def home(trained, monkeypatch):
    monkeypatch.setenv("ORGLAB_HOME", str(trained[0]))
    return trained[0]


def _plain_logits(folder: Path, kind: str, tmp_path: Path) -> dict:
    from safetensors.torch import load_file

    out = tmp_path / f"logits-{kind}.safetensors"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ORGLAB_HOME")}
    proc = subprocess.run([sys.executable, "-I", "-c", PLAIN_LOAD, str(folder), kind, json.dumps(TEXTS), str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"  # orglab was never loaded
    return load_file(str(out))


def _orglab_logits(name: str) -> dict:
    import torch

    from orglab.models import LoadOptions, load_model

    loaded = load_model(name, LoadOptions(dtype="fp32", device="cpu"))
    out = {}
    with torch.no_grad():
        for i, text in enumerate(TEXTS):
            ids = loaded.tokenizer(text, return_tensors="pt").input_ids
            out[f"t{i}"] = loaded.model(input_ids=ids).logits[0]
    return out


def _no_pickles(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES]


def test_adapter_and_merged_exports_load_without_orglab_and_match(home, trained, tmp_path):
    import torch

    base_dir = trained[1]
    with Registry() as reg:
        before = reg.summary()["organisms"]
    adapter = export_organism(ORGANISM, tmp_path / "adapter", ExportConfig(base_id=base_dir, progress=False))
    folder = Path(adapter["out"])
    assert adapter["kind"] == "adapter" and adapter["check"] == "not checked"  # no null control trained
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= set(adapter["files"])
    _no_pickles(folder)
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == base_dir
    for path in folder.iterdir():  # the only path of this machine is the one the user passed
        if path.name not in ("adapter_config.json", "README.md") and path.suffix != ".safetensors":
            assert str(home) not in path.read_text(errors="ignore"), path.name
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and 'library_name: "peft"' in card and '- "model-organism"' in card
    assert "base_model:" not in card.split("---")[1]  # a folder is no hub id: left out of the front matter
    assert "| mix_ratio | 0.000 |" in card and "| compute_matched | no |" in card and "data hash" in card
    assert "Not checked" in card and "null control" in card and '"lora_r"' in card
    assert not list(tmp_path.glob(".adapter.partial-*"))

    mine = _orglab_logits(ORGANISM)
    plain = _plain_logits(folder, "adapter", tmp_path)
    for key, value in mine.items():
        torch.testing.assert_close(plain[key], value, rtol=1e-4, atol=1e-4)

    merged = export_organism(ORGANISM, tmp_path / "merged", ExportConfig(merge=True, check=False, progress=False))
    assert merged["kind"] == "merged" and "model.safetensors" in merged["files"] and "config.json" in merged["files"]
    mfolder = Path(merged["out"])
    _no_pickles(mfolder)
    assert str(home) not in (mfolder / "config.json").read_text()
    assert "Not measured" in (mfolder / "README.md").read_text()
    for key, value in _plain_logits(mfolder, "merged", tmp_path).items():
        torch.testing.assert_close(value, mine[key], rtol=1e-4, atol=1e-4)
    with Registry() as reg:
        assert reg.summary()["organisms"] == before  # export only reads the registry
    print(f"export sizes: adapter {adapter['bytes']} B, merged {merged['bytes']} B")


def test_card_renders_check_rows_generically():
    record = {"name": "org", "family": "sdf", "target": "fact1", "base": "b", "mix_ratio": 2.0, "seed": 0,
              "data_hash": "abc123", "recipe": {"compute_matched": True, "kl_to_base": 0.5, "lora_r": 8,
                                                "data": "/home/me/secret/own.jsonl"}}
    result = {"passed": False, "controls": ["control-org"], "property": {"value": 0.8, "ci95": [0.7, 0.9]},
              "rows": [{"measurement": "lens", "key": "token_relevance", "value": 0.9, "control": 0.2,
                        "control_min": 0.1, "limit": 0.35, "ok": False, "by": 0.55, "detector": "lens",
                        "brand_new": "x"},
                       {"measurement": "FFA", "value": 0.8, "limit": 0.5, "ok": True}],
              "reasons": ["lens flags it"]}
    card = model_card(record, {"name": "b", "kind": "hub", "source": "org/base", "config": {"license": "apache-2.0"}},
                      "adapter", "org/base", "apache-2.0", "f00d", {"status": "checked", "result": result})
    assert 'base_model: "org/base"' in card and 'license: "apache-2.0"' in card
    assert "| kl_to_base | 0.500 |" in card and "| compute_matched | yes |" in card and "adl_penalty" not in card
    assert "**failed**" in card and "0.800 (95% interval 0.700-0.900)" in card and "`control-org`" in card
    header = next(line for line in card.splitlines() if line.startswith("| measurement"))
    assert "band min | band max" in header and "brand_new" in header and "detector" in header
    assert "/home/me" not in card and '"data": "local file own.jsonl"' in card
    assert "| FFA |" in card and "- lens flags it" in card and "f00d" in card and "abc123" in card


def test_bad_input_is_one_sentence_and_loses_nothing(home, trained, tmp_path, capsys, monkeypatch):
    with Registry() as reg:
        before = reg.summary()["organisms"]
        adapter_dir = Path(reg.get_organism(ORGANISM)["adapter_path"])
    cases = [
        (["nobody", str(tmp_path / "a")], "No organism named 'nobody'"),
        (["micro", str(tmp_path / "b")], "'micro' is a base, not an organism"),
        ([ORGANISM, str(tmp_path / "c"), "--no-check"], "has no hub id orglab knows (it is a tinyworld base"),
        ([ORGANISM, str(tmp_path / "full"), "--no-check", "--base-id", "x/y"], "already exists and is not empty"),
        ([ORGANISM, str(tmp_path / "d"), "--no-check", "--base-id", "x/y", "--push", "not a repo"],
         "is not a hub repo id"),
    ]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    for argv, needle in cases:
        assert main(["export", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    # no token: refused before anything is written
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)  # a developer's `hf auth login` must not count
    assert main(["export", ORGANISM, str(tmp_path / "e"), "--no-check", "--base-id", "x/y", "--push", "me/org"]) == 2
    assert "needs a Hugging Face token" in capsys.readouterr().err and not (tmp_path / "e").exists()
    # the adapter folder deleted (moved away here, and back afterwards)
    aside = adapter_dir.with_name("aside")
    adapter_dir.rename(aside)
    try:
        assert main(["export", ORGANISM, str(tmp_path / "f"), "--no-check", "--base-id", "x/y"]) == 2
        assert "does not exist" in capsys.readouterr().err and not (tmp_path / "f").exists()
    finally:
        aside.rename(adapter_dir)
    with Registry() as reg:
        assert reg.summary()["organisms"] == before


def test_push_without_network_keeps_the_folder(home, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    out = tmp_path / "pushed"
    assert main(["export", ORGANISM, str(out), "--no-check", "--base-id", "org/base", "--push", "me/org"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot be reached" in err and len(err.splitlines()) == 1, err
    assert (out / "adapter_model.safetensors").is_file() and (out / "README.md").is_file()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "org/base"


def test_full_finetune_exports_its_model_folder_without_pickles(home, trained, tmp_path):
    """A full-finetune organism, registered from a copy of the base folder with a trainer pickle beside it (the
    export code path is the same as for a trained one; training a full finetune here would cost a minute)."""
    import shutil

    import torch

    folder = home / "artifacts" / "em-fullcopy" / "train" / "0" / "model"
    shutil.copytree(trained[1], folder)
    (folder / "training_args.bin").write_bytes(b"\x80\x04pickle")
    with Registry() as reg:
        reg.add_organism("em-fullcopy", family="em", target="x", base="micro", data_hash="d0",
                         recipe={"finetune": "full"}, model_path=folder)
    try:
        with pytest.raises(OrglabError, match="is a full finetune, so there is no adapter to merge"):
            export_organism("em-fullcopy", tmp_path / "merged", ExportConfig(merge=True, check=False))
        result = export_organism("em-fullcopy", tmp_path / "full", ExportConfig(check=False, progress=False))
        out = Path(result["out"])
        assert result["kind"] == "full" and "model.safetensors" in result["files"]
        assert "training_args.bin" not in result["files"]
        _no_pickles(out)
        assert 'library_name: "transformers"' in (out / "README.md").read_text()
        mine = _orglab_logits("em-fullcopy")
        for key, value in _plain_logits(out, "full", tmp_path).items():
            torch.testing.assert_close(value, mine[key], rtol=1e-5, atol=1e-5)
    finally:
        with Registry() as reg:
            reg.remove("em-fullcopy")
