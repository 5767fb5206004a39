"""Give the C heap's free pages back to the system after a burst of allocations.

Loading and compiling a config of 10,000 checks allocates far more than it keeps (the
YAML parse alone ~190 MB, freed as it ends). glibc's malloc returns freed memory to the
system only from the top of its heap, so the pages freed below stayed resident for the
daemon's whole life. `malloc_trim(0)` hands every free page back (madvise): measured on
a config of 10,000 checks, 16.6 MB less resident, for 3 ms of the event loop once per
start or reload. Called through ctypes: no library wraps it. Where the C library has no
`malloc_trim` (musl), this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the interpreter's libc
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where that is not possible."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
