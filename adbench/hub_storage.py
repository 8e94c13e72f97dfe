"""The local hub on disk: its layout, file digests and content revisions.

Layout: ``<root>/datasets/<org>/<name>/...`` and ``<root>/models/<org>/<name>/...``, each
repo a plain directory of its current files (the ``main`` revision), laid out like the
Hugging Face Hub. :mod:`adbench.hub_revisions` keeps every published revision beside them;
:mod:`adbench.hub` resolves, pulls and pushes repos; :mod:`adbench.hub_server` serves this
layout over the Hub's HTTP API.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

from adbench.errors import AdbenchError
from adbench.fileio import HASH_CHUNK_BYTES, is_temp_name

RepoType = Literal["dataset", "model"]
REPO_TYPES: tuple[RepoType, ...] = ("dataset", "model")
REPO_TYPE_DIRS: dict[RepoType, str] = {"dataset": "datasets", "model": "models"}

REPO_ID_EXAMPLE = "ad-bench/darkroom"
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REPO_ID_RULE = (
    "a repo id is 'org/name', each part 1-96 letters, digits, '.', '_' or '-', starting with a "
    "letter or digit, not ending with '.' or '-', without '--' or '..'"
)

# Folders huggingface_hub never uploads (``DEFAULT_IGNORE_PATTERNS``): leaving them out of a
# repo's file set keeps the local revision equal to the revision of what a push sends.
_SKIPPED_DIRS = frozenset({".git"})
_SKIPPED_NESTED_DIRS = frozenset({(".cache", "huggingface")})

# --------------------------------------------------------------------------- local layout


def hub_root(hub: str | Path | None = None) -> Path:
    """The local hub directory: ``hub`` > env ``ADBENCH_HUB`` > ``$XDG_CACHE_HOME/adbench/hub``
    > ``~/.cache/adbench/hub``. The directory need not exist yet."""
    if hub is not None and str(hub) != "":
        chosen = Path(hub)
    elif os.environ.get("ADBENCH_HUB"):
        chosen = Path(os.environ["ADBENCH_HUB"])
    elif os.environ.get("XDG_CACHE_HOME"):
        chosen = Path(os.environ["XDG_CACHE_HOME"]) / "adbench" / "hub"
    else:
        chosen = Path("~/.cache/adbench/hub")
    root = chosen.expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise AdbenchError(
            f"the local hub {root} is a file: give a directory with --hub (or $ADBENCH_HUB)"
        )
    return root


def validate_repo_id(repo_id: str) -> tuple[str, str]:
    """Split ``org/name`` into its two parts, or raise AdbenchError saying what is wrong.

    Every repo id a user gives goes through here, which is also what keeps ids from escaping
    the hub directory ('..', absolute paths, extra slashes are all rejected).
    """
    if not isinstance(repo_id, str):
        raise AdbenchError(
            f"invalid repo id {repo_id!r}: expected a string; {_REPO_ID_RULE} "
            f"(for example {REPO_ID_EXAMPLE})"
        )
    parts = repo_id.split("/")
    if len(parts) != 2:
        problem = "it has no '/'" if len(parts) == 1 else f"it has {len(parts) - 1} '/'"
        raise AdbenchError(
            f"invalid repo id {repo_id!r}: {problem}; {_REPO_ID_RULE} "
            f"(for example {REPO_ID_EXAMPLE})"
        )
    for part in parts:
        problem = None
        if not _REPO_PART.fullmatch(part):
            problem = f"{part!r} is empty, too long or has a character that is not allowed"
        elif "--" in part or ".." in part:
            problem = f"{part!r} contains '--' or '..'"
        elif part.endswith((".", "-")):
            problem = f"{part!r} ends with '.' or '-'"
        if problem:
            raise AdbenchError(
                f"invalid repo id {repo_id!r}: {problem}; {_REPO_ID_RULE} "
                f"(for example {REPO_ID_EXAMPLE})"
            )
    return parts[0], parts[1]


def validate_repo_type(repo_type: str) -> RepoType:
    """Check that ``repo_type`` is 'dataset' or 'model'."""
    if repo_type not in REPO_TYPES:
        raise AdbenchError(f"invalid repo type {repo_type!r}: use 'dataset' or 'model'")
    return cast(RepoType, repo_type)


def local_repo_dir(repo_id: str, repo_type: RepoType, hub: str | Path | None = None) -> Path:
    """Where repo ``repo_id`` lives in the local hub, whether or not it exists."""
    org, name = validate_repo_id(repo_id)
    return hub_root(hub) / REPO_TYPE_DIRS[validate_repo_type(repo_type)] / org / name


def repo_files(path: str | Path) -> list[str]:
    """Relative POSIX paths of every file of a repo directory, sorted.

    Left out: temporary files of unfinished atomic writes, ``.git/`` and ``.cache/huggingface/``
    (never uploaded by huggingface_hub). Symlinked files are included, symlinked directories
    are not followed.
    """
    root = Path(path)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        parent_name = rel_dir.name
        dirnames[:] = [
            d
            for d in dirnames
            if not is_temp_name(d)
            and d not in _SKIPPED_DIRS
            and (parent_name, d) not in _SKIPPED_NESTED_DIRS
        ]
        for filename in filenames:
            if is_temp_name(filename):
                continue
            full = Path(dirpath) / filename
            if full.is_file():
                found.append((rel_dir / filename).as_posix())
    return sorted(found)


def is_repo_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding at least one repo file."""
    return Path(path).is_dir() and bool(repo_files(path))


