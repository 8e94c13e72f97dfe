"""What every adbench environment family shares.

Each family provides three things, in its own module:

* a Gymnasium ``Env`` for one task (registered as ``adbench/<Name>-v0``);
* a :class:`BatchedEnv` that steps ``N`` tasks at once on numpy arrays, giving exactly the
  single env's transitions for the same task, seed and actions;
* an :class:`EnvFamily` record: task space, named fixed splits, reference returns.

Every episode has a fixed length (``episode_length`` steps, then ``truncated``): none of
the paper's environments ends an episode early, which keeps the episodes of a learning
history aligned and lets a batch of tasks reset together.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike, NDArray

from adbench.errors import AdbenchError


def seeds_for(seed: int | Sequence[int] | None, num_envs: int) -> list[int | None]:
    """Per-env seeds: one int gives ``seed, seed + 1, ...`` (as Gymnasium's vector envs do)."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, int | np.integer):
        return [int(seed) + i for i in range(num_envs)]
    seeds = [int(s) for s in seed]
    if len(seeds) != num_envs:
        raise AdbenchError(f"got {len(seeds)} seeds for {num_envs} environments: pass one per env")
    return seeds


def stable_uniform(label: str, count: int, columns: int = 1) -> NDArray[np.float64]:
    """``count x columns`` numbers in [0, 1) that depend only on ``label``.

    Built from BLAKE2b rather than a numpy Generator so that the task splits are
    identical on every machine and every numpy version, forever.
    """
    out = np.empty(count * columns, dtype=np.float64)
    for i in range(count * columns):
        digest = hashlib.blake2b(f"{label}/{i}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") / 2.0**64
    return out.reshape(count, columns)


def stable_permutation(label: str, count: int) -> NDArray[np.int64]:
    """A permutation of ``range(count)`` that depends only on ``label``."""
    return np.argsort(stable_uniform(label, count)[:, 0], kind="stable")


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """The SplitMix64 finaliser, elementwise (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def counter_uniform(key: ArrayLike, counter: ArrayLike) -> NDArray[np.float64]:
    """Uniform [0, 1) numbers that are a pure function of ``(key, counter)``, elementwise.

    The envs' randomness comes from here rather than from one Generator per env: a batch
    of N envs draws in one vectorised call, and env ``i`` still gets exactly the numbers
    of the single env with the same key.
    """
    with np.errstate(over="ignore"):
        mixed = splitmix64(
            splitmix64(np.asarray(key, dtype=np.uint64)) + np.asarray(counter, dtype=np.uint64)
        )
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)


def stream_key(rng: np.random.Generator) -> np.uint64:
    """An env's random-stream key: one draw from the Generator seeded by ``reset(seed=...)``."""
    return np.uint64(rng.integers(0, 2**63, dtype=np.int64))


SLOTS_PER_EPISODE = 1 << 20  # more than any episode's random draws (starts + steps)


def stream_counter(episode: int, slot: int) -> np.uint64:
    return np.uint64(episode * SLOTS_PER_EPISODE + slot)


def fingerprint(tasks: NDArray[Any]) -> str:
    """A short, stable hash of a task array (dtype, shape and values)."""
    arr = np.ascontiguousarray(tasks)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()[:16]


class BatchedEnv(ABC):
    """``N`` independent copies of one environment family, one task each, stepped together.

    All episodes have ``episode_length`` steps, so the batch resets together: call
    :meth:`reset`, then :meth:`step` ``episode_length`` times; the last step returns
    ``truncated`` true for every env.

    Randomness (a random start, the bandit's rewards) comes from :meth:`uniform`, a pure
    function of each env's stream key, the episode number and a slot. The keys are drawn
    from ``numpy.random.default_rng(seeds[i])`` exactly as the single env draws its key
    from ``reset(seed=seeds[i])``, so env ``i`` reproduces the single env draw for draw,
    and no per-env Python call is made after seeding.
    """

    family: EnvFamily

    def __init__(self, tasks: ArrayLike, seed: int | Sequence[int] | None = None) -> None:
        self.observation_space = self.family.observation_space
        self.action_space = gym.spaces.Discrete(self.family.num_actions)
        self.episode_length = self.family.episode_length
        self.tasks = self.family.validate_tasks(tasks)
        self.num_envs = len(self.tasks)
        self._seed(seed)
        self._t = 0
        self._needs_reset = True

    def _seed(self, seed: int | Sequence[int] | None) -> None:
        seeds = seeds_for(seed, self.num_envs)
        self._keys = np.array([stream_key(np.random.default_rng(s)) for s in seeds], np.uint64)
        self._episode = -1

    def uniform(self, slot: int) -> NDArray[np.float64]:
        """``[N]`` uniforms for this episode and ``slot`` (one slot per use per episode)."""
        return counter_uniform(self._keys, stream_counter(self._episode, slot))

    def set_tasks(self, tasks: ArrayLike) -> None:
        """Replace the tasks (same count); takes effect at the next reset."""
        tasks = self.family.validate_tasks(tasks)
        if len(tasks) != self.num_envs:
            raise AdbenchError(f"got {len(tasks)} tasks for a batch of {self.num_envs} envs")
        self.tasks = tasks
        self._needs_reset = True

    def reset(self, seed: int | Sequence[int] | None = None) -> NDArray[Any]:
        """Start a new episode in every env; returns observations ``[N, *obs_shape]``."""
        if seed is not None:
            self._seed(seed)
        self._episode += 1
        self._t = 0
        self._needs_reset = False
        return self._reset()

    def step(
        self, actions: ArrayLike
    ) -> tuple[NDArray[Any], NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_]]:
        """Apply one action per env; returns ``(obs, reward, terminated, truncated)``."""
        if self._needs_reset:
            raise AdbenchError("call reset() before step(): the episode has ended or not begun")
        actions = np.asarray(actions)
        n = int(self.action_space.n)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise AdbenchError(
                f"actions must be an integer array of shape ({self.num_envs},), "
                f"got {actions.dtype} {actions.shape}"
            )
        if actions.min(initial=0) < 0 or actions.max(initial=0) >= n:
            bad = int(actions[(actions < 0) | (actions >= n)][0])
            raise AdbenchError(
                f"invalid action {bad} for {self.family.env_id}: valid actions are 0..{n - 1} "
                f"({', '.join(self.family.action_names)})"
            )
        obs, reward = self._step(actions.astype(np.int64, copy=False))
        self._t += 1
        done = self._t >= self.episode_length
        if done:
            self._needs_reset = True
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        truncated = np.full(self.num_envs, done, dtype=np.bool_)
        return obs, reward, terminated, truncated

    def optimal_actions(self) -> NDArray[np.int64]:
        """The oracle's actions for the current state of every env: a scripted policy that
        knows the task and achieves :meth:`EnvFamily.optimal_return` (the reference for
        normalised scores)."""
        raise NotImplementedError(f"{type(self).__name__} has no oracle policy")

    @abstractmethod
    def _reset(self) -> NDArray[Any]: ...

    @abstractmethod
    def _step(self, actions: NDArray[np.int64]) -> tuple[NDArray[Any], NDArray[np.float32]]: ...


