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
from adbench.sources.base import EpisodeBatch, SourceAlgorithm, SourceConfig
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
        num_learners, num_arms, horizon = len(tasks), family.num_actions, family.episode_length
        env = family.make_batched(tasks, seed=seed)
        rng = np.random.default_rng([seed, 2])
        alpha = np.full((num_learners, num_arms), self.config.prior_alpha)
        beta = np.full((num_learners, num_arms), self.config.prior_beta)
        rows = np.arange(num_learners)
        for episode in range(num_episodes + expert_episodes):
            expert = episode >= num_episodes
            obs = env.reset()
            observations = np.empty((num_learners, horizon), dtype=obs.dtype)
            actions = np.empty((num_learners, horizon), dtype=np.int64)
            rewards = np.empty((num_learners, horizon), dtype=np.float32)
            for t in range(horizon):
                if expert:
                    action = np.argmax(alpha / (alpha + beta), axis=1)
                else:
                    action = np.argmax(rng.beta(alpha, beta), axis=1)
                observations[:, t] = obs
                obs, reward, _, _ = env.step(action)
                actions[:, t], rewards[:, t] = action, reward
                if not expert:
                    alpha[rows, action] += reward
                    beta[rows, action] += 1.0 - reward
            yield EpisodeBatch(episode, observations, actions, rewards, expert=expert)
