"""Imported by the forkserver of the concurrency tests (test_reliability.py): runs one small
evaluation so that the processes forked from it start with every lazy import done and
matplotlib's font cache loaded, as a long-running shell's second command would."""

import contextlib
import io
import tempfile

import torch

from adbench.cli import main

# One thread from the start: a process forked after torch started its OpenMP pool of
# several threads would inherit a pool that is no longer there.
torch.set_num_threads(1)

with tempfile.TemporaryDirectory(prefix="adbench-warm-") as _scratch:
    _args = ["evaluate", "--model", "random", "--benchmark", "bandit", "--episodes", "1"]
    _args += ["--seeds", "1", "--output", _scratch]
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        contextlib.suppress(SystemExit),
    ):
        main(_args)
