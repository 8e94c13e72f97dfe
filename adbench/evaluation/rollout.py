"""In-context rollouts: every run of a benchmark in one batch on the batched env.

Each run starts from an empty context and keeps its context across episodes (the model's
own FIFO of the last ``attention_window`` steps for AD). No parameter is updated.

Sampling is Gumbel-max with counter-based noise: run ``i``'s draw at step ``t`` depends
only on its seed and ``t``, never on which other runs share its batch or process, so
sharding the runs across processes gives exactly the results of one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adbench.envs.base import EnvFamily, counter_uniform
from adbench.evaluation.policies import Policy

EpisodeCallback = Callable[[int], None]


@dataclass(frozen=True)
class Prompt:
    """Demonstration episodes fed into the context before the scored episodes (the
    paper's prompting experiment): the oracle's actions, each replaced by a uniformly
    random one with probability ``epsilon``."""

    episodes: int
    epsilon: float

    def to_dict(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "epsilon": self.epsilon}


def run_keys(run_seeds: NDArray[np.int64]) -> NDArray[np.uint64]:
    return (np.asarray(run_seeds, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(
        0xADBE7C4
    )


def sample_actions(
    logits: NDArray[np.float32], keys: NDArray[np.uint64], step: int, greedy: bool
) -> NDArray[np.int64]:
    """Categorical samples (Gumbel-max) or argmax, per run, from per-run counter noise."""
    if greedy:
        return logits.argmax(axis=1).astype(np.int64)
    num_actions = logits.shape[1]
    counters = np.uint64(step * num_actions) + np.arange(num_actions, dtype=np.uint64)
    u = counter_uniform(keys[:, None], counters[None, :])
    gumbel = -np.log(-np.log(np.clip(u, 1e-12, 1 - 1e-12)))
    return (logits.astype(np.float64) + gumbel).argmax(axis=1).astype(np.int64)


def rollout(
    policy: Policy,
    family: EnvFamily,
    tasks: NDArray[Any],
    run_seeds: NDArray[np.int64],
    episodes: int,
    greedy: bool = False,
    prompt: Prompt | None = None,
    on_episode: EpisodeCallback | None = None,
) -> NDArray[np.float32]:
    """Play ``episodes`` in-context episodes for every run (``tasks[i]`` with env and
    sampling seed ``run_seeds[i]``); returns the return of each episode ``[runs, episodes]``.
    """
    num_runs = len(tasks)
    env = family.make_batched(tasks, seed=[int(s) for s in run_seeds])
    keys = run_keys(run_seeds)
    policy.start(num_runs)
    prev_action = np.full(num_runs, -1, dtype=np.int64)
    prev_reward = np.zeros(num_runs, dtype=np.float32)
    returns = np.zeros((num_runs, episodes), dtype=np.float32)
    prompt_episodes = prompt.episodes if prompt else 0
    step = 0
    for episode in range(prompt_episodes + episodes):
        obs = env.reset()
        for t in range(family.episode_length):
            new_episode = np.full(num_runs, t == 0)
            logits = policy.logits(env, obs, prev_action, prev_reward, new_episode)
            if episode < prompt_episodes:
                # A demonstration: the model reads it (its context is updated above), but
                # the oracle acts, with epsilon-random actions.
                action = env.optimal_actions()
                u = counter_uniform(keys, np.uint64(step) + np.uint64(1 << 40))
                explore = u < prompt.epsilon
                random_action = np.minimum(
                    (u / max(prompt.epsilon, 1e-12) * family.num_actions).astype(np.int64),
                    family.num_actions - 1,
                )
                action = np.where(explore, random_action, action)
            else:
                action = sample_actions(logits, keys, step, greedy)
            obs, reward, _, _ = env.step(action)
            if episode >= prompt_episodes:
                returns[:, episode - prompt_episodes] += reward
            prev_action, prev_reward = action, reward
            step += 1
        if on_episode and episode >= prompt_episodes:
            on_episode(1)
    return returns


def source_returns(
    source_name: str,
    family: EnvFamily,
    tasks: NDArray[Any],
    run_seeds: NDArray[np.int64],
    episodes: int,
) -> NDArray[np.float32]:
    """The source algorithm learning from scratch on each run's task (the paper's
    data-efficiency reference): return of each of its first ``episodes`` episodes."""
    from adbench.sources import get_source

    source = get_source(source_name)
    curves = []
    seed = int(np.random.SeedSequence([int(s) for s in run_seeds[:4]]).generate_state(1)[0])
    for batch in source.learn(family, tasks, episodes, seed=seed % 2**31):
        curves.append(batch.returns)
    return np.stack(curves, axis=1).astype(np.float32)
