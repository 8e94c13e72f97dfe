"""adbench's batched envs as Gymnasium vector envs.

``gymnasium.make_vec("adbench/DarkRoom-v0", num_envs=1024,
vectorization_mode="vector_entry_point")`` gives a :class:`gymnasium.vector.VectorEnv`
over one :class:`~adbench.envs.base.BatchedEnv`: the whole batch steps in one numpy call,
with the transitions of ``num_envs`` single envs (``gymnasium.make``) seeded ``seed,
seed + 1, ...``, as Gymnasium's ``SyncVectorEnv`` would give them, but without a Python
loop over the envs. The dynamics are the batched env's own (the one the sources and the
harness use), so nothing is forked.

Gymnasium's step API and autoreset semantics (``AutoresetMode.NEXT_STEP``): the step
after an episode's last one resets every env (all episodes have the family's fixed length,
so they end together), ignores the actions and returns the first observations with reward
0, ``terminated`` and ``truncated`` false and the reset's infos. Infos follow the vector
convention: a reset's ``{"task": [N, ...], "_task": [N]}`` (each env's task; the single
env's reset info, batched), and ``{}`` on other steps.

Tasks: ``task=`` gives every env the same task (the single env's keyword; default: the
first task of the train split, as the single env), ``tasks=`` one task per env (an array of
``num_envs`` tasks, or a split name, cycled to ``num_envs``); ``reset(options={"task":
...})`` replaces every env's task, ``{"tasks": ...}`` each env's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import ArrayLike, NDArray

from adbench.envs import adversarial_bandit, dark_key_to_door, dark_room, dark_room_hard, watermaze
from adbench.envs.base import AdbenchError, BatchedEnv, EnvFamily


class AdbenchVectorEnv(VectorEnv):
    """A family's batched env behind Gymnasium's ``VectorEnv`` API (see the module doc)."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP}
    family: ClassVar[EnvFamily]

    def __init__(
        self,
        num_envs: int = 1,
        task: ArrayLike | None = None,
        tasks: ArrayLike | str | None = None,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise AdbenchError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode is not None:
            raise AdbenchError(
                f"{self.family.env_id}'s vector env does not render (render_mode={render_mode!r})"
            )
        self.num_envs = num_envs
        self.render_mode = None
        self.single_observation_space = self.family.observation_space
        self.single_action_space = gym.spaces.Discrete(self.family.num_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._batch: BatchedEnv = self.family.make_batched(self._tasks(task, tasks))
        self._autoreset = False

    def _tasks(self, task: ArrayLike | None, tasks: ArrayLike | str | None) -> NDArray[Any]:
        """``[num_envs, fields]`` from ``task`` (one for all) or ``tasks`` (one per env)."""
        if task is not None and tasks is not None:
            raise AdbenchError("give task= (the same task for every env) or tasks=, not both")
        if tasks is None:
            one = (
                self.family.split(self.family.train_split)[:1]
                if task is None
                else self.family.validate_tasks(np.asarray(task)[None])
            )
            return np.repeat(one, self.num_envs, axis=0)
        if isinstance(tasks, str):
            split = self.family.split(tasks)
            return split[np.arange(self.num_envs) % len(split)]
        array = self.family.validate_tasks(tasks)
        if len(array) != self.num_envs:
            raise AdbenchError(f"got {len(array)} tasks for num_envs={self.num_envs}")
        return array

    @property
    def tasks(self) -> NDArray[Any]:
        return self._batch.tasks.copy()

    def _reset_infos(self) -> dict[str, Any]:
        return {"task": self._batch.tasks.copy(), "_task": np.ones(self.num_envs, dtype=np.bool_)}

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[Any], dict[str, Any]]:
        super().reset(seed=seed if isinstance(seed, int) else None)
        if options:
            unknown = set(options) - {"task", "tasks"}
            if unknown:
                raise AdbenchError(
                    f"unknown reset option(s) {sorted(unknown)} for {self.family.env_id}'s "
                    "vector env: valid options are task and tasks"
                )
            self._batch.set_tasks(self._tasks(options.get("task"), options.get("tasks")))
        obs = self._batch.reset(seed=seed)
        self._autoreset = False
        return obs, self._reset_infos()

    def step(
        self, actions: ArrayLike
    ) -> tuple[NDArray[Any], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict]:
        if self._autoreset:
            obs = self._batch.reset()
            self._autoreset = False
            none = np.zeros(self.num_envs, dtype=np.bool_)
            return obs, np.zeros(self.num_envs), none, none.copy(), self._reset_infos()
        obs, reward, terminated, truncated = self._batch.step(np.asarray(actions))
        self._autoreset = bool(truncated.any() or terminated.any())
        return obs, reward.astype(np.float64), terminated, truncated, {}


def _vector_class(family: EnvFamily) -> type[AdbenchVectorEnv]:
    name = family.env_id.split("/")[-1].split("-")[0] + "VectorEnv"
    return type(name, (AdbenchVectorEnv,), {"family": family, "__module__": __name__})


AdversarialBanditVectorEnv = _vector_class(adversarial_bandit.FAMILY)
DarkRoomVectorEnv = _vector_class(dark_room.FAMILY)
DarkRoomHardVectorEnv = _vector_class(dark_room_hard.FAMILY)
DarkKeyToDoorVectorEnv = _vector_class(dark_key_to_door.FAMILY)
WatermazeVectorEnv = _vector_class(watermaze.FAMILY)
