"""attn_audit.folder_lock: a second writer is refused with the owner's pid; a lock left by a
killed process is taken over; a file in the folder's place is a clear error."""

import os
import signal
import subprocess
import sys
import time

import pytest

from attn_audit.folder_lock import LOCK_FILE, FolderBusyError, folder_lock

HOLDER = """
import sys, time
from attn_audit.folder_lock import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_writer_is_refused_and_a_killed_writers_lock_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=f"Another process \\(pid {holder.pid}\\) is "
                           f"writing {folder}"):  # fmt: skip
            with folder_lock(folder):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    with folder_lock(folder):  # the dead holder's lock is gone with it
        assert (folder / LOCK_FILE).read_text() == str(os.getpid())


def test_the_lock_is_released_after_the_block_and_on_an_error(tmp_path):
    with folder_lock(tmp_path / "a"):
        with pytest.raises(FolderBusyError):
            with folder_lock(tmp_path / "a"):  # the same process, twice: refused too
                pass
    with pytest.raises(KeyError):
        with folder_lock(tmp_path / "a"):
            raise KeyError("boom")
    start = time.perf_counter()
    with folder_lock(tmp_path / "a"):
        pass
    assert time.perf_counter() - start < 5


def test_a_file_where_the_folder_should_be_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        with folder_lock(tmp_path / "file"):
            pass
