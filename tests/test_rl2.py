"""The RL^2 baseline: the model (shapes, stepping, saving, remote code) and its PPO trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from adbench.envs import get_family
from adbench.errors import AdbenchError
from adbench.models.configuration_rl2 import RL2Config
from adbench.models.modeling_rl2 import RL2Model
from adbench.training.train_rl2 import RL2Args, VisitBonus, rl2_config, train_rl2
from adbench.validation import build_args


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    # Small recurrent nets run fastest on one thread, and much slower when other jobs
    # share the cores.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small_config(kind: str = "discrete", rnn_type: str = "gru") -> RL2Config:
    observation = {
        "none": {"observation_type": "none"},
        "discrete": {
            "observation_type": "discrete",
            "observation_shape": [2],
            "observation_high": [9, 9],
        },
        "image": {
            "observation_type": "image",
            "observation_shape": [12, 16, 3],
            "image_channels": [4, 8],
        },
    }[kind]
    return RL2Config(**observation, num_actions=5, hidden_size=32, rnn_type=rnn_type)


def random_inputs(config: RL2Config, batch: int, steps: int, seed: int) -> dict[str, torch.Tensor]:
    """A batch of trials: episodes of 5 steps, no previous action at the trial start."""
    g = torch.Generator().manual_seed(seed)
    if config.observation_type == "image":
        observations = torch.randint(
            0, 256, (batch, steps, *config.observation_shape), generator=g, dtype=torch.uint8
        )
    elif config.observation_type == "discrete":
        observations = torch.randint(0, 9, (batch, steps, 2), generator=g)
    else:
        observations = torch.zeros(batch, steps, dtype=torch.long)
    prev_actions = torch.randint(0, config.num_actions, (batch, steps), generator=g)
    prev_actions[:, 0] = -1
    prev_rewards = torch.rand(batch, steps, generator=g)
    prev_rewards[:, 0] = 0.0
    new_episode = (torch.arange(steps) % 5 == 0).expand(batch, steps).clone()
    return {
        "observations": observations,
        "prev_actions": prev_actions,
        "prev_rewards": prev_rewards,
        "new_episode": new_episode,
    }


# --- the model ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "rnn_type"), [("none", "gru"), ("discrete", "lstm"), ("image", "gru")]
)
def test_act_logits_step_by_step_equals_forward(kind: str, rnn_type: str) -> None:
    config = small_config(kind, rnn_type)
    torch.manual_seed(0)
    model = RL2Model(config).eval()
    inputs = random_inputs(config, batch=3, steps=12, seed=1)
    output = model(**inputs)
    assert output.logits.shape == (3, 12, 5)
    assert output.values.shape == (3, 12)

    context = model.new_context(3)
    stepped = []
    for t in range(12):
        logits, context = model.act_logits(context, *(v[:, t] for v in inputs.values()))
        stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, 1), output.logits, atol=1e-5, rtol=1e-5)

    # The state carries across episodes: restarting it at the second episode changes the
    # outputs (the values: the fresh policy head is near zero), so the model remembers.
    restarted = model(**{k: v[:, 5:] for k, v in inputs.items()})
    assert not torch.allclose(restarted.values, output.values[:, 5:], atol=1e-3)


def test_forward_continues_from_a_state() -> None:
    config = small_config("discrete", "lstm")
    model = RL2Model(config).eval()
    inputs = random_inputs(config, batch=2, steps=10, seed=2)
    whole = model(**inputs)
    first = model(**{k: v[:, :4] for k, v in inputs.items()})
    rest = model(**{k: v[:, 4:] for k, v in inputs.items()}, state=first.state)
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), whole.logits)
    logits, values, state = model(**inputs, return_dict=False)
    torch.testing.assert_close(logits, whole.logits)
    torch.testing.assert_close(values, whole.values)
    torch.testing.assert_close(state, rest.state)


def test_initial_policy_is_near_uniform() -> None:
    model = RL2Model(small_config()).eval()
    probs = model(**random_inputs(model.config, 2, 6, seed=3)).logits.softmax(-1)
    assert (probs - 0.2).abs().max() < 0.05


def test_reward_init_std_sets_the_reward_inputs_scale() -> None:
    # The reward's projection is a [hidden, 1] column: orthogonal, it has unit norm (each
    # entry ~1/sqrt(hidden)); with reward_init_std its entries have that std, like an
    # embedding row's.
    torch.manual_seed(0)
    default = RL2Model(small_config()).encoder.reward_projection.weight
    assert torch.linalg.vector_norm(default).item() == pytest.approx(1.0, abs=1e-5)
    config = small_config()
    config.reward_init_std = 1.0
    torch.manual_seed(0)
    model = RL2Model(config)
    weight = model.encoder.reward_projection.weight
    assert 0.7 < weight.std().item() < 1.3
    assert torch.count_nonzero(model.encoder.reward_projection.bias) == 0
    # A reward of 1 now moves the step's embedding as much as changing an action does.
    inputs = random_inputs(config, 1, 2, seed=0)
    inputs["prev_rewards"] = torch.tensor([[0.0, 1.0]])
    inputs["prev_actions"] = torch.tensor([[2, 2]])
    inputs["new_episode"] = torch.tensor([[False, False]])
    inputs["observations"] = torch.tensor([[[4, 4], [4, 4]]])
    with torch.no_grad():
        embedded = model.encoder(**inputs)
    assert torch.linalg.vector_norm(embedded[0, 1] - embedded[0, 0]) > 0.5 * 32**0.5
    with pytest.raises(ValueError, match="reward_init_std"):
        RL2Config(reward_init_std=0.0)


REMOTE_LOAD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    import transformers

    for name in ("discrete-gru", "image-lstm"):
        model = transformers.AutoModel.from_pretrained(name, trust_remote_code=True).eval()
        inputs = np.load(name + "-inputs.npz")
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(inputs[k]) for k in inputs.files})
        np.save(name + "-remote-logits.npy", out.logits.numpy())
        np.save(name + "-remote-values.npy", out.values.numpy())
        print(type(model).__module__)
    loaded = sorted(m for m in sys.modules if m == "adbench" or m.startswith("adbench."))
    assert not loaded, loaded
    """
)


