"""Wall time of the full darkroom protocol (16 held-out goals x 5 seeds x 1000 in-context
episodes = 1.6M environment steps) for the darkroom recipe's AD, against the same
protocol for the uniform random policy (the harness's own overhead) in the same run.

Usage::

    python perf/evaluate.py [--model DIR_OR_ID] [--episodes 1000]

Without ``--model``, an untrained model of the recipe's architecture is timed (the time
does not depend on the weights).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _no_shadow  # noqa: F401  (before any third-party import: see its docstring)
import torch
import yaml
from rich.console import Console

from adbench.evaluation.benchmarks import get_benchmark
from adbench.evaluation.evaluate import evaluate
from adbench.models import ADConfig, ADModel
from adbench.models.loading import load_model

RECIPE = Path(__file__).resolve().parents[1] / "baselines" / "ad-darkroom.yaml"


def recipe_model() -> ADModel:
    recipe = yaml.safe_load(RECIPE.read_text())
    torch.manual_seed(0)
    return ADModel(
        ADConfig(
            attention_window=recipe["attention_window"],
            max_train_steps=recipe["context_steps"],
            hidden_size=recipe["hidden_size"],
            num_hidden_layers=recipe["num_hidden_layers"],
            num_attention_heads=recipe["num_attention_heads"],
            intermediate_size=recipe["intermediate_size"],
            env_name="darkroom",
        )
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory or hub id (default: untrained recipe AD)")
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    model = load_model(args.model) if args.model else recipe_model()
    bench = get_benchmark("darkroom")
    start = time.perf_counter()
    evaluate(bench, "random", episodes=args.episodes)
    random_seconds = time.perf_counter() - start
    start = time.perf_counter()
    results = evaluate(bench, args.model or "recipe-ad", model=model, episodes=args.episodes)
    seconds = time.perf_counter() - start
    steps = 16 * 5 * args.episodes * bench.family.episode_length
    console = Console(width=120)
    console.print(
        f"darkroom protocol, 16 goals x 5 seeds x {args.episodes} episodes = "
        f"{steps:,} env steps, torch threads {torch.get_num_threads()}"
    )
    console.print(
        f"  AD (window {model.config.attention_window}, {model.config.num_hidden_layers} "
        f"layers): {seconds:.1f} s ({steps / seconds:,.0f} env steps/s), target <= 120 s"
    )
    console.print(f"  uniform random policy (harness overhead): {random_seconds:.1f} s")
    console.print(f"  AD score IQM {results['score']['iqm']:.3f}")


if __name__ == "__main__":
    main()
