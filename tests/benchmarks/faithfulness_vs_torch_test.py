"""The faithfulness-against-PyTorch benchmark's own code, on a tiny trained run, so it cannot rot.

One end-to-end run (no explanation records: the cheap scores are computed), the agreement
check failing on wrong values, the forward-pass counts and the report's remarks.
"""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from attn_audit import data, training
from attn_audit.audits import auditable_model
from attn_audit.audits.protocol import original_pass
from attn_audit.batch_runner import first_instances
from attn_audit.faithfulness import FaithfulnessSettings
from attn_audit.interop import to_torch_state_dict
from attn_audit.report.records import write_records
from attn_audit.training.run_folder import load_run
from benchmarks import faithfulness_vs_torch as bench
from tests._fixtures import FILLER, TINY, padded_batch, write_toy_sst
from tests.reference.torch_model import load_torch_model


def varied_trees(n, seed=3):
    """Toy test trees of 1 to 17 real tokens (one sentiment word among filler)."""
    rng = np.random.default_rng(seed)
    trees = []
    for number in range(n):
        label = number % 2
        words = list(rng.choice(FILLER, int(rng.integers(0, 17))))
        words.insert(int(rng.integers(0, len(words) + 1)), "great" if label else "awful")
        trees.append(f"({4 * label} " + " ".join(f"(2 {w})" for w in words) + ")")
    return trees


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faithfulness_vs_torch")
    data_dir = write_toy_sst(folder / "data", n=120)
    (data_dir / "sst" / "test.txt").write_text("\n".join(varied_trees(24)) + "\n")
    dataset = data.load_dataset("sst", data_dir)
    training.run_training(
        training.TrainConfig(epochs=1, learning_rate=0.02, **TINY), folder / "run", dataset=dataset
    )
    return folder, data_dir


def options(folder, data_dir, out, **changes) -> bench.Options:
    """Small limits; one padded width (its programs compile in seconds; widths are summed in
    ``test_compile_seconds_are_reported_per_program_and_width``), three batches."""
    settings = {"workdir": str(folder / "run"), "data_dir": str(data_dir), "limit": 12,
                "torch_limit": 4, "agreement_instances": 3, "batch_size": 4, "num_buckets": 1,
                "out": str(out), **changes}  # fmt: skip
    return bench.Options(**settings)


@pytest.fixture(scope="module")
def result(trained):
    folder, data_dir = trained
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "MIN_TIMING_SECONDS", 0.0)  # one pass
        found = bench.run(options(folder, data_dir, folder / "out"))
    torch.set_num_threads(threads)  # --torch_threads=1 changed it
    return found


def test_the_report_has_both_sides_and_the_agreement(trained, result):
    folder, _ = trained
    report = (folder / "out" / bench.RESULTS_FILE).read_text()
    assert report.startswith(result["report"]) and bench.REMARKS_MARKER in report
    assert result["explainers"] == bench.FALLBACK_EXPLAINERS
    assert "computed here" in report
    for side in bench.SIDES:
        assert f"\n| {bench.SIDE_NAMES[side]} | " in report
    assert "\n| eraser | " in report and "\n| flip | " in report  # compile s per program
    # The check ran before timing and again on every timed instance, and held.
    assert len(result["agreement"]) == 4
    for figures in result["agreement"].values():
        assert figures["comprehensiveness"] <= bench.ATOL and figures["flip_mismatches"] == 0
        assert figures["flips"] == figures["instances"] * 3 > 0
        assert f"| {figures['instances']} | {figures['comprehensiveness']:.1e} |" in report
    rows = result["rows"]
    assert rows["ours"]["instances"] == 12 and rows["loop"]["instances"] == 4
    assert len(rows["ours"]["widths"]) == len(rows["ours"]["compile_s"]) // 2 == 1
    assert rows["ours"]["forwards"] == sum(
        sum(bench.our_forwards(batch, 3, FaithfulnessSettings()).values())
        for batch in result["batches"]
    )


def test_the_loop_stops_at_the_first_flip_and_batched_does_not(result):
    """Per instance: 1 + 2·R·K·X passes for ŷ and ERASER; then the loop's flip passes up to
    the first flip (all n when none), the batched variant's all X·n prefixes."""
    rows, settings = result["rows"], FaithfulnessSettings()
    eraser = 1 + 2 * len(settings.removals) * len(settings.percents) * 3
    loop, batched = 0, 0
    for index, values in rows["loop"]["values"].items():
        n = len(result["records"][index]["gradient"])
        loop += eraser + int(np.sum(np.round(values["flip_fraction"] * n)))
        batched += eraser + 3 * n
    assert rows["loop"]["forwards"] == loop <= batched == rows["batched"]["forwards"]


def test_agreement_fails_on_a_wrong_value(result):
    ours = result["rows"]["ours"]["values"]
    loop = result["rows"]["loop"]["values"]
    bench.check_agreement(ours, loop, "as measured")
    index = next(iter(loop))
    for name, change in (("comprehensiveness", 2 * bench.ATOL), ("sufficiency", -2 * bench.ATOL),
                         ("flip_fraction", 0.01)):  # fmt: skip
        wrong = copy.deepcopy(loop)
        wrong[index][name][..., 0] += change
        with pytest.raises(AssertionError):
            bench.check_agreement(ours, wrong, "wrong")
    wrong = copy.deepcopy(loop)
    wrong[index]["top1_flip"][0] = ~wrong[index]["top1_flip"][0]
    with pytest.raises(AssertionError):
        bench.check_agreement(ours, wrong, "wrong")


