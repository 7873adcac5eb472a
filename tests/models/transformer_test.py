"""Tests for attn_audit.models.transformer: shapes, masking, padding, the CLS override,
the audits' adapter, a PyTorch twin on the same weights, and training."""

import dataclasses
import functools
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, data, models, training
from attn_audit.audits._instance import original_pass
from attn_audit.models import transformer
from attn_audit.pretrained import bert
from attn_audit.training.checkpoint import RunCheckpoints
from attn_audit.training.run_folder import load_run

from .train_test import write_toy_sst

REPO = pathlib.Path(__file__).resolve().parents[1]
SOS, EOS, PAD = 2, 3, 0
VOCAB_SIZE = 20


def tiny_config(num_classes=2, pooling="cls", num_heads=3, num_layers=2, embed_dim=12):
    """Width 12, 3 heads of 4, feed-forward 16, 2 blocks, 16 positions."""
    return models.ModelConfig(
        vocab_size=VOCAB_SIZE, num_classes=num_classes, encoder="transformer",
        attention="self", embed_dim=embed_dim, hidden_size=12, num_heads=num_heads,
        num_layers=num_layers, ff_dim=16, max_positions=16, pooling=pooling,
    )  # fmt: skip


@functools.cache
def initial_params(config, seed=0):
    return models.init(jax.random.key(seed), config)


def padded(real_tokens, num_positions):
    sequence = [SOS, *real_tokens, EOS]
    ids = np.full(num_positions, PAD, np.int32)
    ids[: len(sequence)] = sequence
    return ids, np.int32(len(sequence))


def batch_of(rows, num_positions):
    """rows: lists of real tokens, or None for a data-layer padding row (length 0)."""
    pairs = [
        padded(r, num_positions) if r is not None else (np.zeros(num_positions, np.int32), 0)
        for r in rows
    ]
    ids, lengths = zip(*pairs, strict=True)
    return {"token_ids": np.stack(ids), "lengths": np.asarray(lengths, np.int32)}


forward_batch = jax.jit(models.forward_batch, static_argnums=1)
forward = jax.jit(
    transformer.forward, static_argnums=1, static_argnames=("stop_attention_gradient",)
)
REAL = [5, 9, 4, 17, 11]
CONFIGS = [tiny_config(), tiny_config(3, "mean"), tiny_config(2, "cls", 1, 1, embed_dim=7)]


def test_config_checks_the_transformer_settings():
    with pytest.raises(ValueError, match="attention='self'"):
        models.ModelConfig(vocab_size=20, num_classes=2, encoder="transformer")
    with pytest.raises(ValueError, match="multiple of num_heads"):
        dataclasses.replace(tiny_config(), num_heads=5)
    with pytest.raises(ValueError, match="classification"):
        dataclasses.replace(tiny_config(), task="qa")
    with pytest.raises(ValueError, match="pooling"):
        dataclasses.replace(tiny_config(), pooling="max")
    with pytest.raises(ValueError, match="tanh, dot, uniform"):
        models.ModelConfig(vocab_size=20, num_classes=2, attention="self")
    config = tiny_config(3, "mean")
    assert models.ModelConfig.from_dict(config.to_dict()) == config
    assert config.state_dim == 12 and config.head_dim == 4


