"""orglab.models: resolving names, loading bases/organisms (LoRA, full, 4-bit), architecture helpers, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orglab.errors import OrglabError
from orglab.models import (
    LoadedModel,
    LoadOptions,
    ModelSpec,
    get_decoder_layers,
    get_final_norm,
    get_unembedding,
    hidden_size,
    load_model,
    load_tokenizer,
    n_layers,
    resolve,
)
try:
    from tests.tiny_models import ARCHS, build_tiny_model, make_tokenizer, sample_ids, vocab_size
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    from tiny_models import ARCHS, build_tiny_model, make_tokenizer, sample_ids, vocab_size

CPU32 = LoadOptions(dtype="fp32", device="cpu")


class FakeRegistry:
    """Stands in for orglab.registry.Registry's lookup interface (get_base / get_organism)."""

    def __init__(self, bases=None, organisms=None):
        self.bases = {b["name"]: b for b in (bases or [])}
        self.organisms = {o["name"]: o for o in (organisms or [])}

    def get_base(self, name):
        return self.bases.get(name)

    def get_organism(self, name):
        return self.organisms.get(name)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # An empty ORGLAB_HOME: no registry file, so loading by path must work without one.
    monkeypatch.setenv("ORGLAB_HOME", str(tmp_path / "orglab_home"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """arch -> (folder, reference logits of the in-memory model on sample_ids())."""
    root = tmp_path_factory.mktemp("tiny")
    ids = sample_ids()
    out = {}
    for arch in ARCHS:
        folder = root / arch
        model = build_tiny_model(arch, folder)
        with torch.no_grad():
            out[arch] = (folder, model(ids).logits)
    return out


@pytest.fixture(scope="module")
def lora_llama(tiny, tmp_path_factory):
    """A LoRA adapter on the tiny llama with non-zero B, saved to a folder; returns (adapter_dir, logits on)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir, _ = tiny["llama"]
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config).eval()
    with torch.no_grad():
        logits = peft_model(sample_ids()).logits
    adapter_dir = tmp_path_factory.mktemp("adapter") / "lora"
    peft_model.save_pretrained(adapter_dir)
    return adapter_dir, logits


# ---------------------------------------------------------------------------------------------------------------
# Plain loading and helpers


@pytest.mark.parametrize("arch", ARCHS)
def test_load_by_path_fp32_and_helpers(tiny, arch):
    folder, ref_logits = tiny[arch]
    loaded = load_model(str(folder), CPU32)
    assert isinstance(loaded, LoadedModel)
    assert loaded.spec == ModelSpec(kind="path", name=str(folder), base_source=str(folder.resolve()))
    assert not loaded.is_adapter
    assert loaded.options == LoadOptions(dtype="fp32", device="cpu")
    model = loaded.model
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert next(model.parameters()).device.type == "cpu"
    ids = sample_ids(loaded.tokenizer)
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], vocab_size())
    torch.testing.assert_close(logits, ref_logits)  # the saved weights, not a fresh random init

    assert n_layers(model) == 2
    assert hidden_size(model) == 32
    layers = get_decoder_layers(model)
    assert isinstance(layers, torch.nn.ModuleList) and len(layers) == 2
    assert layers is model.model.layers
    assert get_final_norm(model) is model.model.norm
    assert get_unembedding(model) is model.lm_head

    tok = loaded.tokenizer
    assert tok.pad_token == "<pad>"
    text = tok.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True)
    assert text == "<bos><|user|> hello <eos> <|assistant|> "


def test_bf16_is_honored(tiny):
    folder, ref_logits = tiny["qwen3"]
    loaded = load_model(str(folder), LoadOptions(dtype="bf16", device="cpu"))
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        logits = loaded.model(sample_ids()).logits
    assert torch.isfinite(logits.float()).all()
    assert (logits.float() - ref_logits).abs().max() < 0.1


def test_auto_options_on_cpu(tiny):
    folder, _ = tiny["llama"]
    opts = LoadOptions()
    assert (opts.dtype, opts.device, opts.load_in_4bit, opts.trust_remote_code) == ("auto", "auto", False, False)
    if not torch.cuda.is_available():
        loaded = load_model(str(folder))
        assert (loaded.options.dtype, loaded.options.device) == ("fp32", "cpu")
        assert next(loaded.model.parameters()).dtype == torch.float32
        assert next(loaded.model.parameters()).device.type == "cpu"


def test_tokenizer_pad_falls_back_to_eos(tmp_path):
    tok = make_tokenizer()
    tok.pad_token = None
    tok.save_pretrained(tmp_path / "m")
    build_tiny_model("llama", tmp_path / "src")
    # a model folder whose tokenizer has no pad token
    for f in ("config.json", "model.safetensors"):
        (tmp_path / "m" / f).write_bytes((tmp_path / "src" / f).read_bytes())
    loaded_tok = load_tokenizer(str(tmp_path / "m"))
    assert loaded_tok.pad_token == "<eos>"
    assert loaded_tok.pad_token_id == loaded_tok.eos_token_id == 3


def test_gemma3_multimodal_config_nests_text_config():
    import transformers as tf

    text = dict(vocab_size=300, hidden_size=48, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, head_dim=12, sliding_window=16)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)
    model = tf.Gemma3ForConditionalGeneration(tf.Gemma3Config(text_config=text, vision_config=vision,
                                                               mm_tokens_per_image=4))
    assert n_layers(model) == 3 and hidden_size(model) == 48
    assert n_layers(model.config) == 3
    layers = get_decoder_layers(model)
    assert len(layers) == 3 and layers is model.model.language_model.layers
    assert get_final_norm(model) is model.model.language_model.norm
    assert get_unembedding(model) is model.lm_head


# ---------------------------------------------------------------------------------------------------------------
# Organisms: LoRA adapters and full finetunes


def _check_adapter_model(loaded, base_logits, adapter_logits):
    assert loaded.is_adapter
    from peft import PeftModel

    assert isinstance(loaded.model, PeftModel)
    assert not loaded.model.training
    ids = sample_ids()
    with torch.no_grad():
        on = loaded.model(ids).logits
        with loaded.model.disable_adapter():
            off = loaded.model(ids).logits
        again = loaded.model(ids).logits
    assert (on - base_logits).abs().max() > 1e-3  # the adapter changes the outputs
    torch.testing.assert_close(on, adapter_logits)
    torch.testing.assert_close(off, base_logits)  # same weights, adapter off == the base
    torch.testing.assert_close(again, on)  # switched back on after the context
    # helpers see through the PeftModel
    assert len(get_decoder_layers(loaded.model)) == 2 and n_layers(loaded.model) == 2
    assert get_unembedding(loaded.model) is loaded.model.get_base_model().lm_head


def test_lora_organism_from_registry(tiny, lora_llama):
    base_dir, base_logits = tiny["llama"]
    adapter_dir, adapter_logits = lora_llama
    reg = FakeRegistry(
        bases=[{"name": "tinyllama", "kind": "local", "source": str(base_dir), "path": str(base_dir)}],
        organisms=[{"name": "org1", "family": "sdf", "base": "tinyllama", "adapter_path": str(adapter_dir),
                    "model_path": None}],
    )
    spec = resolve("org1", registry=reg)
    assert spec.kind == "organism" and spec.base_name == "tinyllama"
    assert spec.base_source == str(base_dir.resolve()) and spec.adapter_path == str(adapter_dir.resolve())
    loaded = load_model("org1", CPU32, registry=reg)
    _check_adapter_model(loaded, base_logits, adapter_logits)

    # a registered base name resolves to the base
    base = load_model("tinyllama", CPU32, registry=reg)
    assert base.spec.kind == "base" and not base.is_adapter
    with torch.no_grad():
        torch.testing.assert_close(base.model(sample_ids()).logits, base_logits)


def test_lora_organism_from_adapter_dir(tiny, lora_llama):
    _, base_logits = tiny["llama"]
    adapter_dir, adapter_logits = lora_llama
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    loaded = load_model(str(adapter_dir), CPU32)
    assert loaded.spec.kind == "path" and loaded.spec.adapter_path == str(adapter_dir.resolve())
    _check_adapter_model(loaded, base_logits, adapter_logits)


def test_trainable_adapter(lora_llama):
    adapter_dir, _ = lora_llama
    loaded = load_model(str(adapter_dir), CPU32, trainable_adapter=True)
    trainable = [n for n, p in loaded.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert loaded.model.training
    frozen = load_model(str(adapter_dir), CPU32)
    assert not any(p.requires_grad for n, p in frozen.model.named_parameters() if "lora_" in n)


def test_full_finetuned_organism(tiny, tmp_path):
    base_dir, base_logits = tiny["gemma3"]
    from transformers import AutoModelForCausalLM

    ft = AutoModelForCausalLM.from_pretrained(base_dir)
    with torch.no_grad():
        ft.lm_head.weight.mul_(1.5)
        ft_logits = ft(sample_ids()).logits
    ft_dir = tmp_path / "ft"
    ft.save_pretrained(ft_dir)
    make_tokenizer().save_pretrained(ft_dir)
    reg = FakeRegistry(
        bases=[{"name": "g3", "kind": "local", "source": str(base_dir), "path": str(base_dir)}],
        organisms=[{"name": "full1", "family": "em", "base": "g3", "adapter_path": None, "model_path": str(ft_dir)}],
    )
    loaded = load_model("full1", CPU32, registry=reg)
    assert loaded.spec.full_model_path == str(ft_dir.resolve()) and not loaded.is_adapter
    with torch.no_grad():
        logits = loaded.model(sample_ids()).logits
    torch.testing.assert_close(logits, ft_logits)
    assert (logits - base_logits).abs().max() > 1e-3


def test_organism_without_weights_is_one_sentence(tiny):
    base_dir, _ = tiny["llama"]
    reg = FakeRegistry(organisms=[{"name": "half", "family": "sdf", "base": str(base_dir), "adapter_path": None,
                                   "model_path": None}])
    with pytest.raises(OrglabError, match="neither a LoRA adapter nor a model folder") as err:
        load_model("half", CPU32, registry=reg)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------------------
# 4-bit (bitsandbytes CPU backend) and QLoRA


QLORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _qlora_step(folder, evaluate_first: bool):
    """Load 4-bit, optionally run an eval forward, add LoRA, one AdamW step; returns (loss, grads, before, after)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model = load_model(str(folder), LoadOptions(dtype="fp32", device="cpu", load_in_4bit=True)).model
    ids = sample_ids()
    if evaluate_first:
        with torch.no_grad():
            model(ids)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    torch.manual_seed(3)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=QLORA_TARGETS,
                                                  task_type="CAUSAL_LM", init_lora_weights=False))
    peft_model.train()
    params = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = torch.optim.AdamW(params.values(), lr=1e-2)
    loss = peft_model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in params.items()}
    opt.step()
    return loss.detach(), grads, before, {n: p.detach() for n, p in params.items()}


