"""The built-in Watermaze (``adbench/Watermaze-v0``) and the DeepMind Lab wrapper."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from adbench.envs.base import AdbenchError, fingerprint
from adbench.envs.watermaze import (
    EPISODE_LENGTH,
    FAMILY,
    HEIGHT,
    WIDTH,
    WatermazeBatched,
    WatermazeEnv,
    optimal_return,
    planner_actions,
    random_return,
    render,
    step_poses,
)
from adbench.envs.watermaze_dmlab import WatermazeDMLabEnv, dmlab_available

TRAIN_FINGERPRINT = "c491ecf884ca3912"
TEST_FINGERPRINT = "af1eb7468cf77817"


def test_check_env_passes_without_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(WatermazeEnv(), skip_render_check=True)
    assert [str(w.message) for w in caught] == []


def test_render_mode_rgb_array_returns_the_observation() -> None:
    env = WatermazeEnv(platform=(0.4, -0.2), render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    assert np.array_equal(env.render(), obs)
    obs, *_ = env.step(0)
    assert np.array_equal(env.render(), obs)
    with pytest.raises(AdbenchError, match="rgb_array"):
        WatermazeEnv(render_mode="human")


def test_images_are_uint8_and_a_function_of_the_pose() -> None:
    poses = np.array(
        [
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.5],
            [0.0, 0.0, np.pi],
            [0.3, 0.0, 0.0],
            [0.0, 0.3, 0.0],
            [-0.5, -0.5, 2.0],
            [0.9, 0.1, 3.5],
            [0.05, 0.0, 0.0],
        ]
    )
    images = render(poses[:, 0], poses[:, 1], poses[:, 2])
    assert images.dtype == np.uint8
    assert images.shape == (len(poses), HEIGHT, WIDTH, 3)
    assert np.array_equal(render(poses[:, 0], poses[:, 1], poses[:, 2]), images)
    # Rendering one pose alone gives the same image as rendering it in a batch.
    for i, (x, y, h) in enumerate(poses):
        assert np.array_equal(render([x], [y], [h])[0], images[i])
    for i, j in itertools.combinations(range(len(poses)), 2):
        assert not np.array_equal(images[i], images[j]), (i, j)
    # Sky at the top, floor at the bottom, coloured wall in between, for a centred view.
    centre = images[0]
    assert centre[0, 48, 2] > centre[0, 48, 0]  # bluish sky
    assert not np.array_equal(centre[HEIGHT // 2 - 1, 10], centre[0, 10])


def test_same_heading_opposite_walls_differ_in_hue() -> None:
    ahead = render([0.0], [0.0], [0.3])[0, HEIGHT // 2]
    behind = render([0.0], [0.0], [0.3 + np.pi])[0, HEIGHT // 2]
    assert np.abs(ahead.astype(int) - behind.astype(int)).sum() > 1000


@pytest.mark.parametrize("seed", [0, 11])
def test_batched_equals_single(seed: int) -> None:
    tasks = np.array([[0.5, 0.1], [-0.3, 0.4], [0.0, -0.7], [0.2, 0.2]])
    batched = WatermazeBatched(tasks, seed=seed)
    singles = [WatermazeEnv(platform=tuple(t)) for t in tasks]
    rng = np.random.default_rng(seed)
    for episode in range(2):
        obs = batched.reset()
        for i, env in enumerate(singles):
            single_obs, info = env.reset(seed=seed + i if episode == 0 else None)
            assert np.array_equal(single_obs, obs[i])
            assert np.array_equal(info["task"], tasks[i])
        for t in range(EPISODE_LENGTH):
            actions = rng.integers(0, 8, size=len(tasks))
            if t < 10:
                # Steer toward the platforms for a while so that rewards occur too.
                actions = planner_actions(batched.x, batched.y, batched.heading, tasks)
            obs, reward, terminated, truncated = batched.step(actions)
            for i, env in enumerate(singles):
                s_obs, s_rew, s_term, s_trunc, _ = env.step(int(actions[i]))
                assert np.array_equal(s_obs, obs[i])
                assert s_rew == reward[i]
                assert s_term == terminated[i]
                assert s_trunc == truncated[i]
        assert truncated.all() and not terminated.any()


def test_reset_heading_is_random_and_position_central() -> None:
    env = WatermazeBatched(FAMILY.split("test")[:64], seed=0)
    env.reset()
    assert np.array_equal(env.x, np.zeros(64)) and np.array_equal(env.y, np.zeros(64))
    assert len(np.unique(env.heading)) == 64
    assert env.heading.min() >= 0 and env.heading.max() < 2 * np.pi


@pytest.mark.parametrize("seed", [0, 1, 2, 12345])
def test_planner_reaches_every_test_platform_once(seed: int) -> None:
    tasks = FAMILY.split("test")
    env = WatermazeBatched(tasks, seed=seed)
    env.reset()
    total = np.zeros(len(tasks))
    for _ in range(EPISODE_LENGTH):
        actions = planner_actions(env.x, env.y, env.heading, tasks)
        _, reward, _, _ = env.step(actions)
        total += reward
    # The planner keeps circling the platform after reaching it: still one reward only.
    assert np.array_equal(total, np.ones(len(tasks)))


def test_reference_returns() -> None:
    test, train = FAMILY.split("test"), FAMILY.split("train")
    assert np.array_equal(optimal_return(test), np.ones(len(test)))
    assert np.array_equal(FAMILY.optimal_return(train), np.ones(len(train)))
    rand = FAMILY.random_return(test)
    assert rand.shape == (len(test),)
    assert (rand > 0).all() and (rand < 0.6).all()
    assert rand.mean() < 0.3
    assert np.array_equal(random_return(test), rand)  # a fixed estimate
    # Farther platforms are harder for a random walk from the centre.
    radius = np.hypot(test[:, 0], test[:, 1])
    assert rand[radius < 0.45].mean() > rand[radius > 0.65].mean()


def test_random_policy_gets_at_most_one_reward_per_episode() -> None:
    tasks = np.array([[0.3, 0.0], [0.0, 0.0], [0.0, 0.3]])
    env = WatermazeBatched(np.repeat(tasks, 50, axis=0), seed=7)
    rng = np.random.default_rng(0)
    env.reset()
    total = np.zeros(env.num_envs)
    for _ in range(EPISODE_LENGTH):
        _, reward, _, _ = env.step(rng.integers(0, 8, size=env.num_envs))
        assert set(np.unique(reward)) <= {0.0, 1.0}
        total += reward
    assert total.max() == 1.0
    # A platform at the centre is reached on the very first step, whatever the action.
    assert (total[50:100] == 1.0).all()


def test_dynamics() -> None:
    zero = np.zeros(8)
    x, y, h = step_poses(zero, zero, zero, np.arange(8))
    diagonal = 0.1 * np.cos(np.pi / 6)
    np.testing.assert_allclose(x, [0.1, -0.1, 0, 0, 0, 0, diagonal, diagonal], atol=1e-15)
    np.testing.assert_allclose(y, [0, 0, 0.1, -0.1, 0, 0, 0.05, -0.05], atol=1e-15)
    turns = np.array([0, 0, 0, 0, 1, -1, 1, -1]) * np.pi / 6
    np.testing.assert_allclose(h, np.mod(turns, 2 * np.pi))
    # Walking into the wall stops at the pool's radius minus the agent's.
    x, y, h = np.zeros(1), np.zeros(1), np.full(1, 0.7)
    for _ in range(30):
        x, y, h = step_poses(x, y, h, np.zeros(1, dtype=np.int64))
    np.testing.assert_allclose(np.hypot(x, y), 0.95)
    np.testing.assert_allclose(np.arctan2(y, x), 0.7)


def test_splits_are_fixed_sized_disjoint_and_inside_the_annulus() -> None:
    train, test = FAMILY.split("train"), FAMILY.split("test")
    assert train.shape == (1000, 2) and test.shape == (100, 2)
    assert train.dtype == np.float64
    assert fingerprint(train) == TRAIN_FINGERPRINT
    assert fingerprint(test) == TEST_FINGERPRINT
    assert not {tuple(t) for t in train} & {tuple(t) for t in test}
    for tasks in (train, test):
        radius = np.hypot(tasks[:, 0], tasks[:, 1])
        assert radius.min() >= 0.3 and radius.max() <= 0.75
        assert len(np.unique(tasks, axis=0)) == len(tasks)
    with pytest.raises(AdbenchError, match="valid splits are train, test"):
        FAMILY.split("eval")


def test_task_options_and_aliases() -> None:
    env = WatermazeEnv(platform=(0.1, 0.2))
    assert np.array_equal(env.task, [0.1, 0.2])
    assert np.array_equal(WatermazeEnv(task=[0.3, 0.0]).task, [0.3, 0.0])
    assert np.array_equal(WatermazeEnv().task, FAMILY.split("train")[0])
    _, info = env.reset(seed=0, options={"platform": (-0.4, 0.1)})
    assert np.array_equal(info["task"], [-0.4, 0.1])
    _, info = env.reset(seed=0, options={"task": (0.0, 0.5)})
    assert np.array_equal(info["task"], [0.0, 0.5])
    with pytest.raises(AdbenchError, match="valid options are task, platform"):
        env.reset(options={"goal": (0, 0)})


@pytest.mark.parametrize(
    "platform", [(0.9, 0.0), (0.0, -0.86), (np.nan, 0.0), (np.inf, 0.0), (0.7, 0.7)]
)
def test_invalid_platform_names_the_valid_range(platform: tuple[float, float]) -> None:
    with pytest.raises(AdbenchError, match=r"at most 0\.85 from the pool's centre"):
        WatermazeEnv(platform=platform)
    with pytest.raises(AdbenchError, match=r"at most 0\.85"):
        WatermazeBatched([[0.1, 0.1], platform])
    # The edge of the valid range is accepted.
    WatermazeEnv(platform=(0.0, 0.85))


def test_invalid_action_names_the_valid_actions() -> None:
    env = WatermazeEnv()
    env.reset(seed=0)
    for bad in (8, -1, 1.0, True):
        with pytest.raises(AdbenchError, match=r"valid actions are 0\.\.7 \(forward, backward"):
            env.step(bad)
    batched = WatermazeBatched(FAMILY.split("test")[:2], seed=0)
    batched.reset()
    with pytest.raises(AdbenchError, match=r"valid actions are 0\.\.7"):
        batched.step(np.array([0, 8]))


def test_step_before_reset_and_after_the_episode() -> None:
    env = WatermazeEnv()
    with pytest.raises(AdbenchError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for t in range(EPISODE_LENGTH):
        *_, terminated, truncated, _ = env.step(4)
        assert not terminated and truncated == (t == EPISODE_LENGTH - 1)
    with pytest.raises(AdbenchError, match="reset"):
        env.step(0)


@pytest.mark.skipif(dmlab_available(), reason="DeepMind Lab is installed")
def test_dmlab_env_without_deepmind_lab_says_how_to_install() -> None:
    with pytest.raises(AdbenchError) as info:
        WatermazeDMLabEnv()
    message = str(info.value)
    assert "DeepMind Lab is not installed" in message
    assert "github.com/google-deepmind/lab" in message
    assert "bazel build -c opt //python/pip_package:build_pip_package" in message
    assert "pip install" in message
    assert "adbench/Watermaze-v0" in message
    assert "\n" not in message


@pytest.mark.skipif(not dmlab_available(), reason="DeepMind Lab is not installed")
def test_dmlab_env_rollout() -> None:
    env = WatermazeDMLabEnv(level_seed=1)
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == (HEIGHT, WIDTH, 3) and obs.dtype == np.uint8
        assert info["level_seed"] == 1
        rng = np.random.default_rng(0)
        steps = 0
        while True:
            obs, reward, terminated, truncated, _ = env.step(int(rng.integers(0, 8)))
            assert obs.shape == (HEIGHT, WIDTH, 3) and reward >= 0
            steps += 1
            if terminated or truncated:
                break
        assert steps <= EPISODE_LENGTH
        with pytest.raises(AdbenchError, match=r"valid actions are 0\.\.7"):
            env.reset(seed=0)
            env.step(8)
    finally:
        env.close()


# ---------------------------------------------------------------------------------------
# The pose source: the same env without rendering, frames rendered afterwards.


def test_a_batch_without_rendering_has_the_same_dynamics_and_its_poses_render_its_frames() -> None:
    from adbench.envs.watermaze import render_poses

    tasks = FAMILY.split("train")[:16]
    pixels = WatermazeBatched(tasks, seed=5)
    poses = WatermazeBatched(tasks, seed=5, render_frames=False)
    rng = np.random.default_rng(0)
    frames, pose = pixels.reset(), poses.reset()
    assert pose.shape == (16, 3) and all(poses.observation_space.contains(p) for p in pose)
    total = 0.0
    for _ in range(EPISODE_LENGTH):
        np.testing.assert_array_equal(render_poses(pose), frames)
        actions = rng.integers(0, 8, size=16)
        frames, reward_pixels, *_ = pixels.step(actions)
        pose, reward_poses, *_ = poses.step(actions)
        np.testing.assert_array_equal(reward_pixels, reward_poses)
        total += float(reward_pixels.sum())
    assert total > 0  # some random walker found its platform: the rewards were compared


def test_pose_q_learning_rises_from_random_to_near_optimal_and_is_deterministic() -> None:
    from adbench.sources import get_source

    tasks = FAMILY.split("train")[:64]
    source = get_source("pose-q-learning")
    batches = list(source.learn(FAMILY, tasks, 300, seed=3, expert_episodes=1))
    returns = np.array([b.returns.mean() for b in batches if not b.expert])
    assert returns[:20].mean() < 0.3  # the random policy's return is ~0.19
    assert returns[-20:].mean() > 0.8
    expert = batches[-1]
    assert expert.expert and expert.observations is None and expert.states.shape == (64, 50, 3)
    assert expert.returns.mean() > 0.8
    # Frames are rendered on demand, from the states the episode carries.
    frames = expert.with_observations(FAMILY).observations
    assert frames.shape == (64, 50, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[3, 7], render(*expert.states[3, 7, :, None])[0])
    again = list(source.learn(FAMILY, tasks, 300, seed=3, expert_episodes=1))
    for a, b in zip(batches, again, strict=True):
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.states, b.states)
