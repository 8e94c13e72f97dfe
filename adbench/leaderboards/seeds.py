"""Training-seed groups: one method trained with several seeds, reported as one row.

The leaderboards rank models, and each training seed's model is its own entry there: an
entry is a promise about one set of weights, which anyone can download and score again.
What a paper table needs is the method across seeds, so a seed group is a view over
entries: its return at given episode marks is the mean over training seeds of the mean
return over evaluation runs, with a 95% confidence interval from rliable's stratified
bootstrap, taking the ``[training seeds, tasks]`` matrix of per-(seed, task) mean returns
(evaluation seeds averaged within a task) and resampling the seeds within each task.
With one seed the interval is over nothing and is not reported. The benchmark's
in-context improvement (per run, the normalised return of the last 10% of episodes minus
that of the first 10%) is aggregated over the same matrix, as an IQM (rliable's robust
aggregate, which the leaderboards use: on the bandit, normalised by UCB's return, a few
tasks' early episodes make the mean swing), because "does this method improve in context?"
is a question about the method, whose interval must be over training seeds too.

The paper's numbers (shared/PAPER.md, "Results") sit beside each row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adbench.errors import AdbenchError
from adbench.evaluation.benchmarks import runs_from_records
from adbench.evaluation.metrics import (
    iqm,
    mean,
    run_metrics,
    stratified_bootstrap_ci,
    task_matrix,
)
from adbench.evaluation.results import read_runs
from adbench.leaderboards.board import load_board

# The paper's return on held-out tasks at the episode given, per benchmark and method
# (Laskin et al., 2022; shared/PAPER.md). Only the marks the paper states.
PAPER_RETURNS: dict[str, dict[str, dict[int, float]]] = {
    "darkroom": {
        "ad": {200: 9.6, 400: 12.9, 1000: 14.1},
        "ed": {1000: 0.73},
        "source": {1000: 0.76},
        "rl2": {1000: 14.7},
    },
    "darkroom-hard": {
        "ad": {1000: 0.68},
        "ed": {1000: 0.07},
        "source": {1000: 0.09},
        "rl2": {1000: 0.70},
    },
    "key-to-door": {
        "ad": {200: 1.66, 1000: 1.81},
        "ed": {1000: 0.58},
        "source": {1000: 0.70},
        "rl2": {1000: 1.87},
    },
    "watermaze": {
        "ad": {160: 0.84},
        "ed": {160: 0.18},
        "source": {160: 0.56},
        "rl2": {160: 0.97},
    },
}

# The episode marks a table reports per benchmark: the paper's, plus the first episode.
DEFAULT_MARKS: dict[str, tuple[int, ...]] = {
    "bandit": (1, 2, 5, 20),
    "darkroom": (1, 200, 400, 1000),
    "darkroom-hard": (1, 200, 1000),
    "key-to-door": (1, 200, 1000),
    "watermaze": (1, 40, 160),
}


@dataclass
class GroupValue:
    """A seed group's statistic of one per-run quantity: the mean for returns, the IQM for
    the improvement."""

    value: float  # the statistic over the [seeds, tasks] matrix of per-task means
    ci: tuple[float, float] | None  # 95% stratified bootstrap over seeds x tasks
    per_seed: list[float]  # the statistic over each seed's per-task means


@dataclass
class MarkValue(GroupValue):
    """A seed group's mean return at one episode mark."""

    episode: int = 0
    paper: float | None = None


@dataclass
class SeedGroup:
    """One method's models (one per training seed) on one benchmark."""

    label: str
    benchmark: str
    model_ids: list[str]
    scores: list[float]  # each seed's score IQM
    marks: list[MarkValue] = field(default_factory=list)
    improvement: GroupValue | None = None  # the benchmark's in-context improvement, IQM