@dataclass(frozen=True)
class FileDigest:
    """Size and content hashes of one file: sha256, and the git blob id the Hub calls ``oid``."""

    size: int
    sha256: str
    git_oid: str


# File content is identified by (device, inode, size, mtime): adbench never rewrites a file in
# place (atomic writes make a new inode), so a hit can be trusted and a hub full of large
# files is hashed once per process instead of on every revision or server request.
_DIGEST_CACHE: dict[tuple[int, int, int, int], FileDigest] = {}
_DIGEST_CACHE_MAX = 200_000
_DIGEST_LOCK = threading.Lock()


def file_digest(path: str | Path) -> FileDigest:
    """sha256 and git blob id of a file, cached on its (device, inode, size, mtime)."""
    stat = os.stat(path)
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _DIGEST_LOCK:
        cached = _DIGEST_CACHE.get(key)
    if cached is not None:
        return cached
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {stat.st_size}\0".encode(), usedforsecurity=False)
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            sha256.update(chunk)
            git.update(chunk)
            size += len(chunk)
    digest = FileDigest(size=size, sha256=sha256.hexdigest(), git_oid=git.hexdigest())
    if size == stat.st_size:  # the file did not change while it was read
        with _DIGEST_LOCK:
            if len(_DIGEST_CACHE) >= _DIGEST_CACHE_MAX:
                _DIGEST_CACHE.clear()
            _DIGEST_CACHE[key] = digest
    return digest


def revision_of_digests(pairs: list[tuple[str, str]]) -> str:
    """The content revision of (relative path, file sha256) pairs; see ``repo_revision``."""
    total = hashlib.sha256()
    for rel_path, sha in sorted(pairs):
        total.update(f"{rel_path}\0{sha}\n".encode())
    return total.hexdigest()[:40]


def repo_revision(path: str | Path) -> str:
    """Content revision of a local repo: 40 hex chars identifying exactly its files.

    It is the sha256 over the sorted lines ``"<relative posix path>\\0<sha256 of file>\\n"`` of
    every file listed by ``repo_files``, truncated to 40 hex characters (the length of a git
    commit id, so a remote hub can use it as its commit ``sha``). Results files record it to say
    which exact data or model they used.
    """
    root = Path(path)
    if not root.is_dir():
        raise AdbenchError(f"cannot compute the revision of {root}: it is not a directory")
    return revision_of_digests([(rel, file_digest(root / rel).sha256) for rel in repo_files(root)])


@dataclass(frozen=True)
class RepoInfo:
    """One repo of the local hub. ``revision`` is computed (hashing every file) on first use."""

    repo_id: str
    repo_type: RepoType
    path: Path
    num_files: int
    size_bytes: int
    last_modified: datetime

    @functools.cached_property
    def revision(self) -> str:
        return repo_revision(self.path)


def _repo_info(repo_id: str, repo_type: RepoType, path: Path) -> RepoInfo | None:
    files = repo_files(path)
    if not files:
        return None
    stats = [(path / rel).stat() for rel in files]
    return RepoInfo(
        repo_id=repo_id,
        repo_type=repo_type,
        path=path,
        num_files=len(files),
        size_bytes=sum(s.st_size for s in stats),
        last_modified=datetime.fromtimestamp(max(s.st_mtime for s in stats), tz=UTC),
    )


def _iter_repo_dirs(type_dir: Path) -> Iterator[tuple[str, Path]]:
    if not type_dir.is_dir():
        return
    for org_dir in sorted(type_dir.iterdir()):
        if not org_dir.is_dir() or org_dir.name.startswith("."):
            continue
        for repo_dir in sorted(org_dir.iterdir()):
            if not repo_dir.is_dir() or repo_dir.name.startswith("."):
                continue
            repo_id = f"{org_dir.name}/{repo_dir.name}"
            try:
                validate_repo_id(repo_id)
            except AdbenchError:
                continue  # a stray folder someone made by hand is not a repo
            yield repo_id, repo_dir


def list_repos(repo_type: RepoType, hub: str | Path | None = None) -> list[RepoInfo]:
    """Every non-empty repo of one type in the local hub, sorted by id."""
    type_dir = hub_root(hub) / REPO_TYPE_DIRS[validate_repo_type(repo_type)]
    infos = []
    for repo_id, repo_dir in _iter_repo_dirs(type_dir):
        try:
            info = _repo_info(repo_id, repo_type, repo_dir)
        except FileNotFoundError:
            continue  # replaced by a concurrent atomic write while we listed it
        if info is not None:
            infos.append(info)
    return infos
