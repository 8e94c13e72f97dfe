"""The training-side reader: a history dataset as contiguous numpy arrays, and a sampler of
random context windows.

Columns come straight from the Arrow table that ``datasets`` memory-maps (one conversion
per column, no Python loop over rows); a window batch is one fancy-indexing gather per
column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from adbench.errors import AdbenchError
from adbench.histories.schema import column_to_numpy

NO_ACTION = -1  # the "previous action" of a history's first step


@dataclass
class HistoryArrays:
    """Every step of a history dataset, sorted by history, episode and step.

    ``offsets[h]:offsets[h + 1]`` are the rows of history ``h`` (histories numbered in
    order of appearance). ``prev_actions``/``prev_rewards`` are the previous step's action
    and reward within the same history (``NO_ACTION`` and 0 at its first step): what a
    model sees beside each observation.
    """

    history_id: NDArray[np.int32]
    task_id: NDArray[np.int32]
    episode: NDArray[np.int32]
    step: NDArray[np.int16]
    observations: NDArray[Any]
    actions: NDArray[np.int64]
    rewards: NDArray[np.float32]
    prev_actions: NDArray[np.int64]
    prev_rewards: NDArray[np.float32]
    offsets: NDArray[np.int64]

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    @property
    def num_histories(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> NDArray[np.int64]:
        return np.diff(self.offsets)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.observations.shape[1:])

    def history(self, index: int) -> dict[str, NDArray[Any]]:
        """The steps of history ``index`` (views, no copy)."""
        if not 0 <= index < self.num_histories:
            raise AdbenchError(f"history {index} out of range: there are {self.num_histories}")
        rows = slice(int(self.offsets[index]), int(self.offsets[index + 1]))
        return {
            "observations": self.observations[rows],
            "actions": self.actions[rows],
            "rewards": self.rewards[rows],
            "episode": self.episode[rows],
            "step": self.step[rows],
        }

    @classmethod
    def from_table(cls, table: pa.Table) -> HistoryArrays:
        missing = {"history_id", "observation", "action", "reward", "episode", "step"} - set(
            table.column_names
        )
        if missing:
            raise AdbenchError(f"not a history dataset: columns {sorted(missing)} are missing")
        obs_type = table.schema.field("observation").type
        shape: list[int] = []
        while pa.types.is_fixed_size_list(obs_type):
            shape.append(obs_type.list_size)
            obs_type = obs_type.value_type
        history_id = column_to_numpy(table.column("history_id"), ()).astype(np.int32, copy=False)
        actions = column_to_numpy(table.column("action"), ()).astype(np.int64)
        rewards = column_to_numpy(table.column("reward"), ()).astype(np.float32, copy=False)
        if len(history_id) == 0:
            raise AdbenchError("the history dataset has no rows")
        starts = np.flatnonzero(np.diff(history_id)) + 1
        offsets = np.concatenate([[0], starts, [len(history_id)]]).astype(np.int64)
        if len(np.unique(history_id[offsets[:-1]])) != len(offsets) - 1:
            raise AdbenchError(
                "history rows are not contiguous: the dataset is not sorted by history"
            )
        first = np.zeros(len(actions), dtype=bool)
        first[offsets[:-1]] = True
        prev_actions = np.roll(actions, 1)
        prev_actions[first] = NO_ACTION
        prev_rewards = np.roll(rewards, 1)
        prev_rewards[first] = 0.0
        return cls(
            history_id=history_id,
            task_id=column_to_numpy(table.column("task_id"), ()).astype(np.int32, copy=False),
            episode=column_to_numpy(table.column("episode"), ()).astype(np.int32, copy=False),
            step=column_to_numpy(table.column("step"), ()).astype(np.int16, copy=False),
            observations=column_to_numpy(table.column("observation"), tuple(shape)),
            actions=actions,
            rewards=rewards,
            prev_actions=prev_actions,
            prev_rewards=prev_rewards,
            offsets=offsets,
        )

    @classmethod
    def from_dataset(cls, dataset: Any) -> HistoryArrays:
        """From a ``datasets.Dataset`` (its memory-mapped Arrow table; no row loop)."""
        if getattr(dataset, "_indices", None) is not None:
            dataset = dataset.flatten_indices()  # a shuffled/selected view: materialise order
        return cls.from_table(dataset.data.table)

    @classmethod
    def from_repo(
        cls, repo_id_or_path: str | Path, config: str = "default", hub: str | Path | None = None
    ) -> HistoryArrays:
        """Load (and verify) a history dataset from the hub, then convert it."""
        from adbench.histories.loading import load_dataset

        return cls.from_dataset(
            load_dataset(str(repo_id_or_path), name=config, split="train", hub=hub)
        )


@dataclass
class WindowBatch:
    """``batch_size`` windows of ``context_steps`` consecutive steps of one history each."""

    observations: NDArray[Any]  # [B, c, *obs_shape]
    actions: NDArray[np.int64]  # [B, c]: the targets
    rewards: NDArray[np.float32]  # [B, c]
    prev_actions: NDArray[np.int64]  # [B, c]
    prev_rewards: NDArray[np.float32]  # [B, c]
    step: NDArray[np.int16]  # [B, c]: step within the episode (0 = episode start)
    rows: NDArray[np.int64]  # [B, c]: the dataset rows gathered


class WindowSampler:
    """Random windows of ``context_steps`` consecutive steps, each inside one history,
    uniform over every valid window position of the dataset. Seeded."""

    def __init__(
        self, arrays: HistoryArrays, context_steps: int, batch_size: int, seed: int = 0
    ) -> None:
        if context_steps < 1 or batch_size < 1:
            raise AdbenchError("context_steps and batch_size must be at least 1")
        self.arrays = arrays
        self.context_steps = context_steps
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        positions = np.maximum(arrays.lengths - context_steps + 1, 0)
        if positions.sum() == 0:
            raise AdbenchError(
                f"no history has {context_steps} steps (the longest has "
                f"{int(arrays.lengths.max())}): use a shorter context"
            )
        self._cum_positions = np.cumsum(positions)
        self._offset = np.arange(context_steps)

    @property
    def num_windows(self) -> int:
        return int(self._cum_positions[-1])

    def window_rows(self, window_index: NDArray[np.int64]) -> NDArray[np.int64]:
        """Window indices in ``[0, num_windows)`` -> dataset rows ``[B, c]``."""
        history = np.searchsorted(self._cum_positions, window_index, side="right")
        before = np.where(history > 0, self._cum_positions[history - 1], 0)
        starts = self.arrays.offsets[history] + (window_index - before)
        return starts[:, None] + self._offset

    def sample(self) -> WindowBatch:
        rows = self.window_rows(self.rng.integers(0, self.num_windows, size=self.batch_size))
        a = self.arrays
        return WindowBatch(
            observations=a.observations[rows],
            actions=a.actions[rows],
            rewards=a.rewards[rows],
            prev_actions=a.prev_actions[rows],
            prev_rewards=a.prev_rewards[rows],
            step=a.step[rows],
            rows=rows,
        )

    def __iter__(self) -> WindowSampler:
        return self

    def __next__(self) -> WindowBatch:
        return self.sample()
