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
from adbench.sources.base import EpisodeBatch, SourceAlgorithm, SourceConfig
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
        num_learners, num_arms, horizon = len(tasks), family.num_actions, family.episode_length
        env = family.make_batched(tasks, seed=seed)
        rng = np.random.default_rng([seed, 1])
        counts = np.zeros((num_learners, num_arms))
        sums = np.zeros((num_learners, num_arms))
        rows = np.arange(num_learners)
        for episode in range(num_episodes + expert_episodes):
            expert = episode >= num_episodes
            obs = env.reset()
            observations = np.empty((num_learners, horizon), dtype=obs.dtype)
            actions = np.empty((num_learners, horizon), dtype=np.int64)
            rewards = np.empty((num_learners, horizon), dtype=np.float32)
            for t in range(horizon):
                means = sums / np.maximum(counts, 1)
                if expert:
                    score = means
                else:
                    total = np.maximum(counts.sum(axis=1, keepdims=True), 1)
                    bonus = self.config.exploration * np.sqrt(
                        2 * np.log(total) / np.maximum(counts, 1)
                    )
                    score = np.where(counts == 0, np.inf, means + bonus)
                # random tie-breaking: a uniform jitter far below any real score gap
                jitter = rng.random(score.shape) * 1e-9
                action = np.argmax(np.where(np.isinf(score), 1e9 + jitter, score + jitter), axis=1)
                observations[:, t] = obs
                obs, reward, _, _ = env.step(action)
                actions[:, t], rewards[:, t] = action, reward
                if not expert:
                    counts[rows, action] += 1
                    sums[rows, action] += reward
            yield EpisodeBatch(episode, observations, actions, rewards, expert=expert)
