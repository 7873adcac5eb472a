"""benchmarks._results: remarks survive a new run; command lines carry no machine paths."""

from absl import flags

from benchmarks import _results


def test_write_results_keeps_the_hand_written_remarks(tmp_path):
    path = tmp_path / "sub" / "RESULTS.md"
    _results.write_results(path, "# first run")
    assert path.read_text() == f"# first run\n{_results.REMARKS_MARKER}\n\n"
    path.write_text(path.read_text() + "Why the numbers moved.\n")
    _results.write_results(path, "# second run")
    assert (
        path.read_text() == f"# second run\n{_results.REMARKS_MARKER}\n\nWhy the numbers moved.\n"
    )


def test_command_line_writes_absolute_paths_relative_to_the_repository():
    values = flags.FlagValues()
    folder = flags.DEFINE_string("data_dir", None, "", flag_values=values)
    limit = flags.DEFINE_integer("limit", 128, "", flag_values=values)
    unset = flags.DEFINE_integer("batch_size", 32, "", flag_values=values)
    data_dir = _results.REPO.parent / "shared" / "data"
    values(["command", f"--data_dir={data_dir}", "--limit=5"])
    line = _results.command_line("benchmarks.x", (folder, limit, unset))
    assert line == "python -m benchmarks.x --data_dir=../shared/data --limit=5"
