"""History-dataset performance, each figure against a baseline measured in the same run.

1. Transitions generated per second by each source algorithm (vectorised over learners)
   against a per-task Python loop of the same algorithm on single Gymnasium envs.
2. Window sampling throughput of ``WindowSampler`` (Arrow-backed arrays, one gather per
   column) against slicing windows one by one out of in-memory numpy arrays.
3. Peak memory (max RSS) of a dataset build, in a child process.
4. With ``--against REV``: the Q-learning and A2C sources of this checkout against the same
   sources at git revision ``REV`` (the whole package at that commit, env code included,
   exported with ``git archive``) on Dark Room, 1,300 learners, interleaved in child
   processes (best of ``--repeats`` each), and whether they play the same histories. This
   checkout runs twice: with glibc's default allocator settings, and as ``adbench datasets
   build`` runs it (freed memory kept in the process: ``adbench/allocator.py``); page faults
   per episode are reported for all three.

Usage::

    python perf/datasets.py [--quick] [--skip-sources] [--skip-build]
    python perf/datasets.py --against c50378f [--episodes 1000] [--repeats 2] [--source a2c]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import _no_shadow  # noqa: F401  (before any third-party import: see its docstring)
import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

from adbench.envs import get_family
from adbench.sources import get_source

console = Console(width=140)


# --- 1. sources -------------------------------------------------------------------------


def batched_rate(source: str, family_name: str, learners: int, episodes: int) -> float:
    family = get_family(family_name)
    tasks = family.split(family.train_split)
    tasks = tasks[np.arange(learners) % len(tasks)]
    start = time.perf_counter()
    for _ in get_source(source).learn(family, tasks, episodes, seed=0):
        pass
    return learners * episodes * family.episode_length / (time.perf_counter() - start)


def ucb_loop_rate(learners: int, episodes: int) -> float:
    """UCB1, one learner at a time on one single env: the textbook per-task loop."""
    family = get_family("bandit")
    tasks = family.split("train-odd")
    start = time.perf_counter()
    for i in range(learners):
        env = gym.make(family.env_id, task=tasks[i % len(tasks)])
        env.reset(seed=i)
        counts, sums = np.zeros(10), np.zeros(10)
        for _ in range(episodes):
            env.reset()
            for _ in range(family.episode_length):
                total = max(counts.sum(), 1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    score = sums / counts + np.sqrt(2 * np.log(total) / counts)
                score[counts == 0] = np.inf
                arm = int(np.argmax(score))
                reward = env.step(arm)[1]
                counts[arm] += 1
                sums[arm] += reward
    return learners * episodes * family.episode_length / (time.perf_counter() - start)


def thompson_loop_rate(learners: int, episodes: int) -> float:
    family = get_family("bandit")
    tasks = family.split("train-odd")
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(learners):
        env = gym.make(family.env_id, task=tasks[i % len(tasks)])
        env.reset(seed=i)
        alpha, beta = np.ones(10), np.ones(10)
        for _ in range(episodes):
            env.reset()
            for _ in range(family.episode_length):
                arm = int(np.argmax(rng.beta(alpha, beta)))
                reward = env.step(arm)[1]
                alpha[arm] += reward
                beta[arm] += 1 - reward
    return learners * episodes * family.episode_length / (time.perf_counter() - start)


def source_rows(quick: bool) -> list[tuple[str, str, int, float, float]]:
    """(source, env, learners, batched rate, loop rate)."""
    import source_loops
    import source_loops_dqn

    rows = []
    scale = 4 if quick else 1
    bandit_learners, bandit_loop = 1000 // scale, 20 // scale
    for source, loop in (("ucb", ucb_loop_rate), ("thompson", thompson_loop_rate)):
        batched = batched_rate(source, "bandit", bandit_learners, 10)
        rows.append((source, "bandit", bandit_learners, batched, loop(bandit_loop, 10)))
    for source in ("q-learning", "a2c"):
        for env in ("darkroom", "darkroom-hard", "key-to-door"):
            learners = 1024 // scale
            episodes = 100 if source == "q-learning" else 40
            batched = source_loops.batched_transitions_per_second(
                source, env, learners, episodes, 0
            )
            loop = source_loops.loop_transitions_per_second(source, env, 8, episodes // 2, 0)
            rows.append((source, env, learners, batched, loop))
    learners = 32 // (2 if quick else 1)
    batched = source_loops_dqn.batched_transitions_per_second(learners, 6, 0)
    loop = source_loops_dqn.loop_transitions_per_second(2, 3, 0)
    rows.append(("dqn", "watermaze", learners, batched, loop))
    return rows


# --- 2. window sampling -----------------------------------------------------------------


def window_rates(context_steps: int, batch_size: int, batches: int) -> tuple[float, float, int]:
    """Windows per second: WindowSampler vs slicing in-memory numpy arrays per window."""
    import adbench
    from adbench.histories.builder import build_dataset
    from adbench.histories.reader import HistoryArrays, WindowSampler

    with tempfile.TemporaryDirectory() as hub:
        build_dataset(
            "darkroom", hub=hub, tasks=65, learners=4, episodes=400, every=10, expert_episodes=0
        )
        ds = adbench.load_dataset("ad-bench/darkroom", split="train", hub=hub)
        arrays = HistoryArrays.from_dataset(ds)
        sampler = WindowSampler(arrays, context_steps, batch_size, seed=0)
        # Baseline: the same columns as plain in-memory numpy arrays, windows sliced one
        # at a time and stacked (what a hand-written loader does).
        columns = {
            name: np.array(getattr(arrays, name))
            for name in (
                "observations",
                "actions",
                "rewards",
                "prev_actions",
                "prev_rewards",
                "step",
            )
        }
        starts = [
            sampler.window_rows(sampler.rng.integers(0, sampler.num_windows, batch_size))[:, 0]
            for _ in range(batches)
        ]
        begin = time.perf_counter()
        for batch_starts in starts:
            {
                name: np.stack([col[s : s + context_steps] for s in batch_starts])
                for name, col in columns.items()
            }
        baseline = batches * batch_size / (time.perf_counter() - begin)
        begin = time.perf_counter()
        for _ in range(batches):
            sampler.sample()
        ours = batches * batch_size / (time.perf_counter() - begin)
        return ours, baseline, arrays.num_steps


# --- 3. build memory --------------------------------------------------------------------


_CHILD = """
import resource, sys, time
from adbench.histories.builder import build_dataset
begin = time.perf_counter()
build_dataset(sys.argv[1], hub=sys.argv[2])
print(time.perf_counter() - begin, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def build_peak_memory(name: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of building dataset ``name`` with its defaults, measured
    in a fresh child process (so nothing else counts towards its peak)."""
    with tempfile.TemporaryDirectory() as hub:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, name, hub], check=True, capture_output=True, text=True
        ).stdout.split()
    return float(out[0]), float(out[1]) / 1024


# --- 4. sources against an earlier revision ---------------------------------------------

_RATE_CHILD = """
import hashlib, json, resource, sys, time
import numpy as np
import adbench
if sys.argv[5] == "cli":  # as `adbench datasets build` runs it (adbench/allocator.py)
    from adbench.allocator import retain_freed_memory
    assert retain_freed_memory()
from adbench.envs import get_family
from adbench.sources import get_source
source, env, learners, episodes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
family = get_family(env)
tasks = family.split(family.train_split)
tasks = tasks[np.arange(learners) % len(tasks)]
digest = hashlib.sha256()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
start = time.perf_counter()
for batch in get_source(source).learn(family, tasks, episodes, seed=0):
    digest.update(batch.actions.tobytes())
seconds = time.perf_counter() - start
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"rate": learners * episodes * family.episode_length / seconds,
                  "faults_per_episode": faults / episodes,
                  "package": adbench.__file__, "actions_sha256": digest.hexdigest()}))
