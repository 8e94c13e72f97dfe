"""Train the example GRU policy by behaviour cloning on an adbench history dataset (a
recurrent Algorithm Distillation), and save it with its code, ready to push and score.

    python examples/gru_policy/train.py --dataset ad-bench/darkroom --output runs/gru-darkroom
    adbench push runs/gru-darkroom --repo me/gru-darkroom
    adbench evaluate --model me/gru-darkroom --trust-remote-code

Only ``adbench.load_dataset`` comes from adbench: the model is plain torch + transformers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `gru_policy` as a package

import adbench
from gru_policy.configuration_gru_policy import GRUPolicyConfig
from gru_policy.modeling_gru_policy import GRUPolicyModel


def histories(dataset_id: str, hub: str | None) -> list[dict[str, np.ndarray]]:
    """Each history's steps, with the previous action and reward beside each step."""
    data = adbench.load_dataset(dataset_id, split="train", hub=hub).with_format("numpy")
    columns = data[:]  # every row at once: {column: array}
    history_id = columns["history_id"]
    observations = np.stack(columns["observation"]).astype(np.int64)
    actions = columns["action"].astype(np.int64)
    rewards = columns["reward"].astype(np.float32)
    out = []
    for h in np.unique(history_id):
        rows = np.flatnonzero(history_id == h)
        prev_actions = np.concatenate([[-1], actions[rows][:-1]])
        prev_rewards = np.concatenate([[0.0], rewards[rows][:-1]]).astype(np.float32)
        out.append(
            {
                "observations": observations[rows],
                "prev_actions": prev_actions,
                "prev_rewards": prev_rewards,
                "actions": actions[rows],
            }
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ad-bench/darkroom")
    parser.add_argument("--hub", default=None, help="local hub directory (default: adbench's)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--window", type=int, default=160, help="steps per training window")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = histories(args.dataset, args.hub)
    family = adbench.get_family(args.dataset.split("/")[-1])
    config = GRUPolicyConfig(
        env_name=family.name,
        num_actions=family.num_actions,
        observation_shape=list(family.observation_space.shape),
        observation_high=[int(n) for n in family.observation_space.nvec],
        hidden_size=args.hidden_size,
    )
    model = GRUPolicyModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    for step in range(args.steps):
        batch = {key: [] for key in data[0]}
        for h in rng.integers(0, len(data), size=args.batch_size):
            start = rng.integers(0, len(data[h]["actions"]) - args.window + 1)
            for key in batch:
                batch[key].append(data[h][key][start : start + args.window])
        tensors = {key: torch.from_numpy(np.stack(value)) for key, value in batch.items()}
        loss = model(
            tensors["observations"],
            tensors["prev_actions"],
            tensors["prev_rewards"],
            labels=tensors["actions"],
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.4f}", flush=True)
    # Registered for the auto classes, save_pretrained copies the two code files beside the
    # weights and writes auto_map: the model then loads with trust_remote_code anywhere.
    GRUPolicyConfig.register_for_auto_class()
    GRUPolicyModel.register_for_auto_class("AutoModel")
    model.save_pretrained(args.output)
    print(f"saved to {args.output}")


if __name__ == "__main__":
    main()
