"""Transitions per second of the batched DQN source against a loop over single learners.

The reference is the same algorithm (same hyperparameters, network, replay, double DQN
update, epsilon schedule and thread count) written the plain way: one learner at a time,
each with its own ``torch.nn`` Q-network stepping its own
``gymnasium.make("adbench/Watermaze-v0", platform=...)``. Both are timed in the same
run (machines are noisy: compare the ratio, not the absolute numbers). By default both
learn from the first step (``learning_starts=0``), so the timing is that of the regime
that fills most of a history (an update every ``train_frequency`` steps), not of the
short random warm-up.

Expect a small ratio (3.4x measured for 32 learners, 3.6x for 16): batching
removes Python and dispatch overhead, but most of the time is arithmetic that batching
does not shrink. The per-learner updates do the same FLOPs either way (a single
learner's batch of 32 frames already keeps the kernels busy), and rendering
72x96 frames is per-pixel work: ``perf/envs.py`` gives the Watermaze env alone 2.2x at
32 envs. Usage::

    python perf/source_loops_dqn.py [--learners 32] [--episodes 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from adbench.envs import get_family
from adbench.sources.dqn import (
    DQN,
    DQNConfig,
    conv_output_shape,
    epsilon_schedule,
    frame_shape_for,
    pooled_frames,
    torch_threads,
)

FAMILY = get_family("watermaze")
# Learning from the first step: time the steady state, not the random warm-up.
PERF_OVERRIDES: dict[str, Any] = {"learning_starts": 0}


def _tasks(num_learners: int) -> NDArray[np.float64]:
    tasks = FAMILY.split(FAMILY.train_split)
    return tasks[np.arange(num_learners) % len(tasks)]


class QNetwork(nn.Module):
    """One learner's Q-network: the same layers as :class:`adbench.sources.dqn.BatchedQNetwork`."""

    def __init__(
        self, frame_shape: tuple[int, int, int], num_actions: int, config: DQNConfig
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(
                frame_shape[0], config.conv1_channels, config.conv1_patch, config.conv1_patch
            ),
            nn.ReLU(),
            nn.Conv2d(
                config.conv1_channels, config.conv2_channels, config.conv2_patch, config.conv2_patch
            ),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(int(np.prod(conv_output_shape(frame_shape, config))), config.hidden_size),
            nn.ReLU(),
            nn.Linear(config.hidden_size, num_actions),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames [B, C, H, W]`` uint8 -> Q-values ``[B, A]``."""
        return self.net(frames.float() / 255.0)


def run_one_learner(
    platform: NDArray[np.float64], num_episodes: int, seed: int, config: DQNConfig
) -> NDArray[np.float32]:
    """One learner's whole history on one single env; returns its episode returns."""
    env = gym.make(FAMILY.env_id, platform=tuple(platform))
    obs_shape = tuple(FAMILY.observation_space.shape or ())
    frame_shape = frame_shape_for(obs_shape, config)
    num_actions = FAMILY.num_actions
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # nn.Module init draws from the global generator

    q_network = QNetwork(frame_shape, num_actions, config)
    target_network = copy.deepcopy(q_network)
    optimizer = torch.optim.Adam(
        q_network.parameters(), lr=config.learning_rate, eps=config.adam_eps, fused=True
    )
    capacity = config.buffer_size
    buffer_frames = torch.zeros(capacity, *frame_shape, dtype=torch.uint8)
    buffer_next = torch.zeros_like(buffer_frames)
    buffer_actions = torch.zeros(capacity, dtype=torch.int64)
    buffer_rewards = torch.zeros(capacity)
    buffer_terminal = torch.zeros(capacity)
    position, size, global_step = 0, 0, 0
    returns = np.zeros(num_episodes, dtype=np.float32)

    for episode in range(num_episodes):
        epsilon = epsilon_schedule(config, episode, num_episodes)
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        frame = pooled_frames(obs[None], config.downsample)[0].permute(2, 0, 1)
        found = False
        for _ in range(FAMILY.episode_length):
            with torch.no_grad():
                greedy = int(q_network(frame[None]).argmax())
            explore = rng.random() < epsilon
            action = int(rng.integers(0, num_actions)) if explore else greedy
            obs, reward, _, _, _ = env.step(action)
            returns[episode] += reward
            next_frame = pooled_frames(obs[None], config.downsample)[0].permute(2, 0, 1)
            if not found:
                buffer_frames[position] = frame
                buffer_next[position] = next_frame
                buffer_actions[position] = action
                buffer_rewards[position] = reward
                buffer_terminal[position] = float(reward > 0)
                position, size = (position + 1) % capacity, min(size + 1, capacity)
            found = found or reward > 0
            frame = next_frame
            global_step += 1

            if global_step >= config.learning_starts and global_step % config.train_frequency == 0:
                slots = torch.randint(0, size, (config.batch_size,), generator=generator)
                with torch.no_grad():
                    next_actions = q_network(buffer_next[slots]).argmax(dim=1, keepdim=True)
                    next_values = target_network(buffer_next[slots]).gather(1, next_actions)
                    targets = buffer_rewards[slots] + config.gamma * (
                        1.0 - buffer_terminal[slots]
                    ) * next_values.squeeze(1)
                q_values = q_network(buffer_frames[slots])
                q_taken = q_values.gather(1, buffer_actions[slots].unsqueeze(1)).squeeze(1)
                loss = F.smooth_l1_loss(q_taken, targets)
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(q_network.parameters(), config.max_grad_norm)
                optimizer.step()
            if global_step % config.target_update_interval == 0:
                target_network.load_state_dict(q_network.state_dict())
    env.close()
    return returns


def loop_transitions_per_second(
    num_learners: int, num_episodes: int, seed: int, **overrides: Any
) -> float:
    """Transitions per second of ``num_learners`` learners run one after another."""
    config = DQNConfig(**{**PERF_OVERRIDES, **overrides})
    tasks = _tasks(num_learners)
    with torch_threads(config.num_threads):
        run_one_learner(tasks[0], 1, seed, config)  # warm-up: torch's first-call costs
        start = time.perf_counter()
        for i, platform in enumerate(tasks):
            run_one_learner(platform, num_episodes, seed + i, config)
        elapsed = time.perf_counter() - start
    return num_learners * num_episodes * FAMILY.episode_length / elapsed


def batched_transitions_per_second(
    num_learners: int, num_episodes: int, seed: int, **overrides: Any
) -> float:
    """Transitions per second of the batched source running ``num_learners`` at once."""
    source = DQN(**{**PERF_OVERRIDES, **overrides})
    tasks = _tasks(num_learners)
    for _ in source.learn(FAMILY, tasks[:2], 1, seed=seed):  # warm-up: first-call costs
        pass
    start = time.perf_counter()
    for _ in source.learn(FAMILY, tasks, num_episodes, seed=seed):
        pass
    elapsed = time.perf_counter() - start
    return num_learners * num_episodes * FAMILY.episode_length / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=32)
    parser.add_argument("--episodes", type=int, default=10, help="episodes per learner")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    batched = batched_transitions_per_second(args.learners, args.episodes, args.seed)
    loop = loop_transitions_per_second(args.learners, args.episodes, args.seed)
    print(
        f"dqn, {args.learners} learners x {args.episodes} episodes: batched {batched:,.0f} "
        f"transitions/s, loop {loop:,.0f} transitions/s, ratio {batched / loop:.1f}x"
    )


if __name__ == "__main__":
    main()
