"""Publishing a trained model directory to the local hub (and a remote one)."""

from __future__ import annotations

import shutil
from pathlib import Path

from adbench.errors import AdbenchError
from adbench.fileio import check_writable_dir, remove_path, replace_directory, temp_dir_beside
from adbench.hub import local_repo_dir, push_folder, validate_repo_id
from adbench.hub_revisions import record_published
from adbench.models.loading import PUBLISHED_FILES_EXCLUDE, check_model_dir


def publish_model(
    source_dir: str | Path,
    repo_id: str,
    *,
    hub: str | Path | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool = False,
) -> Path:
    """Copy a checked model directory into the local hub as ``models/ORG/NAME`` (atomically,
    without training checkpoints); with ``endpoint``, upload it there first (a failed upload
    leaves the local hub untouched)."""
    source = Path(source_dir)
    if not source.is_dir():
        raise AdbenchError(f"model directory {source} does not exist")
    validate_repo_id(repo_id)
    check_model_dir(source)
    target = local_repo_dir(repo_id, "model", hub)
    check_writable_dir(target.parent, "the local hub")
    if source.resolve() == target.resolve():
        if endpoint is not None:
            push_folder(target, repo_id, "model", endpoint=endpoint, token=token, private=private)
        return target
    # Staged beside its final place, uploaded from there, and only then moved into the local
    # hub: a remote that refuses leaves the local hub as it was.
    staging = temp_dir_beside(target)
    try:
        for item in source.iterdir():
            if item.name in PUBLISHED_FILES_EXCLUDE or item.name.startswith("."):
                continue
            if item.is_dir():
                shutil.copytree(item, staging / item.name)
            else:
                shutil.copy2(item, staging / item.name)
        if endpoint is not None:
            push_folder(staging, repo_id, "model", endpoint=endpoint, token=token, private=private)
        record_published(target)  # the revision it replaces stays resolvable by its sha
        replace_directory(staging, target)
    except BaseException:
        remove_path(staging)
        raise
    record_published(target, f"adbench push {source}")
    return target