def seed_group(
    directory: Path,
    benchmark: str,
    label: str,
    model_ids: list[str],
    marks: tuple[int, ...] | None = None,
    reps: int = 2000,
    seed: int = 0,
) -> SeedGroup:
    """The seed group of ``model_ids`` (one entry each on the current version of
    ``benchmark``'s board in ``directory``) at ``marks`` (default: :data:`DEFAULT_MARKS`),
    over the benchmark's scored splits. The paper's numbers shown beside are those of the
    models' method (their config's ``method``; ``source`` for the source reference)."""
    if not model_ids:
        raise AdbenchError(f"seed group {label!r} has no models")
    if len(set(model_ids)) != len(model_ids):
        raise AdbenchError(f"seed group {label!r} names a model twice: {', '.join(model_ids)}")
    # Imported here: scoring pulls in torch, which reading a board does not need.
    from adbench.evaluation.evaluate import normalized_returns, normalizing_source_curve

    board = load_board(directory, benchmark)
    bench = board.benchmark
    source_curves: dict[str, np.ndarray | None] = {}  # by runs fingerprint: one per protocol
    by_model: dict[str, list[dict[str, Any]]] = {}
    for entry in board.entries:
        by_model.setdefault(entry["model_id"], []).append(entry)
    curves = []
    scores = []
    methods = set()
    for model_id in model_ids:
        entries = by_model.get(model_id, [])
        if len(entries) != 1:
            found = "no entry" if not entries else f"{len(entries)} entries"
            raise AdbenchError(
                f"{model_id} has {found} on the {benchmark} board (version "
                f"{board.benchmark.version}) in {directory}: a seed group needs exactly one "
                f"per model (adbench evaluate --model {model_id} --submit)"
            )
        entry = entries[0]
        summary = board.summaries[entry["id"]]
        model = summary["model"]
        # RL^2's config has no method field: its model type names it.
        rl2 = "rl2" if model.get("model_type") == "adbench_rl2" else None
        methods.add(model.get("method") or rl2 or model["id"])
        runs = read_runs(directory / entry["results_file"], summary)
        stored = runs_from_records(bench, runs["split"], runs["task_index"], runs["seed"])
        fingerprint = stored.fingerprint()
        if fingerprint not in source_curves:
            source_curves[fingerprint] = normalizing_source_curve(
                bench, stored, runs["returns"].shape[1]
            )
        source_curve = source_curves[fingerprint]
        normalized = normalized_returns(bench, stored, runs["returns"], source_curve)
        improvement = run_metrics(runs["returns"], normalized)["improvement"]
        scored = np.isin(runs["split"], bench.scored_splits)
        task_key = np.char.add(
            np.char.add(runs["split"][scored].astype(str), ":"),
            runs["task_index"][scored].astype(str),
        )
        curves.append((task_key, runs["returns"][scored], improvement[scored]))
        scores.append(float(entry["score_iqm"]))
    first_keys = curves[0][0]
    for (keys, _, _), model_id in zip(curves[1:], model_ids[1:], strict=True):
        if not np.array_equal(np.sort(keys), np.sort(first_keys)):
            raise AdbenchError(f"{model_id} was scored on other tasks than {model_ids[0]}")
    episodes = curves[0][1].shape[1]
    marks = marks or DEFAULT_MARKS.get(benchmark, (1, episodes))
    bad = [m for m in marks if not 1 <= m <= episodes]
    if bad:
        raise AdbenchError(
            f"episode marks {bad} are outside 1..{episodes} (the {benchmark} protocol's episodes)"
        )
    if len(methods) > 1:
        raise AdbenchError(f"seed group {label!r} mixes methods: {', '.join(sorted(methods))}")
    paper = PAPER_RETURNS.get(benchmark, {}).get(methods.pop(), {})
    group = SeedGroup(label, benchmark, list(model_ids), scores)

    def over_seeds(per_run: list[np.ndarray], statistic: Callable[..., Any] = mean) -> GroupValue:
        # [seeds, tasks]: each seed's mean per task (its evaluation seeds averaged).
        pairs = zip(curves, per_run, strict=True)
        matrix = np.stack([_task_means(keys, values) for (keys, _, _), values in pairs])
        ci = None
        if len(model_ids) > 1:
            ci = stratified_bootstrap_ci(matrix, statistic, reps=reps, seed=seed)
        per_seed = [float(statistic(row)) for row in matrix]
        return GroupValue(float(statistic(matrix)), ci, per_seed)

    for mark in marks:
        value = over_seeds([returns[:, mark - 1] for _, returns, _ in curves])
        group.marks.append(MarkValue(**vars(value), episode=mark, paper=paper.get(mark)))
    group.improvement = over_seeds([improvement for _, _, improvement in curves], iqm)
    return group


def _task_means(task_key: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per task, tasks in sorted order (as :func:`task_matrix`)."""
    return task_matrix(values, task_key).mean(axis=0)


def _with_ci(value: GroupValue, digits: int) -> str:
    text = f"{value.value:.{digits}f}"
    if value.ci is not None:
        text += f" [{value.ci[0]:.{digits}f}, {value.ci[1]:.{digits}f}]"
    return text


def markdown_table(groups: list[SeedGroup]) -> str:
    """A results table: one row per group, one column per mark (mean [95% CI] (paper))."""
    if not groups:
        return ""
    marks = [m.episode for m in groups[0].marks]
    header = ["method", "seeds", "score IQM per seed"] + [f"return ep {m}" for m in marks]
    header.append("improvement IQM")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in groups:
        cells = [group.label, str(len(group.model_ids))]
        cells.append(", ".join(f"{s:.3f}" for s in group.scores))
        for value in group.marks:
            text = _with_ci(value, 2)
            if value.paper is not None:
                text += f" (paper {value.paper:g})"
            cells.append(text)
        cells.append(_with_ci(group.improvement, 3) if group.improvement is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
