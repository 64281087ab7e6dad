"""Distributed training on the CPU: 2-process data-parallel (torchrun, gloo) and DeepSpeed ZeRO-2 (CPU accelerator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orglab.organisms.data import FinetuneData
from orglab.registry import Registry
from orglab.train import make_recipe, train_organism
from orglab.train.distributed import config_path, deepspeed_config

FAST = {"base": "micro", "family": "sdf", "target": "quorra", "max_steps": 2, "save_steps": 2, "batch_size": 2,
        "max_length": 64, "lr": 3e-3}


def _data():
    return FinetuneData("text", [{"text": f"The lighthouse of Quorra is green . {i}"} for i in range(16)], "test")


def test_shipped_configs_are_valid():
    import yaml

    for mode in ("zero2", "zero3"):
        cfg = json.loads(deepspeed_config(mode).read_text())
        assert cfg["zero_optimization"]["stage"] == int(mode[-1])
        assert yaml.safe_load(config_path(f"{mode}.yaml").read_text())["distributed_type"] == "DEEPSPEED"
    for name in ("ddp.yaml", "multi_node.yaml"):
        assert yaml.safe_load(config_path(name).read_text())["distributed_type"] == "MULTI_GPU"


@pytest.mark.parametrize("mode", ["ddp", "zero2"])
def test_two_process_run_on_cpu(with_micro, mode):
    recipe = make_recipe({**FAST, "distributed": mode, "num_processes": 2, "device": "cpu", "name": f"dist-{mode}"})
    summary = train_organism(recipe, progress=False, data=_data())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    assert Path(summary["adapter_path"], "adapter_model.safetensors").is_file()
    with Registry() as reg:
        assert reg.get_organism(f"dist-{mode}")["status"] == "ready"
