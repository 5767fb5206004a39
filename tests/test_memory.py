"""release_free_memory (memory.py) hands the C heap's free pages back to the system."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a fresh interpreter, so no other test's heap is in the way: 64 MB of 4 KB buffers
# (malloc'd, above Python's small-object allocator), every 64th kept, so the freed ones
# lie below live ones where glibc cannot give them back by shrinking the heap.
CHILD = textwrap.dedent(
    """
    from uptime_probe.memory import release_free_memory

    def resident_kb() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4

    buffers = [bytearray(4096) for _ in range(16_384)]
    kept = buffers[::64]
    del buffers
    before = resident_kb()
    assert release_free_memory()
    print(before - resident_kb())
    """
)


def test_freed_heap_pages_go_back_to_the_system() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    released_kb = int(result.stdout)
    assert released_kb > 32 * 1024, f"only {released_kb} KB given back of ~63 MB freed"
