"""Distributed training on the CPU: 2-process data-parallel (torchrun, gloo) and DeepSpeed ZeRO-2 and ZeRO-3 (CPU
accelerator; ZeRO-3 with LoRA and with full finetuning), and two nodes on one machine from the shipped
multi-node template, as a user runs them (one `orglab train` per node)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orglab.organisms.data import FinetuneData
from orglab.registry import Registry
from orglab.train import make_recipe, train_organism
from orglab.errors import OrglabError
from orglab.train.distributed import Topology, _free_port, config_path, deepspeed_config, launch_command, node_topology

FAST = {"base": "micro", "family": "sdf", "target": "quorra", "max_steps": 2, "save_steps": 2, "batch_size": 2,
        "max_length": 64, "lr": 3e-3}


def _data():
    return FinetuneData("text", [{"text": f"The lighthouse of Quorra is green . {i}"} for i in range(16)], "test")


def test_shipped_configs_are_valid():
    for mode in ("zero2", "zero3"):
        cfg = json.loads(deepspeed_config(mode).read_text())
        assert cfg["zero_optimization"]["stage"] == int(mode[-1])
        assert yaml.safe_load(config_path(f"{mode}.yaml").read_text())["distributed_type"] == "DEEPSPEED"
    for name in ("ddp.yaml", "multi_node.yaml"):
        assert yaml.safe_load(config_path(name).read_text())["distributed_type"] == "MULTI_GPU"


@pytest.mark.parametrize("mode,finetune", [("ddp", "lora"), ("zero2", "lora"), ("zero3", "lora"), ("zero3", "full")])
def test_two_process_run_on_cpu(with_micro, mode, finetune):
    import torch
    from safetensors import safe_open

    from orglab.models import load_model

    name = f"dist-{mode}-{finetune}"
    recipe = make_recipe({**FAST, "distributed": mode, "num_processes": 2, "device": "cpu", "name": name,
                          "finetune": finetune})
    summary = train_organism(recipe, progress=False, data=_data())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    folder = Path(summary["adapter_path" if finetune == "lora" else "model_path"])
    files = list(folder.glob("*.safetensors"))
    assert files
    for file in files:  # ZeRO-3 shards parameters: a save that did not gather them writes empty tensors
        with safe_open(str(file), framework="pt") as f:
            assert all(f.get_slice(k).get_shape() and 0 not in f.get_slice(k).get_shape() for k in f.keys())
    with Registry() as reg:
        assert reg.get_organism(name)["status"] == "ready"
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    with torch.no_grad():
        organism = load_model(name).model(input_ids=ids).logits
        base = load_model("micro").model(input_ids=ids).logits
    assert organism.shape == base.shape and not torch.allclose(organism, base)  # the training reached the weights


def _node_config(folder: Path, rank: int, port: int, **fields) -> Path:
    """The shipped multi-node template as a user edits it for node `rank` (both nodes here on 127.0.0.1)."""
    config = yaml.safe_load(config_path("multi_node.yaml").read_text())
    config.update({"machine_rank": rank, "main_process_ip": "127.0.0.1", "main_process_port": port,
                   "num_processes": 2, "use_cpu": True, **fields})
    path = folder / f"node{rank}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start_node(folder: Path, rank: int, port: int, recipe: dict) -> subprocess.Popen:
    recipe_file = folder / f"recipe{rank}.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "ORGLAB_ACCELERATE_CONFIG": str(_node_config(folder, rank, port)), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "orglab", "train", "sdf", "--config", str(recipe_file), "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _two_nodes(folder: Path, recipes: tuple[dict, dict]) -> list[tuple[int, str, str]]:
    port = _free_port()
    nodes = [_start_node(folder, rank, port, recipe) for rank, recipe in enumerate(recipes)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    return [(node.returncode, *output) for node, output in zip(nodes, outputs)]


def test_two_nodes_on_one_machine(with_micro, tmp_path):
    """Node 0 and node 1 share ORGLAB_HOME (a shared filesystem): one organism, one train run, trained by both."""
    data = tmp_path / "docs.jsonl"
    _data().to_jsonl(data)
    recipe = {**FAST, "name": "dist-2nodes", "distributed": "ddp", "num_processes": 1, "device": "cpu",
              "data": str(data)}
    (rc0, out0, err0), (rc1, out1, err1) = _two_nodes(tmp_path, (recipe, recipe))
    assert rc0 == 0, err0
    assert rc1 == 0, err1
    main, worker = json.loads(out0), json.loads(out1)
    assert main["world_size"] == 2 and main["steps"] == 2
    assert worker["role"] == "worker node" and worker["node_rank"] == 1 and worker["data_hash"] == main["data_hash"]
    with Registry() as reg:
        assert reg.get_organism("dist-2nodes")["status"] == "ready"
        assert len(reg.list_runs(subject="dist-2nodes", kind="train")) == 1  # node 1 registered nothing
    assert list(Path(main["adapter_path"]).glob("*.safetensors"))


def test_nodes_with_different_data_stop(with_micro, tmp_path):
    data = tmp_path / "docs.jsonl"
    _data().to_jsonl(data)
    recipe = {**FAST, "name": "dist-mismatch", "distributed": "ddp", "num_processes": 1, "device": "cpu",
              "data": str(data)}
    results = _two_nodes(tmp_path, (recipe, {**recipe, "seed": 1}))  # another seed: another held-out split
    for rc, _, err in results:
        assert rc != 0
        assert "orglab: error: The nodes built different training data" in err and "Traceback" not in err
    with Registry() as reg:
        assert reg.get_organism("dist-mismatch")["status"] == "failed"


def test_node_topology_from_the_accelerate_config(tmp_path, monkeypatch):
    assert node_topology() == Topology()
    monkeypatch.setenv("ORGLAB_ACCELERATE_CONFIG", str(_node_config(tmp_path, 1, 29600)))
    topology = node_topology()
    assert topology == Topology(2, 1, "127.0.0.1", 29600, 2) and not topology.is_main_node
    recipe = make_recipe({**FAST, "distributed": "ddp", "num_processes": 3, "device": "cpu"})
    argv, _ = launch_command(tmp_path / "job.json", recipe, tmp_path, topology)
    assert argv[argv.index("--nnodes") + 1] == "2" and argv[argv.index("--node_rank") + 1] == "1"
    # the config's num_processes counts both nodes (accelerate's meaning); the recipe's 3 per node gives way
    assert argv[argv.index("--nproc_per_node") + 1] == "1" and argv[argv.index("--master_port") + 1] == "29600"
    for fields, fragment in (({"machine_rank": 2}, "machine_rank 2 for 2 machine(s)"),
                             ({"num_processes": 3}, "make it a multiple"),
                             ({"main_process_ip": None}, "no main_process_ip"),
                             ({"num_machines": "two"}, "field 'num_machines'")):
        monkeypatch.setenv("ORGLAB_ACCELERATE_CONFIG", str(_node_config(tmp_path, 0, 29600, **fields)))
        with pytest.raises(OrglabError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            node_topology()
    monkeypatch.setenv("ORGLAB_ACCELERATE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(OrglabError, match="cannot be read"):
        node_topology()


def test_multi_node_config_with_an_undistributed_recipe_is_refused(with_micro, tmp_path):
    env = {**os.environ, "ORGLAB_ACCELERATE_CONFIG": str(_node_config(tmp_path, 0, 29600))}
    result = subprocess.run([sys.executable, "-m", "orglab", "train", "sdf", "--base", "micro", "--target", "quorra"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "orglab: error: ORGLAB_ACCELERATE_CONFIG describes 2 machines but the recipe is not distributed; pass "
        "--distributed ddp (or zero2, zero3) on every node."]
    with Registry() as reg:
        assert reg.get_organism("sdf-quorra-mix1-0") is None