def test_save_load_and_remote_code_give_identical_outputs(tmp_path: Path) -> None:
    expected: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, kind, rnn_type in (
        ("discrete-gru", "discrete", "gru"),
        ("image-lstm", "image", "lstm"),
    ):
        torch.manual_seed(4)
        model = RL2Model(small_config(kind, rnn_type)).eval()
        inputs = random_inputs(model.config, batch=2, steps=7, seed=5)
        with torch.no_grad():
            out = model(**inputs)
        model.save_pretrained(tmp_path / name)

        files = sorted(p.name for p in (tmp_path / name).iterdir())
        assert "model.safetensors" in files
        assert not any(f.endswith(".bin") for f in files)
        # The code travels with the weights, the relative import's target included.
        for code in ("configuration_rl2.py", "modeling_rl2.py", "observation_encoding.py"):
            assert code in files
        saved_config = json.loads((tmp_path / name / "config.json").read_text())
        assert saved_config["model_type"] == "adbench_rl2"
        assert saved_config["auto_map"] == {
            "AutoConfig": "configuration_rl2.RL2Config",
            "AutoModel": "modeling_rl2.RL2Model",
        }

        reloaded = RL2Model.from_pretrained(tmp_path / name).eval()
        with torch.no_grad():
            again = reloaded(**inputs)
        assert torch.equal(again.logits, out.logits)
        assert torch.equal(again.values, out.values)

        np.savez(tmp_path / f"{name}-inputs.npz", **{k: v.numpy() for k, v in inputs.items()})
        expected[name] = (out.logits.numpy(), out.values.numpy())

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "transformers_modules" in result.stdout  # the model class came from the saved code
    for name, (logits, values) in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}-remote-logits.npy"), logits)
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}-remote-values.npy"), values)


@pytest.mark.parametrize(
    "bad",
    [
        {"observation_type": "pixels"},
        {"rnn_type": "transformer"},
        {"hidden_size": 0},
        {"num_actions": -1},
        {"num_rnn_layers": 0},
        {"dropout": 1.5},
        {"observation_type": "discrete", "observation_shape": [2], "observation_high": []},
        {"observation_type": "discrete", "observation_shape": [2], "observation_high": [9]},
        {"observation_type": "image", "observation_shape": [72, 96]},
        {"episodes_per_trial": 0},
    ],
)
def test_bad_config_values_raise(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RL2Config(**bad)


def test_config_from_each_family() -> None:
    args = RL2Args(hidden_size=16)
    bandit = rl2_config(get_family("bandit"), args)
    assert (bandit.observation_type, bandit.num_actions) == ("none", 10)
    darkroom = rl2_config(get_family("darkroom"), args)
    assert darkroom.observation_type == "discrete"
    assert darkroom.observation_high == [9, 9]
    assert darkroom.episode_length == 20
    watermaze = rl2_config(get_family("watermaze"), args)
    assert watermaze.observation_type == "image"
    assert watermaze.observation_shape == [72, 96, 3]


# --- the trainer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"num_envs": 0},
        {"num_envs": 6, "num_minibatches": 4},
        {"gamma": 1.5},
        {"rnn_type": "rnn"},
        {"learning_rate": 0.0},
        {"max_tasks": 0},
    ],
)
def test_bad_args_raise(bad: dict[str, Any]) -> None:
    with pytest.raises(AdbenchError):
        build_args(RL2Args, [("the test", bad)])


