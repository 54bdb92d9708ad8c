"""Keep freed memory in the process, on glibc. PyTorch's CPU tensors come from malloc, and glibc serves
every block above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on free; a batch of
500 CIFAR images makes activations of 30-400 MB, so every layer of every batch faults its output's pages
in anew. Seen in the shipped grid's sweep (MobileNetV2, 10,000 test images per crossbar, /proc/PID/stat):
45% of the CPU time in the kernel, ~60 s a crossbar; with the blocks kept in the heap, 0.1% and ~27 s.
`python -m dse bench` measures it: `evaluate` in a fresh process with and without (section 2).

The cost: a process's heap stays at its peak until it exits. So it is set in the processes that compute
(the CLI, sweep and app workers, Ray tasks), not in the app's own."""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
_NEVER_TRIM = -1  # mallopt's int, read by glibc as a size_t: SIZE_MAX, so the heap's top is never trimmed


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the running process's symbols: its C library
        libc.gnu_get_libc_version  # noqa: B018  only glibc has it (musl's mallopt is a no-op)
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory(keep: bool = True) -> bool:
    """Serve every block from the heap and keep what is freed (`keep`), or restore glibc's defaults
    (mmap above the threshold, trim above 128 KB). True when the setting took; False off glibc."""
    libc = _glibc()
    if libc is None:
        return False
    mmap_max, trim = (0, _NEVER_TRIM) if keep else (65536, 128 * 1024)
    return bool(libc.mallopt(M_MMAP_MAX, mmap_max)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim))