@dataclass(frozen=True)
class EnvFamily:
    """Everything about one environment family that later stages need to know.

    ``splits`` maps a split name to a function building its task array; splits are fixed
    by construction (see :func:`stable_uniform`) and their fingerprints are asserted in
    the tests. ``optimal_return`` and ``random_return`` give, per task, the best
    achievable return of one episode and the expected return of a uniform random policy.
    """

    name: str
    env_id: str
    description: str
    episode_length: int
    num_actions: int
    action_names: tuple[str, ...]
    task_fields: tuple[str, ...]
    task_dtype: type
    validate_task_values: Callable[[NDArray[Any]], None]
    split_builders: dict[str, Callable[[], NDArray[Any]]]
    optimal_return_fn: Callable[[NDArray[Any]], NDArray[np.float64]]
    random_return_fn: Callable[[NDArray[Any]], NDArray[np.float64]]
    batched_cls: Callable[..., BatchedEnv]
    observation_space: gym.Space[Any]
    train_split: str = "train"
    test_splits: tuple[str, ...] = ("test",)
    all_tasks_fn: Callable[[], NDArray[Any]] | None = None
    # The observations of underlying states ``[..., *state_shape]``, for a family whose
    # sources may learn from the state rather than the observation (the Watermaze: poses
    # to frames); None when the observation is the state.
    render_states_fn: Callable[[NDArray[Any]], NDArray[Any]] | None = None
    notes: str = ""
    _cache: dict[str, NDArray[Any]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(self.split_builders)

    def split(self, name: str) -> NDArray[Any]:
        """The tasks of a named split, as a read-only ``[num_tasks, len(task_fields)]`` array."""
        if name not in self.split_builders:
            raise AdbenchError(
                f"unknown split {name!r} for {self.name}: valid splits are "
                f"{', '.join(self.split_names)}"
            )
        if name not in self._cache:
            tasks = np.ascontiguousarray(self.split_builders[name](), dtype=self.task_dtype)
            tasks.setflags(write=False)
            self._cache[name] = tasks
        return self._cache[name]

    def all_tasks(self) -> NDArray[Any] | None:
        """Every task of a finite task space (the grids), or None for a continuous one."""
        return None if self.all_tasks_fn is None else self.all_tasks_fn()

    def validate_tasks(self, tasks: ArrayLike) -> NDArray[Any]:
        """Check a ``[N, len(task_fields)]`` task array (or one task) and return it as such."""
        arr = np.asarray(tasks)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != len(self.task_fields) or len(arr) == 0:
            raise AdbenchError(
                f"a {self.name} task has {len(self.task_fields)} values "
                f"({', '.join(self.task_fields)}); got an array of shape {np.shape(tasks)}"
            )
        if np.issubdtype(self.task_dtype, np.integer) and not np.all(np.mod(arr, 1) == 0):
            raise AdbenchError(f"{self.name} task values must be integers, got {arr[:1]}")
        arr = np.ascontiguousarray(arr, dtype=self.task_dtype)
        self.validate_task_values(arr)
        return arr

    def optimal_return(self, tasks: ArrayLike) -> NDArray[np.float64]:
        return self.optimal_return_fn(self.validate_tasks(tasks))

    def random_return(self, tasks: ArrayLike) -> NDArray[np.float64]:
        return self.random_return_fn(self.validate_tasks(tasks))

    def render_states(self, states: NDArray[Any]) -> NDArray[Any]:
        """The observations an agent sees in ``states`` (see ``render_states_fn``)."""
        if self.render_states_fn is None:
            raise AdbenchError(f"{self.name} has no states apart from its observations")
        return self.render_states_fn(states)

    def make_batched(self, tasks: ArrayLike, seed: int | Sequence[int] | None = None) -> BatchedEnv:
        return self.batched_cls(tasks, seed=seed)


class AdbenchEnv(gym.Env[Any, np.int64]):
    """Base of the single-task Gymnasium envs: task handling, seeding, step bookkeeping.

    The task comes from the constructor or from ``reset(options={"task": ...})`` (family
    specific names such as ``goal`` are accepted too); without one the env plays the first
    task of the ``train`` split. Subclasses implement ``_reset_state`` and ``_step_state``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    family: EnvFamily
    task_aliases: tuple[str, ...] = ()

    def __init__(self, task: ArrayLike | None = None) -> None:
        self.observation_space = self.family.observation_space
        self.action_space = gym.spaces.Discrete(self.family.num_actions)
        self.task = (
            self._coerce_task(task)
            if task is not None
            else self.family.split(self.family.train_split)[0]
        )
        self._t = 0
        self._needs_reset = True
        self._key: NDArray[np.uint64] | None = None
        self._episode = -1

    def uniform(self, slot: int) -> float:
        """This episode's uniform for ``slot``: the same number as :meth:`BatchedEnv.uniform`."""
        return float(counter_uniform(self._key, stream_counter(self._episode, slot))[0])

    def _coerce_task(self, task: ArrayLike) -> NDArray[Any]:
        arr = np.asarray(task)
        if arr.ndim != 1:
            raise AdbenchError(
                f"one {self.family.name} task is a flat sequence "
                f"({', '.join(self.family.task_fields)}), got shape {arr.shape}"
            )
        return self.family.validate_tasks(arr)[0]

    def _task_from_options(self, options: dict[str, Any] | None) -> None:
        if not options:
            return
        unknown = set(options) - {"task", *self.task_aliases}
        if unknown:
            raise AdbenchError(
                f"unknown reset option(s) {sorted(unknown)} for {self.family.env_id}: valid "
                f"options are {', '.join(['task', *self.task_aliases])}"
            )
        if "task" in options:
            self.task = self._coerce_task(options["task"])
        else:
            self.task = self._coerce_task(self._task_from_aliases(options))

    def _task_from_aliases(self, options: dict[str, Any]) -> NDArray[Any]:
        raise AdbenchError(f"{self.family.env_id} takes its task as options={{'task': ...}}")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self._key is None:
            self._key = np.array([stream_key(self.np_random)], dtype=np.uint64)
            self._episode = -1
        self._episode += 1
        self._task_from_options(options)
        self._t = 0
        self._needs_reset = False
        obs = self._reset_state()
        return obs, {"task": self.task.copy()}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise AdbenchError("call reset() before step(): the episode has ended or not begun")
        n = self.family.num_actions
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        if (
            isinstance(action, bool)
            or not isinstance(action, int | np.integer)
            or not 0 <= action < n
        ):
            raise AdbenchError(
                f"invalid action {action!r} for {self.family.env_id}: valid actions are "
                f"0..{n - 1} ({', '.join(self.family.action_names)})"
            )
        obs, reward = self._step_state(int(action))
        self._t += 1
        truncated = self._t >= self.family.episode_length
        if truncated:
            self._needs_reset = True
        return obs, float(reward), False, truncated, {}

    @abstractmethod
    def _reset_state(self) -> Any: ...

    @abstractmethod
    def _step_state(self, action: int) -> tuple[Any, float]: ...