def test_rl2_learns_on_a_tiny_task_set(tmp_path: Path) -> None:
    # One bandit task, two episodes per trial: PPO must find and exploit the best arm.
    args = RL2Args(
        env="bandit",
        max_tasks=1,
        num_envs=16,
        episodes_per_trial=2,
        num_minibatches=2,
        total_updates=20,
        hidden_size=32,
        seed=0,
    )
    records: list[dict[str, Any]] = []
    model = train_rl2(args, tmp_path / "rl2", on_update=records.append)

    assert [r["update"] for r in records] == list(range(1, 21))
    assert records[-1]["env_steps"] == 20 * 16 * 2 * 100
    first = np.mean(records[0]["mean_return_per_episode"])
    late = np.mean([np.mean(r["mean_return_per_episode"]) for r in records[-5:]])
    random_return = records[0]["mean_random_return"]
    optimal_return = records[0]["mean_optimal_return"]
    # At the start the policy is uniform: about the random return.
    assert abs(first - random_return) < 8
    # After 64k pulls it has closed most of the gap to the best arm (~73 of 80 here).
    assert late > random_return + 0.5 * (optimal_return - random_return), (first, late)

    files = sorted(p.name for p in (tmp_path / "rl2").iterdir())
    assert "model.safetensors" in files
    assert not any(f.endswith(".bin") for f in files)
    log = json.loads((tmp_path / "rl2" / "training_log.json").read_text())
    assert log["args"]["max_tasks"] == 1
    assert log["updates"] == records
    assert isinstance(model, RL2Model)
    assert model.config.env_name == "bandit"
    assert model.config.episodes_per_trial == 2


def test_reward_scale_scales_the_returns_not_the_rewards(tmp_path: Path) -> None:
    # The value head is fitted to discounted returns of rewards x reward_scale (bandit:
    # ~0.5 a pull, ~40 discounted); the rewards logged and fed to the policy stay raw.
    records: dict[float, dict[str, Any]] = {}
    for scale in (1.0, 0.05):
        args = RL2Args(
            env="bandit",
            num_envs=8,
            num_minibatches=2,
            ppo_epochs=1,
            episodes_per_trial=1,
            total_updates=1,
            hidden_size=16,
            reward_scale=scale,
            seed=5,
        )
        logged: list[dict[str, Any]] = []
        train_rl2(args, tmp_path / str(scale), on_update=logged.append)
        records[scale] = logged[0]
    raw, scaled = records[1.0], records[0.05]
    # The same first rollout (the same seed, nothing learned yet), logged unscaled.
    assert raw["mean_return_per_episode"] == scaled["mean_return_per_episode"]
    assert raw["mean_return_per_episode"][0] > 20
    assert raw["value_loss"] > 50 * scaled["value_loss"], (raw["value_loss"], scaled["value_loss"])


def test_training_is_deterministic(tmp_path: Path) -> None:
    args = RL2Args(
        env="darkroom",
        num_envs=8,
        num_minibatches=2,
        ppo_epochs=2,
        episodes_per_trial=2,
        total_updates=2,
        hidden_size=16,
        rnn_type="lstm",
        seed=3,
    )
    runs = []
    for name in ("a", "b"):
        records: list[dict[str, Any]] = []
        model = train_rl2(args, tmp_path / name, on_update=records.append)
        timing = ("steps_per_second", "elapsed_seconds")
        runs.append(
            ([{k: v for k, v in r.items() if k not in timing} for r in records], model.state_dict())
        )
    (log_a, state_a), (log_b, state_b) = runs
    assert log_a == log_b
    assert len(log_a[0]["mean_return_per_episode"]) == 2
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    other = train_rl2(RL2Args(**{**vars(args), "seed": 4}), tmp_path / "c")
    assert not all(torch.equal(state_a[k], v) for k, v in other.state_dict().items())


