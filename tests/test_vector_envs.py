"""Every batched env as a Gymnasium vector env (``gymnasium.make_vec``), checked against
Gymnasium's own ``SyncVectorEnv`` over the single envs and its vector wrappers."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from adbench.envs import FAMILIES, AdbenchError

VECTOR_FAMILIES = list(FAMILIES.values())


@pytest.mark.parametrize("family", VECTOR_FAMILIES, ids=lambda f: f.name)
def test_make_vec_gives_the_vector_env_without_warnings(family) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # make_vec warns on missing or wrong autoreset metadata
        env = gym.make_vec(family.env_id, num_envs=1024, vectorization_mode="vector_entry_point")
    assert isinstance(env, gym.vector.VectorEnv) and env.num_envs == 1024
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert env.single_observation_space == family.observation_space
    assert env.observation_space == gym.vector.utils.batch_space(family.observation_space, 1024)
    assert env.action_space == gym.spaces.MultiDiscrete([family.num_actions] * 1024)
    obs, infos = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert infos["task"].shape == (1024, len(family.task_fields)) and infos["_task"].all()


@pytest.mark.parametrize("family", VECTOR_FAMILIES, ids=lambda f: f.name)
def test_vector_transitions_equal_the_single_envs_in_gymnasiums_sync_vector_env(family) -> None:
    """Per-env tasks and seeds, three episodes and a bit: observations, rewards, flags and
    infos equal those of Gymnasium's SyncVectorEnv over gymnasium.make envs, autoresets
    included."""
    num_envs = 6
    split = family.split(family.test_splits[0])
    tasks = split[np.arange(num_envs) % len(split)]
    vector = gym.make_vec(
        family.env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", tasks=tasks
    )
    single = SyncVectorEnv([lambda task=task: gym.make(family.env_id, task=task) for task in tasks])
    assert vector.metadata["autoreset_mode"] == single.metadata["autoreset_mode"]
    rng = np.random.default_rng(7)
    for a, b in zip(vector.reset(seed=11), single.reset(seed=11), strict=True):
        assert data_equivalence(a, b, exact=True)
    steps = 3 * family.episode_length + 5
    ended = 0
    for _ in range(steps):
        actions = rng.integers(0, family.num_actions, size=num_envs)
        got, expected = vector.step(actions), single.step(actions)
        for a, b in zip(got, expected, strict=True):
            assert data_equivalence(a, b, exact=True)
        ended += int(got[3].all())
    assert ended == 3
    vector.close()
    single.close()


def test_record_episode_statistics_counts_the_fixed_length_episodes() -> None:
    env = RecordEpisodeStatistics(gym.make_vec("adbench/DarkRoom-v0", num_envs=8, tasks="train"))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    total = np.zeros(8)
    for _ in range(20):
        _, reward, _, truncated, infos = env.step(rng.integers(0, 5, size=8))
        total += reward
    assert truncated.all()
    np.testing.assert_array_equal(infos["episode"]["l"], np.full(8, 20))
    np.testing.assert_allclose(infos["episode"]["r"], total)


def test_reset_options_replace_the_tasks() -> None:
    env = gym.make_vec("adbench/DarkRoom-v0", num_envs=3)
    _, infos = env.reset(seed=0)
    np.testing.assert_array_equal(
        infos["task"], np.repeat(FAMILIES["darkroom"].split("train")[:1], 3, 0)
    )
    _, infos = env.reset(options={"tasks": [[1, 2], [3, 4], [5, 6]]})
    np.testing.assert_array_equal(infos["task"], [[1, 2], [3, 4], [5, 6]])
    _, infos = env.reset(options={"task": [0, 8]})
    np.testing.assert_array_equal(infos["task"], [[0, 8]] * 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 0}, "num_envs must be a positive integer"),
        ({"num_envs": 2, "tasks": [[1, 2]]}, "got 1 tasks for num_envs=2"),
        ({"num_envs": 2, "task": [1, 2], "tasks": "train"}, "not both"),
        ({"num_envs": 2, "tasks": "nope"}, "unknown split"),
        ({"num_envs": 2, "task": [99, 0]}, "outside the 9x9 grid"),
        ({"num_envs": 2, "render_mode": "human"}, "does not render"),
    ],
)
def test_bad_vector_env_arguments_are_refused_with_one_line(kwargs, message) -> None:
    from adbench.envs.vector import DarkRoomVectorEnv

    with pytest.raises(AdbenchError, match=message) as caught:
        DarkRoomVectorEnv(**kwargs)
    assert "\n" not in str(caught.value)


def test_an_unknown_reset_option_is_refused() -> None:
    env = gym.make_vec("adbench/DarkRoom-v0", num_envs=2)
    with pytest.raises(AdbenchError, match="unknown reset option"):
        env.reset(options={"goal": [1, 1]})
