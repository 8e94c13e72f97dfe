"""The contract between source RL algorithms and the history-dataset builder.

A source algorithm runs ``L`` independent learners at once, learner ``i`` on task
``tasks[i]`` of one environment family, on the family's batched env. It learns from every
step and yields each episode as it is played, for all learners together, as an
:class:`EpisodeBatch`; the dataset builder decides which episodes to keep. After
``num_episodes`` learning episodes it plays ``expert_episodes`` more with learning
frozen (its final policy): the post-learning data that Expert Distillation trains on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from adbench.envs.base import BatchedEnv, EnvFamily
from adbench.errors import AdbenchError
from adbench.validation import build_args

if TYPE_CHECKING:  # torch is imported by the sources that use it, not by the numpy ones
    import torch


@dataclass(frozen=True)
class EpisodeBatch:
    """One episode of every learner.

    ``observations[:, t]`` is what learner ``i`` saw before taking ``actions[:, t]`` and
    receiving ``rewards[:, t]``. Episodes have the family's fixed length ``T``, so the last
    step of each is ``truncated`` and none is ``terminated``.

    A source that learns from the env's underlying state instead of its observation (the
    Watermaze's pose instead of its frames) yields ``observations=None`` and the
    ``states``; :meth:`with_observations` renders them, so that only the episodes a
    dataset keeps pay for rendering.
    """

    episode: int  # index within the learning history (expert episodes continue the count)
    observations: NDArray[Any] | None  # [L, T, *obs_shape], the env's dtype
    actions: NDArray[np.int64]  # [L, T]
    rewards: NDArray[np.float32]  # [L, T]
    expert: bool = False  # played after learning, with learning frozen
    states: NDArray[Any] | None = None  # [L, T, *state_shape] when observations is None

    def with_observations(self, family: EnvFamily) -> EpisodeBatch:
        """This batch with its observations (rendered from its states if need be)."""
        if self.observations is not None:
            return self
        if self.states is None:
            raise AdbenchError("an episode batch needs observations or states")
        return replace(self, observations=family.render_states(self.states))

    @property
    def returns(self) -> NDArray[np.float32]:
        return self.rewards.sum(axis=1)


@dataclass
class SourceConfig:
    """Hyperparameters of a source algorithm; subclasses add theirs as fields."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def linear_epsilon(
    start: float, end: float, decay_fraction: float, episode: int, num_episodes: int
) -> float:
    """Exploration rate of learning episode ``episode``: linear from ``start`` to ``end``
    over the first ``decay_fraction`` of the ``num_episodes``, then flat."""
    decay_episodes = max(decay_fraction * num_episodes, 1.0)
    progress = min(episode / decay_episodes, 1.0)
    return start + progress * (end - start)


def clip_grad_norm_per_learner(
    grads: list[torch.Tensor], max_norm: float, *, fused_norm: bool = False
) -> None:
    """Scale each learner's gradient in place to a norm <= ``max_norm``: ``grads`` are the
    gradients of batched parameters (learner axis first), and learner ``i``'s gradient is
    its slice of every one of them. ``fused_norm`` takes each slice's norm in one pass
    (``torch.linalg.vector_norm``: ~3x faster than squaring, then summing); the default
    squares and sums, the rounding that DQN's histories were built with."""
    import torch

    if fused_norm:
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])
        norm = torch.linalg.vector_norm(norms, dim=0)
    else:
        first, *rest = grads
        total = first.pow(2).flatten(1).sum(1)
        for grad in rest:
            total += grad.pow(2).flatten(1).sum(1)
        norm = total.sqrt()
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(scale.view(-1, *([1] * (grad.dim() - 1))))


