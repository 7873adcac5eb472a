"""attn_audit.audits.views: each attention view decodes like the transformer with that view's
attention replaced, the layer-(L − 1) mean view is TransformerModel, and the vmapped sweep
equals a loop over views; the sweep's report and the audit command's flag."""

import concurrent.futures
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, batch_engine, data, models, multiple_testing
from attn_audit.audits import views
from attn_audit.audits.protocol import original_pass
from attn_audit.models import primitives, transformer
from attn_audit.report import views as views_report
from tests._fixtures import (
    REAL,
    batch_of,
    command_runner,
    initial_params,
    padded,
    tiny_transformer_config,
    write_toy_sst,
)

# 3 blocks: layer 0 re-runs a middle block and the last, layer 1 only the last, layer 2 none.
CONFIGS = {
    "cls": tiny_transformer_config(num_layers=3),
    "mean": tiny_transformer_config(num_classes=3, pooling="mean", num_layers=3),
}
SMALL_ADVERSARY = audits.AdversarySettings(num_candidates=2, steps=4)


@functools.cache
def peaked_params(config):
    """Random weights with sharper attention (queries and keys ×20), a larger attention output
    (values and output ×10) and a stronger classifier (×3), so that replacing one head's row
    moves the output visibly."""
    params = initial_params(config)
    layers = dict(params["encoder"]["layers"])
    for name, scale in (
        ("query", 20.0),
        ("key", 20.0),
        ("value", 10.0),
        ("attention_output", 10.0),
    ):
        layers[name] = jax.tree.map(lambda w, scale=scale: scale * w, layers[name])
    return {
        "encoder": {**params["encoder"], "layers": layers},
        "decoder": jax.tree.map(lambda w: 3.0 * w, params["decoder"]),
    }


def instance_of(real_tokens=REAL, num_positions=9):
    token_ids, length = padded(real_tokens, num_positions)
    return {"token_ids": jnp.asarray(token_ids), "length": jnp.int32(length)}


def hand_run(params, config, instance, layer=None, head=None, row=None):
    """The transformer run block by block with the public block functions, head ``head``'s
    CLS row of block ``layer`` replaced by ``row [T]``: class probabilities ``[C]``."""
    assert config.embed_dim == config.hidden_size and not config.token_types  # no projection
    encoder = params["encoder"]
    token_ids, length = instance["token_ids"], instance["length"]
    num_positions = token_ids.shape[0]
    key_mask = jnp.arange(num_positions) < length
    hidden = transformer.embed(params, config, token_ids)
    hidden = hidden + encoder["position_embedding"]["weight"][:num_positions]
    hidden = primitives.layer_norm(encoder["embedding_norm"], hidden, config.layer_norm_eps)
    for index in range(config.num_layers):
        block = jax.tree.map(lambda stacked, i=index: stacked[i], encoder["layers"])
        maps = transformer.attention_probabilities(block, config, hidden, key_mask)
        if index == layer:
            maps = maps.at[head, 0].set(row)
        values = primitives.linear(block["value"], hidden).reshape(
            num_positions, config.num_heads, config.head_dim
        )
        hidden = transformer.block_output(block, config, hidden, values, maps)
    pooled = transformer.pool(config, jnp.where(key_mask[:, None], hidden, 0.0), length)
    return models.probabilities(transformer.classify(params, config, pooled), config)


@functools.partial(jax.jit, static_argnums=(0,))
def passes(view, params, instance, alpha):
    """``(own α, decode(own α), decode(alpha), states)``."""
    _, states, own_alpha, probabilities = original_pass(view, params, instance)
    return own_alpha, probabilities, view.decode(params, instance, states, alpha), states


def another_alpha(length, num_positions, seed=3):
    """A peaked α over the real tokens (far from the model's near-uniform rows)."""
    weights = np.random.default_rng(seed).uniform(0.1, 1.0, num_positions) ** 4
    weights[~np.asarray(models.real_token_mask(length, num_positions))] = 0.0
    return jnp.asarray(weights / weights.sum(), jnp.float32)


