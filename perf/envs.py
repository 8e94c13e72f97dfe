"""Steps per second of each family's batched env against a loop over single Gymnasium envs.

Both are measured in the same run (machines are noisy: compare the ratio, not the
absolute numbers). Usage::

    python perf/envs.py [--num-envs 1024] [--loop-envs 64] [--seconds 2] [--env NAME ...]
"""

from __future__ import annotations

import argparse
import time

import _no_shadow  # noqa: F401  (before any third-party import: see its docstring)
import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

from adbench.envs import FAMILIES, get_family
from adbench.envs.base import EnvFamily


def _tasks(family: EnvFamily, count: int) -> np.ndarray:
    tasks = family.split(family.train_split)
    return tasks[np.arange(count) % len(tasks)]


def batched_rate(family: EnvFamily, num_envs: int, seconds: float) -> float:
    """Env steps per second of one batched env over ``num_envs`` tasks (resets included)."""
    batch = family.make_batched(_tasks(family, num_envs), seed=0)
    actions = np.random.default_rng(0).integers(
        0, family.num_actions, size=(family.episode_length, num_envs)
    )
    steps, start = 0, time.perf_counter()
    while True:
        batch.reset()
        for t in range(family.episode_length):
            batch.step(actions[t])
        steps += family.episode_length * num_envs
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def loop_rate(family: EnvFamily, num_envs: int, seconds: float) -> float:
    """Env steps per second of a Python loop over ``num_envs`` ``gymnasium.make`` envs."""
    envs = [gym.make(family.env_id, task=task) for task in _tasks(family, num_envs)]
    actions = (
        np.random.default_rng(0)
        .integers(0, family.num_actions, size=(family.episode_length, num_envs))
        .tolist()
    )
    for i, env in enumerate(envs):
        env.reset(seed=i)
    steps, start = 0, time.perf_counter()
    while True:
        for env in envs:
            env.reset()
        for t in range(family.episode_length):
            for env, action in zip(envs, actions[t], strict=True):
                env.step(action)
        steps += family.episode_length * num_envs
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=1024, help="tasks in the batched env")
    parser.add_argument("--loop-envs", type=int, default=64, help="single envs in the loop")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--env", action="append", help="family name (repeatable); all by default")
    args = parser.parse_args()
    families = [get_family(n) for n in args.env] if args.env else list(FAMILIES.values())

    table = Table(
        title=f"env steps per second: batched ({args.num_envs} tasks) vs loop of single envs"
    )
    for column in ("env", "batched steps/s", "loop steps/s", "ratio"):
        table.add_column(column, justify="left" if column == "env" else "right")
    for family in families:
        batched = batched_rate(family, args.num_envs, args.seconds)
        loop = loop_rate(family, args.loop_envs, args.seconds)
        table.add_row(family.name, f"{batched:,.0f}", f"{loop:,.0f}", f"{batched / loop:,.1f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
