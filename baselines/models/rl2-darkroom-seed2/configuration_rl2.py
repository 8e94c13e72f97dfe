"""Configuration of adbench's RL^2 baseline (Duan et al., 2016).

This file travels with saved models (``trust_remote_code``): it imports only the standard
library and transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PretrainedConfig

OBSERVATION_TYPES = ("none", "discrete", "image")
RNN_TYPES = ("gru", "lstm")


class RL2Config(PretrainedConfig):
    """Hyperparameters of :class:`RL2Model`, a recurrent actor-critic whose hidden state
    carries across the episodes of one task (a *trial*).

    Args:
        observation_type: How observations are embedded (see ``observation_encoding.py``):
            ``"none"`` (the bandit's constant observation), ``"discrete"`` (integer
            coordinates, each below ``observation_high[i]``) or ``"image"`` (uint8
            ``H x W x C`` frames).
        observation_shape: Shape of one observation, e.g. ``[2]`` for grid coordinates,
            ``[72, 96, 3]`` for Watermaze frames, ``[]`` for the bandit.
        observation_high: For ``"discrete"``: the number of values of each coordinate
            (``[9, 9]`` for Dark Room); empty otherwise.
        num_actions: Size of the discrete action space.
        hidden_size: Width of the step embedding and of the recurrent state.
        rnn_type: ``"gru"`` or ``"lstm"``.
        num_rnn_layers: Number of stacked recurrent layers.
        image_channels: Output channels of each conv block of the image encoder.
        dropout: Dropout of the image encoder and between stacked recurrent layers.
        reward_init_std: Standard deviation of the reward projection's initial weights
            (normal), so that the previous reward enters the recurrent net at the scale
            of an embedding row; ``None`` keeps the orthogonal initialisation of the
            models before this field (a unit-norm column: the reward then enters at
            ``1 / sqrt(hidden_size)`` of the other inputs' scale, and PPO takes hundreds
            of updates to notice it).
        env_id: Gymnasium id of the environment family the model was trained on
            (``adbench/DarkRoom-v0``); informational.
        env_name: adbench short name of that family (``darkroom``); informational.
        episode_length: Steps per episode of that family; informational.
        episodes_per_trial: Episodes per task during training (the recurrent state is reset
            only between trials); informational, evaluation may run longer trials.
    """

    model_type = "adbench_rl2"

    def __init__(
        self,
        observation_type: str = "none",
        observation_shape: Sequence[int] = (),
        observation_high: Sequence[int] = (),
        num_actions: int = 2,
        hidden_size: int = 128,
        rnn_type: str = "gru",
        num_rnn_layers: int = 1,
        image_channels: Sequence[int] = (32, 64, 64),
        dropout: float = 0.0,
        reward_init_std: float | None = None,
        env_id: str | None = None,
        env_name: str | None = None,
        episode_length: int | None = None,
        episodes_per_trial: int | None = None,
        **kwargs: Any,
    ) -> None:
        # Lists, not tuples: the values must survive a round trip through config.json.
        self.observation_type = observation_type
        self.observation_shape = [int(d) for d in observation_shape]
        self.observation_high = [int(h) for h in observation_high]
        self.num_actions = num_actions
        self.hidden_size = hidden_size
        self.rnn_type = rnn_type
        self.num_rnn_layers = num_rnn_layers
        self.image_channels = [int(c) for c in image_channels]
        self.dropout = dropout
        self.reward_init_std = reward_init_std
        self.env_id = env_id
        self.env_name = env_name
        self.episode_length = episode_length
        self.episodes_per_trial = episodes_per_trial
        self._validate_rl2()
        super().__init__(**kwargs)

    def _validate_rl2(self) -> None:
        if self.observation_type not in OBSERVATION_TYPES:
            raise ValueError(
                f"observation_type must be one of {', '.join(OBSERVATION_TYPES)}, "
                f"got {self.observation_type!r}"
            )
        if self.rnn_type not in RNN_TYPES:
            raise ValueError(
                f"rnn_type must be one of {', '.join(RNN_TYPES)}, got {self.rnn_type!r}"
            )
        for name in ("num_actions", "hidden_size", "num_rnn_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("episode_length", "episodes_per_trial"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.reward_init_std is not None and not float(self.reward_init_std) > 0.0:
            raise ValueError(
                f"reward_init_std must be positive or None, got {self.reward_init_std!r}"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if any(d < 1 for d in self.observation_shape):
            raise ValueError(
                f"observation_shape must have positive sizes, got {self.observation_shape}"
            )
        if self.observation_type == "discrete":
            if not self.observation_high or any(h < 1 for h in self.observation_high):
                raise ValueError(
                    "observation_type 'discrete' needs observation_high: one positive count of "
                    f"values per coordinate, got {self.observation_high}"
                )
            coordinates = 1
            for d in self.observation_shape:
                coordinates *= d
            if coordinates != len(self.observation_high):
                raise ValueError(
                    f"observation_shape {self.observation_shape} has {coordinates} coordinates "
                    f"but observation_high gives {len(self.observation_high)}"
                )
        if self.observation_type == "image":
            if len(self.observation_shape) != 3:
                raise ValueError(
                    "observation_type 'image' needs observation_shape [height, width, channels], "
                    f"got {self.observation_shape}"
                )
            if not self.image_channels or any(c < 1 for c in self.image_channels):
                raise ValueError(
                    f"image_channels must be positive channel counts, got {self.image_channels}"
                )
