"""Results: a small, schema-checked JSON summary and, beside it, the per-run curves.

A results file ``<name>.json`` (schema ``adbench-results/2``) holds everything that
determines the score (benchmark and protocol, the model's revision and weights hash, the
code and library versions), the aggregate metrics and the mean curves. The curves of
every run sit beside it in ``<name>.runs.parquet``: one row per run (``split``,
``task_index``, ``seed``, ``returns`` as a fixed-size list), the returns stored exactly in
the smallest integer type that holds them (returns of these environments are integers),
else as float32 (the rollout's own type). The summary records the Parquet file's sha256,
so a leaderboard entry ties to exactly the curves it was computed from. A plot
``<name>.png`` is drawn beside them (not needed by anything, not committed).

Writes are atomic, curves first: a summary never names curves that are not there.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adbench.errors import AdbenchError
from adbench.fileio import atomic_path, atomic_write_bytes, atomic_write_text, sha256_file

SCHEMA = "adbench-results/2"
RUNS_SUFFIX = ".runs.parquet"

_CI = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
_AGGREGATE = {
    "type": "object",
    "required": ["mean", "mean_ci", "iqm", "iqm_ci"],
    "properties": {
        "mean": {"type": "number"},
        "iqm": {"type": "number"},
        "mean_ci": _CI,
        "iqm_ci": _CI,
    },
}
_CURVE = {"type": "array", "items": {"type": "number"}, "minItems": 1}

RESULTS_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": f"adbench results summary, schema {SCHEMA}",
    "type": "object",
    "required": [
        "schema",
        "adbench_version",
        "adbench_git_revision",
        "adbench_code",
        "libraries",
        "date",
        "wall_seconds",
        "benchmark",
        "protocol",
        "model",
        "settings",
        "score",
        "references",
        "splits",
        "runs_file",
    ],
    "properties": {
        "schema": {"const": SCHEMA},
        "adbench_version": {"type": "string"},
        "adbench_git_revision": {"type": "string"},
        "adbench_code": {
            "type": "object",
            "required": ["version", "install", "revision", "clean"],
            "properties": {
                "version": {"type": "string"},
                "install": {"enum": ["checkout", "package"]},
                "revision": {"type": ["string", "null"]},
                "clean": {"type": ["boolean", "null"]},
            },
        },
        "libraries": {"type": "object", "additionalProperties": {"type": "string"}},
        "date": {"type": "string"},
        "wall_seconds": {"type": "number", "minimum": 0},
        "benchmark": {
            "type": "object",
            "required": [
                "name",
                "version",
                "env",
                "env_id",
                "scored_splits",
                "episodes",
                "seeds",
                "seed",
                "decoding",
                "prompt_episodes",
                "normalization",
                "dataset",
                "runs_fingerprint",
            ],
        },
        "protocol": {
            "type": "object",
            "required": [
                "episodes",
                "seeds",
                "seed",
                "decoding",
                "prompt",
                "runs_fingerprint",
                "deviations",
                "standard",
            ],
            "properties": {
                "episodes": {"type": "integer", "minimum": 1},
                "seeds": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer"},
                "decoding": {"enum": ["sample", "greedy"]},
                "prompt": {"type": ["object", "null"]},
                "runs_fingerprint": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
                "deviations": {"type": "array", "items": {"type": "string"}},
                "standard": {"type": "boolean"},
            },
        },
        "model": {
            "type": "object",
            "required": ["id", "kind"],
            "properties": {
                "id": {"type": "string"},
                "kind": {"enum": ["model", "reference"]},
                "revision": {"type": ["string", "null"]},
                "weights_sha256": {"type": ["string", "null"]},
                "dataset_id": {"type": ["string", "null"]},
                "dataset_revision": {"type": ["string", "null"]},
            },
        },
        "settings": {
            "type": "object",
            "required": ["batch_size", "num_processes", "device"],
        },
        "score": {
            "type": "object",
            "required": ["iqm", "iqm_ci", "mean", "final_iqm", "improvement_iqm", "metrics"],
            "properties": {
                "iqm": {"type": "number"},
                "iqm_ci": _CI,
                "metrics": {
                    "type": "object",
                    "properties": {
                        "auc": _AGGREGATE,
                        "final": _AGGREGATE,
                        "improvement": _AGGREGATE,
                    },
                },
            },
        },
        "references": {"type": "object", "required": ["random_return", "optimal_return"]},
        "splits": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["scored", "num_runs", "metrics", "mean_return_per_episode"],
                "properties": {"mean_return_per_episode": _CURVE},
            },
        },
        "runs_file": {
            "type": "object",
            "required": ["name", "sha256", "num_runs", "episodes", "returns_type"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[^/\\]+\.runs\.parquet$"},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "num_runs": {"type": "integer", "minimum": 1},
                "episodes": {"type": "integer", "minimum": 1},
            },
        },
    },
}


def validate_results(results: dict[str, Any]) -> None:
    """Raise AdbenchError if ``results`` does not follow the results schema."""
    import jsonschema

    try:
        jsonschema.validate(results, RESULTS_JSON_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise AdbenchError(f"results do not follow {SCHEMA} at {where}: {exc.message}") from exc


def runs_path(summary_path: Path) -> Path:
    """The per-run curves file beside a results summary ``<name>.json``."""
    path = Path(summary_path)
    return path.with_name(path.name.removesuffix(".json") + RUNS_SUFFIX)


def read_results(path: Path) -> dict[str, Any]:
    """A results summary, schema-checked (the curves are read by :func:`read_runs`)."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdbenchError(f"cannot read results file {path}: {exc}") from exc
    if not isinstance(results, dict):
        raise AdbenchError(f"results file {path} is not a JSON object")
    validate_results(results)
    return results


