"""The benchmarks: one versioned protocol per dataset.

A benchmark fixes everything that determines a score: the environment, the held-out task
splits (and how many of their tasks), the evaluation seeds, the number of in-context
episodes, the decoding, the prompting, and the normalisation references. Any change of
protocol bumps ``version``; every results file and leaderboard entry carries it, and the
fingerprint of the evaluated (task, seed) runs is pinned here, so that a change to the
tasks or the seeding cannot pass silently (the tests recompute it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adbench.envs import get_family
from adbench.envs.base import EnvFamily, stable_permutation
from adbench.errors import AdbenchError

REFERENCE_POLICIES = ("random", "optimal", "source")
"""The reference policies every benchmark scores (and normalises by)."""


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
    runs_fingerprint: str  # of benchmark_runs(self): see Runs.fingerprint()
    seed: int = 0  # the base seed every run's seed derives from
    decoding: str = "sample"
    prompt_episodes: int = 0  # no demonstrations: every run starts from an empty context

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

    def with_check_splits(self, extra: Sequence[str]) -> Benchmark:
        """This benchmark with the family's splits ``extra`` played too and reported beside
        its own, not scored: ``train`` shows how far returns on held-out tasks fall from
        those on the tasks a model was trained on. Raises AdbenchError naming a split the
        family lacks or the benchmark already plays."""
        for split in extra:
            if split not in self.family.split_names:
                raise AdbenchError(
                    f"--check-splits {split}: {self.family.name} has no such split; its "
                    f"splits are {', '.join(self.family.split_names)}"
                )
            if split in self.splits or list(extra).count(split) > 1:
                raise AdbenchError(
                    f"--check-splits {split}: {self.label()} plays it already or it is given "
                    f"twice (the benchmark's splits: {', '.join(self.splits)})"
                )
        return replace(self, check_splits=self.check_splits + tuple(extra))

    def deviations(
        self,
        *,
        episodes: int,
        seeds: int,
        seed: int,
        decoding: str,
        prompt_episodes: int,
        check_splits: Sequence[str] = (),
    ) -> list[str]:
        """The settings of a run that differ from this protocol, each as ``--option value
        (the benchmark's value)``; empty for a standard run, the only kind that is ranked."""
        found = []
        if check_splits:
            found.append(f"--check-splits {','.join(check_splits)} (reported, not scored)")
        for option, value, standard in (
            ("--episodes", episodes, self.episodes),
            ("--seeds", seeds, self.seeds),
            ("--seed", seed, self.seed),
            ("--prompt-episodes", prompt_episodes, self.prompt_episodes),
        ):
            if value != standard:
                found.append(f"{option} {value} (the benchmark's: {standard})")
        if decoding != self.decoding:
            found.append(f"decoding {decoding} (the benchmark's: {self.decoding})")
        return found

    def label(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass
class Runs:
    """The runs of a benchmark evaluation, in a fixed order (split, task, seed)."""

    split: NDArray[np.str_]
    task_index: NDArray[np.int64]  # index of the task within its split
    task_key: NDArray[np.int64]  # task id unique over splits (for stratification)
    tasks: NDArray[Any]
    seeds: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.seeds)

    def select(self, rows: NDArray[np.int64]) -> Runs:
        return Runs(
            self.split[rows],
            self.task_index[rows],
            self.task_key[rows],
            self.tasks[rows],
            self.seeds[rows],
        )

    def fingerprint(self) -> str:
        """16 hex characters identifying exactly which tasks were played with which seeds:
        sha256 over every run's split, task index, task parameters and seed."""
        digest = hashlib.sha256()
        for split, index, task, seed in zip(
            self.split, self.task_index, self.tasks, self.seeds, strict=True
        ):
            row = [str(split), int(index), np.asarray(task).tolist(), int(seed)]
            digest.update(json.dumps(row, separators=(",", ":")).encode() + b"\n")
        return digest.hexdigest()[:16]


def benchmark_runs(benchmark: Benchmark, seeds: int | None = None, seed: int | None = None) -> Runs:
    """Every evaluated task of every split x ``seeds`` evaluation seeds (default: the
    benchmark's), each run's seed derived from the base ``seed`` (default: the benchmark's)."""
    seeds = benchmark.seeds if seeds is None else seeds
    seed = benchmark.seed if seed is None else seed
    split_names, task_indices, task_keys, tasks, run_seeds = [], [], [], [], []
    key = 0
    for split_number, split in enumerate(benchmark.splits):
        split_tasks = benchmark.tasks(split)
        for t, index in enumerate(benchmark.task_indices(split)):
            for s in range(seeds):
                split_names.append(split)
                task_indices.append(int(index))
                task_keys.append(key + t)
                tasks.append(split_tasks[t])
                state = np.random.SeedSequence([seed, split_number, int(index), s])
                run_seeds.append(int(state.generate_state(1)[0]) % 2**31)
        key += len(split_tasks)
    return Runs(
        np.array(split_names),
        np.array(task_indices),
        np.array(task_keys),
        np.stack(tasks),
        np.array(run_seeds, dtype=np.int64),
    )


def runs_from_records(
    benchmark: Benchmark, split: NDArray[Any], task_index: NDArray[Any], seeds: NDArray[Any]
) -> Runs:
    """The runs named by stored (split, task index, seed) rows, with their tasks looked up
    in the benchmark's splits; raises AdbenchError on a split or task it does not have."""
    split = np.asarray(split).astype(str)
    task_index = np.asarray(task_index, dtype=np.int64)
    unknown = sorted(set(split) - set(benchmark.splits))
    if unknown:
        raise AdbenchError(f"{benchmark.label()} has no split {unknown[0]!r}")
    tasks, task_key = [], []
    offset = {}
    key = 0
    for name in benchmark.splits:
        offset[name] = key
        key += len(benchmark.family.split(name))
    for name, index in zip(split, task_index, strict=True):
        split_tasks = benchmark.family.split(name)
        if not 0 <= index < len(split_tasks):
            raise AdbenchError(f"{benchmark.label()} split {name} has no task {index}")
        tasks.append(split_tasks[index])
        task_key.append(offset[name] + int(index))
    return Runs(
        split, task_index, np.array(task_key), np.stack(tasks), np.asarray(seeds, dtype=np.int64)
    )


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
            runs_fingerprint="7a575d1c143634c2",
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
            runs_fingerprint="5ccac7d1201303ce",
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
            runs_fingerprint="05f9f671b6806cc7",
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
            runs_fingerprint="1c2cea36959a8e79",
        ),
        Benchmark(
            name="watermaze",
            # 1.2: the source reference is the dataset's source again, dqn (1.1:
            # pose-q-learning, the dataset's source then; 1.0: dqn, no entry scored).
            version="1.2",
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
            runs_fingerprint="4bf1cc42629fec3e",
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
