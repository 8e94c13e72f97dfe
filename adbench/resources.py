"""The data files adbench needs at run time: dataset-card templates, the baseline recipes
and the committed leaderboards.

They live in the repository's own folders (``dataset_cards/``, ``baselines/``,
``leaderboards/``); pyproject.toml maps them into the package, so a wheel carries them
as ``adbench/_data/<name>/``. This module finds them in either place: the wheel's copy when
installed, the checkout's folders when adbench runs from its repository (an editable
install or ``PYTHONPATH``).
"""

from __future__ import annotations

import functools
from pathlib import Path

from adbench.errors import AdbenchError

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGED_DATA_DIR = PACKAGE_DIR / "_data"

CHECKOUT_FOLDERS = {
    "dataset_cards": "dataset_cards",
    "recipes": "baselines",
    "leaderboards": "leaderboards",
}
"""Each data folder's name in the package -> its folder in the repository."""

RECIPE_SUFFIX = ".yaml"


@functools.cache
def checkout_root() -> Path | None:
    """The repository adbench runs from, or None for an installed package.

    A checkout is the parent of the package directory when it holds adbench's
    pyproject.toml; a wheel's site-packages never does.
    """
    root = PACKAGE_DIR.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "adbench"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def data_dir(name: str) -> Path:
    """The folder of data files ``name`` (a key of :data:`CHECKOUT_FOLDERS`)."""
    if name not in CHECKOUT_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}: one of {', '.join(CHECKOUT_FOLDERS)}")
    root = checkout_root()
    candidate = root / CHECKOUT_FOLDERS[name] if root else PACKAGED_DATA_DIR / name
    if not candidate.is_dir():
        raise AdbenchError(
            f"adbench's {name} files are missing (no {candidate}): the installation is "
            "incomplete; reinstall it (pip install --force-reinstall adbench, or "
            "pip install -e . from a checkout)"
        )
    return candidate


def recipe_names() -> list[str]:
    """The names of the baseline recipes (``ad-darkroom``, ...), sorted."""
    return sorted(p.name.removesuffix(RECIPE_SUFFIX) for p in recipe_files())


def recipe_files() -> list[Path]:
    return sorted(data_dir("recipes").glob(f"*{RECIPE_SUFFIX}"))


def recipe_path(recipe: str) -> Path:
    """A recipe given by path (``baselines/ad-darkroom.yaml``, any YAML file) or by name
    (``ad-darkroom``: one of :func:`recipe_names`)."""
    path = Path(recipe)
    if path.is_file():
        return path
    looks_like_a_name = "/" not in recipe and not recipe.endswith((".yaml", ".yml"))
    if looks_like_a_name:
        named = data_dir("recipes") / f"{recipe}{RECIPE_SUFFIX}"
        if named.is_file():
            return named
    raise AdbenchError(
        f"recipe {recipe!r} does not exist: give a YAML file or one of {', '.join(recipe_names())}"
    )
