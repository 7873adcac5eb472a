"""One writer per folder: ``folder_lock`` holds an exclusive lock on ``<folder>/.lock``.

Training holds its run folder, and each audit, explanation or faithfulness run holds its
output folder, so two processes never write the same files. The lock is the kernel's
(``fcntl.flock``): a process that dies, even by SIGKILL, releases it, so a lock left by a
killed process is taken over by the next one. The file holds the owner's pid, for the
message a second process gets.
"""

import contextlib
import fcntl
import os
import pathlib

LOCK_FILE = ".lock"


class FolderBusyError(RuntimeError):
    """Another process is writing the folder; the message names its pid."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike):
    """Holds ``folder``'s lock (creating the folder) for the ``with`` block.

    Raises:
      FolderBusyError: at once, if another process (or another ``folder_lock`` of this one)
        holds it.
    """
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder: choose another path.")
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 (held open)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise FolderBusyError(
            f"Another process (pid {owner}) is writing {folder}. Wait for it to finish (or "
            "stop it), then run this command again: it resumes where that one stopped."
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield folder
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
