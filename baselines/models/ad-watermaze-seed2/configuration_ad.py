"""Configuration of Algorithm Distillation (AD) and Expert Distillation (ED) models.

This file travels with saved models (``trust_remote_code``): it imports only transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PretrainedConfig

OBSERVATION_KINDS = ("none", "discrete", "image")
METHODS = ("ad", "ed")


class ADConfig(PretrainedConfig):
    r"""A causal transformer over the steps of a learning history (Laskin et al., 2022).

    One token per step embeds ``(o_t, a_{t-1}, r_{t-1}, new_episode_t)``; the model predicts
    ``a_t`` from the tokens up to ``t``. Attention is causal over a sliding window of
    ``attention_window`` steps at every layer, with ALiBi position biases: positions are
    relative, so outputs stay exact as the window slides along an unbounded in-context
    rollout, and a preallocated rolling KV cache reproduces a full forward exactly.

    Args:
        observation_type: ``"none"`` (bandit), ``"discrete"`` (integer coordinates, e.g. a
            grid cell) or ``"image"`` (uint8 frames).
        observation_shape: shape of one observation (``[]``, ``[2]``, ``[72, 96, 3]``).
        observation_high: for ``"discrete"``, the number of values of each coordinate.
        num_actions: size of the discrete action space.
        hidden_size: width of the token embeddings and of the residual stream.
        num_hidden_layers: transformer blocks.
        num_attention_heads: attention heads per block (``hidden_size`` must divide).
        intermediate_size: width of each block's feed-forward layer.
        attention_window: how many steps (the current one included) each token attends to.
        max_train_steps: length of the training windows (may exceed ``attention_window``,
            so that training sees the slid windows of long rollouts).
        dropout: dropout on embeddings, attention outputs and feed-forward outputs.
        attention_dropout: dropout on attention probabilities.
        image_channels: channels of the image encoder's conv blocks (the paper: 128 each).
        image_pool: average-pool frames by this factor before the conv blocks (1, the
            paper's: none).
        layer_norm_eps: epsilon of the layer norms.
        initializer_range: standard deviation of the initial weights.
        label_smoothing: label smoothing of the action loss (the paper: 0.2 on Dark Room Hard).
        method: ``"ad"`` (trained on learning histories) or ``"ed"`` (trained on expert
            episodes: Expert Distillation, the same architecture).
        env_id, env_name, episode_length: the environment the model acts in.
        dataset_id, dataset_config, dataset_revision: the data it was trained on.
    """

    model_type = "adbench_ad"

    def __init__(
        self,
        observation_type: str = "discrete",
        observation_shape: Sequence[int] = (2,),
        observation_high: Sequence[int] = (9, 9),
        num_actions: int = 5,
        hidden_size: int = 64,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int = 256,
        attention_window: int = 160,
        max_train_steps: int = 160,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        image_channels: Sequence[int] = (32, 64, 64),
        image_pool: int = 1,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        label_smoothing: float = 0.0,
        method: str = "ad",
        env_id: str | None = None,
        env_name: str | None = None,
        episode_length: int | None = None,
        dataset_id: str | None = None,
        dataset_config: str | None = None,
        dataset_revision: str | None = None,
        **kwargs: Any,
    ) -> None:
        if observation_type not in OBSERVATION_KINDS:
            raise ValueError(
                f"observation_type must be one of {OBSERVATION_KINDS}, got {observation_type!r}"
            )
        if observation_type == "discrete" and len(observation_high) != int(
            (list(observation_shape) or [1])[0]
        ):
            raise ValueError("observation_high needs one value per observation coordinate")
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size {hidden_size} is not divisible by num_attention_heads "
                f"{num_attention_heads}"
            )
        if attention_window < 1 or max_train_steps < 1 or num_actions < 1:
            raise ValueError("attention_window, max_train_steps and num_actions must be >= 1")
        if image_pool < 1:
            raise ValueError(f"image_pool must be >= 1, got {image_pool}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.observation_type = observation_type
        self.observation_shape = list(observation_shape)
        self.observation_high = list(observation_high)
        self.num_actions = num_actions
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.attention_window = attention_window
        self.max_train_steps = max_train_steps
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.image_channels = list(image_channels)
        self.image_pool = image_pool
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.label_smoothing = label_smoothing
        self.method = method
        self.env_id = env_id
        self.env_name = env_name
        self.episode_length = episode_length
        self.dataset_id = dataset_id
        self.dataset_config = dataset_config
        self.dataset_revision = dataset_revision
        # transformers' caches read the attention span from `sliding_window`.
        self.sliding_window = attention_window
        kwargs.pop("sliding_window", None)
        super().__init__(**kwargs)