def read_runs(summary_path: Path, summary: dict[str, Any] | None = None) -> dict[str, NDArray]:
    """The per-run curves beside a summary, after checking that they are the ones it
    names (sha256) and have its shape: ``split``, ``task_index``, ``seed`` and ``returns``
    (``[runs, episodes]`` float32)."""
    import pyarrow.parquet as pq

    summary = summary if summary is not None else read_results(summary_path)
    path = Path(summary_path).with_name(summary["runs_file"]["name"])
    if not path.is_file():
        raise AdbenchError(f"its per-run curves {path.name} are missing")
    expected = summary["runs_file"]
    if sha256_file(path) != expected["sha256"]:
        raise AdbenchError(
            f"its per-run curves {path.name} are not the ones it was computed from "
            "(sha256 differs): restore them from git, or evaluate again"
        )
    try:
        table = pq.read_table(path)
        returns = np.stack(table.column("returns").to_numpy(zero_copy_only=False))
        runs = {
            "split": np.asarray(table.column("split").to_pylist()),
            "task_index": table.column("task_index").to_numpy().astype(np.int64),
            "seed": table.column("seed").to_numpy().astype(np.int64),
            "returns": returns.astype(np.float32),
        }
    except Exception as exc:  # pyarrow raises many types on damaged files
        raise AdbenchError(f"its per-run curves {path.name} cannot be read: {exc}") from exc
    if runs["returns"].shape != (expected["num_runs"], expected["episodes"]):
        raise AdbenchError(
            f"its per-run curves {path.name} have shape {list(runs['returns'].shape)}, "
            f"not [{expected['num_runs']}, {expected['episodes']}]"
        )
    return runs


def _returns_type(returns: NDArray) -> Any:
    """The smallest type that stores ``returns`` exactly: an integer type when every
    return is an integer (as in every adbench environment), else float32."""
    import pyarrow as pa

    values = np.asarray(returns, dtype=np.float64)
    if values.size and np.array_equal(values, np.round(values)):
        low, high = values.min(), values.max()
        for numpy_type, arrow_type in (
            (np.int8, pa.int8()),
            (np.int16, pa.int16()),
            (np.int32, pa.int32()),
        ):
            info = np.iinfo(numpy_type)
            if info.min <= low and high <= info.max:
                return numpy_type, arrow_type
    return np.float32, pa.float32()


