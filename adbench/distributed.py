"""Data-parallel launches on any hardware, CPUs included.

Launched distributed (``accelerate launch --multi_gpu --num_processes N``, or ``torchrun``)
on a machine without CUDA, Accelerate picks its gloo CPU backend only when told
``cpu=True``; with CUDA it picks NCCL as usual.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any


def force_cpu_backend() -> bool:
    """Whether Accelerate must be told ``cpu=True`` for this launch."""
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


@dataclass
class Processes:
    """The processes of a job: one, or those of ``accelerate launch`` (any number of
    machines). Without a launch nothing of torch.distributed (nor torch) is imported."""

    index: int = 0
    count: int = 1
    state: Any = None

    @classmethod
    def current(cls) -> Processes:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()  # no torch.distributed (nor the import of torch) for one process
        from accelerate import PartialState

        state = PartialState(cpu=force_cpu_backend())
        return cls(state.process_index, state.num_processes, state)

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def wait_for_everyone(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def gather(self, value: Any) -> list[Any]:
        """``value`` of every process, in process order (a collective: every process calls
        it)."""
        if self.state is None:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def total(self, value: int) -> int:
        """The sum of ``value`` over the processes (a collective)."""
        return sum(self.gather(value))


def end_processes() -> None:
    """Tear the process group down, if a launch set one up, before the interpreter exits.

    Left to interpreter finalization, gloo's worker threads can still hold work when they
    are destroyed and the process aborts ("terminate called without an active exception",
    SIGABRT) after the job has succeeded; PyTorch asks every program to call
    ``destroy_process_group`` itself. Only on success: a failed rank must not wait here
    for peers that are still inside a collective."""
    if "torch.distributed" not in sys.modules:
        return  # torch was never imported, so no launch set a process group up
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