@pytest.mark.parametrize("config", CONFIGS, ids=["cls", "mean-3-classes", "1-head-1-layer-E7"])
def test_shapes_masking_and_padding_invariance(config):
    """Batches of 1 and 3 (with a padding row): shapes; every attention row sums to 1 over
    the non-PAD keys and is exactly 0 on PAD keys and past the length; α lives on the real
    tokens; and T=8 vs T=13 gives the same logits and maps (1e-6)."""
    params = initial_params(config)
    other = list(np.random.default_rng(0).integers(4, VOCAB_SIZE, 9))
    outputs = {}
    for rows, width in (([REAL], 8), ([REAL, other, None], 13)):
        batch = batch_of(rows, width)
        logits, aux = outputs[width] = forward_batch(params, config, batch)
        batch_size, layers, heads = len(rows), config.num_layers, config.num_heads
        assert logits.shape == (batch_size, config.output_dim)
        assert aux["attention_maps"].shape == (batch_size, layers, heads, width, width)
        assert aux["layer_states"].shape == (batch_size, layers, width, 12)
        assert aux["states"].shape == (batch_size, width, 12)
        assert aux["attention"].shape == aux["attention_mask"].shape == (batch_size, width)
        assert np.all(np.isfinite(logits))
        maps, alpha = np.asarray(aux["attention_maps"]), np.asarray(aux["attention"])
        for row, length in enumerate(batch["lengths"]):
            np.testing.assert_allclose(maps[row, :, :, :length].sum(-1), 1.0, atol=1e-6)
            assert np.all(maps[row, :, :, :, length:] == 0.0)
            assert np.all(maps[row, :, :, length:, :] == 0.0)
            real = np.zeros(width, bool)
            real[1 : max(length - 1, 1)] = True
            assert np.all(alpha[row][~real] == 0.0) and np.all(alpha[row][real] > 0.0)
            np.testing.assert_allclose(alpha[row].sum(), 1.0 if real.any() else 0.0, atol=1e-6)
            np.testing.assert_array_equal(aux["states"][row, length:], 0.0)
    (logits_8, aux_8), (logits_13, aux_13) = outputs[8], outputs[13]
    np.testing.assert_allclose(logits_8[0], logits_13[0], atol=1e-6)
    np.testing.assert_allclose(
        aux_8["attention_maps"][0], aux_13["attention_maps"][0, :, :, :8, :8], atol=1e-6
    )
    np.testing.assert_allclose(aux_8["attention"][0], aux_13["attention"][0, :8], atol=1e-6)


def test_audited_attention_is_the_head_mean_of_the_last_cls_row_over_real_tokens():
    config = tiny_config()
    token_ids, length = padded(REAL, 9)
    _, aux = forward(initial_params(config), config, token_ids, length)
    row = np.asarray(aux["attention_maps"][-1, :, 0, :]).mean(0)
    expected = np.zeros(9)
    expected[1 : length - 1] = row[1 : length - 1] / row[1 : length - 1].sum()
    np.testing.assert_allclose(aux["attention"], expected, rtol=1e-6, atol=1e-7)


def test_overriding_the_cls_row_with_the_models_own_gives_the_same_output():
    """Per-head rows [H, T] reproduce the model; one row [T] does when there is one head;
    another row changes the output; only the last block's CLS row is replaced."""
    token_ids, length = padded(REAL, 9)
    for config in (tiny_config(), tiny_config(num_heads=1)):
        params = initial_params(config)

        @jax.jit
        def overridden(params, config=config):
            def run(rows):
                return transformer.forward(
                    params, config, token_ids, length, attention_override=rows
                )

            logits, aux = transformer.forward(params, config, token_ids, length)
            own_rows = aux["attention_maps"][-1, :, 0, :]
            uniform = models.uniform_attention(aux["attention_mask"])
            batch = {**batch_of([REAL], 9), "attention_override": uniform[None]}
            return {
                "logits": logits, "maps": aux["attention_maps"], "uniform": uniform,
                "own_rows": run(own_rows)[0], "own_row_0": run(own_rows[0])[0],
                "uniform_row": run(uniform), "forward_batch": models.forward_batch(
                    params, config, batch)[0][0],
            }  # fmt: skip

        out = overridden(params)
        np.testing.assert_allclose(out["own_rows"], out["logits"], atol=1e-6)
        if config.num_heads == 1:
            np.testing.assert_allclose(out["own_row_0"], out["logits"], atol=1e-6)
        changed, aux_changed = out["uniform_row"]
        assert not np.allclose(changed, out["logits"])
        np.testing.assert_array_equal(
            aux_changed["attention_maps"][-1, :, 0, :],
            np.broadcast_to(out["uniform"], (config.num_heads, 9)),
        )
        np.testing.assert_array_equal(
            aux_changed["attention_maps"][:, :, 1:], out["maps"][:, :, 1:]
        )
        # models.forward_batch passes batch["attention_override"] through.
        np.testing.assert_allclose(out["forward_batch"], changed, atol=1e-6)


