"""Training throughput: adbench's Accelerate training loop against a plain PyTorch loop with
the same model, batches and optimiser, measured in the same run; and the fraction of the
machine's measured matmul FLOP/s that the training reaches.

Usage::

    python perf/train.py [--steps 60] [--batch-size 32] [--context 240]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import _no_shadow  # noqa: F401  (before any third-party import: see its docstring)
import torch
from rich.console import Console
from rich.table import Table

from adbench.histories.builder import build_dataset
from adbench.histories.reader import HistoryArrays, WindowSampler
from adbench.models import ADConfig, ADModel
from adbench.training.train_ad import ADTrainArgs, batch_tensors, lr_lambda, train_ad


def matmul_flops(seconds: float = 2.0, size: int = 1024) -> float:
    """The machine's float32 matmul FLOP/s with torch's default threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start)


def flops_per_token(config: ADConfig, context: int) -> float:
    """Training FLOPs per token: 6 x matmul parameters, plus attention (q.k and p.v, forward
    and backward) over on average ``context / 2`` keys per layer."""
    d, layers = config.hidden_size, config.num_hidden_layers
    per_layer = 4 * d * d + 2 * d * config.intermediate_size  # qkv, out, mlp
    params = layers * per_layer + d * config.num_actions
    return 6 * params + 6 * layers * d * context


def plain_loop(args: ADTrainArgs, arrays: HistoryArrays, warmup: int) -> float:
    """The same training written as a bare PyTorch loop; tokens/s after ``warmup`` steps."""
    torch.manual_seed(args.seed)
    config = ADConfig(
        observation_type="discrete",
        observation_shape=[2],
        observation_high=[9, 9],
        num_actions=5,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        intermediate_size=args.intermediate_size,
        attention_window=args.attention_window,
        max_train_steps=args.context_steps,
    )
    model = ADModel(config).train()
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(args))
    sampler = WindowSampler(arrays, args.context_steps, args.batch_size, seed=args.seed)
    start = 0.0
    for step in range(args.max_steps):
        if step == warmup:
            start = time.perf_counter()
        loss = model(**batch_tensors(sampler.sample(), torch.device("cpu"))).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return (
        (args.max_steps - warmup)
        * args.batch_size
        * args.context_steps
        / (time.perf_counter() - start)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=240)
    args_cli = parser.parse_args()
    warmup = 10
    with tempfile.TemporaryDirectory() as tmp:
        build_dataset(
            "darkroom", hub=tmp, tasks=65, learners=2, episodes=400, every=10, expert_episodes=0
        )
        args = ADTrainArgs(
            dataset="ad-bench/darkroom",
            hub=tmp,
            max_steps=args_cli.steps,
            batch_size=args_cli.batch_size,
            context_steps=args_cli.context,
            attention_window=min(160, args_cli.context),
            log_every=warmup,
            checkpoint_every=0,
            warmup_steps=5,
        )
        arrays = HistoryArrays.from_repo("ad-bench/darkroom", hub=tmp)
        plain = plain_loop(args, arrays, warmup)
        train_ad(args, Path(tmp) / "run")
        log = json.loads((Path(tmp) / "run" / "training_log.json").read_text())
        ours_records = [s for s in log["steps"] if s["step"] > warmup]
        ours = sum(s["tokens_per_second"] for s in ours_records) / len(ours_records)
    peak = matmul_flops()
    config = ADConfig(
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        intermediate_size=args.intermediate_size,
    )
    achieved = ours * flops_per_token(config, args.context_steps)
    table = Table(
        title=f"AD training, 4 layers x 64, batch {args.batch_size} x "
        f"{args.context_steps} steps, torch threads {torch.get_num_threads()}"
    )
    for column in ("loop", "tokens/s", "vs plain"):
        table.add_column(column)
    table.add_row("plain PyTorch loop", f"{plain:,.0f}", "1.00x")
    table.add_row("adbench train_ad (Accelerate)", f"{ours:,.0f}", f"{ours / plain:.2f}x")
    Console(width=120).print(table)
    Console(width=120).print(
        f"matmul peak {peak / 1e9:,.1f} GFLOP/s; training reaches {achieved / 1e9:,.2f} GFLOP/s "
        f"= {achieved / peak:.1%} of it ({flops_per_token(config, args.context_steps) / 1e6:.2f} "
        "MFLOP per token)"
    )


if __name__ == "__main__":
    main()
