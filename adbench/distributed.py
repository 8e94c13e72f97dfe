"""Data-parallel launches on any hardware, CPUs included.

Launched distributed (``accelerate launch --multi_gpu --num_processes N``, or ``torchrun``)
on a machine without CUDA, Accelerate picks its gloo CPU backend only when told
``cpu=True``; with CUDA it picks NCCL as usual.
"""

from __future__ import annotations

import os


def force_cpu_backend() -> bool:
    """Whether Accelerate must be told ``cpu=True`` for this launch."""
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
