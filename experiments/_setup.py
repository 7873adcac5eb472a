"""What every command does first: quiet library logging, and JAX's persistent compilation cache."""

import logging
import os
import pathlib
import shlex
import subprocess
import sys

import jax

from attn_audit import data
from attn_audit.batch_runner import NonFiniteError
from attn_audit.folder_lock import FolderBusyError
from attn_audit.report import RecordsFormatError
from attn_audit.training import CheckpointError, TrainingDiverged

CACHE_ENV_VAR = "ATTN_AUDIT_JAX_CACHE"
# What a command reports as one line (``error: ...``) instead of a traceback: bad input or a
# damaged folder, each with a message that says what to do.
USER_ERRORS = (
    data.DataError, CheckpointError, ValueError, FileNotFoundError, NotADirectoryError,
    FolderBusyError, TrainingDiverged, NonFiniteError, RecordsFormatError,
)  # fmt: skip


class _DropLibraryInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        noisy = "orbax" in record.pathname or "/jax/_src/" in record.pathname
        return record.levelno >= logging.WARNING or not noisy


def quiet_libraries() -> None:
    """Drops INFO records of orbax and jax internals from every root handler."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropLibraryInfo())


def enable_compilation_cache() -> pathlib.Path | None:
    """Keeps compiled XLA programs on disk, so a second run of a command skips compilation.

    The folder is ``$ATTN_AUDIT_JAX_CACHE``, else ``~/.cache/attn_audit/jax``; setting the
    variable to an empty string turns the cache off.
    """
    folder = os.environ.get(CACHE_ENV_VAR, str(pathlib.Path.home() / ".cache/attn_audit/jax"))
    if not folder:
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    # Every program: even a 0.3 s compilation repeated per bucket adds up in a warm run.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return pathlib.Path(folder)


def setup() -> pathlib.Path | None:
    """Quiets library logging and enables the compilation cache; returns its folder (or None)."""
    quiet_libraries()
    return enable_compilation_cache()


def machine_provenance() -> dict:
    """What a summary's provenance says about the command, code and machine that made it:
    ``command``, ``code_version``, ``jax``, ``devices`` and ``machine``."""
    import platform

    import jax

    return {
        "command": command_line(),
        "code_version": code_version(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.local_devices()],
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
    }


def command_line() -> str:
    """The running command as a user would type it: ``python -m experiments.<name> --flags``."""
    program = pathlib.Path(sys.argv[0])
    head = (["python", "-m", f"experiments.{program.stem}"]
            if program.parent.name == "experiments" else [program.name])  # fmt: skip
    return shlex.join(head + sys.argv[1:])


def code_version() -> str:
    """``git describe --always --dirty`` of the code, or "unknown" outside a git checkout."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
            cwd=pathlib.Path(__file__).parent, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_report_page(workdir, split: str) -> None:
    """Writes (or refreshes) the run's ``report.html`` for ``split`` and prints its path.

    The records are safe on disk before this runs: a page that cannot be written is a
    warning naming the command that rebuilds it, not a failed run.
    """
    from attn_audit.report.page import write_report

    try:
        path = write_report(workdir, split)
    except (OSError, ValueError) as error:
        logging.warning("The report page was not written (%s); rebuild it with "
                        "python -m experiments.report --workdir=%s --split=%s",
                        error, workdir, split)  # fmt: skip
        return
    print(f"Report: {path.resolve()}")
