"""The machine a benchmark ran on, for its RESULTS file."""

import os
import pathlib
import platform
import sys


def describe(*libraries: str) -> str:
    """``"<CPU model>; <n> cores; Python x.y.z"`` followed by ``libraries`` (already formatted)."""
    model = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return ", ".join(
        [f"{model}; {os.cpu_count()} cores; Python {platform.python_version()}", *libraries,
         *jax_devices()]
    )  # fmt: skip


def jax_devices() -> list[str]:
    """``["JAX devices: 1 × NVIDIA H100 80GB HBM3"]`` when JAX is loaded and runs on an
    accelerator (a CPU run says so through its backend already); else ``[]``."""
    jax = sys.modules.get("jax")
    if jax is None or jax.default_backend() == "cpu":
        return []
    kinds = [device.device_kind for device in jax.local_devices()]
    return [f"JAX devices: {len(kinds)} × {kinds[0]}"]


def matmul_peak() -> float:
    """GFLOP/s of a float32 2048² matmul under ``jax.jit`` on the default device (best of a
    warm loop of 10): the rate compute floors are counted against."""
    import time

    import jax
    import jax.numpy as jnp

    a = jnp.ones((2048, 2048), jnp.float32)
    product = jax.jit(lambda x: x @ x)
    product(a).block_until_ready()
    seconds = []
    for _ in range(10):
        start = time.perf_counter()
        product(a).block_until_ready()
        seconds.append(time.perf_counter() - start)
    return 2 * 2048**3 / min(seconds) / 1e9
