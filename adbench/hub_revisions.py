"""Every published revision of every repo of the local hub, content-addressed.

A repo's directory holds its current files (``main``). Each time a repo is published
(a dataset build, ``adbench push``, a pull, a commit through ``adbench hub serve``) its
revision is recorded beside the repos, so that a results file that pins a model or
dataset revision can still be scored, loaded and served after the repo was updated:

* ``<root>/.objects/<ab>/<sha256>``: each distinct file content, stored once (a hard link
  to the published file where the file system allows, else a copy). adbench never rewrites
  a file in place (every write makes a new file and renames it over the old one), so a
  link keeps the old bytes when the repo moves on.
* ``<root>/.revisions/<datasets|models>/<org>/<name>/<sha>.json``: a revision's manifest:
  its sha (:func:`adbench.hub_storage.repo_revision` of its files), its parent (the
  revision recorded before it), when, a message, and every file's sha256, size and git
  blob id.
* ``<root>/.snapshots/<datasets|models>/<org>/<name>/<sha>/``: an older revision as a
  directory (hard links to the objects), made on first use by :func:`revision_dir`.

Only ``main`` exists as a branch; a revision is named by its sha or a prefix of it (7+
characters).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError
from adbench.fileio import atomic_directory, atomic_path, atomic_write_text
from adbench.hub_storage import (
    REPO_TYPE_DIRS,
    FileDigest,
    RepoType,
    file_digest,
    hub_root,
    is_repo_dir,
    repo_files,
    revision_of_digests,
    validate_repo_id,
)

OBJECTS_DIR = ".objects"
REVISIONS_DIR = ".revisions"
SNAPSHOTS_DIR = ".snapshots"
MIN_PREFIX = 7


@dataclass(frozen=True)
class Revision:
    """One recorded revision of a repo."""

    sha: str
    parent: str | None
    created_at: float  # seconds since the epoch
    message: str
    files: dict[str, FileDigest]

    def to_json(self) -> dict[str, Any]:
        return {
            "sha": self.sha,
            "parent": self.parent,
            "created_at": self.created_at,
            "message": self.message,
            "files": {
                rel: {"sha256": d.sha256, "size": d.size, "git_oid": d.git_oid}
                for rel, d in sorted(self.files.items())
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Revision:
        return cls(
            sha=data["sha"],
            parent=data.get("parent"),
            created_at=float(data["created_at"]),
            message=data.get("message", ""),
            files={
                rel: FileDigest(size=f["size"], sha256=f["sha256"], git_oid=f["git_oid"])
                for rel, f in data["files"].items()
            },
        )


def _repo_subpath(repo_id: str, repo_type: RepoType) -> Path:
    org, name = validate_repo_id(repo_id)
    return Path(REPO_TYPE_DIRS[repo_type]) / org / name


def _manifest_dir(root: Path, repo_id: str, repo_type: RepoType) -> Path:
    return root / REVISIONS_DIR / _repo_subpath(repo_id, repo_type)


def object_path(root: Path, sha256: str) -> Path:
    return root / OBJECTS_DIR / sha256[:2] / sha256


def _store_object(root: Path, source: Path, sha256: str) -> None:
    target = object_path(root, sha256)
    if target.exists():
        return
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or links not allowed: a copy
            shutil.copy2(source, tmp)


def revisions(repo_id: str, repo_type: RepoType, hub: str | Path | None = None) -> list[Revision]:
    """The recorded revisions of a repo, newest first."""
    folder = _manifest_dir(hub_root(hub), repo_id, repo_type)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.json"):
        try:
            found.append(Revision.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError) as exc:
            raise AdbenchError(
                f"revision record {path} is corrupted ({exc}): remove it to forget that revision"
            ) from None
    return sorted(found, key=lambda r: (r.created_at, r.sha), reverse=True)


def record_revision(
    repo_dir: Path,
    repo_id: str,
    repo_type: RepoType,
    hub: str | Path | None = None,
    message: str = "",
) -> Revision | None:
    """Record the files of ``repo_dir`` as a revision of the repo (its content stored once,
    its manifest written atomically); returns it, or None for an empty directory. Recording
    a revision that is already recorded changes nothing."""
    if not is_repo_dir(repo_dir):
        return None
    root = hub_root(hub)
    files = {rel: file_digest(repo_dir / rel) for rel in repo_files(repo_dir)}
    sha = revision_of_digests([(rel, d.sha256) for rel, d in files.items()])
    folder = _manifest_dir(root, repo_id, repo_type)
    manifest = folder / f"{sha}.json"
    if manifest.exists():
        return Revision.from_json(json.loads(manifest.read_text()))
    for rel, digest in files.items():
        _store_object(root, repo_dir / rel, digest.sha256)
    previous = revisions(repo_id, repo_type, hub)
    revision = Revision(
        sha=sha,
        parent=previous[0].sha if previous else None,
        created_at=time.time(),
        message=message or f"adbench: {repo_type} {repo_id}",
        files=files,
    )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest, json.dumps(revision.to_json(), indent=1) + "\n")
    return revision


def record_published(repo_dir: Path, message: str = "") -> Revision | None:
    """Record a repo directory of a local hub (``<root>/<datasets|models>/<org>/<name>``) as
    a revision of its repo: what every path that publishes into a hub calls, before
    replacing a repo (so that a repo from before revisions were kept is not lost) and after."""
    repo_dir = Path(repo_dir).absolute()
    types = {folder: repo_type for repo_type, folder in REPO_TYPE_DIRS.items()}
    if len(repo_dir.parts) < 4 or repo_dir.parents[1].name not in types:
        raise AdbenchError(f"{repo_dir} is not a repo directory of a local hub")
    repo_id = f"{repo_dir.parent.name}/{repo_dir.name}"
    return record_revision(
        repo_dir, repo_id, types[repo_dir.parents[1].name], repo_dir.parents[2], message
    )


def find_revision(
    repo_id: str, repo_type: RepoType, revision: str, hub: str | Path | None = None
) -> Revision | None:
    """The recorded revision whose sha starts with ``revision`` (7+ hex characters), or
    None; an ambiguous prefix is an error."""
    wanted = revision.lower()
    if len(wanted) < MIN_PREFIX:
        return None
    matches = [r for r in revisions(repo_id, repo_type, hub) if r.sha.startswith(wanted)]
    if len(matches) > 1:
        raise AdbenchError(
            f"revision {revision!r} of {repo_type} repo {repo_id!r} is ambiguous: give more of "
            f"the sha ({', '.join(r.sha[:12] for r in matches)})"
        )
    return matches[0] if matches else None


def revision_files(revision: Revision, hub: str | Path | None = None) -> dict[str, Path]:
    """Where each file of a recorded revision is stored (its object)."""
    root = hub_root(hub)
    paths = {rel: object_path(root, d.sha256) for rel, d in revision.files.items()}
    missing = [rel for rel, path in paths.items() if not path.is_file()]
    if missing:
        raise AdbenchError(
            f"revision {revision.sha} has lost {len(missing)} file(s) from {root / OBJECTS_DIR} "
            f"(first: {missing[0]}); it cannot be restored"
        )
    return paths


def revision_dir(
    repo_id: str, repo_type: RepoType, revision: Revision, hub: str | Path | None = None
) -> Path:
    """A directory holding exactly the files of ``revision`` (made once, from the objects,
    each checked against its recorded sha256)."""
    target = hub_root(hub) / SNAPSHOTS_DIR / _repo_subpath(repo_id, repo_type) / revision.sha
    if target.is_dir():
        return target
    paths = revision_files(revision, hub)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target) as staging:
        for rel, source in paths.items():
            if file_digest(source).sha256 != revision.files[rel].sha256:
                raise AdbenchError(
                    f"the stored copy of {rel} of revision {revision.sha} is corrupted "
                    f"({source}): the revision cannot be restored"
                )
            destination = staging / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, destination)
            except OSError:
                shutil.copy2(source, destination)
    return target
