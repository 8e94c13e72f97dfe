"""Double DQN on Watermaze from pixels, every learner at once.

The paper's Watermaze source is a distributed DQN (Q(lambda), a ResNet, replay 1e5,
gamma 0.9). This is the same idea sized for a CPU: ``L`` independent learners, learner
``i`` on platform ``tasks[i]``, each with its own small conv Q-network, target network,
replay buffer and Adam state; nothing is shared but the code. The update is 1-step double
DQN (the online network picks the next action, the target network values it) with a
Huber loss and hard target updates, gamma 0.9 as in the paper.

**Batching.** The ``L`` networks are stored as stacked parameters with a leading learner
axis and run as one network. Both convolutions have kernel = stride (*patch*
convolutions), which makes each a matrix product over non-overlapping patches: every
layer, conv or dense, is one ``torch.baddbmm`` over ``[L, in, out]`` weights. The loss is
a sum of per-learner losses, so each learner's gradient is its own; gradient clipping is
per learner and Adam is elementwise. There is no Python loop over learners.

**Input and network.** Frames are average-pooled 4x4, from 72x96 to 18x24 RGB, and kept
as uint8 in the replay buffers (one preallocated ``[L, capacity, ...]`` tensor per side
of a transition), already cut into the first layer's patches. At that size the wall's
hues still tell the heading and the wall's height the distance to it, which is all the
task needs (the start is always the pool's centre). The two conv layers take 3x3
patches (16 channels), then 2x2 patches of those (32 channels), giving 3x4x32 features,
then a 128-unit hidden layer and one Q-value per action. Non-overlapping kernels halved
the time of a whole run against overlapping ones (4x4 then 3x3, stride 2) on a CPU, and
learned as fast; as matrix products their forward and backward passes take 0.62 s where
the grouped convolutions that first ran them took 1.04 s (cProfile, 32 learners x 4
episodes).

**Agent-side memory.** The platform pays +1 only the first time it is reached in an
episode, after which nothing the agent does matters. So the learner treats that step as
terminal (no bootstrapping past it) and stores no transitions after it: they would teach
the network that stepping onto the platform is worth 0. It still acts until the
episode's end, so the recorded history is complete. An episode's end is a time limit,
not a terminal state (the step counter is not an input), so the update bootstraps on the
last step.

**Why the history rises gradually.** Exploration is epsilon-greedy with epsilon decaying
linearly, per episode, from ``epsilon_start`` (1.0: uniformly random) to
``epsilon_end`` over the first ``epsilon_decay_fraction`` of the learning episodes,
while the networks learn from replay. Learning alone is gradual too: with epsilon at its
floor after 10 episodes, 16 learners took 200 episodes to climb from about 0.2 to 0.8.
With the defaults, 32 learners over 400 episodes go from 0.19 (random) to 0.99 by
episode ~280, in about 3 minutes on one core of a 2-core machine.

**Threads.** ``learn`` runs torch on ``num_threads`` threads (1 by default) and puts the
caller's setting back whenever it yields. One thread makes the histories independent of
the machine's core count and avoids the collapse of multi-threaded torch on a shared
machine (a short run took 8x longer on 2 threads than on 1 while other jobs were busy).

Expert episodes (after learning): the final Q-networks, epsilon-greedy with
``expert_epsilon`` (by default the floor the history ends on: a purely greedy policy can
loop forever in this deterministic environment), no updates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from pydantic.dataclasses import dataclass as args_dataclass

from adbench.envs.base import EnvFamily
from adbench.errors import AdbenchError
from adbench.sources.base import (
    EpisodeBatch,
    EpisodeLearner,
    SourceAlgorithm,
    SourceConfig,
    clip_grad_norm_per_learner,
    linear_epsilon,
    play_episodes,
)
from adbench.validation import ARGS_CONFIG, NonNegative, Positive, PositiveFloat, UnitInterval


@args_dataclass(config=ARGS_CONFIG)
class DQNConfig(SourceConfig):
    """Hyperparameters of the batched double DQN."""

    # Frames are average-pooled by this factor (72x96 -> 18x24 at 4).
    downsample: Positive = 4
    # Patch convolutions: kernel = stride = patch.
    conv1_channels: Positive = 16
    conv1_patch: Positive = 3
    conv2_channels: Positive = 32
    conv2_patch: Positive = 2
    hidden_size: Positive = 128
    learning_rate: PositiveFloat = 1e-3
    adam_eps: PositiveFloat = 1e-5
    gamma: UnitInterval = 0.9  # as the paper's Watermaze source
    batch_size: Positive = 32  # transitions per learner per update
    buffer_size: Positive = 5_000  # transitions per learner (~100-300 episodes' worth)
    # Env steps (of every learner at once) before the first update, and between updates.
    learning_starts: NonNegative = 1_000
    train_frequency: Positive = 8
    target_update_interval: Positive = 500  # env steps between hard target-network updates
    # Per-learner global gradient-norm clip.
    max_grad_norm: PositiveFloat = 10.0
    epsilon_start: UnitInterval = 1.0
    epsilon_end: UnitInterval = 0.05
    # Fraction of the learning episodes over which epsilon decays linearly to epsilon_end.
    epsilon_decay_fraction: UnitInterval = 0.7
    # Epsilon of the expert episodes played with learning frozen.
    expert_epsilon: UnitInterval = 0.05
    # torch threads while learning (see the module doc); 0 keeps the caller's setting.
    num_threads: NonNegative = 1


def epsilon_schedule(config: DQNConfig, episode: int, num_episodes: int) -> float:
    """Epsilon of learning episode ``episode``: linear from start to end, then flat."""
    return linear_epsilon(
        config.epsilon_start,
        config.epsilon_end,
        config.epsilon_decay_fraction,
        episode,
        num_episodes,
    )


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run the block on ``num_threads`` torch threads (0: unchanged), then restore."""
    previous = torch.get_num_threads()
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def pooled_frames(obs: NDArray[np.uint8], factor: int) -> torch.Tensor:
    """``[N, H, W, C]`` uint8 frames -> ``[N, H / f, W / f, C]`` uint8, each pixel the mean
    of an ``f x f`` block rounded half to even (as ``avg_pool2d`` then ``round``; rows and
    columns beyond the last whole block are dropped, as there).

    Written as ``f - 1`` slice additions along rows, then along columns, on integers:
    ``avg_pool2d`` reduces each small window separately and took 3x longer.
    """
    frames = torch.from_numpy(obs)
    count, height, width, channels = frames.shape
    rows, cols = height // factor, width // factor
    # 255 * f^2 must fit: int16 up to f = 11.
    wide = torch.int16 if 255 * factor * factor <= torch.iinfo(torch.int16).max else torch.int32
    blocks = frames[:, : rows * factor, : cols * factor].reshape(
        count, rows, factor, cols * factor * channels
    )
    row_sums = blocks[:, :, 0].to(wide)
    for i in range(1, factor):
        row_sums += blocks[:, :, i]
    row_sums = row_sums.view(count, rows, cols, factor, channels)
    sums = row_sums[:, :, :, 0].clone()
    for i in range(1, factor):
        sums += row_sums[:, :, :, i]
    return sums.float().div_(factor * factor).round_().to(torch.uint8)


