"""Dark Room (Laskin et al., 2022): find an invisible goal in a 9x9 room, then stay on it.

* Observation: the agent's own cell ``(x, y)``, ``MultiDiscrete([9, 9])``.
* Actions: ``0 up (y + 1), 1 down, 2 left, 3 right, 4 no-op``; moves into a wall do nothing.
* Episode: 20 steps from the centre ``(4, 4)``; never terminates early.
* Reward: +1 on every step that ends on the goal.
* Task: the goal cell ``(goal_x, goal_y)``; 81 tasks.
* Splits: ``train`` 65 goals, ``test`` 16 held-out goals (the AD-eps split size), fixed.
* Optimal return: ``21 - max(d, 1)`` for a goal at Manhattan distance ``d`` from the centre.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from adbench.envs import _grid
from adbench.envs.base import AdbenchEnv, BatchedEnv, EnvFamily

SIZE = 9
EPISODE_LENGTH = 20
CENTRE = np.array([SIZE // 2, SIZE // 2], dtype=np.int64)
NUM_TEST_GOALS = 16


def optimal_return(tasks: NDArray[np.int64], size: int, episode_length: int) -> NDArray[np.float64]:
    steps = _grid.steps_to_stand_on(_grid.manhattan(tasks, np.array([size // 2] * 2)))
    return np.maximum(episode_length - steps + 1, 0).astype(np.float64)


def random_return(tasks: NDArray[np.int64], size: int, episode_length: int) -> NDArray[np.float64]:
    """Exact expected return of the uniform random policy: sum over steps of the
    probability of standing on the goal, by propagating the walk's distribution."""
    matrix = _grid.random_walk_matrix(size)
    dist = np.zeros(size * size)
    dist[_grid.cell_index(np.array([size // 2] * 2), size)] = 1.0
    occupancy = np.zeros(size * size)
    for _ in range(episode_length):
        dist = dist @ matrix
        occupancy += dist
    return occupancy[_grid.cell_index(tasks, size)]


def _splits() -> dict[str, Any]:
    train, test = _grid.heldout_goal_split(SIZE, NUM_TEST_GOALS, "adbench/darkroom/split-v0")
    return {"train": lambda: train, "test": lambda: test}


class DarkRoomBatched(BatchedEnv):
    """Dark Room over N goals at once."""

    def _reset(self) -> NDArray[np.int64]:
        self.pos = np.tile(CENTRE, (self.num_envs, 1))
        return self.pos.copy()

    def _step(self, actions: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        self.pos = _grid.move(self.pos, actions, SIZE)
        reward = _grid.same_cell(self.pos, self.tasks).astype(np.float32)
        return self.pos.copy(), reward

    def optimal_actions(self) -> NDArray[np.int64]:
        return _grid.greedy_actions(self.pos, self.tasks)


class DarkRoomEnv(AdbenchEnv):
    """Dark Room for one goal: ``gymnasium.make("adbench/DarkRoom-v0", goal=(x, y))``."""

    task_aliases = ("goal",)

    def __init__(self, goal: tuple[int, int] | None = None, task: Any = None) -> None:
        super().__init__(task if task is not None else goal)

    def _task_from_aliases(self, options: dict[str, Any]) -> Any:
        return options["goal"]

    def _reset_state(self) -> NDArray[np.int64]:
        self.pos = CENTRE.copy()
        return self.pos.copy()

    def _step_state(self, action: int) -> tuple[NDArray[np.int64], float]:
        self.pos = _grid.move(self.pos[None], np.array([action]), SIZE)[0]
        return self.pos.copy(), float((self.pos == self.task).all())


FAMILY = EnvFamily(
    name="darkroom",
    env_id="adbench/DarkRoom-v0",
    description="9x9 room, invisible goal, +1 per step on it, 20 steps from the centre",
    episode_length=EPISODE_LENGTH,
    num_actions=_grid.NUM_ACTIONS,
    action_names=_grid.ACTION_NAMES,
    task_fields=("goal_x", "goal_y"),
    task_dtype=np.int64,
    validate_task_values=lambda t: _grid.check_cells(t, SIZE, "goal"),
    split_builders=_splits(),
    optimal_return_fn=lambda t: optimal_return(t, SIZE, EPISODE_LENGTH),
    random_return_fn=lambda t: random_return(t, SIZE, EPISODE_LENGTH),
    batched_cls=DarkRoomBatched,
    observation_space=_grid.observation_space(SIZE),
    all_tasks_fn=lambda: _grid.all_cells(SIZE),
)
DarkRoomBatched.family = FAMILY
DarkRoomEnv.family = FAMILY
