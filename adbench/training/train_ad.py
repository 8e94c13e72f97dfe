"""Train AD (on learning histories) or ED (on expert episodes) with Accelerate.

Read top to bottom: arguments, data, model, optimiser and schedule, the loop (with
checkpoints that resume exactly), the saved model. The same code runs on one CPU, one
GPU or many processes (``accelerate launch --num_processes N``): each process samples
its own windows (seeded by rank) and DDP averages the gradients.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from accelerate.utils import set_seed
from pydantic import Field
from pydantic.dataclasses import dataclass

from adbench.envs import get_family
from adbench.errors import AdbenchError
from adbench.fileio import atomic_write_json
from adbench.histories.loading import dataset_dir, read_metadata
from adbench.histories.reader import HistoryArrays, WindowSampler
from adbench.hub import repo_revision
from adbench.models import ADConfig, ADModel
from adbench.models.spaces import observation_spec
from adbench.training.common import (
    CHECKPOINT_DIR,
    argument_layers,
    make_accelerator,
    resume_point,
    save_checkpoint,
    write_model_card,
)
from adbench.validation import (
    ARGS_CONFIG,
    NonNegative,
    NonNegativeFloat,
    OpenUnitInterval,
    Positive,
    PositiveFloat,
    Seed,
    UnitInterval,
    build_args,
)

LOG_FILE = "training_log.json"


@dataclass(config=ARGS_CONFIG)
class ADTrainArgs:
    """Every knob of an AD/ED training run (a recipe file sets any of them); types and
    ranges are checked when an instance is made (see :mod:`adbench.validation`)."""

    method: Literal["ad", "ed"] = "ad"
    """``ad`` trains on learning histories, ``ed`` on the dataset's ``expert`` config."""
    dataset: Annotated[str, Field(min_length=1)] = "ad-bench/darkroom"
    """History dataset repo id (local hub first, then the remote endpoint) or directory."""
    dataset_config: str | None = None
    """Dataset config; default ``default`` for AD, ``expert`` for ED."""
    env: str | None = None
    """If set, the environment the dataset must be of (a recipe's safety check)."""
    seed: Seed = 0
    max_steps: Positive = 2000
    """Optimiser steps."""
    batch_size: Positive = 32
    """Windows per optimiser step, over all processes and accumulation steps."""
    gradient_accumulation_steps: Positive = 1
    learning_rate: PositiveFloat = 3e-4
    """Peak learning rate (the paper's cosine schedule peaks at 3e-4)."""
    min_learning_rate_ratio: UnitInterval = 0.1
    """The cosine decays to this fraction of the peak."""
    warmup_steps: NonNegative = 100
    weight_decay: NonNegativeFloat = 0.01
    adam_beta1: OpenUnitInterval = 0.9
    adam_beta2: OpenUnitInterval = 0.99
    max_grad_norm: PositiveFloat = 1.0
    label_smoothing: OpenUnitInterval = 0.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """``no``, ``bf16`` or ``fp16`` (Accelerate's; fp16 needs a GPU)."""
    context_steps: Positive = 160
    """Length of the training windows, in steps (``max_train_steps`` of the model)."""
    attention_window: Positive = 160
    """Steps each token attends to; also the size of the rolling cache when acting."""
    hidden_size: Positive = 64
    num_hidden_layers: Positive = 4
    num_attention_heads: Positive = 4
    intermediate_size: Positive = 256
    dropout: OpenUnitInterval = 0.1
    attention_dropout: OpenUnitInterval = 0.1
    image_channels: Annotated[list[Positive], Field(min_length=1)] = field(
        default_factory=lambda: [32, 64, 64]
    )
    image_pool: Positive = 1
    """Average-pool frames by this factor before the conv blocks (1: the paper's encoder)."""
    checkpoint_every: NonNegative = 500
    """Save a resumable checkpoint every this many optimiser steps (0: never)."""
    log_every: Positive = 25
    hub: str | None = None
    """Local hub directory (default: ``$ADBENCH_HUB`` or the user cache)."""

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise AdbenchError(
                f"num_attention_heads ({self.num_attention_heads}) must divide hidden_size "
                f"({self.hidden_size})"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "recipe") -> ADTrainArgs:
        return build_args(cls, [(source, values)])

    @property
    def config_name(self) -> str:
        return self.dataset_config or ("expert" if self.method == "ed" else "default")


