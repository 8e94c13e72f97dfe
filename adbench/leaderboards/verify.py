"""``adbench leaderboard verify``: every entry's numbers follow from its stored curves, and
its hashes tie entry, curves, model revision and weights together.

For each entry:

* its curves file is there, is the one its summary names (sha256) and has its shape;
* its id is ``sha256(model id, model revision, curves sha256)`` (:func:`board.entry_id`);
* for the benchmark's current version, the protocol is standard and the stored runs'
  (split, task, seed) rows have the benchmark's pinned fingerprint;
* score IQM and CI, final, improvement and its CI, and the reference returns, recomputed
  from the curves with the benchmark's own scoring (:func:`evaluate.score_returns`; the
  bandit's UCB normaliser is re-run), equal the recorded ones;
* when the model is at hand (the local hub, or ``baselines/models/`` of a checkout for
  ``ad-bench/`` ids), its weights' sha256 and its revision are the recorded ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError
from adbench.evaluation.benchmarks import get_benchmark
from adbench.evaluation.results import read_results
from adbench.leaderboards.board import board_names, entry_files
from adbench.leaderboards.entries import verify_summary


def model_dir_at_hand(model_id: str, hub: str | Path | None) -> Path | None:
    """A local copy of a model: in the local hub, else (for ``ad-bench/NAME``) a
    checkout's ``baselines/models/NAME``; None when there is none."""
    from adbench.hub import local_repo_dir, validate_repo_id
    from adbench.resources import checkout_root

    try:
        validate_repo_id(model_id)
    except AdbenchError:
        return None  # a reference policy, or an id that names no repo
    in_hub = local_repo_dir(model_id, "model", hub)
    if (in_hub / "config.json").is_file():
        return in_hub
    root = checkout_root()
    org, name = model_id.split("/", 1)
    if root is not None and org == "ad-bench":
        committed = root / "baselines" / "models" / name
        if (committed / "config.json").is_file():
            return committed
    return None


def check_model(summary: dict[str, Any], hub: str | Path | None) -> bool:
    """Check the model's weights hash and revision against a local copy, if one is at
    hand: True when checked, False when no copy was found; AdbenchError on a mismatch."""
    from adbench.fileio import sha256_file
    from adbench.hub import repo_revision

    model = summary["model"]
    if model["kind"] != "model":
        return False
    path = model_dir_at_hand(model["id"], hub)
    if path is None:
        return False
    weights = path / "model.safetensors"
    if not weights.is_file() or sha256_file(weights) != model.get("weights_sha256"):
        raise AdbenchError(f"the weights of {model['id']} at {path} are not the scored ones")
    if repo_revision(path) != model.get("revision"):
        raise AdbenchError(
            f"{model['id']} at {path} is at revision {repo_revision(path)}, not the scored "
            f"{model.get('revision')}"
        )
    return True


@dataclass
class VerifiedEntry:
    benchmark: str
    file: str
    model_id: str
    score_iqm: float
    model_checked: bool
    current_version: bool


def verify_boards(
    directory: Path, benchmark: str | None = None, *, hub: str | Path | None = None
) -> list[VerifiedEntry]:
    """Verify every entry of one board (or of every board in ``directory``); raises
    AdbenchError naming the first entry that fails, and how many others failed too."""
    names = [get_benchmark(benchmark).name] if benchmark else board_names(directory)
    verified: list[VerifiedEntry] = []
    problems: list[str] = []
    for name in names:
        for path in entry_files(directory, name):
            relative = path.relative_to(directory).as_posix()
            try:
                summary = read_results(path)
                if summary["benchmark"]["name"] != name:
                    raise AdbenchError(f"it is for benchmark {summary['benchmark']['name']!r}")
                verify_summary(summary, path)
                checked = check_model(summary, hub)
            except AdbenchError as exc:
                problems.append(f"entry {relative}: {exc}")
                continue
            verified.append(
                VerifiedEntry(
                    name,
                    relative,
                    summary["model"]["id"],
                    summary["score"]["iqm"],
                    checked,
                    summary["benchmark"]["version"] == get_benchmark(name).version,
                )
            )
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise AdbenchError(problems[0] + more)
    return verified