# ---------------------------------------------------------------- (a) the mean at the last layer


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_last_layer_mean_view_is_the_transformer_model(pooling):
    """α, decode of its own α and of another, and (CLS pooling: the audits read only these)
    all four audits: bit for bit."""
    config = CONFIGS[pooling]
    params = peaked_params(config)
    instance = instance_of()
    view = views.AttentionView(config, config.num_layers - 1)
    model = audits.TransformerModel(config)
    alpha = another_alpha(7, 9)
    for ours, theirs in zip(
        passes(view, params, instance, alpha)[:3], passes(model, params, instance, alpha)[:3],
        strict=True,
    ):  # fmt: skip
        np.testing.assert_array_equal(ours, theirs)
    if pooling == "mean":
        return

    @functools.partial(jax.jit, static_argnums=(0,))
    def four_audits(model, params):
        key = jax.random.key(4)
        return (
            audits.gradient_importance(model, params, instance),
            audits.leave_one_out(model, params, instance),
            audits.permutation_median_tvd(model, params, instance, key, 8),
            audits.adversarial_search(model, params, instance, key, SMALL_ADVERSARY),
        )

    for ours, theirs in zip(
        jax.tree.leaves(four_audits(view, params)), jax.tree.leaves(four_audits(model, params)),
        strict=True,
    ):  # fmt: skip
        np.testing.assert_array_equal(ours, theirs)


# ---------------------------------------------------------------- (b) decode by hand


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("layer, head", [(0, 1), (1, 2), (2, 0)])
def test_head_view_decodes_like_the_transformer_with_that_row_replaced(pooling, layer, head):
    """decode(own α) is the forward pass; decode(α) is the hand-run model whose head row is
    ``m_h · α`` on the real tokens and the head's own weights elsewhere (float32: 1e-6)."""
    config = CONFIGS[pooling]
    params = peaked_params(config)
    instance = instance_of()
    length, num_positions = 7, 9
    logits, aux = transformer.forward(params, config, instance["token_ids"], instance["length"])
    plain = models.probabilities(logits, config)
    np.testing.assert_allclose(hand_run(params, config, instance), plain, atol=1e-6)

    view = views.AttentionView(config, layer, head)
    alpha = another_alpha(length, num_positions)
    own_alpha, own_decode, decoded, _ = passes(view, params, instance, alpha)
    own_row = aux["attention_maps"][layer, head, 0]
    real = np.asarray(models.real_token_mask(length, num_positions))
    np.testing.assert_allclose(own_alpha, np.where(real, own_row, 0) / own_row[real].sum(), 1e-6)
    np.testing.assert_allclose(own_decode, plain, atol=1e-6)

    new_row = jnp.where(real, own_row[real].sum() * alpha, own_row)
    expected = hand_run(params, config, instance, layer, head, new_row)
    np.testing.assert_allclose(decoded, expected, atol=1e-6)
    assert np.abs(np.asarray(decoded) - np.asarray(plain)).max() > 1e-4  # α mattered


def test_layer_mean_view_below_the_last_decodes_like_the_hand_run():
    """The head mean of a middle layer replaces every head's row with ``mix_heads``."""
    config = CONFIGS["cls"]
    params = peaked_params(config)
    instance = instance_of()
    view = views.AttentionView(config, 1)
    alpha = another_alpha(7, 9)
    _, own_decode, decoded, states = passes(view, params, instance, alpha)
    rows = audits.transformer_model.mix_heads(states["cls_rows"], alpha, 7)
    expected = hand_run(params, config, instance, 1, slice(None), rows)
    np.testing.assert_allclose(decoded, expected, atol=1e-6)
    np.testing.assert_allclose(own_decode, hand_run(params, config, instance), atol=1e-6)


# ---------------------------------------------------------------- (c) one head only


def test_replacing_one_head_leaves_the_other_heads_unchanged():
    config = CONFIGS["cls"]
    params = peaked_params(config)
    instance = instance_of()
    _, aux = transformer.forward(params, config, instance["token_ids"], instance["length"])
    cls_rows = aux["attention_maps"][1, :, 0, :]  # [H, T]
    alpha = another_alpha(7, 9)
    real = np.asarray(models.real_token_mask(7, 9))
    for head in range(config.num_heads):
        rows = views.replaced_rows(cls_rows, alpha, 7, head)
        others = np.arange(config.num_heads) != head
        np.testing.assert_array_equal(rows[others], cls_rows[others])
        np.testing.assert_array_equal(rows[head][~real], cls_rows[head][~real])  # CLS, SEP, PAD
        np.testing.assert_allclose(rows[head][real], cls_rows[head][real].sum() * alpha[real],
                                   rtol=1e-6)  # fmt: skip
        np.testing.assert_allclose(rows[head].sum(), 1.0, atol=1e-6)
        # A traced head index (as in the sweep) gives the same rows (jit against eager: float32
        # rounding, 1e-7); H is the mean.
        traced = jax.jit(views.replaced_rows)(cls_rows, alpha, 7, jnp.int32(head))
        np.testing.assert_allclose(traced, rows, atol=1e-7)
    mean = jax.jit(views.replaced_rows)(cls_rows, alpha, 7, jnp.int32(config.num_heads))
    mixed = audits.transformer_model.mix_heads(cls_rows, alpha, 7)
    np.testing.assert_allclose(mean, mixed, atol=1e-7)
    np.testing.assert_allclose(
        jax.jit(views.view_attention)(cls_rows, 7, jnp.int32(config.num_heads)),
        views.view_attention(cls_rows, 7), atol=1e-7,
    )  # fmt: skip
    # The view's encode (the model cut after block 1) reads the forward pass's CLS rows.
    _, _, _, states = passes(views.AttentionView(config, 1, 2), params, instance, alpha)
    np.testing.assert_allclose(states["cls_rows"], cls_rows, atol=1e-6)


