"""Leaderboards: one folder per benchmark, one entry per submission, boards derived.

A board is the folder ``<directory>/<benchmark>/``; each entry in it is a results summary
``<model>-<id8>.json`` with its per-run curves ``<model>-<id8>.runs.parquet`` beside it
(:mod:`adbench.evaluation.results`), plus a ``submission`` block (entry id and date).
Submitting writes two new files and never rewrites a shared one, so concurrent
submissions and git merges cannot conflict; the ranked board, the README and the site are
derived from the entries. The entry id is ``sha256(model id, model revision, curves
sha256)``: it names exactly what was scored and how it did.

Only standard runs are ranked: :func:`submit` refuses a run whose protocol differs from
the benchmark's current version (episodes, seeds, base seed, decoding, prompting, the
evaluated tasks and seeds), or of another version. Entries of an older version (kept when
a benchmark's protocol changes) are shown apart, never ranked with the current ones.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError
from adbench.evaluation.benchmarks import BENCHMARKS, Benchmark, get_benchmark
from adbench.evaluation.results import dumps_summary, read_results, runs_path
from adbench.fileio import atomic_write_bytes, atomic_write_text, exclusive_lock
from adbench.leaderboards.entries import entry_id, protocol_problem, verify_summary

KINDS = ("model", "reference")
"""Entry kinds: a scored model, or a reference policy (``random``, ``optimal``, ``source``)."""

README_NAME = "README.md"
LOCK_NAME = ".lock"

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# ---------------------------------------------------------------------------------------
# Names, paths and locking.


def leaderboards_dir(value: str | None, hub: str | None = None) -> Path:
    """Where boards are read and submissions go: ``--leaderboards``, else
    ``$ADBENCH_LEADERBOARDS``, else the committed boards of the checkout adbench runs from,
    else the local hub's ``leaderboards/`` (an installed package's own boards are
    read-only reference data)."""
    from adbench.hub_storage import hub_root

    if hub is not None:
        hub_root(hub)  # a bad --hub is an error even where the boards are elsewhere
    if value:
        return Path(value)
    if os.environ.get("ADBENCH_LEADERBOARDS"):
        return Path(os.environ["ADBENCH_LEADERBOARDS"])
    from adbench.resources import checkout_root

    root = checkout_root()
    if root is not None and (root / "leaderboards").is_dir():
        return root / "leaderboards"
    return hub_root(hub) / "leaderboards"


def _check_benchmark_name(benchmark: str) -> None:
    if not isinstance(benchmark, str) or not _NAME_PATTERN.fullmatch(benchmark):
        raise AdbenchError(
            f"invalid benchmark name {benchmark!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )


def board_dir(directory: Path, benchmark: str) -> Path:
    """The board folder ``<directory>/<benchmark>/`` (the name is validated: it becomes a
    folder name)."""
    _check_benchmark_name(benchmark)
    return Path(directory) / benchmark


def entry_name(summary: dict[str, Any]) -> str:
    """The entry's file stem: the model id made a file name, and the id's first 8 chars."""
    model = re.sub(r"[^A-Za-z0-9._-]", "_", summary["model"]["id"].replace("/", "__"))
    return f"{model}-{entry_id(summary)[:8]}"


# ---------------------------------------------------------------------------------------
# Entries and boards.


def entry_view(summary: dict[str, Any], path: Path, directory: Path) -> dict[str, Any]:
    """The board row of a stored entry: the summary's headline numbers and identifiers."""
    score, model, protocol = summary["score"], summary["model"], summary["protocol"]
    submission = summary.get("submission") or {}
    return {
        "id": submission.get("id", entry_id(summary)),
        "model_id": model["id"],
        "model_revision": model.get("revision"),
        "weights_sha256": model.get("weights_sha256"),
        "kind": model["kind"],
        "score_iqm": score["iqm"],
        "score_iqm_ci": score["iqm_ci"],
        "final_iqm": score["final_iqm"],
        "improvement_iqm": score["improvement_iqm"],
        "improvement_ci": score.get("improvement_ci"),
        "episodes": protocol["episodes"],
        "seeds": protocol["seeds"],
        "decoding": protocol["decoding"],
        "date": summary["date"],
        "submitted": submission.get("date"),
        "benchmark_version": summary["benchmark"]["version"],
        "adbench_version": summary["adbench_version"],
        "adbench_git_revision": summary["adbench_git_revision"],
        "results_file": Path(path).relative_to(directory).as_posix(),
    }


@dataclass
class Board:
    """A benchmark's entries: ``entries`` of its current version, ``older`` of others."""

    benchmark: Benchmark
    directory: Path
    entries: list[dict[str, Any]] = field(default_factory=list)
    older: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)  # by entry id

    @property
    def name(self) -> str:
        return self.benchmark.name


def entry_files(directory: Path, benchmark: str) -> list[Path]:
    """The entry summaries of a board, sorted (hidden files are unfinished writes)."""
    folder = board_dir(directory, benchmark)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def read_entry(path: Path) -> dict[str, Any]:
    """An entry's summary; a file that cannot be read names the entry and how to fix it."""
    try:
        return read_results(path)
    except AdbenchError as exc:
        raise AdbenchError(
            f"leaderboard entry {path} is corrupted ({exc}); restore it from git "
            f"(git checkout -- {path}) or remove it"
        ) from None


