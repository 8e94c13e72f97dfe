"""``adbench.load_dataset``: a history dataset by repo id, from the local hub first and a
remote hub otherwise, checked against its recorded checksums, as ``datasets`` returns it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError
from adbench.fileio import sha256_file
from adbench.histories.builder import METADATA_FILE
from adbench.hub import resolve_repo, validate_repo_id


def dataset_dir(
    repo_id_or_path: str | Path,
    hub: str | Path | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
) -> Path:
    """The local directory of a dataset: an existing directory as given, else a repo id
    resolved in the local hub (pulled from the remote endpoint when missing)."""
    path = Path(repo_id_or_path)
    if path.is_dir() and (path / "README.md").exists():
        return path
    validate_repo_id(str(repo_id_or_path))
    return resolve_repo(
        str(repo_id_or_path), "dataset", hub=hub, endpoint=endpoint, revision=revision
    )


def read_metadata(repo_dir: Path) -> dict[str, Any]:
    """The dataset's ``adbench.json`` (what built it, counts, checksums)."""
    path = repo_dir / METADATA_FILE
    if not path.exists():
        raise AdbenchError(f"{repo_dir} has no {METADATA_FILE}: it was not built by adbench")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AdbenchError(f"{path} is corrupted ({exc}): pull or rebuild the dataset") from exc


def verify_checksums(repo_dir: Path, metadata: dict[str, Any]) -> None:
    """Every data file recorded in the metadata exists and has its recorded sha256."""
    for name, expected in metadata["checksums"].items():
        path = repo_dir / name
        if not path.exists():
            raise AdbenchError(
                f"{path} is missing from the dataset: pull it again or rebuild it "
                f"({metadata.get('build_command', 'adbench datasets build')})"
            )
        if sha256_file(path) != expected:
            raise AdbenchError(
                f"checksum mismatch for {path}: the file is corrupted or was modified; pull it "
                f"again or rebuild it ({metadata.get('build_command', 'adbench datasets build')})"
            )
    for path in repo_dir.rglob("*.parquet"):
        relative = str(path.relative_to(repo_dir))
        if not relative.startswith(".") and relative not in metadata["checksums"]:
            raise AdbenchError(f"{path} is not part of the dataset (no checksum): remove it")


def arrow_cache_dir(repo_dir: Path) -> Path:
    """Where ``datasets`` caches the Arrow conversion of this exact repo content.

    datasets 5.2 derives the same cache key for two local repos with the same directory
    name, whatever their files, so a load could return another build's rows. The key here
    covers the repo's path and every file's size and modification time.
    """
    import datasets

    digest = hashlib.sha256(str(repo_dir.resolve()).encode())
    for path in sorted(repo_dir.rglob("*")):
        relative = path.relative_to(repo_dir)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            stat = path.stat()
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return Path(datasets.config.HF_DATASETS_CACHE) / "adbench" / digest.hexdigest()[:20]


def load_dataset(
    repo_id: str | Path,
    name: str | None = None,
    split: str | None = None,
    *,
    hub: str | Path | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
    verify: bool = True,
    **kwargs: Any,
) -> Any:
    """Load an adbench dataset as ``datasets.load_dataset`` does.

    ``repo_id`` is ``org/name`` (``ad-bench/darkroom``), looked up in the local hub, then
    on the remote endpoint, or a dataset directory. ``name`` is the config (``default``,
    ``expert``, ``tasks``). Checksums are verified unless ``verify=False``.
    """
    import datasets

    repo_dir = dataset_dir(repo_id, hub=hub, endpoint=endpoint, revision=revision)
    if verify and (repo_dir / METADATA_FILE).exists():
        verify_checksums(repo_dir, read_metadata(repo_dir))
    try:
        kwargs.setdefault("cache_dir", str(arrow_cache_dir(repo_dir)))
        return datasets.load_dataset(str(repo_dir), name=name, split=split, **kwargs)
    except (ValueError, TypeError, OSError, datasets.exceptions.DatasetGenerationError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AdbenchError(
            f"could not load {repo_id} (config {name or 'default'}, split {split}): {message}"
        ) from exc