def runs_parquet_bytes(runs: dict[str, Any]) -> tuple[bytes, str]:
    """The Parquet bytes of the per-run curves, and the name of the returns' type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    returns = np.asarray(runs["returns"], dtype=np.float32)
    numpy_type, arrow_type = _returns_type(returns)
    stored = returns.astype(numpy_type)  # exact: see _returns_type
    episodes = stored.shape[1]
    flat = pa.array(stored.reshape(-1), type=arrow_type)
    table = pa.table(
        {
            "split": pa.array(np.asarray(runs["split"]).astype(str)).dictionary_encode(),
            "task_index": pa.array(np.asarray(runs["task_index"], dtype=np.int32)),
            "seed": pa.array(np.asarray(runs["seed"], dtype=np.int64)),
            "returns": pa.FixedSizeListArray.from_arrays(flat, episodes),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", compression_level=19)
    return buffer.getvalue(), str(arrow_type)


_NUMBER_LIST = re.compile(r"\[\s+(-?[\d.eE+-]+(?:,\s+-?[\d.eE+-]+)*)\s+\]")


def dumps_summary(summary: dict[str, Any]) -> str:
    """Indented JSON, with lists of numbers (curves, intervals) kept on one line."""
    text = json.dumps(summary, sort_keys=True, indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def write_results(results: dict[str, Any], path: Path, *, plot: bool = True) -> Path:
    """Write an evaluation's record as the summary ``path`` (``<name>.json``) and its runs
    ``<name>.runs.parquet`` beside it (both atomically, curves first), and a plot.
    ``results`` is what :func:`adbench.evaluation.evaluate.evaluate` returns (with
    ``runs``), or a summary with ``runs`` re-attached."""
    path = Path(path)
    if not path.name.endswith(".json"):
        raise AdbenchError(f"a results file name ends in .json, got {path.name}")
    runs = results["runs"]
    data, returns_type = runs_parquet_bytes(runs)
    curves_path = runs_path(path)
    returns = np.asarray(runs["returns"])
    summary = {key: value for key, value in results.items() if key != "runs"}
    summary["runs_file"] = {
        "name": curves_path.name,
        "sha256": _sha256_bytes(data),
        "num_runs": int(returns.shape[0]),
        "episodes": int(returns.shape[1]),
        "returns_type": returns_type,
    }
    validate_results(summary)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(curves_path, data)
    atomic_write_text(path, dumps_summary(summary))
    if plot:
        plot_learning_curves(summary, returns, np.asarray(runs["split"]), path.with_suffix(".png"))
    return path


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def upgrade_v1(old: dict[str, Any]) -> dict[str, Any]:
    """A results record of schema ``adbench-results/1`` (one JSON file with every run's
    curve) as this schema's record with ``runs`` attached, for :func:`write_results`.
    Nothing is recomputed: the score stays the one recorded (``verify`` rechecks it)."""
    from adbench.evaluation.benchmarks import get_benchmark, runs_from_records

    if old.get("schema") != "adbench-results/1":
        raise AdbenchError(f"not an adbench-results/1 record: schema {old.get('schema')!r}")
    benchmark = get_benchmark(old["benchmark"]["name"])
    settings = dict(old["settings"])
    runs = runs_from_records(
        benchmark, old["runs"]["split"], old["runs"]["task_index"], old["runs"]["seed"]
    )
    prompt = settings.pop("prompt", None)
    protocol = {
        "episodes": old["benchmark"]["episodes"],
        "seeds": old["benchmark"]["seeds"],
        "seed": settings.pop("seed"),
        "decoding": settings.pop("decoding"),
        "prompt": prompt,
        "runs_fingerprint": runs.fingerprint(),
    }
    deviations = benchmark.deviations(
        episodes=protocol["episodes"],
        seeds=protocol["seeds"],
        seed=protocol["seed"],
        decoding=protocol["decoding"],
        prompt_episodes=(prompt or {}).get("episodes", 0),
    )
    if old["benchmark"]["version"] != benchmark.version:
        deviations.append(f"benchmark version {old['benchmark']['version']}")
    code = old.get("adbench_code") or {
        "version": old["adbench_version"],
        "install": "checkout",
        "revision": old["adbench_git_revision"].removesuffix("-dirty"),
        "clean": not old["adbench_git_revision"].endswith("-dirty"),
    }
    new = {key: value for key, value in old.items() if key not in ("runs", "settings")}
    new.update(
        schema=SCHEMA,
        adbench_code=code,
        benchmark={**benchmark.to_dict(), "version": old["benchmark"]["version"]},
        protocol={**protocol, "deviations": deviations, "standard": not deviations},
        settings=settings,
        runs={
            "split": runs.split,
            "task_index": runs.task_index,
            "seed": runs.seeds,
            "returns": np.asarray(old["runs"]["returns"], dtype=np.float32),
        },
    )
    return new


def curve_band(curves: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean return per episode over runs and the half-width of its 95% confidence band
    (normal approximation per episode; 0 for a single run)."""
    curves = np.asarray(curves, dtype=np.float64)
    mean = curves.mean(axis=0)
    if len(curves) < 2:
        return mean, np.zeros_like(mean)
    return mean, 1.96 * curves.std(axis=0, ddof=1) / np.sqrt(len(curves))


def plot_learning_curves(
    results: dict[str, Any], returns: NDArray, split_of_run: NDArray, path: Path
) -> None:
    """Mean return per in-context episode on each split, with a 95% confidence band over
    runs (normal approximation per episode), and the random, optimal and source references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    returns = np.asarray(returns, dtype=np.float64)
    episodes = np.arange(1, returns.shape[1] + 1)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for split in results["splits"]:
        curves = returns[split_of_run == split]
        mean, half = curve_band(curves)
        ax.plot(episodes, mean, label=f"{results['model']['id']} ({split}, {len(curves)} runs)")
        ax.fill_between(episodes, mean - half, mean + half, alpha=0.25)
    refs = results["references"]
    ax.axhline(refs["optimal_return"], color="k", ls="--", lw=1, label="optimal")
    ax.axhline(refs["random_return"], color="gray", ls=":", lw=1, label="random")
    source_curve = refs.get("source_mean_return_per_episode")
    if source_curve and results["model"]["id"] != "source":
        ax.plot(
            episodes,
            source_curve,
            color="tab:red",
            lw=1,
            alpha=0.8,
            label=f"source ({refs['source']}) from scratch",
        )
    if returns.shape[1] > 50:
        ax.set_xscale("log")
    bench = results["benchmark"]
    ax.set_xlabel("in-context episode")
    ax.set_ylabel("return")
    score = results["score"]
    ax.set_title(
        f"{bench['name']} v{bench['version']}: score IQM {score['iqm']:.3f} "
        f"[{score['iqm_ci'][0]:.3f}, {score['iqm_ci'][1]:.3f}]",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
