"""Environment steps per second of in-context acting: adbench's preallocated rolling KV
cache against transformers' DynamicCache (sliding-window layers) and against recomputing
the whole window every step, all measured in the same run with the same model and envs.

The model is the darkroom recipe's AD (4 layers, width 64, window 160 steps); the batch is
the full darkroom protocol's 16 test goals x 5 seeds = 80 environments. Timing starts once
the window is full (steady state: every step attends to 160 steps).

Usage::

    python perf/inference.py [--envs 80] [--window 160] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import _no_shadow  # noqa: F401  (before any third-party import: see its docstring)
import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from transformers import DynamicCache

from adbench.envs import get_family
from adbench.models import ADConfig, ADModel


def make_model(window: int) -> ADModel:
    torch.manual_seed(0)
    config = ADConfig(
        attention_window=window,
        max_train_steps=window,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
    )
    return ADModel(config).eval()


def rollout(model: ADModel, mode: str, num_envs: int, warmup: int, steps: int) -> float:
    """Act ``warmup + steps`` steps in darkroom; returns env steps/s over the last ``steps``."""
    family = get_family("darkroom")
    tasks = family.split("test")[np.arange(num_envs) % 16]
    env = family.make_batched(tasks, seed=0)
    generator = torch.Generator().manual_seed(0)
    window = model.config.attention_window
    obs = torch.from_numpy(env.reset())
    prev_action = torch.full((num_envs,), -1)
    prev_reward = torch.zeros(num_envs)
    new_episode = torch.ones(num_envs, dtype=torch.bool)
    context = model.new_context(num_envs) if mode == "rolling" else None
    cache = DynamicCache(config=model.config) if mode == "dynamic" else None
    history: list[tuple[torch.Tensor, ...]] = []
    t_in_episode = 0
    start = 0.0
    with torch.no_grad():
        for step in range(warmup + steps):
            if step == warmup:
                start = time.perf_counter()
            if mode == "rolling":
                logits, context = model.act_logits(
                    context, obs, prev_action, prev_reward, new_episode
                )
            elif mode == "dynamic":
                out = model(
                    obs[:, None],
                    prev_action[:, None],
                    prev_reward[:, None],
                    new_episode[:, None],
                    cache=cache,
                )
                logits = out.logits[:, -1]
            else:  # recompute the last `window` steps from scratch
                history.append((obs, prev_action, prev_reward, new_episode))
                history = history[-window:]
                stacked = [torch.stack(x, dim=1) for x in zip(*history, strict=True)]
                logits = model(*stacked).logits[:, -1]
            action = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
            next_obs, reward, _, truncated = env.step(action.numpy())
            t_in_episode += 1
            prev_action, prev_reward = action, torch.from_numpy(reward)
            if truncated[0]:
                next_obs, t_in_episode = env.reset(), 0
            new_episode = torch.full((num_envs,), t_in_episode == 0)
            obs = torch.from_numpy(next_obs)
    return num_envs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=80)
    parser.add_argument("--window", type=int, default=160)
    parser.add_argument("--steps", type=int, default=200, help="timed steps after warm-up")
    args = parser.parse_args()
    model = make_model(args.window)
    rates = {
        mode: rollout(model, mode, args.envs, args.window, args.steps)
        for mode in ("rolling", "dynamic", "recompute")
    }
    table = Table(
        title=f"in-context acting, {args.envs} envs, window {args.window} steps, "
        f"torch threads {torch.get_num_threads()}"
    )
    for column in ("method", "env steps/s", "rolling cache speed-up"):
        table.add_column(column)
    names = {
        "rolling": "adbench RollingKVCache",
        "dynamic": "transformers DynamicCache (sliding)",
        "recompute": "recompute the window each step",
    }
    for mode, rate in rates.items():
        table.add_row(names[mode], f"{rate:,.0f}", f"{rates['rolling'] / rate:.1f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
