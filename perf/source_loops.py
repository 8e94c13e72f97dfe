"""Transitions per second of the batched source algorithms against per-task Python loops.

For each source algorithm this file has a reference implementation of the *same*
algorithm (same hyperparameters, state/feature construction, schedule, network, loss and
optimiser) written the obvious way: one learner at a time, stepping one single
Gymnasium env (``gymnasium.make(family.env_id, task=task)``) per step, with numpy/torch
per learner. Both are timed in the same run (machines are noisy: compare the ratio, not
the absolute numbers). The mean return of the last 10% of episodes, over the learners
both runs share (the loop's are the batch's first ones, same tasks), is printed too as a
check that the two implementations learn alike; run enough episodes for it to mean
something (e.g. ``--episodes 300 --loop-learners 4``).

The loop runs torch on one thread: its ops are tiny, and torch's default thread pool
only adds synchronisation (on a busy 2-core machine it made the loop ~20x slower),
which would flatter the ratio. The batched sources run with torch's default threads
unless ``--torch-threads`` says otherwise; on a busy machine one thread is often faster
for them too. Usage::

    python perf/source_loops.py [--algorithm q-learning] [--env darkroom] \
        [--learners 1000] [--loop-learners 16] [--episodes 20] [--torch-threads N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from adbench.envs import get_family
from adbench.envs.base import EnvFamily
from adbench.sources.a2c import A2C, A2CConfig, gae_advantages
from adbench.sources.a2c import MEMORY_CAP as A2C_MEMORY_CAP
from adbench.sources.base import SourceAlgorithm
from adbench.sources.q_learning import MEMORY_CAP as Q_MEMORY_CAP
from adbench.sources.q_learning import QLearning, QLearningConfig, epsilon_schedule

ALGORITHMS: dict[str, type[SourceAlgorithm]] = {"q-learning": QLearning, "a2c": A2C}


def tasks_for(family: EnvFamily, num_learners: int) -> NDArray[Any]:
    """The first ``num_learners`` training tasks, cycled."""
    tasks = family.split(family.train_split)
    return tasks[np.arange(num_learners) % len(tasks)]


# --- Q-learning, one learner at a time ------------------------------------------------


def q_learning_one_learner(
    family: EnvFamily,
    task: NDArray[Any],
    num_episodes: int,
    rng: np.random.Generator,
    env_seed: int,
    config: QLearningConfig,
) -> NDArray[np.float64]:
    """Tabular Q-learning of one learner on one env; returns its episode returns."""
    env = gym.make(family.env_id, task=task)
    size = int(family.observation_space.nvec[0])
    memory_cap = Q_MEMORY_CAP[family.name]
    q = np.full((size * size * (memory_cap + 1), family.num_actions), config.initial_q)
    returns = np.zeros(num_episodes)
    obs, _ = env.reset(seed=env_seed)
    for episode in range(num_episodes):
        if episode > 0:
            obs, _ = env.reset()
        epsilon = epsilon_schedule(config, episode, num_episodes)
        memory = 0
        state = memory * size * size + int(obs[0]) * size + int(obs[1])
        for _ in range(family.episode_length):
            if rng.random() < epsilon:
                action = int(rng.integers(family.num_actions))
            else:
                best = np.flatnonzero(q[state] == q[state].max())
                action = int(best[rng.integers(len(best))])
            obs, reward, _, _, _ = env.step(action)
            memory = min(memory + int(reward > 0), memory_cap)
            next_state = memory * size * size + int(obs[0]) * size + int(obs[1])
            target = reward + config.gamma * q[next_state].max()
            q[state, action] += config.learning_rate * (target - q[state, action])
            returns[episode] += reward
            state = next_state
    return returns


def q_learning_loop(
    family: EnvFamily, tasks: NDArray[Any], num_episodes: int, seed: int
) -> NDArray[np.float64]:
    config = QLearningConfig()
    return np.stack(
        [
            q_learning_one_learner(
                family, task, num_episodes, np.random.default_rng([seed, i]), seed + i, config
            )
            for i, task in enumerate(tasks)
        ],
        axis=1,
    )


# --- A2C, one learner at a time -------------------------------------------------------


class ActorCritic(torch.nn.Module):
    """One learner's MLP: tanh torso, policy and value heads, initialised as the batched one."""

    def __init__(
        self, num_inputs: int, num_actions: int, config: A2CConfig, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.generator = generator
        sizes = [num_inputs] + [config.hidden_size] * config.num_hidden_layers
        torso: list[torch.nn.Module] = []
        for n_in, n_out in pairwise(sizes):
            torso += [self._layer(n_in, n_out, np.sqrt(2.0)), torch.nn.Tanh()]
        self.torso = torch.nn.Sequential(*torso)
        self.policy = self._layer(sizes[-1], num_actions, 0.01)
        self.value = self._layer(sizes[-1], 1, 1.0)

    def _layer(self, n_in: int, n_out: int, gain: float) -> torch.nn.Linear:
        layer = torch.nn.Linear(n_in, n_out)
        torch.nn.init.orthogonal_(layer.weight, gain, generator=self.generator)
        torch.nn.init.zeros_(layer.bias)
        return layer

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.torso(features)
        return self.policy(hidden), self.value(hidden).squeeze(-1)


def a2c_one_learner(
    family: EnvFamily,
    task: NDArray[Any],
    num_episodes: int,
    generator: torch.Generator,
    env_seed: int,
    config: A2CConfig,
) -> NDArray[np.float64]:
    """A2C of one learner on one env; returns its episode returns."""
    env = gym.make(family.env_id, task=task)
    size = int(family.observation_space.nvec[0])
    memory_cap = A2C_MEMORY_CAP[family.name]
    horizon = family.episode_length
    num_inputs = 2 * size + memory_cap + 2
    network = ActorCritic(num_inputs, family.num_actions, config, generator)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    returns = np.zeros(num_episodes)
    obs, _ = env.reset(seed=env_seed)
    for episode in range(num_episodes):
        if episode > 0:
            obs, _ = env.reset()
        memory = 0
        features = torch.zeros(horizon, num_inputs)
        actions = torch.zeros(horizon, dtype=torch.int64)
        rewards = torch.zeros(horizon)
        with torch.no_grad():
            for t in range(horizon):
                features[t, int(obs[0])] = 1.0
                features[t, size + int(obs[1])] = 1.0
                features[t, 2 * size + memory] = 1.0
                features[t, -1] = t / horizon
                logits, _ = network(features[t])
                probs = torch.softmax(logits, dim=-1)
                action = int(torch.multinomial(probs, 1, generator=generator))
                obs, reward, _, _, _ = env.step(action)
                actions[t], rewards[t] = action, reward
                memory = min(memory + int(reward > 0), memory_cap)
        returns[episode] = float(rewards.sum())

        logits, values = network(features)
        log_probs = torch.log_softmax(logits, dim=-1)
        with torch.no_grad():
            advantages = gae_advantages(
                rewards[None], values[None], config.gamma, config.gae_lambda
            )[0]
            value_targets = advantages + values
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        policy_loss = -(log_probs.gather(-1, actions[:, None]).squeeze(-1) * advantages).mean()
        value_loss = 0.5 * (values - value_targets).pow(2).mean()
        loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy.mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), config.max_grad_norm)
        optimizer.step()
    return returns


