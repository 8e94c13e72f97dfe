"""Advantage actor-critic on the grid worlds, every learner at once.

Close to the paper's source algorithm (A3C: GAE lambda 0.95, gamma 0.99, entropy bonus
0.01, an MLP), but synchronous and batched: each of the ``L`` learners, learner ``i`` on
task ``tasks[i]``, has its own network, and the networks are stored as batched tensors
(``[L, in, out]`` weights) so that a forward pass of every learner is one
``torch.baddbmm`` per layer. Nothing is shared between learners: the loss is a sum of
per-learner losses, so each learner's gradient is its own, gradient clipping is per
learner, and Adam (elementwise) keeps a per-learner state.

**Input features.** One-hot ``x``, one-hot ``y``, a one-hot agent-side memory of the
number of rewards received so far in the episode, and the normalised time step
``t / T``. The observation ``(x, y)`` alone is not Markov when a reward changes what is
left to do (Key-to-Door: has the key been picked up? Dark Room Hard: the goal pays
once), so the memory counts rewards up to the largest count that still matters (0..1
for ``darkroom-hard``, 0..2 for ``key-to-door``; Dark Room pays on every step on the
goal, so there it is a single constant unit). The time step makes the value function
well defined in fixed-length episodes (the return left depends on the steps left), so
the last step of an episode is a true terminal: no bootstrapping past it.

**Updates.** One update per learner after every episode, on that episode (one rollout
of ``T`` steps, T = 20 or 50): GAE(lambda) advantages, policy-gradient loss, value loss,
entropy bonus, one Adam step. The policy head starts near zero so that every history
starts from the uniformly random policy; the entropy bonus and the small steps keep the
improvement gradual.

**Deviations from the paper, and why.**

* Learning rate 1e-3, not 1e-4: A3C averages gradients from 100 actors per task, while
  here each learner has one actor, so it gets 100x fewer samples per update and needs
  larger steps to learn within a few thousand episodes.
* Network 2 hidden layers of 64 (tanh), not 3 of 128: acting is sequential, so every
  environment step reads every learner's weights once, and that read dominates the cost
  (memory-bound). 3x128 has ~7x the weights per learner and runs ~7x slower here, while
  2x64 still learns these grids (Dark Room near-optimal in ~1000 episodes). The paper's
  size is ``hidden_size=128, num_hidden_layers=3`` (it learns Dark Room faster, in
  ~500 episodes).

**Versions of the histories.** Version 2 acts with
:meth:`BatchedActorCritic.step_logits` (weighted weight-row sums instead of ``baddbmm``:
the same policy up to float rounding) and samples by inverting the policy's CDF with one
uniform per learner and step instead of ``torch.multinomial``, and its updates compute
the policy and value heads as one batched product: same algorithm and hyperparameters,
other histories for a given seed. Version 1 is adbench up to ``95df074``.

Expert episodes (after learning): the final stochastic policy, sampled (the policy the
learner actually plays; ``expert_greedy=True`` takes the most likely action instead),
with learning frozen.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
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
from adbench.validation import ARGS_CONFIG, NonNegativeFloat, Positive, PositiveFloat, UnitInterval

# Largest reward count that still changes what the agent should do, per family.
MEMORY_CAP: dict[str, int] = {"darkroom": 0, "darkroom-hard": 1, "key-to-door": 2}


@args_dataclass(config=ARGS_CONFIG)
class A2CConfig(SourceConfig):
    """Hyperparameters of the batched advantage actor-critic."""

    # The paper's network is 3 x 128; see the module doc for why the default is smaller.
    hidden_size: Positive = 64
    num_hidden_layers: Positive = 2
    learning_rate: PositiveFloat = 1e-3
    adam_eps: PositiveFloat = 1e-5
    gamma: UnitInterval = 0.99
    gae_lambda: UnitInterval = 0.95
    entropy_coef: NonNegativeFloat = 0.01
    value_coef: NonNegativeFloat = 0.5
    # Per-learner global gradient-norm clip.
    max_grad_norm: PositiveFloat = 0.5
    # Expert episodes take the most likely action instead of sampling the policy.
    expert_greedy: bool = False


class BatchedActorCritic:
    """``L`` independent MLPs (shared torso, policy and value heads), one per learner.

    Parameters are leaf tensors with a leading learner axis: ``weights[k]`` is
    ``[L, in, out]`` and ``biases[k]`` is ``[L, 1, out]``.
    """

    def __init__(
        self,
        num_learners: int,
        num_inputs: int,
        num_actions: int,
        config: A2CConfig,
        generator: torch.Generator,
    ) -> None:
        sizes = [num_inputs] + [config.hidden_size] * config.num_hidden_layers
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        # Torso layers, then the policy head, then the value head. Orthogonal init with
        # a gain of sqrt(2) for the tanh torso (as CleanRL), 0.01 for the policy head so
        # that the initial policy is uniform, 1 for the value head.
        layers = [(n_in, n_out, np.sqrt(2.0)) for n_in, n_out in pairwise(sizes)]
        layers += [(sizes[-1], num_actions, 0.01), (sizes[-1], 1, 1.0)]
        for n_in, n_out, gain in layers:
            weight = orthogonal((num_learners, n_in, n_out), gain, generator)
            self.weights.append(weight.requires_grad_())
            self.biases.append(torch.zeros(num_learners, 1, n_out, requires_grad=True))

        # Acting reads each learner's weights as rows: layer k's [L, in, out] weight is a
        # table of L * in rows, and a learner's product is the sum of its `in` rows weighted
        # by its inputs (an embedding bag). Bag i of a dense layer is rows [i*in, (i+1)*in).
        self.num_learners, self.num_inputs = num_learners, num_inputs
        self.input_offsets = torch.arange(num_learners) * num_inputs
        self.dense_rows = torch.arange(num_learners * config.hidden_size)
        self.dense_bags = torch.arange(0, num_learners * config.hidden_size, config.hidden_size)

    def parameters(self) -> list[torch.Tensor]:
        return self.weights + self.biases

    def step_logits(self, units: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Policy logits ``[L, A]`` for one step of every learner whose input features are 0
        except at ``units [L, K]`` (indices into the feature vector), where they are
        ``values [L, K]``: the logits :meth:`__call__` gives for those features (up to float
        rounding), without the value head.

        Why not ``__call__``: a step is one input per learner, so each layer is ``L``
        matrix-vector products, and ``baddbmm`` runs them as ``L`` tiny GEMMs (~1 ms for
        1,300 learners' 64 x 64 layer, ~4x the time to stream its 21 MB of weights). An
        ``embedding_bag`` sums weighted weight rows in one streaming pass: the first layer
        reads only the ``K`` rows of the one-hot units, the others each learner's ``in``
        rows.
        """
        num_learners = self.num_learners
        first, *torso = list(zip(self.weights[:-2], self.biases[:-2], strict=True))
        weight, bias = first
        hidden = F.embedding_bag(
            units + self.input_offsets[:, None],
            weight.view(-1, weight.shape[-1]),
            mode="sum",
            per_sample_weights=values,
        )
        hidden = torch.tanh(hidden.add_(bias.view(num_learners, -1)))
        for weight, bias in torso:
            hidden = torch.tanh(self._dense(hidden, weight).add_(bias.view(num_learners, -1)))
        return self._dense(hidden, self.weights[-2]).add_(self.biases[-2].view(num_learners, -1))

    def _dense(self, inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``inputs [L, in] @ weight [L, in, out]`` per learner, as weighted row sums."""
        return F.embedding_bag(
            self.dense_rows,
            weight.view(-1, weight.shape[-1]),
            self.dense_bags,
            mode="sum",
            per_sample_weights=inputs.reshape(-1),
        )

    def __call__(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features [L, N, D]`` -> ``(logits [L, N, A], values [L, N])``."""
        hidden = features
        for weight, bias in zip(self.weights[:-2], self.biases[:-2], strict=True):
            hidden = torch.tanh(torch.baddbmm(bias, hidden, weight))
        # Both heads in one product: a GEMM of 1 or 5 columns costs nearly as much as one of
        # 6 (this halves the heads' share of an update's forward and backward).
        heads = torch.baddbmm(
            torch.cat(self.biases[-2:], dim=-1), hidden, torch.cat(self.weights[-2:], dim=-1)
        )
        return heads[..., :-1], heads[..., -1]


def orthogonal(
    shape: tuple[int, int, int], gain: float, generator: torch.Generator
) -> torch.Tensor:
    """``[L, in, out]`` matrices, each (semi-)orthogonal times ``gain``, from ``generator``."""
    num_learners, n_in, n_out = shape
    gaussian = torch.randn(num_learners, max(n_in, n_out), min(n_in, n_out), generator=generator)
    q, r = torch.linalg.qr(gaussian)
    # Sign fix so the distribution is uniform over orthogonal matrices.
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    q = q if n_in >= n_out else q.transpose(-1, -2)
    return (gain * q).contiguous()


def episode_features(
    observations: NDArray[np.int64],
    rewards: NDArray[np.float32],
    size: int,
    memory_cap: int,
) -> torch.Tensor:
    """``[L, T, D]`` inputs of an episode's steps: one-hot x, one-hot y, one-hot reward
    memory (rewards received before the step, capped), ``t / T``."""
    num_learners, horizon = rewards.shape
    units = torch.from_numpy(step_units(observations, reward_memory(rewards, memory_cap), size))
    features = torch.zeros(num_learners, horizon, 2 * size + memory_cap + 2)
    features.scatter_(-1, units, 1.0)
    features[:, :, -1] = torch.arange(horizon, dtype=torch.float32) / horizon
    return features


def reward_memory(rewards: NDArray[np.float32], memory_cap: int) -> NDArray[np.int64]:
    """``[L, T]``: the number of rewards received before each step, capped."""
    received = np.cumsum(rewards > 0, axis=1)
    before = np.concatenate([np.zeros_like(received[:, :1]), received[:, :-1]], axis=1)
    return np.minimum(before, memory_cap)


def step_units(
    observations: NDArray[np.int64], memory: NDArray[np.int64], size: int
) -> NDArray[np.int64]:
    """``[..., 3]``: the indices of the one-hot features that are 1 (x, y, memory)."""
    return np.stack(
        [observations[..., 0], size + observations[..., 1], 2 * size + memory], axis=-1
    ).astype(np.int64)


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, gae_lambda: float
) -> torch.Tensor:
    """GAE(lambda) over one whole episode per learner, ``[L, T]``; the episode's end is
    terminal (time is an input), so the value after the last step is 0."""
    advantages = torch.zeros_like(rewards)
    last_advantage = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_advantage = delta + gamma * gae_lambda * last_advantage
        advantages[:, t] = last_advantage
        next_value = values[:, t]
    return advantages


