"""Configuration of a small recurrent in-context policy: an example of a model written
outside adbench and scored by its harness (see README.md beside this file)."""

from __future__ import annotations

from transformers import PretrainedConfig


class GRUPolicyConfig(PretrainedConfig):
    """A GRU over ``(observation, previous action, previous reward)`` steps.

    The fields adbench's harness reads are the environment's: ``env_name`` (which
    benchmark scores it by default), ``num_actions`` and the observation description
    ``observation_type`` / ``observation_shape`` / ``observation_high``, the values of
    ``adbench.models.spaces.observation_spec`` for the environment.
    """

    model_type = "example_gru_policy"

    def __init__(
        self,
        env_name: str = "darkroom",
        num_actions: int = 5,
        observation_type: str = "discrete",
        observation_shape: list[int] | None = None,
        observation_high: list[int] | None = None,
        hidden_size: int = 64,
        **kwargs,
    ) -> None:
        self.env_name = env_name
        self.num_actions = num_actions
        self.observation_type = observation_type
        self.observation_shape = list(observation_shape if observation_shape is not None else [2])
        self.observation_high = list(observation_high if observation_high is not None else [9, 9])
        self.hidden_size = hidden_size
        if observation_type != "discrete":
            raise ValueError("this example encodes discrete observations (the grids) only")
        super().__init__(**kwargs)