@pytest.mark.parametrize("hidden", [32, 64])  # 64: shapes where bnb's packed AVX512 CPU kernel would kick in
def test_4bit_llama_on_cpu_and_one_qlora_step(tmp_path, hidden):
    import bitsandbytes as bnb

    folder = tmp_path / "llama"
    with torch.no_grad():
        ref_logits = build_tiny_model("llama", folder, hidden=hidden)(sample_ids()).logits
    loaded = load_model(str(folder), LoadOptions(dtype="fp32", device="cpu", load_in_4bit=True))
    model = loaded.model
    q_proj = get_decoder_layers(model)[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit)
    assert q_proj.weight.quant_state.quant_type == "nf4"
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == 2 * 7
    with torch.no_grad():  # eval, no-grad forward (where bnb may repack weights for its CPU kernel)
        logits = model(sample_ids()).logits
    assert torch.isfinite(logits).all()
    assert (logits - ref_logits).abs().max() < 0.5  # quantized, but the same model

    # one QLoRA step after an evaluation forward: every LoRA weight gets the same gradient as without it, and moves
    loss, grads, before, after = _qlora_step(folder, evaluate_first=True)
    ref_loss, ref_grads, _, _ = _qlora_step(folder, evaluate_first=False)
    assert len(grads) == 2 * 2 * len(QLORA_TARGETS) and all("lora_" in n for n in grads)
    assert torch.isfinite(loss) and 3.0 < loss.item() < 8.0  # ~ln(vocab) for a random model
    torch.testing.assert_close(loss, ref_loss)
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-3, atol=1e-6)
        assert not torch.equal(after[name], before[name]), name


