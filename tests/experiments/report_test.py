"""experiments.report: rebuilds a run's page from its records and prints where it is; a
folder with nothing to show is a one-line error."""

import pytest

from tests._fixtures import command_runner, make_records
from tests.report.page_test import write_run


def test_report_rebuilds_the_page_and_prints_its_path(tmp_path, capsys):
    workdir = write_run(tmp_path / "run", make_records(5))
    _, report = command_runner("report")
    report(f"--workdir={workdir}")
    page = workdir / "report.html"
    assert f"Report: {page.resolve()}" in capsys.readouterr().out
    assert "Instances" in page.read_text(encoding="utf-8")
    report(f"--workdir={workdir}", "--split=test")
    assert not list(workdir.glob("*.partial"))


def test_nothing_to_show_is_a_clear_error(tmp_path):
    _, report = command_runner("report")
    with pytest.raises(SystemExit) as error:
        report(f"--workdir={tmp_path / 'missing'}")
    assert str(error.value.code).startswith("error: Run folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as error:
        report(f"--workdir={tmp_path / 'empty'}", "--split=dev")
    assert "holds no audit, explanations or faithfulness results for split 'dev'" in str(
        error.value.code
    )