"""


def rate_in_child(
    root: str, source: str, env: str, learners: int, episodes: int, allocator: str = "system"
) -> dict:
    """Env steps per second of ``source`` with the adbench package found in ``root``, with
    glibc's default allocator settings (``system``) or as adbench's CLI sets them (``cli``)."""
    import json
    import os

    out = subprocess.run(
        [sys.executable, "-c", _RATE_CHILD, source, env, str(learners), str(episodes), allocator],
        check=True, capture_output=True, text=True,
        # -c puts the cwd first on sys.path
        env={**os.environ, "PYTHONPATH": root, "ADBENCH_SYSTEM_MALLOC": "0"}, cwd=root,
    ).stdout  # fmt: skip
    record = json.loads(out.strip().splitlines()[-1])
    assert record["package"].startswith(root), f"{root} did not shadow adbench: {record}"
    return record


def against_revision(
    revision: str, episodes: int, repeats: int, sources: tuple[str, ...] = ("q-learning", "a2c")
) -> None:
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[1])
    table = Table(title=f"sources on darkroom, 1,300 learners x {episodes} episodes: this checkout "
                  f"vs {revision} (best of {repeats}, interleaved)")  # fmt: skip
    columns = (
        "source",
        f"{revision} steps/s",
        "now, glibc defaults",
        "ratio",
        "now, as the CLI runs it",
        "ratio",
        "page faults/episode (then, now, CLI)",
        "same histories",
    )
    for column in columns:
        table.add_column(column)
    with tempfile.TemporaryDirectory(prefix="adbench-rev-") as old:
        archive = subprocess.run(
            ["git", "-C", here, "archive", revision, "adbench"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        for source in sources:
            # The earlier revision ran with glibc's defaults (its CLI set nothing); this
            # checkout both with them and as its CLI runs (freed memory kept).
            runs: dict[str, list[dict]] = {"then": [], "now": [], "cli": []}
            for _ in range(repeats):
                runs["then"].append(rate_in_child(old, source, "darkroom", 1300, episodes))
                runs["now"].append(rate_in_child(here, source, "darkroom", 1300, episodes))
                runs["cli"].append(
                    rate_in_child(here, source, "darkroom", 1300, episodes, allocator="cli")
                )
            best = {key: max(r["rate"] for r in records) for key, records in runs.items()}
            faults = ", ".join(
                f"{min(r['faults_per_episode'] for r in runs[key]):,.0f}" for key in runs
            )
            same = runs["then"][0]["actions_sha256"] == runs["now"][0]["actions_sha256"]
            table.add_row(
                source, f"{best['then']:,.0f}", f"{best['now']:,.0f}",
                f"{best['now'] / best['then']:.2f}x", f"{best['cli']:,.0f}",
                f"{best['cli'] / best['then']:.2f}x", faults, "yes" if same else "no",
            )  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--skip-sources", action="store_true")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--build", action="append", help="dataset to build (repeatable)")
    parser.add_argument("--against", help="compare the sources with this git revision only")
    parser.add_argument("--episodes", type=int, default=1000, help="with --against")
    parser.add_argument("--repeats", type=int, default=2, help="with --against")
    parser.add_argument(
        "--source", action="append", choices=("q-learning", "a2c"), help="with --against"
    )
    args = parser.parse_args()
    if args.against:
        sources = tuple(args.source or ("q-learning", "a2c"))
        against_revision(args.against, args.episodes, args.repeats, sources)
        return

    if not args.skip_sources:
        table = Table(title="source transitions per second: vectorised vs per-task loop")
        for column in ("source", "env", "learners", "vectorised/s", "loop/s", "ratio"):
            table.add_column(column, justify="right" if column not in ("source", "env") else "left")
        for source, env, learners, batched, loop in source_rows(args.quick):
            table.add_row(
                source,
                env,
                str(learners),
                f"{batched:,.0f}",
                f"{loop:,.0f}",
                f"{batched / loop:,.1f}x",
            )
        console.print(table)

    ours, baseline, steps = window_rates(context_steps=160, batch_size=64, batches=200)
    table = Table(title=f"window sampling (160 steps x 64 windows, {steps:,} steps of darkroom)")
    for column in ("reader", "windows/s", "ratio"):
        table.add_column(column)
    table.add_row("numpy slicing per window (baseline)", f"{baseline:,.0f}", "1.0x")
    table.add_row("WindowSampler", f"{ours:,.0f}", f"{ours / baseline:,.2f}x")
    console.print(table)

    if not args.skip_build:
        table = Table(title="dataset build: wall time and peak memory (child process)")
        for column in ("dataset (defaults)", "seconds", "peak RSS MB"):
            table.add_column(column)
        for name in args.build or ["bandit", "darkroom"]:
            seconds, peak = build_peak_memory(name)
            table.add_row(name, f"{seconds:.1f}", f"{peak:,.0f}")
        console.print(table)


if __name__ == "__main__":
    main()
