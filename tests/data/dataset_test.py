"""attn_audit.data.dataset (and the registry in attn_audit.data): unknown names, the data
folder, missing and malformed files."""

import pytest

from attn_audit import data
from attn_audit.data import dataset


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(data.DataError, match=r"Unknown dataset 'sts'.*'sst'.*tfds:<name>"):
        data.load_dataset("sts")


def test_data_folder_from_argument_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path))
    assert data.resolve_data_dir() == tmp_path.resolve()
    assert data.resolve_data_dir(tmp_path / ".") == tmp_path.resolve()
    with pytest.raises(data.DataError, match=r"does not exist\. Pass --data_dir=DIR or set"):
        data.resolve_data_dir(tmp_path / "nowhere")


def test_require_file_returns_the_file_and_names_a_missing_one(tmp_path):
    present = tmp_path / "train.txt"
    present.write_text("(3 (3 good))\n")
    assert dataset.require_file(present, "SST train split") == present
    with pytest.raises(data.DataError, match=r"Missing file .*dev\.txt \(SST dev split\)"):
        dataset.require_file(tmp_path / "dev.txt", "SST dev split")
    with pytest.raises(data.DataError, match="ATTN_AUDIT_DATA"):
        dataset.require_file(tmp_path, "a folder is not a file")


def test_malformed_names_the_file_and_the_line():
    error = dataset.malformed("sst/train.txt", 7, "not a labelled PTB tree")
    assert isinstance(error, data.DataError)
    assert str(error).startswith("sst/train.txt, line 7: not a labelled PTB tree.")


def test_text_dataset_checks_its_task_and_splits():
    splits = {name: [] for name in dataset.SPLITS}
    with pytest.raises(ValueError, match="task must be one of"):
        dataset.TextDataset("toy", "regression", ("a", "b"), splits, min_df=1)
    with pytest.raises(ValueError, match=r"lacks the splits \['test'\]"):
        dataset.TextDataset("toy", "classification", ("a", "b"), {"train": [], "dev": []}, 1)


@pytest.mark.parametrize("labels", [None, [0] * 30 + [1] * 10])
def test_seeded_split_is_a_seeded_partition(labels):
    items = [f"item{i}" for i in range(40)]
    rest, held_out = dataset.seeded_split(items, 0.25, seed=3, labels=labels)
    assert len(held_out) == 10 and sorted(rest + held_out) == sorted(items)
    assert dataset.seeded_split(items, 0.25, seed=3, labels=labels) == (rest, held_out)
    assert dataset.seeded_split(items, 0.25, seed=4, labels=labels) != (rest, held_out)
    assert held_out == sorted(held_out, key=items.index)  # in the items' order
    if labels is not None:  # stratified: each class loses a quarter
        assert sum(items.index(i) < 30 for i in held_out) == 8