def frame_patches(obs: NDArray[np.uint8], config: DQNConfig) -> torch.Tensor:
    """``[N, H, W, C]`` uint8 frames -> the first conv layer's input patches, ``[N, P, k * k
    * C]`` uint8: the pooled frame cut into ``P`` non-overlapping ``k x k`` patches
    (``k = conv1_patch``; row-major over the patch grid), each flattened in
    ``(kh, kw, channel)`` order. The replay buffers store frames this way."""
    frames = pooled_frames(obs, config.downsample)
    count, height, width, channels = frames.shape
    k = config.conv1_patch
    rows, cols = height // k, width // k
    grid = frames[:, : rows * k, : cols * k].reshape(count, rows, k, cols, k * channels)
    return grid.transpose(2, 3).reshape(count, rows * cols, k * k * channels)


def frame_shape_for(obs_shape: tuple[int, ...], config: DQNConfig) -> tuple[int, int, int]:
    """``(channels, height, width)`` of a pooled frame."""
    height, width, channels = obs_shape
    return channels, height // config.downsample, width // config.downsample


def conv_grids(
    frame_shape: tuple[int, int, int], config: DQNConfig
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(rows, cols)`` of the output of each patch convolution (floors, as conv2d)."""
    _, height, width = frame_shape
    grids = []
    for patch in (config.conv1_patch, config.conv2_patch):
        height, width = height // patch, width // patch
        grids.append((height, width))
    if height < 1 or width < 1:
        raise AdbenchError(
            f"patches of {config.conv1_patch} then {config.conv2_patch} do not fit a "
            f"{frame_shape[1]}x{frame_shape[2]} frame: lower downsample or the patch sizes"
        )
    return grids[0], grids[1]


def conv_output_shape(frame_shape: tuple[int, int, int], config: DQNConfig) -> tuple[int, int, int]:
    """``(channels, height, width)`` after both patch convolutions (floors, as conv2d)."""
    return (config.conv2_channels, *conv_grids(frame_shape, config)[1])


def patch_shape_for(frame_shape: tuple[int, int, int], config: DQNConfig) -> tuple[int, int]:
    """``(patches, features)`` of one frame as :func:`frame_patches` returns it."""
    rows, cols = conv_grids(frame_shape, config)[0]
    return rows * cols, frame_shape[0] * config.conv1_patch**2


def uniform(shape: tuple[int, ...], fan_in: int, generator: torch.Generator) -> torch.Tensor:
    """PyTorch's default layer init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as a leaf tensor."""
    bound = 1.0 / np.sqrt(fan_in)
    return ((torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound).requires_grad_()


class BatchedQNetwork:
    """``L`` independent Q-networks (patch conv, patch conv, dense, dense), one per learner.

    Parameters are leaf tensors with a leading learner axis: weights ``[L, in, out]`` and
    biases ``[L, 1, out]`` for every layer. A convolution whose kernel equals its stride is
    a matrix product over non-overlapping patches, so a conv layer's ``in`` is a patch
    flattened in ``(kh, kw, in_channel)`` order, and the first dense layer reads the
    second conv's output flattened in ``(row, col, channel)`` order (channels last
    throughout: the activations are never transposed, only cut into patches).

    Every layer is then one ``torch.baddbmm`` over the learner axis (learner ``i``
    multiplies its own patches by its own weights): the same function as ``conv2d`` per
    learner (a test checks it), and on a CPU about 1.7x faster forward and backward than
    one grouped convolution over all learners. The input arrives already cut into
    the first layer's patches (:func:`frame_patches`).
    """

    def __init__(
        self,
        num_learners: int,
        frame_shape: tuple[int, int, int],
        num_actions: int,
        config: DQNConfig,
        generator: torch.Generator,
    ) -> None:
        self.patches = (config.conv1_patch, config.conv2_patch)
        self.grids = conv_grids(frame_shape, config)
        num_features = int(np.prod(conv_output_shape(frame_shape, config)))
        sizes = [
            (config.conv1_patch**2 * frame_shape[0], config.conv1_channels),
            (config.conv2_patch**2 * config.conv1_channels, config.conv2_channels),
            (num_features, config.hidden_size),
            (config.hidden_size, num_actions),
        ]
        # Weights then bias of each layer in turn, as nn.Conv2d / nn.Linear draw them.
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        for n_in, n_out in sizes:
            self.weights.append(uniform((num_learners, n_in, n_out), n_in, generator))
            self.biases.append(uniform((num_learners, 1, n_out), n_in, generator))

    def parameters(self) -> list[torch.Tensor]:
        return self.weights + self.biases

    def copy_from(self, other: BatchedQNetwork) -> None:
        with torch.no_grad():
            for mine, theirs in zip(self.parameters(), other.parameters(), strict=True):
                mine.copy_(theirs)

    def _layer(self, index: int, inputs: torch.Tensor, relu: bool = True) -> torch.Tensor:
        """``[L, N, in]`` -> ``[L, N, out]``: every learner's layer ``index`` at once."""
        out = torch.baddbmm(self.biases[index], inputs, self.weights[index])
        return F.relu(out) if relu else out

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        """``patches [L, B, P, F]`` uint8 (:func:`frame_patches`) -> Q-values ``[L, B, A]``."""
        num_learners, batch = patches.shape[:2]
        (rows1, cols1), (rows2, cols2) = self.grids
        k = self.patches[1]
        hidden = self._layer(0, patches.flatten(1, 2).float() / 255.0)  # [L, B * P, C1]
        # The second layer's k x k patches, (kh, kw, C1) each; rows and columns beyond the
        # last whole patch are dropped (as conv2d does).
        grid = hidden.view(num_learners, batch, rows1, cols1, -1)[:, :, : rows2 * k, : cols2 * k]
        grid = grid.reshape(num_learners, batch * rows2, k, cols2, -1).transpose(2, 3)
        hidden = self._layer(1, grid.reshape(num_learners, batch * rows2 * cols2, -1))
        hidden = self._layer(2, hidden.view(num_learners, batch, -1))
        return self._layer(3, hidden, relu=False)


class ReplayBuffers:
    """One ring buffer of transitions per learner, all preallocated as ``[L, capacity, ...]``.

    Learners store different numbers of transitions (none after the platform is found),
    so each has its own write position and size.
    """

    def __init__(self, num_learners: int, capacity: int, frame_shape: tuple[int, ...]) -> None:
        self.capacity = capacity
        # Frames are never read before they are written (sampling stays below `size`), so
        # `empty`: zeroing hundreds of MB up front cost more than a short run's learning.
        self.frames = torch.empty(num_learners, capacity, *frame_shape, dtype=torch.uint8)
        self.next_frames = torch.empty_like(self.frames)
        self.actions = torch.zeros(num_learners, capacity, dtype=torch.int64)
        self.rewards = torch.zeros(num_learners, capacity)
        self.terminal = torch.zeros(num_learners, capacity)
        self.position = torch.zeros(num_learners, dtype=torch.int64)
        self.size = torch.zeros(num_learners, dtype=torch.int64)

    def add(
        self,
        learners: torch.Tensor,
        frames: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_frames: torch.Tensor,
        terminal: torch.Tensor,
    ) -> None:
        """One transition for each learner in ``learners`` (indices); the other arguments
        have a row per learner (all ``L``), of which the listed ones are stored."""
        slot = self.position[learners]
        self.frames[learners, slot] = frames[learners]
        self.next_frames[learners, slot] = next_frames[learners]
        self.actions[learners, slot] = actions[learners]
        self.rewards[learners, slot] = rewards[learners]
        self.terminal[learners, slot] = terminal[learners]
        self.position[learners] = (slot + 1) % self.capacity
        self.size[learners] = torch.clamp(self.size[learners] + 1, max=self.capacity)

    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``batch_size`` transitions per learner, uniformly with replacement from its own:
        ``(frames, actions, rewards, next_frames, terminal)``, each ``[L, batch_size, ...]``."""
        num_learners = len(self.size)
        uniforms = torch.rand(num_learners, batch_size, generator=generator, dtype=torch.float64)
        slots = (uniforms * self.size.unsqueeze(1)).long()
        rows = torch.arange(num_learners).unsqueeze(1)
        return (
            self.frames[rows, slots],
            self.actions[rows, slots],
            self.rewards[rows, slots],
            self.next_frames[rows, slots],
            self.terminal[rows, slots],
        )


def double_dqn_update(
    q_network: BatchedQNetwork,
    target_network: BatchedQNetwork,
    optimizer: torch.optim.Optimizer,
    replay: ReplayBuffers,
    config: DQNConfig,
    generator: torch.Generator,
) -> None:
    """One gradient step of every learner on a minibatch from its own replay buffer."""
    frames, actions, rewards, next_frames, terminal = replay.sample(config.batch_size, generator)
    with torch.no_grad():
        # Double DQN: the online network picks the next action, the target network values
        # it (less overestimation than the max over the target network's own values).
        next_actions = q_network(next_frames).argmax(dim=2, keepdim=True)
        next_values = target_network(next_frames).gather(2, next_actions).squeeze(2)
        targets = rewards + config.gamma * (1.0 - terminal) * next_values
    q_values = q_network(frames).gather(2, actions.unsqueeze(2)).squeeze(2)
    # Mean over each learner's minibatch, summed over learners: each learner's gradient is
    # that of its own loss.
    loss = F.smooth_l1_loss(q_values, targets, reduction="none").mean(1).sum()
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    clip_grad_norm_per_learner(
        [p.grad for p in q_network.parameters() if p.grad is not None], config.max_grad_norm
    )
    optimizer.step()


class DQN(SourceAlgorithm):
    """Batched double DQN with one conv Q-network per learner (see the module doc)."""

    name: ClassVar[str] = "dqn"
    families: ClassVar[tuple[str, ...]] = ("watermaze",)
    config_cls: ClassVar[type[SourceConfig]] = DQNConfig
    config: DQNConfig

    def learn(
        self,
        family: EnvFamily,
        tasks: NDArray[Any],
        num_episodes: int,
        seed: int,
        expert_episodes: int = 0,
    ) -> Iterator[EpisodeBatch]:
        tasks = self.checked_tasks(family, tasks, num_episodes, expert_episodes)
        config = self.config
        num_learners = len(tasks)
        num_actions = family.num_actions
        obs_shape = tuple(family.observation_space.shape or ())
        frame_shape = frame_shape_for(obs_shape, config)

        # Independent streams for the envs (start headings), the initial weights and
        # minibatches, and the exploration.
        env_seed, torch_seed, explore_seed = np.random.SeedSequence(seed).generate_state(3)
        env = family.make_batched(tasks, seed=int(env_seed))
        generator = torch.Generator().manual_seed(int(torch_seed))
        rng = np.random.default_rng(int(explore_seed))

        with torch_threads(config.num_threads):
            q_network = BatchedQNetwork(num_learners, frame_shape, num_actions, config, generator)
            target_network = BatchedQNetwork(
                num_learners, frame_shape, num_actions, config, generator
            )
            target_network.copy_from(q_network)
            # fused: one kernel for every parameter, several times faster than the default.
            optimizer = torch.optim.Adam(
                q_network.parameters(), lr=config.learning_rate, eps=config.adam_eps, fused=True
            )
            replay = ReplayBuffers(
                num_learners, config.buffer_size, patch_shape_for(frame_shape, config)
            )
        learner = _DQNLearner(
            config, q_network, target_network, optimizer, replay, generator, rng, num_episodes
        )
        yield from play_episodes(
            env,
            learner,
            num_episodes,
            expert_episodes,
            step_context=lambda: torch_threads(config.num_threads),
        )


class _DQNLearner(EpisodeLearner):
    """Every learner's Q-network, target network and replay buffer, learning every step."""

    def __init__(
        self,
        config: DQNConfig,
        q_network: BatchedQNetwork,
        target_network: BatchedQNetwork,
        optimizer: torch.optim.Optimizer,
        replay: ReplayBuffers,
        generator: torch.Generator,
        rng: np.random.Generator,
        num_episodes: int,
    ) -> None:
        self.config, self.q_network, self.target_network = config, q_network, target_network
        self.optimizer, self.replay, self.generator, self.rng = optimizer, replay, generator, rng
        self.num_episodes = num_episodes
        self.num_learners = len(replay.position)
        self.learners = torch.arange(self.num_learners)
        self.global_step = 0

    def begin(self, episode: int, expert: bool, observations: NDArray[Any]) -> None:
        self.expert = expert
        self.epsilon = (
            self.config.expert_epsilon
            if expert
            else epsilon_schedule(self.config, episode, self.num_episodes)
        )
        self.frames = frame_patches(observations, self.config)
        self.found = torch.zeros(self.num_learners, dtype=torch.bool)

    def act(self, t: int, observations: NDArray[Any]) -> NDArray[np.int64]:
        # Epsilon-greedy, one forward pass of every learner's network.
        with torch.no_grad():
            q_values = self.q_network(self.frames.unsqueeze(1)).squeeze(1)
        greedy = q_values.argmax(dim=1).numpy()
        explore = self.rng.random(self.num_learners) < self.epsilon
        random_actions = self.rng.integers(0, q_values.shape[1], size=self.num_learners)
        return np.where(explore, random_actions, greedy).astype(np.int64)

    def observe(
        self,
        t: int,
        actions: NDArray[np.int64],
        rewards: NDArray[np.float32],
        next_observations: NDArray[Any],
    ) -> None:
        config = self.config
        next_frames = frame_patches(next_observations, config)
        if not self.expert:
            # Only the learners still looking for the platform store the transition;
            # reaching it is terminal (see the module doc).
            reached = torch.from_numpy(rewards > 0)
            self.replay.add(
                self.learners[~self.found],
                self.frames,
                torch.from_numpy(actions),
                torch.from_numpy(rewards),
                next_frames,
                reached.float(),
            )
            self.found |= reached
            self.global_step += 1
            step = self.global_step
            if step >= config.learning_starts and step % config.train_frequency == 0:
                double_dqn_update(
                    self.q_network,
                    self.target_network,
                    self.optimizer,
                    self.replay,
                    config,
                    self.generator,
                )
            if step % config.target_update_interval == 0:
                self.target_network.copy_from(self.q_network)
        self.frames = next_frames
