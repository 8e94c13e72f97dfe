"""adbench: datasets, baselines and a benchmark harness for in-context reinforcement learning."""

from __future__ import annotations

__version__ = "0.1.0"

from adbench.envs import FAMILIES, AdbenchError, get_family, make_batched

__all__ = ["FAMILIES", "AdbenchError", "__version__", "get_family", "make_batched"]
