"""UCB1 on the Adversarial Bandit: the paper's source algorithm for the bandit.

Each learner keeps pull counts and reward sums per arm across *all* the episodes of its
history (an episode is 100 pulls of the same task), so the history shows UCB learning:
first every arm once, then the arm maximising ``mean + c * sqrt(2 ln t / n)``. Ties break
uniformly at random. Expert episodes pull the arm with the best empirical mean.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic.dataclasses import dataclass as args_dataclass

from adbench.envs.base import EnvFamily
from adbench.sources.base import (
    EpisodeBatch,
    EpisodeLearner,
    SourceAlgorithm,
    SourceConfig,
    play_episodes,
)
from adbench.validation import ARGS_CONFIG, NonNegativeFloat


@args_dataclass(config=ARGS_CONFIG)
class UCBConfig(SourceConfig):
    exploration: NonNegativeFloat = 1.0  # c in mean + c * sqrt(2 ln t / n): 1.0 is UCB1


class UCB(SourceAlgorithm):
    name = "ucb"
    families = ("bandit",)
    config_cls = UCBConfig
    config: UCBConfig

    def learn(
        self,
        family: EnvFamily,
        tasks: NDArray[Any],
        num_episodes: int,
        seed: int,
        expert_episodes: int = 0,
    ) -> Iterator[EpisodeBatch]:
        tasks = self.checked_tasks(family, tasks, num_episodes, expert_episodes)
        num_learners, num_arms = len(tasks), family.num_actions
        env = family.make_batched(tasks, seed=seed)
        learner = _UCBLearner(num_learners, num_arms, self.config.exploration, seed)
        yield from play_episodes(env, learner, num_episodes, expert_episodes)


class _UCBLearner(EpisodeLearner):
    def __init__(self, num_learners: int, num_arms: int, exploration: float, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 1])
        self.counts = np.zeros((num_learners, num_arms))
        self.sums = np.zeros((num_learners, num_arms))
        self.rows = np.arange(num_learners)
        self.exploration = exploration
        self.expert = False

    def begin(self, episode: int, expert: bool, observations: NDArray[Any]) -> None:
        self.expert = expert

    def act(self, t: int, observations: NDArray[Any]) -> NDArray[np.int64]:
        counts = self.counts
        means = self.sums / np.maximum(counts, 1)
        if self.expert:
            score = means
        else:
            total = np.maximum(counts.sum(axis=1, keepdims=True), 1)
            bonus = self.exploration * np.sqrt(2 * np.log(total) / np.maximum(counts, 1))
            score = np.where(counts == 0, np.inf, means + bonus)
        # random tie-breaking: a uniform jitter far below any real score gap
        jitter = self.rng.random(score.shape) * 1e-9
        return np.argmax(np.where(np.isinf(score), 1e9 + jitter, score + jitter), axis=1)

    def observe(
        self,
        t: int,
        actions: NDArray[np.int64],
        rewards: NDArray[np.float32],
        next_observations: NDArray[Any],
    ) -> None:
        if not self.expert:
            self.counts[self.rows, actions] += 1
            self.sums[self.rows, actions] += rewards
