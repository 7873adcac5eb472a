"""The machine a benchmark ran on, for its RESULTS file."""

import os
import pathlib
import platform


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
        [f"{model}; {os.cpu_count()} cores; Python {platform.python_version()}", *libraries]
    )