@pytest.mark.parametrize("config", CONFIGS[:2], ids=["cls", "mean"])
def test_audit_adapter_decodes_like_the_full_model(config):
    """decode(α̂) is the model's output ("reweighted"); decode(α) equals the full forward pass
    with the last CLS row replaced by mix_heads(α), for both head mixings."""
    params = initial_params(config)
    token_ids, length = padded(REAL, 9)
    instance = {"token_ids": token_ids, "length": length}
    logits, aux = forward(params, config, token_ids, length)
    alpha = jnp.asarray(np.r_[0, 0.5, 0.1, 0.1, 0.2, 0.1, 0, 0, 0], jnp.float32)
    for head_mixing in transformer.HEAD_MIXINGS:
        model = audits.TransformerModel(config, head_mixing)

        @jax.jit
        def passes(params, model=model):
            _, states, own_alpha, probabilities = original_pass(model, params, instance)
            return own_alpha, probabilities, model.decode(params, instance, states, alpha), states

        own_alpha, probabilities, decoded, states = passes(params)
        np.testing.assert_allclose(own_alpha, aux["attention"], atol=1e-7)
        rows = transformer.mix_heads(states["cls_rows"], alpha, length, head_mixing)
        np.testing.assert_allclose(rows.sum(-1), 1.0, atol=1e-6)
        np.testing.assert_array_equal(rows[:, 0], states["cls_rows"][:, 0])  # SOS mass kept
        overridden, _ = forward(params, config, token_ids, length, attention_override=rows)
        expected = models.probabilities(overridden, config)
        np.testing.assert_allclose(decoded, expected, atol=1e-6)
        if head_mixing == "reweighted":
            np.testing.assert_allclose(
                probabilities, models.probabilities(logits, config), atol=1e-6
            )
    assert audits.auditable_model(config) == audits.TransformerModel(config)
    assert isinstance(audits.auditable_model(dataclasses.replace(
        config, encoder="lstm", attention="tanh")), audits.JWModel)  # fmt: skip


def test_jw_audits_run_on_the_transformer():
    """The engine's audits accept the adapter: finite, zero off the real tokens."""
    config = tiny_config()
    params = initial_params(config)
    instance = {"token_ids": jnp.asarray(padded(REAL, 9)[0]), "length": jnp.int32(7)}
    model = audits.TransformerModel(config)
    real = np.asarray(models.real_token_mask(7, 9))

    @jax.jit
    def run(params):
        return (
            audits.gradient_importance(model, params, instance),
            audits.leave_one_out(model, params, instance),
            audits.permutation_median_tvd(model, params, instance, jax.random.key(1)),
        )

    gradient, loo, permutation = run(params)
    for scores in (gradient, loo):
        assert np.all(np.isfinite(scores)) and np.all(np.asarray(scores)[~real] == 0.0)
    np.testing.assert_allclose(np.sum(gradient), 1.0, atol=1e-6)
    assert np.isfinite(permutation) and permutation >= 0.0


