"""Keep freed memory in the process (glibc), so that CPU steps stop page-faulting.

Why: glibc's malloc serves each block above its mmap threshold (128 KB to start, raised
adaptively) with a fresh ``mmap`` and gives freed memory at the top of the heap back to the
kernel above its trim threshold. A CPU training step, a batched source's step or its update
allocates and frees the same megabyte-sized tensors over and over, so with the defaults
each of them faults its pages in again, and the kernel zeroes every page first: the darkroom
recipe's AD step faulted ~3,100 pages, the 1,300-learner A2C 9,700-16,700 per episode, and the
kernel's share of the CPU on this machine reached half while two such jobs ran. PyTorch's
CPU performance guide recommends jemalloc or tcmalloc for the same reason; this sets glibc's
own knobs (``mallopt``) instead, with nothing to install: blocks up to 32 MiB come from the
heap, and up to 512 MiB of freed heap is kept for reuse (the process keeps the memory of
its peak working set, which it will need again at the next step).

``adbench``'s command line calls :func:`retain_freed_memory` once at start; library users
can call it themselves. It does nothing where it does not apply (not glibc), or where the
user chose the allocator's behaviour already: ``MALLOC_*_`` or ``GLIBC_TUNABLES`` in the
environment, another allocator in ``LD_PRELOAD``, or ``ADBENCH_SYSTEM_MALLOC=1``.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# The largest mmap threshold glibc accepts on 64-bit (half of its 64 MiB heap size).
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 512 * 2**20

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (see the module doc); ``True`` if they were set."""
    if os.environ.get("ADBENCH_SYSTEM_MALLOC") == "1":
        return False
    if any(name in os.environ for name in _USER_SETTINGS) or os.environ.get("LD_PRELOAD"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success; the mmap threshold first, since setting it also fixes
    # the trim threshold's adaptive rule.
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