# ---------------------------------------------------------------------------------------------------------------
# Remote code, bad input, offline hub


def test_remote_code_is_not_executed_by_default(tiny, tmp_path):
    src, _ = tiny["llama"]
    folder = tmp_path / "remote"
    folder.mkdir()
    for f in src.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    marker = tmp_path / "EXECUTED"
    (folder / "evil_config.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\n"
        "from transformers import LlamaConfig\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil_config.EvilConfig"}
    config["model_type"] = "evil"
    (folder / "config.json").write_text(json.dumps(config))

    assert LoadOptions().trust_remote_code is False
    with pytest.raises(OrglabError, match="trust_remote_code") as err:
        load_model(str(folder), CPU32)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_unknown_hub_id_offline_is_one_quick_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-orglab-test-hf-home")
    import socket

    attempts = []

    def count_connection(*args, **kwargs):
        attempts.append(args)
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", count_connection)
    assert resolve("orglab-test-org/no-such-model").kind == "hub"
    with pytest.raises(OrglabError) as err:
        load_model("orglab-test-org/no-such-model", CPU32)
    assert attempts == []  # offline means no connection is even tried (so no retries to wait for)
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith(".")
    assert "'orglab-test-org/no-such-model'" in msg and "cache" in msg


def test_unknown_hub_id_without_network_and_without_offline_flag(monkeypatch):
    """No HF_HUB_OFFLINE, hub unreachable (socket connections fail): one sentence, no multi-second retries."""
    import socket

    import orglab.models as models

    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("network is unreachable")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-orglab-test-hf-home")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(models, "_hub_reachable_cache", {})
    with pytest.raises(OrglabError, match="not in the local Hugging Face cache") as err:
        load_model("orglab-test-org/no-such-model-2", CPU32)
    assert len(attempts) <= 1  # at most one probe of the hub, then the answer: no retries
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("path", ["./no/such/folder", "/definitely/not/here", "~/orglab-no-such-dir/"])
def test_missing_local_path(path):
    with pytest.raises(OrglabError, match="does not exist") as err:
        load_model(path, CPU32)
    assert "\n" not in str(err.value)


