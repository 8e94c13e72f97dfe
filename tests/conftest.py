"""Shared test helpers.

The tests never touch the user's caches: Hugging Face's and adbench's hub point into a
temporary directory for the whole session (set before anything imports ``datasets``).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="adbench-tests-"))
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf")
os.environ["HF_DATASETS_CACHE"] = str(_SESSION_DIR / "hf" / "datasets")
os.environ["ADBENCH_HUB"] = str(_SESSION_DIR / "hub")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402  (after the environment above)

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``adbench ARGS`` in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "adbench", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO_ROOT,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def cli():
    return run_cli


@dataclass
class CliRun:
    """What one in-process ``adbench`` command did (the shape of a CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli_here(*args: str, cwd: Path | None = None) -> CliRun:
    """Run ``adbench ARGS`` through its real entry point (``adbench.cli.main``: parsing,
    error reporting, exit status) in this interpreter: the same behaviour as a fresh
    process without paying seconds of imports per call."""
    from adbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    code: int = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exit_:
                code = (
                    exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                )
    finally:
        os.chdir(previous)
    return CliRun(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli_here():
    return run_cli_here


def tiny_bandit_model(seed: int = 0) -> Any:
    """An untrained AD model of the bandit, as small as it gets: the bandit's full protocol
    (1500 runs of 2000 steps, one batch) is the cheapest one to rank a real model on."""
    import torch

    from adbench.models import ADConfig, ADModel

    torch.manual_seed(seed)
    return ADModel(
        ADConfig(
            attention_window=4,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=1,
            intermediate_size=8,
            env_name="bandit",
            env_id="adbench/AdversarialBandit-v0",
            observation_type="none",
            observation_shape=[],
            observation_high=[],
            num_actions=10,
            episode_length=100,
        )
    )