def load_board(directory: Path, benchmark: str) -> Board:
    """The board of ``benchmark`` in ``directory`` (empty when it has no folder)."""
    bench = get_benchmark(benchmark)
    board = Board(bench, Path(directory))
    for path in entry_files(directory, benchmark):
        summary = read_entry(path)
        if summary["benchmark"]["name"] != benchmark:
            raise AdbenchError(
                f"leaderboard entry {path} is for benchmark {summary['benchmark']['name']!r}, "
                f"not {benchmark!r}: move it to its own board"
            )
        view = entry_view(summary, path, Path(directory))
        board.summaries[view["id"]] = summary
        if view["benchmark_version"] == bench.version:
            board.entries.append(view)
        else:
            board.older.append(view)
    return board


def board_names(directory: Path) -> list[str]:
    """The benchmarks with a board folder in ``directory``, in benchmark order."""
    return [name for name in BENCHMARKS if entry_files(directory, name)]


# ---------------------------------------------------------------------------------------
# Submitting.


def submit(directory: Path, results_file: Path, *, verify: bool = True) -> dict[str, Any]:
    """Add the results at ``results_file`` (a summary with its curves beside it) to its
    benchmark's board in ``directory``; returns the entry's board row.

    Refused (:class:`AdbenchError`, nothing written) when the run is not the benchmark's
    standard protocol, when the curves are missing or are not the summary's, when the
    scores do not follow from the curves (``verify``). The same entry submitted again
    changes nothing (the row returned has ``new`` False), unless the stored one was made
    under another version of the benchmark: the same curves rescored under the current
    version replace it (the entry's name depends on the curves, not on the version). A
    reference entry replaces the older entries of the same reference.
    """

    results_file = Path(results_file)
    summary = read_results(results_file)
    label = f"{summary['model']['id']} ({results_file.name})"
    problem = protocol_problem(summary)
    if problem:
        raise AdbenchError(f"cannot submit {label}: {problem}")
    if verify:
        try:
            verify_summary(summary, results_file)
        except AdbenchError as exc:
            raise AdbenchError(f"cannot submit {label}: {exc}") from None
    benchmark = summary["benchmark"]["name"]
    folder = board_dir(directory, benchmark)
    stored = {
        **summary,
        "submission": {
            "id": entry_id(summary),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    }
    target = folder / f"{entry_name(summary)}.json"
    stored["runs_file"] = {**summary["runs_file"], "name": runs_path(target).name}
    with exclusive_lock(folder / LOCK_NAME):
        board = load_board(directory, benchmark)  # a corrupted board refuses, untouched
        if target.exists():
            existing = read_entry(target)
            # The same model revision with the same curves: submitting again changes nothing.
            if existing["benchmark"]["version"] == summary["benchmark"]["version"]:
                return {**entry_view(existing, target, Path(directory)), "new": False}
        old_references = [
            Path(directory) / row["results_file"]
            for row in board.entries + board.older
            if _is_same_reference(row, summary)
        ]
        # Curves first: a summary on the board always has its curves beside it.
        atomic_write_bytes(runs_path(target), runs_path(results_file).read_bytes())
        atomic_write_text(target, dumps_summary(stored))
        for path in old_references:
            runs_path(path).unlink(missing_ok=True)
            path.unlink()
    return {**entry_view(stored, target, Path(directory)), "new": True}


def _is_same_reference(row: dict[str, Any], summary: dict[str, Any]) -> bool:
    """Whether a board row is an earlier entry of the reference ``summary`` scores."""
    return (
        row["kind"] == "reference"
        and summary["model"]["kind"] == "reference"
        and row["model_id"] == summary["model"]["id"]
        and row["benchmark_version"] == summary["benchmark"]["version"]
    )


# ---------------------------------------------------------------------------------------
# Ranking.


def ranked(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries (copies) best first, each with a ``rank`` key.

    Order: ``score_iqm`` descending; ties broken by ``final_iqm`` descending, then ``date``
    ascending (the earlier evaluation first), then ``id``. References are included in that
    order with ``rank`` None; model entries get ranks 1, 2, 3, ... in order (no shared ranks).
    Pass one benchmark version's entries: scores of different protocols do not compare.
    """
    ordered = sorted(
        entries,
        key=lambda e: (-e["score_iqm"], -e["final_iqm"], _sortable_date(e["date"]), e["id"]),
    )
    out: list[dict[str, Any]] = []
    rank = 0
    for entry in ordered:
        row = dict(entry)
        if entry["kind"] == "model":
            rank += 1
            row["rank"] = rank
        else:
            row["rank"] = None
        out.append(row)
    return out


def _sortable_date(value: str) -> float:
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)  # naive dates are taken as UTC
    return parsed.timestamp()


def model_label(entry: dict[str, Any]) -> str:
    revision = entry.get("model_revision")
    label = entry["model_id"] if not revision else f"{entry['model_id']}@{revision[:8]}"
    return f"{label} (reference)" if entry["kind"] == "reference" else label
