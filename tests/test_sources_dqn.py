"""The batched DQN source on Watermaze: contract, determinism and a tiny learning run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adbench.envs import get_family
from adbench.errors import AdbenchError
from adbench.sources import get_source
from adbench.sources.base import EpisodeBatch
from adbench.sources.dqn import (
    DQN,
    BatchedQNetwork,
    DQNConfig,
    epsilon_schedule,
    frame_patches,
    frame_shape_for,
    pooled_frames,
)

FAMILY = get_family("watermaze")
TASKS = FAMILY.split("train")

# Small and fast: updates from the 200th step, an update every 2 steps.
FAST: dict[str, Any] = {
    "buffer_size": 2_000,
    "learning_starts": 200,
    "train_frequency": 2,
    "target_update_interval": 250,
}


def run(
    num_learners: int, num_episodes: int, seed: int, expert_episodes: int = 0, **overrides: Any
) -> list[EpisodeBatch]:
    source = DQN(**{**FAST, **overrides})
    tasks = TASKS[:num_learners]
    return list(source.learn(FAMILY, tasks, num_episodes, seed, expert_episodes))


@pytest.fixture(scope="module")
def learning_run() -> list[EpisodeBatch]:
    return run(num_learners=4, num_episodes=60, seed=0, epsilon_decay_fraction=0.5)


def test_returns_rise_from_random(learning_run: list[EpisodeBatch]) -> None:
    returns = np.stack([batch.returns for batch in learning_run])  # [episodes, learners]
    early, late = returns[:10].mean(), returns[-10:].mean()
    random = FAMILY.random_return(TASKS[:4]).mean()
    assert early < random + 0.15
    assert late > early + 0.3, (early, late)


def test_same_seed_same_history() -> None:
    first = run(num_learners=2, num_episodes=8, seed=3)
    second = run(num_learners=2, num_episodes=8, seed=3)
    other = run(num_learners=2, num_episodes=8, seed=4)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)
    assert any(not np.array_equal(a.actions, c.actions) for a, c in zip(first, other, strict=True))


def test_episode_batches_shapes_and_expert_flags() -> None:
    batches = run(num_learners=3, num_episodes=4, seed=1, expert_episodes=2)
    assert [b.episode for b in batches] == list(range(6))
    assert [b.expert for b in batches] == [False] * 4 + [True] * 2
    horizon = FAMILY.episode_length
    for batch in batches:
        assert batch.observations.shape == (3, horizon, 72, 96, 3)
        assert batch.observations.dtype == np.uint8
        assert batch.actions.shape == (3, horizon) and batch.actions.dtype == np.int64
        assert batch.rewards.shape == (3, horizon) and batch.rewards.dtype == np.float32
        assert ((batch.actions >= 0) & (batch.actions < FAMILY.num_actions)).all()
        assert set(np.unique(batch.rewards)) <= {0.0, 1.0}
        assert (batch.returns <= 1.0).all()


def test_observations_are_what_the_env_showed() -> None:
    """Replaying the recorded actions on the source's env (its seed is the first of
    three drawn from ``SeedSequence(seed)``) gives back the recorded frames and rewards:
    ``observations[:, t]`` is the frame seen before ``actions[:, t]``."""
    (batch,) = run(num_learners=2, num_episodes=1, seed=5)
    env_seed = int(np.random.SeedSequence(5).generate_state(3)[0])
    env = FAMILY.make_batched(TASKS[:2], seed=env_seed)
    obs = env.reset()
    for t in range(FAMILY.episode_length):
        np.testing.assert_array_equal(batch.observations[:, t], obs)
        obs, reward, _, _ = env.step(batch.actions[:, t])
        np.testing.assert_array_equal(batch.rewards[:, t], reward)


def test_threads_are_restored() -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in DQN(num_threads=1).learn(FAMILY, TASKS[:1], 1, seed=0):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_registry_config_and_errors() -> None:
    source = get_source("dqn", gamma=0.8)
    assert isinstance(source, DQN) and source.config.gamma == 0.8
    assert DQNConfig().gamma == 0.9
    with pytest.raises(AdbenchError, match=r"unknown key.*'gama' \(did you mean 'gamma'\?\)"):
        DQN(gama=0.8)
    with pytest.raises(AdbenchError, match="does not run on"):
        next(DQN().learn(get_family("darkroom"), get_family("darkroom").split("train")[:1], 1, 0))
    with pytest.raises(AdbenchError, match="do not fit"):
        next(DQN(downsample=24).learn(FAMILY, TASKS[:1], 1, 0))


def test_epsilon_schedule() -> None:
    config = DQNConfig(epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_fraction=0.5)
    assert epsilon_schedule(config, 0, 100) == 1.0
    assert epsilon_schedule(config, 25, 100) == pytest.approx(0.55)
    assert epsilon_schedule(config, 50, 100) == pytest.approx(0.1)
    assert epsilon_schedule(config, 99, 100) == pytest.approx(0.1)


def reference_q_values(
    network: BatchedQNetwork, learner: int, frames: torch.Tensor
) -> torch.Tensor:
    """Learner ``learner``'s Q-values the plain way: ``conv2d`` layers on ``[B, C, H, W]``
    frames, with its weights rearranged into conv2d's ``[out, in, kh, kw]`` layout."""
    hidden = frames.float() / 255.0
    for layer, patch in enumerate(network.patches):
        weight = network.weights[layer][learner]  # [(kh, kw, in), out]
        in_channels = hidden.shape[1]
        kernel = weight.view(patch, patch, in_channels, -1).permute(3, 2, 0, 1)
        bias = network.biases[layer][learner, 0]
        hidden = F.relu(F.conv2d(hidden, kernel, bias, stride=patch))
    hidden = hidden.permute(0, 2, 3, 1).flatten(1)  # (row, col, channel), as documented
    hidden = F.relu(hidden @ network.weights[2][learner] + network.biases[2][learner])
    return hidden @ network.weights[3][learner] + network.biases[3][learner]


@pytest.mark.parametrize(
    ("downsample", "conv1_patch", "conv2_patch"), [(4, 3, 2), (3, 4, 2), (2, 5, 3)]
)
def test_batched_network_is_each_learners_conv_network(
    downsample: int, conv1_patch: int, conv2_patch: int
) -> None:
    """Patch convolutions as batched matrix products give every learner exactly the
    function of its own conv2d network, frames pooled as avg_pool2d pools them (also when
    the frame does not divide into whole blocks and patches)."""
    config = DQNConfig(downsample=downsample, conv1_patch=conv1_patch, conv2_patch=conv2_patch)
    obs = np.random.default_rng(0).integers(0, 256, size=(5, 3, 72, 96, 3), dtype=np.uint8)
    frame_shape = frame_shape_for((72, 96, 3), config)
    network = BatchedQNetwork(3, frame_shape, 8, config, torch.Generator().manual_seed(0))
    patches = torch.stack([frame_patches(obs[:, i], config) for i in range(3)])  # [L, B, P, F]
    q_values = network(patches)
    assert q_values.shape == (3, 5, 8)
    for learner in range(3):
        chw = torch.from_numpy(obs[:, learner]).permute(0, 3, 1, 2).float()
        pooled = F.avg_pool2d(chw, downsample).round_().to(torch.uint8)
        np.testing.assert_array_equal(
            pooled_frames(obs[:, learner], downsample).permute(0, 3, 1, 2), pooled
        )
        expected = reference_q_values(network, learner, pooled)
        torch.testing.assert_close(q_values[learner], expected, rtol=1e-5, atol=1e-6)
