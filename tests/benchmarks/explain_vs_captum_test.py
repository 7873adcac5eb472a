"""The explainers-against-Captum benchmark's own code, on a tiny model, so that it cannot rot.

The agreement check (ours, Captum one at a time and Captum batched), a JAX and a Captum
timing of every explainer at small settings, and the report; a few seconds in all.
"""

import dataclasses

import jax
import numpy as np
import pytest
import torch

from attn_audit import explainers
from attn_audit.interop import to_torch_state_dict
from benchmarks import explain_vs_captum as bench
from tests._fixtures import padded_batch, tiny_model
from tests.reference.torch_model import load_torch_model

# Few points and samples: the code paths, not the estimates, are under test.
SETTINGS = explainers.ExplainerSettings(
    ig_points=8, shapley_permutations=4, kernel_samples=12, lime_samples=12
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """As the benchmark runs Captum (``--torch_threads=1``): ATen's threads fight XLA's."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup():
    model, params = tiny_model()
    twin = load_torch_model(to_torch_state_dict(params, model.config), model.config)
    # Two widths (two programs per explainer), a padding row in the first batch.
    batches = [padded_batch((7, 4, 9), 12), padded_batch((5, 6, 8), 8, first_index=3)]
    batches[0]["index"][1] = -1
    batches[0]["lengths"][1] = 0
    batches[0]["token_ids"][1] = 0
    return model, params, bench.CaptumTwin(twin), batches


def test_real_token_forward_equals_the_twins(setup):
    """Captum's perturbation methods see the real tokens only; the forward function puts SOS,
    EOS and PAD back, so it equals the twin on the full rows."""
    _, _, side, batches = setup
    rows = [ids for _, ids in bench.batch_rows(batches[1])]
    token_ids, lengths = bench.padded_tensors(rows)
    with torch.no_grad():
        full = side.probabilities(token_ids, lengths)
        real = side.probabilities_of_real_tokens(token_ids[:, 1:-1], lengths)
    np.testing.assert_array_equal(real.numpy(), full.numpy())


def test_agreement_holds_on_the_tiny_model(setup):
    model, params, side, batches = setup
    figures = bench.check_agreement(model, params, side, batches[0], SETTINGS, num_instances=3)
    assert set(figures) == set(bench.DETERMINISTIC)
    for found in figures.values():
        assert found["ours"][0] < 1e-5 and found["batched"][0] < 1e-5, found


@pytest.mark.parametrize("explainer", bench.EXPLAINERS)
def test_captum_runs_each_explainer_one_at_a_time_and_batched(setup, explainer, monkeypatch):
    monkeypatch.setattr(bench, "MIN_TIMING_SECONDS", 0.0)  # one pass
    _, _, side, batches = setup
    groups = [bench.batch_rows(batch) for batch in batches]
    found = {}
    for batched in (False, True):
        seconds, found[batched] = bench.time_captum(explainer, side, groups, SETTINGS, batched,
                                                    perturbations_per_eval=4)  # fmt: skip
        assert seconds > 0
    lengths = {index: len(ids) - 2 for batch in batches for index, ids in bench.batch_rows(batch)}
    for scores in found.values():
        assert {index: len(s) for index, s in scores.items()} == lengths
    if explainer in bench.DETERMINISTIC:
        assert bench.differences(found[True], found[False])[1] < 1e-4


@pytest.mark.parametrize("explainer", ["occlusion", "kernel_shap"])
def test_measure_times_both_sides(setup, explainer, monkeypatch):
    """At each batch width (two for occlusion); Captum on a stratified sample (kernel_shap)."""
    monkeypatch.setattr(bench, "MIN_TIMING_SECONDS", 0.0)
    model, params, side, batches = setup
    batches = batches if explainer == "occlusion" else batches[:1]
    count = 6 if explainer == "occlusion" else 2
    groups = bench.captum_groups(batches, count, 2)
    row = bench.measure(explainer, model, params, side, batches, groups, SETTINGS,
                        jax.random.key(0), perturbations_per_eval=4)  # fmt: skip
    assert row["jax_instances"] == sum(int(np.sum(b["index"] >= 0)) for b in batches)
    assert row["captum_instances"] == sum(len(group) for group in groups) > 0
    assert row["widths"] == sorted(b["token_ids"].shape[1] for b in batches)
    assert min(row["jax_compile_s"], row["jax_steady_s"], row["captum_one_s"],
               row["captum_batched_s"]) > 0  # fmt: skip
    if explainer == "occlusion":
        assert row["ours_vs_one"][0] < bench.OCCLUSION_ATOL, row
        assert row["batched_vs_one"][0] < bench.OCCLUSION_ATOL, row


@pytest.mark.parametrize("explainer", ["integrated_gradients", "shapley_sampling"])
def test_captum_batched_settings_are_tuned_unless_given(setup, explainer, monkeypatch):
    """Every candidate of the grid is timed on the middle group and the fastest is taken; a
    flag's value is taken as given (0: IG's points all at once); grad × input has none."""
    monkeypatch.setattr(bench, "MIN_TIMING_SECONDS", 0.0)
    _, _, side, batches = setup
    groups = bench.captum_groups(batches, 6, 2)
    name, candidates = bench.CAPTUM_GRID[explainer]
    options, tuning = bench.tune_captum(explainer, side, groups, SETTINGS, {})
    assert list(tuning) == list(candidates) and min(tuning.values()) > 0
    assert options == {name: min(tuning, key=tuning.get)}
    assert bench.tune_captum(explainer, side, groups, SETTINGS, {name: 0}) == ({name: None}, {})
    assert bench.tune_captum(explainer, side, groups, SETTINGS, {name: 8}) == ({name: 8}, {})
    assert bench.tune_captum("grad_input", side, groups, SETTINGS, {}) == ({}, {})


def test_encoder_positions_count_padding_on_our_side():
    """Width 8, lengths 5, 6, 8 (n = 3, 4, 6), one padding row. Occlusion: each of our 4 rows'
    ŷ at width 8, and each real row's own masked pairs (2, 2, 3) of 9 steps (the shortcut,
    ⌊(length − 1) / 2⌋ pairs a row, all in one step whose longest row has 8 tokens); 1 + n of
    n + 2 alone, and 1 + 6 of 8 for each real row in Captum's batched call. KernelSHAP (whole
    batch): the 4 rows' ŷ and 502 coalitions for each of the 3 real rows; Captum alone for
    each. Integrated gradients: 50 points a real row at the batch width."""
    batch = padded_batch((5, 6, 8, 2), 8)
    batch["index"][3], batch["lengths"][3], batch["token_ids"][3] = -1, 0, 0
    settings = explainers.ExplainerSettings()
    groups = [bench.batch_rows(batch)]
    assert bench.jax_positions("occlusion", settings, [batch]) == (4 * 8 + (2 + 2 + 3) * 9) / 3
    assert (
        bench.captum_positions("occlusion", settings, groups, False) == (4 * 5 + 5 * 6 + 7 * 8) / 3
    )
    assert bench.captum_positions("occlusion", settings, groups, True) == 56
    assert bench.jax_positions("kernel_shap", settings, [batch]) == (4 + 3 * 502) * 8 / 3
    for batched in (False, True):
        assert bench.captum_positions("kernel_shap", settings, groups, batched) == (
            503 * (5 + 6 + 8) / 3
        )
    sampled = bench.jax_positions("shapley_sampling", settings, [batch])
    assert sampled == (4 + 3 * 2 + 20 * (2 + 3 + 5)) * 8 / 3
    # 400 coalitions a step (4 rows × 100): the shortcut's chains stop at each step's longest
    # row: [row 0 × 400] 5, [row 0 × 102, row 1 × 298] 6, [row 1 × 204, row 2 × 196] 8,
    # [row 2 × 306, then the padding row's unneeded slots] 8.
    small = dataclasses.replace(settings, max_sequence_positions=4 * 8 * 100)
    assert (
        bench.jax_positions("kernel_shap", small, [batch])
        == (4 * 8 + 400 * 5 + 400 * 6 + 400 * 8 + 306 * 8) / 3
    )
    assert bench.jax_positions("integrated_gradients", small, [batch]) == (4 + 3 * 50) * 8 / 3


def test_captum_sample_is_stratified_by_length_and_batched_by_length():
    """Lengths 3 … 12 over two batches, sorted by length in groups of 3: [3, 4, 5], [6, 7, 8],
    [9, 10, 11], [12]; 4 instances take 2 groups at evenly spaced ranks (0, 3), 7 take 3
    (0, 2, 3: numpy rounds 1.5 to even)."""
    batches = [padded_batch((12, 3, 9, 6, 4), 12), padded_batch((5, 7, 8, 10, 11), 12, 5)]

    def lengths(groups):
        return [[len(ids) for _, ids in group] for group in groups]

    assert lengths(bench.captum_groups(batches, 4, 3)) == [[3, 4, 5], [12]]
    assert lengths(bench.captum_groups(batches, 7, 3)) == [[3, 4, 5], [9, 10, 11], [12]]
    assert lengths(bench.captum_groups(batches, 50, 4)) == [[3, 4, 5, 6], [7, 8, 9, 10],
                                                            [11, 12]]  # fmt: skip


def test_report_has_every_explainer_and_keeps_remarks(tmp_path):
    row = {
        "captum_options": {"perturbations_per_eval": 16}, "captum_tuning": {4: 2.5, 16: 2.0},
        "jax_compile_s": 3.0, "jax_steady_s": 0.5, "jax_instances": 64, "widths": [24, 48],
        "captum_one_s": 4.0, "captum_batched_s": 1.0, "captum_instances": 16,
        "jax_mean_tokens": 19.1, "captum_mean_tokens": 18.0, "ours_vs_one": (1e-8, 1e-6),
        "batched_vs_one": (1e-8, 1e-6), "r_ours_one": 0.9, "r_batched_one": 0.8,
        "jax_positions": 15625.0, "captum_one_positions": 2500.0,
        "captum_batched_positions": 3125.0, "floor_positions": 2000.0,
    }  # fmt: skip
    rows = dict.fromkeys(bench.EXPLAINERS, row)
    context = {
        "machine": bench.machine(), "load_before": "0/0/0", "load_after": "0/0/0",
        "command": "python -m benchmarks.explain_vs_captum", "workdir": "runs/x", "minutes": 1.0,
        "agreement_instances": 4, "limit": 64, "batch_size": 32, "settings": SETTINGS,
        "thread_probe": "", "torch_threads": 1, "perturbations_per_eval": 64,
        "ig_internal_batch_size": None, "padding": "", "position_flops": 1e5,
        "matmul_gflops": 100.0,
        "process": {"seconds": 20.0, "timings": {"wall_seconds": 10.0, "compile_seconds": 30.0,
                                                  "shapes": 2, "compile_wait_seconds": 4.0}},
    }  # fmt: skip
    figures = {name: {"ours": (0.0, 0.0), "batched": (0.0, 0.0)} for name in bench.DETERMINISTIC}
    report = bench.render(rows, figures, context)
    for explainer in bench.EXPLAINERS:
        assert f"\n| {explainer} | 3.0 | 7.8 | 250.0 | 62.5 | 32.0× / 8.0× |" in report
        assert f"\n| {explainer} | 15,625 | 2,500 | 3,125 | 2000.0 | 10.0 | 50.0 |" in report
        # Floor: 2,000 positions × 100 k FLOPs (×3 for the gradient explainers) at 100 GFLOP/s.
        passes = 3 if explainer in bench.GRADIENT_EXPLAINERS else 1
        floor_ms = 2.0 * passes
        assert (f"\n| {explainer} | {200 * passes:,} | {floor_ms:.2f} | 7.8 | "
                f"{7.8125 / floor_ms:.1f}× |") in report  # fmt: skip
    # The whole process (20 s for 64 instances) against Captum's six per-instance times × 64.
    assert "| `experiments.explain`, whole process | 20.0 | 3.2 | 1.0× |" in report
    assert "| Captum batched, six explainers (scaled) | 24.0 | 2.7 | 1.2× |" in report
    assert "| Captum one at a time, six explainers (scaled) | 96.0 | 0.7 | 4.8× |" in report
    assert "occlusion `perturbations_per_eval=16` (4 2.5, 16 2.0)" in report
    path = tmp_path / bench.RESULTS_FILE
    bench.write_results(path, report)
    path.write_text(path.read_text() + "A remark.\n")
    bench.write_results(path, report)
    assert path.read_text().count(bench.REMARKS_MARKER) == 1
    assert path.read_text().endswith("A remark.\n")
