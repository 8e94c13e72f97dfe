"""A history dataset in other offline-RL tools' formats: Minari.

``adbench datasets export ID --format minari --output DIR`` writes the dataset as a Minari
dataset (``adbench/<name>/histories-v0``, or ``.../expert-v0`` for the ``expert`` config)
under ``DIR`` (Minari's ``MINARI_DATASETS_PATH``), which ``minari.load_dataset`` opens:

* one Minari episode per episode of the histories, in order (history, then episode), with
  ``options={"task": [...]}`` (the task it was played on: the env's ``reset`` option) and
  infos ``history_id``, ``episode`` (its index in the learning history) and ``task_id``;
* the environment spec of the family's Gymnasium env, so ``recover_environment()`` makes
  it (with ``import adbench``, which registers it);
* ``ref_min_score`` / ``ref_max_score``: the random and optimal returns averaged over the
  dataset's tasks (the card's references), so ``minari.get_normalized_score`` is the
  benchmark's normalisation.

Minari stores ``T + 1`` observations per episode: the histories record the observation
before each of the ``T`` steps, and the one after the last step follows from the grids'
deterministic moves (the bandit's is its constant observation). The Watermaze's final
frame is not recorded and cannot be recomputed from frames, so it is not exported.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adbench.envs import _grid, get_family
from adbench.envs.base import EnvFamily
from adbench.errors import AdbenchError
from adbench.histories.loading import load_dataset, read_metadata
from adbench.histories.reader import HistoryArrays
from adbench.hub_revisions import find_revision, revision_dir
from adbench.hub_storage import is_repo_dir, local_repo_dir, repo_revision, validate_repo_id

GRID_FAMILIES = ("darkroom", "darkroom-hard", "key-to-door")


def check_exportable(family: EnvFamily) -> None:
    """Refuse a family whose episodes' final observations cannot be known."""
    if family.name != "bandit" and family.name not in GRID_FAMILIES:
        raise AdbenchError(
            f"{family.name} cannot be exported to Minari: its episodes' final observations "
            "are not recorded and do not follow from the recorded ones"
        )


def final_observations(
    family: EnvFamily, last_observations: NDArray[Any], last_actions: NDArray[np.int64]
) -> NDArray[Any]:
    """The observation after each episode's last step ``[E, *obs_shape]``."""
    check_exportable(family)
    if family.name == "bandit":
        return np.zeros_like(last_observations)
    size = int(family.observation_space.nvec[0])
    return _grid.move(last_observations.astype(np.int64), last_actions, size)


@contextlib.contextmanager
def _minari_root(output: Path) -> Iterator[None]:
    """Minari writes under ``$MINARI_DATASETS_PATH``: point it at ``output`` for the call."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(output)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def _local_dataset(repo_id: str, hub: str | Path | None, revision: str | None) -> Path:
    """The dataset's directory in the local hub (an export never downloads)."""
    main = local_repo_dir(repo_id, "dataset", hub)
    if revision is None:
        if not is_repo_dir(main):
            raise AdbenchError(
                f"dataset {repo_id} is not in the local hub ({main}): build it "
                "(adbench datasets build) or pull it (adbench datasets pull) first"
            )
        return main
    if is_repo_dir(main) and repo_revision(main).startswith(revision.lower()):
        return main
    recorded = find_revision(repo_id, "dataset", revision, hub)
    if recorded is None:
        raise AdbenchError(
            f"dataset {repo_id} has no revision {revision!r} in the local hub: pull it first "
            f"(adbench datasets pull {repo_id} --revision {revision})"
        )
    return revision_dir(repo_id, "dataset", recorded, hub)


def minari_dataset_id(name: str, config: str) -> str:
    return f"adbench/{name}/{'histories' if config == 'default' else config}-v0"


def export_minari(
    repo_id: str,
    output: str | Path,
    config: str = "default",
    hub: str | Path | None = None,
    revision: str | None = None,
) -> Path:
    """Write the dataset ``repo_id`` (config ``default`` or ``expert``) as a Minari dataset
    under ``output``; returns the Minari dataset's directory. Refuses to overwrite one."""
    try:
        import minari
    except ImportError:
        raise AdbenchError(
            "exporting to Minari needs the minari package: pip install 'adbench[minari]'"
        ) from None
    if config not in ("default", "expert"):
        raise AdbenchError(f"unknown config {config!r}: export 'default' or 'expert'")
    validate_repo_id(repo_id)
    repo = _local_dataset(repo_id, hub, revision)
    metadata = read_metadata(repo)
    family = get_family(metadata["env"]["name"])
    check_exportable(family)  # before anything is read
    dataset_id = minari_dataset_id(metadata["dataset"], config)
    output = Path(output).absolute()
    target = output / dataset_id
    if target.exists():
        raise AdbenchError(f"{target} exists: remove it or export to another --output")

    arrays = HistoryArrays.from_dataset(load_dataset(str(repo), name=config, split="train"))
    tasks_table = load_dataset(str(repo), name="tasks")
    task_of_id = {}
    for split in tasks_table.values():
        for row in split:
            task_of_id[int(row["task_id"])] = family.validate_tasks([row["params"]])[0]
    horizon = family.episode_length
    episodes = arrays.num_steps // horizon
    observations = arrays.observations.reshape(episodes, horizon, *arrays.observation_shape)
    actions = arrays.actions.reshape(episodes, horizon)
    rewards = arrays.rewards.reshape(episodes, horizon)
    first = np.arange(episodes) * horizon
    final = final_observations(family, observations[:, -1], actions[:, -1])
    buffers = []
    for e in range(episodes):
        task = task_of_id[int(arrays.task_id[first[e]])]
        # Lists, not 1-D arrays: Minari 0.5's Arrow storage cannot read back a 1-D array info.
        ids = {
            "history_id": [int(arrays.history_id[first[e]])] * (horizon + 1),
            "episode": [int(arrays.episode[first[e]])] * (horizon + 1),
            "task_id": [int(arrays.task_id[first[e]])] * (horizon + 1),
        }
        buffers.append(
            minari.data_collector.EpisodeBuffer(
                id=e,
                options={"task": task.tolist()},
                observations=np.concatenate([observations[e], final[e][None]]),
                actions=actions[e],
                rewards=rewards[e].astype(np.float64),
                terminations=np.zeros(horizon, dtype=np.bool_),
                truncations=np.arange(horizon) == horizon - 1,
                infos=ids,
            )
        )
    curve = metadata["source_learning_curve"]
    import gymnasium as gym

    with _minari_root(output), warnings.catch_warnings():
        # Minari warns that no eval env is given (the env is the one that made the data).
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=buffers,
            env=gym.spec(family.env_id),
            algorithm_name=metadata["source"]["name"],
            author="adbench",
            author_email="https://github.com/ad-bench/adbench/issues",
            code_permalink="https://github.com/ad-bench/adbench",
            ref_min_score=float(curve["random_return"]),
            ref_max_score=float(curve["optimal_return"]),
            description=(
                f"adbench {repo_id} ({config}): learning histories of "
                f"{metadata['source']['name']} on {family.env_id}; rebuild: "
                f"{metadata['build_command']}"
            ),
            requirements=["adbench"],
            data_format="arrow",  # pyarrow is a dependency already (h5py is not)
        )
    return target