def a2c_loop(
    family: EnvFamily, tasks: NDArray[Any], num_episodes: int, seed: int
) -> NDArray[np.float64]:
    config = A2CConfig()
    return np.stack(
        [
            a2c_one_learner(
                family,
                task,
                num_episodes,
                torch.Generator().manual_seed(seed * 100_003 + i),
                seed + i,
                config,
            )
            for i, task in enumerate(tasks)
        ],
        axis=1,
    )


LOOPS: dict[str, Callable[[EnvFamily, NDArray[Any], int, int], NDArray[np.float64]]] = {
    "q-learning": q_learning_loop,
    "a2c": a2c_loop,
}


# --- Timing ---------------------------------------------------------------------------


def _timed(run: Callable[[], NDArray[np.float64]]) -> tuple[float, NDArray[np.float64]]:
    start = time.perf_counter()
    returns = run()
    return time.perf_counter() - start, returns


def loop_run(
    algorithm_name: str, family_name: str, num_learners: int, num_episodes: int, seed: int
) -> tuple[float, NDArray[np.float64]]:
    """``(transitions per second, returns [episodes, learners])`` of the per-task loop."""
    family = get_family(family_name)
    tasks = tasks_for(family, num_learners)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        elapsed, returns = _timed(lambda: LOOPS[algorithm_name](family, tasks, num_episodes, seed))
    finally:
        torch.set_num_threads(threads)
    return num_learners * num_episodes * family.episode_length / elapsed, returns