@pytest.mark.parametrize(
    ("episodes_per_trial", "segment_episodes", "stop", "anneal_lr", "visit_bonus"),
    # whole trials; segments, stopped inside a trial, with the step size decaying and the
    # trial's visited cells to carry over
    [(2, None, 2, False, 0.0), (4, 2, 3, True, 0.1)],
)
def test_a_stopped_run_resumes_exactly(
    tmp_path: Path,
    episodes_per_trial: int,
    segment_episodes: int | None,
    stop: int,
    anneal_lr: bool,
    visit_bonus: float,
) -> None:
    # Key-to-door: its envs draw random start cells, so the envs' stream is part of the state.
    args = RL2Args(
        env="key-to-door",
        max_tasks=6,
        num_envs=4,
        num_minibatches=2,
        ppo_epochs=1,
        episodes_per_trial=episodes_per_trial,
        segment_episodes=segment_episodes,
        total_updates=5,
        hidden_size=16,
        rnn_type="lstm" if segment_episodes else "gru",
        seed=2,
        learning_rate=1e-3,
        anneal_lr=anneal_lr,
        visit_bonus=visit_bonus,
    )
    timing = ("steps_per_second", "elapsed_seconds")

    def log_of(path: Path) -> list[dict[str, Any]]:
        updates = json.loads((path / "training_log.json").read_text())["updates"]
        return [{k: v for k, v in u.items() if k not in timing} for u in updates]

    straight = train_rl2(args, tmp_path / "straight")
    with pytest.raises(AdbenchError, match=f"stopped after update {stop}"):
        train_rl2(args, tmp_path / "resumed", stop_after=stop)
    assert (tmp_path / "resumed" / "checkpoints" / f"step-{stop:08d}" / "done").exists()
    with pytest.raises(AdbenchError, match="other arguments"):
        train_rl2(RL2Args(**{**vars(args), "seed": 3}), tmp_path / "resumed")
    resumed = train_rl2(args, tmp_path / "resumed")
    assert (
        json.loads((tmp_path / "resumed" / "training_log.json").read_text())["resumed_from_update"]
        == stop
    )
    assert log_of(tmp_path / "straight") == log_of(tmp_path / "resumed")
    # 1e-3 throughout, or from 1e-3 down by a fifth of it per update (5 updates).
    expected = [1e-3 * (1 - i / 5) if anneal_lr else 1e-3 for i in range(5)]
    assert [u["learning_rate"] for u in log_of(tmp_path / "resumed")] == pytest.approx(expected)
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "resumed" / "checkpoints").exists()  # a finished run keeps its model


def test_segments_carry_the_trial_and_a_whole_trial_segment_changes_nothing(
    tmp_path: Path,
) -> None:
    base = dict(
        env="darkroom", max_tasks=4, num_envs=4, num_minibatches=2, ppo_epochs=1,
        episodes_per_trial=4, total_updates=4, hidden_size=16, seed=5,
    )  # fmt: skip
    whole = train_rl2(RL2Args(**base), tmp_path / "whole")
    same = train_rl2(RL2Args(**base, segment_episodes=4), tmp_path / "same")
    a, b = whole.state_dict(), same.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    train_rl2(RL2Args(**base, segment_episodes=1), tmp_path / "segments")
    updates = json.loads((tmp_path / "segments" / "training_log.json").read_text())["updates"]
    # Four updates of one episode each: one trial of four episodes, then the next begins.
    assert [u["trial_episodes"] for u in updates] == [[1, 1], [2, 2], [3, 3], [4, 4]]
    assert all(len(u["mean_return_per_episode"]) == 1 for u in updates)
    with pytest.raises(AdbenchError, match="must divide episodes_per_trial"):
        build_args(RL2Args, [("the test", {**base, "segment_episodes": 3})])


