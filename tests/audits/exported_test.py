"""Programs kept on disk by jax.export give the same results as jit, and are found again only
under the same key."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, batch_engine
from attn_audit.audits import exported
from tests._fixtures import padded_batch, tiny_model

ALL_RESULTS = ("attention", "probabilities", "gradient", "loo", "permutation_median_tvd",
               "adversarial_max_jsd", "adversarial_candidates", "adversarial_selected")  # fmt: skip


def auditor(program_cache=None, task="classification"):
    model, params = tiny_model("lstm", "tanh", task, 2 if task == "classification" else 3)
    return audits.BatchAuditor(
        model, params, key=None, adversary=audits.AdversarySettings(steps=5),
        num_permutations=4, program_cache=program_cache,
    )  # fmt: skip


@pytest.mark.parametrize("task", ["classification", "qa"])
def test_exported_programs_equal_jit_when_written_and_when_read_back(tmp_path, task):
    batch = padded_batch((5, 7, 4, 6), 12)
    if task == "qa":
        batch["question_ids"] = np.asarray([[2, 5, 6, 3, 0]] * 4, np.int32)
        batch["question_lengths"] = np.full(4, 4, np.int32)
    expected = auditor(task=task)(batch)
    writer = auditor(exported.ProgramCache(tmp_path), task)
    written = writer(batch)
    # One file per program of the auditor (two: re-encoding and fixed-state audits) and shape.
    assert len(writer.programs) == 2
    assert len(list(tmp_path.glob("*.jax"))) == len(writer.programs)
    read_back = auditor(exported.ProgramCache(tmp_path), task)(batch)  # a new process's view
    for results in (written, read_back):
        assert set(results) == set(expected)
        for name in ALL_RESULTS:
            np.testing.assert_array_equal(results[name], expected[name], err_msg=name)


def test_a_damaged_file_is_exported_again(tmp_path, caplog):
    batch = padded_batch((5, 7, 4, 6), 12)
    expected = auditor()(batch)
    auditor(exported.ProgramCache(tmp_path))(batch)
    for path in tmp_path.glob("*.jax"):
        path.write_bytes(b"not a program")
    with caplog.at_level(logging.WARNING):
        again = auditor(exported.ProgramCache(tmp_path))(batch)
    assert "unreadable exported program" in caplog.text
    np.testing.assert_array_equal(again["loo"], expected["loo"])
    # Exported afresh: the files hold programs again.
    assert all(path.stat().st_size > 100 for path in tmp_path.glob("*.jax"))


def test_a_process_other_than_the_first_keeps_its_compiled_programs(tmp_path, monkeypatch,
                                                                     caplog):  # fmt: skip
    """JAX's persistent cache is written by process 0 only: the other processes of a job keep
    their compiled programs beside the exported ones, and a later run compiles nothing."""
    model, params = tiny_model()

    def own_auditor(program_cache=None):  # settings no other test uses: programs new to JAX's
        return audits.BatchAuditor(  # cache in this session, so compiled here
            model, params, key=None, adversary=audits.AdversarySettings(steps=3),
            num_permutations=3, program_cache=program_cache,
        )  # fmt: skip

    batch = padded_batch((5, 7, 4, 6), 11)
    expected = own_auditor()(batch)
    monkeypatch.setattr(exported, "keeps_own_executables", lambda: True)  # as process 1 of 2
    written = own_auditor(exported.ProgramCache(tmp_path))(batch)
    assert len(list(tmp_path.glob("*.exe"))) == 2  # one per program of the auditor
    compiles = []
    original_compile = jax.stages.Lowered.compile

    def counted_compile(self, *arguments, **options):
        compiles.append(1)
        return original_compile(self, *arguments, **options)

    monkeypatch.setattr(jax.stages.Lowered, "compile", counted_compile)
    read_back = own_auditor(exported.ProgramCache(tmp_path))(batch)  # the next run
    assert compiles == []
    for path in tmp_path.glob("*.exe"):
        path.write_bytes(b"not a program")
    with caplog.at_level(logging.WARNING):
        again = own_auditor(exported.ProgramCache(tmp_path))(batch)
    assert "unreadable compiled program" in caplog.text and len(compiles) == 2
    for results in (written, read_back, again):
        for name in ALL_RESULTS:
            np.testing.assert_array_equal(results[name], expected[name], err_msg=name)
    # Those two programs are in JAX's cache now (written by the compiles above, as process
    # 0 would have): served from there, they are not kept again, and they run.
    served = own_auditor(exported.ProgramCache(tmp_path / "served"))(batch)
    assert not list((tmp_path / "served").glob("*.exe"))
    np.testing.assert_array_equal(served["loo"], expected["loo"])
    monkeypatch.setattr(exported, "keeps_own_executables", lambda: False)  # process 0, alone
    auditor(exported.ProgramCache(tmp_path / "first"))(batch)
    assert not list((tmp_path / "first").glob("*.exe"))


def test_the_key_follows_shapes_static_arguments_and_source(monkeypatch):
    model, params = tiny_model()
    other_model, _ = tiny_model("average")
    batch = batch_engine.instances_from_batch(padded_batch((5, 7), 12))
    wider = batch_engine.instances_from_batch(padded_batch((5, 7), 16))

    def key_of(name="loo", model=model, instances=batch, chunk=None):
        static = {"model": model, "positions_per_chunk": chunk}
        return exported.program_key(name, static, {"params": params, "instances": instances})

    key = key_of()
    assert key == key_of()
    assert key != key_of(instances=wider)
    assert key != key_of(model=other_model)
    assert key != key_of(chunk=4)
    assert key != key_of(name="gradient")
    # Dynamic arguments are named: the same arrays under other names are another program.
    assert key != exported.program_key(
        "loo",
        {"model": model, "positions_per_chunk": None},
        {"weights": params, "instances": batch},
    )
    monkeypatch.setattr(exported, "source_digest", lambda: "edited source")
    assert key != key_of()


def test_source_digest_covers_the_package_source():
    digest = exported.source_digest()
    assert len(digest) == 64 and digest == exported.source_digest()


def test_an_unwritable_folder_still_runs_the_programs(tmp_path, caplog):
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    batch = padded_batch((5, 7, 4, 6), 12)
    with caplog.at_level(logging.WARNING):
        results = auditor(exported.ProgramCache(blocked / "exported"))(batch)
    assert "Cannot keep program" in caplog.text
    np.testing.assert_array_equal(results["loo"], auditor()(batch)["loo"])


def test_a_program_export_cannot_keep_runs_through_jit(tmp_path, caplog):
    @jax.jit
    def host_round_trip(x):  # host callbacks cannot be serialised
        return jax.pure_callback(np.negative, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    cache = exported.ProgramCache(tmp_path)
    with caplog.at_level(logging.WARNING):
        result = cache("host", host_round_trip, {}, {"x": jnp.arange(3.0)})
    assert "Not keeping program host" in caplog.text
    np.testing.assert_array_equal(result, [-0.0, -1.0, -2.0])
    assert not list(tmp_path.glob("*.jax"))
