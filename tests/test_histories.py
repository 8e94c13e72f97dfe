"""History datasets: build -> load round trip, cards, resumable builds, the reader, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import adbench
from adbench.envs import get_family
from adbench.errors import AdbenchError
from adbench.fileio import sha256_file
from adbench.histories.builder import build_dataset
from adbench.histories.loading import read_metadata
from adbench.histories.reader import NO_ACTION, HistoryArrays, WindowSampler
from adbench.sources import get_source

SMALL = dict(tasks=6, learners=2, episodes=9, every=2, expert_episodes=1, histories_per_shard=5)


@pytest.fixture(scope="module")
def bandit_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    hub = tmp_path_factory.mktemp("hub")
    return hub, build_dataset("bandit", hub=hub, seed=3, **SMALL)


def test_build_then_load_round_trips_every_value(bandit_repo: tuple[Path, Path]) -> None:
    hub, repo = bandit_repo
    family = get_family("bandit")
    meta = read_metadata(repo)
    tasks = family.split("train-odd")[meta["train_task_ids"]]
    # Replay the source exactly as the builder ran it: shard by shard, same seeds.
    from adbench.histories.builder import shard_seed

    expected = []
    for shard in range(3):  # 12 histories, 5 per shard
        histories = np.arange(shard * 5, min(shard * 5 + 5, 12))
        for batch in get_source("ucb").learn(
            family, tasks[histories // 2], 9, seed=shard_seed(3, shard)
        ):
            if batch.episode % 2 == 0:
                expected.append((histories, batch))
    ds = adbench.load_dataset("ad-bench/bandit", split="train", hub=hub)
    assert ds.num_rows == 12 * 5 * 100
    arrays = HistoryArrays.from_dataset(ds)
    assert arrays.num_histories == 12
    for histories, batch in expected:
        for row, history in enumerate(histories):
            steps = arrays.history(int(history))
            sel = steps["episode"] == batch.episode
            np.testing.assert_array_equal(steps["actions"][sel], batch.actions[row])
            np.testing.assert_array_equal(steps["rewards"][sel], batch.rewards[row])
            np.testing.assert_array_equal(steps["observations"][sel], batch.observations[row])
    np.testing.assert_array_equal(np.unique(arrays.episode), [0, 2, 4, 6, 8])
    row = ds[0]
    assert row["truncated"] is False and row["terminated"] is False and row["step"] == 0
    assert ds[99]["truncated"] is True
    # task ids point at the tasks config
    task_rows = adbench.load_dataset("ad-bench/bandit", name="tasks", split="train_odd", hub=hub)
    for history in range(12):
        task_id = int(arrays.task_id[arrays.offsets[history]])
        np.testing.assert_allclose(task_rows[task_id]["params"], tasks[history // 2])
    # the datasets library reads the repo directory to the same rows
    direct = datasets.load_dataset(str(repo), split="train")
    assert direct["action"] == ds["action"]


def test_expert_config_holds_post_learning_episodes(bandit_repo: tuple[Path, Path]) -> None:
    hub, _ = bandit_repo
    expert = adbench.load_dataset("ad-bench/bandit", name="expert", split="train", hub=hub)
    assert expert.num_rows == 12 * 1 * 100
    assert set(expert["episode"]) == {9}


def test_card_counts_and_checksums_match_the_files(bandit_repo: tuple[Path, Path]) -> None:
    _, repo = bandit_repo
    meta = read_metadata(repo)
    card = (repo / "README.md").read_text()
    assert card.startswith("---\nlicense:")
    assert "reinforcement-learning" in card and "config_name: expert" in card
    files = sorted(
        str(p.relative_to(repo))
        for p in repo.rglob("*")
        if p.is_file() and p.name not in ("README.md", "adbench.json")
    )
    assert sorted(meta["checksums"]) == files
    for name, digest in meta["checksums"].items():
        assert sha256_file(repo / name) == digest
        assert f"`{name}` | `{digest}`" in card
    rows = sum(pq.read_metadata(p).num_rows for p in (repo / "data").glob("*.parquet"))
    assert rows == meta["counts"]["transitions"] == 6000
    assert f"{meta['counts']['transitions']:,} steps" in card
    assert meta["build_command"] in card
    assert "--tasks 6 --learners 2 --episodes 9 --every 2" in meta["build_command"]
    assert meta["counts"]["histories"] == 12 and meta["counts"]["kept_episodes_per_history"] == 5
    # Which version of the source's histories these are (bumped when a seed's histories change).
    assert meta["source"]["version"] == get_source(meta["source"]["name"]).version
    assert f"(version {meta['source']['version']} of its histories" in card
    assert (repo / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_card_is_a_huggingface_hub_dataset_card(bandit_repo: tuple[Path, Path]) -> None:
    from huggingface_hub import DatasetCard

    _, repo = bandit_repo
    card = DatasetCard.load(repo / "README.md")
    assert card.data.license == "cc-by-4.0"
    assert card.data.size_categories == ["1K<n<10K"]
    assert [c["config_name"] for c in card.data.configs] == ["default", "expert", "tasks"]
    splits = [f["split"] for f in card.data.configs[2]["data_files"]]
    assert splits == ["train_odd", "test_odd", "test_even", "test_uniform"]
    assert "adbench" in card.data.tags and card.text.startswith("\n# adbench `ad-bench/bandit`")


def test_interrupted_build_resumes_to_identical_files(tmp_path: Path) -> None:
    options = dict(
        tasks=6, learners=2, episodes=6, every=1, expert_episodes=1, histories_per_shard=4, seed=1
    )
    clean = build_dataset("darkroom", hub=tmp_path / "clean", **options)
    with pytest.raises(AdbenchError, match="stopped after 1 shard"):
        build_dataset("darkroom", hub=tmp_path / "resumed", stop_after_shards=1, **options)
    staging = tmp_path / "resumed" / "datasets" / "ad-bench" / ".darkroom.partial"
    assert staging.exists()
    assert not (tmp_path / "resumed" / "datasets" / "ad-bench" / "darkroom").exists()
    with pytest.raises(AdbenchError, match="with other options"):
        build_dataset("darkroom", hub=tmp_path / "resumed", **{**options, "seed": 2})
    resumed = build_dataset("darkroom", hub=tmp_path / "resumed", **options)
    assert not staging.exists()
    clean_files = sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file())
    assert clean_files == sorted(p.relative_to(resumed) for p in resumed.rglob("*") if p.is_file())
    for name in clean_files:
        if name.name == "adbench.json":
            a, b = json.loads((clean / name).read_text()), json.loads((resumed / name).read_text())
            assert a.pop("build")["resumed_shards"] == 0
            assert b.pop("build")["resumed_shards"] == 1
            assert a == b
        else:
            assert (clean / name).read_bytes() == (resumed / name).read_bytes(), name


def test_window_sampler_returns_exactly_the_stored_steps(bandit_repo: tuple[Path, Path]) -> None:
    hub, _ = bandit_repo
    ds = adbench.load_dataset("ad-bench/bandit", split="train", hub=hub)
    arrays = HistoryArrays.from_dataset(ds)
    sampler = WindowSampler(arrays, context_steps=150, batch_size=16, seed=0)
    batch = sampler.sample()
    for b in range(16):
        rows = batch.rows[b]
        assert np.all(np.diff(rows) == 1)
        history = ds["history_id"][int(rows[0])]
        assert ds["history_id"][int(rows[-1])] == history  # one history per window
        for col, key in (
            ("action", "actions"),
            ("reward", "rewards"),
            ("observation", "observations"),
        ):
            np.testing.assert_array_equal(
                getattr(batch, key)[b], ds[int(rows[0]) : int(rows[-1]) + 1][col]
            )
        first = int(rows[0])
        if first > 0 and ds["history_id"][first - 1] == history:
            assert batch.prev_actions[b, 0] == ds["action"][first - 1]
        else:
            assert batch.prev_actions[b, 0] == NO_ACTION
        np.testing.assert_array_equal(batch.prev_actions[b, 1:], batch.actions[b, :-1])
    again = WindowSampler(arrays, context_steps=150, batch_size=16, seed=0).sample()
    np.testing.assert_array_equal(again.rows, batch.rows)
    # every valid start is reachable, no window crosses a history boundary
    assert sampler.num_windows == 12 * (500 - 150 + 1)
    rows = sampler.window_rows(np.arange(sampler.num_windows))
    assert np.all(arrays.history_id[rows[:, 0]] == arrays.history_id[rows[:, -1]])
    assert len(np.unique(rows[:, 0])) == sampler.num_windows


def test_context_longer_than_any_history_is_an_error(bandit_repo: tuple[Path, Path]) -> None:
    hub, _ = bandit_repo
    arrays = HistoryArrays.from_repo("ad-bench/bandit", hub=hub)
    with pytest.raises(AdbenchError, match="no history has 501 steps"):
        WindowSampler(arrays, context_steps=501, batch_size=4)


# --- bad input -----------------------------------------------------------------------


def test_unknown_dataset_and_options(tmp_path: Path) -> None:
    with pytest.raises(AdbenchError, match="valid datasets are bandit, darkroom"):
        build_dataset("darkroom-easy", hub=tmp_path)
    with pytest.raises(AdbenchError, match="valid sources are q-learning, a2c"):
        build_dataset("darkroom", hub=tmp_path, source="ucb")
    with pytest.raises(AdbenchError, match="at most 65"):
        build_dataset("darkroom", hub=tmp_path, tasks=66)
    with pytest.raises(AdbenchError, match=r"every=0 .*greater than or equal to 1"):
        build_dataset("darkroom", hub=tmp_path, every=0)
    with pytest.raises(AdbenchError, match=r"unknown key.*'lr'"):
        build_dataset("bandit", hub=tmp_path, source_hyperparameters={"lr": 1})
    assert not (tmp_path / "datasets").exists() or not any(
        (tmp_path / "datasets").rglob("*.parquet")
    )


def _copy_repo(bandit_repo: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    _, repo = bandit_repo
    new_hub = tmp_path / "hub"
    target = new_hub / "datasets" / "ad-bench" / "bandit"
    shutil.copytree(repo, target)
    return new_hub, target


def test_missing_file_is_an_error(bandit_repo: tuple[Path, Path], tmp_path: Path) -> None:
    hub, repo = _copy_repo(bandit_repo, tmp_path)
    (repo / "data" / "train-00001-of-00003.parquet").unlink()
    with pytest.raises(AdbenchError, match=r"train-00001-of-00003\.parquet is missing"):
        adbench.load_dataset("ad-bench/bandit", hub=hub)


def test_corrupted_shard_is_a_checksum_error(
    bandit_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    hub, repo = _copy_repo(bandit_repo, tmp_path)
    shard = repo / "data" / "train-00000-of-00003.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(AdbenchError, match=r"checksum mismatch .*train-00000-of-00003\.parquet"):
        adbench.load_dataset("ad-bench/bandit", hub=hub)


def test_schema_mismatched_shard_is_an_error(
    bandit_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    hub, repo = _copy_repo(bandit_repo, tmp_path)
    shard = repo / "data" / "train-00002-of-00003.parquet"
    pq.write_table(
        pa.table({"history_id": pa.array([0], pa.int32()), "oops": pa.array([1.0])}), shard
    )
    # with verification the checksum catches it; without, the schema check must
    with pytest.raises(AdbenchError, match="checksum mismatch"):
        adbench.load_dataset("ad-bench/bandit", hub=hub)
    with pytest.raises(AdbenchError, match="could not load ad-bench/bandit"):
        adbench.load_dataset("ad-bench/bandit", split="train", hub=hub, verify=False)


def test_unknown_repo_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(AdbenchError, match=r"not in the local hub .*adbench datasets build"):
        adbench.load_dataset("ad-bench/nothing-here", hub=tmp_path, endpoint="http://127.0.0.1:9")
    with pytest.raises(AdbenchError, match="org/name"):
        adbench.load_dataset("../../etc", hub=tmp_path)


def test_cli_build_list_show(tmp_path: Path, cli_here) -> None:
    result = cli_here(
        "datasets", "build", "bandit", "--tasks", "3", "--episodes", "2", "--hub", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "ad-bench/bandit" in result.stdout and "600" in result.stdout
    listed = cli_here("datasets", "list", "--hub", str(tmp_path))
    assert "ad-bench/bandit" in listed.stdout
    shown = cli_here("datasets", "show", "ad-bench/bandit", "--hub", str(tmp_path))
    assert "adbench datasets build bandit --source ucb --tasks 3" in shown.stdout
    again = cli_here("datasets", "build", "bandit", "--tasks", "3", "--hub", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    unknown = cli_here("datasets", "build", "nope", "--hub", str(tmp_path))
    assert unknown.returncode == 2 and "valid datasets are" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_cli_push_then_pull_through_a_hub_server(
    bandit_repo: tuple[Path, Path], tmp_path: Path, cli
) -> None:
    from adbench.hub import repo_revision
    from adbench.hub_server import serving

    hub, repo = bandit_repo
    env = {
        **os.environ,
        "NO_PROXY": "127.0.0.1,localhost",
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    with serving(tmp_path / "remote") as server:
        pushed = cli(
            "datasets",
            "push",
            "ad-bench/bandit",
            "--hub",
            str(hub),
            "--endpoint",
            server.url,
            env=env,
        )
        assert pushed.returncode == 0, pushed.stderr
        pulled = cli(
            "datasets",
            "pull",
            "ad-bench/bandit",
            "--hub",
            str(tmp_path / "mine"),
            "--endpoint",
            server.url,
            env=env,
        )
        assert pulled.returncode == 0, pulled.stderr
    copy = tmp_path / "mine" / "datasets" / "ad-bench" / "bandit"
    assert repo_revision(copy) == repo_revision(repo)
    ds = adbench.load_dataset("ad-bench/bandit", split="train", hub=tmp_path / "mine")
    assert ds.num_rows == 6000


def test_a_two_process_build_writes_the_same_bytes_as_one_process(tmp_path: Path) -> None:
    options = dict(
        tasks=6, learners=2, episodes=6, every=1, expert_episodes=1, histories_per_shard=4, seed=1
    )
    one = build_dataset("darkroom", hub=tmp_path / "one", **options)
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    launched = subprocess.run(
        [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "-m", "adbench", "datasets", "build", "darkroom",
            *flags, "--hub", str(tmp_path / "two"),
        ],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("built ad-bench/darkroom") == 1  # the main process reports
    two = tmp_path / "two" / "datasets" / "ad-bench" / "darkroom"
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    for name in files:
        if name.name == "adbench.json":
            a, b = json.loads((one / name).read_text()), json.loads((two / name).read_text())
            assert a.pop("build")["processes"] == 1 and b.pop("build")["processes"] == 2
            assert a == b
        else:
            assert (one / name).read_bytes() == (two / name).read_bytes(), name


# ---------------------------------------------------------------------------------------
# Export to Minari, read back with Minari's own loader.


def _minari_load(root: Path, dataset_id: str) -> minari.MinariDataset:  # noqa: F821
    import minari

    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        return minari.load_dataset(dataset_id)
    finally:
        os.environ.pop("MINARI_DATASETS_PATH", None)


def test_a_minari_export_holds_every_episode_with_its_task_and_references(
    bandit_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    from adbench.histories.export import export_minari

    hub, repo = bandit_repo
    path = export_minari("ad-bench/bandit", tmp_path, hub=hub)
    assert path == tmp_path / "adbench" / "bandit" / "histories-v0"
    dataset = _minari_load(tmp_path, "adbench/bandit/histories-v0")
    arrays = HistoryArrays.from_repo(repo)
    meta = read_metadata(repo)
    horizon = get_family("bandit").episode_length
    assert dataset.total_episodes == arrays.num_steps // horizon == 60
    assert dataset.total_steps == arrays.num_steps
    assert dataset.spec.env_spec.id == "adbench/AdversarialBandit-v0"
    curve = meta["source_learning_curve"]
    assert dataset.storage.metadata["ref_min_score"] == curve["random_return"]
    assert dataset.storage.metadata["ref_max_score"] == curve["optimal_return"]
    for i, episode in enumerate(dataset.iterate_episodes()):
        rows = slice(i * horizon, (i + 1) * horizon)
        np.testing.assert_array_equal(episode.actions, arrays.actions[rows])
        np.testing.assert_array_equal(episode.rewards, arrays.rewards[rows])
        assert episode.observations.shape == (horizon + 1,)
        assert episode.truncations[-1] and not episode.terminations.any()
        assert set(episode.infos["history_id"]) == {arrays.history_id[rows][0]}
        assert set(episode.infos["episode"]) == {arrays.episode[rows][0]}
    with pytest.raises(AdbenchError, match="exists"):
        export_minari("ad-bench/bandit", tmp_path, hub=hub)
    expert = export_minari("ad-bench/bandit", tmp_path, config="expert", hub=hub)
    assert _minari_load(tmp_path, "adbench/bandit/expert-v0").total_episodes == 12  # 1 each
    assert expert.name == "expert-v0"


def test_a_minari_export_of_dark_room_replays_in_the_recovered_env(tmp_path: Path) -> None:
    """Each exported episode, replayed from its task in the env Minari recovers, gives
    the exported observations (the final one included) and rewards."""
    import gymnasium as gym

    from adbench.histories.export import export_minari

    hub = tmp_path / "hub"
    build_dataset("darkroom", hub=hub, tasks=3, learners=1, episodes=6, every=2)
    export_minari("ad-bench/darkroom", tmp_path / "minari", hub=hub)
    dataset = _minari_load(tmp_path / "minari", "adbench/darkroom/histories-v0")
    env = dataset.recover_environment()
    assert isinstance(env.unwrapped, gym.Env) and env.spec.id == "adbench/DarkRoom-v0"
    episodes = list(dataset.iterate_episodes())
    assert len(episodes) == 3 * 3
    for episode in episodes:
        task = dataset.storage.get_episode_metadata([episode.id])
        options = next(iter(task))["options"]
        obs, _ = env.reset(options={"task": options["task"]})
        seen, rewards = [obs], []
        for action in episode.actions:
            obs, reward, *_ = env.step(int(action))
            seen.append(obs)
            rewards.append(reward)
        np.testing.assert_array_equal(np.stack(seen), episode.observations)
        np.testing.assert_array_equal(rewards, episode.rewards)


def test_the_watermaze_is_refused_by_the_minari_export_in_one_line(tmp_path: Path) -> None:
    from adbench.histories.export import final_observations

    with pytest.raises(AdbenchError, match="watermaze cannot be exported") as caught:
        final_observations(get_family("watermaze"), np.zeros((1, 2)), np.zeros(1, np.int64))
    assert "\n" not in str(caught.value)


def test_the_process_group_is_torn_down_before_exit(tmp_path: Path) -> None:
    # Left to interpreter finalization, gloo's threads can abort a launched command after
    # it succeeded (SIGABRT, "terminate called without an active exception").
    import torch.distributed as dist

    from adbench.distributed import end_processes

    end_processes()  # nothing set up: a no-op
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    assert dist.is_initialized()
    end_processes()
    assert not dist.is_initialized()
