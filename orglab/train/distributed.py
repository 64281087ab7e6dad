"""Distributed training: several processes (GPUs or CPU workers, one or several nodes), plain data-parallel or
DeepSpeed ZeRO-2 / ZeRO-3, selected by `recipe.distributed` (none|ddp|zero2|zero3).

The shipped configs live in `orglab/train/configs/`:

    ddp.yaml          accelerate: data-parallel on the GPUs of one machine
    multi_node.yaml   accelerate: template for several nodes (copy it to each node, set machine_rank and
                      main_process_ip, point ORGLAB_ACCELERATE_CONFIG at the copy, run the same command on all)
    zero2.yaml/.json  accelerate + DeepSpeed ZeRO-2 (optimizer states and gradients sharded)
    zero3.yaml/.json  accelerate + DeepSpeed ZeRO-3 (parameters sharded as well)

With GPUs, `accelerate launch --config_file <config>` starts `recipe.num_processes` workers
(orglab.train.worker) per node. Without GPUs (or with device cpu), torchrun starts them with the gloo backend,
and ZeRO runs use DeepSpeed's CPU accelerator (DS_ACCELERATOR=cpu): the same code path, testable on a laptop.
Every worker runs orglab.train.sft.run_sft on its shard of the batches; rank 0 saves the weights and the result.

Several nodes: every node runs the same `orglab train` command with its own copy of the accelerate config
(`node_topology` reads num_machines, machine_rank and the main node's address from it, on GPUs and CPUs alike).
Node 0 registers the organism; the other nodes only lend their workers and touch no registry.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orglab.errors import OrglabError
from orglab.train.recipe import Recipe

CONFIG_DIR = Path(__file__).parent / "configs"
RESULT_FILE, JOB_FILE = "sft_result.json", "job.json"
WORKER_ERROR = "orglab: error: "  # how orglab.train.worker reports an OrglabError


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


@dataclass(frozen=True)
class Topology:
    """Where this node sits in a distributed run (a single node unless the accelerate config says otherwise)."""

    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str = "127.0.0.1"
    main_process_port: int | None = None   # None: a free port (one node only)
    num_processes: int | None = None       # all nodes together, as in accelerate; None: recipe.num_processes per node

    @property
    def is_main_node(self) -> bool:
        return self.machine_rank == 0


class _AccelerateNodes(BaseModel):
    """The fields of an accelerate config that place a node; the rest is accelerate's business."""

    model_config = ConfigDict(extra="ignore")
    num_machines: int = Field(default=1, ge=1)
    machine_rank: int = Field(default=0, ge=0)
    main_process_ip: str | None = None
    main_process_port: int | None = Field(default=None, ge=1, le=65535)
    num_processes: int | None = Field(default=None, ge=1)


def node_topology() -> Topology:
    """The topology in the accelerate config named by ORGLAB_ACCELERATE_CONFIG, or a single node."""
    custom = os.environ.get("ORGLAB_ACCELERATE_CONFIG")
    if not custom:
        return Topology()
    import yaml

    path = Path(custom)
    where = f"ORGLAB_ACCELERATE_CONFIG ({path})"
    try:
        fields = yaml.safe_load(path.read_text()) or {}
    except OSError:
        raise OrglabError(f"{where} cannot be read; point it at an accelerate config file such as a copy of "
                          f"{config_path('multi_node.yaml')}.") from None
    except yaml.YAMLError as exc:
        raise OrglabError(f"{where} is not valid YAML ({str(exc).splitlines()[0]}); fix the file.") from None
    if not isinstance(fields, dict):
        raise OrglabError(f"{where} is not a mapping of accelerate settings; fix the file.")
    try:
        nodes = _AccelerateNodes(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise OrglabError(f"{where}: field '{err['loc'][0]}' {err['msg'].lower()}; fix the file.") from None
    if nodes.machine_rank >= nodes.num_machines:
        raise OrglabError(f"{where} gives machine_rank {nodes.machine_rank} for {nodes.num_machines} machine(s); "
                          f"number the nodes 0 to {nodes.num_machines - 1}.")
    if nodes.num_machines > 1 and not nodes.main_process_ip:
        raise OrglabError(f"{where} names {nodes.num_machines} machines but no main_process_ip; set it to the "
                          "address of node 0 on every node.")
    if nodes.num_processes and nodes.num_processes % nodes.num_machines:
        raise OrglabError(f"{where} gives num_processes {nodes.num_processes} for {nodes.num_machines} machines; "
                          "num_processes counts the processes of all nodes together, so make it a multiple.")
    return Topology(nodes.num_machines, nodes.machine_rank, nodes.main_process_ip or "127.0.0.1",
                    nodes.main_process_port or (29500 if nodes.num_machines > 1 else None), nodes.num_processes)


def check_topology(recipe: Recipe, topology: Topology) -> None:
    """A multi-node config with a single-process recipe would train one organism per node: refuse it."""
    if topology.num_machines > 1 and recipe.distributed == "none":
        raise OrglabError(f"ORGLAB_ACCELERATE_CONFIG describes {topology.num_machines} machines but the recipe is not "
                          "distributed; pass --distributed ddp (or zero2, zero3) on every node.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _use_gpus(recipe: Recipe) -> bool:
    if recipe.device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def launch_command(job_path: Path, recipe: Recipe, out_dir: Path,
                   topology: Topology | None = None) -> tuple[list[str], dict]:
    """(argv, extra environment) that start this node's workers of a distributed run."""
    topology = topology or Topology()
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
    if topology.num_processes:  # the accelerate config's count, as accelerate itself would use it on GPUs
        n = str(topology.num_processes // topology.num_machines)
    port = topology.main_process_port or _free_port()
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(topology.num_machines),
            "--node_rank", str(topology.machine_rank), "--nproc_per_node", n,
            "--master_addr", topology.main_process_ip, "--master_port", str(port)]
    return argv + worker, env


def launch(job: dict, recipe: Recipe, progress: bool = False, topology: Topology | None = None) -> dict:
    """Run this node's `recipe.num_processes` workers of a training job. On node 0, returns rank 0's result (as
    run_sft does); on another node, which has no result, {"node_rank": R, "num_machines": N}."""
    topology = topology or Topology()
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
    argv, extra_env = launch_command(job_path, recipe, out_dir, topology)
    env = {**os.environ, **extra_env, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    output: list[str] = []
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:  # kept to find a worker's error; shown live on a terminal until one appears
            output.append(line)
            if progress and not any(WORKER_ERROR in seen for seen in output):
                sys.stderr.write(line)
        returncode = proc.wait()
    if returncode == 0 and not topology.is_main_node:
        return {"node_rank": topology.machine_rank, "num_machines": topology.num_machines}
    if returncode != 0 or not result_path.is_file():
        said = [line.split(WORKER_ERROR, 1)[1].strip() for line in output if WORKER_ERROR in line]
        if said:  # a worker stopped with one of orglab's own sentences: pass it on as it is
            raise OrglabError(said[0])
        detail = " | ".join(line.strip() for line in output[-15:] if line.strip())[-600:]
        raise OrglabError(
            f"The distributed training run ({recipe.distributed}, {recipe.num_processes} processes) failed with exit "
            f"code {returncode}{': ' + detail if detail else ''}; fix the cause or train with distributed: none."
        )
    return json.loads(result_path.read_text())
