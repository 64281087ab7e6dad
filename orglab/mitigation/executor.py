"""Where a sweep's per-cell work runs: in the driver's process (`inline`), as parallel processes on this machine
(`local`) or as SLURM job arrays (`slurm`, through submitit). See docs/cluster.md.

The driver submits two waves of tasks: first one task per seed that trains the cell the null controls copy and
trains, diffs and evaluates those controls; then one task per (mitigation cell, seed) (train -> diff -> eval).
Every step a task does is an ordinary cached registry run, recorded in the task's private registry (a copy of a
snapshot of the main one, orglab.task_registry); the driver, the only process that writes the main registry, merges
each finished task's registry into it. Once the waves are done the driver runs the usual inline sweep code, which
only reads those cached runs, and records the sweep exactly as an inline sweep does.

Executor settings are never part of a sweep's hashed config: they are an `ExecutorOptions` passed beside it.
A task that fails (or is cancelled or preempted) is resubmitted once. The driver keeps the ids of the jobs it
submitted in `state.json` in the sweep's executor folder (ORGLAB_HOME/executor/<sweep>/), so a driver that is
restarted re-attaches to the jobs that are still queued or running instead of submitting them again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orglab import task_registry
from orglab.errors import OrglabError

EXECUTORS = ("inline", "local", "slurm")
STATE_FILE = "state.json"
SNAPSHOTS_DIR = "snapshots"   # in a wave's folder: the main registry as the driver saw it, one file per driver run
TASKS_DIR = "tasks"           # in a wave's folder: one folder per task, holding its private registries


# ----------------------------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class ExecutorOptions:
    name: str = "inline"
    parallel: int | None = None           # local: tasks at once (default: CPU cores, or GPUs when there are)
    partition: str | None = None          # slurm: --partition
    gpus_per_task: int | None = None      # slurm: --gpus-per-task
    time: str | None = None               # slurm: --time, minutes or [D-]HH:MM[:SS] (default 60 minutes)
    mem: str | None = None                # slurm: --mem, e.g. 8G
    cpus_per_task: int | None = None      # slurm: --cpus-per-task (default 1)
    extra: tuple[str, ...] = ()           # slurm: extra #SBATCH lines, e.g. "--qos=high" or "account=lab"
    retries: int = 1                      # resubmissions of a task that failed, was cancelled or preempted
    poll_s: float = 3.0                   # slurm: seconds between two looks at the queue

    def validate(self) -> None:
        if self.name not in EXECUTORS:
            raise OrglabError(f"Unknown executor '{self.name}'; choose one of {', '.join(EXECUTORS)}.")
        if self.parallel is not None and self.parallel < 1:
            raise OrglabError(f"--parallel must be at least 1, not {self.parallel}.")
        if self.time is not None:
            time_minutes(self.time)
        for line in self.extra:
            _extra_pair(line)

    def ready(self) -> None:
        """validate(), and for slurm that sbatch exists and the partition does (before anything is trained)."""
        self.validate()
        if self.name == "slurm":
            check_slurm(self)

    @property
    def inline(self) -> bool:
        return self.name == "inline"


def time_minutes(text) -> int:
    """SLURM time ('90', '1:30:00', '2-00:00:00', '30:00' = 30 minutes) in whole minutes (at least 1)."""
    s = str(text).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", s)
    if not m:
        raise OrglabError(f"--time '{text}' is not a SLURM time; pass minutes (90) or [D-]HH:MM:SS (1:30:00).")
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if b is None:                                   # minutes, or D-HH
        minutes = a * 60 if days is not None else a
    elif c is None:                                 # MM:SS, or D-HH:MM
        minutes = a * 60 + b if days is not None else a + (1 if b else 0)
    else:                                           # HH:MM:SS
        minutes = a * 60 + b + (1 if c else 0)
    return max(1, minutes + (days or 0) * 24 * 60)


def _extra_pair(line: str) -> tuple[str, str | None]:
    s = str(line).strip()
    if s.startswith("#SBATCH"):
        s = s[len("#SBATCH"):].strip()
    s = s.lstrip("-")
    if not s or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*(=.*)?", s):
        raise OrglabError(f"--slurm-extra '{line}' is not an sbatch option; pass e.g. --slurm-extra=--qos=high.")
    key, _, value = s.partition("=")
    return key, (value if "=" in s else None)


SLURM_CONFIG_KEYS = {"partition", "gpus_per_task", "time", "mem", "cpus_per_task", "extra", "parallel", "retries"}


def executor_options(name: str = "inline", slurm_config: str | None = None, **flags) -> ExecutorOptions:
    """Options from a YAML file (`--slurm-config`: keys partition, gpus_per_task, time, mem, cpus_per_task, extra)
    overridden by the flags that were given (None = not given)."""
    fields: dict = {}
    if slurm_config:
        import yaml

        path = Path(slurm_config)
        if not path.is_file():
            raise OrglabError(f"--slurm-config {slurm_config} does not exist; pass a YAML file with keys like "
                              "partition, time, mem, gpus_per_task, extra.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise OrglabError(f"--slurm-config {slurm_config} is not valid YAML ({exc.__class__.__name__}).") from None
        if not isinstance(data, dict):
            raise OrglabError(f"--slurm-config {slurm_config} must be a mapping like `partition: gpu`.")
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - SLURM_CONFIG_KEYS)
        if unknown:
            raise OrglabError(f"--slurm-config {slurm_config} has unknown key(s) {', '.join(unknown)}; known keys are "
                              f"{', '.join(sorted(SLURM_CONFIG_KEYS))}.")
        fields.update(data)
    for key, value in flags.items():
        if value is None or (key == "extra" and not value):
            continue
        if key == "extra":
            value = list(fields.get("extra") or []) + list(value)
        fields[key] = value
    if isinstance(fields.get("extra"), str):
        fields["extra"] = [fields["extra"]]
    fields["extra"] = tuple(str(x) for x in fields.get("extra") or ())
    if fields.get("time") is not None:
        fields["time"] = str(fields["time"])
    options = ExecutorOptions(name=name or "inline", **fields)
    options.validate()
    return options


def check_slurm(options: ExecutorOptions) -> None:
    """One sentence when SLURM cannot take the sweep: no sbatch, or a partition that does not exist."""
    if shutil.which("sbatch") is None:
        raise OrglabError("--executor slurm needs SLURM's sbatch on PATH, and there is none; install and configure "
                          "SLURM (e.g. apt-get install slurm-client with a slurm.conf pointing at your cluster), "
                          "or use --executor local to run the cells as parallel processes on this machine.")
    if options.partition:
        out = subprocess.run(["sinfo", "-h", "-p", options.partition, "-o", "%P"], capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout.strip():
            known = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()
            hint = f"partitions are {', '.join(p.rstrip('*') for p in known)}" if known else "`sinfo` lists them"
            raise OrglabError(f"SLURM has no partition '{options.partition}'; {hint}.")


# ----------------------------------------------------------------------------------------------------------------
# Folders


def executor_dir(sweep_name: str) -> Path:
    """ORGLAB_HOME/executor/<sweep name>/: the state file, and per wave the tasks' result files and logs."""
    from orglab.paths import orglab_home

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", sweep_name)[:120]
    folder = orglab_home() / "executor" / safe
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------------
# Tasks (module-level functions, so that spawned processes and submitit can pickle them)


