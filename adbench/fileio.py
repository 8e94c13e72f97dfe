"""Small file helpers shared by every stage of adbench (standard library only).

Every write goes to a temporary sibling first and is renamed into place, so a crash, a full disk
or a concurrent reader never sees a half-written file or directory. Temporary names all start
with ``TEMP_PREFIX`` so that listings (``adbench.hub.repo_files``) skip leftovers of a killed
process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError

TEMP_PREFIX = ".adbench-tmp-"
"""Prefix of every temporary file or directory created by this module (hidden on POSIX)."""

HASH_CHUNK_BYTES = 1 << 20

# Files made by mkstemp/mkdtemp are private (0600/0700); the final files must get the usual
# permissions instead. The umask can only be read by setting it, so do it once at import time,
# before any thread of ours exists.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_DIR_MODE = 0o777 & ~_UMASK

# Keep temporary names well under the usual 255-byte NAME_MAX whatever the final name is.
_MAX_NAME_HINT = 100


def is_temp_name(name: str) -> bool:
    """Whether a file or directory name was made by this module for a not-yet-finished write."""
    return name.startswith(TEMP_PREFIX)


def _name_hint(final_path: Path) -> str:
    return final_path.name[:_MAX_NAME_HINT]


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform or file system allows opening a
    # directory, and a missing fsync there only weakens durability, not atomicity.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the new one, whole."""
    final_path = Path(path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=TEMP_PREFIX, suffix=f"-{_name_hint(final_path)}", dir=final_path.parent
    )
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, final_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_directory(final_path.parent)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` for a library that writes files itself
    (``savefig``, ``pq.write_table``); it is renamed onto ``path`` when the block succeeds
    and removed when it fails. Unique per call, so concurrent writers never share it."""
    final_path = Path(path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=TEMP_PREFIX, suffix=f"-{_name_hint(final_path)}", dir=final_path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, final_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see ``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON (sorted keys, indent 2, trailing newline) atomically.

    The object is serialised before anything touches the disk, so an unserialisable object
    leaves the old file untouched.
    """
    atomic_write_text(path, json.dumps(obj, sort_keys=True, indent=2) + "\n")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def remove_path(path: str | Path) -> None:
    """Remove a file, symlink or directory tree if it exists."""
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


def temp_dir_beside(final_path: str | Path) -> Path:
    """A fresh, empty temporary directory in the same directory as ``final_path``.

    Same directory means same file system, so it can later be renamed onto ``final_path``.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=TEMP_PREFIX, suffix=f"-{_name_hint(final)}", dir=final.parent)
    )
    os.chmod(tmp, _DIR_MODE)
    return tmp


def replace_directory(new_dir: str | Path, final_path: str | Path) -> None:
    """Move ``new_dir`` to ``final_path``, replacing (and then deleting) whatever was there.

    POSIX cannot rename a directory onto a non-empty one, so the old one is first renamed
    aside; if the second rename fails the old one is put back, so ``final_path`` is never lost.
    Between the two renames ``final_path`` is briefly missing, which readers must tolerate.
    """
    new = Path(new_dir)
    final = Path(final_path)
    if not final.exists() and not final.is_symlink():
        os.rename(new, final)
        _fsync_directory(final.parent)
        return
    old = final.parent / f"{TEMP_PREFIX}old-{uuid.uuid4().hex[:12]}-{_name_hint(final)}"
    os.rename(final, old)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(old, final)
        raise
    _fsync_directory(final.parent)
    remove_path(old)


@contextlib.contextmanager
def atomic_directory(final_path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``final_path`` when the block succeeds.

    If the block raises, the temporary directory is removed and ``final_path`` is untouched.
    """
    tmp = temp_dir_beside(final_path)
    try:
        yield tmp
        replace_directory(tmp, final_path)
    except BaseException:
        remove_path(tmp)
        raise


def check_writable_dir(path: str | Path, what: str) -> Path:
    """A directory adbench is about to write into (``what`` names it for the user, e.g.
    ``--output``): refused before any work when it is a file, or when the nearest existing
    directory on its path is not writable. Nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AdbenchError(f"{what} {path} is a file, not a directory")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise AdbenchError(f"{what} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AdbenchError(f"{what} {path}: no permission to write in {existing}")
    return path


@contextlib.contextmanager
def exclusive_lock(path: str | Path, *, busy: str | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block. Locks are
    per open file description, so this excludes other threads of the process too. Waits for
    the lock, or, given ``busy`` (what the lock protects, for the message), refuses at once
    with :class:`AdbenchError` when another process holds it."""
    lock = Path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise AdbenchError(
                f"{busy} is in use by another process (it holds {lock}): wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