def test_gradient_holds_only_the_views_row_fixed():
    """A head view's gradient differs from the mean view's (other heads' rows still move),
    and both differ from holding every map fixed; all are distributions on the real tokens."""
    config = CONFIGS["cls"]
    params = peaked_params(config)
    instance = instance_of()

    @functools.partial(jax.jit, static_argnums=(0,))
    def gradient(model, params):
        return audits.gradient_importance(model, params, instance)

    head = gradient(views.AttentionView(config, 1, 0), params)
    mean = gradient(views.AttentionView(config, 1), params)
    every = gradient(views._EveryMapHeldFixed(config), params)
    for scores in (head, mean, every):
        np.testing.assert_allclose(scores.sum(), 1.0, atol=1e-6)
    assert np.abs(head - mean).max() > 1e-4 and np.abs(mean - every).max() > 1e-4


# ---------------------------------------------------------------- (d) the sweep


# A head and the mean of a middle layer (both branches of the traced head index, the later
# blocks re-run), a head of the last layer, then rollout and flow.
SWEPT = ("layer0/head1", "layer0/mean", "layer1/head0", "rollout", "flow")
HEADS = len(SWEPT) - 2
OUTPUTS = {"gradient": "gradient", "permutation": "permutation_median_tvd",
           "adversarial": "adversarial_max_jsd"}  # fmt: skip


def one_view_audit(view, params, instance, permutation_key, adversarial_key, audit):
    """One audit of one view alone: what the sweep computes for that view."""
    if audit == "gradient":
        return audits.gradient_importance(view, params, instance)
    if audit == "permutation":
        return audits.permutation_median_tvd(view, params, instance, permutation_key, 6)
    search = audits.adversarial_search(view, params, instance, adversarial_key, SMALL_ADVERSARY)
    return search["max_jsd"]


