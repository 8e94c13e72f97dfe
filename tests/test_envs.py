"""The grid and bandit families: Gymnasium API, the paper's reward rules, batched ==
single, fixed splits, reference returns, and clear errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import adbench
from adbench.envs import FAMILIES, fingerprint, get_family
from adbench.errors import AdbenchError

GRID_AND_BANDIT = ["bandit", "darkroom", "darkroom-hard", "key-to-door"]

# Fingerprints of every split: if one of these changes, every dataset and score built on
# the old split is invalid. Never edit a value; add a new split version instead.
SPLIT_FINGERPRINTS = {
    ("bandit", "train-odd"): "7add712f250ad7b7",
    ("bandit", "test-odd"): "633a37acc7274dc6",
    ("bandit", "test-even"): "8841aca914de04d4",
    ("bandit", "test-uniform"): "ced0b26d57f6c86c",
    ("darkroom", "train"): "e7fc88134afa94c2",
    ("darkroom", "test"): "c49c76a82fb47bf9",
    ("darkroom-hard", "train"): "d65e8696becb6e11",
    ("darkroom-hard", "test"): "94f9f0406fe99e6f",
    ("key-to-door", "train"): "f929ecfe50f4611b",
    ("key-to-door", "test"): "32db6fda1e1d6bf3",
}


@pytest.mark.parametrize("name", GRID_AND_BANDIT)
def test_check_env_passes_through_gymnasium_make(name: str) -> None:
    env = gym.make(get_family(name).env_id)
    check_env(env.unwrapped, skip_render_check=True)


def test_every_family_is_registered() -> None:
    for family in FAMILIES.values():
        assert family.env_id in gym.registry
        assert family.env_id.startswith("adbench/")
    assert "adbench/Watermaze-DMLab-v0" in gym.registry
    assert adbench.__version__


def _play(env: gym.Env, actions: list[int]) -> list[float]:
    return [env.step(a)[1] for a in actions]


UP, DOWN, LEFT, RIGHT, NOOP = range(5)


def test_dark_room_pays_every_step_on_the_goal() -> None:
    env = gym.make("adbench/DarkRoom-v0", goal=(5, 4))
    obs, _ = env.reset(seed=0)
    assert tuple(obs) == (4, 4)
    rewards = _play(env, [RIGHT, NOOP, NOOP, LEFT, RIGHT, DOWN])
    assert rewards == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]


def test_dark_room_walls_hold_the_agent_and_episode_lasts_20_steps() -> None:
    env = gym.make("adbench/DarkRoom-v0", goal=(0, 0))
    env.reset(seed=0)
    for _ in range(19):
        obs, _, terminated, truncated, _ = env.step(UP)
        assert not terminated and not truncated
    assert tuple(obs) == (4, 8)
    *_, truncated, _ = env.step(UP)
    assert truncated


def test_dark_room_hard_pays_only_the_first_time() -> None:
    env = gym.make("adbench/DarkRoomHard-v0", goal=(9, 8))
    env.reset(seed=0)
    rewards = _play(env, [RIGHT, NOOP, LEFT, RIGHT, NOOP])
    assert rewards == [1.0, 0.0, 0.0, 0.0, 0.0]
    env.reset(seed=0)
    assert _play(env, [RIGHT]) == [1.0]  # a new episode pays again


def test_key_to_door_door_only_after_key() -> None:
    env = gym.make("adbench/DarkKeyToDoor-v0", key=(0, 0), door=(2, 0))
    env.reset(options={"task": [0, 0, 2, 0]}, seed=0)
    env.unwrapped.pos = np.array([3, 0])  # start next to the door, away from the key
    rewards = _play(env, [LEFT, LEFT, LEFT, LEFT, RIGHT, RIGHT, NOOP, LEFT, RIGHT])
    # door at step 1 pays nothing (no key); key at step 3 (then noop on it: nothing);
    # door again at step 6 pays; never again.
    assert rewards == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def test_key_to_door_same_cell_takes_two_steps() -> None:
    env = gym.make("adbench/DarkKeyToDoor-v0", key=(4, 4), door=(4, 4))
    env.reset(seed=0)
    env.unwrapped.pos = np.array([4, 4])
    assert _play(env, [NOOP, NOOP, NOOP]) == [1.0, 1.0, 0.0]


def test_key_to_door_random_start_is_seeded() -> None:
    env = gym.make("adbench/DarkKeyToDoor-v0")
    starts = {tuple(env.reset(seed=s)[0]) for s in range(30)}
    assert len(starts) > 10
    assert tuple(env.reset(seed=7)[0]) == tuple(env.reset(seed=7)[0])


def test_bandit_split_statistics() -> None:
    family = get_family("bandit")
    for split, parity, expected in [
        ("train-odd", 1, 0.95),
        ("test-odd", 1, 0.95),
        ("test-even", 0, 0.95),
        ("test-uniform", 1, 0.5),
    ]:
        tasks = family.split(split)
        frac = float(np.mean(tasks.argmax(axis=1) % 2 == parity))
        # binomial standard error for 200 tasks is about 0.015 at 0.95, 0.035 at 0.5
        assert abs(frac - expected) < 4 * np.sqrt(expected * (1 - expected) / len(tasks)), split
        gap = np.sort(tasks, axis=1)[:, -1] - np.sort(tasks, axis=1)[:, -2]
        assert gap.min() >= 0.2 - 1e-12


def test_bandit_rewards_follow_arm_means() -> None:
    means = np.linspace(0.05, 0.95, 10)
    batch = get_family("bandit").make_batched(np.tile(means, (200, 1)), seed=3)
    batch.reset()
    totals = np.zeros(10)
    for t in range(100):
        _, reward, _, _ = batch.step(np.full(200, t % 10))
        totals[t % 10] += reward.sum()
    empirical = totals / (200 * 10)
    assert np.abs(empirical - means).max() < 0.05


@pytest.mark.parametrize("name", GRID_AND_BANDIT)
def test_batched_equals_single(name: str) -> None:
    family = get_family(name)
    tasks = family.split(family.test_splits[0])[:5]
    seeds = [11, 12, 13, 14, 15]
    rng = np.random.default_rng(0)
    actions = rng.integers(0, family.num_actions, size=(2, family.episode_length, len(tasks)))
    batch = family.make_batched(tasks, seed=seeds)
    singles = [gym.make(family.env_id, task=task) for task in tasks]
    for episode in range(2):
        obs_b = batch.reset()
        obs_s = [
            env.reset(seed=seeds[i] if episode == 0 else None)[0] for i, env in enumerate(singles)
        ]
        np.testing.assert_array_equal(obs_b, np.stack(obs_s))
        for t in range(family.episode_length):
            obs_b, rew_b, term_b, trunc_b = batch.step(actions[episode, t])
            results = [env.step(int(actions[episode, t, i])) for i, env in enumerate(singles)]
            np.testing.assert_array_equal(obs_b, np.stack([r[0] for r in results]))
            np.testing.assert_array_equal(rew_b, [r[1] for r in results])
            np.testing.assert_array_equal(term_b, [r[2] for r in results])
            np.testing.assert_array_equal(trunc_b, [r[3] for r in results])


@pytest.mark.parametrize("name", GRID_AND_BANDIT)
def test_splits_are_disjoint_fixed_and_documented_sizes(name: str) -> None:
    family = get_family(name)
    for split in family.split_names:
        assert fingerprint(family.split(split)) == SPLIT_FINGERPRINTS[(name, split)], split
    train = {tuple(t) for t in family.split(family.train_split)}
    for split in family.test_splits:
        test = {tuple(t) for t in family.split(split)}
        assert not train & test, f"{split} overlaps {family.train_split}"
        assert len(test) == len(family.split(split))


def test_split_sizes_match_the_paper() -> None:
    assert (
        len(get_family("darkroom").split("train")),
        len(get_family("darkroom").split("test")),
    ) == (65, 16)
    hard = get_family("darkroom-hard")
    assert len(hard.split("train")) + len(hard.split("test")) == 289
    assert 0.75 < len(hard.split("train")) / 289 < 0.85
    assert len(get_family("key-to-door").split("train")) < 2000
    for name in ("darkroom", "darkroom-hard"):
        family = get_family(name)
        union = np.concatenate([family.split("train"), family.split("test")])
        assert len({tuple(t) for t in union}) == len(family.all_tasks())


@pytest.mark.parametrize("name", ["darkroom", "darkroom-hard", "key-to-door", "watermaze"])
def test_oracle_achieves_the_optimal_return_on_every_task(name: str) -> None:
    family = get_family(name)
    tasks = np.concatenate([family.split(s) for s in family.split_names])
    batch = family.make_batched(tasks, seed=0)
    for _ in range(3):  # several episodes: Key-to-Door starts anywhere
        batch.reset()
        total = np.zeros(len(tasks))
        for _ in range(family.episode_length):
            _, reward, _, _ = batch.step(batch.optimal_actions())
            total += reward
        np.testing.assert_array_equal(total, family.optimal_return(tasks))


def test_dark_room_optimal_return_formula() -> None:
    family = get_family("darkroom")
    assert family.optimal_return([4, 4])[0] == 20
    assert family.optimal_return([5, 4])[0] == 20
    assert family.optimal_return([0, 0])[0] == 13
    assert family.optimal_return(family.all_tasks()).mean() == pytest.approx(16.5, abs=0.1)


def test_bandit_oracle_and_random_reference() -> None:
    family = get_family("bandit")
    tasks = family.split("test-even")
    batch = family.make_batched(tasks, seed=1)
    rng = np.random.default_rng(1)
    oracle, random = np.zeros(len(tasks)), np.zeros(len(tasks))
    for _ in range(20):
        batch.reset()
        for _ in range(100):
            oracle += batch.step(batch.optimal_actions())[1]
        batch.reset()
        for _ in range(100):
            random += batch.step(rng.integers(0, 10, len(tasks)))[1]
    # 20 episodes x 100 pulls x 200 tasks: the means are within a fraction of a reward
    assert oracle.mean() / 20 == pytest.approx(family.optimal_return(tasks).mean(), abs=0.5)
    assert random.mean() / 20 == pytest.approx(family.random_return(tasks).mean(), abs=0.5)


@pytest.mark.parametrize("name", ["darkroom", "darkroom-hard", "key-to-door"])
def test_exact_random_return_matches_monte_carlo(name: str) -> None:
    family = get_family(name)
    tasks = family.split("test")[:12]
    reps = 400
    batch = family.make_batched(np.repeat(tasks, reps, axis=0), seed=5)
    rng = np.random.default_rng(5)
    batch.reset()
    total = np.zeros(len(tasks) * reps)
    for _ in range(family.episode_length):
        total += batch.step(rng.integers(0, 5, len(total)))[1]
    mc = total.reshape(len(tasks), reps).mean(axis=1)
    exact = family.random_return(tasks)
    stderr = total.reshape(len(tasks), reps).std(axis=1) / np.sqrt(reps) + 1e-3
    assert np.all(np.abs(mc - exact) < 5 * stderr)


# --- bad input -----------------------------------------------------------------------


def test_unknown_env_names_valid_ones() -> None:
    with pytest.raises(AdbenchError, match=r"valid environments are .*darkroom"):
        get_family("darkroomz")
    with pytest.raises(gym.error.Error):
        gym.make("adbench/DarkRoomz-v0")


def test_out_of_range_goal() -> None:
    with pytest.raises(AdbenchError, match=r"outside the 9x9 grid: x and y must be in 0..8"):
        gym.make("adbench/DarkRoom-v0", goal=(9, 3))
    env = gym.make("adbench/DarkRoomHard-v0")
    with pytest.raises(AdbenchError, match=r"0\.\.16"):
        env.reset(options={"goal": (-1, 0)})
    with pytest.raises(AdbenchError, match="door"):
        gym.make("adbench/DarkKeyToDoor-v0", key=(1, 1), door=(1, 12))
    with pytest.raises(AdbenchError, match="probabilities"):
        gym.make("adbench/AdversarialBandit-v0", arm_means=[1.5] * 10)
    with pytest.raises(AdbenchError, match="2 values"):
        get_family("darkroom").make_batched([[1, 2, 3]])


def test_invalid_action() -> None:
    env = gym.make("adbench/DarkRoom-v0")
    env.reset(seed=0)
    with pytest.raises(
        AdbenchError, match=r"valid actions are 0..4 \(up, down, left, right, noop\)"
    ):
        env.unwrapped.step(5)
    batch = get_family("bandit").make_batched(get_family("bandit").split("test-even")[:3], seed=0)
    batch.reset()
    with pytest.raises(AdbenchError, match=r"valid actions are 0\.\.9"):
        batch.step(np.array([0, 10, 1]))
    with pytest.raises(AdbenchError, match=r"shape \(3,\)"):
        batch.step(np.array([0, 1]))


def test_step_before_reset_and_unknown_option() -> None:
    batch = get_family("darkroom").make_batched([[1, 1]], seed=0)
    with pytest.raises(AdbenchError, match="reset"):
        batch.step(np.array([0]))
    env = gym.make("adbench/DarkRoom-v0")
    with pytest.raises(AdbenchError, match="valid options are task, goal"):
        env.reset(options={"gaol": (1, 1)})


def test_wrong_split_name() -> None:
    with pytest.raises(
        AdbenchError, match="valid splits are train-odd, test-odd, test-even, test-uniform"
    ):
        get_family("bandit").split("test")
    with pytest.raises(AdbenchError, match="valid splits are train, test"):
        get_family("darkroom").split("validation")