@dataclass(frozen=True)
class Task:
    key: str            # unique in its wave, a safe file name: 'controls-s0', 'cell-0.1-s0', 'cell-0-kl0.1-s0'
    fn: str             # a name in TASKS
    args: tuple


def controls_task(config, cell, seed: int) -> dict:
    """Train the cell the null controls copy, then train, diff and evaluate its null controls."""
    from orglab.mitigation.sweep import measure_controls, train_cell

    like = train_cell(config, cell, seed, False)
    return {"like": like, "controls": measure_controls(config, like, seed, config.eval, False)}


def controls_only_task(config, cell, seed: int) -> dict:
    """As controls_task, without evaluating the controls (tune judges them by their diff only)."""
    from orglab.mitigation.sweep import measure_controls, train_cell

    like = train_cell(config, cell, seed, False)
    return {"like": like, "controls": measure_controls(config, like, seed, None, False)}


def cell_task(config, cell, seed: int) -> dict:
    """Train -> diff -> eval of one (mitigation cell, seed)."""
    from orglab.mitigation.sweep import measure, train_cell, with_detector_stages

    name = train_cell(config, cell, seed, False)
    return measure(name, with_detector_stages(config.diff, config.check), config.eval, False)


TASKS = {"controls": controls_task, "controls_only": controls_only_task, "cell": cell_task}


