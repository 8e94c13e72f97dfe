"""Observation and step-input encoders shared by adbench's models.

This file travels with saved models (``trust_remote_code``): it imports only torch, and
the modeling files import it relatively.

Observation kinds, as recorded in a model config:

* ``"none"``: no observation to speak of (the bandit's constant ``Discrete(1)``).
* ``"discrete"``: a vector of integer coordinates, each ``0 <= o_i < observation_high[i]``
  (the grids' ``(x, y)``); each coordinate has its own embedding table, summed.
* ``"image"``: ``H x W x C`` uint8 frames (Watermaze), encoded by the paper's conv stack:
  per block conv (kernel 5, stride 2), BatchNorm, ReLU, max-pool 2, dropout; then linear.
  ``image_pool > 1`` first averages each ``image_pool x image_pool`` block of pixels (a
  slimmer encoder for CPUs: a 4x pool cuts the conv stack's compute ~16x).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

OBSERVATION_KINDS = ("none", "discrete", "image")


class ImageEncoder(nn.Module):
    """The AD paper's Watermaze encoder (channels configurable: 128 in the paper), after an
    optional ``pool x pool`` average pooling of the frame (1: none, the paper's)."""

    def __init__(
        self,
        shape: Sequence[int],
        channels: Sequence[int],
        out_features: int,
        dropout: float,
        pool: int = 1,
    ) -> None:
        super().__init__()
        if pool < 1:
            raise ValueError(f"image_pool must be >= 1, got {pool}")
        height, width, in_channels = shape
        # Not a module of `conv`: that would renumber the saved models' parameter names.
        self.pool = pool
        height, width = -(-height // pool), -(-width // pool)
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=5, stride=2, padding=2),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
                nn.Dropout(dropout),
            ]
            in_channels = out_channels
            height, width = -(-height // 4), -(-width // 4)  # stride 2, then pool 2
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Linear(in_channels * height * width, out_features)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, H, W, C]`` uint8 -> ``[N, out_features]``."""
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool, ceil_mode=True)
        return self.proj(self.conv(x).flatten(1))


class StepEncoder(nn.Module):
    """Embeds one step's inputs, ``(o_t, a_{t-1}, r_{t-1}, new_episode_t)``, into a vector.

    ``prev_action`` is ``-1`` at the very first step (no previous action); ``new_episode``
    is true at the first step of every episode (the previous step ended an episode).
    """

    def __init__(
        self,
        hidden_size: int,
        observation_type: str,
        observation_shape: Sequence[int],
        observation_high: Sequence[int],
        num_actions: int,
        image_channels: Sequence[int] = (32, 64, 64),
        dropout: float = 0.0,
        image_pool: int = 1,
    ) -> None:
        super().__init__()
        if observation_type not in OBSERVATION_KINDS:
            raise ValueError(
                f"observation_type must be one of {OBSERVATION_KINDS}, got {observation_type!r}"
            )
        self.observation_type = observation_type
        self.num_actions = num_actions
        if observation_type == "discrete":
            self.coordinate_embeddings = nn.ModuleList(
                nn.Embedding(int(high), hidden_size) for high in observation_high
            )
        elif observation_type == "image":
            self.image_encoder = ImageEncoder(
                observation_shape, image_channels, hidden_size, dropout, image_pool
            )
        self.action_embedding = nn.Embedding(num_actions + 1, hidden_size)  # last row: "none"
        self.reward_projection = nn.Linear(1, hidden_size)
        self.new_episode_embedding = nn.Embedding(2, hidden_size)

    def forward(
        self,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        new_episode: torch.Tensor,
    ) -> torch.Tensor:
        """Inputs with any leading shape ``S`` (e.g. ``[B, T]``) -> ``[*S, hidden]``."""
        lead = prev_actions.shape
        action_index = torch.where(prev_actions < 0, self.num_actions, prev_actions)
        if self.training and self.observation_type != "image":
            return self._multi_hot_sum(observations, action_index, prev_rewards, new_episode)
        x = self.action_embedding(action_index)
        # reward_projection is Linear(1, hidden): r * w + b, written as one addcmul (as a
        # matrix product with an inner dimension of 1 it cost as much as a real layer).
        projection = self.reward_projection
        x = x + torch.addcmul(
            projection.bias, prev_rewards.unsqueeze(-1).to(x.dtype), projection.weight[:, 0]
        )
        x = x + self.new_episode_embedding(new_episode.long())
        if self.observation_type == "discrete":
            obs = observations.long().reshape(*lead, -1)
            for i, embedding in enumerate(self.coordinate_embeddings):
                x = x + embedding(obs[..., i])
        elif self.observation_type == "image":
            frames = observations.reshape(-1, *observations.shape[len(lead) :])
            x = x + self.image_encoder(frames).reshape(*lead, -1).to(x.dtype)
        return x

    def _multi_hot_sum(
        self,
        observations: torch.Tensor,
        action_index: torch.Tensor,
        prev_rewards: torch.Tensor,
        new_episode: torch.Tensor,
    ) -> torch.Tensor:
        """The same sum as :meth:`forward`'s lookups (up to float rounding), as one product
        of a multi-hot matrix with the tables stacked: in training, the backward of a few
        tiny-table lookups (a sort and a scatter-add each) made the encoder's fwd+bwd cost
        ~2.5x the product's on a CPU (docs/performance.md). Evaluation keeps the lookups,
        so a saved model acts bit for bit as before."""
        lead = action_index.shape
        tables = [self.action_embedding.weight, self.new_episode_embedding.weight]
        columns = [action_index, new_episode.long()]
        if self.observation_type == "discrete":
            obs = observations.long().reshape(*lead, -1)
            tables += [embedding.weight for embedding in self.coordinate_embeddings]
            columns += [obs[..., i] for i in range(len(self.coordinate_embeddings))]
        stacked = torch.cat(tables)
        offsets = torch.tensor([0] + [len(t) for t in tables[:-1]], device=stacked.device).cumsum(0)
        hot = torch.stack(columns, dim=-1).reshape(-1, len(columns)) + offsets
        multi_hot = torch.zeros(
            hot.shape[0], len(stacked), dtype=stacked.dtype, device=stacked.device
        )
        multi_hot.scatter_(1, hot, 1.0)
        projection = self.reward_projection
        rewards = prev_rewards.reshape(-1, 1).to(stacked.dtype)
        x = torch.addmm(projection.bias, multi_hot, stacked)
        return x.addcmul_(rewards, projection.weight[:, 0]).reshape(*lead, -1)
