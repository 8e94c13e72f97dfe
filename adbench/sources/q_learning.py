"""Tabular Q-learning on the grid worlds, every learner at once.

``L`` independent learners, learner ``i`` on task ``tasks[i]``, share nothing but the
code: their Q tables are one ``[L, S, A]`` numpy array and every step updates one entry
per learner with fancy indexing (no Python loop over learners).

**The learner's state.** The env shows only the agent's cell ``(x, y)``, which is not a
Markov state when a reward changes what is left to do: in Key-to-Door the same cell
calls for different moves before and after the key is picked up, and in Dark Room Hard
the goal pays only once. So the learner keeps an agent-side memory of the number of
rewards it has received so far in the episode, capped at what the family can pay that
matters (0..1 for ``darkroom-hard``, 0..2 for ``key-to-door``), and its state is
``(cell, memory)``. Dark Room pays on every step on the goal and the cell alone is
Markov, so there the state is just the cell. This memory is the learner's, computed from
the rewards it sees; the env and the recorded observations are unchanged.

**Why the history rises gradually.** Exploration is epsilon-greedy with epsilon decaying
linearly, per episode, from ``epsilon_start`` (1.0: uniformly random) to a small floor
``epsilon_end`` over the first ``epsilon_decay_fraction`` of the learning episodes. The
Q table fills in while the learner still acts mostly at random, and the return climbs
with the share of greedy actions, from the random policy's towards the optimal return,
over many episodes rather than in one jump.

**Dark Room Hard and exploration.** Undirected epsilon-greedy exploration is a random
walk until the goal is first found, and a random walk seldom gets 10+ cells from the
centre in 20 steps: with the defaults, learners on far goals may never find them (mean
return ~0.6 of optimal after 1000 episodes, ~0.75 after 3000). ``initial_q=1.0``
(optimism) explores systematically and solves nearly every goal (~1.0 after 3000
episodes), but it is not the default: a frozen greedy policy can then loop in a state
whose optimistic values it never unlearned (on Key-to-Door its expert return drops to
~0.6 of optimal while the learning episodes, which keep updating, reach 2.0).

Time limits: the step counter is not part of the state and an episode's end is a time
limit, not a terminal state, so the update bootstraps on the last step too.

Expert episodes (after learning): the greedy policy (``expert_epsilon`` 0 by default,
ties still broken at random), with learning frozen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic.dataclasses import dataclass as args_dataclass

from adbench.envs.base import BatchedEnv, EnvFamily
from adbench.sources.base import (
    EpisodeBatch,
    EpisodeLearner,
    SourceAlgorithm,
    SourceConfig,
    linear_epsilon,
    play_episodes,
)
from adbench.validation import ARGS_CONFIG, StepSize, UnitInterval

# Largest reward count that still changes what the agent should do, per family.
MEMORY_CAP: dict[str, int] = {"darkroom": 0, "darkroom-hard": 1, "key-to-door": 2, "watermaze": 1}


@args_dataclass(config=ARGS_CONFIG)
class QLearningConfig(SourceConfig):
    """Hyperparameters of tabular Q-learning."""

    # The grids are deterministic, so a large step size is safe and lets each visit count.
    learning_rate: StepSize = 0.5
    gamma: UnitInterval = 0.99
    epsilon_start: UnitInterval = 1.0
    epsilon_end: UnitInterval = 0.01
    # Fraction of the learning episodes over which epsilon decays linearly to epsilon_end.
    epsilon_decay_fraction: UnitInterval = 0.5
    initial_q: float = 0.0
    # Epsilon of the expert episodes played with learning frozen (0: greedy).
    expert_epsilon: UnitInterval = 0.0


def epsilon_schedule(config: QLearningConfig, episode: int, num_episodes: int) -> float:
    """Epsilon of learning episode ``episode``: linear from start to end, then flat."""
    return linear_epsilon(
        config.epsilon_start,
        config.epsilon_end,
        config.epsilon_decay_fraction,
        episode,
        num_episodes,
    )


@dataclass(frozen=True)
class CellCoding:
    """How a learner turns what its env returns into a table cell.

    ``cell(obs)`` maps the env's ``[L, ...]`` output to cells ``[L]`` in
    ``0 .. num_cells - 1``; with ``from_states`` the env returns underlying states (the
    Watermaze's poses), which the episode batches carry as ``states`` for the builder to
    render, instead of observations.
    """

    num_cells: int
    cell: Callable[[NDArray[Any]], NDArray[np.int64]]
    from_states: bool = False


def epsilon_greedy(
    q_values: NDArray[np.float64],
    epsilon: float,
    rng: np.random.Generator,
    row_max: NDArray[np.float64] | None = None,
) -> NDArray[np.int64]:
    """One action per row of ``q_values [L, A]``; greedy ties are broken uniformly at random.
    ``row_max`` is ``q_values.max(axis=1)`` when the caller has it already.

    Random ties matter: an untouched Q row is all ties, and its greedy action must be a
    uniformly random one, not always action 0.
    """
    num_learners, num_actions = q_values.shape
    # Draw every random number on every step so the stream does not depend on epsilon.
    tie_noise = rng.random((num_learners, num_actions))
    explore = rng.random(num_learners) < epsilon
    random_actions = rng.integers(0, num_actions, size=num_learners)
    if row_max is None:
        row_max = row_maxima(q_values)
    ties = q_values == row_max[:, None]
    greedy = np.argmax(np.where(ties, tie_noise, -1.0), axis=1)
    return np.where(explore, random_actions, greedy)


def row_maxima(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``values.max(axis=1)`` for a few columns, as the elementwise maxima of the columns:
    numpy's reduction over a short last axis costs ~9x as much (the same values: max is
    exact)."""
    return functools.reduce(np.maximum, values.T)


class QLearning(SourceAlgorithm):
    """Tabular epsilon-greedy Q-learning, vectorised over learners (see the module doc)."""

    name: ClassVar[str] = "q-learning"
    families: ClassVar[tuple[str, ...]] = ("darkroom", "darkroom-hard", "key-to-door")
    config_cls: ClassVar[type[SourceConfig]] = QLearningConfig
    config: QLearningConfig

    def cell_coding(self, family: EnvFamily) -> CellCoding:
        """The grids' cells: the observation ``(x, y)`` is the cell."""
        size = int(family.observation_space.nvec[0])
        return CellCoding(size * size, lambda obs: obs[:, 0] * size + obs[:, 1])

    def make_env(self, family: EnvFamily, tasks: NDArray[Any], seed: int) -> BatchedEnv:
        return family.make_batched(tasks, seed=seed)

    def learn(
        self,
        family: EnvFamily,
        tasks: NDArray[Any],
        num_episodes: int,
        seed: int,
        expert_episodes: int = 0,
    ) -> Iterator[EpisodeBatch]:
        tasks = self.checked_tasks(family, tasks, num_episodes, expert_episodes)
        coding = self.cell_coding(family)
        # Independent streams for the envs (random starts) and the agents.
        env_seed, agent_seed = np.random.SeedSequence(seed).generate_state(2)
        env = self.make_env(family, tasks, int(env_seed))
        learner = _QLearner(
            self.config,
            coding,
            MEMORY_CAP[family.name],
            len(tasks),
            family.num_actions,
            num_episodes,
            np.random.default_rng(int(agent_seed)),
        )
        yield from play_episodes(
            env, learner, num_episodes, expert_episodes, as_states=coding.from_states
        )


class _QLearner(EpisodeLearner):
    """Every learner's Q table, and where each stands in the current episode."""

    def __init__(
        self,
        config: QLearningConfig,
        coding: CellCoding,
        memory_cap: int,
        num_learners: int,
        num_actions: int,
        num_episodes: int,
        rng: np.random.Generator,
    ) -> None:
        self.config, self.coding, self.memory_cap = config, coding, memory_cap
        self.num_actions, self.num_episodes, self.rng = num_actions, num_episodes, rng
        num_states = coding.num_cells * (memory_cap + 1)
        # The Q tables as one [L * S, A] array: row ``row_base[i] + state`` is learner i's
        # row of its state, so every lookup is a single-index gather (two-array fancy
        # indexing over [L, S, A] costs about twice as much).
        self.q = np.full((num_learners * num_states, num_actions), config.initial_q, np.float64)
        self.q_entries = self.q.reshape(-1)
        self.row_base = np.arange(num_learners) * num_states

    def _rows(self, observations: NDArray[Any]) -> NDArray[np.int64]:
        return self.row_base + self.memory * self.coding.num_cells + self.coding.cell(observations)

    def begin(self, episode: int, expert: bool, observations: NDArray[Any]) -> None:
        config = self.config
        self.expert = expert
        self.epsilon = (
            config.expert_epsilon
            if expert
            else epsilon_schedule(config, episode, self.num_episodes)
        )
        self.memory = np.zeros(len(self.row_base), dtype=np.int64)
        self.row = self._rows(observations)
        self.q_row = np.take(self.q, self.row, axis=0)
        self.q_max = row_maxima(self.q_row)

    def act(self, t: int, observations: NDArray[Any]) -> NDArray[np.int64]:
        return epsilon_greedy(self.q_row, self.epsilon, self.rng, self.q_max)

    def observe(
        self,
        t: int,
        actions: NDArray[np.int64],
        rewards: NDArray[np.float32],
        next_observations: NDArray[Any],
    ) -> None:
        config, q_entries = self.config, self.q_entries
        if self.memory_cap:  # Dark Room's learner has no memory: its state is the cell
            self.memory = np.minimum(self.memory + (rewards > 0), self.memory_cap)
        next_row = self._rows(next_observations)
        # np.take: a third of the time of fancy indexing for a gather of whole rows.
        next_q_row = np.take(self.q, next_row, axis=0)
        next_max = row_maxima(next_q_row)
        if not self.expert:
            # Bootstrap on every step, the last included: the episode ends on a time
            # limit, and time is not part of the state.
            target = rewards + config.gamma * next_max
            entry = self.row * self.num_actions + actions
            taken = np.take(q_entries, entry)
            # Every learner's entry is its own (no repeats), so a put is the += it stands for.
            updated = taken + config.learning_rate * (target - taken)
            np.put(q_entries, entry, updated)
            # The next step acts on the updated table: a learner that stayed in its state
            # (a wall, the goal) sees its own update.
            stayed = np.flatnonzero(next_row == self.row)
            if stayed.size:
                next_q_row[stayed, actions[stayed]] = updated[stayed]
                next_max[stayed] = row_maxima(next_q_row[stayed])
        self.row, self.q_row, self.q_max = next_row, next_q_row, next_max
