"""Tabular Q-learning on the Watermaze's pose, every learner at once.

The paper's Watermaze source is a DQN learning from pixels (``dqn`` here). It is the
cost of a large Watermaze dataset: a convolutional network per learner, trained on every
step's frame. This source learns the same task from the low-dimensional pose instead, and
the dataset records the frames the agent saw at those poses (rendered only for the
episodes it keeps), so a model distilled from it still acts from pixels. What AD distils
is the learning curve; this one rises from the random policy's return (~0.19) to ~0.95
over 400 episodes, gradually, as the DQN's does.

**The learner's state.** The pose ``(x, y, heading)`` is discretised: ``x`` and ``y``
into cells of ``cell_size`` pool radii (20 x 20 over the square around the pool at the
default 0.1, one move long), the heading into ``heading_bins`` sectors (12 at the
default: one per 30 degree turn, so a turn always changes the sector by one). As in
:mod:`adbench.sources.q_learning` (whose loop this is), the learner also keeps a memory of
whether it has been paid this episode, because the platform pays once. Two poses in one
cell and sector share a value, so the learned policy is good, not exact.

Defaults differ from the grids' Q-learning where the Watermaze differs: a step size of
0.3 (a cell's outcome varies with the pose inside it), a discount of 0.95 (the platform
is at most ~10 moves away) and an exploration floor of 0.05.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic.dataclasses import dataclass as args_dataclass

from adbench.envs.base import BatchedEnv, EnvFamily
from adbench.envs.watermaze import POOL_RADIUS, WatermazeBatched
from adbench.sources.base import SourceConfig
from adbench.sources.q_learning import CellCoding, QLearning, QLearningConfig
from adbench.validation import ARGS_CONFIG, Positive, PositiveFloat, StepSize, UnitInterval


@args_dataclass(config=ARGS_CONFIG)
class PoseQLearningConfig(QLearningConfig):
    """Hyperparameters of tabular Q-learning on the discretised Watermaze pose."""

    learning_rate: StepSize = 0.3
    gamma: UnitInterval = 0.95
    epsilon_end: UnitInterval = 0.05
    # Side of a position cell, in pool radii.
    cell_size: PositiveFloat = 0.1
    # Heading sectors (of 360 / heading_bins degrees each).
    heading_bins: Positive = 12


class PoseQLearning(QLearning):
    """Q-learning on the Watermaze from the pose; the episodes carry poses as states."""

    name: ClassVar[str] = "pose-q-learning"
    families: ClassVar[tuple[str, ...]] = ("watermaze",)
    config_cls: ClassVar[type[SourceConfig]] = PoseQLearningConfig
    config: PoseQLearningConfig

    def cell_coding(self, family: EnvFamily) -> CellCoding:
        cell_size, heading_bins = self.config.cell_size, self.config.heading_bins
        cells_per_axis = int(np.ceil(2 * POOL_RADIUS / cell_size))
        sector = 2 * np.pi / heading_bins

        def cell(poses: NDArray[Any]) -> NDArray[np.int64]:
            xy = ((poses[:, :2] + POOL_RADIUS) / cell_size).astype(np.int64)
            xy = np.clip(xy, 0, cells_per_axis - 1)
            heading = (poses[:, 2] / sector).astype(np.int64) % heading_bins
            return (xy[:, 0] * cells_per_axis + xy[:, 1]) * heading_bins + heading

        return CellCoding(cells_per_axis**2 * heading_bins, cell, from_states=True)

    def make_env(self, family: EnvFamily, tasks: NDArray[Any], seed: int) -> BatchedEnv:
        return WatermazeBatched(tasks, seed=seed, render_frames=False)
