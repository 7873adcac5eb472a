import dataclasses

import pytest

from attn_audit import data

tfds = pytest.importorskip(
    "tensorflow_datasets", reason="tensorflow-datasets is in the [test] extra; install it"
)


@pytest.mark.parametrize(
    "name, task",
    [("glue/sst2", "classification"), ("imdb_reviews", "classification"),
     ("ag_news_subset", "classification"), ("snli", "qa")],
)  # fmt: skip
def test_tfds_path_under_mock_data(name, task):
    with tfds.testing.mock_data(num_examples=40):
        dataset = data.load_dataset(f"tfds:{name}")
    assert dataset.task == task and dataset.name == f"tfds:{name}"
    assert all(dataset.splits[s] for s in ("train", "test"))
    for split in dataset.splits.values():
        for example in split:
            assert 0 <= example.label < dataset.num_classes
            assert all(isinstance(t, str) for t in example.tokens)
            assert (example.question is not None) == (task == "qa")
    # Mock texts are a few random letters: too short for the length filter and too varied
    # for the data set's min_df, so encode them without the filter and with min_df 1.
    vocab = data.build_vocabulary([e.tokens for e in dataset.splits["train"]], min_df=1)
    test = data.encode_split(dataclasses.replace(dataset, length_filter=False), "test", vocab)
    assert len(test) > 0 and all(
        ids[0] == data.SOS and ids[-1] == data.EOS for ids in test.token_ids
    )


def test_unknown_tfds_name():
    with pytest.raises(data.DataError, match="Unknown TFDS data set 'mnist'"):
        data.load_dataset("tfds:mnist")
