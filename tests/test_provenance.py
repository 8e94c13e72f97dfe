"""Provenance pins code: results name a clean commit, and the committed leaderboards refuse
submissions from a tree with uncommitted changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git checkout of the current working tree (the code under test, committed), with
    an empty committed leaderboards/ folder."""
    root = tmp_path / "checkout"
    root.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    shutil.copytree(
        REPO_ROOT / "adbench", root / "adbench", ignore=shutil.ignore_patterns("__pycache__")
    )
    for folder in ("dataset_cards", "baselines"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("models"))
    (root / "leaderboards").mkdir()
    (root / "leaderboards" / "README.md").write_text("# Leaderboards\n")
    _git(root, "init", "-q")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    return root


def _adbench(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("ADBENCH_LEADERBOARDS", None)
    return subprocess.run(
        [sys.executable, "-m", "adbench", *args],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


SUBMIT = ("evaluate", "--model", "random", "--benchmark", "darkroom", "--submit")


def test_submit_to_the_committed_boards_needs_a_clean_tree(checkout: Path) -> None:
    head = _git(checkout, "rev-parse", "HEAD")
    module = checkout / "adbench" / "errors.py"
    module.write_text(module.read_text() + "\n# an uncommitted change\n")
    refused = _adbench(checkout, *SUBMIT)
    assert refused.returncode == 2, refused.stderr
    assert "uncommitted changes" in refused.stderr and "--allow-dirty" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert sorted(p.name for p in (checkout / "leaderboards").iterdir()) == ["README.md"]
    assert not (checkout / "results").exists()

    # An untracked module in the package could run: it makes the tree dirty too.
    _git(checkout, "checkout", "--", "adbench/errors.py")
    (checkout / "adbench" / "extra.py").write_text("")
    assert _adbench(checkout, *SUBMIT).returncode == 2
    (checkout / "adbench" / "extra.py").unlink()

    # Changes outside the code (docs, boards, results) leave it clean.
    (checkout / "leaderboards" / "README.md").write_text("# edited\n")
    (checkout / "notes.txt").write_text("")
    # Clean: accepted, and the results name the commit and say the code was clean.
    accepted = _adbench(checkout, *SUBMIT)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    (results,) = (checkout / "results" / "darkroom").glob("*.json")
    record = json.loads(results.read_text())
    assert record["adbench_git_revision"] == head
    assert record["adbench_code"] == {
        "version": record["adbench_version"],
        "install": "checkout",
        "revision": head,
        "clean": True,
    }


def test_allow_dirty_submits_and_says_so_in_the_results(checkout: Path) -> None:
    head = _git(checkout, "rev-parse", "HEAD")
    module = checkout / "adbench" / "errors.py"
    module.write_text(module.read_text() + "\n# an uncommitted change\n")
    result = _adbench(checkout, *SUBMIT, "--allow-dirty")
    assert result.returncode == 0, result.stderr[-2000:]
    (results,) = (checkout / "results" / "darkroom").glob("*.json")
    record = json.loads(results.read_text())
    assert record["adbench_git_revision"] == f"{head}-dirty"
    assert record["adbench_code"]["clean"] is False


def test_other_boards_take_submissions_from_any_tree(checkout: Path, tmp_path: Path) -> None:
    module = checkout / "adbench" / "errors.py"
    module.write_text(module.read_text() + "\n# an uncommitted change\n")
    own = tmp_path / "my-boards"
    result = _adbench(checkout, *SUBMIT, "--leaderboards", str(own))
    assert result.returncode == 0, result.stderr[-2000:]
