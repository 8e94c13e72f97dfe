"""The on-disk schema of a history dataset: one row per environment step.

Rows are sorted by history, then episode, then step, so every learning history is one
contiguous run of rows. Observations keep the env's shape as nested fixed-size lists
(Watermaze frames are ``72 x 96 x 3`` uint8): fixed-size lists carry no offsets, so the
bytes on disk are the pixels and a column converts to numpy without a copy.
"""

from __future__ import annotations

from typing import Any

import datasets
import gymnasium as gym
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from adbench.envs.base import EnvFamily
from adbench.errors import AdbenchError

STEP_COLUMNS = (
    "history_id",
    "task_id",
    "episode",
    "step",
    "observation",
    "action",
    "reward",
    "terminated",
    "truncated",
)


def observation_shape_dtype(space: gym.Space[Any]) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Per-step observation shape and dtype as stored: () for Discrete, (k,) for MultiDiscrete."""
    if isinstance(space, gym.spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return tuple(space.shape), np.dtype(np.int64)
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape), np.dtype(space.dtype)
    raise AdbenchError(f"observation space {space} has no history-dataset schema")


def _value_feature(shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
    feature: Any = datasets.Value(str(dtype))
    for size in reversed(shape):
        feature = datasets.List(feature, length=size)
    return feature


def step_features(family: EnvFamily) -> datasets.Features:
    shape, dtype = observation_shape_dtype(family.observation_space)
    return datasets.Features(
        {
            "history_id": datasets.Value("int32"),
            "task_id": datasets.Value("int32"),
            "episode": datasets.Value("int32"),
            "step": datasets.Value("int16"),
            "observation": _value_feature(shape, dtype),
            "action": datasets.Value("int32"),
            "reward": datasets.Value("float32"),
            "terminated": datasets.Value("bool"),
            "truncated": datasets.Value("bool"),
        }
    )


def task_features(family: EnvFamily) -> datasets.Features:
    return datasets.Features(
        {
            "task_id": datasets.Value("int32"),
            "split": datasets.Value("string"),
            "index_in_split": datasets.Value("int32"),
            "params": datasets.List(datasets.Value("float64"), length=len(family.task_fields)),
            "optimal_return": datasets.Value("float64"),
            "random_return": datasets.Value("float64"),
        }
    )


def fixed_list_array(values: NDArray[Any]) -> pa.Array:
    """``[N, *shape]`` numpy -> an Arrow array of nested fixed-size lists (no copy of the data)."""
    arr = pa.array(np.ascontiguousarray(values).ravel())
    for size in reversed(values.shape[1:]):
        arr = pa.FixedSizeListArray.from_arrays(arr, size)
    return arr


def column_to_numpy(column: pa.ChunkedArray | pa.Array, shape: tuple[int, ...]) -> NDArray[Any]:
    """Inverse of :func:`fixed_list_array`: an Arrow column -> ``[N, *shape]`` numpy."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    for _ in shape:
        column = column.flatten()
    return column.to_numpy(zero_copy_only=False).reshape(-1, *shape)


def steps_table(
    features: datasets.Features,
    history_id: NDArray[Any],
    task_id: NDArray[Any],
    episode: NDArray[Any],
    step: NDArray[Any],
    observation: NDArray[Any],
    action: NDArray[Any],
    reward: NDArray[Any],
    truncated: NDArray[Any],
) -> pa.Table:
    """A table of steps with ``features``' Arrow schema (its metadata lets ``datasets``
    restore the exact features)."""
    schema = features.arrow_schema
    columns = [
        pa.array(history_id, pa.int32()),
        pa.array(task_id, pa.int32()),
        pa.array(episode, pa.int32()),
        pa.array(step, pa.int16()),
        fixed_list_array(observation) if observation.ndim > 1 else pa.array(observation),
        pa.array(action, pa.int32()),
        pa.array(reward, pa.float32()),
        pa.array(np.zeros(len(truncated), dtype=bool)),
        pa.array(truncated, pa.bool_()),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def hf_split_name(split: str) -> str:
    """Hugging Face split names allow ``\\w+``: ``test-even`` becomes ``test_even``."""
    return split.replace("-", "_")
