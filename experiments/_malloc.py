"""glibc malloc settings for a process that runs XLA (or PyTorch) programs; imports nothing
but ``ctypes``, so an eager PyTorch process can apply them without importing JAX."""

import ctypes

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory() -> bool:
    """Makes glibc's malloc keep freed memory for the next allocation instead of returning it.

    XLA:CPU allocates each run's buffers afresh: with glibc's defaults a large one is a new
    ``mmap`` (always, from XLA's worker threads, whose arenas cannot hold it), whose every
    page faults when first written, and ``munmap`` after. One arena (the main heap), no
    ``mmap`` and no trimming below 1 GiB make the same addresses serve every run. Measured
    on the 2-core CPU VM: integrated gradients' gradient program 98 → 71 ms, 19.7k page faults
    a run → 0.1k. Call it before anything allocates from threads (first thing in a
    process); a no-op off glibc. Returns whether it applied.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**30))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