def test_unknown_name_and_bad_folders(tmp_path):
    with pytest.raises(OrglabError, match="orglab registry list") as err:
        resolve("nonsense-name")
    assert "\n" not in str(err.value) and "'nonsense-name'" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OrglabError, match="neither config.json nor adapter_config.json"):
        resolve(str(tmp_path / "empty"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OrglabError, match="is a file"):
        resolve(str(tmp_path / "file.txt"))
    # an adapter whose base folder is gone
    (tmp_path / "orphan").mkdir()
    (tmp_path / "orphan" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone/base"}))
    with pytest.raises(OrglabError, match="/gone/base"):
        resolve(str(tmp_path / "orphan"))


def test_registry_order_organism_before_base(tiny, lora_llama):
    base_dir, _ = tiny["llama"]
    adapter_dir, _ = lora_llama
    reg = FakeRegistry(
        bases=[{"name": "same", "kind": "local", "source": str(base_dir), "path": str(base_dir)}],
        organisms=[{"name": "same", "family": "sdf", "base": "same", "adapter_path": str(adapter_dir),
                    "model_path": None}],
    )
    assert resolve("same", registry=reg).kind == "organism"
    # a registered name wins over a folder of the same name, and over a hub-looking id
    reg2 = FakeRegistry(bases=[{"name": "org/model", "kind": "hub", "source": str(base_dir), "path": None}])
    spec = resolve("org/model", registry=reg2)
    assert spec.kind == "base" and spec.base_source == str(base_dir)


@pytest.mark.parametrize(
    "opts, match",
    [
        (LoadOptions(dtype="float64"), "dtype 'float64'"),
        (LoadOptions(dtype="bf 16"), "dtype"),
        (LoadOptions(device="gpu"), "device 'gpu'"),
        (LoadOptions(device="cuda:x"), "device"),
    ],
)
def test_bad_options(tiny, opts, match):
    folder, _ = tiny["llama"]
    with pytest.raises(OrglabError, match=match) as err:
        load_model(str(folder), opts)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu(tiny):
    folder, _ = tiny["llama"]
    with pytest.raises(OrglabError, match="no CUDA GPU"):
        load_model(str(folder), LoadOptions(device="cuda"))


def test_hub_id_from_local_cache_offline(tiny, tmp_path):
    """A hub id that is in the Hugging Face cache loads offline (fresh process: hub settings are read at import)."""
    import os
    import subprocess
    import sys

    src, ref_logits = tiny["qwen3"]
    repo = tmp_path / "hub" / "models--orglab-test--tiny-qwen3"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in src.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    torch.save(ref_logits, tmp_path / "ref.pt")
    code = (
        "import torch, sys; sys.path.insert(0, %r)\n"
        "from orglab.models import load_model, LoadOptions\n"
        "from tiny_models import sample_ids\n"
        "m = load_model('orglab-test/tiny-qwen3', LoadOptions(dtype='fp32', device='cpu'))\n"
        "assert m.spec.kind == 'hub' and m.spec.base_source == 'orglab-test/tiny-qwen3'\n"
        "ref = torch.load(%r, weights_only=True)\n"
        "torch.testing.assert_close(m.model(sample_ids(m.tokenizer)).logits.detach(), ref)\n"
        "print('OK')\n"
    ) % (str(Path(__file__).parent), str(tmp_path / "ref.pt"))
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-2000:]
