"""Training throughput, against baselines measured in the same run.

1. ``--against-fused``: the AD recipe's model (ad-darkroom: width 64, 4 layers, 4 heads,
   feed-forward 256, ALiBi sliding-window attention, its dropout kept) against a plain
   causal transformer of the same size written here (learned positions, PyTorch's fused
   ``scaled_dot_product_attention(is_causal=True)``, no dropout), both a bare
   forward/backward/AdamW step on the same batches (32 x 160 steps). The loops alternate in
   blocks within one process and the best block of each is reported (this machine's speed
   moves by 2x between runs), with each one's fraction of the measured matmul peak, the
   median (and range) of each block's rate over the baseline block right after it, and the
   best rate per second of the process's CPU time (immune to being descheduled).
2. Default: adbench's Accelerate training loop (``train_ad``) against a plain PyTorch loop
   with the same model, batches and optimiser; and the fraction of the matmul peak reached.

Usage::

    python perf/train.py [--steps 60] [--batch-size 32] [--context 240] [--allocator system]
    python perf/train.py --against-fused [--blocks 6] [--block-steps 10] [--allocator system]

``--allocator cli`` (the default) keeps freed memory in the process as adbench's command
line does (``adbench/allocator.py``); ``system`` leaves glibc's defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import _no_shadow  # noqa: F401  (before any third-party import: see its docstring)
import torch
from rich.console import Console
from rich.table import Table

from adbench.allocator import retain_freed_memory
from adbench.histories.builder import build_dataset
from adbench.histories.reader import HistoryArrays, WindowSampler
from adbench.models import ADConfig, ADModel
from adbench.training.train_ad import ADTrainArgs, batch_tensors, lr_lambda, train_ad

console = Console(width=140)


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


class PlainCausalTransformer(torch.nn.Module):
    """The baseline: a GPT-style causal transformer of AD's size with nothing of AD's own
    (learned positions instead of ALiBi, full causal attention instead of a sliding window,
    no dropout): the step's cell, previous action and reward embedded and summed."""

    def __init__(self, width: int, layers: int, heads: int, ff: int, steps: int) -> None:
        super().__init__()
        self.cell = torch.nn.Embedding(81, width)
        self.prev_action = torch.nn.Embedding(6, width)
        self.reward = torch.nn.Linear(1, width)
        self.position = torch.nn.Embedding(steps, width)
        self.heads = heads
        self.blocks = torch.nn.ModuleList(
            torch.nn.ModuleDict(
                {
                    "ln1": torch.nn.LayerNorm(width),
                    "qkv": torch.nn.Linear(width, 3 * width),
                    "out": torch.nn.Linear(width, width),
                    "ln2": torch.nn.LayerNorm(width),
                    "up": torch.nn.Linear(width, ff),
                    "down": torch.nn.Linear(ff, width),
                }
            )
            for _ in range(layers)
        )
        self.ln = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, 5)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        obs = batch["observations"].long()
        b, t = obs.shape[:2]
        x = (
            self.cell(obs[..., 0] * 9 + obs[..., 1])
            + self.prev_action(batch["prev_actions"].clamp(min=-1) + 1)
            + self.reward(batch["prev_rewards"].float().unsqueeze(-1))
            + self.position(torch.arange(t))
        )
        for block in self.blocks:
            qkv = block["qkv"](block["ln1"](x)).view(b, t, 3, self.heads, -1)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + block["out"](y.transpose(1, 2).reshape(b, t, -1))
            x = x + block["down"](torch.nn.functional.gelu(block["up"](block["ln2"](x))))
        logits = self.head(self.ln(x))
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, 5), batch["actions"].reshape(-1)
        )


