"""experiments._budgets: the reduced budgets and the overrides of runs that isolate a cause."""

import pytest

from attn_audit import data
from experiments._budgets import apply_budget
from tests._fixtures import write_toy_sst


def test_train_limit_keeps_a_seeded_sample_and_refuses_one_that_keeps_everything(tmp_path):
    data_dir = write_toy_sst(tmp_path, n=40)
    dataset = data.load_dataset("sst", data_dir)
    everything = list(dataset.splits["train"])
    budget, train_limit, audit_limit = apply_budget(dataset, epochs=3, train_limit=10)
    assert (budget, train_limit, audit_limit) == ({"epochs": 3}, 10, None)
    kept = dataset.splits["train"]
    assert len(kept) == 10 and all(example in everything for example in kept)
    again = data.load_dataset("sst", data_dir)
    apply_budget(again, train_limit=10)
    assert again.splits["train"] == kept  # the same sample every time
    with pytest.raises(ValueError, match="keeps all 10 training instances of sst"):
        apply_budget(dataset, train_limit=10)
