"""RL^2 (Duan et al., 2016): a recurrent actor-critic whose memory spans several episodes.

The AD paper's upper-bound baseline. One *trial* is several episodes of the same task; the
recurrent state is reset only at the start of a trial, so the policy can learn, in its
hidden state, what the earlier episodes revealed about the task.

Each step's input is ``(o_t, a_{t-1}, r_{t-1}, new_episode_t)``, embedded by the shared
:class:`StepEncoder`. Conventions (the same as AD's, so one harness drives both):

* the first step of a trial has ``prev_action = -1`` (none) and ``prev_reward = 0``;
* the first step of every episode has ``new_episode = True``; in later episodes of the
  trial, ``prev_action``/``prev_reward`` are the last action and reward of the previous
  episode.

This file travels with saved models (``trust_remote_code``): it imports only torch,
transformers, the standard library and, relatively, its two sibling files.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_rl2 import RL2Config
from .observation_encoding import StepEncoder

try:  # transformers >= 5: init functions that leave already-loaded weights alone
    from transformers import initialization as init
except ImportError:  # pragma: no cover - older transformers
    from torch.nn import init  # type: ignore[no-redef]

RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
"""A GRU state ``[layers, B, H]``, or an LSTM's ``(h, c)``, each ``[layers, B, H]``."""

POLICY_INIT_STD = 0.01  # near-uniform initial policy: exploration starts unbiased
VALUE_INIT_STD = 1.0
EMBEDDING_INIT_STD = 1.0  # the summed step features reach the RNN at unit scale


@dataclass
class RL2Output(ModelOutput):
    """Outputs of :meth:`RL2Model.forward`.

    Args:
        logits: Action logits ``[B, T, num_actions]``.
        values: State-value estimates ``[B, T]`` (returns to the end of the trial).
        state: Recurrent state after the last step (feed it back to continue the trial).
    """

    logits: torch.FloatTensor | None = None
    values: torch.FloatTensor | None = None
    state: RecurrentState | None = None


class RL2PreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading glue for RL^2 models."""

    config_class = RL2Config
    base_model_prefix = "rl2"
    main_input_name = "observations"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # CleanRL-style PPO initialisation: orthogonal weights, zero biases, a tiny policy
        # head (uniform start) and a unit-scale value head.
        if isinstance(module, nn.GRU | nn.LSTM):
            for name, param in module.named_parameters():
                if name.startswith("weight"):
                    init.orthogonal_(param)
                else:
                    init.zeros_(param)
        elif (
            module is getattr(getattr(self, "encoder", None), "reward_projection", None)
            and self.config.reward_init_std is not None
        ):
            init.normal_(module.weight, mean=0.0, std=self.config.reward_init_std)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            if module is getattr(self, "policy_head", None):
                gain = POLICY_INIT_STD
            elif module is getattr(self, "value_head", None):
                gain = VALUE_INIT_STD
            else:
                gain = 1.0
            init.orthogonal_(module.weight, gain=gain)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=EMBEDDING_INIT_STD)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if module.running_mean is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)


class RL2Model(RL2PreTrainedModel):
    """StepEncoder -> GRU/LSTM -> (policy head, value head).

    ``forward`` processes whole sequences (training: BPTT over a trial); the policy
    protocol used by the evaluation harness, :meth:`new_context` and :meth:`act_logits`,
    steps a batch of trials one step at a time.
    """

    def __init__(self, config: RL2Config) -> None:
        super().__init__(config)
        self.encoder = StepEncoder(
            hidden_size=config.hidden_size,
            observation_type=config.observation_type,
            observation_shape=config.observation_shape,
            observation_high=config.observation_high,
            num_actions=config.num_actions,
            image_channels=config.image_channels,
            dropout=config.dropout,
        )
        rnn_class = nn.GRU if config.rnn_type == "gru" else nn.LSTM
        self.rnn = rnn_class(
            input_size=config.hidden_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_rnn_layers,
            batch_first=True,
            # torch warns about (and ignores) dropout on a single layer's output
            dropout=config.dropout if config.num_rnn_layers > 1 else 0.0,
        )
        self.policy_head = nn.Linear(config.hidden_size, config.num_actions)
        self.value_head = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def initial_state(self, batch_size: int) -> RecurrentState:
        """The zero recurrent state for ``batch_size`` trials, on the model's device."""
        param = next(self.rnn.parameters())
        shape = (self.config.num_rnn_layers, batch_size, self.config.hidden_size)
        h = torch.zeros(shape, dtype=param.dtype, device=param.device)
        if self.config.rnn_type == "lstm":
            return h, torch.zeros_like(h)
        return h

    def forward(
        self,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        new_episode: torch.Tensor,
        state: RecurrentState | None = None,
        return_dict: bool | None = True,
    ) -> RL2Output | tuple[torch.Tensor, torch.Tensor, RecurrentState]:
        """Run ``T`` steps of ``B`` trials.

        Args:
            observations: ``[B, T, *observation_shape]`` (ignored for ``"none"``).
            prev_actions: ``[B, T]`` long, ``-1`` where there is no previous action.
            prev_rewards: ``[B, T]`` float.
            new_episode: ``[B, T]`` bool, true at the first step of each episode.
            state: Recurrent state to start from; zeros (a new trial) when None.
            return_dict: Return an :class:`RL2Output` (default) or a plain tuple.
        """
        if prev_actions.dim() != 2:
            raise ValueError(
                f"prev_actions must be [batch, time], got shape {tuple(prev_actions.shape)}"
            )
        batch_size = prev_actions.shape[0]
        if state is None:
            state = self.initial_state(batch_size)
        embedded = self.encoder(observations, prev_actions, prev_rewards, new_episode)
        hidden, state = self.rnn(embedded, state)
        logits = self.policy_head(hidden)
        values = self.value_head(hidden).squeeze(-1)
        if return_dict is False:
            return logits, values, state
        return RL2Output(logits=logits, values=values, state=state)

    # -- the policy protocol shared with AD: one step at a time, state carried ----------

    def new_context(self, batch_size: int) -> RecurrentState:
        """A fresh (zero) recurrent state: the start of ``batch_size`` new trials."""
        return self.initial_state(batch_size)

    @torch.no_grad()
    def act_logits(
        self,
        context: RecurrentState,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        new_episode: torch.Tensor,
    ) -> tuple[torch.Tensor, RecurrentState]:
        """One step for a batch: inputs ``[B, ...]`` -> (logits ``[B, A]``, new context).

        The context is *not* reset at episode boundaries: it carries the whole trial, and
        ``new_episode`` is only an input feature.
        """
        output = self.forward(
            observations.unsqueeze(1),
            prev_actions.unsqueeze(1),
            prev_rewards.unsqueeze(1),
            new_episode.unsqueeze(1),
            state=context,
        )
        return output.logits[:, 0], output.state

    def act_logits_and_values(
        self,
        context: RecurrentState,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        new_episode: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, RecurrentState]:
        """:meth:`act_logits` plus the value estimates ``[B]`` (used by PPO rollouts)."""
        with torch.no_grad():
            output = self.forward(
                observations.unsqueeze(1),
                prev_actions.unsqueeze(1),
                prev_rewards.unsqueeze(1),
                new_episode.unsqueeze(1),
                state=context,
            )
        return output.logits[:, 0], output.values[:, 0], output.state


RL2Config.register_for_auto_class()
RL2Model.register_for_auto_class("AutoModel")
