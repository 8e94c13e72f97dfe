"""Dataset cards: the README.md of a dataset repo, a ``huggingface_hub.DatasetCard``: its
Hub metadata (license, tags, size category, the configs and their data files) is a
``DatasetCardData``, its text is rendered from the dataset_cards/ templates with everything a
user needs to trust and rebuild the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from huggingface_hub import DatasetCard, DatasetCardData
from numpy.typing import NDArray

from adbench.errors import AdbenchError
from adbench.fileio import atomic_path
from adbench.histories.specs import BuildConfig
from adbench.resources import data_dir

SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


def size_category(rows: int) -> str:
    for limit, label in SIZE_CATEGORIES:
        if rows < limit:
            return label
    return "1B<n<10B"


def _template_dir() -> Path:
    return data_dir("dataset_cards")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_template_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_card(metadata: dict[str, Any]) -> str:
    """The dataset's README.md from ``dataset_cards/<dataset>.md.j2``."""
    from adbench.histories.schema import hf_split_name

    env = _environment()
    name = metadata["dataset"]
    try:
        template = env.get_template(f"{name}.md.j2")
    except jinja2.TemplateNotFound as exc:
        raise AdbenchError(
            f"no dataset card template {_template_dir() / (name + '.md.j2')}"
        ) from exc
    counts = metadata["counts"]
    task_splits = [(hf_split_name(s), s) for s in counts["tasks_per_split"]]
    body = template.render(
        m=metadata,
        task_splits=task_splits,
        curve=metadata["source_learning_curve"],
    )
    configs: list[dict[str, Any]] = [
        {
            "config_name": "default",
            "default": True,
            "data_files": [{"split": "train", "path": "data/train-*.parquet"}],
        }
    ]
    if counts["expert_transitions"]:
        configs.append(
            {
                "config_name": "expert",
                "data_files": [{"split": "train", "path": "expert/train-*.parquet"}],
            }
        )
    configs.append(
        {
            "config_name": "tasks",
            "data_files": [
                {"split": hf_split, "path": f"tasks/{hf_split}.parquet"}
                for hf_split, _ in task_splits
            ],
        }
    )
    source = metadata["source"]["name"]
    card_data = DatasetCardData(
        license="cc-by-4.0",
        pretty_name=f"adbench {metadata['dataset']}: {source} learning histories",
        task_categories=["reinforcement-learning"],
        tags=[
            "in-context-reinforcement-learning",
            "algorithm-distillation",
            "adbench",
            metadata["env"]["name"],
        ],
        size_categories=[size_category(counts["transitions"])],
        configs=configs,
    )
    card = DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")
    return str(card)


def write_learning_curve(
    returns: NDArray[np.float32],
    optimal_return: float,
    random_return: float,
    config: BuildConfig,
    path: Path,
) -> None:
    """The source's learning curve: mean return per episode over all histories with the
    10-90% band, and the mean optimal and random returns of the histories' tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes = np.arange(returns.shape[1])
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.fill_between(
        episodes,
        np.percentile(returns, 10, axis=0),
        np.percentile(returns, 90, axis=0),
        alpha=0.25,
        label="10-90% of histories",
    )
    ax.plot(episodes, returns.mean(axis=0), label=f"{config.source} (mean of {len(returns)})")
    ax.axhline(optimal_return, color="k", ls="--", lw=1, label="optimal")
    ax.axhline(random_return, color="gray", ls=":", lw=1, label="random")
    if config.every > 1:
        ax.set_xlabel(f"episode of the learning history (every {config.every}th is kept)")
    else:
        ax.set_xlabel("episode of the learning history")
    ax.set_ylabel("return")
    ax.set_title(f"{config.name}: source learning curve")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