class SamplerState:
    """Makes the window sampler's random state part of Accelerate's checkpoints."""

    def __init__(self, sampler: WindowSampler) -> None:
        self.sampler = sampler

    def state_dict(self) -> dict[str, Any]:
        return {"bit_generator": self.sampler.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.rng.bit_generator.state = state["bit_generator"]


def lr_lambda(args: ADTrainArgs) -> Callable[[int], float]:
    """Linear warmup to the peak, then cosine decay to ``min_learning_rate_ratio``."""

    def factor(step: int) -> float:
        if step < args.warmup_steps:
            return (step + 1) / args.warmup_steps
        progress = (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return args.min_learning_rate_ratio + (1 - args.min_learning_rate_ratio) * cosine

    return factor


def batch_tensors(batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
    return {
        "observations": torch.from_numpy(np.ascontiguousarray(batch.observations)).to(device),
        "prev_actions": torch.from_numpy(batch.prev_actions).to(device),
        "prev_rewards": torch.from_numpy(batch.prev_rewards).to(device),
        "new_episode": torch.from_numpy(batch.step == 0).to(device),
        "actions": torch.from_numpy(batch.actions).to(device),
    }


def recipe_args(
    method: str,
    recipe: str | Path | None = None,
    overrides: list[str] | None = None,
    **options: Any,
) -> ADTrainArgs:
    """The arguments of an AD or ED run: the recipe (a file or a baseline recipe's name),
    then ``overrides`` (``KEY=VALUE``), then ``options`` (None: not given), validated."""
    layers = argument_layers(
        method, None if recipe is None else str(recipe), overrides, {"method": method, **options}
    )
    return build_args(ADTrainArgs, layers)


def train_ad(
    args: ADTrainArgs,
    output_dir: Path,
    command: str = "",
    on_step: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
) -> Path:
    """Train, checkpoint and save an AD/ED model into ``output_dir``; resumes from the
    latest complete checkpoint there. ``stop_after`` stops after that many optimiser
    steps of this call, as an interruption would (to test resuming)."""
    accelerator = make_accelerator(args.gradient_accumulation_steps, args.mixed_precision)
    set_seed(args.seed + accelerator.process_index, deterministic=False)

    # --- data ------------------------------------------------------------------------
    repo_dir = dataset_dir(args.dataset, hub=args.hub)
    metadata = read_metadata(repo_dir)
    family = get_family(metadata["env"]["name"])
    if args.env is not None and args.env != family.name:
        raise AdbenchError(
            f"the recipe is for {args.env} but {args.dataset} holds {family.name} histories: "
            f"use a {family.name} recipe or another dataset"
        )
    arrays = HistoryArrays.from_repo(repo_dir, config=args.config_name, hub=args.hub)
    micro_batch = args.batch_size // (accelerator.num_processes * args.gradient_accumulation_steps)
    if micro_batch < 1:
        raise AdbenchError(
            f"batch_size {args.batch_size} is smaller than processes x accumulation steps"
        )
    sampler = WindowSampler(
        arrays, args.context_steps, micro_batch, seed=args.seed * 1000 + accelerator.process_index
    )

    # --- model -----------------------------------------------------------------------
    obs = observation_spec(family)
    if tuple(obs["observation_shape"]) != arrays.observation_shape:
        raise AdbenchError(
            f"{args.dataset} observations have shape {arrays.observation_shape}, but "
            f"{family.env_id} observations have shape {tuple(obs['observation_shape'])}"
        )
    config = ADConfig(
        **obs,
        num_actions=family.num_actions,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        intermediate_size=args.intermediate_size,
        attention_window=args.attention_window,
        max_train_steps=args.context_steps,
        dropout=args.dropout,
        attention_dropout=args.attention_dropout,
        image_channels=args.image_channels,
        image_pool=args.image_pool,
        label_smoothing=args.label_smoothing,
        method=args.method,
        env_id=family.env_id,
        env_name=family.name,
        episode_length=family.episode_length,
        dataset_id=metadata["repo_id"],
        dataset_config=args.config_name,
        dataset_revision=repo_revision(repo_dir),
    )
    model = ADModel(config)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(args))
    # The scheduler is stepped by hand once per optimiser step (Accelerate would step a
    # prepared one once per process), so the schedule is the same for any process count.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler, SamplerState(sampler))

    # --- resume ------------------------------------------------------------------------
    output_dir = Path(output_dir)
    log: dict[str, Any] = {"args": asdict(args), "command": command, "steps": []}
    step = resume_point(accelerator, output_dir, asdict(args))
    if step and (output_dir / LOG_FILE).exists():
        previous = json.loads((output_dir / LOG_FILE).read_text())
        log["steps"] = [s for s in previous["steps"] if s["step"] <= step]
    log["resumed_from_step"] = step

    # --- loop --------------------------------------------------------------------------
    model.train()
    tokens_per_step = args.batch_size * args.context_steps
    started = time.perf_counter()
    window_loss, window_steps, window_start, steps_this_call = 0.0, 0, time.perf_counter(), 0
    while step < args.max_steps:
        for _ in range(args.gradient_accumulation_steps):
            with accelerator.accumulate(model):
                inputs = batch_tensors(sampler.sample(), accelerator.device)
                loss = model(**inputs).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
                window_loss += loss.detach().float().item() / args.gradient_accumulation_steps
        scheduler.step()
        step += 1
        steps_this_call += 1
        window_steps += 1
        if step % args.log_every == 0 or step == args.max_steps:
            elapsed = time.perf_counter() - window_start
            record = {
                "step": step,
                "loss": round(window_loss / window_steps, 5),
                "learning_rate": scheduler.get_last_lr()[0],
                "tokens_per_second": round(tokens_per_step * window_steps / elapsed, 1),
                "elapsed_seconds": round(time.perf_counter() - started, 2),
            }
            log["steps"].append(record)
            if accelerator.is_main_process:
                atomic_write_json(output_dir / LOG_FILE, log)
            if on_step:
                on_step(record)
            window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
        if args.checkpoint_every and step % args.checkpoint_every == 0 and step < args.max_steps:
            save_checkpoint(accelerator, output_dir, step, asdict(args))
        if stop_after is not None and steps_this_call >= stop_after and step < args.max_steps:
            save_checkpoint(accelerator, output_dir, step, asdict(args))
            accelerator.end_training()
            raise AdbenchError(f"training stopped after step {step} as asked")

    # --- save ----------------------------------------------------------------------------
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(output_dir, safe_serialization=True)
        log["compute"] = {
            "device": str(accelerator.device),
            "num_processes": accelerator.num_processes,
            "mixed_precision": args.mixed_precision,
            "wall_seconds_this_run": round(time.perf_counter() - started, 1),
            "tokens": tokens_per_step * args.max_steps,
            "parameters": sum(p.numel() for p in unwrapped.parameters()),
        }
        atomic_write_json(output_dir / LOG_FILE, log)
        write_model_card(output_dir, unwrapped.config, asdict(args), log, command, metadata)
        # The run is complete: its resumable state has served its purpose, and a model
        # directory to publish holds the model only.
        shutil.rmtree(output_dir / CHECKPOINT_DIR, ignore_errors=True)
    accelerator.end_training()
    return output_dir