@pytest.mark.parametrize("audit", ["gradient", "permutation", "adversarial"])
def test_the_vmapped_sweep_equals_a_loop_over_views(audit, monkeypatch):
    """Heads and means of two layers in one program (per layer a vmap over a traced head
    index), on a batch with a padding row: each view's α and audit equal the same audit of that
    view alone (1e-5: XLA fuses the programs differently); rollout and flow are AZ's CLS rows
    with every map held fixed for the gradient; LOO (once per instance) is the model's.

    Compilation is most of the time: the sweep and the views' programs compile two at a time.
    """
    config = tiny_transformer_config(num_layers=2)
    params = peaked_params(config)
    batch = batch_of([REAL, [6, 7, 8, 9, 10, 11, 12, 4], None], 11)
    batch["index"] = np.array([0, 1, -1])
    chosen = (audit, "loo") if audit == "permutation" else (audit,)
    # The sweep decodes its shuffles two at a time (3 rows, 2 views in layer 0, 11 positions),
    # the views alone all six at once.
    monkeypatch.setattr(views, "VIEW_PERMUTATION_POSITIONS_PER_STEP", 2 * 3 * 2 * 11)
    auditor = views.ViewAuditor(
        config, params, SWEPT, chosen, jax.random.key(5), SMALL_ADVERSARY, num_permutations=6
    )
    instances = batch_engine.instances_from_batch(batch)
    keys = [batch_engine.instance_keys(role, jnp.asarray(batch["index"]))
            for role in (auditor.permutation_key, auditor.adversarial_key)]  # fmt: skip

    @functools.partial(jax.jit, static_argnums=(0,))
    def alone(view, params, instances, permutation_keys, adversarial_keys):
        def one(instance, permutation_key, adversarial_key):
            _, _, alpha, _ = original_pass(view, params, instance)
            found = one_view_audit(view, params, instance, permutation_key, adversarial_key, audit)
            return alpha, found

        return jax.vmap(one)(instances, permutation_keys, adversarial_keys)

    head_views = [views.AttentionView(config, *views_report.parse_view_label(label)[1:])
                  for label in SWEPT[:HEADS]]  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        compiled = pool.submit(auditor.compile, batch)
        looped = list(pool.map(lambda view: alone(view, params, instances, *keys), head_views))
        compiled.result()
    found = auditor(batch)
    for v, (alpha, expected) in enumerate(looped):
        np.testing.assert_allclose(found["attention"][:, v], alpha, atol=1e-6, err_msg=SWEPT[v])
        np.testing.assert_allclose(found[OUTPUTS[audit]][:, v], expected, atol=1e-5,
                                   err_msg=SWEPT[v])  # fmt: skip

    def attention_maps(instance):
        return transformer.forward(params, config, instance["token_ids"], instance["length"])[1][
            "attention_maps"
        ]

    maps = np.asarray(jax.jit(jax.vmap(attention_maps))(instances), np.float64)
    for row, length in enumerate(batch["lengths"][:2]):
        real = np.asarray(models.real_token_mask(length, 11))
        rolled = audits.rollout.rollout(maps[row], length)[-1, 0]
        flowed = audits.flow.attention_flow_row(maps[row], int(length))[-1]
        for got, relevance in zip(found["attention"][row, HEADS:], (rolled, flowed), strict=True):
            expected = np.where(real, relevance, 0) / relevance[real].sum()
            np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not found["attention"][2].any()  # the padding row: no token, no attention
    if audit == "gradient":
        every = jax.jit(jax.vmap(
            lambda i: audits.gradient_importance(views._EveryMapHeldFixed(config), params, i)
        ))(instances)  # fmt: skip
        for v in (HEADS, HEADS + 1):
            np.testing.assert_allclose(found["gradient"][:, v], every, atol=1e-6)
    else:
        assert np.isnan(found[OUTPUTS[audit]][:, HEADS:]).all()  # not defined: rollout, flow
    if "loo" in chosen:
        model = audits.TransformerModel(config)
        loo = jax.jit(jax.vmap(lambda i: audits.leave_one_out(model, params, i)))(instances)
        np.testing.assert_allclose(found["loo"], loo, atol=1e-6)
    for name, values in found.items():
        defined = values[2] if values.ndim < 2 else values[2, :HEADS]  # rollout, flow: NaN
        assert np.isfinite(defined).all(), name


def test_a_batchs_shuffles_are_chunked_within_the_memory_budget():
    budget = views.VIEW_PERMUTATION_POSITIONS_PER_STEP
    assert views.view_permutations_per_chunk(3, 11, 3, 6) is None  # small: all at once
    # MiniLM's sweep of a layer's 12 heads and mean, 32 rows of 56 pieces, 100 shuffles.
    chunk = views.view_permutations_per_chunk(32, 56, 13, 100)
    assert chunk == budget // (32 * 13 * 56) and 32 * 13 * 56 * chunk <= budget
    assert views.view_permutations_per_chunk(512, 512, 13, 100) == 1


# ---------------------------------------------------------------- the run and its report


def toy_split(num_instances, seed=0):
    rng = np.random.default_rng(seed)
    examples, token_ids = [], []
    for index in range(num_instances):
        n = int(rng.integers(3, 9))
        token_ids.append(np.asarray([2, *rng.integers(4, 20, n), 3], np.int32))
        examples.append(data.Example(f"toy-{index}", tuple(f"w{i}" for i in range(n)), 0))
    labels = rng.integers(0, 2, num_instances).astype(np.int32)
    return data.EncodedSplit(examples, token_ids, labels)


