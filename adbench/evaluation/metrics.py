"""Learning-curve metrics and their aggregates over runs and tasks (pure numpy).

Inputs are per-run learning curves. A *run* is one evaluation of a policy on one task with one
evaluation seed, starting from an empty context and playing ``num_episodes`` in-context
episodes without any parameter update:

* ``returns`` -- shape ``[num_runs, num_episodes]``: the return of each episode of each run;
* ``run_task`` -- shape ``[num_runs]``: the task of each run (any hashable labels; runs of one
  task differ only by their evaluation seed);
* ``random_return`` and ``reference_return`` -- the per-run normalisers: shape ``[num_runs]``
  (one value per run, e.g. the optimal return), ``[num_runs, 1]``, or ``[num_runs,
  num_episodes]`` (one value per episode, e.g. the source algorithm's learning curve on the
  same task and seed -- the bandit's UCB normalisation). A scalar is used for every run.

The aggregates follow rliable (Agarwal et al., 2021, "Deep RL at the edge of the statistical
precipice"): scores are arranged as a matrix ``[num_runs_per_task, num_tasks]``, the point
estimates are the mean and the interquartile mean (IQM) of all its entries, and the 95%
confidence intervals are percentile intervals of a stratified bootstrap that resamples runs
with replacement independently within each task. ``tests/test_metrics.py`` checks the point
estimates against rliable exactly and the intervals approximately.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adbench.errors import AdbenchError

FloatArray = NDArray[np.float64]

Statistic = Callable[[FloatArray], FloatArray | float]
"""A statistic for :func:`stratified_bootstrap_ci`: maps an array ``[..., runs, tasks]`` to
``[...]``, reducing the last two axes (leading axes are batch axes); :func:`iqm` and
:func:`mean` are such statistics."""

TAIL_FRACTION_DENOMINATOR = 10
"""``first``/``final`` use ``ceil(num_episodes / 10)`` episodes: 10%, rounded up."""

SMOOTHING_FRACTION_DENOMINATOR = 100
"""The ``episodes_to_*`` running mean uses a window of ``ceil(num_episodes / 100)`` episodes."""

THRESHOLDS = {"episodes_to_50": 0.5, "episodes_to_80": 0.8}
"""The normalised-score levels of the ``episodes_to_*`` metrics."""

# Bootstrap temporaries (indices + resampled scores) are built in chunks of replicates holding
# at most this many scores, so memory stays bounded (~32 MB) whatever reps x runs x tasks is.
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 21


# ---------------------------------------------------------------------------------------
# Input handling.


def _curves(returns: ArrayLike, name: str = "returns") -> FloatArray:
    curves = np.asarray(returns, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[0] < 1 or curves.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape [num_runs, num_episodes] with both at least 1, "
            f"got shape {curves.shape}"
        )
    if not np.isfinite(curves).all():
        raise ValueError(f"{name} contains nan or inf")
    return curves


def _per_run(values: ArrayLike, shape: tuple[int, int], name: str) -> FloatArray:
    """Broadcast a per-run (``[R]``, ``[R, 1]``), per-episode (``[R, E]``) or scalar value
    to the curves' shape ``[R, E]``. A 1-D array is one value per run (not per episode)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        if array.shape[0] != shape[0]:
            raise ValueError(
                f"{name} has {array.shape[0]} values but there are {shape[0]} runs "
                f"(expected shape [{shape[0]}], [{shape[0]}, 1] or {list(shape)})"
            )
        array = array[:, None]
    if array.ndim > 2:
        raise ValueError(f"{name} must have at most 2 dimensions, got shape {array.shape}")
    try:
        out = np.broadcast_to(array, shape)
    except ValueError:
        raise ValueError(
            f"{name} of shape {array.shape} does not broadcast to the curves' shape "
            f"{shape} (expected [{shape[0]}], [{shape[0]}, 1] or {list(shape)})"
        ) from None
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains nan or inf")
    return out


# ---------------------------------------------------------------------------------------
# Per-episode and per-run metrics.


