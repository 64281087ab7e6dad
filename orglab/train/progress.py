"""One terminal progress bar for training, and the trainer's log lines as JSON lines in the run's log file.

Replaces transformers' ProgressCallback (a bar per phase) and PrinterCallback (a dict printed per step). Experiment
tracking (`report_to`: TensorBoard or W&B) writes under the run's folder, `tracking/`, and is recorded with the run.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback


class TrainingLog(TrainerCallback):
    """Every `on_log` dict goes to `log_file` as one JSON line (rank 0 only)."""

    def __init__(self, log_file: Path):
        self.log_file = Path(log_file)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.log_file.open("a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


class ProgressBar(TrainerCallback):
    """One tqdm bar over the optimizer steps, its postfix the last loss and the tokens/s so far.
    `tokens` is a callable returning the real tokens trained so far (the counting collator's count)."""

    def __init__(self, tokens):
        self.tokens = tokens
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step",
                            dynamic_ncols=True)
            self.started, self.tokens_at_start = time.time(), self.tokens()

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            seconds = time.time() - self.started
            rate = (self.tokens() - self.tokens_at_start) / seconds if seconds > 0 else 0.0
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}", tok_s=f"{rate:,.0f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ------------------------------------------------------------------------------------------------ experiment tracking

TRACKING_DIR = "tracking"  # under the run's folder: TensorBoard event files, W&B's run folder
_TRACKING_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def check_tracking_installed(report_to: str) -> None:
    """One sentence naming the install command when the tracker's package is missing (before any data is built)."""
    import importlib.util

    from orglab.errors import OrglabError

    package = _TRACKING_PACKAGES.get(report_to)
    if package and importlib.util.find_spec(package) is None:
        raise OrglabError(f"--report-to {report_to} needs the {package} package, which is not installed; install it "
                          f"with `pip install {package}` or train with --report-to none.")


@contextmanager
def tracking_env(report_to: str, folder: Path):
    """Inside the context, the trainer's tracker writes under `folder`: transformers' TensorBoard callback reads its
    folder from TENSORBOARD_LOGGING_DIR when built, W&B its folder from WANDB_DIR when the run starts. Variables
    the user set are kept (WANDB_MODE, WANDB_PROJECT, WANDB_DIR); the old environment comes back afterwards."""
    import os

    wanted = {}
    if report_to == "tensorboard":
        wanted = {"TENSORBOARD_LOGGING_DIR": str(folder)}
    elif report_to == "wandb":
        wanted = {k: v for k, v in (("WANDB_DIR", str(folder)), ("WANDB_PROJECT", "orglab"))
                  if not os.environ.get(k)}
    if wanted:
        folder.mkdir(parents=True, exist_ok=True)
    old = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def finish_tracking(report_to: str, folder: Path) -> dict:
    """{'tracking_dir', 'tracking_url'} of a finished run (None where there is none). A W&B run is finished here,
    so that its files are complete (and their hashes stable) before the registry records them."""
    if report_to == "tensorboard":
        return {"tracking_dir": str(folder), "tracking_url": None}
    if report_to != "wandb":
        return {}
    import wandb

    run = wandb.run
    if run is None:
        return {"tracking_dir": None, "tracking_url": None}
    run_dir = Path(run.dir).parent  # run.dir is the run's files/ folder; its parent holds the .wandb log
    url = None if run.offline else run.url
    wandb.finish()
    return {"tracking_dir": str(run_dir), "tracking_url": url}


def tracking_files(tracking_dir: str | None) -> list[Path]:
    """The files that hold a run's tracked logs: TensorBoard event files, or W&B's .wandb run log."""
    if not tracking_dir or not Path(tracking_dir).is_dir():
        return []
    folder = Path(tracking_dir)
    return sorted([*folder.rglob("events.out.tfevents.*"), *folder.glob("*.wandb")])
