"""The policy protocol a scored model implements, and the reference policies.

A policy acts on a batch of runs in lockstep. :meth:`Policy.start` opens empty contexts;
:meth:`Policy.logits` gets, for every run, the latest observation, the previous action
(``-1`` at a run's first step) and reward, and whether this step starts a new episode,
and returns action logits. The harness samples from them (or takes the argmax when
decoding greedily). Models implement the protocol through two methods shared by AD, ED
and RL^2: ``new_context(batch_size)`` and
``act_logits(context, observations, prev_actions, prev_rewards, new_episode)``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from adbench.envs.base import BatchedEnv, EnvFamily
from adbench.errors import AdbenchError
from adbench.models.spaces import observation_spec


class Policy(Protocol):
    name: str

    def start(self, num_runs: int) -> None:
        """Open an empty context for each of ``num_runs`` runs."""

    def logits(
        self,
        env: BatchedEnv,
        observations: NDArray[Any],
        prev_actions: NDArray[np.int64],
        prev_rewards: NDArray[np.float32],
        new_episode: NDArray[np.bool_],
    ) -> NDArray[np.float32]:
        """Action logits ``[num_runs, num_actions]`` for the current step."""


class RandomPolicy:
    """The uniform random policy (normalised score 0 by construction, up to sampling)."""

    name = "random"

    def start(self, num_runs: int) -> None:
        self.num_runs = num_runs

    def logits(self, env: BatchedEnv, *_: Any) -> NDArray[np.float32]:
        return np.zeros((env.num_envs, env.action_space.n), dtype=np.float32)


class OraclePolicy:
    """The environment's scripted optimal policy, which knows the task (score 1 by
    construction)."""

    name = "optimal"

    def start(self, num_runs: int) -> None:
        self.num_runs = num_runs

    def logits(self, env: BatchedEnv, *_: Any) -> NDArray[np.float32]:
        logits = np.full((env.num_envs, env.action_space.n), -1e9, dtype=np.float32)
        logits[np.arange(env.num_envs), env.optimal_actions()] = 0.0
        return logits


class ModelPolicy:
    """A model that implements ``new_context`` and ``act_logits`` (AD, ED, RL^2, or any
    submitted model with the same two methods), frozen."""

    def __init__(self, model: Any, name: str) -> None:
        for method in ("new_context", "act_logits"):
            if not callable(getattr(model, method, None)):
                raise AdbenchError(
                    f"{name} does not implement the adbench policy protocol: it has no "
                    f"{method}() (see adbench/evaluation/policies.py)"
                )
        self.model = model.eval()
        self.name = name
        self.device = next(model.parameters()).device

    def start(self, num_runs: int) -> None:
        self.context = self.model.new_context(num_runs)

    @torch.no_grad()
    def logits(
        self,
        env: BatchedEnv,
        observations: NDArray[Any],
        prev_actions: NDArray[np.int64],
        prev_rewards: NDArray[np.float32],
        new_episode: NDArray[np.bool_],
    ) -> NDArray[np.float32]:
        def tensor(x: NDArray[Any]) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

        logits, self.context = self.model.act_logits(
            self.context,
            tensor(observations),
            tensor(prev_actions),
            tensor(prev_rewards),
            tensor(new_episode),
        )
        return logits.float().cpu().numpy()


def check_model_fits(model: Any, family: EnvFamily, model_id: str) -> None:
    """The model's observation and action spaces must be the environment's; raises before
    any rollout otherwise."""
    config = model.config
    expected = observation_spec(family)
    got = {key: getattr(config, key, None) for key in expected}
    problems = [
        f"{key} {got[key]!r} (the env's is {expected[key]!r})"
        for key in expected
        if got[key] is None or list(np.atleast_1d(got[key])) != list(np.atleast_1d(expected[key]))
    ]
    num_actions = getattr(config, "num_actions", None)
    if num_actions != family.num_actions:
        problems.append(f"num_actions {num_actions!r} (the env's is {family.num_actions})")
    if problems:
        raise AdbenchError(
            f"{model_id} does not fit {family.env_id}: its "
            + "; ".join(problems)
            + ". Evaluate it on the benchmark of the environment it was trained for"
        )