def test_audit_views_writes_records_and_a_layer_by_head_report(tmp_path):
    """Records of every view, views.json (per-view statistics, Wilcoxon per head, BH across
    heads) and views.md; a second call resumes. LOO and permutation only, at one width: two
    programs to compile."""
    config = tiny_transformer_config(num_layers=2)
    params = peaked_params(config)
    options = audits.AuditOptions(
        audits=("loo", "permutation"), batch_size=4, num_permutations=4, num_buckets=1
    )
    labels = ["heads", "layer1/mean", "rollout"]
    records, summary = views.audit_views(config, params, toy_split(9), labels, tmp_path, options)
    swept = views.view_labels(config, labels)
    assert len(records) == 9 and [r["index"] for r in records] == list(range(9))
    assert set(records[0]["views"]) == set(swept)
    assert "permutation_median_tvd" in records[0]["views"]["layer0/head1"]
    assert "permutation_median_tvd" not in records[0]["views"]["rollout"]
    assert "tau_gradient" not in records[0]["views"]["rollout"]  # not audited here
    saved = json.loads((tmp_path / "views.json").read_text())
    assert saved["labels"] == list(swept) and saved["heads"]["tau_loo"]["num_heads"] == 6
    view = saved["views"]["layer0/head2"]["tau_loo"]
    taus = [r["views"]["layer0/head2"]["tau_loo"] for r in records]
    assert view["mean"] == pytest.approx(np.mean([t for t in taus if t is not None]))
    assert view["wilcoxon_p"] == pytest.approx(
        multiple_testing.wilcoxon_greater(np.array(taus, dtype=float))[1]
    )
    head_ps = [saved["views"][f"layer{layer}/head{head}"]["tau_loo"]["wilcoxon_p"]
               for layer in range(2) for head in range(3)]  # fmt: skip
    _, reject = multiple_testing.benjamini_hochberg(np.array(head_ps), 0.05)
    assert saved["heads"]["tau_loo"]["significant_bh"] == int(reject.sum())
    assert saved["heads"]["tau_loo"]["significant"] == sum(p <= 0.05 for p in head_ps)
    assert saved["views"]["rollout"]["permutation_median_tvd"] is None
    assert "not defined" in saved["views"]["rollout"]["permutation_and_adversarial"]
    markdown = (tmp_path / "views.md").read_text()
    assert "| layer | head 0 | head 1 | head 2 | mean |" in markdown
    assert "| rollout |" in markdown and "n/a" in markdown
    # The same call again resumes: nothing left to run, the same records.
    again, _ = views.audit_views(config, params, toy_split(9), labels, tmp_path, options)
    assert again == records


def test_clear_errors():
    config = tiny_transformer_config()
    with pytest.raises(ValueError, match="Unknown attention view 'head3'"):
        views.view_labels(config, "heads,head3")
    with pytest.raises(ValueError, match="outside the model's 2 layers × 3 heads"):
        views.view_labels(config, ["layer2/mean"])
    with pytest.raises(ValueError, match="need a transformer"):
        views.view_labels(models.ModelConfig(vocab_size=20, num_classes=2), "all")
    with pytest.raises(ValueError, match=r"layer must be an int in \[0, 2\)"):
        views.AttentionView(config, 2)
    with pytest.raises(ValueError, match=r"head must be in \[0, 3\)"):
        views.AttentionView(config, 0, 3)
    assert views.view_labels(config, "layer_means,layer0/head2,flow") == (
        "layer0/head2", "layer0/mean", "layer1/mean", "flow")  # fmt: skip


def test_audit_command_sweeps_the_attention_views(tmp_path):
    """``experiments.audit --attention_views=all`` on a tiny trained transformer writes the
    views report beside the audit, with the audit's options (here LOO only); without the flag
    nothing more is written. (Here rather than in tests/experiments/audit_test.py: this file
    owns the sweep.)"""
    data_dir = write_toy_sst(tmp_path / "data", n=40)
    workdir = tmp_path / "run"
    command_runner("train")[1](
        "--dataset=sst", f"--data_dir={data_dir}", f"--workdir={workdir}",
        "--encoder=transformer", "--epochs=1", "--batch_size=8", "--embeddings=random",
        "--embed_dim=8", "--hidden_size=12", "--num_layers=2", "--num_heads=3", "--ff_dim=16",
    )  # fmt: skip
    _, run_audit = command_runner("audit")
    common = (f"--workdir={workdir}", f"--data_dir={data_dir}", "--limit=6", "--batch_size=8",
              "--audits=loo", "--buckets=1")  # fmt: skip
    run_audit(*common)
    assert not (workdir / "audit" / "test" / "views").exists()
    run_audit(*common, "--attention_views=all")
    out = workdir / "audit" / "test" / "views"
    summary = json.loads((out / "views.json").read_text())
    assert summary["n_instances"] == 6 and len(summary["labels"]) == 2 * 4 + 2
    assert "| layer | head 0 | head 1 | head 2 | mean |" in (out / "views.md").read_text()
