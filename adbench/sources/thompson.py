"""Thompson sampling on the Adversarial Bandit, a Bayesian alternative source to UCB.

Each learner keeps a Beta(1 + successes, 1 + failures) posterior per arm across all the
episodes of its history, samples one mean per arm each pull and pulls the argmax.
Expert episodes pull the arm with the highest posterior mean.
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
from adbench.validation import ARGS_CONFIG, PositiveFloat


@args_dataclass(config=ARGS_CONFIG)
class ThompsonConfig(SourceConfig):
    prior_alpha: PositiveFloat = 1.0  # Beta prior pseudo-successes (1, 1: uniform prior)
    prior_beta: PositiveFloat = 1.0  # Beta prior pseudo-failures


class ThompsonSampling(SourceAlgorithm):
    name = "thompson"
    families = ("bandit",)
    config_cls = ThompsonConfig
    config: ThompsonConfig

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
        learner = _ThompsonLearner(num_learners, num_arms, self.config, seed)
        yield from play_episodes(env, learner, num_episodes, expert_episodes)


class _ThompsonLearner(EpisodeLearner):
    def __init__(self, num_learners: int, num_arms: int, config: ThompsonConfig, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 2])
        self.alpha = np.full((num_learners, num_arms), config.prior_alpha)
        self.beta = np.full((num_learners, num_arms), config.prior_beta)
        self.rows = np.arange(num_learners)
        self.expert = False

    def begin(self, episode: int, expert: bool, observations: NDArray[Any]) -> None:
        self.expert = expert

    def act(self, t: int, observations: NDArray[Any]) -> NDArray[np.int64]:
        if self.expert:
            return np.argmax(self.alpha / (self.alpha + self.beta), axis=1)
        return np.argmax(self.rng.beta(self.alpha, self.beta), axis=1)

    def observe(
        self,
        t: int,
        actions: NDArray[np.int64],
        rewards: NDArray[np.float32],
        next_observations: NDArray[Any],
    ) -> None:
        if not self.expert:
            self.alpha[self.rows, actions] += rewards
            self.beta[self.rows, actions] += 1.0 - rewards