def batched_run(
    algorithm_name: str, family_name: str, num_learners: int, num_episodes: int, seed: int
) -> tuple[float, NDArray[np.float64]]:
    """``(transitions per second, returns [episodes, learners])`` of the batched source."""
    family = get_family(family_name)
    tasks = tasks_for(family, num_learners)
    algorithm = ALGORITHMS[algorithm_name]()

    def run() -> NDArray[np.float64]:
        batches = algorithm.learn(family, tasks, num_episodes, seed)
        return np.stack([batch.returns.astype(np.float64) for batch in batches])

    elapsed, returns = _timed(run)
    return num_learners * num_episodes * family.episode_length / elapsed, returns


def loop_transitions_per_second(
    algorithm_name: str, family_name: str, num_learners: int, num_episodes: int, seed: int
) -> float:
    """Transitions (env steps, learning included) per second of the per-task Python loop."""
    return loop_run(algorithm_name, family_name, num_learners, num_episodes, seed)[0]


def batched_transitions_per_second(
    algorithm_name: str, family_name: str, num_learners: int, num_episodes: int, seed: int
) -> float:
    """Transitions (env steps, learning included) per second of the batched source."""
    return batched_run(algorithm_name, family_name, num_learners, num_episodes, seed)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", action="append", choices=sorted(ALGORITHMS))
    parser.add_argument("--env", action="append", help="family name (repeatable)")
    parser.add_argument("--learners", type=int, default=1000, help="learners, batched")
    parser.add_argument(
        "--loop-learners", type=int, default=16, help="learners, loop (<= --learners)"
    )
    parser.add_argument("--episodes", type=int, default=20, help="learning episodes per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--torch-threads", type=int, help="torch threads of the batched runs (default: torch's)"
    )
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    algorithms = args.algorithm or list(ALGORITHMS)
    families = args.env or ["darkroom", "darkroom-hard", "key-to-door"]

    table = Table(
        title=f"transitions/s over {args.episodes} learning episodes: batched "
        f"({args.learners} learners) vs per-task loop ({args.loop_learners} learners)"
    )
    for column in ("source", "env", "batched", "loop", "ratio", "final return b / l"):
        table.add_column(column, justify="left" if column in ("source", "env") else "right")
    for algorithm_name in algorithms:
        for family_name in families:
            common = (algorithm_name, family_name)
            # Warm up (torch's first calls, imports) so that neither timing pays for it.
            batched_run(*common, 2, 2, args.seed)
            loop_run(*common, 1, 2, args.seed)
            batched, b_returns = batched_run(*common, args.learners, args.episodes, args.seed)
            loop, l_returns = loop_run(*common, args.loop_learners, args.episodes, args.seed)
            tail = max(args.episodes // 10, 1)
            table.add_row(
                algorithm_name,
                family_name,
                f"{batched:,.0f}",
                f"{loop:,.0f}",
                f"{batched / loop:,.1f}x",
                # Same tasks on both sides: the loop's learners are the batch's first ones.
                f"{b_returns[-tail:, : args.loop_learners].mean():.2f} / "
                f"{l_returns[-tail:].mean():.2f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
