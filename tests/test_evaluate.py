"""The evaluation harness: reference policies, determinism, results files, leaderboards,
sharding, and the errors a submitter meets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_bandit_model

from adbench.errors import AdbenchError
from adbench.evaluation.benchmarks import get_benchmark
from adbench.evaluation.evaluate import benchmark_runs, evaluate
from adbench.evaluation.policies import ModelPolicy, RandomPolicy
from adbench.evaluation.results import read_results, read_runs, validate_results, write_results
from adbench.evaluation.rollout import Prompt, rollout
from adbench.leaderboards.board import load_board
from adbench.models import ADConfig, ADModel

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_oracle_scores_one_and_random_about_zero() -> None:
    bench = get_benchmark("darkroom")
    optimal = evaluate(bench, "optimal", episodes=5)
    assert optimal["score"]["iqm"] == pytest.approx(1.0)
    assert optimal["score"]["iqm_ci"] == pytest.approx([1.0, 1.0])
    random = evaluate(bench, "random", episodes=20)
    assert abs(random["score"]["mean"]) < 0.02
    lo, hi = random["score"]["metrics"]["auc"]["mean_ci"]
    assert lo - 0.01 <= 0.0 <= hi + 0.01


def test_ucb_scores_one_on_the_bandit_normalisation() -> None:
    results = evaluate(get_benchmark("bandit"), "source", episodes=4, seeds=2)
    assert results["score"]["mean"] == pytest.approx(1.0, abs=1e-9)
    for split in ("test-even", "test-uniform", "test-odd"):
        assert results["splits"][split]["metrics"]["auc"]["mean"] == pytest.approx(1.0, abs=1e-9)
    assert "cumulative_regret" in results["splits"]["test-even"]


def test_check_splits_are_played_and_reported_but_not_scored() -> None:
    bench = get_benchmark("darkroom")
    plain = evaluate(bench, "tiny", model=_tiny_ad(), episodes=3, seeds=1)
    checked = evaluate(bench, "tiny", model=_tiny_ad(), episodes=3, seeds=1, check_splits=["train"])
    train = checked["splits"]["train"]
    assert train["scored"] is False and checked["splits"]["test"]["scored"] is True
    assert train["num_runs"] == len(bench.family.split("train"))
    # The held-out runs and the score are those of the standard run, exactly.
    assert checked["score"] == plain["score"]
    assert checked["splits"]["test"] == plain["splits"]["test"]
    assert checked["references"] == plain["references"]
    assert checked["protocol"]["standard"] is False
    assert any("--check-splits train" in d for d in checked["protocol"]["deviations"])
    test_rows = checked["runs"]["split"] == "test"
    assert np.array_equal(checked["runs"]["returns"][test_rows], plain["runs"]["returns"])
    for bad, message in ((["trian"], "no such split"), (["test"], "plays it already")):
        with pytest.raises(AdbenchError, match=message):
            evaluate(bench, "random", episodes=1, check_splits=bad)


def test_cli_refuses_to_submit_a_run_with_check_splits(tmp_path: Path, cli_here) -> None:
    result = cli_here(
        "evaluate",
        "--model",
        "random",
        "--benchmark",
        "darkroom",
        "--check-splits",
        "train",
        "--submit",
        "--allow-dirty",
        "--leaderboards",
        str(tmp_path / "boards"),
        "--hub",
        str(tmp_path / "hub"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--check-splits train (reported, not scored)" in result.stderr
    assert not (tmp_path / "boards" / "darkroom").exists()


def _tiny_ad() -> ADModel:
    torch.manual_seed(0)
    config = ADConfig(
        attention_window=20,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        env_name="darkroom",
        env_id="adbench/DarkRoom-v0",
    )
    return ADModel(config).eval()


def test_same_seed_gives_identical_results_and_schema_holds(tmp_path: Path) -> None:
    bench = get_benchmark("darkroom")
    a = evaluate(bench, "tiny", model=_tiny_ad(), episodes=3, seeds=2, seed=7)
    b = evaluate(bench, "tiny", model=_tiny_ad(), episodes=3, seeds=2, seed=7)
    c = evaluate(bench, "tiny", model=_tiny_ad(), episodes=3, seeds=2, seed=8)
    for r in (a, b, c):
        r.pop("date")
        r.pop("wall_seconds")
    runs_a, runs_b = a.pop("runs"), b.pop("runs")
    assert a == b
    for key in ("split", "task_index", "seed", "returns"):
        np.testing.assert_array_equal(runs_a[key], runs_b[key])
    assert not np.array_equal(runs_a["returns"], c["runs"]["returns"])
    assert a["protocol"]["deviations"] == [
        "--episodes 3 (the benchmark's: 1000)",
        "--seeds 2 (the benchmark's: 5)",
        "--seed 7 (the benchmark's: 0)",
    ]
    a["date"], a["wall_seconds"] = "2026-01-01T00:00:00+00:00", 1.0
    path = write_results({**a, "runs": runs_a}, tmp_path / "r.json")
    assert read_results(path)["score"] == a["score"]
    stored = read_runs(path)
    np.testing.assert_array_equal(stored["returns"], runs_a["returns"])  # exactly
    assert stored["returns"].dtype == np.float32
    assert path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    broken = json.loads(path.read_text())
    broken["protocol"]["decoding"] = "beam"
    with pytest.raises(AdbenchError, match="protocol/decoding"):
        validate_results(broken)
    del broken["runs_file"]
    with pytest.raises(AdbenchError, match="'runs_file' is a required property"):
        validate_results(broken)


def test_runs_are_independent_of_their_batch_so_sharding_is_exact() -> None:
    bench = get_benchmark("darkroom")
    runs = benchmark_runs(bench, seeds=2, seed=0)
    family = bench.family
    full = rollout(ModelPolicy(_tiny_ad(), "tiny"), family, runs.tasks, runs.seeds, episodes=2)
    halves = [
        rollout(
            ModelPolicy(_tiny_ad(), "tiny"), family, runs.tasks[i::2], runs.seeds[i::2], episodes=2
        )
        for i in range(2)
    ]
    np.testing.assert_array_equal(full[0::2], halves[0])
    np.testing.assert_array_equal(full[1::2], halves[1])


def test_prompting_feeds_demonstrations_first() -> None:
    bench = get_benchmark("darkroom")
    runs = benchmark_runs(bench, seeds=1, seed=0)
    plain = rollout(RandomPolicy(), bench.family, runs.tasks, runs.seeds, episodes=2)
    prompted = rollout(
        RandomPolicy(),
        bench.family,
        runs.tasks,
        runs.seeds,
        episodes=2,
        prompt=Prompt(episodes=2, epsilon=0.0),
    )
    assert plain.shape == prompted.shape == (16, 2)
    assert not np.array_equal(plain, prompted)  # the demonstrations took steps first


def test_model_whose_spaces_do_not_fit_fails_before_rollout() -> None:
    model = _tiny_ad()  # a 9x9 grid model
    with pytest.raises(
        AdbenchError, match=r"does not fit adbench/DarkRoomHard-v0.*observation_high"
    ):
        evaluate(get_benchmark("darkroom-hard"), "tiny", model=model, episodes=1)
    with pytest.raises(AdbenchError, match="num_actions"):
        evaluate(get_benchmark("bandit"), "tiny", model=model, episodes=1)


def test_cli_unknown_model_says_where_it_looked_and_how_to_push(tmp_path: Path, cli_here) -> None:
    result = cli_here(
        "evaluate",
        "--model",
        "someone/missing-model",
        "--hub",
        str(tmp_path),
        "--endpoint",
        "http://127.0.0.1:9",
    )
    assert result.returncode == 2
    assert "someone/missing-model" in result.stderr and "adbench push" in result.stderr
    assert str(tmp_path) in result.stderr and "Traceback" not in result.stderr


def test_cli_evaluate_submit_show_round_trip(tmp_path: Path, cli_here) -> None:
    # Through the CLI's entry point in this process (a fresh process per command would
    # add seconds of imports each; test_packaging runs the CLI in fresh processes).
    bandit_model = tiny_bandit_model()
    model_dir = tmp_path / "m"
    bandit_model.save_pretrained(model_dir)
    boards = tmp_path / "boards"
    hub = tmp_path / "hub"
    pushed = cli_here("push", str(model_dir), "--repo", "me/tiny-ad", "--hub", str(hub))
    assert pushed.returncode == 0, pushed.stderr
    common = ("--benchmark", "bandit", "--hub", str(hub), "--leaderboards", str(boards))
    for model in ("random", "optimal", "me/tiny-ad"):  # the full protocol: ranked
        result = cli_here(
            "evaluate",
            "--model",
            model,
            *common,
            "--output",
            str(tmp_path / "results"),
            "--submit",
        )
        assert result.returncode == 0, result.stderr
    board = load_board(boards, "bandit")
    assert {e["model_id"] for e in board.entries} == {"random", "optimal", "me/tiny-ad"}
    entry = next(e for e in board.entries if e["model_id"] == "me/tiny-ad")
    results = read_results(boards / entry["results_file"])
    assert results["model"]["weights_sha256"] and len(results["model"]["revision"]) == 40
    assert results["protocol"]["standard"] and results["submission"]["id"] == entry["id"]
    shown = cli_here("leaderboard", "show", "bandit", "--leaderboards", str(boards))
    assert shown.returncode == 0
    assert shown.stdout.index("optimal") < shown.stdout.index("me/tiny-ad")
    assert "me/tiny-ad" in (boards / "README.md").read_text()
    verified = cli_here("leaderboard", "verify", "--leaderboards", str(boards), "--hub", str(hub))
    assert verified.returncode == 0, verified.stderr
    assert "3 entries verified" in verified.stdout and "checked" in verified.stdout

    # Non-standard runs are evaluated and saved, never ranked.
    before = sorted(p.name for p in (boards / "bandit").iterdir())
    for extra in (("--episodes", "2"), ("--greedy",), ("--prompt-episodes", "1"), ("--seed", "1")):
        refused = cli_here(
            "evaluate",
            "--model",
            "random",
            *common,
            *extra,
            "--output",
            str(tmp_path / "x"),
            "--submit",
        )
        assert refused.returncode == 2, refused.stderr
        assert "cannot submit to bandit v1.0" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    saved = cli_here(
        "evaluate", "--model", "random", *common, "--episodes", "2", "--output", str(tmp_path / "x")
    )
    assert saved.returncode == 0, saved.stderr
    (saved_file,) = (tmp_path / "x" / "bandit").glob("*.json")
    late = cli_here("leaderboard", "submit", str(saved_file), "--leaderboards", str(boards))
    assert late.returncode == 2 and "--episodes 2 (the benchmark's: 20)" in late.stderr
    assert sorted(p.name for p in (boards / "bandit").iterdir()) == before


def test_two_process_evaluation_gathers_the_same_results(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    _tiny_ad().save_pretrained(model_dir)
    common = [
        "evaluate",
        "--model",
        str(model_dir),
        "--benchmark",
        "darkroom",
        "--episodes",
        "2",
        "--seeds",
        "1",
        "--seed",
        "3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "adbench", *common, "--output", str(tmp_path / "one.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "adbench",
            *common,
            "--output",
            str(tmp_path / "two.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = read_results(tmp_path / "one.json"), read_results(tmp_path / "two.json")
    for key, values in read_runs(tmp_path / "one.json").items():
        np.testing.assert_array_equal(values, read_runs(tmp_path / "two.json")[key])
    assert a["score"] == b["score"]
    assert (a["settings"]["num_processes"], b["settings"]["num_processes"]) == (1, 2)