def against_fused(blocks: int, block_steps: int, batch_size: int) -> None:
    """Section 1 of the module docstring."""
    import yaml

    from adbench.resources import recipe_path

    recipe = yaml.safe_load(recipe_path("ad-darkroom").read_text())
    context = recipe["context_steps"]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        build_dataset(
            "darkroom", hub=tmp, tasks=65, learners=2, episodes=400, every=10, expert_episodes=0
        )
        arrays = HistoryArrays.from_repo("ad-bench/darkroom", hub=tmp)
    sampler = WindowSampler(arrays, context, batch_size, seed=0)
    config = ADConfig(
        observation_type="discrete",
        observation_shape=[2],
        observation_high=[9, 9],
        num_actions=5,
        hidden_size=recipe["hidden_size"],
        num_hidden_layers=recipe["num_hidden_layers"],
        num_attention_heads=recipe["num_attention_heads"],
        intermediate_size=recipe["intermediate_size"],
        attention_window=recipe["attention_window"],
        max_train_steps=context,
        dropout=recipe["dropout"],
        attention_dropout=recipe["attention_dropout"],
    )
    ours = ADModel(config).train()
    plain = PlainCausalTransformer(
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.intermediate_size,
        context,
    ).train()
    loops = {
        "AD recipe model (ALiBi sliding window, dropout)": (
            ours,
            lambda batch: ours(**batch).loss,
        ),
        "plain causal transformer (fused SDPA)": (plain, plain),
    }
    optimizers = {
        name: torch.optim.AdamW(m.parameters(), lr=3e-4) for name, (m, _) in loops.items()
    }
    batches = [batch_tensors(sampler.sample(), torch.device("cpu")) for _ in range(block_steps)]
    rates: dict[str, list[float]] = {name: [] for name in loops}
    # Tokens per second of the process's CPU time too: on a shared machine, time spent
    # descheduled counts in the wall clock but not here (page faults, being the process's
    # own kernel work, count in both).
    cpu_rates: dict[str, list[float]] = {name: [] for name in loops}
    tokens = block_steps * batch_size * context
    for block in range(blocks + 1):  # block 0 warms up
        for name, (model, loss_of) in loops.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for batch in batches:
                loss = loss_of(batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizers[name].step()
                optimizers[name].zero_grad()
            if block:
                rates[name].append(tokens / (time.perf_counter() - start))
                cpu_rates[name].append(tokens / (time.process_time() - cpu_start))
    best = {name: max(r) for name, r in rates.items()}
    peak = matmul_flops()
    baseline = best["plain causal transformer (fused SDPA)"]
    table = Table(
        title=f"training step, width {config.hidden_size} x {config.num_hidden_layers} layers, "
        f"batch {batch_size} x {context} steps: best of {blocks} interleaved blocks of "
        f"{block_steps} steps, torch threads {torch.get_num_threads()}"
    )
    for column in (
        "model",
        "tokens/s",
        "vs plain",
        "paired blocks: median [range]",
        "tokens/CPU-s",
        "vs plain (CPU time)",
        "of matmul peak",
    ):
        table.add_column(column)
    plain_rates = rates["plain causal transformer (fused SDPA)"]
    best_cpu = {name: max(r) for name, r in cpu_rates.items()}
    baseline_cpu = best_cpu["plain causal transformer (fused SDPA)"]
    for name, rate in best.items():
        achieved = rate * flops_per_token(config, context)
        # Each block against the baseline's block right after it: the machine's drift
        # between the two is smaller than between runs.
        paired = sorted(r / b for r, b in zip(rates[name], plain_rates, strict=True))
        spread = f"{statistics.median(paired):.2f}x [{paired[0]:.2f}, {paired[-1]:.2f}]"
        table.add_row(
            name,
            f"{rate:,.0f}",
            f"{rate / baseline:.2f}x",
            spread,
            f"{best_cpu[name]:,.0f}",
            f"{best_cpu[name] / baseline_cpu:.2f}x",
            f"{achieved / peak:.1%}",
        )
    console.print(table)
    console.print(
        f"matmul peak {peak / 1e9:,.1f} GFLOP/s; {flops_per_token(config, context) / 1e6:.2f} "
        "MFLOP per token (the same count for both: causal attention over context / 2 keys)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=240)
    parser.add_argument("--against-fused", action="store_true", help="section 1 only")
    parser.add_argument("--blocks", type=int, default=6, help="with --against-fused")
    parser.add_argument("--block-steps", type=int, default=10, help="with --against-fused")
    parser.add_argument(
        "--allocator",
        choices=("cli", "system"),
        default="cli",
        help="keep freed memory as adbench's CLI does (adbench/allocator.py), or glibc's defaults",
    )
    args_cli = parser.parse_args()
    if args_cli.allocator == "cli":  # both loops of a section share the process and its setting
        retain_freed_memory()
    console.print(f"allocator: {args_cli.allocator}")
    if args_cli.against_fused:
        against_fused(args_cli.blocks, args_cli.block_steps, args_cli.batch_size)
        return
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
