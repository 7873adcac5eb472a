"""attn_audit.audits.runner: an audit run over a split writes one record per instance, in data
order, with the audits' values and Kendall τ; it resumes from its parts and refuses other
options."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from attn_audit import audits, data, report
from attn_audit.audits import runner
from attn_audit.data.dataset import Example
from tests._fixtures import tiny_batch, tiny_model

LENGTHS = (9, 4, 12, 7, 3, 14, 6)  # SOS and EOS included; 3 is a single real token
BOUNDARIES = (8, 16)
OPTIONS = audits.AuditOptions(audits=("gradient", "loo"), batch_size=2, limit=6)
gradient_importance = jax.jit(audits.gradient_importance, static_argnums=0)
leave_one_out = jax.jit(audits.leave_one_out, static_argnums=0)


def toy_split():
    batch = tiny_batch(LENGTHS, width=16, seed=4)
    token_ids = [row[:length] for row, length in zip(batch["token_ids"], LENGTHS, strict=True)]
    examples = [
        Example(f"x{number}", tuple(f"w{i}" for i in ids[1:-1]), number % 2)
        for number, ids in enumerate(token_ids)
    ]
    labels = np.asarray([e.label for e in examples], np.int32)
    return data.EncodedSplit(examples, token_ids, labels)


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    model, params = tiny_model("lstm", "tanh")
    out_dir = tmp_path_factory.mktemp("runner") / "audit"
    records, timings = runner.run_audit(model, params, toy_split(), BOUNDARIES, out_dir, OPTIONS)
    return model, params, out_dir, records, timings


def test_records_hold_each_instances_audits_in_data_order(audited):
    model, params, out_dir, records, timings = audited
    split = toy_split()
    assert [r["index"] for r in records] == list(range(OPTIONS.limit))  # the limit applies
    assert report.read_records(out_dir / "records.jsonl") == records
    assert json.loads((out_dir / "audit_config.json").read_text()) == OPTIONS.to_dict()
    assert timings["batches"] == len(list((out_dir / "parts").glob("*.jsonl")))
    assert timings["shapes"] == len(BOUNDARIES) and timings["boundaries"] == list(BOUNDARIES)
    assert 0 < timings["compile_seconds"] and 0 < timings["run_seconds"]
    assert timings["compile_wait_seconds"] + timings["run_seconds"] <= timings["wall_seconds"]
    for record in records:
        index = record["index"]
        ids = split.token_ids[index]
        assert record["id"] == split.examples[index].id
        assert record["tokens"] == list(split.examples[index].tokens)
        assert record["label"] == int(split.labels[index])
        assert "permutation_median_tvd" not in record and "adversarial_max_jsd" not in record
        instance = {"token_ids": jnp.asarray(np.pad(ids, (0, 16 - len(ids)))),
                    "length": jnp.int32(len(ids))}  # fmt: skip
        real = slice(1, len(ids) - 1)
        gradient = np.asarray(gradient_importance(model, params, instance))[real]
        loo = np.asarray(leave_one_out(model, params, instance))[real]
        np.testing.assert_allclose(record["gradient"], gradient, atol=1e-6)
        np.testing.assert_allclose(record["loo"], loo, atol=1e-6)
        assert len(record["attention"]) == len(ids) - 2
        assert sum(record["attention"]) == pytest.approx(1.0, abs=1e-5)
        assert record["max_attention"] == pytest.approx(max(record["attention"]))
        assert record["predicted_class"] == int(np.argmax(record["prediction"]))
        if len(ids) - 2 < 2:
            assert record["tau_gradient"] is None and record["tau_loo"] is None
        else:
            expected = scipy.stats.kendalltau(record["attention"], record["gradient"])
            assert record["tau_gradient"] == pytest.approx(expected.statistic, abs=1e-6)
            assert record["p_gradient"] == pytest.approx(expected.pvalue, rel=1e-4, abs=1e-9)


def test_a_rerun_resumes_from_the_parts(audited):
    model, params, out_dir, records, _ = audited
    parts = sorted((out_dir / "parts").glob("*.jsonl"))
    # A part that is present is read back, not audited again: a marker in it survives.
    kept = report.read_records(parts[0])
    kept[0]["tokens"] = ["marker"]
    report.write_records(parts[0], kept)
    parts[-1].unlink()
    again, timings = runner.run_audit(model, params, toy_split(), BOUNDARIES, out_dir, OPTIONS)
    assert timings["batches"] == 1  # only the deleted part
    marked = next(r for r in again if r["tokens"] == ["marker"])
    assert marked["index"] == kept[0]["index"]
    others = [r for r in again if r is not marked]
    assert others == [r for r in records if r["index"] != marked["index"]]


def test_other_options_in_the_same_folder_are_refused(audited):
    model, params, out_dir, _, _ = audited
    other = audits.AuditOptions(audits=("gradient",), batch_size=2, limit=6)
    with pytest.raises(ValueError, match="holds a run with other options"):
        runner.run_audit(model, params, toy_split(), BOUNDARIES, out_dir, other)


def test_first_instances():
    split = toy_split()
    assert runner.first_instances(split, None) is split
    first = runner.first_instances(split, 2)
    assert [e.id for e in first.examples] == ["x0", "x1"] and len(first.token_ids) == 2
    np.testing.assert_array_equal(first.labels, split.labels[:2])
    with pytest.raises(ValueError, match="--limit must be at least 1"):
        runner.first_instances(split, 0)


def test_a_model_with_non_finite_parameters_stops_at_its_first_batch(tmp_path):
    model, params = tiny_model("lstm", "tanh")
    broken = jax.tree.map(lambda leaf: jnp.full_like(leaf, jnp.nan), params)
    with pytest.raises(
        runner.NonFiniteError, match=r"Instance 'x(\d)' \(index \1\) has a non-finite prediction"
    ):
        runner.run_audit(model, broken, toy_split(), BOUNDARIES, tmp_path / "audit", OPTIONS)
    assert not list((tmp_path / "audit" / "parts").glob("*.jsonl"))  # nothing null was written


def test_a_second_audit_of_the_same_folder_is_refused(tmp_path):
    from attn_audit.folder_lock import FolderBusyError, folder_lock

    model, params = tiny_model("lstm", "tanh")
    with folder_lock(tmp_path / "audit"):  # as another process auditing it would
        with pytest.raises(FolderBusyError, match=f"is writing {tmp_path / 'audit'}"):
            runner.run_audit(model, params, toy_split(), BOUNDARIES, tmp_path / "audit", OPTIONS)


def test_word_fields_of_a_word_piece_record_match_a_plain_loop():
    example = Example(
        "x", ("un", "##watch", "##able", "mess", "!"), 0,
        words=("unwatchable", "mess", "!"), word_index=(0, 0, 0, 1, 2),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    record = {
        "attention": list(rng.dirichlet(np.ones(5))),
        "gradient": list(rng.uniform(size=5)),
        "loo": list(rng.normal(size=5)),
        "adversarial_attention": None,
    }
    for reduction, reduce in (("sum", sum), ("max", max)):
        fields = runner.word_fields(record, example, reduction)
        assert fields["words"] == list(example.words)
        for name in ("gradient", "loo"):
            expected = [
                reduce(v for v, w in zip(record[name], example.word_index, strict=True) if w == j)
                for j in range(3)
            ]
            np.testing.assert_allclose(fields[f"word_{name}"], expected)
            tau, p = scipy.stats.kendalltau(fields["word_attention"], fields[f"word_{name}"])
            np.testing.assert_allclose(
                (fields[f"word_tau_{name}"], fields[f"word_p_{name}"]), (tau, p)
            )
        attention = [sum(record["attention"][:3]), record["attention"][3], record["attention"][4]]
        np.testing.assert_allclose(fields["word_attention"], attention)  # always summed
        assert "word_adversarial_attention" not in fields
    with pytest.raises(ValueError, match="word_reduction must be one of"):
        runner.AuditOptions(word_reduction="mean")
    assert "word_reduction" not in runner.AuditOptions().to_dict()  # old folders resume
    assert runner.AuditOptions(word_reduction="max").to_dict()["word_reduction"] == "max"
