"""Supervised finetuning with trl's SFTTrainer: documents (plain LM loss) and chats (assistant-only loss).

`run_sft(job)` is the one training entry point, called in-process or, for distributed runs, by every process that
`accelerate launch` / `deepspeed` starts (orglab.train.worker). A job is a JSON-ready dict:

    recipe       the resolved Recipe as a dict
    model        the base to finetune (a registered base name, a folder or a hub id; orglab.models resolves it)
    out_dir      the run's artifact folder: checkpoints/ go there, and the adapter/ or model/ at the end
    train, heldout_own, heldout_unrelated    JSONL files of FinetuneData examples
    penalty_unrelated    JSONL file of unrelated examples for the penalties (orglab.train.penalties), only when
                 kl_to_base or adl_penalty is on; disjoint from heldout_unrelated
    data_kind    'text' or 'chat'

It tokenizes with the loss mask (orglab.train.encode), packs sequences best-fit and padding-free (no pad tokens
at all; attention stays within each packed document through position ids), checkpoints every `save_steps`, resumes
from the last checkpoint in out_dir/checkpoints, and measures held-out loss on the organism's own data and on
unrelated text, before training (the base; for LoRA the fresh adapter is an exact no-op) and after (the organism).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from orglab.errors import OrglabError
from orglab.organisms.data import FinetuneData, read_jsonl
from orglab.paths import run_log_file
from orglab.train.encode import encode_data
from orglab.train.progress import (TRACKING_DIR, ProgressBar, TrainingLog, check_tracking_installed,
                                   finish_tracking, tracking_env)
from orglab.train.recipe import Recipe

CHECKPOINT_DIR, ADAPTER_DIR, MODEL_DIR = "checkpoints", "adapter", "model"


def read_jsonl_data(path: str | Path, kind: str) -> FinetuneData:
    examples = read_jsonl(path)
    return FinetuneData(kind, examples, source=str(path))


def last_complete_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest checkpoint that was written to the end: a process killed while saving leaves a folder
    without trainer_state.json (the Trainer writes it last), and resuming from that folder would fail."""
    if not ckpt_dir.is_dir():
        return None
    numbered = [(int(p.name.split("-")[-1]), p) for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    for _, path in sorted(numbered, reverse=True):
        if (path / "trainer_state.json").is_file():
            return str(path)
    return None


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _load_for_training(recipe: Recipe, model_name: str):
    """The model (with a fresh trainable LoRA adapter for lora/qlora) and its tokenizer."""
    import torch

    from orglab.models import LoadOptions, load_model

    device = recipe.device
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{int(local_rank)}"  # one GPU per process under accelerate/torchrun
    options = LoadOptions(dtype=recipe.dtype, device=device, load_in_4bit=recipe.finetune == "qlora")
    loaded = load_model(model_name, options)
    model, tokenizer = loaded.model, loaded.tokenizer
    if loaded.is_adapter:
        raise OrglabError(
            f"'{model_name}' is a LoRA organism, not a base; train on its base (or merge the adapter first)."
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if recipe.chat_template:  # the recipe's template (a base without one); saved with the organism's tokenizer
        tokenizer.chat_template = recipe.chat_template
    if recipe.finetune == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model, tokenizer, loaded.options
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if recipe.finetune == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.gradient_checkpointing)
    config = LoraConfig(
        r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
        use_rslora=bool(recipe.use_rslora), target_modules=recipe.target_modules, task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    return model, tokenizer, loaded.options


def heldout_loss(model, rows: list[dict], pad_id: int, batch_size: int = 16) -> float | None:
    """Token-weighted mean cross-entropy over the target tokens of `rows` (NaN-free; None when there are none)."""
    import torch

    if not rows:
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            chunk = rows[i:i + batch_size]
            width = max(len(r["input_ids"]) for r in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            att = torch.zeros((len(chunk), width), dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            for j, r in enumerate(chunk):
                n = len(r["input_ids"])
                ids[j, :n] = torch.tensor(r["input_ids"])
                att[j, :n] = 1
                labels[j, :n] = torch.where(torch.tensor(r["completion_mask"]) == 1, torch.tensor(r["input_ids"]), -100)
            logits = model(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float()
            shift_logits, shift_labels = logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1).to(device)
            loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((shift_labels != -100).sum())
    model.train(was_training)
    return total / count if count else None


class _CountingCollator:
    """Wraps trl's collator to count real and padded tokens (the padding share of the batches actually trained)."""

    def __init__(self, inner):
        self.inner = inner
        self.real_tokens = 0
        self.total_tokens = 0

    def __call__(self, examples: list[dict]) -> dict:
        out = self.inner(examples)
        self.real_tokens += sum(len(ex["input_ids"]) for ex in examples)
        self.total_tokens += int(out["input_ids"].numel())
        return out


def with_full_logits_loss(trainer_class):
    """`trainer_class` (trl's SFTTrainer or a subclass) with the task loss of recipe `fused_lm_head=False`: the model's
    own cross-entropy over the full logits, as transformers' Trainer computes it, instead of trl's chunked LM head.
    The same loss; on a CPU, where trl's tiles are folded by many elementwise passes instead of a Triton kernel, a
    gemma3-270m step takes about half the time (docs/training.md)."""
    from transformers import Trainer
    from trl import SFTTrainer

    class FullLogitsSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    if trainer_class is SFTTrainer:
        return FullLogitsSFTTrainer
    # A subclass whose compute_loss calls super() (the penalties) gets this task loss beneath its own terms.
    return type(f"{trainer_class.__name__}FullLogits", (trainer_class, FullLogitsSFTTrainer), {})


def run_sft(job: dict, callbacks: list | None = None, progress: bool = False) -> dict:
    """Train one organism as described by `job`; returns a JSON-ready result (also written to out_dir on rank 0)."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    recipe = Recipe(**job["recipe"])
    out_dir = Path(job["out_dir"])
    kind = job["data_kind"]
    set_seed(recipe.seed)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # trl/transformers notes about the config; errors still show
    import datasets

    datasets.disable_progress_bars()  # the data preparation bars: training shows one bar (ProgressBar) only
    if not progress:
        hf_logging.disable_progress_bar()
    model, tokenizer, options = _load_for_training(recipe, job["model"])

    tag = recipe.mask_prefix_tag if kind == "text" else None
    train_rows = encode_data(read_jsonl_data(job["train"], kind), tokenizer, recipe.max_length, tag)
    own_rows = encode_data(read_jsonl_data(job["heldout_own"], kind), tokenizer, recipe.max_length, tag)
    unrelated_rows = (encode_data(read_jsonl_data(job["heldout_unrelated"], kind), tokenizer, recipe.max_length)
                      if job.get("heldout_unrelated") else [])
    if not train_rows:
        raise OrglabError("No training example has a token to learn (all masked or empty); check the data.")

    pad_id = tokenizer.pad_token_id
    from orglab.train.penalties import PENALTY_KEYS, PenalizedSFTTrainer, penalized_trainer_kwargs

    # Both penalties at 0: the plain SFTTrainer, nothing extra built or drawn (the weights of the trainer before them).
    trainer_class, penalty_kwargs = SFTTrainer, {}
    if recipe.penalties_on:
        if not job.get("penalty_unrelated"):
            raise OrglabError("The penalties need unrelated examples but the job has none; pass --unrelated with "
                              "a source that has some.")
        penalty_rows = encode_data(read_jsonl_data(job["penalty_unrelated"], kind), tokenizer, recipe.max_length)
        trainer_class = PenalizedSFTTrainer
        penalty_kwargs = penalized_trainer_kwargs(recipe, model, penalty_rows, pad_id)
    if not recipe.fused_lm_head:
        trainer_class = with_full_logits_loss(trainer_class)
    check_tracking_installed(recipe.report_to)
    tracking_dir = out_dir / TRACKING_DIR
    base_own = heldout_loss(model, own_rows, pad_id)
    base_unrelated = heldout_loss(model, unrelated_rows, pad_id)

    ckpt_dir = out_dir / CHECKPOINT_DIR
    resume = last_complete_checkpoint(ckpt_dir)
    on_gpu = options.device.startswith("cuda")
    deepspeed_cfg = job.get("deepspeed_config")
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.grad_accum,
        learning_rate=recipe.lr,
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps or -1,
        lr_scheduler_type=recipe.lr_scheduler,
        warmup_steps=recipe.warmup_ratio,
        weight_decay=recipe.weight_decay,
        max_length=recipe.max_length,
        packing=recipe.packing,
        packing_strategy="bfd",
        padding_free=recipe.packing,
        completion_only_loss=True,
        gradient_checkpointing=recipe.gradient_checkpointing,
        logging_steps=1,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=2,
        report_to=[] if recipe.report_to == "none" else [recipe.report_to],
        run_name=job.get("run_name"),  # the organism's name, as the tracker shows the run
        seed=recipe.seed,
        data_seed=recipe.seed,
        disable_tqdm=True,  # ProgressBar below instead
        use_cpu=not on_gpu,
        bf16=(on_gpu and options.dtype == "bf16") or (not on_gpu and recipe.cpu_bf16),
        fp16=on_gpu and options.dtype == "fp16",
        dataloader_num_workers=0,
        deepspeed=deepspeed_cfg,
        ddp_backend="gloo" if not on_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        save_on_each_node=_several_nodes(),  # each node resumes from its own checkpoints (its own folder)
    )
    with tracking_env(recipe.report_to, tracking_dir):
        trainer = trainer_class(
            model=model, args=args, train_dataset=Dataset.from_list(train_rows), processing_class=tokenizer,
            callbacks=[*(callbacks or []), TrainingLog(run_log_file(out_dir))], **penalty_kwargs,
        )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; TrainingLog files them instead
    if recipe.min_steps and not recipe.max_steps:
        # The packed data's batches per epoch are known only now; a small data set trains for more epochs.
        per_epoch = math.ceil(len(trainer.get_train_dataloader()) / recipe.grad_accum)
        if math.ceil(per_epoch * recipe.epochs) < recipe.min_steps:
            trainer.args.max_steps = recipe.min_steps
    _check_nodes_agree(Path(job["train"]), resume)
    counter = _CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    if progress:
        trainer.add_callback(ProgressBar(lambda: counter.real_tokens))
    started = time.time()
    with tracking_env(recipe.report_to, tracking_dir):
        train_out = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - started
    tracking = finish_tracking(recipe.report_to, tracking_dir) if trainer.is_world_process_zero() else {}

    # Unwrapped: mixed precision patched the model's forward with autocast, and the held-out losses are measured
    # as before training (the base's), in the weights' own dtype.
    organism = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    own = heldout_loss(organism, own_rows, pad_id)
    unrelated = heldout_loss(organism, unrelated_rows, pad_id)

    # The penalties (unweighted) and the task loss alone are stored beside the total loss they enter.
    losses = [{"step": h["step"], "loss": h["loss"], **{k: h[k] for k in (*PENALTY_KEYS, "task_loss") if k in h}}
              for h in trainer.state.log_history if "loss" in h]
    result: dict[str, Any] = {
        "steps": int(trainer.state.global_step),
        "resumed_from": Path(resume).name if resume else None,
        "train_rows": len(train_rows),
        "train_tokens": sum(len(r["input_ids"]) for r in train_rows),
        "target_tokens": sum(sum(r["completion_mask"]) for r in train_rows),
        "seconds": seconds,
        "train_loss": float(train_out.training_loss) if train_out.training_loss is not None else math.nan,
        "final_loss": losses[-1]["loss"] if losses else math.nan,
        "tokens_per_s": counter.real_tokens / seconds if seconds > 0 else math.nan,
        "padding_share": 1 - counter.real_tokens / counter.total_tokens if counter.total_tokens else 0.0,
        "loss": {"own": {"base": base_own, "organism": own},
                 "unrelated": {"base": base_unrelated, "organism": unrelated}},
        "loss_curve": losses,
        "device": options.device,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        **tracking,
    }
    weights = out_dir / (MODEL_DIR if recipe.finetune == "full" else ADAPTER_DIR)
    # Every rank calls save_model: under ZeRO-3 the weights are sharded and saving gathers them collectively
    # (rank 0 alone would wait forever, or write empty LoRA tensors); the trainer writes from rank 0 only.
    trainer.save_model(str(weights))
    if trainer.is_world_process_zero():
        _check_saved_weights(weights)
        result["model_path" if recipe.finetune == "full" else "adapter_path"] = str(weights)
        tokenizer.save_pretrained(str(weights))
        (out_dir / "sft_result.json").write_text(json.dumps(result, indent=1))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return result


def _several_nodes() -> bool:
    """True when the workers span several machines (torchrun and accelerate set both sizes)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world > int(os.environ.get("LOCAL_WORLD_SIZE", world))


def _check_nodes_agree(train_file: Path, resume: str | None) -> None:
    """Each node of a multi-node run builds its data and finds its checkpoint itself: stop unless all ranks
    train on the same data and resume from the same step (one rank on other data would silently skew it)."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    mine = (hashlib.sha256(train_file.read_bytes()).hexdigest()[:16], Path(resume).name if resume else None)
    every = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(every, mine)
    if len({d for d, _ in every}) > 1:
        raise OrglabError("The nodes built different training data (data hashes "
                          f"{', '.join(sorted({d for d, _ in every}))}); run the same orglab version, recipe and "
                          "seed on every node, or pass the same --data file.")
    if len({r for _, r in every}) > 1:
        raise OrglabError("The nodes would resume from different checkpoints "
                          f"({', '.join(sorted({str(r) for _, r in every}))}); remove the newer checkpoint folders "
                          "so that every node holds the same last step, or train again with --force.")


def _check_saved_weights(folder: Path) -> None:
    """No organism is registered with empty tensors (what a sharded model saved without gathering looks like)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    empty = []
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            empty += [name for name in f.keys() if 0 in f.get_slice(name).get_shape()]
    if not files or empty:
        raise OrglabError(f"The trained weights saved in {folder} are {'missing' if not files else 'empty'}"
                          f"{' (' + ', '.join(empty[:3]) + ')' if empty else ''}; with sharded training (ZeRO-3) "
                          "every process must take part in saving, so report this as a bug.")
