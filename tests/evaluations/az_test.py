"""attn_audit.evaluations.az against loops, finite differences and scipy; az_eval end to end.

Spearman's ρ itself is tested in ``tests/stats/ranks_test.py``.
"""

import csv
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import data, models, stats, training
from attn_audit.audits import rollout
from attn_audit.audits.runner import first_instances
from attn_audit.evaluations import az, az_sweep
from attn_audit.training.run_folder import load_run
from tests._fixtures import TINY, command_runner, write_toy_sst
from tests.stats.ranks_test import scipy_rho

SOS, EOS, PAD = 2, 3, 0
VOCAB_SIZE = 20


def tiny_config(num_classes=2, num_layers=3):
    """Width 12, 3 heads of 4, feed-forward 16, 16 positions."""
    return models.ModelConfig(
        vocab_size=VOCAB_SIZE, num_classes=num_classes, encoder="transformer",
        attention="self", embed_dim=8, hidden_size=12, num_heads=3, num_layers=num_layers,
        ff_dim=16, max_positions=16,
    )  # fmt: skip


@functools.cache
def params_of(config, seed=0):
    # Larger weights than BERT's N(0, 0.02), so that attention is far from uniform.
    params = models.init(jax.random.key(seed), config)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 100), len(leaves))
    noisy = [
        leaf + 0.3 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(tree, noisy)


def padded(real_tokens, num_positions):
    sequence = [SOS, *real_tokens, EOS]
    ids = np.full(num_positions, PAD, np.int32)
    ids[: len(sequence)] = sequence
    return jnp.asarray(ids), jnp.int32(len(sequence))


REAL = [5, 9, 4, 17, 11, 6]
class_probability = jax.jit(az.class_probability, static_argnums=1)


# One forward pass, jitted so that the reference loops run in seconds.
forward = jax.jit(models.forward, static_argnums=1)


def probability(params, config, token_ids, length, label):
    logits, _ = forward(params, config, token_ids, length)
    return float(models.probabilities(logits, config)[label])


# ---------------------------------------------------------------- importance


@pytest.mark.parametrize("num_classes, label", [(2, 0), (2, 1), (3, 2)])
def test_blank_out_equals_a_loop_of_forward_passes(num_classes, label):
    config = tiny_config(num_classes)
    params = params_of(config)
    token_ids, length = padded(REAL, 10)
    scores = jax.jit(az.blank_out_importance, static_argnums=(1, 5))(
        params, config, token_ids, length, label, az.UNK_ID
    )
    base = probability(params, config, token_ids, length, label)
    expected = np.zeros(10)
    for t in range(1, int(length) - 1):
        blanked = token_ids.at[t].set(az.UNK_ID)
        expected[t] = base - probability(params, config, blanked, length, label)
    # float32 forward passes, the same computations in both: 1e-6.
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert np.abs(expected).max() > 1e-4  # the test has teeth


def test_blank_out_with_another_blank_id():
    config = tiny_config()
    params = params_of(config)
    token_ids, length = padded(REAL, 9)
    blank_out = jax.jit(az.blank_out_importance, static_argnums=(1, 5))
    scores = blank_out(params, config, token_ids, length, 1, 7)
    base = probability(params, config, token_ids, length, 1)
    blanked = probability(params, config, token_ids.at[3].set(7), length, 1)
    np.testing.assert_allclose(scores[3], base - blanked, atol=1e-6)


@pytest.mark.parametrize("num_classes, label", [(2, 1), (3, 0)])
def test_input_gradient_equals_central_differences(num_classes, label):
    """Σ_d ∂p/∂e_{t,d} is the derivative along the all-ones direction at token t."""
    config = tiny_config(num_classes)
    params = params_of(config, seed=1)
    token_ids, length = padded(REAL, 10)
    gradient = jax.jit(az.input_gradient_importance, static_argnums=1)
    scores = gradient(params, config, token_ids, length, label)
    embedded = models.embed(params, config, token_ids)
    step = 1e-2
    expected = np.zeros(10)
    for t in range(1, int(length) - 1):
        direction = jnp.zeros_like(embedded).at[t].set(1.0)
        plus = class_probability(params, config, embedded + step * direction, length, label)
        minus = class_probability(params, config, embedded - step * direction, length, label)
        expected[t] = abs(float(plus - minus) / (2 * step))
    # Central differences in float32: O(step²) truncation plus ~1e-7/step rounding.
    np.testing.assert_allclose(scores, expected, atol=2e-4, rtol=1e-2)
    assert expected.max() > 1e-2


# ---------------------------------------------------------------- relevance


def test_layer_one_rollout_and_flow_are_the_residual_attentions_cls_row():
    config = tiny_config()
    params = params_of(config)
    token_ids, length = padded(REAL, 11)
    _, aux = models.forward(params, config, token_ids, length)
    maps = aux["attention_maps"]
    layers = az.layer_relevance(maps, length)
    residual_row = rollout.residual_attention(maps, length)[0, 0]
    real = np.arange(11) >= 1
    real &= np.arange(11) <= int(length) - 2
    np.testing.assert_allclose(layers["rollout"][0], np.where(real, residual_row, 0), atol=1e-7)
    flow = az.flow_relevance(np.asarray(maps), int(length))
    np.testing.assert_allclose(flow[0], np.where(real, residual_row, 0), atol=1e-6)
    # On the real tokens the residual row is half the raw row: the same ranks.
    np.testing.assert_allclose(layers["rollout"][0], 0.5 * layers["raw"][0], atol=1e-7)
    np.testing.assert_allclose(
        layers["raw"][1], np.where(real, np.asarray(maps)[1, :, 0].mean(0), 0), atol=1e-7
    )
    rolled = rollout.rollout(maps, length)[:, 0]
    np.testing.assert_allclose(layers["rollout"][2], np.where(real, rolled[2], 0), atol=1e-7)
    assert layers["raw"].shape == layers["rollout"].shape == flow.shape == (3, 11)


# ---------------------------------------------------------------- words


def test_word_sums_by_hand():
    # [CLS] un ##believ ##able film [SEP] PAD
    scores = jnp.array([9.0, 0.1, 0.2, 0.3, 0.4, 9.0, 9.0])
    word_index = jnp.array([-1, 0, 0, 0, 1, -1, -1])
    np.testing.assert_allclose(az.word_sums(scores, word_index), [0.6, 0.4, 0, 0, 0, 0, 0],
                               atol=1e-7)  # fmt: skip
    np.testing.assert_array_equal(az.word_mask(word_index), [1, 1, 0, 0, 0, 0, 0])


def test_correlations_per_word_sum_pieces_first():
    rng = np.random.default_rng(3)
    relevances = {"raw": jnp.asarray(rng.random((2, 8)), jnp.float32)}
    importances = {"blank_out": jnp.asarray(rng.normal(size=8), jnp.float32)}
    mask = jnp.asarray(np.arange(8) >= 1) & jnp.asarray(np.arange(8) <= 6)
    word_index = jnp.array([-1, 0, 0, 1, 2, 2, 3, -1])
    rho = az.correlations(relevances, importances, mask, word_index)["raw"]["blank_out"]
    words = ([1, 2], [3], [4, 5], [6])
    raw, blank_out = np.asarray(relevances["raw"]), np.asarray(importances["blank_out"])
    for layer in range(2):
        words_rel = [raw[layer][w].sum() for w in words]
        words_imp = [blank_out[w].sum() for w in words]
        expected = scipy_rho(np.array(words_rel), np.array(words_imp))
        np.testing.assert_allclose(rho[layer], expected, atol=1e-6)
    # One word per token: the same as correlating the tokens.
    identity = jnp.where(mask, jnp.arange(8) - 1, -1)
    np.testing.assert_allclose(
        az.correlations(relevances, importances, mask, identity)["raw"]["blank_out"],
        az.correlations(relevances, importances, mask)["raw"]["blank_out"], atol=1e-7,
    )  # fmt: skip


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def trained_transformer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("az")
    data_dir = write_toy_sst(folder / "data", n=60)
    dataset = data.load_dataset("sst", data_dir)
    sizes = {**TINY, "hidden_size": 12}
    config = training.TrainConfig(
        encoder="transformer", attention="self", epochs=1, learning_rate=0.01, num_layers=3,
        num_heads=3, ff_dim=16, **sizes,
    )  # fmt: skip
    training.run_training(config, folder / "sst_tiny", dataset=dataset)
    return data_dir, folder / "sst_tiny"


@pytest.fixture
def run_command():
    """Runs ``az_eval``'s main in this process with the given flags."""
    return command_runner("az_eval")[1]


def test_az_eval_writes_the_csv_section_and_audit(trained_transformer, tmp_path, run_command):
    data_dir, workdir = trained_transformer
    results = tmp_path / "results"
    # az_sweep's tests compile scores_batch for other models in the same process.
    programs_before = az_sweep.scores_batch._cache_size()
    run_command(f"--workdir={workdir}", f"--data_dir={data_dir}", f"--results_dir={results}",
                "--limit=7", "--batch_size=4", "--audits=gradient")  # fmt: skip
    with open(results / "az_sst_tiny.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 3  # importances × relevances × layers
    assert {r["n"] for r in rows} == {"7"}
    by_key = {(r["importance"], r["relevance"], r["layer"]): float(r["mean"]) for r in rows}
    for importance in ("blank_out", "gradient"):  # layer 1: the same ranks
        assert by_key[(importance, "raw", "1")] == pytest.approx(by_key[(importance, "flow", "1")])
        assert by_key[(importance, "rollout", "1")] == by_key[(importance, "raw", "1")]
    assert all(-1 <= float(r["mean"]) <= 1 for r in rows)
    assert rows[0]["az_mean"] == "0.69"  # raw vs blank-out, layer 1
    text = (results / "RESULTS.md").read_text()
    assert "<!-- az_tiny start -->" in text and "<!-- az_tiny end -->" in text
    assert "AZ's trend" in text and "τ_g" in text and "subject–verb agreement" in text
    assert (results / "figures" / "az_sst_tiny.png").stat().st_size > 0
    # One compiled program per bucket width, whatever the number of batches.
    run = load_run(workdir)
    split = data.encode_split(data.load_dataset("sst", data_dir), "test", run.vocab)
    boundaries = tuple(run.config["data"]["bucket_boundaries"])
    plan = list(data.batches(first_instances(split, 7), 4, boundaries))
    programs = az_sweep.scores_batch._cache_size() - programs_before
    assert programs == len({b["token_ids"].shape for b in plan})
    rho = np.load(workdir / "az" / "test" / "rho.npz")
    assert rho["flow_blank_out"].shape == (7, 3)
    summary = json.loads((workdir / "az" / "test" / "summary.json").read_text())
    assert summary["jw"]["n_instances"] == 7
    # The per-instance ρ are those of the library functions on one instance.
    ids, label = jnp.asarray(split.token_ids[4]), int(split.labels[4])
    length = jnp.int32(len(ids))
    _, aux = models.forward(run.params, run.model_config, ids, length)
    importance = az.blank_out_importance(run.params, run.model_config, ids, length, label)
    flow = az.flow_relevance(np.asarray(aux["attention_maps"]), int(length))
    mask = az.real_token_mask(int(length), len(ids))
    np.testing.assert_allclose(
        rho["flow_blank_out"][4],
        [stats.spearman_rho(jnp.asarray(f, jnp.float32), importance, mask) for f in flow],
        atol=1e-5,
    )


def test_az_eval_errors_are_clear(tmp_path, run_command):
    with pytest.raises(SystemExit, match="Unknown audits"):
        run_command(f"--workdir={tmp_path}", "--audits=saliency")
    with pytest.raises(SystemExit, match="does not exist"):
        run_command(f"--workdir={tmp_path / 'none'}", "--audits=")
