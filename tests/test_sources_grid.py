"""The grid-world source algorithms: tabular Q-learning and batched A2C.

Each (algorithm, family) pair is run once, small, and shared by the tests: it must learn
(late returns well above early ones, near optimal on Dark Room), learn *gradually* (the
mean learning curve passes through intermediate values), be reproducible from its seed,
and yield well-formed episodes whose transitions are the env's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from adbench import AdbenchError, get_family
from adbench.envs import _grid
from adbench.sources.a2c import A2C
from adbench.sources.base import EpisodeBatch, SourceAlgorithm
from adbench.sources.q_learning import QLearning

ALGORITHMS: dict[str, type[SourceAlgorithm]] = {"q-learning": QLearning, "a2c": A2C}
FAMILIES = ("darkroom", "darkroom-hard", "key-to-door")
PAIRS = [(a, f) for a in ALGORITHMS for f in FAMILIES]

# (learners, learning episodes) per pair: as small as still shows the whole rise.
SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("q-learning", "darkroom"): (32, 300),
    ("q-learning", "darkroom-hard"): (32, 300),
    ("q-learning", "key-to-door"): (24, 200),
    ("a2c", "darkroom"): (16, 600),
    ("a2c", "darkroom-hard"): (16, 500),
    ("a2c", "key-to-door"): (12, 400),
}
EXPERT_EPISODES = 5


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """A2C's tensors here are tiny: torch's thread pool only adds synchronisation, which
    on a busy 2-core machine made these runs ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tasks_for(family_name: str, count: int) -> NDArray[np.int64]:
    family = get_family(family_name)
    tasks = family.split("train")
    if family_name == "darkroom-hard":
        # Goals far from the centre are rarely ever reached by undirected exploration in
        # 20 steps; keep the test's goals within reach of a few hundred episodes.
        centre = np.array([8, 8])
        tasks = tasks[_grid.manhattan(tasks, centre) <= 5]
    return tasks[np.arange(count) % len(tasks)]


@cache
def history(algorithm: str, family_name: str, seed: int = 0) -> tuple[EpisodeBatch, ...]:
    num_learners, num_episodes = SIZES[algorithm, family_name]
    source = ALGORITHMS[algorithm]()
    tasks = tasks_for(family_name, num_learners)
    family = get_family(family_name)
    return tuple(source.learn(family, tasks, num_episodes, seed, expert_episodes=EXPERT_EPISODES))


def learning_curve(batches: tuple[EpisodeBatch, ...]) -> NDArray[np.float64]:
    """Mean return over learners of each learning episode."""
    return np.array([b.returns.mean() for b in batches if not b.expert], dtype=np.float64)


@pytest.mark.parametrize(("algorithm", "family_name"), PAIRS)
def test_learns_gradually(algorithm: str, family_name: str) -> None:
    curve = learning_curve(history(algorithm, family_name))
    chunks = np.array([c.mean() for c in np.array_split(curve, 10)])
    early, late = chunks[0], chunks[-1]
    family = get_family(family_name)
    num_learners = SIZES[algorithm, family_name][0]
    optimal = family.optimal_return(tasks_for(family_name, num_learners)).mean()
    # Improves: the last 10% of episodes are well above the first 10%.
    assert late - early > 0.3 * optimal, (algorithm, family_name, chunks)
    # Gradually: some middle chunk lies clearly between the early and late levels.
    gap = late - early
    middle = chunks[1:-1]
    between = (middle > early + 0.15 * gap) & (middle < late - 0.15 * gap)
    assert between.any(), (algorithm, family_name, chunks)


