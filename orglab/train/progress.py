"""One terminal progress bar for training, and the trainer's log lines as JSON lines in the run's log file.

Replaces transformers' ProgressCallback (a bar per phase) and PrinterCallback (a dict printed per step).
"""

from __future__ import annotations

import json
import time
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
