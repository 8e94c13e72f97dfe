"""The benchmarks: one versioned protocol per dataset.

A benchmark fixes everything that determines a score: the environment, the held-out task
splits (and how many of their tasks), the evaluation seeds, the number of in-context
episodes, the decoding, and the normalisation references. Any change of protocol bumps
``version``; every results file and leaderboard entry carries it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adbench.envs import get_family
from adbench.envs.base import EnvFamily, stable_permutation
from adbench.errors import AdbenchError


@dataclass(frozen=True)
class Benchmark:
    """An in-context adaptation protocol.

    Each scored split contributes ``tasks_per_split`` tasks (a fixed subset, or all) x
    ``seeds`` evaluation seeds = runs; each run starts from an empty context on its task
    and plays ``episodes`` episodes without any parameter update. A run's normalised
    score per episode is ``(R - random) / (reference - random)``: the reference is the
    optimal return (``normalization="optimal"``), or the source algorithm's return at the
    same episode learning from scratch on the same task and seed (``"source"``: the
    bandit's UCB normalisation of the paper).
    """

    name: str
    version: str
    env: str
    dataset: str
    scored_splits: tuple[str, ...]
    check_splits: tuple[str, ...]  # reported, not in the score (the bandit's in-distribution split)
    tasks_per_split: int | None
    seeds: int
    episodes: int
    normalization: str
    source: str
    description: str

    @property
    def family(self) -> EnvFamily:
        return get_family(self.env)

    @property
    def splits(self) -> tuple[str, ...]:
        return self.scored_splits + self.check_splits

    def tasks(self, split: str) -> NDArray[Any]:
        """The split's evaluated tasks: all, or a fixed subset spread over the split."""
        tasks = self.family.split(split)
        if self.tasks_per_split is None or self.tasks_per_split >= len(tasks):
            return tasks
        order = stable_permutation(f"adbench/benchmark/{self.name}/{split}", len(tasks))
        return tasks[np.sort(order[: self.tasks_per_split])]

    def task_indices(self, split: str) -> NDArray[np.int64]:
        """Indices within the split of :meth:`tasks`."""
        n = len(self.family.split(split))
        if self.tasks_per_split is None or self.tasks_per_split >= n:
            return np.arange(n)
        order = stable_permutation(f"adbench/benchmark/{self.name}/{split}", n)
        return np.sort(order[: self.tasks_per_split])

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "env_id": self.family.env_id}


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            name="bandit",
            version="1.0",
            env="bandit",
            dataset="ad-bench/bandit",
            scored_splits=("test-even", "test-uniform"),
            check_splits=("test-odd",),
            tasks_per_split=100,
            seeds=5,
            episodes=20,
            normalization="source",
            source="ucb",
            description="Adversarial Bandit: 20 episodes of 100 pulls; scored on even and "
            "uniform best arms, normalised against UCB learning from scratch",
        ),
        Benchmark(
            name="darkroom",
            version="1.0",
            env="darkroom",
            dataset="ad-bench/darkroom",
            scored_splits=("test",),
            check_splits=(),
            tasks_per_split=None,
            seeds=5,
            episodes=1000,
            normalization="optimal",
            source="q-learning",
            description="Dark Room: 16 held-out goals x 5 seeds x 1000 episodes",
        ),
        Benchmark(
            name="darkroom-hard",
            version="1.0",
            env="darkroom-hard",
            dataset="ad-bench/darkroom-hard",
            scored_splits=("test",),
            check_splits=(),
            tasks_per_split=None,
            seeds=3,
            episodes=1000,
            normalization="optimal",
            source="q-learning",
            description="Dark Room Hard: 58 held-out goals x 3 seeds x 1000 episodes",
        ),
        Benchmark(
            name="key-to-door",
            version="1.0",
            env="key-to-door",
            dataset="ad-bench/key-to-door",
            scored_splits=("test",),
            check_splits=(),
            tasks_per_split=40,
            seeds=3,
            episodes=1000,
            normalization="optimal",
            source="q-learning",
            description="Dark Key-to-Door: 40 held-out tasks x 3 seeds x 1000 episodes",
        ),
        Benchmark(
            name="watermaze",
            version="1.0",
            env="watermaze",
            dataset="ad-bench/watermaze",
            scored_splits=("test",),
            check_splits=(),
            tasks_per_split=50,
            seeds=2,
            episodes=160,
            normalization="optimal",
            source="dqn",
            description="Watermaze: 50 held-out platforms x 2 seeds x 160 episodes",
        ),
    )
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise AdbenchError(
            f"unknown benchmark {name!r}: valid benchmarks are {', '.join(BENCHMARKS)}"
        )
    return BENCHMARKS[name]


def benchmark_for_env(env_name: str | None) -> Benchmark:
    """The benchmark of a model's environment (when ``--benchmark`` is not given)."""
    for benchmark in BENCHMARKS.values():
        if benchmark.env == env_name:
            return benchmark
    raise AdbenchError(
        f"no benchmark for environment {env_name!r}: pass --benchmark ({', '.join(BENCHMARKS)})"
    )
