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

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError
from adbench.evaluation.benchmarks import get_benchmark, runs_from_records
from adbench.evaluation.evaluate import score_returns
from adbench.evaluation.results import read_results, read_runs
from adbench.evaluation.rollout import source_returns
from adbench.leaderboards.board import (
    board_names,
    entry_files,
    entry_id,
    protocol_problem,
)

TOLERANCE = 1e-9
"""Recomputed numbers may differ from the recorded ones by float rounding only."""

_CHECKED_NUMBERS = (
    ("score IQM", ("score", "iqm")),
    ("score CI", ("score", "iqm_ci")),
    ("score mean", ("score", "mean")),
    ("final IQM", ("score", "final_iqm")),
    ("improvement IQM", ("score", "improvement_iqm")),
    ("improvement CI", ("score", "improvement_ci")),
    ("random return", ("references", "random_return")),
    ("optimal return", ("references", "optimal_return")),
)


def _get(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        record = record[key]
    return record


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(_close(x, y) for x, y in zip(a, b, strict=True))
        )
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def verify_summary(summary: dict[str, Any], path: Path) -> None:
    """Raise AdbenchError naming the first way the results at ``path`` are not what their
    curves give (see the module docstring; the model check is :func:`check_model`)."""
    runs = read_runs(path, summary)
    submission = summary.get("submission")
    if submission is not None and submission.get("id") != entry_id(summary):
        raise AdbenchError(
            f"its id {submission.get('id')!r} does not match its model and curves "
            f"({entry_id(summary)})"
        )
    bench = get_benchmark(summary["benchmark"]["name"])
    if summary["benchmark"]["version"] != bench.version:
        return  # an older protocol: its hashes are checked, its scoring is not this code's
    problem = protocol_problem(summary)
    if problem:
        raise AdbenchError(problem)
    stored = runs_from_records(bench, runs["split"], runs["task_index"], runs["seed"])
    if stored.fingerprint() != summary["protocol"]["runs_fingerprint"]:
        raise AdbenchError(
            f"its curves are of runs with fingerprint {stored.fingerprint()}, not the "
            f"recorded {summary['protocol']['runs_fingerprint']}"
        )
    returns = runs["returns"]
    source_curve = None
    if bench.normalization == "source":
        source_curve = source_returns(
            bench.source, bench.family, stored.tasks, stored.seeds, returns.shape[1]
        )
    recomputed = score_returns(
        bench, stored, returns, seed=summary["protocol"]["seed"], source_curve=source_curve
    )
    for label, keys in _CHECKED_NUMBERS:
        recorded, again = _get(summary, keys), _get(recomputed, keys)
        if not _close(recorded, again):
            raise AdbenchError(f"its {label} is {recorded}, but its curves give {again}")
    for split, data in recomputed["splits"].items():
        recorded_curve = summary["splits"].get(split, {}).get("mean_return_per_episode")
        if not _close(recorded_curve, data["mean_return_per_episode"]):
            raise AdbenchError(f"its mean curve on {split} is not its curves' mean")


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
