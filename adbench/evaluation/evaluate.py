"""``adbench evaluate``: score a model (or a reference policy) on a benchmark.

Runs = every evaluated task of every split x every evaluation seed, all in one batch;
under ``accelerate launch`` the runs are sharded across processes and gathered (results
are identical to one process: each run's randomness is its own).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adbench.distributed import Processes
from adbench.errors import AdbenchError
from adbench.evaluation import metrics
from adbench.evaluation.benchmarks import Benchmark, Runs, benchmark_runs
from adbench.evaluation.policies import (
    ModelPolicy,
    OraclePolicy,
    Policy,
    RandomPolicy,
    check_model_contract,
    check_model_fits,
)
from adbench.evaluation.results import SCHEMA as RESULTS_SCHEMA
from adbench.evaluation.rollout import Prompt, rollout, source_returns
from adbench.provenance import provenance

BOOTSTRAP_REPS = 2000


def task_mean(values: NDArray[np.float32], task_key: NDArray[np.int64]) -> NDArray[np.float64]:
    """Each run's row replaced by the mean of the rows of its task."""
    keys, inverse = np.unique(task_key, return_inverse=True)
    sums = np.zeros((len(keys), values.shape[1]))
    np.add.at(sums, inverse, values)
    return (sums / np.bincount(inverse)[:, None])[inverse]


def _shard(runs: Runs) -> tuple[Runs, NDArray[np.int64], Processes]:
    """This process's share of the runs under ``accelerate launch`` (all of them otherwise)."""
    processes = Processes.current()
    rows = np.arange(len(runs))[processes.index :: processes.count]
    return runs.select(rows), rows, processes


def _gather(
    returns: NDArray[np.float32], rows: NDArray[np.int64], total: int, processes: Processes
) -> NDArray[np.float32]:
    if processes.count == 1:
        return returns
    full = np.zeros((total, returns.shape[1]), dtype=np.float32)
    for piece_rows, piece in processes.gather((rows, returns)):
        full[piece_rows] = piece
    return full


def _summaries(
    returns: NDArray[np.float32], normalized: NDArray[np.float64], runs: Runs, reps: int, seed: int
) -> dict[str, Any]:
    per_run = metrics.run_metrics(returns, normalized)
    out: dict[str, Any] = {}
    for name, values in per_run.items():
        finite = np.isfinite(values)
        if not finite.all():
            out[name] = {
                "mean": float(np.nanmean(values)) if finite.any() else None,
                "reached": float(finite.mean()),
            }
            continue
        out[name] = metrics.aggregate(values, runs.task_key, reps=reps, seed=seed)
    return out


def normalizing_source_curve(
    benchmark: Benchmark, runs: Runs, episodes: int
) -> NDArray[np.float32] | None:
    """The source learning from scratch on every run's task and seed, when ``benchmark``
    normalises by it (the ``source_curve`` that :func:`normalized_returns` and
    :func:`score_returns` then need); None for a benchmark normalised by the optimum."""
    if benchmark.normalization != "source":
        return None
    return source_returns(benchmark.source, benchmark.family, runs.tasks, runs.seeds, episodes)


def normalized_returns(
    benchmark: Benchmark,
    runs: Runs,
    returns: NDArray[np.float32],
    source_curve: NDArray[np.float32] | None = None,
) -> NDArray[np.float64]:
    """Every run's normalised curve ``[runs, episodes]`` under ``benchmark``'s scoring:
    ``(R - random) / (reference - random)`` per run's task, the reference being the optimal
    return, or for a benchmark that normalises by the source, the source's mean curve on
    the task (``source_curve``: the source learning from scratch on every run's task and
    seed, needed then)."""
    family = benchmark.family
    random_return = family.random_return(runs.tasks)
    if benchmark.normalization == "source":
        if source_curve is None:
            raise ValueError(f"{benchmark.label()} normalises by the source: pass its curve")
        # The source's expected curve on each task: its return per episode averaged over the
        # task's seeds (a single run's return makes a noisy denominator). The source itself
        # then scores exactly 1 on average on every task, by construction.
        reference = task_mean(source_curve, runs.task_key)
    else:
        reference = family.optimal_return(runs.tasks)[:, None]
    return metrics.normalized_scores(returns, random_return[:, None], reference, degenerate="zero")


def score_returns(
    benchmark: Benchmark,
    runs: Runs,
    returns: NDArray[np.float32],
    *,
    seed: int,
    source_curve: NDArray[np.float32] | None = None,
) -> dict[str, Any]:
    """The ``score``, ``references`` and ``splits`` of a results record from the per-run
    curves: what a results file's curves must give again (``adbench leaderboard verify``).

    ``source_curve`` (the source learning from scratch on every run's task and seed) is
    needed when the benchmark normalises by the source, and reported when given.
    """
    family = benchmark.family
    random_return = family.random_return(runs.tasks)
    optimal_return = family.optimal_return(runs.tasks)
    normalized = normalized_returns(benchmark, runs, returns, source_curve)
    splits: dict[str, Any] = {}
    for split in benchmark.splits:
        mask = runs.split == split
        sub = runs.select(np.flatnonzero(mask))
        splits[split] = {
            "scored": split in benchmark.scored_splits,
            "num_runs": int(mask.sum()),
            "metrics": _summaries(returns[mask], normalized[mask], sub, BOOTSTRAP_REPS, seed),
            "mean_return_per_episode": np.round(returns[mask].mean(axis=0), 4).tolist(),
            "mean_normalized_per_episode": np.round(normalized[mask].mean(axis=0), 4).tolist(),
        }
        if family.name == "bandit":
            regret = metrics.cumulative_regret(returns[mask], optimal_return[mask])
            splits[split]["cumulative_regret"] = metrics.aggregate(
                regret, sub.task_key, reps=BOOTSTRAP_REPS, seed=seed
            )
    scored = np.isin(runs.split, benchmark.scored_splits)
    scored_runs = runs.select(np.flatnonzero(scored))
    score = _summaries(returns[scored], normalized[scored], scored_runs, BOOTSTRAP_REPS, seed)
    return {
        "score": {
            "iqm": score["auc"]["iqm"],
            "iqm_ci": score["auc"]["iqm_ci"],
            "mean": score["auc"]["mean"],
            "final_iqm": score["final"]["iqm"],
            "improvement_iqm": score["improvement"]["iqm"],
            "improvement_ci": score["improvement"]["iqm_ci"],
            "metrics": score,
        },
        "references": {
            "random_return": round(float(random_return[scored].mean()), 4),
            "optimal_return": round(float(optimal_return[scored].mean()), 4),
            "source": benchmark.source,
            "source_mean_return_per_episode": None
            if source_curve is None
            else np.round(source_curve[scored].mean(axis=0), 4).tolist(),
        },
        "splits": splits,
    }


