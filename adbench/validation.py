"""Checking every value a user gives before any work starts: recipes, ``--set`` and
``--source-arg`` pairs, and the argument dataclasses they fill.

Every stage's argument dataclass (training arguments, source hyperparameters, build
options) is a pydantic dataclass with :data:`ARGS_CONFIG`: strict types (``"abc"`` or
``true`` is not an int, ``2.5`` is not an int, an int is a float), the allowed range in the
field's annotation (``Positive``, ``UnitInterval``, ...), unknown keys refused, no NaN or
infinity. :func:`build_args` merges the layers a run's values come from (a recipe file,
``--set``, the command's options) and turns a failed check into one
:class:`~adbench.errors.AdbenchError` line that names the key, the value, what is allowed
and where the value came from. Cross-field rules (``num_attention_heads`` divides
``hidden_size``) live in each dataclass's ``__post_init__``.

This module is stage-neutral (like :mod:`adbench.errors`): any stage may import it.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import ConfigDict, Field, ValidationError

from adbench.errors import AdbenchError

ARGS_CONFIG = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, validate_assignment=True)
"""The pydantic config of every argument dataclass."""

Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0, lt=2**63)]
"""numpy's and torch's seeds are non-negative; 2**63 keeps them within an int64."""
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
UnitInterval = Annotated[float, Field(ge=0, le=1)]
"""Probabilities, discounts and fractions: [0, 1]."""
StepSize = Annotated[float, Field(gt=0, le=1)]
"""Step sizes of tabular updates: (0, 1]."""
OpenUnitInterval = Annotated[float, Field(ge=0, lt=1)]
"""Dropout rates and Adam's betas: [0, 1)."""

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``1e-3`` is a string; read it as the number YAML 1.2
    (and every user) means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$",
    ),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """Safe YAML (no tags that build objects), with ``1e-3`` a float."""
    return yaml.load(text, Loader=_Loader)


def parse_key_values(pairs: Sequence[str] | None, option: str) -> dict[str, Any]:
    """``["lr=1e-3", "layers=[32, 64]"]`` -> ``{"lr": 0.001, "layers": [32, 64]}``: each
    value is read as a YAML scalar or flow collection; ``option`` names the flag in errors."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AdbenchError(f"{option} takes KEY=VALUE, got {pair!r}")
        try:
            values[key] = load_yaml(text)
        except yaml.YAMLError as exc:
            raise AdbenchError(
                f"{option} {pair!r}: the value is not valid YAML ({_first_line(exc)})"
            ) from exc
    return values


def read_mapping_file(path: Path, what: str) -> dict[str, Any]:
    """A YAML (or JSON) file that must hold a mapping with string keys."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AdbenchError(f"{what} {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise AdbenchError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        values = load_yaml(text)
    except yaml.YAMLError as exc:
        raise AdbenchError(f"{what} {path} is not valid YAML: {_first_line(exc)}") from exc
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise AdbenchError(
            f"{what} {path} must be a mapping of name: value, got a {type(values).__name__}"
        )
    return values


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_validation_error(
    exc: ValidationError, origins: Mapping[str, str] | None = None, default_origin: str = ""
) -> str:
    """One line for a pydantic error: ``key=value (from where): what is allowed``, for
    every bad value, joined by ``; ``."""
    parts = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc", ())
        key = ".".join(str(part) for part in loc) or "value"
        origin = (origins or {}).get(str(loc[0]) if loc else "", default_origin)
        message = error["msg"]
        message = message[0].lower() + message[1:] if message else "invalid"
        if error["type"] in ("finite_number",):
            message = "must be a finite number"
        where = f" (from {origin})" if origin else ""
        if error["type"] == "missing":
            parts.append(f"{key} is required{where}")
        else:
            parts.append(f"{key}={_shown(error.get('input'))}{where}: {message}")
    return "; ".join(parts)


def unknown_keys_message(unknown: Sequence[str], valid: Sequence[str], where: str) -> str:
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, valid, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown key(s) {', '.join(hints)} in {where}: valid keys are {', '.join(valid)}"


def build_args(cls: type[T], layers: Sequence[tuple[str, Mapping[str, Any]]]) -> T:
    """An instance of the argument dataclass ``cls`` from ``layers`` of ``(origin,
    values)``, later layers overriding earlier ones (a recipe, then ``--set``, then the
    command's options). Raises :class:`AdbenchError` naming each bad key, its value, what
    is allowed and the layer it came from."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for origin, layer in layers:
        for key, value in layer.items():
            values[key] = value
            origins[key] = origin
    valid = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [key for key in values if key not in valid]
    if unknown:
        where = " and ".join(sorted({origins[key] for key in unknown}))
        raise AdbenchError(unknown_keys_message(unknown, valid, where))
    try:
        return cls(**values)
    except ValidationError as exc:
        raise AdbenchError(describe_validation_error(exc, origins)) from None
