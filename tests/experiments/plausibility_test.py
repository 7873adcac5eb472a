"""experiments.plausibility end to end: a tiny model trained on toy SST whose cue words are
the only leaves with a sentiment label (the evidence), explained and audited; the command
scores every explanation and leave-one-out against that evidence, writes records, a summary
and the report page, and gives one-line errors."""

import json

import pytest

from attn_audit import data, training
from attn_audit.report import read_records
from tests._fixtures import TINY, command_runner, toy_trees

CUES = {"great": 4, "superb": 4, "awful": 0, "dull": 0}


def _labelled(trees):
    """Toy trees whose cue leaf carries its sentiment: the SST evidence of the tree."""
    for word, label in CUES.items():
        trees = [tree.replace(f"(2 {word})", f"({label} {word})") for tree in trees]
    return trees


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plausibility")
    (folder / "data" / "sst").mkdir(parents=True)
    for name, count, seed in (("train", 120, 0), ("dev", 60, 1), ("test", 60, 2)):
        trees = _labelled(toy_trees(count, seed=seed))
        (folder / "data" / "sst" / f"{name}.txt").write_text("\n".join(trees) + "\n")
    dataset = data.load_dataset("sst", folder / "data")
    workdir = folder / "run"
    training.run_training(
        training.TrainConfig(epochs=1, learning_rate=0.02, **TINY), workdir, dataset=dataset
    )
    flags = (f"--workdir={workdir}", f"--data_dir={folder / 'data'}", "--limit=12",
             "--batch_size=6")  # fmt: skip
    command_runner("explain")[1](*flags, "--explainers=attention,grad_l2,occlusion,random")
    command_runner("audit")[1](*flags, "--audits=loo")
    return workdir, folder / "data"


def test_scores_every_explanation_against_the_cue_words(explained):
    workdir, data_dir = explained
    _, plausibility = command_runner("plausibility")
    plausibility(f"--workdir={workdir}", f"--data_dir={data_dir}")
    out = workdir / "plausibility" / "test"
    records = read_records(out / "records.jsonl")
    explain = read_records(workdir / "explain/test/records.jsonl")
    assert [r["index"] for r in records] == list(range(12))
    for record, explained_record in zip(records, explain, strict=True):
        evidence = explained_record["evidence"]
        assert record["num_evidence"] == sum(evidence) == 1  # the one cue word
        assert set(record["plausibility"]) == {"attention", "grad_l2", "occlusion", "random",
                                               "loo"}  # fmt: skip
        for name, measures in record["plausibility"].items():
            scores = [abs(s) for s in (explained_record.get(name) or [])]
            if name == "loo" or not scores:
                continue
            top = scores.index(max(scores))  # one evidence word: top-1 hits it or not
            assert measures["exact_top_k"] == measures["top_k_f1"] == float(evidence[top])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["defined"] == 12 and len(summary["ranking"]) == 5
    assert "Does the explanation find the evidence?" in (workdir / "report.html").read_text()


def test_clear_errors(explained, tmp_path):
    workdir, data_dir = explained
    _, plausibility = command_runner("plausibility")
    with pytest.raises(SystemExit) as error:
        plausibility(f"--workdir={workdir}", f"--data_dir={data_dir}", "--split=dev")
    assert "explain the split first" in str(error.value.code)
