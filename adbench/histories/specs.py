"""The datasets adbench builds: one per environment family, with defaults sized for a
2-core CPU (a build of at most about 15 minutes whose histories run from random to near
optimal) and paper-scale sizes a few options away.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic.dataclasses import dataclass as args_dataclass

from adbench.errors import AdbenchError
from adbench.validation import ARGS_CONFIG, NonNegative, Positive, Seed, build_args

DEFAULT_ORG = "ad-bench"


@args_dataclass(frozen=True, config=ARGS_CONFIG)
class BuildConfig:
    """Every knob that determines a history dataset's bytes (recorded in its metadata);
    types and ranges are checked when an instance is made."""

    name: str  # dataset name, e.g. "darkroom"
    env: str  # environment family name
    source: str  # source algorithm name
    tasks: Positive  # number of train tasks (a fixed, seeded subset of the train split)
    learners: Positive  # independent learners per task
    episodes: Positive  # learning episodes per learner
    every: Positive  # keep every k-th learning episode (episode % every == 0)
    expert_episodes: NonNegative  # post-learning episodes per learner (the `expert` config)
    seed: Seed
    histories_per_shard: Positive  # learners run together and written to one shard
    source_hyperparameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def num_histories(self) -> int:
        return self.tasks * self.learners

    @property
    def num_shards(self) -> int:
        return -(-self.num_histories // self.histories_per_shard)

    @property
    def kept_episodes(self) -> int:
        return -(-self.episodes // self.every)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    env: str
    description: str
    defaults: BuildConfig
    paper_scale: dict[str, Any]  # the options that give the paper's data size
    sources: tuple[str, ...]


def _spec(
    name: str,
    env: str,
    description: str,
    sources: tuple[str, ...],
    paper_scale: dict[str, Any],
    **defaults: Any,
) -> DatasetSpec:
    config = BuildConfig(name=name, env=env, **defaults)
    return DatasetSpec(name, env, description, config, paper_scale, sources)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "bandit",
            "bandit",
            "UCB learning histories on the Adversarial Bandit (best arm odd)",
            ("ucb", "thompson"),
            {"tasks": 1000, "learners": 1, "episodes": 100},
            source="ucb",
            tasks=1000,
            learners=1,
            episodes=20,
            every=1,
            expert_episodes=2,
            seed=0,
            histories_per_shard=1000,
        ),
        _spec(
            "darkroom",
            "darkroom",
            "Learning histories on Dark Room (9x9, dense reward)",
            ("q-learning", "a2c"),
            {"learners": 31, "episodes": 2000, "every": 1, "source": "a2c"},
            source="q-learning",
            tasks=65,
            learners=20,
            episodes=1000,
            every=25,
            expert_episodes=4,
            seed=0,
            histories_per_shard=650,
        ),
        _spec(
            "darkroom-hard",
            "darkroom-hard",
            "Learning histories on Dark Room Hard (17x17, sparse)",
            ("q-learning", "a2c"),
            {"learners": 9, "episodes": 2000, "every": 1, "source": "a2c"},
            source="q-learning",
            tasks=231,
            learners=4,
            episodes=2000,
            # 40 kept episodes: a 160-step (8-episode) window spans a fifth of the learning
            # curve. Every 25th (80 kept) gave AD a score of 0.11 instead of 0.55.
            every=50,
            expert_episodes=4,
            seed=0,
            histories_per_shard=924,
        ),
        _spec(
            "key-to-door",
            "key-to-door",
            "Learning histories on Dark Key-to-Door (9x9, key then door)",
            ("q-learning", "a2c"),
            {"tasks": 1800, "learners": 1, "episodes": 2000, "every": 10, "source": "a2c"},
            source="q-learning",
            tasks=600,
            learners=1,
            episodes=2000,
            # 40 kept episodes: the 200-step (4-episode) window spans a tenth of the
            # learning curve, which the source climbs in its first ~20 kept episodes.
            every=50,
            expert_episodes=4,
            seed=0,
            histories_per_shard=600,
        ),
        _spec(
            "watermaze",
            "watermaze",
            "Pixel DQN histories on the Watermaze (72x96 RGB frames)",
            ("dqn", "pose-q-learning"),
            # The paper's source: a pixel DQN, 1000 platforms x 4 learners, every episode.
            {"tasks": 1000, "learners": 4, "episodes": 1000, "every": 1, "source": "dqn"},
            # The paper's source, a DQN learning from (pooled) pixels. Its Q-network is smooth
            # over poses, so its greedy policy is a consistent walk to the platform that a
            # model can imitate; pose Q-learning (cheaper: 9 min against 32 on 2 processes)
            # records a per-cell jumble of actions (entropy 2.05 of 2.08 before the platform
            # in its last episodes) from which AD learned nothing (docs/results.md).
            source="dqn",
            # 400 platforms: the paper's key-to-door ablation needs hundreds of tasks for AD
            # to generalise to held-out ones (37 give 0.71 of 2, 606 give 1.64).
            tasks=400,
            learners=1,
            episodes=400,
            # 16 kept episodes: the 100-step (2-episode) window spans 25 source episodes, about
            # a tenth of the DQN's climb from random (0.19) to ~1.0 by episode ~250.
            every=25,
            expert_episodes=2,
            seed=0,
            # 25 histories a shard bounds a build's memory: a frame is 20 KB and writing
            # nested lists to Parquet costs several times the data.
            histories_per_shard=25,
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise AdbenchError(f"unknown dataset {name!r}: valid datasets are {', '.join(DATASETS)}")
    return DATASETS[name]


def resolve_config(name: str, **overrides: Any) -> BuildConfig:
    """The default config of dataset ``name`` with the given options (None = default)."""
    spec = get_spec(name)
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(spec.defaults.to_dict())
    if unknown:
        raise AdbenchError(f"unknown build option(s) {sorted(unknown)} for dataset {name!r}")
    if "source" in changes and changes["source"] != spec.defaults.source:
        if changes["source"] not in spec.sources:
            raise AdbenchError(
                f"source {changes['source']!r} does not run on {spec.env}: valid sources are "
                f"{', '.join(spec.sources)}"
            )
        changes.setdefault("source_hyperparameters", {})
    return build_args(
        BuildConfig, [(f"the {name} defaults", spec.defaults.to_dict()), ("the options", changes)]
    )
