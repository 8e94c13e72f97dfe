"""What the trainers share: an Accelerator that also runs on CPUs, and model cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from adbench.distributed import force_cpu_backend
from adbench.errors import AdbenchError
from adbench.fileio import atomic_write_json, atomic_write_text
from adbench.provenance import provenance
from adbench.validation import parse_key_values, read_mapping_file

CHECKPOINT_DIR = "checkpoints"

Layer = tuple[str, dict[str, Any]]
"""Where some argument values came from, and the values."""


def argument_layers(
    method: str, recipe: str | None, overrides: list[str] | None, options: dict[str, Any]
) -> list[Layer]:
    """The layers of a training run's arguments, later ones winning: the recipe (a YAML
    file, or a baseline recipe's name), ``--set KEY=VALUE`` pairs, then the command's own
    options (``None`` ones left out). A recipe for another method is refused."""
    from adbench.resources import recipe_path

    layers: list[Layer] = []
    if recipe is not None:
        path = recipe_path(recipe)
        values = read_mapping_file(path, "recipe")
        recipe_method = values.pop("method", method)
        if recipe_method != method:
            raise AdbenchError(
                f"{path} is a {recipe_method} recipe: use `adbench train {recipe_method}`"
            )
        layers.append((f"recipe {path}", values))
    overridden = parse_key_values(overrides, "--set")
    if "method" in overridden:
        raise AdbenchError(
            f"--set method={overridden['method']} cannot change the method: it is the command's "
            f"(`adbench train {method}`)"
        )
    layers.append(("--set", overridden))
    layers.append(("the options", {k: v for k, v in options.items() if v is not None}))
    return layers


def make_accelerator(gradient_accumulation_steps: int = 1, mixed_precision: str = "no") -> Any:
    """An Accelerator that also runs data-parallel on CPUs (see :mod:`adbench.distributed`)."""
    from accelerate import Accelerator

    return Accelerator(
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision=mixed_precision,
        cpu=force_cpu_backend(),
    )


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint in ``output_dir/checkpoints`` (one with its marker)."""
    checkpoints = sorted((Path(output_dir) / CHECKPOINT_DIR).glob("step-*"))
    complete = [c for c in checkpoints if (c / "done").exists()]
    return complete[-1] if complete else None


def save_checkpoint(accelerator: Any, output_dir: Path, step: int, args: dict[str, Any]) -> None:
    """``accelerator.save_state`` into ``checkpoints/step-N`` with the run's arguments; a
    ``done`` marker written last makes a checkpoint count only once it is complete."""
    path = Path(output_dir) / CHECKPOINT_DIR / f"step-{step:08d}"
    accelerator.save_state(str(path), safe_serialization=True)
    if accelerator.is_main_process:
        atomic_write_json(path / "args.json", args)
        (path / "done").write_text("complete\n")
    accelerator.wait_for_everyone()


def resume_point(accelerator: Any, output_dir: Path, args: dict[str, Any]) -> int:
    """Load the newest checkpoint of ``output_dir`` into ``accelerator`` (and every object
    registered for checkpointing) and return its step; 0 when there is none. A checkpoint
    of a run with other arguments is refused."""
    checkpoint = latest_checkpoint(output_dir)
    if checkpoint is None:
        return 0
    saved = json.loads((checkpoint / "args.json").read_text())
    if saved != args:
        raise AdbenchError(
            f"{output_dir} holds a checkpoint of a run with other arguments: use another "
            "--output, or delete its checkpoints/ to start over"
        )
    accelerator.load_state(str(checkpoint))
    return int(checkpoint.name.split("-")[1])


def _loss_plot(log: dict[str, Any], path: Path) -> bool:
    """The training curve: AD/ED's loss per optimiser step, or RL^2's trial return per update."""
    if log.get("updates"):
        x = [u["update"] for u in log["updates"]]
        y = [u["mean_trial_return"] for u in log["updates"]]
        xlabel, ylabel, title = "PPO update", "mean trial return", "training return"
    else:
        steps = [s for s in log.get("steps", []) if "loss" in s]
        x, y = [s["step"] for s in steps], [s["loss"] for s in steps]
        xlabel, ylabel, title = "optimiser step", "action NLL", "training loss"
    if len(x) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(x, y)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return True


def write_model_card(
    output_dir: Path,
    config: Any,
    args: dict[str, Any],
    log: dict[str, Any],
    command: str,
    dataset_metadata: dict[str, Any] | None,
) -> None:
    """README.md of a model directory: what it is, how to load it, the data it was trained
    on (id and revision), every hyperparameter, the exact command and the compute used."""
    method = {"ad": "Algorithm Distillation (AD)", "ed": "Expert Distillation (ED)", "rl2": "RL^2"}[
        getattr(config, "method", "rl2")
    ]
    method_key = getattr(config, "method", "rl2")
    has_plot = _loss_plot(log, Path(output_dir) / "training_curve.png")
    dataset_id = getattr(config, "dataset_id", None)
    initial = log.get("initial_weights")
    # The card's base_model is a hub id; a directory stays in the text only.
    base_model = initial["id"] if initial and not Path(initial["id"]).is_dir() else None
    tags = ["adbench", "in-context-reinforcement-learning", method_key, config.env_name]
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        pipeline_tag="reinforcement-learning",
        tags=tags,
        datasets=[dataset_id] if dataset_id else None,
        base_model=base_model,
    )
    data_line = (
        f"`{dataset_id}` (config `{config.dataset_config}`, revision `{config.dataset_revision}`)"
        if dataset_id
        else "online interaction (no dataset)"
    )
    if dataset_metadata:
        data_line += f", built with `{dataset_metadata['build_command']}`"
    if initial:
        data_line += (
            f", starting from the weights of `{initial['id']}` (revision "
            f"`{initial['revision']}`, model.safetensors sha256 `{initial['weights_sha256']}`)"
        )
    hyper = "\n".join(f"| {k} | {json.dumps(v)} |" for k, v in sorted(args.items()))
    compute = "\n".join(f"| {k} | {v} |" for k, v in log.get("compute", {}).items())
    prov = provenance()
    about = {
        "ad": "It learns in context: with frozen weights and a context that starts empty, "
        "its returns rise over the episodes of a new task.",
        "ed": "ED is AD's architecture trained on post-learning (expert) episodes only: the "
        "paper's control showing that learning histories, not demonstrations, make "
        "in-context RL.",
        "rl2": "RL^2 is a recurrent policy trained online across trials of several episodes; "
        "its hidden state carries what it learnt about the task.",
    }[method_key]
    load_hint = "# or `import adbench.models` first"
    libs = prov["libraries"]
    versions = (
        f"adbench {prov['adbench_version']} (git `{prov['adbench_git_revision']}`), "
        f"torch {libs['torch']}, transformers {libs['transformers']}, "
        f"accelerate {libs['accelerate']}."
    )
    body = f"""
# {method} on `{config.env_id}`

An adbench baseline: {method} trained on {data_line}.
{about}

```python
from transformers import AutoModel

{load_hint}
model = AutoModel.from_pretrained("<this repo>", trust_remote_code=True)
```

Score it: `adbench evaluate --model <repo id>`.

## Training data

{data_line}

## Hyperparameters

| name | value |
|---|---|
{hyper}

## Command

```bash
{command or "(called from Python)"}
```

## Compute

| what | value |
|---|---|
{compute}

{versions}
{"![training loss](training_curve.png)" if has_plot else ""}
"""
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")
    atomic_write_text(output_dir / "README.md", str(card))
