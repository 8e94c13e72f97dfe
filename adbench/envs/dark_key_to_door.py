"""Dark Key-to-Door (Laskin et al., 2022): find an invisible key, then an invisible door.

* Observation: the agent's own cell ``(x, y)``, ``MultiDiscrete([9, 9])``.
* Actions: as Dark Room (``0 up, 1 down, 2 left, 3 right, 4 no-op``).
* Episode: 50 steps from a uniformly random cell (drawn from the reset's seed); never
  terminates early.
* Reward: +1 on the first step that ends on the key; after that, +1 on the first step
  that ends on the door. At most 2. One reward per step: when key and door share a cell,
  the door takes one more step there.
* Task: ``(key_x, key_y, door_x, door_y)``; 81 x 81 = 6561 tasks.
* Splits: ``train`` 1800 tasks (fewer than the paper's 2000 seen in training), ``test``
  200 held-out tasks, disjoint and fixed.
* Optimal return: 2 from every start (at most 16 + 16 steps are needed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from adbench.envs import _grid
from adbench.envs.base import AdbenchEnv, AdbenchError, BatchedEnv, EnvFamily, stable_permutation

SIZE = 9
EPISODE_LENGTH = 50
NUM_TRAIN = 1800
NUM_TEST = 200


def random_cell(u: NDArray[np.float64]) -> NDArray[np.int64]:
    """Uniforms ``[N, 2]`` -> uniformly random cells ``[N, 2]``."""
    return np.minimum((u * SIZE).astype(np.int64), SIZE - 1)


def _check(tasks: NDArray[np.int64]) -> None:
    _grid.check_cells(tasks[:, :2], SIZE, "key")
    _grid.check_cells(tasks[:, 2:], SIZE, "door")


def all_tasks() -> NDArray[np.int64]:
    cells = _grid.all_cells(SIZE)
    keys = np.repeat(cells, len(cells), axis=0)
    doors = np.tile(cells, (len(cells), 1))
    return np.concatenate([keys, doors], axis=1)


def _split(name: str) -> NDArray[np.int64]:
    tasks = all_tasks()
    order = stable_permutation("adbench/key-to-door/split-v0", len(tasks))
    if name == "test":
        return tasks[np.sort(order[:NUM_TEST])]
    return tasks[np.sort(order[NUM_TEST : NUM_TEST + NUM_TRAIN])]


def optimal_return(tasks: NDArray[np.int64]) -> NDArray[np.float64]:
    """Expected return over uniform starts of the shortest path start -> key -> door."""
    starts = _grid.all_cells(SIZE)
    to_key = _grid.steps_to_stand_on(_grid.manhattan(starts[None], tasks[:, None, :2]))
    to_door = _grid.steps_to_stand_on(_grid.manhattan(tasks[:, :2], tasks[:, 2:]))[:, None]
    got_key = to_key <= EPISODE_LENGTH
    got_door = to_key + to_door <= EPISODE_LENGTH
    return (got_key.astype(np.float64) + got_door).mean(axis=1)


def random_return(tasks: NDArray[np.int64]) -> NDArray[np.float64]:
    """Exact expected return of the uniform random policy from a uniform start, by
    propagating the walk's distribution over (cell, has key) for every task at once."""
    matrix = _grid.random_walk_matrix(SIZE)
    n = len(tasks)
    rows = np.arange(n)
    key = _grid.cell_index(tasks[:, :2], SIZE)
    door = _grid.cell_index(tasks[:, 2:], SIZE)
    no_key = np.full((n, SIZE * SIZE), 1.0 / SIZE**2)
    has_key = np.zeros((n, SIZE * SIZE))
    expected = np.zeros(n)
    for _ in range(EPISODE_LENGTH):
        no_key = no_key @ matrix
        has_key = has_key @ matrix
        picked = no_key[rows, key].copy()
        opened = has_key[rows, door].copy()
        no_key[rows, key] = 0.0
        has_key[rows, door] = 0.0  # the door is open: no more reward, drop that mass
        has_key[rows, key] += picked
        expected += picked + opened
    return expected


class DarkKeyToDoorBatched(BatchedEnv):
    """Dark Key-to-Door over N tasks at once."""

    def _reset(self) -> NDArray[np.int64]:
        self.pos = random_cell(np.stack([self.uniform(0), self.uniform(1)], axis=1))
        self.has_key = np.zeros(self.num_envs, dtype=np.bool_)
        self.opened = np.zeros(self.num_envs, dtype=np.bool_)
        return self.pos.copy()

    def _step(self, actions: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        self.pos = _grid.move(self.pos, actions, SIZE)
        on_key = _grid.same_cell(self.pos, self.tasks[:, :2])
        on_door = _grid.same_cell(self.pos, self.tasks[:, 2:])
        pick = on_key & ~self.has_key
        open_ = on_door & self.has_key & ~self.opened
        self.has_key |= pick
        self.opened |= open_
        return self.pos.copy(), (pick | open_).astype(np.float32)

    def optimal_actions(self) -> NDArray[np.int64]:
        target = np.where(self.has_key[:, None], self.tasks[:, 2:], self.tasks[:, :2])
        return _grid.greedy_actions(self.pos, target)


class DarkKeyToDoorEnv(AdbenchEnv):
    """Key-to-Door for one task.

    ``gymnasium.make("adbench/DarkKeyToDoor-v0", key=(x, y), door=(x, y))``
    """

    task_aliases = ("key", "door")

    def __init__(
        self,
        key: tuple[int, int] | None = None,
        door: tuple[int, int] | None = None,
        task: Any = None,
    ) -> None:
        if task is None and (key is not None or door is not None):
            task = self._task_from_aliases({"key": key, "door": door})
        super().__init__(task)

    def _task_from_aliases(self, options: dict[str, Any]) -> Any:
        if options.get("key") is None or options.get("door") is None:
            raise AdbenchError("Key-to-Door needs both key=(x, y) and door=(x, y)")
        return [*options["key"], *options["door"]]

    def _reset_state(self) -> NDArray[np.int64]:
        self.pos = random_cell(np.array([[self.uniform(0), self.uniform(1)]]))[0]
        self.has_key = False
        self.opened = False
        return self.pos.copy()

    def _step_state(self, action: int) -> tuple[NDArray[np.int64], float]:
        self.pos = _grid.move(self.pos[None], np.array([action]), SIZE)[0]
        reward = 0.0
        if not self.has_key and (self.pos == self.task[:2]).all():
            self.has_key, reward = True, 1.0
        elif self.has_key and not self.opened and (self.pos == self.task[2:]).all():
            self.opened, reward = True, 1.0
        return self.pos.copy(), reward


FAMILY = EnvFamily(
    name="key-to-door",
    env_id="adbench/DarkKeyToDoor-v0",
    description="9x9 room, invisible key then door, +1 each once, 50 steps, random start",
    episode_length=EPISODE_LENGTH,
    num_actions=_grid.NUM_ACTIONS,
    action_names=_grid.ACTION_NAMES,
    task_fields=("key_x", "key_y", "door_x", "door_y"),
    task_dtype=np.int64,
    validate_task_values=_check,
    split_builders={"train": lambda: _split("train"), "test": lambda: _split("test")},
    optimal_return_fn=optimal_return,
    random_return_fn=random_return,
    batched_cls=DarkKeyToDoorBatched,
    observation_space=_grid.observation_space(SIZE),
    all_tasks_fn=all_tasks,
)
DarkKeyToDoorBatched.family = FAMILY
DarkKeyToDoorEnv.family = FAMILY
