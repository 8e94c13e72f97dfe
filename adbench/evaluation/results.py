"""Results files: a JSON record with a versioned schema, validated before it is written
(atomically), and a plot of the in-context learning curves beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from adbench.errors import AdbenchError
from adbench.fileio import atomic_write_json

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

RESULTS_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "adbench results, schema adbench-results/1",
    "type": "object",
    "required": [
        "schema",
        "adbench_version",
        "adbench_git_revision",
        "libraries",
        "date",
        "wall_seconds",
        "benchmark",
        "model",
        "settings",
        "score",
        "references",
        "splits",
        "runs",
    ],
    "properties": {
        "schema": {"const": "adbench-results/1"},
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
                "normalization",
                "dataset",
            ],
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
            "required": ["seed", "decoding", "batch_size", "num_processes", "device"],
            "properties": {"decoding": {"enum": ["sample", "greedy"]}},
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
        "splits": {"type": "object", "minProperties": 1},
        "runs": {
            "type": "object",
            "required": ["split", "task_index", "seed", "returns"],
            "properties": {
                "returns": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "number"}},
                }
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
        raise AdbenchError(
            f"results do not follow adbench-results/1 at {where}: {exc.message}"
        ) from exc


def read_results(path: Path) -> dict[str, Any]:
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AdbenchError(f"cannot read results file {path}: {exc}") from exc
    validate_results(results)
    return results


def write_results(results: dict[str, Any], path: Path) -> Path:
    """Validate, then write ``path`` atomically, and the learning-curve plot beside it."""
    validate_results(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, results)
    plot_learning_curves(results, path.with_suffix(".png"))
    return path


def plot_learning_curves(results: dict[str, Any], path: Path) -> None:
    """Mean return per in-context episode on each split, with a 95% confidence band over
    runs (normal approximation per episode), and the random, optimal and source references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    returns = np.asarray(results["runs"]["returns"], dtype=np.float64)
    split_of_run = np.asarray(results["runs"]["split"])
    episodes = np.arange(1, returns.shape[1] + 1)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for split in results["splits"]:
        curves = returns[split_of_run == split]
        mean = curves.mean(axis=0)
        half = 1.96 * curves.std(axis=0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else 0
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
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