def test_init_from_starts_a_run_from_a_published_models_weights(tmp_path: Path) -> None:
    import hashlib

    from adbench.models.publishing import publish_model
    from adbench.training.train_rl2 import load_initial_weights

    args = RL2Args(
        env="darkroom",
        num_envs=4,
        num_minibatches=2,
        ppo_epochs=1,
        episodes_per_trial=2,
        total_updates=2,
        hidden_size=16,
        seed=1,
    )
    first = train_rl2(args, tmp_path / "first")
    hub = tmp_path / "hub"
    publish_model(tmp_path / "first", "me/rl2-first", hub=hub)

    # The weights loaded are the published ones exactly, whatever the fresh model's seed.
    second_args = RL2Args(
        **{
            **vars(args),
            "seed": 5,
            "entropy_coef": 0.0,
            "init_from": "me/rl2-first",
            "hub": str(hub),
            "total_updates": 1,
        }
    )
    fresh = RL2Model(rl2_config(get_family("darkroom"), second_args))
    identity = load_initial_weights(fresh, second_args)
    assert all(torch.equal(v, first.state_dict()[k]) for k, v in fresh.state_dict().items())
    weights = (tmp_path / "first" / "model.safetensors").read_bytes()
    assert identity["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert identity["revision"] is not None and len(identity["revision"]) == 40

    # A second stage records where it started; its card names the base model.
    train_rl2(second_args, tmp_path / "second")
    log = json.loads((tmp_path / "second" / "training_log.json").read_text())
    assert log["initial_weights"] == identity
    card = (tmp_path / "second" / "README.md").read_text()
    assert "base_model: me/rl2-first" in card
    assert identity["weights_sha256"] in card
    # Without init_from the run starts from its own initialisation, and says so.
    first_log = json.loads((tmp_path / "first" / "training_log.json").read_text())
    assert first_log["initial_weights"] is None

    # Another architecture is refused, naming what differs.
    wider = RL2Args(**{**vars(second_args), "hidden_size": 32})
    with pytest.raises(AdbenchError, match="hidden_size: 16 there, 32 here"):
        train_rl2(wider, tmp_path / "wider")
    with pytest.raises(AdbenchError, match="does not exist"):
        train_rl2(RL2Args(**{**vars(second_args), "init_from": "./nowhere"}), tmp_path / "x")


def test_cli_init_from_a_model_that_is_nowhere_fails_before_any_work(
    tmp_path: Path, cli_here, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no remote hub either
    result = cli_here(
        "train",
        "rl2",
        "--recipe",
        "rl2-darkroom",
        "--set",
        "init_from=me/missing",
        "--hub",
        str(tmp_path / "hub"),
        "--output",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "me/missing" in result.stderr and "not found" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_visit_bonus_pays_each_cell_once_per_trial() -> None:
    bonus = VisitBonus(0.5, [9, 9], torch.device("cpu"))
    start = torch.tensor([[4, 4], [0, 8]])
    visited = bonus.start(start)
    assert visited.sum(1).tolist() == [1, 1]
    assert visited[0, 4 * 9 + 4] and visited[1, 0 * 9 + 8]
    # env 0 moves to a new cell, env 1 stays where it started (not paid: already seen)
    visited, paid = bonus.pay(visited, torch.tensor([[5, 4], [0, 8]]))
    assert paid.tolist() == [0.5, 0.0]
    visited, paid = bonus.pay(visited, torch.tensor([[4, 4], [1, 8]]))
    assert paid.tolist() == [0.0, 0.5]  # env 0 back at its start: seen
    assert visited.sum(1).tolist() == [2, 2]


def test_the_visit_bonus_shapes_the_returns_only_and_resets_with_the_trial(
    tmp_path: Path,
) -> None:
    base = dict(
        env="darkroom",
        num_envs=8,
        num_minibatches=2,
        ppo_epochs=1,
        episodes_per_trial=4,
        segment_episodes=2,
        total_updates=4,
        hidden_size=16,
        seed=5,
    )
    logs: dict[float, list[dict[str, Any]]] = {}
    for value in (0.0, 0.1):
        logs[value] = []
        train_rl2(
            RL2Args(**base, visit_bonus=value), tmp_path / str(value), on_update=logs[value].append
        )
    plain, shaped = logs[0.0], logs[0.1]
    # The first rollout is the same (nothing learned yet) and logged with the env's rewards.
    assert plain[0]["mean_return_per_episode"] == shaped[0]["mean_return_per_episode"]
    assert "mean_segment_bonus" not in plain[0]
    # A uniform policy in a 9x9 room reaches a handful of new cells an episode: paid 0.1
    # each, fewer in a trial's second segment (its first already saw the cells near the
    # start), and as many again once a new trial starts (update 3).
    first, second, new_trial = (r["mean_segment_bonus"] for r in shaped[:3])
    assert 0.3 < first < 2.0, first
    assert second < first
    assert new_trial > second
    # The bonus enters the returns: the value loss of the first update differs.
    assert plain[0]["value_loss"] != shaped[0]["value_loss"]


def test_the_visit_bonus_needs_a_grids_observations(tmp_path: Path) -> None:
    args = RL2Args(env="bandit", num_envs=4, num_minibatches=2, total_updates=1, visit_bonus=0.1)
    with pytest.raises(AdbenchError, match="visit_bonus needs discrete observations"):
        train_rl2(args, tmp_path / "bandit")