@pytest.mark.parametrize(("algorithm", "minimum"), [("q-learning", 0.8), ("a2c", 0.8)])
def test_near_optimal_on_darkroom(algorithm: str, minimum: float) -> None:
    batches = history(algorithm, "darkroom")
    curve = learning_curve(batches)
    num_learners = SIZES[algorithm, "darkroom"][0]
    optimal = get_family("darkroom").optimal_return(tasks_for("darkroom", num_learners)).mean()
    assert curve[-len(curve) // 10 :].mean() >= minimum * optimal
    expert = np.mean([b.returns.mean() for b in batches if b.expert])
    assert expert >= minimum * optimal


@pytest.mark.parametrize(("algorithm", "family_name"), PAIRS)
def test_episode_batches_are_well_formed(algorithm: str, family_name: str) -> None:
    batches = history(algorithm, family_name)
    family = get_family(family_name)
    num_learners, num_episodes = SIZES[algorithm, family_name]
    horizon = family.episode_length
    size = int(family.observation_space.nvec[0])
    assert [b.episode for b in batches] == list(range(num_episodes + EXPERT_EPISODES))
    # Expert episodes are flagged and come after every learning episode.
    assert [b.expert for b in batches] == [False] * num_episodes + [True] * EXPERT_EPISODES
    for batch in batches[:3] + batches[-3:]:
        assert batch.observations.shape == (num_learners, horizon, 2)
        assert batch.observations.dtype == np.int64
        assert batch.actions.shape == (num_learners, horizon)
        assert batch.actions.dtype == np.int64
        assert batch.rewards.shape == (num_learners, horizon)
        assert batch.rewards.dtype == np.float32
        assert ((batch.actions >= 0) & (batch.actions < family.num_actions)).all()
        assert ((batch.observations >= 0) & (batch.observations < size)).all()
        # Each observation is the previous one moved by the previous action.
        for t in range(horizon - 1):
            moved = _grid.move(batch.observations[:, t], batch.actions[:, t], size)
            np.testing.assert_array_equal(moved, batch.observations[:, t + 1])
    if family_name == "darkroom":
        # Every episode starts at the centre; a reward is paid exactly on the goal.
        tasks = tasks_for(family_name, num_learners)
        batch = batches[-1]
        assert (batch.observations[:, 0] == 4).all()
        landed = _grid.move(batch.observations[:, -1], batch.actions[:, -1], size)
        on_goal = (landed == tasks).all(axis=1)
        np.testing.assert_array_equal(batch.rewards[:, -1], on_goal.astype(np.float32))


def _run(algorithm: str, family_name: str, seed: int) -> list[EpisodeBatch]:
    family = get_family(family_name)
    source = ALGORITHMS[algorithm]()
    return list(source.learn(family, tasks_for(family_name, 6), 8, seed, expert_episodes=2))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("family_name", ["darkroom", "key-to-door"])
def test_seed_determines_the_history(algorithm: str, family_name: str) -> None:
    first, again, other = (_run(algorithm, family_name, s) for s in (3, 3, 4))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)
    assert any(not np.array_equal(a.actions, b.actions) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unknown_hyperparameter_is_an_error(algorithm: str) -> None:
    with pytest.raises(AdbenchError, match="unknown key"):
        ALGORITHMS[algorithm](no_such_thing=1)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hyperparameters_override_the_defaults(algorithm: str) -> None:
    source = ALGORITHMS[algorithm](gamma=0.9)
    assert source.config.to_dict()["gamma"] == 0.9
    assert ALGORITHMS[algorithm]().config.to_dict()["gamma"] == 0.99


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_other_families_are_refused(algorithm: str) -> None:
    family = get_family("bandit")
    with pytest.raises(AdbenchError, match="does not run on bandit"):
        tasks = family.split(family.train_split)[:2]
        next(ALGORITHMS[algorithm]().learn(family, tasks, 2, 0))


# Digests of every batch (observations, actions, rewards, episode index, expert flag) of
# small runs, pinned: a change to a source or an env that alters its histories for a
# given seed must be deliberate (and the dataset cards then record which version built
# them). numpy-only sources; torch's floating point may differ between machines.
PINNED_HISTORIES = {
    ("ucb", "bandit", 8, 6, 1): "4cec9002cbbe7a02",
    ("q-learning", "darkroom", 8, 12, 2): "9ec939a32b48675a",
    ("q-learning", "darkroom-hard", 6, 10, 2): "667dc5158d7dd14c",
    ("q-learning", "key-to-door", 6, 10, 2): "b001304e68bc5b4d",
    ("pose-q-learning", "watermaze", 6, 10, 2): "c469beb7a052c7aa",
}


@pytest.mark.parametrize(("case", "digest"), PINNED_HISTORIES.items(), ids=lambda v: str(v))
def test_the_histories_of_a_seed_are_pinned(case: tuple, digest: str) -> None:
    import hashlib

    from adbench.envs import get_family
    from adbench.sources import get_source

    source, env, learners, episodes, expert = case
    family = get_family(env)
    tasks = family.split(family.train_split)[:learners]
    h = hashlib.sha256()
    for batch in get_source(source).learn(family, tasks, episodes, seed=5, expert_episodes=expert):
        batch = batch.with_observations(family)
        for array in (batch.observations, batch.actions, batch.rewards):
            h.update(np.ascontiguousarray(array).tobytes())
        h.update(str((batch.episode, batch.expert)).encode())
    assert h.hexdigest()[:16] == digest


def a2c_episode(family_name: str, num_learners: int = 7, hidden_layers: int = 2) -> tuple:
    """A small A2C network (real logits: its policy head scaled up from the near-zero
    init) and a random episode of ``family_name``: observations, rewards, actions."""
    from adbench.sources.a2c import MEMORY_CAP, A2CConfig, BatchedActorCritic

    family = get_family(family_name)
    size, cap = int(family.observation_space.nvec[0]), MEMORY_CAP[family_name]
    config = A2CConfig(hidden_size=16, num_hidden_layers=hidden_layers)
    network = BatchedActorCritic(
        num_learners,
        2 * size + cap + 2,
        family.num_actions,
        config,
        torch.Generator().manual_seed(1),
    )
    network.weights[-1][..., :-1] *= 100.0
    rng = np.random.default_rng(0)
    observations = rng.integers(0, size, (num_learners, family.episode_length, 2))
    rewards = (rng.random((num_learners, family.episode_length)) < 0.2).astype(np.float32)
    actions = rng.integers(0, family.num_actions, (num_learners, family.episode_length))
    return network, config, size, cap, observations, rewards, actions


@pytest.mark.parametrize("family_name", FAMILIES)
def test_a2c_acting_steps_equal_the_batched_forward(family_name: str) -> None:
    """A2C acts with weighted weight-row sums (step) and keeps what each step computed for
    the update: the heads and every torso activation equal those of batched matmuls over
    the episode's features."""
    from adbench.sources.a2c import episode_features, reward_memory, step_units

    network, _, size, cap, observations, rewards, _ = a2c_episode(family_name)
    heads, torso = network.forward(episode_features(observations, rewards, size, cap))
    logits, values = heads[..., :-1], heads[..., -1]
    memory = reward_memory(rewards, cap)
    horizon = rewards.shape[1]
    for t in range(horizon):
        units = np.concatenate(
            [
                step_units(observations[:, t], memory[:, t], size),
                np.full((len(observations), 1), 2 * size + cap + 1),
            ],
            axis=1,
        )
        values_t = torch.ones(len(observations), 4)
        values_t[:, 3] = t / horizon
        heads, activations = network.step(
            torch.from_numpy(network.first_layer_rows(units)), values_t
        )
        torch.testing.assert_close(heads[:, :-1], logits[:, t], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(heads[:, -1], values[:, t], rtol=1e-5, atol=1e-5)
        for activation, expected in zip(activations, torso, strict=True):
            torch.testing.assert_close(activation, expected[:, t], rtol=1e-5, atol=1e-6)
    assert memory.max() <= cap and (cap == 0 or memory.max() == cap)


@pytest.mark.parametrize("hidden_layers", [1, 2, 3])
@pytest.mark.parametrize("family_name", ["darkroom", "key-to-door"])
def test_a2c_hand_written_gradients_equal_autograd(family_name: str, hidden_layers: int) -> None:
    """The update's backward pass (head_gradients, then BatchedActorCritic.gradients) is
    the gradient of the A2C loss that autograd computes: policy gradient with GAE
    advantages, value loss and entropy bonus, each a mean over the episode's steps,
    summed over learners."""
    from adbench.sources.a2c import episode_features, gae_advantages, head_gradients

    network, config, size, cap, observations, rewards, actions = a2c_episode(
        family_name, hidden_layers=hidden_layers
    )
    config = type(config)(**{**config.to_dict(), "entropy_coef": 0.3, "value_coef": 0.7})
    features = episode_features(observations, rewards, size, cap)
    action_t, reward_t = torch.from_numpy(actions), torch.from_numpy(rewards)

    # Autograd through the reference forward pass, on a copy with copied parameters.
    parameters = [p.clone().requires_grad_() for p in network.parameters()]
    reference = copy.copy(network)
    layers = len(network.weights)
    reference.weights, reference.biases = parameters[:layers], parameters[layers:]
    heads, torso = reference.forward(features)
    torso = [activation.detach() for activation in torso]
    logits, values = heads[..., :-1], heads[..., -1]
    advantages = gae_advantages(reward_t, values.detach(), config.gamma, config.gae_lambda)
    targets = advantages + values.detach()
    log_probs = torch.log_softmax(logits, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    loss = (
        -(log_probs.gather(-1, action_t.unsqueeze(-1)).squeeze(-1) * advantages).mean(1)
        + config.value_coef * 0.5 * (values - targets).pow(2).mean(1)
        - config.entropy_coef * entropy.mean(1)
    ).sum()
    loss.backward()

    head_grads = head_gradients(
        logits.detach().permute(2, 0, 1), values.detach(), action_t, advantages, targets, config
    )
    grads = network.gradients(features, torso, head_grads)
    assert len(grads) == len(parameters)
    for grad, parameter in zip(grads, parameters, strict=True):
        assert parameter.grad is not None and parameter.grad.abs().max() > 0
        torch.testing.assert_close(grad, parameter.grad, rtol=1e-4, atol=1e-6)


def test_a2c_greedy_expert_episodes_take_the_most_likely_action() -> None:
    """``expert_greedy`` plays the frozen policy's most likely action: on Dark Room (no
    randomness in the env) two expert episodes are then the same, while sampled ones from
    a policy still near uniform after 30 episodes are not."""
    family = get_family("darkroom")
    tasks = family.split("train")[:4]

    def expert_actions(**hyperparameters: bool) -> list[NDArray[np.int64]]:
        batches = A2C(**hyperparameters).learn(family, tasks, 30, seed=0, expert_episodes=2)
        return [batch.actions for batch in batches if batch.expert]

    first, second = expert_actions(expert_greedy=True)
    assert np.array_equal(first, second)
    first, second = expert_actions()
    assert not np.array_equal(first, second)
