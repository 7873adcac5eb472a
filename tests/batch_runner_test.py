"""attn_audit.batch_runner: parts are resumed only by the plan that wrote them (a part is named by
its batch number), and every instance of the plan is in the merged records."""

import numpy as np
import pytest

from attn_audit import report
from attn_audit.batch_runner import NonFiniteError, check_split, require_finite, run_batches
from tests.audits.runner_test import toy_split


class CountingEngine:
    """Returns each row's length; ``calls`` counts the batches run."""

    programs = ("lengths",)

    def __init__(self):
        self.calls = 0

    def compile(self, batch, program=None):
        del batch, program

    def __call__(self, batch):
        self.calls += 1
        return {"lengths": batch["lengths"]}


def records_of(batch, results):
    return [{"index": int(batch["index"][row]), "length": int(results["lengths"][row])}
            for row in np.flatnonzero(batch["index"] >= 0)]  # fmt: skip


def test_resume_needs_the_plan_that_wrote_the_parts(tmp_path):
    split = toy_split()
    engine = CountingEngine()
    records, _ = run_batches(engine, split, (8, 16), 2, tmp_path, records_of)
    assert [r["index"] for r in records] == list(range(len(split.labels)))
    calls = engine.calls
    (tmp_path / "parts" / "00001.jsonl").unlink()
    again, _ = run_batches(engine, split, (8, 16), 2, tmp_path, records_of)
    assert again == records and engine.calls == calls + 1  # only the missing batch ran
    with pytest.raises(ValueError, match="batches of another plan"):
        run_batches(engine, split, (16,), 2, tmp_path, records_of)  # other widths
    with pytest.raises(ValueError, match="batches of another plan"):
        run_batches(engine, split, (8, 16), 4, tmp_path, records_of)  # other batch size


def test_parts_without_a_plan_are_checked_against_this_one(tmp_path):
    split = toy_split()
    run_batches(CountingEngine(), split, (8, 16), 2, tmp_path / "run", records_of)
    (tmp_path / "run" / "parts" / "plan.json").unlink()  # as an older version left them
    records, _ = run_batches(CountingEngine(), split, (8, 16), 2, tmp_path / "run", records_of)
    assert len(records) == len(split.labels)
    (tmp_path / "run" / "parts" / "plan.json").unlink()
    with pytest.raises(ValueError, match="holds other instances than batch 0"):
        run_batches(CountingEngine(), split, (16,), 2, tmp_path / "run", records_of)


def test_a_part_that_lost_records_is_an_error_not_a_shorter_file(tmp_path):
    split = toy_split()
    run_batches(CountingEngine(), split, (8, 16), 2, tmp_path, records_of)
    part = tmp_path / "parts" / "00000.jsonl"
    report.write_records(part, report.read_records(part)[:1])
    with pytest.raises(RuntimeError, match="delete the folder and run again"):
        run_batches(CountingEngine(), split, (8, 16), 2, tmp_path, records_of)


def test_a_resumed_run_keeps_the_timings_of_the_runs_before_it(tmp_path):
    split = toy_split()
    _, first = run_batches(CountingEngine(), split, (8, 16), 2, tmp_path, records_of)
    assert first["batches"] > 1 and len(first["runs"]) == 1
    assert first["runs"][0]["wall_seconds"] == first["wall_seconds"]
    (tmp_path / "parts" / "00001.jsonl").unlink()
    _, resumed = run_batches(CountingEngine(), split, (8, 16), 2, tmp_path, records_of)
    assert resumed["batches"] == 1
    assert [run["batches"] for run in resumed["runs"]] == [first["batches"], 1]
    _, finished = run_batches(CountingEngine(), split, (8, 16), 2, tmp_path, records_of)
    assert finished["batches"] == 0 and finished["runs"] == resumed["runs"]  # nothing new ran


def test_require_finite_names_the_instance_and_the_field():
    record = {"id": "sst-7", "index": 7}
    require_finite(record, {"prediction": [0.2, 0.8], "tau": None, "scores": [[1.0], [2.0]]})
    with pytest.raises(
        NonFiniteError, match=r"'sst-7' \(index 7\) has a non-finite loo: \[ 1\., nan\]"
    ):
        require_finite(record, {"prediction": [0.2, 0.8], "loo": [1.0, float("nan")]})
    with pytest.raises(NonFiniteError, match="non-finite gap"):
        require_finite(record, {"gap": float("-inf")})


def test_a_split_that_cannot_run_is_named_before_any_batch():
    split = toy_split()
    broken = split.__class__(split.examples, split.token_ids[:-1], split.labels)
    with pytest.raises(ValueError, match="lists differ in length"):
        check_split(broken)
    empty = list(split.token_ids)
    empty[2] = empty[2][[0, -1]]  # SOS, EOS and nothing between
    with pytest.raises(ValueError, match=r"Instance 'x2' \(index 2\) has no token between"):
        check_split(split.__class__(split.examples, empty, split.labels))
