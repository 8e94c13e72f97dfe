"""What produced a file: adbench's version and git revision, library versions, machine.

Every dataset, model and results file records this, so that a number can be traced to
the exact code that made it.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import adbench

LIBRARIES = (
    "numpy",
    "torch",
    "transformers",
    "accelerate",
    "datasets",
    "huggingface-hub",
    "gymnasium",
    "pyarrow",
    "safetensors",
)


@functools.cache
def git_revision() -> str:
    """The git commit of the adbench checkout (with ``-dirty`` when it has uncommitted
    changes), or ``"unknown"`` for an installed wheel."""
    root = Path(adbench.__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance() -> dict[str, Any]:
    return {
        "adbench_version": adbench.__version__,
        "adbench_git_revision": git_revision(),
        "libraries": library_versions(),
        "platform": platform.platform(),
    }
