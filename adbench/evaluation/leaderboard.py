"""Leaderboards: one JSON file per benchmark, ranked tables, and the generated README.

A leaderboard is the file ``<directory>/<benchmark>.json`` (``directory`` is the repo's
top-level ``leaderboards/`` folder, or any other folder passed in)::

    {"schema": "adbench-leaderboard/1", "benchmark": "darkroom", "entries": [...]}

Each entry is one evaluation (a model, or a reference policy) summarised by the keys of
``REQUIRED_KEYS``; other keys (e.g. ``decoding``) are kept as they are. The scores come from
``adbench.evaluation.metrics``: per episode the normalised score ``(R - random) / (reference -
random)``, per run its mean over the episodes (``auc``), and over runs x tasks the
interquartile mean (IQM) with a 95% stratified-bootstrap confidence interval.

Writes are safe against concurrent submitters and crashes: :func:`submit` holds an exclusive
``fcntl.flock`` on the sidecar ``<directory>/.<benchmark>.lock`` for its whole
read-modify-write, and replaces the file atomically. A board that cannot be read (invalid
JSON, another schema, missing keys) raises :class:`AdbenchError` and is never overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from adbench.errors import AdbenchError
from adbench.fileio import atomic_write_json, atomic_write_text

SCHEMA = "adbench-leaderboard/1"
"""The ``schema`` value of every board this module reads and writes."""

KINDS = ("model", "reference")
"""Entry kinds: a scored model, or a reference policy (``random``, ``optimal``, ``source``)."""

REQUIRED_KEYS = (
    "id",
    "model_id",
    "model_revision",
    "kind",
    "score_iqm",
    "score_iqm_ci",
    "final_iqm",
    "improvement_iqm",
    "episodes",
    "seeds",
    "date",
    "results_file",
    "benchmark_version",
    "adbench_version",
)
"""Keys every stored entry has (:func:`submit` fills in ``id`` and ``date`` when missing)."""

README_NAME = "README.md"

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_README_LOCK = ".README.lock"
_COLUMNS = ("rank", "model", "score IQM [95% CI]", "final", "improvement", "episodes", "date")


# ---------------------------------------------------------------------------------------
# Paths and locking.


def _check_benchmark_name(benchmark: str) -> None:
    if not isinstance(benchmark, str) or not _NAME_PATTERN.fullmatch(benchmark):
        raise AdbenchError(
            f"invalid benchmark name {benchmark!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )


def board_path(directory: Path, benchmark: str) -> Path:
    """The board file ``<directory>/<benchmark>.json`` (the name is validated: it becomes a
    file name)."""
    _check_benchmark_name(benchmark)
    return Path(directory) / f"{benchmark}.json"


def lock_path(directory: Path, benchmark: str) -> Path:
    """The sidecar lock file ``<directory>/.<benchmark>.lock`` guarding the board's writes."""
    _check_benchmark_name(benchmark)
    return Path(directory) / f".{benchmark}.lock"


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block. Locks are
    per open file description, so this excludes other threads of the process too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