def test_the_benchmark_refuses_to_time_when_the_peer_disagrees(trained, monkeypatch, tmp_path):
    """A peer that ranks the tokens lowest first: the run stops before any PyTorch timing."""
    folder, data_dir = trained
    ranking = bench.ranking
    monkeypatch.setattr(bench, "ranking", lambda scores: ranking(-scores))
    timed = []
    monkeypatch.setattr(bench, "time_torch", lambda *arguments: timed.append(arguments))
    threads = torch.get_num_threads()
    with pytest.raises(AssertionError, match="loop vs ours"):  # the programs are cached
        bench.run(options(folder, data_dir, tmp_path))
    torch.set_num_threads(threads)
    assert not timed and not (tmp_path / bench.RESULTS_FILE).exists()


def test_explanation_records_are_read_for_the_split(trained, result, tmp_path):
    folder, data_dir = trained
    run = load_run(folder / "run")
    split = first_instances(
        data.encode_split(data.load_dataset("sst", data_dir), "test", run.vocab), 12
    )
    path = write_records(tmp_path / "records.jsonl", list(result["records"].values()))
    records, names = bench.explanation_scores(path, split, None)
    assert names == bench.FALLBACK_EXPLAINERS and set(records) == set(range(12))
    assert records[3]["gradient"] == pytest.approx(result["records"][3]["gradient"])
    with pytest.raises(ValueError, match="no scores of"):
        bench.explanation_scores(path, split, ["lime"])
    shorter = first_instances(split, 2)
    moved = [dict(r, index=r["index"] - 1) for r in result["records"].values() if r["index"]]
    with pytest.raises(ValueError, match="another data set or split"):
        bench.explanation_scores(write_records(tmp_path / "moved.jsonl", moved), shorter, None)


def test_the_peer_gives_an_empty_input_the_output_bias_as_ours_does(trained):
    """No real token left: ours' α = 0; the twin's softmax over nothing is NaN, so the peer
    puts the output at context 0 in its place."""
    run = load_run(trained[0] / "run")
    twin = load_torch_model(to_torch_state_dict(run.params, run.model_config), run.model_config)
    peer = bench.TorchFaithfulness(twin, FaithfulnessSettings())
    ids = np.asarray([2, 3, 0, 0], np.int64)  # SOS, EOS, padding
    found = peer.probabilities([ids[:2], np.asarray([2, 7, 3], np.int64)])
    instance = {"token_ids": jnp.asarray(ids, jnp.int32), "length": jnp.asarray(2, jnp.int32)}
    expected = jax.jit(lambda p, i: original_pass(auditable_model(run.model_config), p, i)[3])
    np.testing.assert_allclose(found[0], expected(run.params, instance), atol=1e-6)
    assert np.all(np.isfinite(found)) and peer.forwards == 2 and peer.positions == 6


def test_our_forward_passes_count_instance_rows_prefixes_up_to_n_and_step_filling():
    """4 rows of width 10 (n = 3, 5, 8 and a padding row), 3 explainers: one original pass per
    row and program; ERASER 2·5·3 = 30 coalitions per removal and instance row, flips 3·n
    prefixes; whole steps of B · chunk pairs (a budget of 8 coalitions a row: 32 a step)."""
    batch = padded_batch((5, 7, 10, 2), 10)
    batch["index"][3], batch["lengths"][3] = -1, 0
    settings = FaithfulnessSettings()  # a chunk holds every coalition: 4 · 30 pairs a step
    assert bench.our_forwards(batch, 3, settings) == {
        "eraser": 4 + 2 * 120,
        "flip": 4 + 4 * 24,  # 48 prefixes fill one step of 4 · 24
    }
    small = FaithfulnessSettings(max_sequence_positions=8 * 4 * 10)
    assert bench.our_forwards(batch, 3, small) == {"eraser": 4 + 2 * 96, "flip": 4 + 64}
    assert bench.ragged_slots(90, 32) == 96 and bench.ragged_slots(0, 8) == 0


def test_results_keep_the_remarks(tmp_path, result):
    path = tmp_path / bench.RESULTS_FILE
    bench.write_results(path, result["report"])
    path.write_text(path.read_text() + "A remark.\n")
    bench.write_results(path, result["report"])
    assert path.read_text().count(bench.REMARKS_MARKER) == 1
    assert path.read_text().endswith("A remark.\n")


def test_compile_seconds_are_reported_per_program_and_width():
    seconds = {("eraser", 16): 4.0, ("eraser", 24): 5.0, ("flip", 16): 3.0, ("flip", 24): 3.5}
    assert bench.compile_table(seconds) == [
        "| program | T = 16 | T = 24 | sum |", "|---|---|---|---|",
        "| eraser | 4.0 | 5.0 | 9.0 |", "| flip | 3.0 | 3.5 | 6.5 |",
    ]  # fmt: skip
