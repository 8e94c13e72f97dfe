"""Adversarial Bandit (Laskin et al., 2022): a 10-armed Bernoulli bandit whose best arm
sits on one parity of arms in training and on the other at test time.

* Observation: none to speak of; a constant ``0`` (``Discrete(1)``), so the history of
  actions and rewards is all an agent has.
* Actions: pull arm ``0..9``.
* Episode: 100 pulls; never terminates early.
* Reward: Bernoulli with the pulled arm's mean; the noise is the env's seeded stream
  (``uniform(step)``), so batched and single envs agree draw for draw.
* Task: the 10 arm means. The paper leaves the per-arm distribution unstated; adbench's
  choice: one *best* arm with mean ~ U(0.7, 0.9), every other arm ~ U(0.1, 0.5), so the
  best arm is always better by at least 0.2.
* Splits (arms are numbered from 0; "odd" means arms 1, 3, 5, 7, 9):
  ``train-odd`` 1000 tasks whose best arm is odd 95% of the time, even otherwise;
  ``test-odd`` 200 more from that distribution (the in-distribution check);
  ``test-even`` 200 tasks whose best arm is even 95% of the time;
  ``test-uniform`` 200 tasks whose best arm is uniform over the 10 arms.
* Optimal return: 100 x the best mean. Random return: 100 x the mean of the means.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from adbench.envs.base import (
    AdbenchEnv,
    AdbenchError,
    BatchedEnv,
    EnvFamily,
    stable_uniform,
)

NUM_ARMS = 10
EPISODE_LENGTH = 100
BEST_MEAN_RANGE = (0.7, 0.9)
OTHER_MEAN_RANGE = (0.1, 0.5)
PREFERRED_PARITY_PROB = 0.95
SPLIT_SIZES = {"train-odd": 1000, "test-odd": 200, "test-even": 200, "test-uniform": 200}


def make_tasks(label: str, count: int, parity: str) -> NDArray[np.float64]:
    """``count`` tasks from a fixed stream; ``parity`` is "odd", "even" or "uniform"."""
    u = stable_uniform(label, count, columns=3 + NUM_ARMS)
    if parity == "uniform":
        best = np.minimum((u[:, 0] * NUM_ARMS).astype(np.int64), NUM_ARMS - 1)
    else:
        preferred = 1 if parity == "odd" else 0
        arm_parity = np.where(u[:, 0] < PREFERRED_PARITY_PROB, preferred, 1 - preferred)
        best = 2 * np.minimum((u[:, 1] * NUM_ARMS / 2).astype(np.int64), NUM_ARMS // 2 - 1)
        best += arm_parity
    lo, hi = OTHER_MEAN_RANGE
    means = lo + (hi - lo) * u[:, 3:]
    blo, bhi = BEST_MEAN_RANGE
    means[np.arange(count), best] = blo + (bhi - blo) * u[:, 2]
    return means


def _split(name: str) -> NDArray[np.float64]:
    parity = name.split("-")[1]
    return make_tasks(f"adbench/bandit/{name}-v0", SPLIT_SIZES[name], parity)


def _check(tasks: NDArray[np.float64]) -> None:
    if not np.isfinite(tasks).all() or tasks.min() < 0 or tasks.max() > 1:
        raise AdbenchError("bandit arm means must be probabilities in [0, 1]")


class AdversarialBanditBatched(BatchedEnv):
    """The bandit over N tasks at once."""

    def _reset(self) -> NDArray[np.int64]:
        return np.zeros(self.num_envs, dtype=np.int64)

    def _step(self, actions: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        noise = self.uniform(self._t)
        means = self.tasks[np.arange(self.num_envs), actions]
        return np.zeros(self.num_envs, dtype=np.int64), (noise < means).astype(np.float32)

    def optimal_actions(self) -> NDArray[np.int64]:
        return self.tasks.argmax(axis=1).astype(np.int64)


class AdversarialBanditEnv(AdbenchEnv):
    """The bandit for one task.

    ``gymnasium.make("adbench/AdversarialBandit-v0", arm_means=[...])``
    """

    task_aliases = ("arm_means",)

    def __init__(self, arm_means: Any = None, task: Any = None) -> None:
        super().__init__(task if task is not None else arm_means)

    def _task_from_aliases(self, options: dict[str, Any]) -> Any:
        return options["arm_means"]

    def _reset_state(self) -> np.int64:
        return np.int64(0)

    def _step_state(self, action: int) -> tuple[np.int64, float]:
        noise = self.uniform(self._t)
        return np.int64(0), float(noise < self.task[action])


FAMILY = EnvFamily(
    name="bandit",
    env_id="adbench/AdversarialBandit-v0",
    description="10 Bernoulli arms, 100 pulls; best arm odd in training, even at test",
    episode_length=EPISODE_LENGTH,
    num_actions=NUM_ARMS,
    action_names=tuple(f"arm{i}" for i in range(NUM_ARMS)),
    task_fields=tuple(f"arm{i}_mean" for i in range(NUM_ARMS)),
    task_dtype=np.float64,
    validate_task_values=_check,
    split_builders={name: (lambda name=name: _split(name)) for name in SPLIT_SIZES},
    optimal_return_fn=lambda t: EPISODE_LENGTH * t.max(axis=1),
    random_return_fn=lambda t: EPISODE_LENGTH * t.mean(axis=1),
    batched_cls=AdversarialBanditBatched,
    observation_space=gym.spaces.Discrete(1),
    train_split="train-odd",
    test_splits=("test-even", "test-uniform", "test-odd"),
)
AdversarialBanditBatched.family = FAMILY
AdversarialBanditEnv.family = FAMILY