# ---------------------------------------------------------------------------------------
# Validation.


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with a stored entry, or None when it is valid."""
    if not isinstance(entry, dict):
        return f"an entry is a {type(entry).__name__}, not an object"
    missing = [key for key in REQUIRED_KEYS if key not in entry]
    if missing:
        return f"entry {entry.get('id', '?')!r} lacks {', '.join(missing)}"
    label = f"entry {entry['id']!r}"
    checks = [
        (isinstance(entry["id"], str) and entry["id"] != "", "id must be a non-empty string"),
        (
            isinstance(entry["model_id"], str) and entry["model_id"] != "",
            "model_id must be a non-empty string",
        ),
        (
            entry["model_revision"] is None or isinstance(entry["model_revision"], str),
            "model_revision must be a string or null",
        ),
        (entry["kind"] in KINDS, f"kind must be one of {', '.join(KINDS)}"),
        (_is_number(entry["score_iqm"]), "score_iqm must be a finite number"),
        (
            isinstance(entry["score_iqm_ci"], list)
            and len(entry["score_iqm_ci"]) == 2
            and all(_is_number(v) for v in entry["score_iqm_ci"]),
            "score_iqm_ci must be [lo, hi]",
        ),
        (_is_number(entry["final_iqm"]), "final_iqm must be a finite number"),
        (_is_number(entry["improvement_iqm"]), "improvement_iqm must be a finite number"),
        (_is_positive_int(entry["episodes"]), "episodes must be a positive integer"),
        (_is_positive_int(entry["seeds"]), "seeds must be a positive integer"),
        (_is_iso_date(entry["date"]), "date must be an ISO 8601 string"),
        (
            entry["results_file"] is None or isinstance(entry["results_file"], str),
            "results_file must be a string or null",
        ),
        (isinstance(entry["benchmark_version"], str), "benchmark_version must be a string"),
        (isinstance(entry["adbench_version"], str), "adbench_version must be a string"),
    ]
    for ok, message in checks:
        if not ok:
            return f"{label}: {message}"
    return None


def _is_iso_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _board_problem(board: Any, benchmark: str) -> str | None:
    """What is wrong with a board read from disk, or None when it is valid."""
    if not isinstance(board, dict):
        return f"the top level is a {type(board).__name__}, not an object"
    if board.get("schema") != SCHEMA:
        return f"schema is {board.get('schema')!r}, expected {SCHEMA!r}"
    if board.get("benchmark") != benchmark:
        return f"it holds benchmark {board.get('benchmark')!r}, not {benchmark!r}"
    entries = board.get("entries")
    if not isinstance(entries, list):
        return "'entries' is missing or not a list"
    seen: set[str] = set()
    for entry in entries:
        problem = _entry_problem(entry)
        if problem:
            return problem
        if entry["id"] in seen:
            return f"entry id {entry['id']!r} appears twice"
        seen.add(entry["id"])
    return None


def _empty_board(benchmark: str) -> dict[str, Any]:
    return {"schema": SCHEMA, "benchmark": benchmark, "entries": []}


# ---------------------------------------------------------------------------------------
# Reading and submitting.


def load_leaderboard(directory: Path, benchmark: str) -> dict[str, Any]:
    """The board of ``benchmark`` in ``directory``: ``{"schema", "benchmark", "entries"}``.

    A missing file is an empty board. A file that is not a valid board (unreadable, invalid
    JSON, another schema or benchmark, an entry lacking a required key or with a wrong type,
    duplicate ids) raises :class:`AdbenchError` naming the file; nothing ever overwrites such a
    file -- fix it or restore it from git.
    """
    path = board_path(directory, benchmark)

    def corrupted(detail: str) -> AdbenchError:
        return AdbenchError(
            f"leaderboard {path} is corrupted ({detail}); it was not overwritten: fix it or "
            f"restore it from git (git checkout -- {path})"
        )

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _empty_board(benchmark)
    except OSError as error:
        raise AdbenchError(f"cannot read leaderboard {path}: {error.strerror or error}") from None
    try:
        board = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise corrupted(f"invalid JSON: {error}") from None
    problem = _board_problem(board, benchmark)
    if problem:
        raise corrupted(problem)
    return board


def _relative_results_file(results_file: str | None, directory: Path) -> str | None:
    """An absolute results path inside the leaderboards folder's parent (the repo) is stored
    relative to that parent (POSIX separators), so committed boards are machine-independent."""
    if results_file is None:
        return None
    path = Path(results_file)
    if not path.is_absolute():
        return results_file
    root = Path(directory).resolve().parent
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return results_file


def submit(directory: Path, benchmark: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Add ``entry`` to the board of ``benchmark`` in ``directory`` and return it as stored.

    The entry gets a fresh ``id`` (uuid4 hex) and ``date`` (now, UTC, ISO 8601) when it has
    none; an absolute ``results_file`` inside ``directory``'s parent is stored relative to it.
    It must then have every key of ``REQUIRED_KEYS`` with the right types, else
    :class:`AdbenchError`.

    * ``kind == "model"``: always added (re-evaluations are separate entries).
    * ``kind == "reference"``: replaces every existing reference entry with the same
      ``model_id`` and ``benchmark_version`` (re-running the references does not duplicate
      them); references of other benchmark versions stay.

    The read-modify-write runs under an exclusive ``flock`` on ``<directory>/.<benchmark>.lock``
    and the file is replaced atomically, so concurrent submissions (threads or processes) are
    all kept and readers never see a partial file. A corrupted board raises (see
    :func:`load_leaderboard`) and is left untouched. ``README.md`` is not regenerated here:
    call :func:`write_readme` afterwards.
    """
    path = board_path(directory, benchmark)
    if not isinstance(entry, dict):
        raise AdbenchError(f"a leaderboard entry must be a dict, got {type(entry).__name__}")
    stored = dict(entry)
    stored.setdefault("id", uuid.uuid4().hex)
    stored.setdefault("date", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    if "results_file" in stored and isinstance(stored["results_file"], str | None):
        stored["results_file"] = _relative_results_file(stored["results_file"], directory)
    problem = _entry_problem(stored)
    if problem:
        raise AdbenchError(f"cannot submit to {path}: {problem}")
    try:
        json.dumps(stored)
    except (TypeError, ValueError) as error:
        raise AdbenchError(f"cannot submit to {path}: the entry is not JSON: {error}") from None

    with _exclusive_lock(lock_path(directory, benchmark)):
        board = load_leaderboard(directory, benchmark)
        entries = board["entries"]
        if any(existing["id"] == stored["id"] for existing in entries):
            raise AdbenchError(f"cannot submit to {path}: an entry with id {stored['id']!r} exists")
        if stored["kind"] == "reference":
            entries = [
                existing
                for existing in entries
                if not (
                    existing["kind"] == "reference"
                    and existing["model_id"] == stored["model_id"]
                    and existing["benchmark_version"] == stored["benchmark_version"]
                )
            ]
        entries.append(stored)
        atomic_write_json(path, {**board, "entries": entries})
    return stored


# ---------------------------------------------------------------------------------------
# Ranking and rendering.


def ranked(board: dict[str, Any]) -> list[dict[str, Any]]:
    """The board's entries (copies) best first, each with a ``rank`` key.

    Order: ``score_iqm`` descending; ties broken by ``final_iqm`` descending, then ``date``
    ascending (the earlier submission first), then ``id``. References are included in that
    order with ``rank`` None; model entries get ranks 1, 2, 3, ... in order (no shared ranks).
    """
    entries = sorted(
        board["entries"],
        key=lambda e: (-e["score_iqm"], -e["final_iqm"], _sortable_date(e["date"]), e["id"]),
    )
    out: list[dict[str, Any]] = []
    rank = 0
    for entry in entries:
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


def _score_cell(entry: dict[str, Any]) -> str:
    low, high = entry["score_iqm_ci"]
    return f"{entry['score_iqm']:.2f} [{low:.2f}, {high:.2f}]"


def _model_label(entry: dict[str, Any]) -> str:
    revision = entry.get("model_revision")
    label = entry["model_id"] if not revision else f"{entry['model_id']}@{revision[:8]}"
    return f"{label} (reference)" if entry["kind"] == "reference" else label


def _cells(entry: dict[str, Any]) -> list[str]:
    """The row of an entry, in ``_COLUMNS`` order, as plain strings."""
    return [
        "ref" if entry["rank"] is None else str(entry["rank"]),
        _model_label(entry),
        _score_cell(entry),
        f"{entry['final_iqm']:.2f}",
        f"{entry['improvement_iqm']:.2f}",
        str(entry["episodes"]),
        entry["date"][:10],
    ]


def render_table(board: dict[str, Any], console: Console) -> Table:
    """Print the board as a Rich table (columns rank, model, score IQM [95% CI], final,
    improvement, episodes, date; best first, see :func:`ranked`) and return the table.
    Reference rows have rank "ref", the model labelled "(reference)", and style dim italic."""
    table = Table(
        title=f"{board['benchmark']} leaderboard",
        caption="score: IQM over runs of the mean normalised score (R - random) / "
        "(reference - random), 95% stratified-bootstrap CI",
    )
    for column in _COLUMNS:
        numeric = column in ("rank", "final", "improvement", "episodes")
        table.add_column(column, justify="right" if numeric else "left")
    for entry in ranked(board):
        reference = entry["kind"] == "reference"
        table.add_row(
            *(Text(cell) for cell in _cells(entry)), style="dim italic" if reference else None
        )
    console.print(table)
    if not board["entries"]:
        console.print("no entries yet: adbench evaluate --model ID --benchmark NAME --submit")
    return table


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown_row(entry: dict[str, Any]) -> str:
    cells = _cells(entry)
    model = f"`{cells[1]}`"
    if entry["kind"] == "reference":
        model = f"*{entry['model_id']} (reference)*"
        cells = [f"*{cell}*" for cell in cells]
    cells[1] = model
    return "| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |"


def _board_files(directory: Path) -> list[Path]:
    # Hidden files are skipped: temporary files of atomic writes end in .json too.
    return sorted(
        p for p in Path(directory).glob("*.json") if p.is_file() and not p.name.startswith(".")
    )


def render_readme(directory: Path) -> str:
    """The Markdown of ``<directory>/README.md``: how scores are computed and how to submit,
    then a table per ``*.json`` board (sorted by benchmark name) with the columns of
    :func:`render_table`, best first. A corrupted board raises (see :func:`load_leaderboard`).
    """
    lines = [
        "# Leaderboards",
        "",
        "<!-- Generated by `adbench leaderboard readme` from the *.json boards in this folder;"
        " do not edit by hand. -->",
        "",
        "Each run plays a benchmark's held-out tasks for many in-context episodes, starting "
        "from an empty context and without parameter updates. The score of an episode is "
        "the normalised return (R - random) / (reference - random), where *random* is the "
        "uniform random policy's return and *reference* the optimal return (or, for the "
        "bandit, UCB's mean return at the same episode of the same task, learning from "
        "scratch). A run's score is its "
        "mean over all episodes (the area under its normalised learning curve); the "
        "leaderboard score is the interquartile mean (IQM) over all runs (tasks x seeds) "
        "with a 95% stratified-bootstrap confidence interval (runs resampled within each "
        "task; Agarwal et al., 2021). *final* is the IQM of the mean over the last 10% of "
        "episodes, *improvement* the IQM of final minus first 10%. Reference rows (in "
        "italics) are not ranked.",
        "",
        "To submit: `adbench evaluate --model ID --benchmark NAME --submit`, then commit the "
        "updated `<benchmark>.json` and this README.",
        "",
    ]
    files = _board_files(directory)
    if not files:
        lines += ["No leaderboards yet.", ""]
    for path in files:
        board = load_leaderboard(directory, path.stem)
        versions = sorted({e["benchmark_version"] for e in board["entries"]})
        lines += [f"## {board['benchmark']}", ""]
        if not board["entries"]:
            lines += ["No entries yet.", ""]
            continue
        lines += [
            f"Benchmark version(s): {', '.join(versions)}.",
            "",
            "| " + " | ".join(_COLUMNS) + " |",
            "|---:|---|---|---:|---:|---:|---|",
        ]
        lines += [_markdown_row(entry) for entry in ranked(board)]
        lines.append("")
    return "\n".join(lines)


def write_readme(directory: Path) -> Path:
    """Regenerate ``<directory>/README.md`` from every board (:func:`render_readme`) and write
    it atomically; returns its path. Regenerations are serialised by a ``flock`` on
    ``<directory>/.README.lock``, so when several submitters each call this after their
    :func:`submit`, the last README written includes every submission."""
    directory = Path(directory)
    with _exclusive_lock(directory / _README_LOCK):
        text = render_readme(directory)
        path = directory / README_NAME
        atomic_write_text(path, text)
    return path
