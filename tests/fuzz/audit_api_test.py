"""The public audit API (``run_audit``) on random lengths, padding widths and batch sizes:
every record is finite, well formed and independent of how the split was batched; a split it
cannot run is a clear ValueError naming the instance, never an error from deep inside."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attn_audit import audits, data
from attn_audit.audits import runner
from attn_audit.data.dataset import Example
from tests._fixtures import VOCAB_SIZE, tiny_model

# Fewer cases than the other properties: each runs two audits of a whole split.
EXAMPLES = max(3, settings.default.max_examples // 10)
OPTIONS = audits.AuditOptions(audits=("gradient", "loo", "permutation"), num_permutations=8)
MODEL = tiny_model("lstm", "tanh")


def split_of(rows: list[list[int]]) -> data.EncodedSplit:
    token_ids = [np.asarray([data.SOS, *row, data.EOS], np.int32) for row in rows]
    examples = [Example(f"i{n}", tuple(f"w{t}" for t in row), n % 2) for n, row in enumerate(rows)]
    return data.EncodedSplit(examples, token_ids, np.asarray([e.label for e in examples]))


rows = st.lists(st.lists(st.integers(4, VOCAB_SIZE - 1), min_size=1, max_size=14),
                min_size=1, max_size=7)  # fmt: skip


@settings(max_examples=EXAMPLES)
@given(rows=rows, widths=st.sampled_from([(16,), (8, 16)]), batch_size=st.sampled_from([1, 3, 4]))
def test_records_are_finite_and_do_not_depend_on_batching(tmp_path_factory, rows, widths,
                                                          batch_size):  # fmt: skip
    model, params = MODEL
    split = split_of(rows)
    folder = tmp_path_factory.mktemp("audit")
    options = dataclasses.replace(OPTIONS, batch_size=batch_size)
    records, _ = runner.run_audit(model, params, split, widths, folder / "a", options)
    alone, _ = runner.run_audit(model, params, split, (16,), folder / "b", OPTIONS)
    assert [r["index"] for r in records] == list(range(len(rows)))
    for record, other, row in zip(records, alone, rows, strict=True):
        assert len(record["attention"]) == len(record["gradient"]) == len(row)
        assert np.isclose(sum(record["attention"]), 1, atol=1e-5)
        assert np.isclose(sum(record["prediction"]), 1, atol=1e-5)
        for field in ("attention", "gradient", "loo", "prediction"):
            assert np.all(np.isfinite(record[field]))
            np.testing.assert_allclose(record[field], other[field], rtol=1e-4, atol=1e-6)


@settings(max_examples=EXAMPLES)
@given(rows=rows, empty=st.integers(0, 6))
def test_an_instance_without_tokens_is_named(tmp_path_factory, rows, empty):
    empty = min(empty, len(rows) - 1)
    rows[empty] = []
    model, params = MODEL
    folder = tmp_path_factory.mktemp("audit")
    with pytest.raises(ValueError, match=f"Instance 'i{empty}' \\(index {empty}\\) has no token"):
        runner.run_audit(model, params, split_of(rows), None, folder, OPTIONS)
