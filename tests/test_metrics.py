"""Learning-curve metrics and rliable-style aggregates on hand-computed examples."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from adbench.errors import AdbenchError
from adbench.evaluation import metrics

# ---------------------------------------------------------------------------------------
# normalized_scores


def test_normalized_scores_per_run_reference() -> None:
    returns = np.array([[0.0, 5.0, 10.0], [2.0, 3.0, 4.0]])
    scores = metrics.normalized_scores(returns, np.array([0.0, 2.0]), np.array([10.0, 4.0]))
    np.testing.assert_array_equal(scores, [[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]])


def test_normalized_scores_per_episode_and_column_reference() -> None:
    returns = np.array([[2.0, 4.0, 6.0]])
    per_episode = metrics.normalized_scores(returns, np.array([0.0]), np.array([[4.0, 4.0, 4.0]]))
    column = metrics.normalized_scores(returns, np.array([[0.0]]), np.array([[4.0]]))
    np.testing.assert_array_equal(per_episode, [[0.5, 1.0, 1.5]])
    np.testing.assert_array_equal(column, [[0.5, 1.0, 1.5]])
    # A per-episode reference that varies (the bandit's source curve).
    varying = metrics.normalized_scores(returns, 0.0, np.array([[4.0, 8.0, 3.0]]))
    np.testing.assert_array_equal(varying, [[0.5, 0.5, 2.0]])
    # Below random is negative: no clipping.
    below = metrics.normalized_scores(np.array([[-2.0]]), np.array([0.0]), np.array([4.0]))
    np.testing.assert_array_equal(below, [[-0.5]])


def test_normalized_scores_degenerate_reference() -> None:
    returns = np.array([[1.0, 2.0], [3.0, 4.0]])
    random = np.array([0.0, 5.0])
    reference = np.array([[1.0, 1.0], [6.0, 5.0]])  # run 1, episode 2 is tied
    with pytest.raises(AdbenchError, match="run 1 episode 2"):
        metrics.normalized_scores(returns, random, reference)
    scores = metrics.normalized_scores(returns, random, reference, degenerate="zero")
    np.testing.assert_array_equal(scores, [[1.0, 2.0], [-2.0, 0.0]])


def test_normalized_scores_rejects_bad_shapes() -> None:
    returns = np.zeros((3, 4))
    with pytest.raises(ValueError, match="3 runs"):
        metrics.normalized_scores(returns, np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="broadcast"):
        metrics.normalized_scores(returns, np.zeros(3), np.ones((3, 2)))
    with pytest.raises(ValueError, match="nan"):
        metrics.normalized_scores(returns + np.nan, np.zeros(3), np.ones(3))


# ---------------------------------------------------------------------------------------
# Per-run metrics


def test_windows() -> None:
    assert [metrics.tail_length(e) for e in (1, 9, 10, 11, 20, 25, 30, 1000)] == [
        1, 1, 1, 2, 2, 3, 3, 100,
    ]  # fmt: skip
    assert [metrics.smoothing_window(e) for e in (1, 20, 100, 101, 160, 1000)] == [
        1, 1, 1, 2, 2, 10,
    ]  # fmt: skip


def test_run_metrics_linear_ramp() -> None:
    # 10 episodes, returns 1..10, random 0, optimal 10 -> normalised 0.1, 0.2, ..., 1.0.
    returns = np.arange(1.0, 11.0)[None, :]
    normalized = metrics.normalized_scores(returns, np.array([0.0]), np.array([10.0]))
    out = metrics.run_metrics(returns, normalized)
    # tail = ceil(10 / 10) = 1 episode; smoothing window = ceil(10 / 100) = 1 episode.
    assert out["auc"][0] == pytest.approx(0.55)  # (0.1 + ... + 1.0) / 10
    assert out["first"][0] == pytest.approx(0.1)
    assert out["final"][0] == pytest.approx(1.0)
    assert out["improvement"][0] == pytest.approx(0.9)
    assert out["episodes_to_50"][0] == 5  # 5 / 10 = 0.5 >= 0.5
    assert out["episodes_to_80"][0] == 8
    assert out["mean_return"][0] == pytest.approx(5.5)
    assert out["final_return"][0] == pytest.approx(10.0)
    assert set(out) == {
        "auc", "final", "first", "improvement", "episodes_to_50", "episodes_to_80",
        "mean_return", "final_return",
    }  # fmt: skip


def test_run_metrics_constant_curve() -> None:
    # 25 episodes of return 3 with random 1 and optimal 5 -> normalised 0.5 throughout.
    returns = np.full((2, 25), 3.0)
    normalized = metrics.normalized_scores(returns, np.array([1.0, 1.0]), np.array([5.0, 5.0]))
    out = metrics.run_metrics(returns, normalized)
    np.testing.assert_array_equal(out["auc"], [0.5, 0.5])
    np.testing.assert_array_equal(out["first"], [0.5, 0.5])  # first 3 episodes
    np.testing.assert_array_equal(out["final"], [0.5, 0.5])  # last 3 episodes
    np.testing.assert_array_equal(out["improvement"], [0.0, 0.0])
    np.testing.assert_array_equal(out["episodes_to_50"], [1.0, 1.0])
    assert np.isnan(out["episodes_to_80"]).all()  # never reached
    np.testing.assert_array_equal(out["mean_return"], [3.0, 3.0])


def test_run_metrics_step_curve_with_smoothing() -> None:
    # 200 episodes: normalised 0 for episodes 1..120, 1 for 121..200.
    # tail = 20 episodes; smoothing window = ceil(200 / 100) = 2 episodes.
    normalized = np.zeros((1, 200))
    normalized[0, 120:] = 1.0
    out = metrics.run_metrics(normalized * 7.0, normalized)
    assert out["auc"][0] == pytest.approx(0.4)  # 80 / 200
    assert out["first"][0] == 0.0
    assert out["final"][0] == 1.0
    assert out["improvement"][0] == 1.0
    # Smoothed at episode 121 = mean(ep 120, ep 121) = 0.5; at 122 = mean(1, 1) = 1.
    assert out["episodes_to_50"][0] == 121
    assert out["episodes_to_80"][0] == 122
    assert out["final_return"][0] == pytest.approx(7.0)


def test_episodes_to_reach_needs_a_full_window() -> None:
    # Window 2 (200 episodes): a curve at 1 from the start reaches 0.5 at episode 2, not 1.
    assert metrics.episodes_to_reach(np.ones((1, 200)), 0.5)[0] == 2
    # One good episode is not enough when the window is 2.
    spike = np.zeros((1, 200))
    spike[0, 50] = 1.0
    assert np.isnan(metrics.episodes_to_reach(spike, 0.8)[0])  # smoothed peak is 0.5
    assert metrics.episodes_to_reach(spike, 0.5)[0] == 51  # mean(ep 50, ep 51) = 0.5


def test_running_mean() -> None:
    x = np.array([[0.0, 1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(metrics.running_mean(x, 1), x)
    np.testing.assert_array_equal(metrics.running_mean(x, 2), [[0.5, 1.5, 2.5]])
    np.testing.assert_array_equal(metrics.running_mean(x, 4), [[1.5]])


def test_single_episode() -> None:
    out = metrics.run_metrics(np.array([[4.0]]), np.array([[0.25]]))
    assert out["first"][0] == out["final"][0] == out["auc"][0] == 0.25
    assert out["improvement"][0] == 0.0
    assert np.isnan(out["episodes_to_50"][0])


def test_cumulative_regret() -> None:
    returns = np.array([[0.5, 1.0, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(metrics.cumulative_regret(returns, np.array([1.0, 2.0])), [0.5, 6])
    per_episode = np.array([[1.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(metrics.cumulative_regret(returns, per_episode), [1.5, 1.0])


# ---------------------------------------------------------------------------------------
# Aggregates


def test_iqm_hand_computed() -> None:
    # n = 10 -> cut floor(10 / 4) = 2 from each end; sorted 0 0 1 1 2 3 4 7 50 100 -> 1 1 2 3 4 7.
    values = np.array([0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 100.0, 7.0, 1.0, 50.0])
    assert metrics.iqm(values) == 3.0
    assert metrics.iqm(values.reshape(2, 5)) == 3.0  # a [runs, tasks] matrix: all its values
    # n = 7 -> cut 1; sorted 1 2 3 5 7 9 100 -> 2 3 5 7 9 -> 26 / 5.
    assert metrics.iqm(np.array([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 100.0])) == pytest.approx(5.2)
    # n = 3 -> cut 0: the plain mean.
    assert metrics.iqm(np.array([1.0, 2.0, 6.0])) == 3.0
    assert metrics.mean(values.reshape(2, 5)) == pytest.approx(16.8)
    # Leading axes are batch axes.
    batch = np.stack([values.reshape(2, 5), np.full((2, 5), 4.0)])
    np.testing.assert_array_equal(metrics.iqm(batch), [3.0, 4.0])


def test_iqm_matches_scipy_trim_mean() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in range(1, 40):
        x = rng.normal(size=n)
        assert metrics.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25), rel=1e-12)


def test_bootstrap_is_seeded() -> None:
    matrix = np.random.default_rng(0).random((5, 16))
    a = metrics.stratified_bootstrap_ci(matrix, metrics.iqm, reps=2000, seed=7)
    b = metrics.stratified_bootstrap_ci(matrix, metrics.iqm, reps=2000, seed=7)
    c = metrics.stratified_bootstrap_ci(matrix, metrics.iqm, reps=2000, seed=8)
    assert a == b
    assert a != c


def test_bootstrap_contains_point_estimate_and_shrinks() -> None:
    rng = np.random.default_rng(1)
    widths = {}
    for runs in (5, 80):
        matrix = rng.beta(2.0, 3.0, size=(runs, 16))
        for statistic in (metrics.iqm, metrics.mean):
            low, high = metrics.stratified_bootstrap_ci(matrix, statistic, reps=2000, seed=0)
            assert low <= statistic(matrix) <= high
            widths[runs, statistic.__name__] = high - low
    for name in ("iqm", "mean"):
        # Width ~ 1 / sqrt(runs): 16x the runs -> about 4x narrower.
        assert widths[80, name] < widths[5, name] / 2.5


def test_bootstrap_is_stratified() -> None:
    # Constant within each task: every stratified resample is the matrix itself.
    matrix = np.array([[0.0, 1.0, 0.2]] * 4)
    assert metrics.stratified_bootstrap_ci(matrix, metrics.mean, reps=500) == pytest.approx(
        (0.4, 0.4)
    )
    # One run per task: nothing to resample.
    single = np.array([[0.3, 0.9]])
    assert metrics.stratified_bootstrap_ci(single, metrics.iqm) == pytest.approx((0.6, 0.6))


def test_bootstrap_is_fast() -> None:
    matrix = np.random.default_rng(0).random((5, 16))
    start = time.perf_counter()
    metrics.stratified_bootstrap_ci(matrix, metrics.iqm, reps=2000)
    assert time.perf_counter() - start < 0.5


def test_bootstrap_rejects_unvectorised_statistic() -> None:
    with pytest.raises(ValueError, match=r"\[reps, runs, tasks\] to \[reps\]"):
        metrics.stratified_bootstrap_ci(np.ones((3, 2)), lambda x: float(np.mean(x)), reps=10)


def test_task_matrix_and_aggregate() -> None:
    # Runs in any order; tasks "b" and "a" with 2 runs each -> columns a, b.
    per_run = np.array([10.0, 1.0, 20.0, 2.0])
    run_task = np.array(["b", "a", "b", "a"])
    np.testing.assert_array_equal(metrics.task_matrix(per_run, run_task), [[1, 10], [2, 20]])
    out = metrics.aggregate(per_run, run_task, reps=1000, seed=3)
    assert set(out) == {"mean", "mean_ci", "iqm", "iqm_ci"}
    assert out["mean"] == 8.25
    assert out["iqm"] == 6.0  # n = 4, cut 1: mean(2, 10)
    matrix = metrics.task_matrix(per_run, run_task)
    assert out["iqm_ci"] == list(metrics.stratified_bootstrap_ci(matrix, metrics.iqm, 1000, seed=3))
    assert out["mean_ci"] == list(
        metrics.stratified_bootstrap_ci(matrix, metrics.mean, 1000, seed=3)
    )
    assert out == metrics.aggregate(per_run, run_task, reps=1000, seed=3)


def test_aggregate_requires_equal_runs_per_task() -> None:
    with pytest.raises(AdbenchError, match="different numbers of runs"):
        metrics.aggregate(np.array([1.0, 2.0, 3.0]), np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="nan"):
        metrics.aggregate(np.array([1.0, np.nan]), np.array([0, 1]))


# ---------------------------------------------------------------------------------------
# Cross-check against rliable (Agarwal et al. 2021).


def test_matches_rliable() -> None:
    pytest.importorskip("rliable")
    try:
        from rliable import library as rly
        from rliable import metrics as rly_metrics
    except (ImportError, TypeError) as error:
        # rliable 1.2 pins arch<8, and arch 7 fails to import under pandas 3 (TypeError).
        pytest.skip(f"rliable is installed but unusable here: {type(error).__name__}: {error}")

    rng = np.random.default_rng(42)
    matrix = rng.beta(2.0, 2.0, size=(10, 8))  # [runs, tasks], scores in [0, 1]
    assert metrics.iqm(matrix) == pytest.approx(rly_metrics.aggregate_iqm(matrix), rel=1e-12)
    assert metrics.mean(matrix) == pytest.approx(rly_metrics.aggregate_mean(matrix), rel=1e-12)

    np.random.seed(0)  # rliable's StratifiedBootstrap draws from numpy's global RNG
    points, intervals = rly.get_interval_estimates(
        {"x": matrix},
        lambda x: np.array([rly_metrics.aggregate_iqm(x), rly_metrics.aggregate_mean(x)]),
        reps=5000,
    )
    ours = [
        metrics.stratified_bootstrap_ci(matrix, metrics.iqm, reps=5000, seed=0),
        metrics.stratified_bootstrap_ci(matrix, metrics.mean, reps=5000, seed=0),
    ]
    np.testing.assert_allclose(points["x"], [metrics.iqm(matrix), metrics.mean(matrix)])
    for column, (low, high) in enumerate(ours):
        assert math.isclose(low, intervals["x"][0, column], abs_tol=0.01)
        assert math.isclose(high, intervals["x"][1, column], abs_tol=0.01)
