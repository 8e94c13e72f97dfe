"""``adbench datasets build``: run a source algorithm and write its learning histories as
a Hugging Face dataset repo in the local hub.

A build runs its learners in shards (``histories_per_shard`` learners at a time, each
shard with its own seed derived from the build seed), and writes each shard's files
atomically as soon as it is done, into a staging directory beside the final repo. An
interrupted build resumes from its completed shards and produces the same bytes as an
uninterrupted one; the repo appears under its real name only once everything, card and
checksums included, is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from adbench.distributed import Processes
from adbench.envs import get_family
from adbench.envs.base import EnvFamily, fingerprint, stable_permutation
from adbench.errors import AdbenchError
from adbench.fileio import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    check_writable_dir,
    exclusive_lock,
    sha256_file,
)
from adbench.histories.schema import hf_split_name, step_features, steps_table, task_features
from adbench.histories.specs import DEFAULT_ORG, BuildConfig, resolve_config
from adbench.hub import local_repo_dir
from adbench.hub_revisions import record_published
from adbench.provenance import provenance
from adbench.sources import get_source

METADATA_FILE = "adbench.json"
METADATA_VERSION = 1
CURVE_FILE = "learning_curve.png"
_BUILD_DIR = ".build"  # inside the staging dir; never part of the published repo

ProgressCallback = Callable[[int], None]  # called with the number of episodes just played


def select_tasks(family: EnvFamily, count: int) -> tuple[NDArray[np.int64], NDArray[Any]]:
    """A fixed subset of ``count`` train tasks, spread over the split (not its first rows):
    their ids in the ``tasks`` config (train tasks come first there) and their values."""
    train = family.split(family.train_split)
    if count > len(train):
        raise AdbenchError(
            f"--tasks {count} is more than the {len(train)} tasks of {family.name}'s "
            f"{family.train_split} split: use at most {len(train)}"
        )
    order = stable_permutation(f"adbench/{family.name}/task-order-v0", len(train))
    ids = np.sort(order[:count])
    return ids.astype(np.int64), train[ids]


def shard_seed(seed: int, shard: int) -> int:
    return int(np.random.SeedSequence([seed, shard]).generate_state(1)[0])


def build_command(config: BuildConfig) -> str:
    """The exact command that rebuilds these bytes."""
    parts = [
        "adbench datasets build",
        config.name,
        f"--source {config.source}",
        f"--tasks {config.tasks}",
        f"--learners {config.learners}",
        f"--episodes {config.episodes}",
        f"--every {config.every}",
        f"--expert-episodes {config.expert_episodes}",
        f"--seed {config.seed}",
        f"--histories-per-shard {config.histories_per_shard}",
    ]
    parts += [f"--source-arg {k}={v}" for k, v in sorted(config.source_hyperparameters.items())]
    return " ".join(parts)


def shard_name(prefix: str, shard: int, total: int) -> str:
    return f"{prefix}/train-{shard:05d}-of-{total:05d}.parquet"


@dataclass
class ShardResult:
    returns: NDArray[np.float32]  # [histories, episodes]: every learning episode's return
    rows: int
    expert_rows: int


ROW_GROUP_BYTES = 32 * 2**20


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write atomically, with row groups of about ``ROW_GROUP_BYTES``: Parquet keeps levels
    for every leaf of a nested list, so a 72x96x3 frame is 20,736 leaves, and row groups
    sized by rows alone would take gigabytes of memory to write."""
    bytes_per_row = max(1, table.nbytes // max(1, table.num_rows))
    rows = int(min(64 * 1024, max(256, ROW_GROUP_BYTES // bytes_per_row)))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=rows)


def _episodes_to_table(
    family: EnvFamily, episodes: list[Any], first_history: int, task_ids: NDArray[np.int64]
) -> pa.Table:
    """[E episode batches of L learners] -> rows sorted by (history, episode, step)."""
    num_learners, horizon = episodes[0].actions.shape
    count = len(episodes)
    obs = np.stack([e.observations for e in episodes], axis=1)  # [L, E, T, ...]
    actions = np.stack([e.actions for e in episodes], axis=1)
    rewards = np.stack([e.rewards for e in episodes], axis=1)
    episode_index = np.array([e.episode for e in episodes], dtype=np.int32)
    n = num_learners * count * horizon
    return steps_table(
        step_features(family),
        history_id=np.repeat(
            np.arange(first_history, first_history + num_learners), count * horizon
        ),
        task_id=np.repeat(task_ids, count * horizon),
        episode=np.tile(np.repeat(episode_index, horizon), num_learners),
        step=np.tile(np.arange(horizon, dtype=np.int16), num_learners * count),
        observation=obs.reshape(n, *obs.shape[3:]),
        action=actions.reshape(n),
        reward=rewards.reshape(n),
        truncated=np.tile(np.arange(horizon) == horizon - 1, num_learners * count),
    )


def run_shard(
    config: BuildConfig,
    family: EnvFamily,
    shard: int,
    task_ids: NDArray[np.int64],
    tasks: NDArray[Any],
    staging: Path,
    on_episode: ProgressCallback | None = None,
) -> ShardResult:
    """Run the learners of one shard and write its ``data`` and ``expert`` files."""
    first = shard * config.histories_per_shard
    last = min(first + config.histories_per_shard, config.num_histories)
    histories = np.arange(first, last)
    history_task = histories // config.learners  # learners of one task are adjacent
    source = get_source(config.source, **config.source_hyperparameters)
    kept, expert, returns = [], [], []
    for batch in source.learn(
        family,
        tasks[history_task],
        config.episodes,
        seed=shard_seed(config.seed, shard),
        expert_episodes=config.expert_episodes,
    ):
        if batch.expert:
            expert.append(batch.with_observations(family))
        else:
            returns.append(batch.returns)
            if batch.episode % config.every == 0:
                kept.append(batch.with_observations(family))
        if on_episode:
            on_episode(1)
    data = _episodes_to_table(family, kept, first, task_ids[history_task])
    _write_parquet(data, staging / shard_name("data", shard, config.num_shards))
    expert_rows = 0
    if expert:
        expert_table = _episodes_to_table(family, expert, first, task_ids[history_task])
        _write_parquet(expert_table, staging / shard_name("expert", shard, config.num_shards))
        expert_rows = expert_table.num_rows
    return ShardResult(np.stack(returns, axis=1).astype(np.float32), data.num_rows, expert_rows)


def write_tasks_config(family: EnvFamily, staging: Path) -> dict[str, int]:
    """Every task of every split, with its reference returns; task ids number them in
    split order, the train split first."""
    features = task_features(family)
    splits = [family.train_split] + [s for s in family.split_names if s != family.train_split]
    next_id, counts = 0, {}
    for split in splits:
        tasks = family.split(split)
        n = len(tasks)
        table = pa.Table.from_arrays(
            [
                pa.array(np.arange(next_id, next_id + n), pa.int32()),
                pa.array([split] * n, pa.string()),
                pa.array(np.arange(n), pa.int32()),
                pa.FixedSizeListArray.from_arrays(
                    pa.array(tasks.astype(np.float64).ravel()), len(family.task_fields)
                ),
                pa.array(family.optimal_return(tasks)),
                pa.array(family.random_return(tasks)),
            ],
            schema=features.arrow_schema,
        )
        _write_parquet(table, staging / "tasks" / f"{hf_split_name(split)}.parquet")
        counts[split] = n
        next_id += n
    return counts


def plan_build(
    name: str, hub: str | Path | None, org: str, force: bool, **options: Any
) -> tuple[BuildConfig, EnvFamily, Any, NDArray[np.int64], NDArray[Any], Path]:
    """Check everything a build needs before any work starts; bad options fail here."""
    config = resolve_config(name, **options)
    family = get_family(config.env)
    source = get_source(config.source, **config.source_hyperparameters)
    source.check_family(family)
    task_ids, tasks = select_tasks(family, config.tasks)
    final = local_repo_dir(f"{org}/{name}", "dataset", hub)
    check_writable_dir(final.parent, "the local hub")  # not after minutes of learning
    if final.exists() and not force:
        raise AdbenchError(
            f"{final} already exists: pass --force to rebuild it, or --hub to build elsewhere"
        )
    return config, family, source, task_ids, tasks, final


def build_dataset(
    name: str,
    *,
    hub: str | Path | None = None,
    org: str = DEFAULT_ORG,
    force: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_episode: ProgressCallback | None = None,
    stop_after_shards: int | None = None,
    **options: Any,
) -> Path:
    """Build dataset ``name`` (see :data:`adbench.histories.specs.DATASETS`) into the hub.

    ``options`` override the spec's defaults (tasks, learners, episodes, every, source,
    seed, expert_episodes, histories_per_shard, source_hyperparameters). ``on_start`` is
    told the total number of episodes to play and ``on_episode`` each one played, for a
    progress bar. ``stop_after_shards`` stops after that many new shards, as an
    interruption would (used to test resuming). Returns the repo directory.
    """
    config, family, source, task_ids, tasks, final = plan_build(name, hub, org, force, **options)
    processes = Processes.current()
    # One build of a repo at a time: two would write the same staging folder. The processes
    # of one distributed build share it: the main one holds the lock for them.
    lock = final.with_name(f".{final.name}.lock")
    with (
        exclusive_lock(lock, busy=f"the build of {org}/{name}")
        if processes.is_main
        else contextlib.nullcontext()
    ):
        return _build_locked(
            config, family, source, task_ids, tasks, final, force, processes, on_start,
            on_episode, stop_after_shards,
        )  # fmt: skip


def _build_locked(
    config: BuildConfig,
    family: EnvFamily,
    source: Any,
    task_ids: NDArray[np.int64],
    tasks: NDArray[Any],
    final: Path,
    force: bool,
    processes: Processes,
    on_start: Callable[[int], None] | None,
    on_episode: ProgressCallback | None,
    stop_after_shards: int | None,
) -> Path:
    repo_id = f"{final.parent.name}/{final.name}"
    staging = final.with_name(f".{final.name}.partial")
    state_dir = staging / _BUILD_DIR
    state_file = state_dir / "build.json"
    if processes.is_main:
        if staging.exists():
            previous = json.loads(state_file.read_text()) if state_file.exists() else None
            if force or previous != config.to_dict():
                if not force and previous is not None:
                    raise AdbenchError(
                        f"an unfinished build of {repo_id} with other options is at {staging}: "
                        "rerun with the same options to resume it, or pass --force to start over"
                    )
                shutil.rmtree(staging)
        state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(state_file, config.to_dict())
    processes.wait_for_everyone()

    started = time.time()
    per_shard = config.episodes + config.expert_episodes
    # Under `accelerate launch`, shard s is built by process s % count (machines sharing the
    # hub's file system share the staging folder); the main one assembles the repo after.
    my_shards = range(processes.index, config.num_shards, processes.count)
    if on_start:
        on_start(len(my_shards) * per_shard)
    new_shards, resumed = 0, 0
    for shard in my_shards:
        done_file = state_dir / f"shard-{shard:05d}.json"
        returns_file = state_dir / f"shard-{shard:05d}-returns.npy"
        if done_file.exists() and returns_file.exists():
            record = json.loads(done_file.read_text())
            if all(
                (staging / f).exists() and sha256_file(staging / f) == h
                for f, h in record["files"].items()
            ):
                resumed += 1
                if on_episode:
                    on_episode(per_shard)
                continue
        if stop_after_shards is not None and new_shards >= stop_after_shards:
            raise AdbenchError(f"build of {repo_id} stopped after {new_shards} shard(s) as asked")
        result = run_shard(config, family, shard, task_ids, tasks, staging, on_episode)
        with atomic_path(returns_file) as tmp, tmp.open("wb") as handle:
            np.save(handle, result.returns)
        files = [shard_name("data", shard, config.num_shards)]
        if result.expert_rows:
            files.append(shard_name("expert", shard, config.num_shards))
        atomic_write_json(
            done_file,
            {
                "rows": result.rows,
                "expert_rows": result.expert_rows,
                "files": {f: sha256_file(staging / f) for f in files},
            },
        )
        new_shards += 1
    resumed = processes.total(resumed)  # also waits for every process's shards
    if processes.is_main:
        _assemble(config, family, source, task_ids, tasks, final, staging, started, resumed)
    processes.wait_for_everyone()  # every process returns once the repo is in place
    return final


def _assemble(
    config: BuildConfig,
    family: EnvFamily,
    source: Any,
    task_ids: NDArray[np.int64],
    tasks: NDArray[Any],
    final: Path,
    staging: Path,
    started: float,
    resumed: int,
) -> None:
    """Write what follows from the shards (tasks, curve, card, checksums) and move the
    staging folder into place."""
    from adbench.histories.card import render_card, write_learning_curve

    repo_id = f"{final.parent.name}/{final.name}"
    state_dir = staging / _BUILD_DIR
    # Everything below is a pure function of the shards: resumed or not, same bytes.
    records = [
        json.loads((state_dir / f"shard-{s:05d}.json").read_text())
        for s in range(config.num_shards)
    ]
    returns = np.concatenate(
        [np.load(state_dir / f"shard-{s:05d}-returns.npy") for s in range(config.num_shards)]
    )
    task_counts = write_tasks_config(family, staging)
    history_tasks = tasks[np.arange(config.num_histories) // config.learners]
    # Computed once: Watermaze's random return is a Monte Carlo estimate.
    optimal_mean = float(family.optimal_return(history_tasks).mean())
    random_mean = float(family.random_return(history_tasks).mean())
    write_learning_curve(returns, optimal_mean, random_mean, config, staging / CURVE_FILE)
    data_files = sorted(
        str(p.relative_to(staging))
        for p in staging.rglob("*")
        if p.is_file() and not p.relative_to(staging).parts[0].startswith(".")
    )
    metadata = {
        "metadata_version": METADATA_VERSION,
        "repo_id": repo_id,
        "dataset": config.name,
        "config": config.to_dict(),
        "build_command": build_command(config),
        "env": {
            "name": family.name,
            "id": family.env_id,
            "episode_length": family.episode_length,
            "num_actions": family.num_actions,
            "action_names": list(family.action_names),
            "observation_space": repr(family.observation_space),
            "task_fields": list(family.task_fields),
            "train_split": family.train_split,
            "test_splits": list(family.test_splits),
            "split_fingerprints": {s: fingerprint(family.split(s)) for s in family.split_names},
        },
        "source": {
            "name": config.source,
            "version": source.version,
            "hyperparameters": source.config.to_dict(),
        },
        "train_task_ids": task_ids.tolist(),
        "counts": {
            "histories": config.num_histories,
            "tasks": config.tasks,
            "learning_episodes_per_history": config.episodes,
            "kept_episodes_per_history": config.kept_episodes,
            "episodes": config.num_histories * config.kept_episodes,
            "transitions": sum(r["rows"] for r in records),
            "expert_episodes": config.num_histories * config.expert_episodes,
            "expert_transitions": sum(r["expert_rows"] for r in records),
            "source_transitions": config.num_histories
            * (config.episodes + config.expert_episodes)
            * family.episode_length,
            "tasks_per_split": task_counts,
        },
        "source_learning_curve": {
            "mean_return_per_episode": np.round(returns.mean(axis=0), 4).tolist(),
            "optimal_return": round(optimal_mean, 4),
            "random_return": round(random_mean, 4),
        },
        "checksums": {f: sha256_file(staging / f) for f in data_files},
        "provenance": provenance(),
    }
    # The build's wall time differs between runs: it lives outside the checksummed files.
    metadata["build"] = {
        "seconds": round(time.time() - started, 1),
        "resumed_shards": resumed,
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
    }
    atomic_write_json(staging / METADATA_FILE, metadata)
    atomic_write_text(staging / "README.md", render_card(metadata))
    shutil.rmtree(state_dir)
    if final.exists():
        record_published(final)  # the revision a rebuild replaces stays resolvable by its sha
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, final)
    record_published(final, f"adbench datasets build: {metadata['build_command']}")