class SourceAlgorithm(ABC):
    """A source RL algorithm, vectorised over independent learners.

    Subclasses set ``name``, ``families`` (the env families it runs on) and ``config_cls``,
    and implement :meth:`learn`. Everything random comes from ``seed``: the same seed gives
    the same histories, bit for bit.
    """

    name: ClassVar[str]
    families: ClassVar[tuple[str, ...]]
    config_cls: ClassVar[type[SourceConfig]] = SourceConfig
    # The histories' version: the same seed, hyperparameters and version give the same
    # histories bit for bit. A change that alters them bumps it (and says what changed in
    # the source's doc); datasets record it beside the hyperparameters.
    version: ClassVar[int] = 1

    def __init__(self, config: SourceConfig | None = None, **overrides: Any) -> None:
        config = config or self.config_cls()
        self.config = build_args(
            type(config),
            [
                (f"the {self.name} defaults", config.to_dict()),
                (f"the {self.name} hyperparameters", overrides),
            ],
        )

    def check_family(self, family: EnvFamily) -> None:
        if family.name not in self.families:
            raise AdbenchError(
                f"source {self.name!r} does not run on {family.name}: it runs on "
                f"{', '.join(self.families)}"
            )

    def checked_tasks(
        self, family: EnvFamily, tasks: NDArray[Any], num_episodes: int, expert_episodes: int
    ) -> NDArray[Any]:
        """Check the arguments of a :meth:`learn` call; returns the validated tasks."""
        self.check_family(family)
        if num_episodes < 0 or expert_episodes < 0:
            raise AdbenchError(
                f"episode counts must be >= 0, got num_episodes={num_episodes}, "
                f"expert_episodes={expert_episodes}"
            )
        return family.validate_tasks(tasks)

    @abstractmethod
    def learn(
        self,
        family: EnvFamily,
        tasks: NDArray[Any],
        num_episodes: int,
        seed: int,
        expert_episodes: int = 0,
    ) -> Iterator[EpisodeBatch]:
        """Train ``len(tasks)`` learners, one per row of ``tasks``, for ``num_episodes``
        episodes each, yielding every episode; then yield ``expert_episodes`` episodes of
        the final policies with learning frozen (``expert=True``)."""


class EpisodeLearner(ABC):
    """The per-step side of a source, driven by :func:`play_episodes`: what it does at an
    episode's start, how it acts, what it learns from a step, and what it does once the
    episode is over. ``expert`` episodes are played with learning frozen."""

    @abstractmethod
    def begin(self, episode: int, expert: bool, observations: NDArray[Any]) -> None:
        """A new episode: ``observations`` is what every env shows after its reset."""

    @abstractmethod
    def act(self, t: int, observations: NDArray[Any]) -> NDArray[np.int64]:
        """Every learner's action at step ``t``."""

    def observe(  # noqa: B027  (an optional hook: a learner that updates per episode has none)
        self,
        t: int,
        actions: NDArray[np.int64],
        rewards: NDArray[np.float32],
        next_observations: NDArray[Any],
    ) -> None:
        """Learn from step ``t`` (called after every step; nothing by default)."""

    def end(self, batch: EpisodeBatch) -> None:  # noqa: B027  (an optional hook)
        """The episode is over (an update on the whole episode goes here)."""


def play_episodes(
    env: BatchedEnv,
    learner: EpisodeLearner,
    num_episodes: int,
    expert_episodes: int,
    *,
    as_states: bool = False,
    step_context: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> Iterator[EpisodeBatch]:
    """The episode loop every source shares: reset, then ``act``, step, record and
    ``observe`` for each of the family's steps, ``end``, and yield the episode; learning
    episodes first, then the ``expert`` ones. With ``as_states`` the env returns states
    (poses) and the batches carry them as ``states``. ``step_context`` is entered around
    each episode's steps (a source's torch thread count) and left before it is yielded."""
    horizon = env.episode_length
    num_learners = env.num_envs
    shape = env.observation_space.shape or ()
    for episode in range(num_episodes + expert_episodes):
        expert = episode >= num_episodes
        observations = np.empty((num_learners, horizon, *shape), dtype=env.observation_space.dtype)
        actions = np.empty((num_learners, horizon), dtype=np.int64)
        rewards = np.empty((num_learners, horizon), dtype=np.float32)
        with step_context():
            obs = env.reset()
            learner.begin(episode, expert, obs)
            for t in range(horizon):
                action = learner.act(t, obs)
                next_obs, reward, _, _ = env.step(action)
                observations[:, t] = obs
                actions[:, t] = action
                rewards[:, t] = reward
                learner.observe(t, action, reward, next_obs)
                obs = next_obs
            batch = EpisodeBatch(
                episode=episode,
                observations=None if as_states else observations,
                actions=actions,
                rewards=rewards,
                expert=expert,
                states=observations if as_states else None,
            )
            learner.end(batch)
        yield batch
