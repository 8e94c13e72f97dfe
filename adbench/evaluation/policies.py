"""The policy contracts of the harness: what a scored model implements, and the
reference policies.

Two layers. :class:`InContextModel` is the contract of a *model* (AD, ED, RL^2, or any
model anyone submits, loaded with ``trust_remote_code``): two methods on torch tensors,
checked by :func:`check_model_contract` on a real first and second step before any
rollout. :class:`Policy` is the harness's own, on numpy arrays: :class:`ModelPolicy` wraps
a model; the random and optimal references implement it directly. docs/submitting.md
explains the contract with a worked example (examples/gru_policy/).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import NDArray

from adbench.envs.base import BatchedEnv, EnvFamily
from adbench.errors import AdbenchError
from adbench.models.spaces import observation_spec

CONTRACT_DOC = "docs/submitting.md"


@runtime_checkable
class InContextModel(Protocol):
    """What a model must implement to be scored (a ``transformers`` ``PreTrainedModel``).

    **Config.** ``model.config`` has ``num_actions`` and the environment's observation
    description ``observation_type``, ``observation_shape``, ``observation_high`` (the values
    :func:`adbench.models.spaces.observation_spec` gives for the environment), and
    ``env_name`` (the benchmark it is scored on when none is given).

    **Acting.** The harness runs ``B`` runs in lockstep, every run on its own task, for the
    benchmark's episodes, with frozen weights and no gradient:

    * ``context = model.new_context(B)`` once per evaluation: an empty context per run. The
      context is opaque to the harness (a KV cache, a recurrent state, a list); it is
      handed back unchanged at the next step.
    * ``logits, context = model.act_logits(context, observations, prev_actions,
      prev_rewards, new_episode)`` at every step, for every run:

      - ``observations``: ``[B, *obs_shape]``, the env's dtype (``int64`` grid coordinates,
        ``uint8`` ``H x W x 3`` frames, or the bandit's ``int64`` zeros ``[B]``);
      - ``prev_actions``: ``int64 [B]``, the action taken at the previous step, ``-1`` at a
        run's first step;
      - ``prev_rewards``: ``float32 [B]``, the reward of the previous step (0 at the first);
      - ``new_episode``: ``bool [B]``, true at the first step of every episode (the context
        carries across episodes: that is what in-context learning is);
      - returns ``logits``: a floating tensor ``[B, num_actions]``, finite, on any device,
        and the updated context.

    The harness samples an action from ``softmax(logits)`` (or takes the argmax with
    ``--greedy``), with its own seeded generator: a model must not draw random numbers
    itself for the run to be reproducible.

    **What the harness checks before any rollout**: the config fits the environment
    (:func:`check_model_fits`), both methods exist, and a first and a second step on real
    observations return ``(logits, context)`` with logits of the right shape, floating
    and finite (:func:`check_model_contract`). A model that fails gets one line saying what
    is wrong.
    """

    config: Any

    def new_context(self, batch_size: int) -> Any: ...

    def act_logits(
        self,
        context: Any,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        new_episode: torch.Tensor,
    ) -> tuple[torch.Tensor, Any]: ...


class Policy(Protocol):
    """The harness's policy interface, on numpy arrays (a model is wrapped by
    :class:`ModelPolicy`)."""

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
        _check_methods(model, name)
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


def _check_methods(model: Any, model_id: str) -> None:
    for method in ("new_context", "act_logits"):
        if not callable(getattr(model, method, None)):
            raise AdbenchError(
                f"{model_id} does not implement the adbench policy contract: it has no "
                f"{method}() (see {CONTRACT_DOC})"
            )


def check_model_contract(model: Any, family: EnvFamily, model_id: str) -> None:
    """Play a first and a second step of two runs on real observations of ``family``
    through the model and check what comes back; raises :class:`AdbenchError` (one line)
    on the first breach of :class:`InContextModel`'s contract, before any rollout."""
    _check_methods(model, model_id)
    tasks = family.split(family.test_splits[0])[:2]
    tasks = np.concatenate([tasks, tasks])[:2]
    env = family.make_batched(tasks, seed=0)
    device = next(model.parameters()).device
    observations = env.reset()
    prev_actions = np.full(2, -1, dtype=np.int64)
    prev_rewards = np.zeros(2, dtype=np.float32)
    new_episode = np.ones(2, dtype=np.bool_)

    def tensor(x: NDArray[Any]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(device)

    def breach(what: str) -> AdbenchError:
        return AdbenchError(
            f"{model_id} breaks the adbench policy contract: {what} (see {CONTRACT_DOC})"
        )

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            try:
                context = model.new_context(2)
            except Exception as exc:  # the model's own code: any error is a breach
                raise breach(f"new_context(2) raised {type(exc).__name__}: {exc}") from None
            for step in ("first", "second"):
                try:
                    out = model.act_logits(
                        context,
                        tensor(observations),
                        tensor(prev_actions),
                        tensor(prev_rewards),
                        tensor(new_episode),
                    )
                except Exception as exc:
                    text = " ".join(str(exc).split())[:200]
                    raise breach(
                        f"act_logits raised {type(exc).__name__} at a {step} step: {text}"
                    ) from None
                if not isinstance(out, tuple | list) or len(out) != 2:
                    raise breach(
                        f"act_logits must return (logits, context), got {type(out).__name__}"
                    )
                logits, context = out
                expected = (2, family.num_actions)
                if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
                    kind = (
                        logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
                    )
                    raise breach(f"logits must be a floating torch tensor, got {kind}")
                if tuple(logits.shape) != expected:
                    raise breach(
                        f"logits of shape {list(logits.shape)} at a {step} step; expected "
                        f"[batch, num_actions] = {list(expected)}"
                    )
                if not torch.isfinite(logits).all():
                    raise breach(f"logits hold nan or inf at a {step} step")
                actions = logits.float().argmax(dim=-1).cpu().numpy().astype(np.int64)
                observations, rewards, _, _ = env.step(actions)
                prev_actions, prev_rewards = actions, rewards
                new_episode = np.zeros(2, dtype=np.bool_)
    finally:
        model.train(was_training)
