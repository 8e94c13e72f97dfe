"""Loading a model by hub id or directory, safely: safetensors weights only, remote code
only when asked for, and every file checked before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError
from adbench.hub import resolve_repo, validate_repo_id

WEIGHTS_FILE = "model.safetensors"
BUILT_IN_MODEL_TYPES = ("adbench_ad", "adbench_rl2")
PUBLISHED_FILES_EXCLUDE = ("checkpoints",)


def model_dir(
    model: str | Path,
    hub: str | Path | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
) -> Path:
    """A model directory as given, or a hub id resolved in the local hub (then remote)."""
    path = Path(model)
    if path.is_dir():
        return path
    if str(model).startswith((".", "/")) or path.suffix:
        raise AdbenchError(f"model directory {model} does not exist")
    validate_repo_id(str(model))
    return resolve_repo(str(model), "model", hub=hub, endpoint=endpoint, revision=revision)


def check_model_dir(path: Path) -> dict[str, Any]:
    """The model's config, after checking that config, weights and code files are present
    and readable. Raises AdbenchError naming the first problem."""
    config_file = path / "config.json"
    if not config_file.exists():
        raise AdbenchError(f"{path} has no config.json: not a transformers model directory")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise AdbenchError(
            f"{config_file} is corrupted ({exc.msg}): re-save or re-pull the model"
        ) from exc
    weights = path / WEIGHTS_FILE
    if not weights.exists():
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        if pickled:
            raise AdbenchError(
                f"{path} has only pickled weights ({', '.join(pickled)}): adbench loads "
                "safetensors only; re-save the model with save_pretrained(safe_serialization=True)"
            )
        raise AdbenchError(f"{path} has no {WEIGHTS_FILE}: the weights are missing")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                handle.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdbenchError(f"{weights} is corrupted ({exc}): re-save or re-pull the model") from exc
    for reference in (config.get("auto_map") or {}).values():
        module = (reference[0] if isinstance(reference, list) else reference).split(".")[0]
        if "--" not in module and not (path / f"{module}.py").exists():
            raise AdbenchError(f"{path} lacks {module}.py, named by its config's auto_map")
    return config


def load_model(
    model: str | Path,
    *,
    hub: str | Path | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
) -> Any:
    """Load a model for acting. adbench's own model types load with adbench's code; any
    other needs ``trust_remote_code=True`` (it runs the code shipped with the model)."""
    from transformers import AutoModel

    import adbench.models  # noqa: F401  (registers the built-in model types)

    path = model_dir(model, hub=hub, endpoint=endpoint, revision=revision)
    config = check_model_dir(path)
    model_type = config.get("model_type")
    built_in = model_type in BUILT_IN_MODEL_TYPES
    if not built_in and not trust_remote_code:
        raise AdbenchError(
            f"{model} is a {model_type!r} model, which adbench does not know: pass "
            "--trust-remote-code to run the code it ships (only for code you trust)"
        )
    loaded = AutoModel.from_pretrained(
        str(path), trust_remote_code=trust_remote_code and not built_in, use_safetensors=True
    )
    if device:
        loaded = loaded.to(device)
    return loaded.eval()
