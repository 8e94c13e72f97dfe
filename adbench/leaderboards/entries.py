"""What a leaderboard entry is, and whether its numbers hold: its id, whether its protocol
is its benchmark's standard one, and its scores recomputed from its stored curves. Used
both when an entry is submitted (:mod:`adbench.leaderboards.board`) and when every board is
verified (:mod:`adbench.leaderboards.verify`).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError
from adbench.evaluation.benchmarks import get_benchmark, runs_from_records


def entry_id(summary: dict[str, Any]) -> str:
    """16 hex characters: sha256 of the model id, its revision and the curves' sha256."""
    model = summary["model"]
    text = "\0".join([model["id"], model.get("revision") or "", summary["runs_file"]["sha256"]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def protocol_problem(summary: dict[str, Any]) -> str | None:
    """Why a results summary cannot be ranked on its benchmark's board, or None."""
    bench = get_benchmark(summary["benchmark"]["name"])
    version = summary["benchmark"]["version"]
    if version != bench.version:
        return (
            f"it was made under {bench.name} v{version}, and the board ranks v{bench.version}: "
            "evaluate again with this adbench"
        )
    protocol = summary["protocol"]
    deviations = bench.deviations(
        episodes=protocol["episodes"],
        seeds=protocol["seeds"],
        seed=protocol["seed"],
        decoding=protocol["decoding"],
        prompt_episodes=(protocol.get("prompt") or {}).get("episodes", 0),
    )
    if deviations:
        return (
            f"its protocol is not {bench.label()}'s: {'; '.join(deviations)}; a non-standard "
            "run is saved, never ranked"
        )
    if protocol["runs_fingerprint"] != bench.runs_fingerprint:
        return (
            f"its evaluated tasks and seeds (fingerprint {protocol['runs_fingerprint']}) are "
            f"not {bench.label()}'s ({bench.runs_fingerprint})"
        )
    return None


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
    # Imported here: scoring pulls in torch, which reading a board does not need.
    from adbench.evaluation.evaluate import normalizing_source_curve, score_returns
    from adbench.evaluation.results import read_runs

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
    source_curve = normalizing_source_curve(bench, stored, returns.shape[1])
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
