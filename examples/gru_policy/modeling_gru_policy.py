"""A small recurrent in-context policy, written outside adbench: it implements adbench's
policy contract (``new_context`` and ``act_logits``) with nothing but torch and
transformers, so that ``adbench evaluate --model ID --trust-remote-code`` can score it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_gru_policy import GRUPolicyConfig


@dataclass
class GRUPolicyOutput(ModelOutput):
    """Training outputs: next-action logits ``[B, T, A]``, and the loss given labels."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class GRUPolicyModel(PreTrainedModel):
    """Embeds each step's ``(o_t, a_{t-1}, r_{t-1})`` and runs a GRU over a history; the
    recurrent state is the in-context memory."""

    config_class = GRUPolicyConfig
    base_model_prefix = "gru_policy"

    def __init__(self, config: GRUPolicyConfig) -> None:
        super().__init__(config)
        hidden = config.hidden_size
        self.coordinate_embeddings = nn.ModuleList(
            nn.Embedding(int(high), hidden) for high in config.observation_high
        )
        self.action_embedding = nn.Embedding(config.num_actions + 1, hidden)  # last: none
        self.reward_projection = nn.Linear(1, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, config.num_actions)
        self.post_init()

    def embed(
        self, observations: torch.Tensor, prev_actions: torch.Tensor, prev_rewards: torch.Tensor
    ) -> torch.Tensor:
        """``observations [..., D]`` int, ``prev_actions [...]`` (-1: none), ``prev_rewards
        [...]`` -> ``[..., hidden]``."""
        none = self.config.num_actions
        x = self.action_embedding(torch.where(prev_actions < 0, none, prev_actions))
        x = x + self.reward_projection(prev_rewards.unsqueeze(-1).float())
        for i, embedding in enumerate(self.coordinate_embeddings):
            x = x + embedding(observations[..., i].long())
        return x

    def forward(
        self,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> GRUPolicyOutput:
        """Histories ``[B, T, ...]`` -> logits ``[B, T, A]`` (loss: cross-entropy to labels)."""
        hidden, _ = self.gru(self.embed(observations, prev_actions, prev_rewards))
        logits = self.head(hidden)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return GRUPolicyOutput(loss=loss, logits=logits)

    # --- adbench's policy contract -----------------------------------------------------

    def new_context(self, batch_size: int) -> torch.Tensor:
        """An empty context per run: the GRU's zero state ``[1, B, hidden]``."""
        return torch.zeros(1, batch_size, self.config.hidden_size, device=self.device)

    @torch.no_grad()
    def act_logits(
        self,
        context: torch.Tensor,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        new_episode: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of every run: logits ``[B, A]`` and the updated context. Episode
        boundaries are not reset: the memory spans episodes, which is what learning in
        context needs."""
        x = self.embed(observations, prev_actions, prev_rewards).unsqueeze(1)
        hidden, context = self.gru(x, context)
        return self.head(hidden[:, 0]), context
