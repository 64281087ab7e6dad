"""Distributed training: several processes (GPUs or CPU workers, one or several nodes), plain data-parallel or
DeepSpeed ZeRO-2 / ZeRO-3, selected by `recipe.distributed` (none|ddp|zero2|zero3).

The shipped configs live in `orglab/train/configs/`:

    ddp.yaml          accelerate: data-parallel on the GPUs of one machine
    multi_node.yaml   accelerate: template for several nodes (copy, edit, point ORGLAB_ACCELERATE_CONFIG at it)
    zero2.yaml/.json  accelerate + DeepSpeed ZeRO-2 (optimizer states and gradients sharded)
    zero3.yaml/.json  accelerate + DeepSpeed ZeRO-3 (parameters sharded as well)

With GPUs, `accelerate launch --config_file <config>` starts `recipe.num_processes` workers
(orglab.train.worker) per node. Without GPUs (or with device cpu), torchrun starts them with the gloo backend,
and ZeRO runs use DeepSpeed's CPU accelerator (DS_ACCELERATOR=cpu): the same code path, testable on a laptop.
Every worker runs orglab.train.sft.run_sft on its shard of the batches; rank 0 saves the weights and the result.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from orglab.errors import OrglabError
from orglab.train.recipe import Recipe

CONFIG_DIR = Path(__file__).parent / "configs"
RESULT_FILE, JOB_FILE = "sft_result.json", "job.json"


def config_path(name: str) -> Path:
    """A shipped config file (ddp.yaml, multi_node.yaml, zero2.json, zero2.yaml, zero3.json, zero3.yaml)."""
    path = CONFIG_DIR / name
    if not path.is_file():
        raise OrglabError(f"Distributed config {name} is not shipped; choose one of: "
                          f"{', '.join(sorted(p.name for p in CONFIG_DIR.iterdir()))}.")
    return path


def deepspeed_config(mode: str) -> Path | None:
    """The ZeRO JSON for zero2/zero3, None for ddp/none."""
    return config_path(f"{mode}.json") if mode in ("zero2", "zero3") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _use_gpus(recipe: Recipe) -> bool:
    if recipe.device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def launch_command(job_path: Path, recipe: Recipe, out_dir: Path) -> tuple[list[str], dict]:
    """(argv, extra environment) that start the workers of a distributed run."""
    env: dict[str, str] = {}
    n = str(recipe.num_processes)
    worker = ["-m", "orglab.train.worker", str(job_path)]
    if _use_gpus(recipe):
        custom = os.environ.get("ORGLAB_ACCELERATE_CONFIG")
        if custom:
            config = Path(custom)
        elif recipe.distributed in ("zero2", "zero3"):
            # accelerate reads deepspeed_config_file relative to the working directory: write an absolute copy
            text = config_path(f"{recipe.distributed}.yaml").read_text()
            text = text.replace(f"deepspeed_config_file: {recipe.distributed}.json",
                                f"deepspeed_config_file: {deepspeed_config(recipe.distributed)}")
            config = out_dir / f"accelerate_{recipe.distributed}.yaml"
            config.write_text(text)
        else:
            config = config_path("ddp.yaml")
        argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
        if not custom:
            argv += ["--num_processes", n, "--main_process_port", str(_free_port())]
        return argv + worker, env
    if recipe.distributed in ("zero2", "zero3"):
        env["DS_ACCELERATOR"] = "cpu"
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", n,
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    return argv + worker, env


def launch(job: dict, recipe: Recipe, progress: bool = False) -> dict:
    """Run a training job on `recipe.num_processes` workers; returns rank 0's result (as run_sft does)."""
    if recipe.distributed == "none":
        raise OrglabError("launch() is for distributed runs; set distributed to ddp, zero2 or zero3.")
    if recipe.finetune == "qlora" and recipe.distributed == "zero3":
        raise OrglabError("QLoRA cannot be combined with ZeRO-3 here; use distributed: zero2 or ddp.")
    out_dir = Path(job["out_dir"])
    job = dict(job)
    gpus = _use_gpus(recipe)
    if recipe.distributed in ("zero2", "zero3") and not gpus:
        job["deepspeed_config"] = str(deepspeed_config(recipe.distributed))
    job_path = out_dir / JOB_FILE
    job_path.write_text(json.dumps(job, indent=1))
    result_path = out_dir / RESULT_FILE
    result_path.unlink(missing_ok=True)
    argv, extra_env = launch_command(job_path, recipe, out_dir)
    env = {**os.environ, **extra_env, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(argv, env=env, stdout=None if progress else subprocess.PIPE,
                          stderr=None if progress else subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not result_path.is_file():
        tail = (proc.stdout or "").strip().splitlines()[-15:] if not progress else []
        detail = " | ".join(line.strip() for line in tail if line.strip())[-600:]
        raise OrglabError(
            f"The distributed training run ({recipe.distributed}, {recipe.num_processes} processes) failed with exit "
            f"code {proc.returncode}{': ' + detail if detail else ''}; fix the cause or train with distributed: none."
        )
    return json.loads(result_path.read_text())