def test_stop_attention_gradient():
    """ "all" cuts every query/key gradient; "audited" with CLS pooling cuts the last block's
    (only its CLS row reaches the output) and keeps the first block's."""
    config = tiny_config()
    params = initial_params(config)
    token_ids, length = padded(REAL, 9)

    @jax.jit
    def query_key_gradients(params):
        def logit(params, stop):
            return transformer.forward(
                params, config, token_ids, length, stop_attention_gradient=stop
            )[0][0]

        out = {}
        for stop in models.STOP_ATTENTION_GRADIENT:
            layers = jax.grad(logit)(params, stop)["encoder"]["layers"]
            out[stop] = {name: layers[name]["weight"] for name in ("query", "key")}
        return out

    gradients = query_key_gradients(params)
    for name in ("query", "key"):
        assert np.all(np.asarray(gradients["all"][name]) == 0.0)
        assert np.all(np.asarray(gradients["audited"][name][-1]) == 0.0)
        assert np.any(np.asarray(gradients["audited"][name][0]) != 0.0)
        assert np.any(np.asarray(gradients["none"][name][-1]) != 0.0)
    with pytest.raises(ValueError, match="stop_attention_gradient"):
        transformer.forward(params, config, token_ids, length, stop_attention_gradient="some")


def test_too_long_a_sequence_says_how_to_fix_it():
    config = tiny_config()
    with pytest.raises(ValueError, match="max_positions"):
        transformer.forward(initial_params(config), config, *padded(list(range(4, 19)), 17))


# ---------------------------------------------------------------- a PyTorch twin


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_matches_a_pytorch_bert_on_the_same_weights(pooling):
    """Logits, every block's hidden states and attention maps agree with an independent
    PyTorch BERT (Hugging Face's computation) within 1e-5: both float32, O(1) values after
    layer norm, different summation orders."""
    torch = pytest.importorskip("torch")
    from attn_audit.interop import torch_bert

    config = tiny_config(3, pooling)
    params = initial_params(config, seed=1)
    batch = batch_of([REAL, [7, 8], list(range(4, 15))], 13)
    logits, aux = forward_batch(params, config, batch)
    twin = torch_bert.TorchBert.from_config(config)
    torch_bert.load_bert_weights(twin, bert.to_bert_state_dict(params, config))
    ids = torch.from_numpy(batch["token_ids"]).long()
    with torch.no_grad():
        out = twin(ids, (ids != PAD).long())
    np.testing.assert_allclose(logits, out["logits"].numpy(), atol=1e-5)
    valid = batch["token_ids"] != PAD
    for layer in range(config.num_layers):
        hidden = out["hidden_states"][layer + 1].numpy() * valid[..., None]
        np.testing.assert_allclose(aux["layer_states"][:, layer], hidden, atol=1e-5)
        maps = out["attentions"][layer].numpy() * valid[:, None, :, None]
        np.testing.assert_allclose(aux["attention_maps"][:, layer], maps, atol=1e-5)


def test_bert_names_round_trip():
    config = tiny_config()
    params = initial_params(config)
    state = bert.to_bert_state_dict(params, config)
    assert "encoder.layer.1.attention.self.query.weight" in state
    assert state["encoder.layer.1.intermediate.dense.weight"].shape == (16, 12)
    back = bert.from_bert_state_dict(state, config)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    assert jax.tree.all(jax.tree.map(np.array_equal, back, params))
    with pytest.raises(ValueError, match="Unexpected BERT tensors"):
        bert.from_bert_state_dict({**state, "encoder.layer.2.output.dense.weight": 0}, config)
    with pytest.raises(ValueError, match="lack"):
        bert.from_bert_state_dict(
            {k: v for k, v in state.items() if "layer.1.output.dense" not in k}, config
        )
    with pytest.raises(ValueError, match="embed_dim == hidden_size"):
        small = tiny_config(embed_dim=7)
        bert.to_bert_state_dict(initial_params(small), small)


# ---------------------------------------------------------------- training and checkpoints