def _threads_for_task() -> None:
    n = os.environ.get("ORGLAB_TASK_THREADS") or os.environ.get("SLURM_CPUS_PER_TASK")
    if n:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
        import torch

        torch.set_num_threads(int(n))


def run_task(folder: str, task: Task, snapshot: str) -> str:
    """Run one task where it was sent, registering into its private registry (made from the driver's `snapshot`;
    the main registry is never opened), and write its result JSON, naming that registry, atomically into `folder`;
    returns that path."""
    _threads_for_task()
    private = task_registry.private_registry_file(Path(folder) / TASKS_DIR / task.key, Path(snapshot))
    with task_registry.private_registry(private, Path(snapshot)):
        result = TASKS[task.fn](*task.args)
    path = Path(folder) / f"{task.key}.json"
    _write_atomic(path, json.dumps({"key": task.key, "registry": str(private), "result": result}, default=str))
    return str(path)


def _local_init(threads: int, gpus) -> None:
    os.environ["ORGLAB_TASK_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    if gpus is not None:
        try:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get_nowait())
        except Exception:
            pass
    import torch

    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------------------------
# The driver


class Driver:
    """Runs waves of tasks through one executor, with one progress bar of finished tasks over all waves."""

    def __init__(self, options: ExecutorOptions, sweep_name: str, total: int, progress: bool = True):
        options.validate()
        if options.name == "slurm":
            check_slurm(options)
        self.options = options
        self.folder = executor_dir(sweep_name)
        self.state_path = self.folder / STATE_FILE
        self.state = self._load_state()
        # names this driver run's snapshots: a later driver's tasks start from a newer one (task_registry)
        self.stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
        self.progress = progress
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"tasks ({options.name})", unit="task", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # state ------------------------------------------------------------------------------------------------------
    def _load_state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {"waves": {}}

    def _save_state(self) -> None:
        _write_atomic(self.state_path, json.dumps(self.state, indent=1))

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    # one wave ---------------------------------------------------------------------------------------------------
    def run_wave(self, wave: str, tasks: list[Task]) -> dict[str, dict]:
        """Run `tasks` (all independent), each at most 1 + retries times; their results by key."""
        folder = self.folder / wave
        folder.mkdir(parents=True, exist_ok=True)
        snapshot = task_registry.take_snapshot(folder / SNAPSHOTS_DIR / f"{self.stamp}.sqlite")
        if self.options.name == "local":
            return self._run_local(folder, tasks, snapshot)
        return self._run_slurm(wave, folder, tasks, snapshot)

    def _collect(self, folder: Path, key: str) -> dict | None:
        """A finished task's result, after merging its private registry into the main one; None if not finished.
        Merging is idempotent, so a driver that restarts merges the tasks it finds finished again, harmlessly."""
        path = folder / f"{key}.json"
        try:
            data = json.loads(path.read_text())
            result, private = data["result"], Path(data["registry"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        task_registry.import_task(private)
        return result

    def _salvage(self, folder: Path, key: str) -> None:
        """Merge what a failed, cancelled or preempted attempt finished (a training done before its diff failed),
        so that no later attempt or later sweep redoes it. Best effort: a registry its killed writer left with a
        hot rollback journal cannot be read read-only; the next attempt reopens it, recovers it and is merged."""
        for private in sorted((folder / TASKS_DIR / key).glob("registry-*.sqlite")):
            try:
                task_registry.import_task(private)
            except OrglabError:
                pass

    def _give_up(self, task: Task, where: str) -> OrglabError:
        return OrglabError(f"Task {task.key} failed {1 + self.options.retries} times; its log is {where}. "
                           "Every run it finished is recorded: fix the cause and run the sweep again.")

    # local ------------------------------------------------------------------------------------------------------
    def _run_local(self, folder: Path, tasks: list[Task], snapshot: Path) -> dict[str, dict]:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        gpus = _gpu_count()
        limit = self.options.parallel or (gpus if gpus else cores)
        parallel = max(1, min(limit, len(tasks)))
        threads = max(1, cores // parallel)
        ctx = mp.get_context("spawn")
        queue = None
        if gpus:
            queue = ctx.Queue()
            for i in range(gpus):
                queue.put(i)
        results: dict[str, dict] = {}
        attempts = {t.key: 0 for t in tasks}
        logs = folder / "logs"
        logs.mkdir(exist_ok=True)
        with ProcessPoolExecutor(max_workers=parallel, mp_context=ctx, initializer=_local_init,
                                 initargs=(threads, queue)) as pool:
            running = {}
            for task in tasks:
                running[pool.submit(run_task, str(folder), task, str(snapshot))] = task
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    task = running.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        results[task.key] = self._collect(folder, task.key)
                        self._tick()
                        continue
                    log = logs / f"{task.key}.err"
                    with open(log, "a") as f:
                        import traceback

                        f.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
                    self._salvage(folder, task.key)
                    attempts[task.key] += 1
                    if attempts[task.key] > self.options.retries or isinstance(exc, OrglabError):
                        if isinstance(exc, OrglabError):
                            raise exc
                        raise self._give_up(task, str(log))
                    running[pool.submit(run_task, str(folder), task, str(snapshot))] = task
        return results

    # slurm ------------------------------------------------------------------------------------------------------
    def _slurm_executor(self, folder: Path):
        import submitit

        o = self.options
        ex = submitit.SlurmExecutor(folder=str(folder / "logs" / "%j"), max_num_timeout=o.retries)
        params = {"time": time_minutes(o.time) if o.time else 60, "cpus_per_task": o.cpus_per_task or 1,
                  "job_name": "orglab", "stderr_to_stdout": False}
        if o.partition:
            params["partition"] = o.partition
        if o.gpus_per_task:
            params["gpus_per_task"] = int(o.gpus_per_task)
        if o.mem:
            params["mem"] = str(o.mem)
        extra = {}
        for line in o.extra:
            key, value = _extra_pair(line)
            extra[key] = value if value is not None else ""
        if extra:
            params["additional_parameters"] = extra
        ex.update_parameters(**params)
        return ex

    def _submit(self, wave: str, folder: Path, tasks: list[Task], snapshot: Path) -> None:
        ex = self._slurm_executor(folder)
        jobs = ex.map_array(run_task, [str(folder)] * len(tasks), tasks, [str(snapshot)] * len(tasks))
        entry = self.state["waves"].setdefault(wave, {})
        for task, job in zip(tasks, jobs):
            rec = entry.setdefault(task.key, {"attempts": 0, "jobs": []})
            rec["attempts"] += 1
            rec["jobs"].append(job.job_id)
            rec["job"] = job.job_id
        self._save_state()

    def _run_slurm(self, wave: str, folder: Path, tasks: list[Task], snapshot: Path) -> dict[str, dict]:
        results: dict[str, dict] = {}
        entry = self.state["waves"].setdefault(wave, {})
        by_key = {t.key: t for t in tasks}
        for key in list(by_key):
            found = self._collect(folder, key)
            if found is not None:          # finished before a restart of the driver
                results[key] = found
                self._tick()
        queued = slurm_queue()
        todo = []
        for key, task in by_key.items():
            if key in results:
                continue
            rec = entry.get(key)
            if rec and rec.get("job") in queued:
                continue                   # re-attach: still pending or running
            todo.append(task)
        if todo:
            self._submit(wave, folder, todo, snapshot)
        while len(results) < len(by_key):
            time.sleep(self.options.poll_s)
            queued = slurm_queue()
            resubmit = []
            for key, task in by_key.items():
                if key in results:
                    continue
                found = self._collect(folder, key)
                if found is not None:
                    results[key] = found
                    self._tick()
                    continue
                rec = entry[key]
                if rec["job"] in queued:
                    continue
                time.sleep(0.5)            # the job may have left the queue right after writing its result
                found = self._collect(folder, key)
                if found is not None:
                    results[key] = found
                    self._tick()
                    continue
                self._salvage(folder, key)
                if rec["attempts"] > self.options.retries:
                    raise self._give_up(task, str(folder / "logs" / str(rec["job"])))
                resubmit.append(task)
            if resubmit:
                print(f"resubmitting {', '.join(t.key for t in resubmit)} (failed, cancelled or preempted)",
                      file=sys.stderr, flush=True)  # a warning, also with --json
                self._submit(wave, folder, resubmit, snapshot)
        return results


def slurm_queue() -> set[str]:
    """The ids of this user's jobs that SLURM still holds (pending, running, requeued...), array tasks as 'J_T'."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-u", _user()], capture_output=True, text=True)
    if out.returncode != 0:
        raise OrglabError(f"squeue failed ({(out.stderr or out.stdout).strip()[:200]}); is slurmctld reachable?")
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def _user() -> str:
    import getpass

    return getpass.getuser()


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip()])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return len([line for line in out.stdout.splitlines() if line.startswith("GPU")]) if out.returncode == 0 else 0


# ----------------------------------------------------------------------------------------------------------------
# What a sweep sends


def task_folder_name(config, prefix: str = "") -> str:
    """The sweep's name and the hash of its settings: a result file left by a sweep of the same name with other
    settings is never taken for this one's."""
    from orglab.mitigation.sweep import _config_dict
    from orglab.registry import config_hash

    return f"{prefix}{config.sweep_name()}-{config_hash(_config_dict(config))[:12]}"


def prepare_sweep(config, options: ExecutorOptions, progress: bool = True) -> None:
    """Run every cell and null control of a sweep through the executor (the controls first, then the cells), so
    that run_sweep's own pass over them only reads cached runs."""
    like = config.like_cell()
    first = [Task(f"controls-s{seed}", "controls", (config, like, seed)) for seed in config.seeds]
    second = [Task(f"cell-{cell.key}-s{seed}", "cell", (config, cell, seed))
              for seed in config.seeds for cell in config.cells()]
    with Driver(options, task_folder_name(config), len(first) + len(second), progress) as driver:
        driver.run_wave("controls", first)
        driver.run_wave("cells", second)


def prepare_controls(config, like, seed: int, options: ExecutorOptions, progress: bool = True) -> None:
    """tune: the cell the controls copy and its null controls, as one task."""
    with Driver(options, task_folder_name(config, "tune-"), 1, progress) as driver:
        driver.run_wave(f"controls-s{seed}", [Task(f"controls-s{seed}", "controls_only", (config, like, seed))])


def prepare_cell(config, cell, seed: int, options: ExecutorOptions, progress: bool = True) -> None:
    """tune: one cell of the bisection, as one task."""
    with Driver(options, task_folder_name(config, "tune-"), 1, progress) as driver:
        driver.run_wave(f"cell-{cell.key}-s{seed}", [Task(f"cell-{cell.key}-s{seed}", "cell", (config, cell, seed))])


# ----------------------------------------------------------------------------------------------------------------
# Command-line flags (`orglab sweep`, `orglab tune`, `orglab tune-mix`)


def add_executor_args(p) -> None:
    g = p.add_argument_group("where the cells run (docs/cluster.md)")
    g.add_argument("--executor", default="inline", choices=EXECUTORS,
                   help="inline: in this process (default); local: parallel processes on this machine; "
                        "slurm: SLURM job arrays through submitit")
    g.add_argument("--parallel", type=int, default=None,
                   help="local: tasks at once (default: CPU cores, or GPUs when there are)")
    g.add_argument("--slurm-config", default=None, metavar="FILE",
                   help="YAML with partition, gpus_per_task, time, mem, cpus_per_task, extra; flags override it")
    g.add_argument("--partition", default=None, help="slurm: partition (checked with sinfo before submitting)")
    g.add_argument("--gpus-per-task", type=int, default=None, help="slurm: GPUs per task")
    g.add_argument("--time", default=None, help="slurm: time limit per task, minutes or [D-]HH:MM:SS (default 60)")
    g.add_argument("--mem", default=None, help="slurm: memory per task, e.g. 16G")
    g.add_argument("--cpus-per-task", type=int, default=None, help="slurm: CPUs per task (default 1)")
    g.add_argument("--slurm-extra", action="append", default=[], metavar="OPTION",
                   help="slurm: an extra #SBATCH line, e.g. --slurm-extra=--qos=high (repeatable)")


def executor_from_args(args) -> ExecutorOptions:
    return executor_options(args.executor, args.slurm_config, parallel=args.parallel, partition=args.partition,
                            gpus_per_task=args.gpus_per_task, time=args.time, mem=args.mem,
                            cpus_per_task=args.cpus_per_task, extra=args.slurm_extra)
