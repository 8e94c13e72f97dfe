"""What produced a file: adbench's version and git revision, library versions, machine.

Every dataset, model and results file records this, so that a number can be traced to
the exact code that made it.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import adbench
from adbench.resources import checkout_root

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


CODE_PATHS = ("adbench", "pyproject.toml", "constraints.txt")
"""What runs, in a checkout: the package, its declared dependencies and their lock."""


@dataclass(frozen=True)
class CodeVersion:
    """What adbench code ran: its version, and from a git checkout its commit and whether
    the code was clean: the files of :data:`CODE_PATHS` exactly the commit's (no change,
    no untracked file). Changes elsewhere (results, boards, docs) cannot move a score, and
    a submission itself writes there. ``revision`` is None for an installed package
    (pinned by ``version``)."""

    version: str
    install: str  # "checkout" or "package"
    revision: str | None
    clean: bool | None

    @property
    def label(self) -> str:
        """``<commit>``, ``<commit>-dirty``, or ``unknown`` (no commit to name)."""
        if self.revision is None:
            return "unknown"
        return self.revision if self.clean else f"{self.revision}-dirty"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def code_version() -> CodeVersion:
    """The running adbench: read afresh each call (the tree may change during a session)."""
    root = checkout_root()
    if root is None or not (root / ".git").exists():
        return CodeVersion(adbench.__version__, "package", None, None)
    try:
        sha = _git(root, "rev-parse", "HEAD")
        # An untracked module in the package could run: it counts as a change.
        changed = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS)
    except (OSError, subprocess.SubprocessError):
        return CodeVersion(adbench.__version__, "checkout", None, None)
    return CodeVersion(adbench.__version__, "checkout", sha, not changed)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance() -> dict[str, Any]:
    version = code_version()
    return {
        "adbench_version": version.version,
        "adbench_git_revision": version.label,
        "adbench_code": asdict(version),
        "libraries": library_versions(),
        "platform": platform.platform(),
    }
