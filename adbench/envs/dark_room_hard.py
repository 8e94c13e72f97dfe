"""Dark Room Hard (Laskin et al., 2022): a sparse-reward 17x17 Dark Room.

* Observation: the agent's own cell ``(x, y)``, ``MultiDiscrete([17, 17])``.
* Actions: as Dark Room (``0 up, 1 down, 2 left, 3 right, 4 no-op``).
* Episode: 20 steps from the centre ``(8, 8)``; never terminates early.
* Reward: +1 only on the first step of the episode that ends on the goal; at most 1.
* Task: the goal cell; 289 tasks.
* Splits: ``train`` 231 goals, ``test`` 58 held-out goals (the 65/16 proportion of Dark
  Room, about 80/20), fixed.
* Optimal return: 1 for every goal (the farthest is 16 steps away).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from adbench.envs import _grid
from adbench.envs.base import AdbenchEnv, BatchedEnv, EnvFamily

SIZE = 17
EPISODE_LENGTH = 20
CENTRE = np.array([SIZE // 2, SIZE // 2], dtype=np.int64)
NUM_TEST_GOALS = 58


def optimal_return(tasks: NDArray[np.int64]) -> NDArray[np.float64]:
    steps = _grid.steps_to_stand_on(_grid.manhattan(tasks, CENTRE))
    return (steps <= EPISODE_LENGTH).astype(np.float64)


def random_return(tasks: NDArray[np.int64]) -> NDArray[np.float64]:
    """Exact probability that a uniform random walk from the centre ends a step on the goal
    within the episode (the goal absorbs the walk the first time it is reached)."""
    matrix = _grid.random_walk_matrix(SIZE)
    goals = _grid.cell_index(tasks, SIZE)
    rows = np.arange(len(goals))
    dist = np.zeros((len(goals), SIZE * SIZE))
    dist[:, _grid.cell_index(CENTRE, SIZE)] = 1.0
    reached = np.zeros(len(goals))
    for _ in range(EPISODE_LENGTH):
        dist = dist @ matrix
        reached += dist[rows, goals]
        dist[rows, goals] = 0.0
    return reached


def _splits() -> dict[str, Any]:
    train, test = _grid.heldout_goal_split(SIZE, NUM_TEST_GOALS, "adbench/darkroom-hard/split-v0")
    return {"train": lambda: train, "test": lambda: test}


class DarkRoomHardBatched(BatchedEnv):
    """Dark Room Hard over N goals at once."""

    def _reset(self) -> NDArray[np.int64]:
        self.pos = np.tile(CENTRE, (self.num_envs, 1))
        self.found = np.zeros(self.num_envs, dtype=np.bool_)
        return self.pos.copy()

    def _step(self, actions: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        self.pos = _grid.move(self.pos, actions, SIZE)
        first = _grid.same_cell(self.pos, self.tasks) & ~self.found
        self.found |= first
        return self.pos.copy(), first.astype(np.float32)

    def optimal_actions(self) -> NDArray[np.int64]:
        return _grid.greedy_actions(self.pos, self.tasks)


class DarkRoomHardEnv(AdbenchEnv):
    """Dark Room Hard for one goal: ``gymnasium.make("adbench/DarkRoomHard-v0", goal=(x, y))``."""

    task_aliases = ("goal",)

    def __init__(self, goal: tuple[int, int] | None = None, task: Any = None) -> None:
        super().__init__(task if task is not None else goal)

    def _task_from_aliases(self, options: dict[str, Any]) -> Any:
        return options["goal"]

    def _reset_state(self) -> NDArray[np.int64]:
        self.pos = CENTRE.copy()
        self.found = False
        return self.pos.copy()

    def _step_state(self, action: int) -> tuple[NDArray[np.int64], float]:
        self.pos = _grid.move(self.pos[None], np.array([action]), SIZE)[0]
        first = bool((self.pos == self.task).all()) and not self.found
        self.found |= first
        return self.pos.copy(), float(first)


FAMILY = EnvFamily(
    name="darkroom-hard",
    env_id="adbench/DarkRoomHard-v0",
    description="17x17 room, invisible goal, +1 the first time it is reached, 20 steps",
    episode_length=EPISODE_LENGTH,
    num_actions=_grid.NUM_ACTIONS,
    action_names=_grid.ACTION_NAMES,
    task_fields=("goal_x", "goal_y"),
    task_dtype=np.int64,
    validate_task_values=lambda t: _grid.check_cells(t, SIZE, "goal"),
    split_builders=_splits(),
    optimal_return_fn=optimal_return,
    random_return_fn=random_return,
    batched_cls=DarkRoomHardBatched,
    observation_space=_grid.observation_space(SIZE),
    all_tasks_fn=lambda: _grid.all_cells(SIZE),
)
DarkRoomHardBatched.family = FAMILY
DarkRoomHardEnv.family = FAMILY
