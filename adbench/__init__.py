"""adbench: datasets, baselines and a benchmark harness for in-context reinforcement learning."""

from __future__ import annotations

__version__ = "0.1.0"

from adbench.envs import FAMILIES, AdbenchError, get_family, make_batched

__all__ = ["FAMILIES", "AdbenchError", "__version__", "get_family", "load_dataset", "make_batched"]


def __getattr__(name: str) -> object:
    # Lazy: `datasets` takes a second to import, and most commands never need it.
    if name == "load_dataset":
        from adbench.histories.loading import load_dataset

        return load_dataset
    raise AttributeError(f"module 'adbench' has no attribute {name!r}")