def evaluate(
    benchmark: Benchmark,
    model_id: str,
    *,
    model: Any | None = None,
    model_info: dict[str, Any] | None = None,
    episodes: int | None = None,
    seeds: int | None = None,
    seed: int = 0,
    greedy: bool = False,
    prompt: Prompt | None = None,
    check_splits: Sequence[str] = (),
    on_start: Callable[[int], None] | None = None,
    on_episode: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Score ``model`` (loaded, implementing the policy protocol) or the reference policy
    ``model_id`` in ``REFERENCE_POLICIES`` on ``benchmark``; returns the results record.
    ``check_splits``: more of the family's splits to play and report, not scored (a
    non-standard run; see :meth:`Benchmark.with_check_splits`)."""
    # The code that runs is the code at the start: a commit made while a long evaluation
    # runs must not be recorded as the one that scored it.
    prov = provenance()
    started = time.perf_counter()
    family = benchmark.family
    episodes = benchmark.episodes if episodes is None else episodes
    seeds = benchmark.seeds if seeds is None else seeds
    if episodes < 1 or seeds < 1:
        raise AdbenchError("--episodes and --seeds must be at least 1")
    decoding = "greedy" if greedy else "sample"
    deviations = benchmark.deviations(
        episodes=episodes,
        seeds=seeds,
        seed=seed,
        decoding=decoding,
        prompt_episodes=prompt.episodes if prompt else 0,
        check_splits=check_splits,
    )
    if prompt is not None:
        deviations.append(f"--prompt-epsilon {prompt.epsilon}")
    if check_splits:
        benchmark = benchmark.with_check_splits(check_splits)
    runs = benchmark_runs(benchmark, seeds, seed)

    policy: Policy | None
    if model is not None:
        check_model_fits(model, family, model_id)
        check_model_contract(model, family, model_id)
        policy = ModelPolicy(model, model_id)
    elif model_id == "random":
        policy = RandomPolicy()
    elif model_id == "optimal":
        policy = OraclePolicy()
    elif model_id == "source":
        policy = None
    else:
        raise AdbenchError(f"no model given for {model_id!r}")

    shard, rows, processes = _shard(runs)
    if on_start:
        on_start(episodes * (1 if policy is not None else 0))
    if policy is not None:
        returns = rollout(
            policy,
            family,
            shard.tasks,
            shard.seeds,
            episodes,
            greedy=greedy,
            prompt=prompt,
            on_episode=on_episode if processes.is_main else None,
        )
        returns = _gather(returns, rows, len(runs), processes)
    source_curve = None
    if benchmark.normalization == "source" or policy is None:
        # The source learning from scratch on the same tasks with the same seeds: its own
        # curve is the bandit's normaliser.
        source_curve = source_returns(benchmark.source, family, runs.tasks, runs.seeds, episodes)
    if policy is None:
        returns = source_curve
    scored = score_returns(benchmark, runs, returns, seed=seed, source_curve=source_curve)
    return {
        "schema": RESULTS_SCHEMA,
        "adbench_version": prov["adbench_version"],
        "adbench_git_revision": prov["adbench_git_revision"],
        "adbench_code": prov["adbench_code"],
        "libraries": prov["libraries"],
        "platform": prov["platform"],
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "benchmark": benchmark.to_dict(),
        "protocol": {
            "episodes": episodes,
            "seeds": seeds,
            "seed": seed,
            "decoding": decoding,
            "prompt": prompt.to_dict() if prompt else None,
            "runs_fingerprint": runs.fingerprint(),
            "deviations": deviations,
            "standard": not deviations,
        },
        "model": {
            "id": model_id,
            "kind": "reference" if model is None else "model",
            **(model_info or {}),
        },
        "settings": {
            "batch_size": len(shard),
            "num_processes": processes.count,
            "device": str(getattr(policy, "device", "cpu")),
        },
        **scored,
        # The per-run curves: kept apart from the summary (results.write_results stores
        # them in a Parquet file beside it).
        "runs": {
            "split": runs.split,
            "task_index": runs.task_index,
            "seed": runs.seeds,
            "returns": returns,
        },
    }


def default_output(results: dict[str, Any], root: Path) -> Path:
    """``<root>/<benchmark>/<model>-<date>-<run id>.json``: the run id (random, not part of
    the results) keeps concurrent runs of one model in one second from overwriting each
    other's files."""
    name = results["model"]["id"].replace("/", "__")
    stamp = results["date"].replace(":", "").replace("-", "")
    return root / results["benchmark"]["name"] / f"{name}-{stamp}-{uuid.uuid4().hex[:8]}.json"
