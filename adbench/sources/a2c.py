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
improvement gradual. The update is a backward pass alone: the acting steps keep the
activations they computed (the weights do not change within an episode), and the loss's
gradient is written out (:func:`head_gradients`, :meth:`BatchedActorCritic.gradients`;
a test checks both against autograd).

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

**Versions of the histories.** Version 2 acts with weighted weight-row sums instead of
``baddbmm`` (the same policy up to float rounding) and samples by inverting the policy's
CDF with one uniform per learner and step instead of ``torch.multinomial``, and its
updates compute the policy and value heads as one batched product. Version 3 updates
from the activations the acting steps computed, with hand-written gradients, takes tanh
as ``2 sigmoid(2x) - 1``, computes the policy and value heads while acting, and takes
each learner's gradient norm in one pass. Each is the same algorithm with the same
hyperparameters, but float rounding makes the histories of a given seed other ones.
Version 1 is adbench up to ``95df074``, version 2 up to ``7980c9c``.
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
    clip_grad_norm_per_learner,
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
    """``L`` independent MLPs (a tanh torso, then the policy and value heads as one layer),
    one per learner, with the gradients of the A2C loss written out by hand.

    Parameters are plain tensors with a leading learner axis: ``weights[k]`` is
    ``[L, in, out]`` and ``biases[k]`` is ``[L, 1, out]``; the last layer is both heads,
    ``out = num_actions + 1`` (the policy's logits, then the value).

    Why by hand, not autograd: the acting steps already compute every activation the
    update needs (the weights do not change within an episode), so the update is a
    backward pass alone, on the activations :meth:`step` recorded, with the loss's gradient
    in closed form (:func:`head_gradients`); autograd would recompute the forward.
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
        # Orthogonal init with a gain of sqrt(2) for the tanh torso (as CleanRL), 0.01 for
        # the policy head so that the initial policy is uniform, 1 for the value head;
        # drawn torso first, then policy, then value (the draws of versions 1 and 2).
        self.weights: list[torch.Tensor] = []
        for n_in, n_out in pairwise(sizes):
            self.weights.append(orthogonal((num_learners, n_in, n_out), np.sqrt(2.0), generator))
        policy = orthogonal((num_learners, sizes[-1], num_actions), 0.01, generator)
        value = orthogonal((num_learners, sizes[-1], 1), 1.0, generator)
        self.weights.append(torch.cat([policy, value], dim=-1))
        self.biases = [torch.zeros(num_learners, 1, w.shape[-1]) for w in self.weights]
        self.num_learners, self.num_inputs = num_learners, num_inputs

        # Acting reads each learner's weights as rows: layer k's [L, in, out] weight is a
        # table of L * in rows, and a learner's product is the sum of its `in` rows weighted
        # by its inputs (an embedding bag). Bag i of a dense layer is rows [i*in, (i+1)*in).
        # int32 indices: half the index traffic of int64, and embedding_bag's faster path.
        hidden = config.hidden_size
        self.dense_rows = torch.arange(num_learners * hidden, dtype=torch.int32)
        self.dense_bags = torch.arange(0, num_learners * hidden, hidden, dtype=torch.int32)

    def parameters(self) -> list[torch.Tensor]:
        return self.weights + self.biases

    def step(
        self, rows: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One step of every learner whose input features are 0 except at ``K`` units,
        where they are ``values [L, K]``: the heads ``[L, A + 1]`` (logits, value) and the
        torso's activations ``[L, hidden]`` per layer, as :meth:`forward` gives them for
        those features (up to float rounding). ``rows [L, K]`` (int32) are the units' rows
        in the first layer's ``[L * D, hidden]`` table: ``learner * D + unit``
        (:meth:`first_layer_rows`).

        Why not :meth:`forward`: a step is one input per learner, so each layer is ``L``
        matrix-vector products, and ``baddbmm`` runs them as ``L`` tiny GEMMs (~1 ms for
        1,300 learners' 64 x 64 layer, ~4x the time to stream its 21 MB of weights). An
        ``embedding_bag`` sums weighted weight rows in one streaming pass: the first layer
        reads only the ``K`` rows of the one-hot units, the others each learner's ``in``
        rows.
        """
        num_learners = self.num_learners
        first = self.weights[0]
        hidden = F.embedding_bag(
            rows, first.view(-1, first.shape[-1]), mode="sum", per_sample_weights=values
        )
        activations = [tanh_(hidden.add_(self.biases[0].view(num_learners, -1)))]
        for weight, bias in zip(self.weights[1:-1], self.biases[1:-1], strict=True):
            hidden = self._dense(activations[-1], weight).add_(bias.view(num_learners, -1))
            activations.append(tanh_(hidden))
        heads = self._dense(activations[-1], self.weights[-1])
        return heads.add_(self.biases[-1].view(num_learners, -1)), activations

    def first_layer_rows(self, units: NDArray[np.integer]) -> NDArray[np.int32]:
        """``units [L, K]`` (indices into the feature vector) -> their rows in the first
        layer's table, for :meth:`step`."""
        return (units + np.arange(self.num_learners)[:, None] * self.num_inputs).astype(np.int32)

    def _dense(self, inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``inputs [L, in] @ weight [L, in, out]`` per learner, as weighted row sums."""
        return F.embedding_bag(
            self.dense_rows,
            weight.view(-1, weight.shape[-1]),
            self.dense_bags,
            mode="sum",
            per_sample_weights=inputs.reshape(-1),
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``features [L, N, D]`` -> the heads ``[L, N, A + 1]`` and the torso's activations
        ``[L, N, hidden]`` per layer, as batched matrix products: the reference forward pass
        that :meth:`step` must match."""
        activations: list[torch.Tensor] = []
        hidden = features
        for weight, bias in zip(self.weights[:-1], self.biases[:-1], strict=True):
            hidden = torch.tanh(torch.baddbmm(bias, hidden, weight))
            activations.append(hidden)
        return torch.baddbmm(self.biases[-1], hidden, self.weights[-1]), activations

    def gradients(
        self, features: torch.Tensor, activations: list[torch.Tensor], head_grads: torch.Tensor
    ) -> list[torch.Tensor]:
        """Backpropagation through the network: the gradients of every weight, then every
        bias (the order of :meth:`parameters`), of a loss whose gradient with respect to the
        heads is ``head_grads [A + 1, L, N]`` (head-major, as :func:`head_gradients` gives
        it), given the forward pass's ``features [L, N, D]`` and torso activations
        ``[L, N, hidden]`` per layer."""
        inputs = [features, *activations]
        weight_grads: list[torch.Tensor] = []
        bias_grads: list[torch.Tensor] = []
        grad = head_grads.permute(1, 2, 0).contiguous()
        for layer in reversed(range(len(self.weights))):
            weight_grads.append(torch.bmm(inputs[layer].transpose(1, 2), grad))
            bias_grads.append(grad.sum(1, keepdim=True))
            if layer == 0:
                break
            # Through the layer, then through tanh: d tanh(z) = 1 - tanh(z)^2.
            upstream = torch.bmm(grad, self.weights[layer].transpose(1, 2))
            activation = inputs[layer]
            grad = upstream.addcmul_(upstream, activation * activation, value=-1.0)
        return weight_grads[::-1] + bias_grads[::-1]


def tanh_(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x)`` in place, as ``2 sigmoid(2x) - 1``: the same function (to within float
    rounding), and ~4x faster than ``torch.tanh`` on the CPU (0.06 against 0.21 ms for
    1,300 x 64 values, one thread)."""
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


def head_gradients(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    value_targets: torch.Tensor,
    config: A2CConfig,
) -> torch.Tensor:
    """``[A + 1, L, T]``: the gradient with respect to the logits ``[A, L, T]`` (head-major)
    and the values ``[L, T]`` of each learner's loss, the mean over its episode's ``T``
    steps of

        -log pi(a_t) A_t + value_coef * 0.5 (V_t - target_t)^2 - entropy_coef * H(pi_t)

    in closed form: d/dz_j of -log pi(a) is pi_j - [j = a], and of the entropy
    ``H = -sum_j pi_j log pi_j`` it is ``-pi_j (log pi_j + H)``."""
    steps = logits.shape[-1]
    log_probs = torch.log_softmax(logits, dim=0)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(0)
    policy = probs * advantages
    policy.scatter_add_(0, actions.unsqueeze(0), -advantages.unsqueeze(0))
    policy.addcmul_(probs, log_probs.add_(entropy), value=config.entropy_coef)
    value = config.value_coef * (values - value_targets)
    return torch.cat([policy, value.unsqueeze(0)]).div_(steps)


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


class A2C(SourceAlgorithm):
    """Batched synchronous advantage actor-critic, one network per learner (see the module doc)."""

    name: ClassVar[str] = "a2c"
    families: ClassVar[tuple[str, ...]] = ("darkroom", "darkroom-hard", "key-to-door")
    config_cls: ClassVar[type[SourceConfig]] = A2CConfig
    config: A2CConfig
    version: ClassVar[int] = 3  # see the module doc

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
    """Every learner's network and optimiser; acts step by step, recording the activations
    of each step, and updates per episode with a backward pass over them."""

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
        # A step's input units: x, y and the reward memory (one-hot), and the time unit,
        # whose value is t / T (the others' is 1); as rows of the first layer's table, the
        # units of x = y = memory = 0 plus the step's x, y and memory.
        zero_units = np.array([0, self.size, 2 * self.size, self.num_inputs - 1])
        self.row_base = self.network.first_layer_rows(np.tile(zero_units, (num_learners, 1)))
        self.rows = self.row_base.copy()
        self.unit_values = torch.ones(self.horizon, num_learners, 4)
        self.unit_values[:, :, 3] = (torch.arange(self.horizon) / self.horizon)[:, None]
        # What the acting steps compute, kept for the update: the torso's activations
        # [L, T, hidden] per layer, and the heads [A + 1, L, T], head-major so that the
        # softmax over the actions runs across learners (an order of magnitude faster
        # than over a last axis of 5).
        hidden = (num_learners, self.horizon, config.hidden_size)
        self.activations = [torch.empty(hidden) for _ in range(config.num_hidden_layers)]
        self.heads = torch.empty(family.num_actions + 1, num_learners, self.horizon)

    def begin(self, episode: int, expert: bool, observations: NDArray[Any]) -> None:
        self.expert = expert
        self.memory = np.zeros(self.num_learners, dtype=np.int64)

    @torch.no_grad()
    def act(self, t: int, observations: NDArray[Any]) -> NDArray[np.int64]:
        np.add(self.row_base[:, :2], observations, out=self.rows[:, :2])
        if self.memory_cap:
            np.add(self.row_base[:, 2], self.memory, out=self.rows[:, 2])
        heads, activations = self.network.step(torch.from_numpy(self.rows), self.unit_values[t])
        heads = heads.t().contiguous()  # [A + 1, L]
        if not self.expert:
            self.heads[:, :, t] = heads
            for kept, activation in zip(self.activations, activations, strict=True):
                kept[:, t] = activation
        logits = heads[:-1]
        if self.expert and self.config.expert_greedy:
            return logits.argmax(dim=0).numpy()
        # Inverse-CDF sampling, one uniform per learner (multinomial costs 6x as much): the
        # action is the number of the CDF's first A - 1 steps below the draw.
        cdf = logits.sub(logits.amax(dim=0)).exp_().cumsum_(dim=0)
        draws = torch.rand(self.num_learners, generator=self.generator).mul_(cdf[-1])
        return (cdf[:-1] < draws).sum(dim=0).numpy()

    def observe(
        self,
        t: int,
        actions: NDArray[np.int64],
        rewards: NDArray[np.float32],
        next_observations: NDArray[Any],
    ) -> None:
        self.memory = np.minimum(self.memory + (rewards > 0), self.memory_cap)

    @torch.no_grad()
    def end(self, batch: EpisodeBatch) -> None:
        if self.expert:
            return
        # Update: every learner's episode in one batched backward pass over the activations
        # its steps recorded. Each learner's gradient is that of its own loss.
        config, network = self.config, self.network
        assert batch.observations is not None
        logits, values = self.heads[:-1], self.heads[-1]
        rewards = torch.from_numpy(batch.rewards)
        advantages = gae_advantages(rewards, values, config.gamma, config.gae_lambda)
        head_grads = head_gradients(
            logits, values, torch.from_numpy(batch.actions), advantages, advantages + values, config
        )
        features = episode_features(batch.observations, batch.rewards, self.size, self.memory_cap)
        grads = network.gradients(features, self.activations, head_grads)
        clip_grad_norm_per_learner(grads, config.max_grad_norm, fused_norm=True)
        for parameter, grad in zip(network.parameters(), grads, strict=True):
            parameter.grad = grad
        self.optimizer.step()
