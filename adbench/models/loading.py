"""Loading a model by hub id or directory, safely: safetensors weights only, remote code
only when asked for, and every file checked before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError
from adbench.fileio import atomic_write_bytes
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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdbenchError(
            f"{config_file} is corrupted ({getattr(exc, 'msg', exc)}): re-save or re-pull the model"
        ) from exc
    if not isinstance(config, dict):
        raise AdbenchError(
            f"{config_file} holds a JSON {type(config).__name__}, not an object: a transformers "
            "config is a JSON object of name: value; re-save or re-pull the model"
        )
    if not isinstance(config.get("model_type"), str):
        raise AdbenchError(
            f"{config_file} has no model_type: re-save the model with save_pretrained"
        )
    if not isinstance(config.get("auto_map") or {}, dict):
        raise AdbenchError(f"{config_file}: auto_map must be an object of class: module.Class")
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

    target = resolve_device(device)  # a bad --device fails before anything is fetched
    path = model_dir(model, hub=hub, endpoint=endpoint, revision=revision)
    config = check_model_dir(path)
    model_type = config.get("model_type")
    built_in = model_type in BUILT_IN_MODEL_TYPES
    if not built_in and not trust_remote_code:
        raise AdbenchError(
            f"{model} is a {model_type!r} model, which adbench does not know: pass "
            "--trust-remote-code to run the code it ships (only for code you trust)"
        )
    try:
        loaded = AutoModel.from_pretrained(
            str(path), trust_remote_code=trust_remote_code and not built_in, use_safetensors=True
        )
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # A config.json whose values do not make that model (a string for a size, a
        # missing field), or a shipped model class that does not build from it.
        raise AdbenchError(
            f"cannot load {model} from {path / 'config.json'}: {type(exc).__name__}: {exc}"
        ) from exc
    return loaded.to(target).eval()


def resolve_device(device: str | None) -> Any:
    """``--device`` as a torch device that exists here (default: the CPU)."""
    import torch

    if not device:
        return torch.device("cpu")
    try:
        target = torch.device(device)
        if target.type == "meta":
            raise ValueError("the meta device holds no data")
        torch.empty(1, device=target)  # a device this machine does not have fails here
    except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        first = "not a torch device" if "Expected one of" in text else text.split(". ")[0][:120]
        raise AdbenchError(
            f"--device {device!r} cannot be used here ({first}): give cpu, or cuda:N / mps "
            "where torch sees that device"
        ) from exc
    return target


MODEL_CODE_FILES = {
    "adbench_ad": ("configuration_ad.py", "modeling_ad.py", "observation_encoding.py"),
    "adbench_rl2": ("configuration_rl2.py", "modeling_rl2.py", "observation_encoding.py"),
}
"""The code files a saved model of each built-in type carries (``auto_map`` and its
relative imports), copies of adbench/models/ made by ``save_pretrained``."""

_PACKAGE_MODELS_DIR = Path(__file__).resolve().parent


def _expected_code_files(path: Path) -> tuple[str, ...]:
    model_type = check_model_dir(Path(path)).get("model_type")
    if model_type not in MODEL_CODE_FILES:
        raise AdbenchError(f"{path} is a {model_type!r} model: only adbench's own carry its code")
    return MODEL_CODE_FILES[model_type]


def model_code_differences(path: Path) -> list[str]:
    """The code files of a built-in model directory that differ from (or lack) the
    installed package's: the code a ``trust_remote_code`` user would run must be the code
    adbench scores with. Empty when the model carries exactly the package's code."""
    return _code_differences(Path(path), _expected_code_files(path))


def _code_differences(path: Path, expected: tuple[str, ...]) -> list[str]:
    differing = [
        name
        for name in expected
        if not (Path(path) / name).is_file()
        or (Path(path) / name).read_bytes() != (_PACKAGE_MODELS_DIR / name).read_bytes()
    ]
    # A stray module (an old file name) would be importable by the model's code too.
    differing += sorted(p.name for p in Path(path).glob("*.py") if p.name not in expected)
    return differing


def sync_model_code(path: Path) -> list[str]:
    """Make a built-in model directory carry exactly the package's code files (weights and
    config untouched); returns the files written or removed."""
    expected = _expected_code_files(path)  # checks (reads) the weights once
    differing = _code_differences(Path(path), expected)
    for name in differing:
        target = Path(path) / name
        if name in expected:
            atomic_write_bytes(target, (_PACKAGE_MODELS_DIR / name).read_bytes())
        else:
            target.unlink()
    return differing
