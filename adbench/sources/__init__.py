"""Source RL algorithms whose learning histories adbench distils.

Sources are imported on demand (``get_source``): some pull in torch, and listing or
loading datasets should not pay for that.
"""

from __future__ import annotations

import importlib
from typing import Any

from adbench.errors import AdbenchError
from adbench.sources.base import EpisodeBatch, SourceAlgorithm, SourceConfig

# name -> "module:Class"
SOURCES: dict[str, str] = {
    "ucb": "adbench.sources.ucb:UCB",
    "thompson": "adbench.sources.thompson:ThompsonSampling",
    "a2c": "adbench.sources.a2c:A2C",
    "q-learning": "adbench.sources.q_learning:QLearning",
    "dqn": "adbench.sources.dqn:DQN",
    "pose-q-learning": "adbench.sources.pose_q_learning:PoseQLearning",
}


def get_source_class(name: str) -> type[SourceAlgorithm]:
    if name not in SOURCES:
        raise AdbenchError(
            f"unknown source algorithm {name!r}: valid sources are {', '.join(SOURCES)}"
        )
    module_name, class_name = SOURCES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_source(name: str, **hyperparameters: Any) -> SourceAlgorithm:
    """An instance of source ``name`` with some hyperparameters overridden."""
    return get_source_class(name)(**hyperparameters)


__all__ = [
    "SOURCES",
    "EpisodeBatch",
    "SourceAlgorithm",
    "SourceConfig",
    "get_source",
    "get_source_class",
]