def clip_grad_norm_per_learner(parameters: list[torch.Tensor], max_norm: float) -> None:
    """Scale each learner's gradient (its slice of every parameter) to norm <= max_norm."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])
    scale = (max_norm / (torch.linalg.vector_norm(norms, dim=0) + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


class A2C(SourceAlgorithm):
    """Batched synchronous advantage actor-critic, one network per learner (see the module doc)."""

    name: ClassVar[str] = "a2c"
    families: ClassVar[tuple[str, ...]] = ("darkroom", "darkroom-hard", "key-to-door")
    config_cls: ClassVar[type[SourceConfig]] = A2CConfig
    config: A2CConfig
    version: ClassVar[int] = 2  # see the module doc

    def learn(
        self,
        family: EnvFamily,
        tasks: NDArray[Any],
        num_episodes: int,
        seed: int,
        expert_episodes: int = 0,
    ) -> Iterator[EpisodeBatch]:
        tasks = self.checked_tasks(family, tasks, num_episodes, expert_episodes)
        # Independent streams for the envs (Key-to-Door's start cells), the initial
        # weights and the action sampling.
        env_seed, torch_seed = np.random.SeedSequence(seed).generate_state(2)
        env = family.make_batched(tasks, seed=int(env_seed))
        generator = torch.Generator().manual_seed(int(torch_seed))
        learner = _A2CLearner(self.config, family, len(tasks), generator)
        yield from play_episodes(env, learner, num_episodes, expert_episodes)


class _A2CLearner(EpisodeLearner):
    """Every learner's network and optimiser; acts step by step, updates per episode."""

    def __init__(
        self, config: A2CConfig, family: EnvFamily, num_learners: int, generator: torch.Generator
    ) -> None:
        self.config, self.generator = config, generator
        self.size = int(family.observation_space.nvec[0])
        self.memory_cap = MEMORY_CAP[family.name]
        self.horizon = family.episode_length
        self.num_learners = num_learners
        self.num_inputs = 2 * self.size + self.memory_cap + 2
        self.network = BatchedActorCritic(
            num_learners, self.num_inputs, family.num_actions, config, generator
        )
        self.optimizer = torch.optim.Adam(
            self.network.parameters(), lr=config.learning_rate, eps=config.adam_eps, fused=True
        )

    def begin(self, episode: int, expert: bool, observations: NDArray[Any]) -> None:
        self.expert = expert
        self.memory = np.zeros(self.num_learners, dtype=np.int64)

    @torch.no_grad()
    def act(self, t: int, observations: NDArray[Any]) -> NDArray[np.int64]:
        # The step's features: 1 at x, y and the reward memory, t / T at the time unit.
        units = np.empty((self.num_learners, 4), dtype=np.int64)
        units[:, :3] = step_units(observations, self.memory, self.size)
        units[:, 3] = self.num_inputs - 1
        values = torch.ones(self.num_learners, 4)
        values[:, 3] = t / self.horizon
        logits = self.network.step_logits(torch.from_numpy(units), values)
        if self.expert and self.config.expert_greedy:
            return logits.argmax(dim=-1).numpy().astype(np.int64)
        # Inverse-CDF sampling: one uniform per learner (multinomial costs 6x as much here).
        cdf = torch.softmax(logits, dim=-1).cumsum_(dim=-1)
        uniform = torch.rand(self.num_learners, 1, generator=self.generator)
        action = (cdf < uniform).sum(dim=-1).clamp_(max=logits.shape[-1] - 1)
        return action.numpy().astype(np.int64)

    def observe(
        self,
        t: int,
        actions: NDArray[np.int64],
        rewards: NDArray[np.float32],
        next_observations: NDArray[Any],
    ) -> None:
        self.memory = np.minimum(self.memory + (rewards > 0), self.memory_cap)

    def end(self, batch: EpisodeBatch) -> None:
        if self.expert:
            return
        # Update: every learner's episode in one batched forward/backward pass.
        config, network = self.config, self.network
        assert batch.observations is not None
        features = episode_features(batch.observations, batch.rewards, self.size, self.memory_cap)
        logits, values = network(features)
        log_probs = torch.log_softmax(logits, dim=-1)
        action_t = torch.from_numpy(batch.actions)
        reward_t = torch.from_numpy(batch.rewards)
        with torch.no_grad():
            advantages = gae_advantages(reward_t, values, config.gamma, config.gae_lambda)
            value_targets = advantages + values
        taken_log_probs = log_probs.gather(-1, action_t.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        # Means over the episode's steps, summed over learners: each learner's gradient is
        # that of its own loss.
        policy_loss = -(taken_log_probs * advantages).mean(1)
        value_loss = 0.5 * (values - value_targets).pow(2).mean(1)
        loss = (
            policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy.mean(1)
        ).sum()
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        clip_grad_norm_per_learner(network.parameters(), config.max_grad_norm)
        self.optimizer.step()
