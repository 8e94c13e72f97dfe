"""How a model sees an environment: the config fields describing its observations."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from adbench.envs.base import EnvFamily
from adbench.errors import AdbenchError


def observation_spec(family: EnvFamily) -> dict[str, Any]:
    """Model config fields describing the family's observations."""
    space = family.observation_space
    if isinstance(space, gym.spaces.Discrete) and space.n == 1:
        return {"observation_type": "none", "observation_shape": [], "observation_high": []}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "observation_type": "discrete",
            "observation_shape": list(space.shape),
            "observation_high": [int(n) for n in space.nvec],
        }
    if isinstance(space, gym.spaces.Box) and space.dtype == "uint8":
        return {
            "observation_type": "image",
            "observation_shape": list(space.shape),
            "observation_high": [],
        }
    raise AdbenchError(f"no model observation encoding for {space}")
