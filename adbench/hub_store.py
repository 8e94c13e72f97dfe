"""The storage side of ``adbench hub serve``: the repos a hub server serves, at any
revision, and the commits it applies to them; :mod:`adbench.hub_server` holds the HTTP
routes over it.

A repo's current files are its directory in the local hub (``main``); every revision a
commit replaces, and every new one, is recorded in :mod:`adbench.hub_revisions`, so any
recorded sha stays readable. A commit is staged in a temporary directory beside the repo
(unchanged files hard-linked, new ones written whole) and swapped in with
``adbench.fileio.replace_directory``: readers see the old or the new repo, never a mix.

Errors are :class:`HubHTTPError`: the Hub API's error model (HTTP status, ``X-Error-Code``
such as ``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, and a message), which the
routes send as they are.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Any

from adbench.fileio import (
    atomic_write_bytes,
    is_temp_name,
    remove_path,
    replace_directory,
    temp_dir_beside,
)
from adbench.hub_revisions import (
    Revision,
    find_revision,
    record_published,
    revision_files,
    revisions,
)
from adbench.hub_storage import (
    REPO_TYPE_DIRS,
    FileDigest,
    RepoType,
    file_digest,
    list_repos,
    repo_files,
    revision_of_digests,
    validate_repo_id,
)

MAIN_BRANCH = "main"
# Path components huggingface_hub itself refuses to commit (``FORBIDDEN_FOLDERS``); refusing
# them here too keeps the served file set equal to ``adbench.hub.repo_files``.
_FORBIDDEN_COMPONENTS = frozenset({".git", ".cache"})


class HubHTTPError(Exception):
    """An error answer: HTTP status, Hub error code (``X-Error-Code``) and message."""

    def __init__(self, status: HTTPStatus, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra_headers: dict[str, str] = {}
        self.extra_body: dict[str, Any] = {}


def bad_request(message: str) -> HubHTTPError:
    return HubHTTPError(HTTPStatus.BAD_REQUEST, message)


def now_iso(timestamp: float | None = None) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC) if timestamp else datetime.now(tz=UTC)
    # The one format huggingface_hub's ``parse_datetime`` accepts.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def validate_repo_path(path: str) -> str:
    """A file path inside a repo, checked: relative, no '..', '.', empty or hidden-temp parts."""
    if not path or "\\" in path or "\x00" in path or path.startswith("/"):
        raise bad_request(f"invalid path in repo {path!r}: it must be a relative POSIX path")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise bad_request(f"invalid path in repo {path!r}: empty, '.' or '..' component")
        if part in _FORBIDDEN_COMPONENTS or is_temp_name(part):
            raise bad_request(f"invalid path in repo {path!r}: '{part}' is reserved")
    return "/".join(parts)


@dataclass(frozen=True)
class RepoSnapshot:
    """The files of a repo at one moment, with their digests and the resulting commit sha."""

    files: dict[str, FileDigest]
    sha: str
    last_modified: float
    # Where each file's bytes are: the repo directory for main, the revision store for an
    # older revision.
    paths: dict[str, Path]

    def folders(self) -> set[str]:
        return {
            parent.as_posix()
            for rel in self.files
            for parent in PurePosixPath(rel).parents
            if parent.as_posix() != "."
        }


def snapshot_repo(repo_dir: Path) -> RepoSnapshot:
    """Digest every file of a repo directory (cached by ``adbench.hub.file_digest``)."""
    files: dict[str, FileDigest] = {}
    last_modified = repo_dir.stat().st_mtime
    for rel in repo_files(repo_dir):
        full = repo_dir / rel
        files[rel] = file_digest(full)
        last_modified = max(last_modified, full.stat().st_mtime)
    sha = revision_of_digests([(rel, digest.sha256) for rel, digest in files.items()])
    paths = {rel: repo_dir / rel for rel in files}
    return RepoSnapshot(files=files, sha=sha, last_modified=last_modified, paths=paths)


_SWAP_RETRIES = 20
_SWAP_RETRY_S = 0.01


def _swap_may_be_running(repo_dir: Path) -> bool:
    """Whether a temporary sibling made for this repo dir (``adbench.fileio`` names them
    ``<TEMP_PREFIX>...-<name>``) suggests that it is being replaced right now."""
    suffix = f"-{repo_dir.name}"
    try:
        return any(
            is_temp_name(p.name) and p.name.endswith(suffix) for p in repo_dir.parent.iterdir()
        )
    except FileNotFoundError:
        return False


def folder_oid(snapshot: RepoSnapshot, folder: str) -> str:
    """A stable id for a folder: git uses tree ids, any content-derived hash will do here."""
    prefix = f"{folder}/"
    members = sorted(
        (rel, d.git_oid) for rel, d in snapshot.files.items() if rel.startswith(prefix)
    )
    return hashlib.sha1(repr(members).encode(), usedforsecurity=False).hexdigest()


def _link_files(source: Path, target: Path, files: dict[str, FileDigest]) -> None:
    """Populate ``target`` with ``files`` of ``source``: hard links where possible, else copies.

    Links are safe because files are never modified in place: a commit replaces a file with a
    new one (``atomic_write_bytes``) or unlinks it, which leaves the old repo's copy intact.
    """
    for rel in files:
        src, dst = source / rel, target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _write_inline_file(staging: Path, value: dict[str, Any]) -> None:
    rel = validate_repo_path(value["path"])
    if value.get("encoding", "base64") != "base64":
        raise bad_request(f"unsupported encoding {value.get('encoding')!r} for {rel!r}")
    try:
        data = base64.b64decode(value.get("content", ""), validate=True)
    except (binascii.Error, ValueError) as error:
        raise bad_request(f"invalid base64 content for {rel!r}") from error
    target = staging / rel
    for parent in reversed(PurePosixPath(rel).parents):
        if parent.as_posix() != "." and (staging / parent).is_file():
            raise bad_request(f"cannot add {rel!r}: {parent.as_posix()!r} is a file")
    if target.is_dir():
        raise bad_request(f"cannot add {rel!r}: it is a folder")
    # A new file, never a write through the existing name: that name may be a hard link
    # shared with the live repo.
    atomic_write_bytes(target, data)


def _prune_empty_parents(directory: Path, stop: Path) -> None:
    # git has no empty folders: a folder whose last file is deleted disappears.
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


class RepoStore:
    """The repos of a local hub at ``root``, as a hub server reads and commits them. One lock
    orders reads of a repo (listing it, opening a file) against commit swaps."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        # Held while a repo directory is listed or a file is opened, and while a commit swaps
        # a repo directory: never while file contents are transferred.
        self.lock = threading.Lock()

    def repo_dir(self, repo_type: RepoType, repo_id: str) -> Path:
        org, name = validate_repo_id(repo_id)
        return self.root / REPO_TYPE_DIRS[repo_type] / org / name

    def head(self, repo_type: RepoType, repo_id: str) -> tuple[Path, RepoSnapshot]:
        """The current state (``main``) of a repo, or 404 RepoNotFound. Call with ``lock``."""
        repo_dir = self.repo_dir(repo_type, repo_id)
        for _ in range(_SWAP_RETRIES):
            if repo_dir.is_dir():
                with contextlib.suppress(FileNotFoundError):  # files vanished mid-listing
                    return repo_dir, snapshot_repo(repo_dir)
            elif not _swap_may_be_running(repo_dir):
                break
            # A writer outside this server (``adbench datasets build`` into the served
            # directory) is replacing the repo: it is back within moments.
            time.sleep(_SWAP_RETRY_S)
        raise HubHTTPError(
            HTTPStatus.NOT_FOUND,
            f"Repository not found: {repo_type} repo {repo_id!r} is not on this hub.",
            "RepoNotFound",
        )

    def snapshot(self, repo_type: RepoType, repo_id: str, revision: str) -> RepoSnapshot:
        """The repo at ``revision``: ``main``, its sha, or the sha (or a 7+ character
        prefix) of a recorded revision; else 404 RevisionNotFound. Call with ``lock``."""
        _, head = self.head(repo_type, repo_id)
        wanted = revision.lower()
        if revision in (MAIN_BRANCH, f"refs/heads/{MAIN_BRANCH}") or (
            len(wanted) >= 7 and head.sha.startswith(wanted)
        ):
            return head
        recorded = find_revision(repo_id, repo_type, revision, self.root)
        if recorded is None:
            error = HubHTTPError(
                HTTPStatus.NOT_FOUND,
                f"Invalid rev id: {revision!r} is neither {MAIN_BRANCH} ({head.sha}) nor a "
                f"revision this hub recorded for {repo_type} repo {repo_id!r}.",
                "RevisionNotFound",
            )
            error.extra_headers["X-Repo-Commit"] = head.sha
            raise error
        return RepoSnapshot(
            files=dict(recorded.files),
            sha=recorded.sha,
            last_modified=recorded.created_at,
            paths=revision_files(recorded, self.root),
        )

    def commits(self, repo_type: RepoType, repo_id: str, revision: str) -> list[Revision]:
        """The revisions up to ``revision``, newest first (its parents, one by one). ``main``
        is recorded first if it is not yet (a repo from before revisions were kept)."""
        with self.lock:
            repo_dir, head = self.head(repo_type, repo_id)
            with contextlib.suppress(OSError):  # a read-only hub: main is listed unrecorded
                record_published(repo_dir)
            tip = self.snapshot(repo_type, repo_id, revision).sha
        recorded = {r.sha: r for r in revisions(repo_id, repo_type, self.root)}
        if tip not in recorded:  # main of a read-only hub, never recorded
            return [Revision(head.sha, None, head.last_modified, "current files", head.files)]
        chain, sha = [], tip
        while sha is not None and sha in recorded and len(chain) <= len(recorded):
            chain.append(recorded[sha])
            sha = recorded[sha].parent
        return chain

    def repos(
        self, repo_type: RepoType, search: str | None = None, author: str | None = None
    ) -> list[tuple[str, RepoSnapshot]]:
        """Every repo of a type with its main snapshot, filtered as the Hub's listing is:
        ``search`` a substring of the id, ``author`` its organisation."""
        found = []
        for info in list_repos(repo_type, self.root):
            if search and search.lower() not in info.repo_id.lower():
                continue
            if author and info.repo_id.split("/")[0] != author:
                continue
            with self.lock, contextlib.suppress(HubHTTPError):
                found.append((info.repo_id, self.head(repo_type, info.repo_id)[1]))
        return found

    def create(self, repo_type: RepoType, repo_id: str) -> bool:
        """Make an empty repo; False when it exists already."""
        with self.lock:
            repo_dir = self.repo_dir(repo_type, repo_id)
            if repo_dir.exists():
                return False
            repo_dir.mkdir(parents=True)
            return True

    def stage_commit(
        self, repo_type: RepoType, repo_id: str, revision: str, parent: str | None
    ) -> tuple[Path, RepoSnapshot]:
        """A staging directory holding ``main``'s files (hard links) for a commit on
        ``revision`` (which must be main: commits go to the tip), and main's snapshot."""
        with self.lock:
            repo_dir, base = self.head(repo_type, repo_id)
            if self.snapshot(repo_type, repo_id, revision).sha != base.sha:
                raise bad_request(f"commits go to {MAIN_BRANCH}, not to an older revision")
            if parent and not base.sha.startswith(str(parent).lower()):
                raise HubHTTPError(
                    HTTPStatus.PRECONDITION_FAILED,
                    f"parent commit {parent} is not the head of {MAIN_BRANCH} ({base.sha})",
                )
            staging = temp_dir_beside(repo_dir)
            try:
                _link_files(repo_dir, staging, base.files)
            except BaseException:
                remove_path(staging)
                raise
        return staging, base

    def finish_commit(
        self, repo_type: RepoType, repo_id: str, staging: Path, base: RepoSnapshot, message: str
    ) -> RepoSnapshot:
        """Swap a staged commit in as ``main`` (409 if main moved meanwhile), recording the
        revision it replaces and the new one."""
        new = snapshot_repo(staging)
        with self.lock:
            repo_dir, current = self.head(repo_type, repo_id)
            if current.sha != base.sha:
                raise HubHTTPError(
                    HTTPStatus.CONFLICT,
                    f"{repo_type} repo {repo_id!r} changed during this commit "
                    f"({base.sha} -> {current.sha}); push again",
                )
            record_published(repo_dir)
            replace_directory(staging, repo_dir)
            record_published(repo_dir, message)
        return new


def apply_file(staging: Path, value: dict[str, Any]) -> None:
    """A commit's ``file`` operation (base64 content inline)."""
    _write_inline_file(staging, value)


def apply_deletion(staging: Path, path: str, folder: bool) -> None:
    """A commit's ``deletedFile`` / ``deletedFolder`` operation."""
    if folder:
        target = staging / validate_repo_path(path.rstrip("/"))
        if not target.is_dir():
            raise HubHTTPError(
                HTTPStatus.NOT_FOUND,
                f"A folder with this name doesn't exist: {path}",
                "EntryNotFound",
            )
        shutil.rmtree(target)
    else:
        target = staging / validate_repo_path(path)
        if not target.is_file():
            raise HubHTTPError(
                HTTPStatus.NOT_FOUND,
                f"A file with this name doesn't exist: {path}",
                "EntryNotFound",
            )
        target.unlink()
    _prune_empty_parents(target.parent, staging)
