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


def checked_cache_folder(folder: pathlib.Path) -> pathlib.Path:
    """``folder``, made (mode 0700) when missing, after checking that only this user can write
    to it: JAX loads what the compilation cache holds as code, so a folder that another user
    can write to would run their code in every command.

    Raises:
      ValueError: the folder is not a folder, belongs to another user, or is writable by the
        group or others; the message says how to fix it.
    """
    folder = pathlib.Path(folder)
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
    if not folder.is_dir():
        raise ValueError(
            f"The compilation cache {folder} is not a folder; point {CACHE_ENV_VAR} at a folder."
        )
    status = folder.stat()
    fix = f"or point {CACHE_ENV_VAR} at a folder of your own ('' turns the cache off)"
    if status.st_uid != os.getuid():
        raise ValueError(
            f"The compilation cache {folder} belongs to another user (uid {status.st_uid}); JAX "
            f"loads what it holds as code. Use a folder you own, {fix}."
        )
    if status.st_mode & 0o022:
        raise ValueError(
            f"The compilation cache {folder} is writable by other users (mode "
            f"{status.st_mode & 0o777:o}); JAX loads what it holds as code. Make it yours only "
            f"(chmod go-w {folder}), {fix}."
        )
    return folder


def enable_compilation_cache() -> pathlib.Path | None:
    """Keeps compiled XLA programs on disk, so a second run of a command skips compilation.

    The folder is ``$ATTN_AUDIT_JAX_CACHE``, else ``~/.cache/attn_audit/jax``; setting the
    variable to an empty string turns the cache off. It must be this user's alone
    (``checked_cache_folder``).
    """
    folder = os.environ.get(CACHE_ENV_VAR, str(pathlib.Path.home() / ".cache/attn_audit/jax"))
    if not folder:
        return None
    folder = str(checked_cache_folder(pathlib.Path(folder)))
    jax.config.update("jax_compilation_cache_dir", folder)
    # Every program: even a 0.3 s compilation repeated per bucket adds up in a warm run.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return pathlib.Path(folder)


def setup() -> pathlib.Path | None:
    """Quiets library logging and enables the compilation cache; returns its folder (or None).
    A cache folder that others can write to ends the command with a one-line error."""
    quiet_libraries()
    try:
        return enable_compilation_cache()
    except ValueError as error:
        sys.exit(f"error: {error}")


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
