"""Hand the heap a dispatch round freed back to the system (glibc's ``malloc_trim``).

glibc keeps freed pages in its arenas: a worker's RSS grew over hundreds of jobs with
Python's own objects flat (docs/reliability.md). A fixed low mmap threshold
(``MALLOC_MMAP_THRESHOLD_=131072``) kept it flat but maps and unmaps CTranslate2's
buffers on every model op: 20 lone clips took 14.9-15.4 s against 10.6-11.9 s without
it. Trimming once per round costs nothing measurable (9.7 s) and returns the pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # glibc only


_LIBC = _libc()


def release_freed_memory() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
