"""What a Watermaze AD model reads from its context, measured on the dataset's windows.

    python diagnostics/watermaze_ad.py ad-bench/ad-watermaze-seed1

Two measurements (docs/results.md, Watermaze), both on the model's imitation loss, with
the model in evaluation mode on one thread:

1. Inputs: the loss on random 100-step windows with the real inputs, with the frames
   shuffled across all the windows' steps, and with every reward input set to 0.
2. The previous episode: on two-episode windows (kept episodes k and k + 1 of one history,
   episode k rewarded, both from their first step), the loss on episode k + 1's actions
   after its own episode k and after episode k of another history, the same point of
   learning. A model that uses where the platform paid scores better after its own.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from adbench.envs import get_family
from adbench.histories.loading import dataset_dir, read_metadata
from adbench.histories.reader import HistoryArrays, WindowSampler
from adbench.models import ADModel
from adbench.models.loading import load_model
from adbench.training.train_ad import batch_tensors


def input_losses(
    model: ADModel, arrays: HistoryArrays, batches: int, seed: int
) -> dict[str, float]:
    sampler = WindowSampler(arrays, model.config.attention_window, 16, seed=seed)
    rng = np.random.default_rng(seed)
    losses: dict[str, list[float]] = {"real": [], "frames shuffled": [], "rewards zeroed": []}
    for _ in range(batches):
        inputs = batch_tensors(sampler.sample(), torch.device("cpu"))
        losses["real"].append(model(**inputs).loss.item())
        frames = inputs["observations"]
        flat = frames.reshape(-1, *frames.shape[2:])
        order = torch.from_numpy(rng.permutation(len(flat)))
        shuffled = {**inputs, "observations": flat[order].reshape(frames.shape)}
        losses["frames shuffled"].append(model(**shuffled).loss.item())
        zeroed = {**inputs, "prev_rewards": torch.zeros_like(inputs["prev_rewards"])}
        losses["rewards zeroed"].append(model(**zeroed).loss.item())
    return {name: float(np.mean(values)) for name, values in losses.items()}


def second_episode_loss(
    model: ADModel, arrays: HistoryArrays, first: NDArray[np.int64], second: NDArray[np.int64]
) -> float:
    rows = np.concatenate([first, second])
    prev_actions = np.concatenate([[-1], arrays.actions[rows][:-1]]).astype(np.int64)
    prev_rewards = np.concatenate([[0.0], arrays.rewards[rows][:-1]]).astype(np.float32)
    logits = model(
        observations=torch.from_numpy(arrays.observations[rows][None]),
        prev_actions=torch.from_numpy(prev_actions[None]),
        prev_rewards=torch.from_numpy(prev_rewards[None]),
        new_episode=torch.from_numpy((arrays.step[rows] == 0)[None]),
    ).logits[0, len(first) :]
    targets = torch.from_numpy(arrays.actions[second].astype(np.int64))
    return F.cross_entropy(logits, targets).item()


def previous_episode_losses(
    model: ADModel, arrays: HistoryArrays, episode_length: int, samples: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    histories = arrays.num_histories
    kept = int(arrays.lengths.min()) // episode_length
    own, other = [], []
    for _ in range(samples):
        history, k = int(rng.integers(histories)), int(rng.integers(kept - 1))
        first = arrays.offsets[history] + k * episode_length + np.arange(episode_length)
        if arrays.rewards[first].sum() == 0:
            continue  # the first episode must show where the platform is
        stranger = int(rng.integers(histories - 1))
        stranger += stranger >= history
        strangers_first = arrays.offsets[stranger] + k * episode_length + np.arange(episode_length)
        second = first + episode_length
        own.append(second_episode_loss(model, arrays, first, second))
        other.append(second_episode_loss(model, arrays, strangers_first, second))
    return np.array(own), np.array(other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="Watermaze AD model: hub id or directory")
    parser.add_argument("--dataset", default="ad-bench/watermaze")
    parser.add_argument("--batches", type=int, default=20, help="batches of 16 windows")
    parser.add_argument("--samples", type=int, default=300, help="two-episode windows drawn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model)
    if not isinstance(model, ADModel) or model.config.observation_type != "image":
        parser.error(f"{args.model} is not an AD model of a pixel environment")
    repo = dataset_dir(args.dataset)
    family = get_family(read_metadata(repo)["env"]["name"])
    arrays = HistoryArrays.from_repo(repo, config="default")
    with torch.no_grad():
        for name, loss in input_losses(model, arrays, args.batches, args.seed).items():
            print(f"loss, {name}: {loss:.4f}")
        own, other = previous_episode_losses(
            model, arrays, family.episode_length, args.samples, args.seed
        )
    gap = other - own
    print(
        f"second episode of {len(own)} windows: loss {own.mean():.4f} after its own first "
        f"episode, {other.mean():.4f} after another history's "
        f"(difference {gap.mean():.4f} +- {1.96 * gap.std() / np.sqrt(len(gap)):.4f})"
    )


if __name__ == "__main__":
    main()