def normalized_scores(
    returns: ArrayLike,
    random_return: ArrayLike,
    reference_return: ArrayLike,
    *,
    degenerate: Literal["raise", "zero"] = "raise",
) -> FloatArray:
    """Normalised score of every episode of every run: ``(R - random) / (reference - random)``.

    0 is the uniform random policy's level, 1 the reference's (the optimal return, or the
    source algorithm's return at the same episode). ``random_return`` and
    ``reference_return`` are broadcast per run (shape ``[num_runs]`` or ``[num_runs, 1]``) or
    given per episode (``[num_runs, num_episodes]``); see the module docstring. Scores are not
    clipped: a run worse than random scores below 0, one better than the reference above 1.
    The formula is applied as is when ``reference < random`` (no such benchmark exists).

    Where ``reference == random`` exactly the score is undefined (the task cannot separate a
    learner from a random policy). With ``degenerate="raise"`` (the default) that is an
    :class:`AdbenchError` naming the first such run and episode -- such a task does not belong
    in a benchmark. With ``degenerate="zero"`` those entries are defined as 0 (random level).

    Returns float64 of shape ``[num_runs, num_episodes]``.
    """
    curves = _curves(returns)
    low = _per_run(random_return, curves.shape, "random_return")
    high = _per_run(reference_return, curves.shape, "reference_return")
    span = high - low
    tied = span == 0
    if tied.any():
        if degenerate == "raise":
            run, episode = (int(i) for i in np.argwhere(tied)[0])
            raise AdbenchError(
                f"normalized score undefined for {int(tied.sum())} episode(s), first run {run} "
                f"episode {episode + 1}: the reference return equals the random return "
                f"({low[run, episode]:g}); remove such tasks from the benchmark or pass "
                "degenerate='zero' to score them 0"
            )
        if degenerate != "zero":
            raise ValueError(f"degenerate must be 'raise' or 'zero', got {degenerate!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (curves - low) / span
    return np.where(tied, 0.0, scores)


def tail_length(num_episodes: int) -> int:
    """Episodes in ``first``/``final``: 10% of ``num_episodes`` rounded up, i.e.
    ``ceil(num_episodes / 10)`` (integer arithmetic), so at least 1 (e.g. 20 -> 2, 25 -> 3,
    1000 -> 100)."""
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be at least 1, got {num_episodes}")
    return -(-num_episodes // TAIL_FRACTION_DENOMINATOR)


def smoothing_window(num_episodes: int) -> int:
    """Running-mean window of the ``episodes_to_*`` metrics: 1% of ``num_episodes`` rounded up,
    i.e. ``ceil(num_episodes / 100)``, so at least 1 (e.g. 20 -> 1, 160 -> 2, 1000 -> 10)."""
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be at least 1, got {num_episodes}")
    return -(-num_episodes // SMOOTHING_FRACTION_DENOMINATOR)


def running_mean(curves: ArrayLike, window: int) -> FloatArray:
    """Trailing running mean over full windows: for curves ``[R, E]`` returns ``[R, E - w + 1]``
    whose column ``j`` is the mean of episodes ``j .. j + w - 1`` (0-based), i.e. the smoothed
    value *at* 1-based episode ``j + w`` uses that episode and the ``w - 1`` before it. No
    partial windows: the first smoothed value is at episode ``w``."""
    x = _curves(curves, "curves")
    if not 1 <= window <= x.shape[1]:
        raise ValueError(f"window must be in [1, {x.shape[1]}], got {window}")
    if window == 1:
        return x.copy()
    return np.lib.stride_tricks.sliding_window_view(x, window, axis=1).mean(axis=-1)


def episodes_to_reach(normalized: ArrayLike, threshold: float) -> FloatArray:
    """Per run: the first 1-based episode ``t`` at which the smoothed normalised curve reaches
    ``threshold``, i.e. the smallest ``t`` in ``[w, E]`` with ``mean(normalized[t - w + 1 ..
    t]) >= threshold`` where ``w = smoothing_window(E)`` (see :func:`running_mean`); ``nan``
    when no such episode exists (never reached within the ``E`` episodes). Shape
    ``[num_runs]``, float64 (integers or nan)."""
    x = _curves(normalized, "normalized")
    window = smoothing_window(x.shape[1])
    reached = running_mean(x, window) >= threshold
    first = np.argmax(reached, axis=1).astype(np.float64) + window
    return np.where(reached.any(axis=1), first, np.nan)


def run_metrics(returns: ArrayLike, normalized: ArrayLike) -> dict[str, FloatArray]:
    """Per-run metrics of the learning curves; every value has shape ``[num_runs]``.

    With ``E`` episodes, ``k = tail_length(E) = ceil(E / 10)`` and ``x`` the normalised curve
    of a run (:func:`normalized_scores`):

    * ``auc`` -- area under the normalised curve divided by ``E``: ``mean(x[1..E])`` (the
      headline score: it rewards learning fast as well as learning well);
    * ``first`` -- ``mean(x[1..k])``; ``final`` -- ``mean(x[E-k+1..E])``;
    * ``improvement`` -- ``final - first`` (in-context improvement);
    * ``episodes_to_50`` / ``episodes_to_80`` -- :func:`episodes_to_reach` with thresholds 0.5
      / 0.8 (1-based episode, ``nan`` if never reached);
    * ``mean_return`` / ``final_return`` -- the same as ``auc`` / ``final`` on the raw returns
      (unnormalised, in the environment's units).
    """
    raw = _curves(returns)
    x = _curves(normalized, "normalized")
    if raw.shape != x.shape:
        raise ValueError(f"returns {raw.shape} and normalized {x.shape} differ in shape")
    k = tail_length(x.shape[1])
    first = x[:, :k].mean(axis=1)
    final = x[:, -k:].mean(axis=1)
    out = {
        "auc": x.mean(axis=1),
        "final": final,
        "first": first,
        "improvement": final - first,
    }
    for name, threshold in THRESHOLDS.items():
        out[name] = episodes_to_reach(x, threshold)
    out["mean_return"] = raw.mean(axis=1)
    out["final_return"] = raw[:, -k:].mean(axis=1)
    return out


def cumulative_regret(returns: ArrayLike, optimal_return: ArrayLike) -> FloatArray:
    """Per run: ``sum over episodes of (optimal - return)`` (the bandit's cumulative regret in
    return units). ``optimal_return`` is per run (``[num_runs]``, ``[num_runs, 1]``) or per
    episode (``[num_runs, num_episodes]``). Shape ``[num_runs]``."""
    curves = _curves(returns)
    best = _per_run(optimal_return, curves.shape, "optimal_return")
    return (best - curves).sum(axis=1)


# ---------------------------------------------------------------------------------------
# Aggregates over runs x tasks (rliable's definitions).


def _trailing_values(scores: ArrayLike) -> FloatArray:
    """``[..., runs, tasks]`` -> ``[..., runs * tasks]``; a 0-/1-D array -> ``[n]``."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim <= 1:
        return x.reshape(-1)
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def _scalar_or_array(value: FloatArray) -> FloatArray | float:
    return float(value) if value.ndim == 0 else value


def iqm(scores: ArrayLike) -> FloatArray | float:
    """Interquartile mean of all ``runs x tasks`` scores: the 25%-trimmed mean of the flattened
    values, exactly as ``scipy.stats.trim_mean(x, 0.25, axis=None)`` (rliable's
    ``aggregate_iqm``): with ``n`` values sorted ascending and ``c = floor(n / 4)``, the mean
    of the sorted values at 0-based positions ``c .. n - c - 1`` (for ``n = 10``: ``c = 2``,
    the mean of the 6 middle values).

    ``scores`` is ``[runs, tasks]`` (or a 1-D array of values) -> a float; leading axes of a
    higher-dimensional array are batch axes: ``[..., runs, tasks]`` -> ``[...]``.
    """
    values = _trailing_values(scores)
    n = values.shape[-1]
    if n == 0:
        raise ValueError("iqm of an empty array")
    cut = n // 4
    middle = np.sort(values, axis=-1)[..., cut : n - cut]
    return _scalar_or_array(middle.mean(axis=-1))


def mean(scores: ArrayLike) -> FloatArray | float:
    """Mean of all ``runs x tasks`` scores. With the same number of runs for every task (as
    :func:`aggregate` requires) this is rliable's ``aggregate_mean``, the mean over tasks of
    the per-task means. Shapes as in :func:`iqm`."""
    values = _trailing_values(scores)
    if values.shape[-1] == 0:
        raise ValueError("mean of an empty array")
    return _scalar_or_array(values.mean(axis=-1))


def _score_matrix(scores_matrix: ArrayLike) -> FloatArray:
    matrix = np.asarray(scores_matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ValueError(
            f"scores_matrix must have shape [num_runs_per_task, num_tasks] with both at "
            f"least 1, got shape {matrix.shape}"
        )
    if not np.isfinite(matrix).all():
        raise ValueError("scores_matrix contains nan or inf")
    return matrix


def _bootstrap_replicates(
    matrix: FloatArray, statistics: list[Statistic], reps: int, seed: int
) -> list[FloatArray]:
    """Each statistic on ``reps`` stratified resamples of ``matrix`` [runs, tasks]: replicate
    ``b`` is ``matrix[I[b, i, j], j]`` with ``I[b, i, j]`` uniform on ``0 .. runs - 1``,
    independent over ``b, i, j`` (``numpy.random.default_rng(seed)``). The resamples are
    shared by all statistics."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    runs, tasks = matrix.shape
    rng = np.random.default_rng(seed)
    columns = np.arange(tasks)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // (runs * tasks))
    pieces: list[list[FloatArray]] = [[] for _ in statistics]
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        rows = rng.integers(0, runs, size=(size, runs, tasks))
        resampled = matrix[rows, columns]  # [size, runs, tasks]
        for piece, statistic in zip(pieces, statistics, strict=True):
            values = np.asarray(statistic(resampled), dtype=np.float64)
            if values.shape != (size,):
                raise ValueError(
                    f"statistic {getattr(statistic, '__name__', statistic)!r} must map "
                    f"[reps, runs, tasks] to [reps]; got shape {values.shape} for input "
                    f"shape {resampled.shape}"
                )
            piece.append(values)
    return [np.concatenate(piece) for piece in pieces]


def _percentile_interval(replicates: FloatArray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(replicates, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def stratified_bootstrap_ci(
    scores_matrix: ArrayLike,
    statistic: Statistic,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic`` by stratified bootstrap (rliable's
    ``get_interval_estimates(..., method="percentile")`` without task bootstrap).

    ``scores_matrix`` is ``[num_runs_per_task, num_tasks]`` (rliable's layout). Each of the
    ``reps`` replicates resamples, independently within each task (column), ``num_runs_per_task``
    runs with replacement, and evaluates ``statistic`` on the resampled matrix. The interval is
    the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the replicates
    (``numpy.percentile``, linear interpolation -- as arch's percentile interval).

    ``statistic`` must be vectorised: it receives all replicates of a chunk at once as
    ``[reps_chunk, runs, tasks]`` and returns ``[reps_chunk]`` (:func:`iqm` and :func:`mean`
    qualify). The random numbers come from ``numpy.random.default_rng(seed)``: the same inputs
    and seed give the identical interval.
    """
    _check_confidence(confidence)
    matrix = _score_matrix(scores_matrix)
    (replicates,) = _bootstrap_replicates(matrix, [statistic], reps, seed)
    return _percentile_interval(replicates, confidence)


def task_matrix(per_run: ArrayLike, run_task: ArrayLike) -> FloatArray:
    """Arrange per-run values into rliable's ``[num_runs_per_task, num_tasks]`` matrix.

    Tasks (columns) are in sorted order of their labels; within a task, runs keep their input
    order. Every task must have the same number of runs, else :class:`AdbenchError`.
    """
    values = np.asarray(per_run, dtype=np.float64)
    labels = np.asarray(run_task)
    if values.ndim != 1 or labels.shape != values.shape or values.size == 0:
        raise ValueError(
            f"per_run and run_task must be 1-D of the same non-zero length, got shapes "
            f"{values.shape} and {labels.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("per_run contains nan or inf; aggregate only finite values")
    tasks, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() != counts.max():
        uneven = ", ".join(f"{task}: {count}" for task, count in zip(tasks, counts, strict=True))
        raise AdbenchError(
            f"tasks have different numbers of runs ({uneven}); the stratified bootstrap needs "
            "the same number of evaluation seeds for every task -- evaluate every task with "
            "the same seeds"
        )
    order = np.argsort(inverse, kind="stable")
    return values[order].reshape(len(tasks), int(counts[0])).T


def aggregate(
    per_run: ArrayLike,
    run_task: ArrayLike,
    reps: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float | list[float]]:
    """Mean and IQM of a per-run metric over all runs x tasks, with stratified-bootstrap CIs.

    The runs are grouped by task into the ``[num_runs_per_task, num_tasks]`` matrix of
    :func:`task_matrix` (tasks must have equal run counts, else :class:`AdbenchError`). Returns
    ``{"mean": float, "mean_ci": [lo, hi], "iqm": float, "iqm_ci": [lo, hi]}``; both intervals
    come from the same ``reps`` resamples, so each equals ``stratified_bootstrap_ci(matrix,
    <statistic>, reps, confidence, seed)``.
    """
    _check_confidence(confidence)
    matrix = task_matrix(per_run, run_task)
    mean_reps, iqm_reps = _bootstrap_replicates(matrix, [mean, iqm], reps, seed)
    return {
        "mean": float(mean(matrix)),
        "mean_ci": list(_percentile_interval(mean_reps, confidence)),
        "iqm": float(iqm(matrix)),
        "iqm_ci": list(_percentile_interval(iqm_reps, confidence)),
    }
