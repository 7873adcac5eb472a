"""experiments._setup: the compilation cache folder must be this user's alone (JAX loads what
it holds as code); a missing one is made private, a shared one is a one-line error."""

import os
import stat

import pytest

from experiments import _setup


def test_a_missing_cache_folder_is_made_for_this_user_only(tmp_path):
    folder = _setup.checked_cache_folder(tmp_path / "cache" / "jax")
    assert folder.is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_cache_folder_others_can_write_to_is_refused(tmp_path, mode):
    folder = tmp_path / "shared_cache"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(ValueError, match=rf"writable by other users \(mode {mode:o}\).*chmod go-w"):
        _setup.checked_cache_folder(folder)
    folder.chmod(0o755)  # readable by others is fine: only writing is code injection
    assert _setup.checked_cache_folder(folder) == folder


def test_a_cache_folder_of_another_user_or_a_file_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: folder.stat().st_uid + 1)
    with pytest.raises(ValueError, match="belongs to another user"):
        _setup.checked_cache_folder(folder)
    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a folder"):
        _setup.checked_cache_folder(tmp_path / "file")


def test_setup_ends_a_command_with_one_line(tmp_path, monkeypatch):
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o777)
    monkeypatch.setenv(_setup.CACHE_ENV_VAR, str(folder))
    with pytest.raises(SystemExit) as exit_info:
        _setup.setup()
    assert str(exit_info.value).startswith("error: The compilation cache")
    assert "\n" not in str(exit_info.value)
