"""experiments.ground_truth end to end on toy SST: planted tasks trained, explained and judged
for two encoders; the JSON, CSV and RESULTS.md section agree with the records counted by
hand; a second call reuses every run; tasks without evidence and bad names are one-line
errors."""

import csv
import json

import numpy as np
import pytest

from attn_audit.report import read_records
from tests._fixtures import command_runner, tiny_paper_recipe, write_toy_sst

TASKS, ENCODERS, EXPLAINERS = ("planted:single", "planted:xor"), ("average", "cnn"), (
    "attention", "grad_l2", "occlusion")  # fmt: skip


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    tiny_paper_recipe(monkeypatch)
    folder = tmp_path_factory.mktemp("ground_truth")
    data_dir = write_toy_sst(folder / "data", n=160)
    flags = (f"--data_dir={data_dir}", f"--runs_dir={folder / 'runs'}",
             f"--results_dir={folder / 'results'}", f"--tasks={','.join(TASKS)}",
             f"--encoders={','.join(ENCODERS)}", f"--explainers={','.join(EXPLAINERS)}",
             "--epochs=2", "--limit=10")  # fmt: skip
    _, run = command_runner("ground_truth")
    run(*flags)
    yield folder, flags, run
    monkeypatch.undo()


def test_results_agree_with_the_records_counted_by_hand(measured):
    folder, _, _ = measured
    results = folder / "results"
    with open(results / "ground_truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(TASKS) * len(ENCODERS) * len(EXPLAINERS)
    for task in TASKS:
        for encoder in ENCODERS:
            name = f"{task.replace(':', '_')}_{encoder}"
            entry = json.loads((results / "ground_truth" / f"{name}.json").read_text())
            assert (entry["task"], entry["encoder"], entry["instances"]) == (task, encoder, 10)
            assert entry["minutes"]["explain"] > 0 and entry["minutes"]["eraser"] > 0
            run = folder / "runs" / task.replace(":", "_") / encoder
            assert (run / "report.html").is_file()
            records = read_records(run / "explain" / "test" / "records.jsonl")
            k = 1 if task == "planted:single" else 2
            for record in records:  # the markers are the evidence
                marked = [t for t, e in zip(record["tokens"], record["evidence"], strict=True) if e]
                assert len(marked) == k
                assert set(marked) <= {"walrus", "narwhal", "marmot", "ibis"}
            agreement = entry["eraser_agreement"]["aopc_comprehensiveness"]
            assert agreement["explainers"] == entry["ranking"] and agreement["instances"] == 10
            assert -1.0 <= agreement["tau"] <= 1.0
            for explainer in EXPLAINERS:
                exact = []
                for record in records:
                    magnitude = np.abs(np.asarray(record[explainer], np.float64))
                    top = np.argsort(-magnitude, kind="stable")[:k]
                    exact.append(set(top) == set(np.flatnonzero(record["evidence"])))
                found = entry["explainers"][explainer]
                assert found["exact_top_k"]["mean"] == pytest.approx(np.mean(exact))
                assert found["misses"] == len(exact) - sum(exact)
                for label, part in found["exact_top_k_by_class"].items():
                    chosen = [e for e, r in zip(exact, records, strict=True)
                              if r["predicted_class"] == int(label)]  # fmt: skip
                    assert part == {"mean": pytest.approx(np.mean(chosen)), "count": len(chosen)}
                row = next(r for r in rows if (r["task"], r["encoder"], r["explainer"])
                           == (task, encoder, explainer))  # fmt: skip
                assert float(row["exact_top_k_mean"]) == pytest.approx(np.mean(exact))
    section = (results / "RESULTS.md").read_text()
    assert "<!-- ground_truth start -->" in section and "### planted:xor" in section
    assert "| attention |" in section and "τ with comprehensiveness" in section


def test_a_second_call_reuses_every_run(measured):
    folder, flags, run = measured
    checkpoints = sorted((folder / "runs").rglob("checkpoints/**/*"))
    stamps = {path: path.stat().st_mtime_ns for path in checkpoints if path.is_file()}
    before = (folder / "results" / "ground_truth.csv").read_text()
    run(*flags)
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    assert (folder / "results" / "ground_truth.csv").read_text() == before


@pytest.mark.parametrize(
    ("task", "message"),
    [("agnews", "agnews carries no evidence"), ("planted:nand", "Unknown planted task 'nand'")],
)
def test_tasks_without_evidence_or_bad_names_are_one_line_errors(measured, task, message):
    folder, _, run = measured
    with pytest.raises(SystemExit) as exit_info:
        run(f"--data_dir={folder / 'data'}", f"--tasks={task}", f"--runs_dir={folder / 'r2'}",
            f"--results_dir={folder / 'r2'}")  # fmt: skip
    assert message in str(exit_info.value) and "\n" not in str(exit_info.value)