def cue_batches(num_batches, batch_size=16, seed=0):
    """Label 1 iff token 5 occurs: one attention head on it solves the task."""
    rng = np.random.default_rng(seed)
    for _ in range(num_batches):
        rows, labels = [], []
        for _ in range(batch_size):
            tokens = list(rng.integers(6, VOCAB_SIZE, int(rng.integers(3, 8))))
            label = int(rng.integers(0, 2))
            if label:
                tokens[int(rng.integers(0, len(tokens)))] = 5
            rows.append(tokens)
            labels.append(label)
        batch = batch_of(rows, 10)
        batch.update(labels=np.asarray(labels, np.int32), weights=np.ones(batch_size, np.float32))
        yield {k: jnp.asarray(v) for k, v in batch.items()}


def test_a_short_training_run_decreases_the_loss():
    config = tiny_config()
    train_config = training.TrainConfig(encoder="transformer", attention="self", learning_rate=3e-3)
    optimizer = training.make_optimizer(train_config)
    params = jax.tree.map(jnp.copy, initial_params(config))
    first = jax.tree.map(jnp.copy, params)
    opt_state = optimizer.init(params)
    losses = []
    for batch in cue_batches(60):
        params, opt_state, loss = training.train_step(
            params, opt_state, batch, jnp.float32(1.0), model_config=config, optimizer=optimizer
        )
        losses.append(float(loss))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), losses
    # Every parameter tensor moved.
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), params, first)
    assert all(jax.tree.leaves(moved))


def test_checkpoint_round_trip(tmp_path):
    config = tiny_config(3, "mean")
    params = initial_params(config, seed=2)
    checkpoints = RunCheckpoints(tmp_path)
    try:
        checkpoints.save("best", 1, params)
        epoch, restored = checkpoints.restore("best", models.init(jax.random.key(0), config))
    finally:
        checkpoints.close()
    assert epoch == 1
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), restored, params))


def test_forward_batch_does_not_retrace_for_new_values():
    config = tiny_config()
    params = initial_params(config)
    traces = []

    @jax.jit
    def logits(params, batch):
        traces.append(1)
        return models.forward_batch(params, config, batch)[0]

    for seed in range(3):
        rng = np.random.default_rng(seed)
        rows = [list(rng.integers(4, VOCAB_SIZE, int(rng.integers(1, 8)))) for _ in range(4)]
        logits(params, batch_of(rows, 10)).block_until_ready()
    assert len(traces) == 1


def test_train_command_trains_a_transformer_and_its_run_reloads(tmp_path):
    """``python -m experiments.train --encoder=transformer`` with sizes by flags; the run
    folder reloads (checkpoint, config) and reproduces its recorded test accuracy."""
    data_dir = write_toy_sst(tmp_path / "data", n=40)
    workdir = tmp_path / "run"
    command = [
        sys.executable, "-m", "experiments.train", "--dataset=sst", f"--data_dir={data_dir}",
        f"--workdir={workdir}", "--encoder=transformer", "--epochs=1", "--batch_size=8",
        "--embeddings=random", "--embed_dim=8", "--hidden_size=12", "--num_layers=1",
        "--num_heads=3", "--ff_dim=16", "--pooling=mean",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sst transformer+self: test accuracy" in result.stdout
    run = load_run(workdir)
    expected = {"encoder": "transformer", "attention": "self", "embed_dim": 8, "hidden_size": 12}
    expected.update(num_layers=1, num_heads=3, ff_dim=16, pooling="mean")
    assert {k: run.config["model"][k] for k in expected} == expected
    dataset = data.load_dataset("sst", data_dir)
    test = data.encode_split(dataset, "test", run.vocab)
    boundaries = tuple(run.config["data"]["bucket_boundaries"])
    report = training.evaluate(run.params, run.model_config, test, boundaries)
    assert report["accuracy"] == run.metrics["test"]["accuracy"]
    # A JW encoder with a transformer's attention (or the reverse) is a clear error.
    bad = subprocess.run(
        [*command[:6], "--encoder=lstm", "--attention=self"], cwd=REPO, capture_output=True,
        text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "attention='self'" in bad.stderr
