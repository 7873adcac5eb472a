"""attn_audit.audits.flax_model: user-written Flax models (linen and nnx), audited unedited.

Each model below is written as a user would, plus a reference path that only the tests
use (an ``alpha=`` argument, or an ``attention_fn`` that records or overrides the weights).
The adapter's audits must equal the same computations done with plain ``module.apply`` /
nnx calls to 1e-6 (float32 rounding of the same operations in another order), and every
audit, explainer and faithfulness metric must run on it through the batch engines.
"""

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import attn_audit
from attn_audit import audits, batch_engine, faithfulness
from attn_audit.audits.flax_model import FlaxTransformerModel, flax_model
from attn_audit.audits.protocol import original_pass
from attn_audit.audits.transformer_model import mix_heads
from attn_audit.evaluations import az
from attn_audit.explainers import engine as explainer_engine
from attn_audit.explainers.gradients import grad_input
from attn_audit.models import real_token_mask
from tests._fixtures import padded_batch

VOCAB = 23  # tests._fixtures.tiny_batch draws ids below 23
WIDTH = 8  # padded sequence length T


# -------------------------------------------------------------------- the user's models


class AdditiveAttention(nn.Module):
    """JW's tanh attention ``vᵀ tanh(W h + b)``, softmax over the real tokens."""

    @nn.compact
    def __call__(self, states, real):
        hidden = jnp.tanh(nn.Dense(3, name="projection")(states))
        scores = nn.Dense(1, use_bias=False, name="vector")(hidden)[..., 0]
        return jax.nn.softmax(jnp.where(real, scores, -jnp.inf), axis=-1)


class LinenBiLSTM(nn.Module):
    """Embedding → BiLSTM → additive attention (its own submodule) → one sigmoid logit."""

    def setup(self):
        self.embedding = nn.Embed(VOCAB, 5)
        self.encoder = nn.Bidirectional(
            nn.RNN(nn.OptimizedLSTMCell(3)), nn.RNN(nn.OptimizedLSTMCell(3))
        )
        self.attention = AdditiveAttention()
        self.decoder = nn.Dense(1)

    def embed_token_ids(self, token_ids):
        return self.embedding(token_ids)

    def logits_from_embedded_inputs(self, embedded, lengths, alpha=None):
        states = self.encoder(embedded, seq_lengths=lengths)
        positions = jnp.arange(embedded.shape[1])[None, :]
        real = (positions >= 1) & (positions <= lengths[:, None] - 2)
        weights = self.attention(states, real) if alpha is None else alpha  # test-only α
        return self.decoder(jnp.einsum("bt,bth->bh", weights, states))


class DotAttention(nn.Module):
    """JW's dot attention ``wᵀ h``, softmax over every non-PAD position (SOS and EOS too)."""

    @nn.compact
    def __call__(self, states, valid):
        scores = nn.Dense(1, use_bias=False, name="vector")(states)[..., 0]
        return jax.nn.softmax(jnp.where(valid, scores, -jnp.inf), axis=-1)


class LinenAverage(nn.Module):
    """JW's Average encoder with dot attention, three softmax classes; reads a padding mask."""

    def setup(self):
        self.embedding = nn.Embed(VOCAB, 5)
        self.encoder = nn.Dense(4)
        self.attention = DotAttention()
        self.decoder = nn.Dense(3)

    def embed_token_ids(self, token_ids):
        return self.embedding(token_ids)

    def logits_from_embedded_inputs(self, embedded, padding_mask, alpha=None):
        states = jnp.tanh(self.encoder(embedded))
        weights = self.attention(states, padding_mask) if alpha is None else alpha
        return self.decoder(jnp.einsum("bt,bth->bh", weights, states))


class LinenBlock(nn.Module):
    attention_fn: Callable = nn.dot_product_attention

    @nn.compact
    def __call__(self, x, mask):
        attended = nn.MultiHeadDotProductAttention(2, attention_fn=self.attention_fn)(x, mask=mask)
        x = nn.LayerNorm()(x + attended)
        return x + nn.gelu(nn.Dense(x.shape[-1])(x))


class LinenTransformer(nn.Module):
    """Two blocks on ``nn.MultiHeadDotProductAttention``, 3 softmax classes from CLS."""

    attention_fns: tuple = (nn.dot_product_attention,) * 2  # the tests' reference path

    def setup(self):
        self.tokens = nn.Embed(VOCAB, 8)
        self.positions = nn.Embed(16, 8)
        self.blocks = [LinenBlock(attention_fn) for attention_fn in self.attention_fns]
        self.head = nn.Dense(3)

    def embed_token_ids(self, token_ids):
        positions = self.positions(jnp.arange(token_ids.shape[-1]))
        return self.tokens(token_ids) + positions[None]

    def logits_from_embedded_inputs(self, x, padding_mask):
        mask = nn.make_attention_mask(padding_mask, padding_mask)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(x[:, 0])


class NnxBlock(nnx.Module):
    def __init__(self, rngs, attention_fn=nnx.dot_product_attention):
        self.attention = nnx.MultiHeadAttention(
            2, 6, decode=False, attention_fn=attention_fn, rngs=rngs
        )
        self.norm = nnx.LayerNorm(6, rngs=rngs)
        self.feed_forward = nnx.Linear(6, 6, rngs=rngs)

    def __call__(self, x, mask):
        x = self.norm(x + self.attention(x, mask=mask))
        return x + jnp.tanh(self.feed_forward(x))


class NnxTransformer(nnx.Module):
    """Two blocks on ``nnx.MultiHeadAttention``, 2 softmax classes from CLS; reads lengths."""

    def __init__(self, rngs, attention_fns=(nnx.dot_product_attention,) * 2):
        self.embedding = nnx.Embed(VOCAB, 6, rngs=rngs)
        self.layers = nnx.List([NnxBlock(rngs, attention_fn) for attention_fn in attention_fns])
        self.head = nnx.Linear(6, 2, rngs=rngs)

    def embed_token_ids(self, token_ids):
        return self.embedding(token_ids)

    def logits_from_embedded_inputs(self, x, lengths):
        valid = jnp.arange(x.shape[1])[None, :] < lengths[:, None]
        mask = nnx.make_attention_mask(valid, valid)
        for layer in self.layers:
            x = layer(x, mask)
        return self.head(x[:, 0])


class NnxScores(nnx.Module):
    """Dot attention over every non-PAD position (SOS and EOS included), one instance."""

    def __init__(self, rngs):
        self.vector = nnx.Linear(4, 1, use_bias=False, rngs=rngs)

    def __call__(self, states, valid):
        return jax.nn.softmax(jnp.where(valid, self.vector(states)[:, 0], -jnp.inf))


class NnxAverage(nnx.Module):
    """JW's Average encoder for ONE instance (no batch axis): ids [T] → one sigmoid logit [1]."""

    def __init__(self, rngs):
        self.embedding = nnx.Embed(VOCAB, 5, rngs=rngs)
        self.encoder = nnx.Linear(5, 4, rngs=rngs)
        self.attention = NnxScores(rngs)
        self.decoder = nnx.Linear(4, 1, rngs=rngs)

    def embed_token_ids(self, token_ids):
        return self.embedding(token_ids)

    def logits_from_embedded_inputs(self, embedded, padding_mask, alpha=None):
        states = jnp.tanh(self.encoder(embedded))
        weights = self.attention(states, padding_mask) if alpha is None else alpha
        return self.decoder(weights @ states)


# -------------------------------------------------------------------- the reference paths


class RowsAttention:
    """A reference ``attention_fn``: Flax's own weights, recorded into ``recorded``; with
    ``rows [H, T]`` set, every head's CLS row replaced by them; then the weighted sum."""

    def __init__(self, weights_fn, recorded: list):
        self.weights_fn, self.recorded, self.rows = weights_fn, recorded, None

    def __call__(self, query, key, value, mask=None, **unused):
        weights = self.weights_fn(query, key, mask=mask)  # [B, H, T, T]
        self.recorded.append(weights)
        if self.rows is not None:
            weights = weights.at[:, :, 0, :].set(self.rows[None])
        return jnp.einsum("...hqk,...khd->...qhd", weights, value)


@dataclasses.dataclass
class Case:
    """A model, its adapter, and its plain computations, none through the adapter."""

    name: str
    model: object
    params: object
    embed: Callable  # ids [T] -> embeddings [T, E], the user's method
    forward: Callable  # (embedded, length, override=None) -> probabilities [C], plain apply
    own: Callable  # (embedded, length) -> the attention output [T] or every layer's [L, H, T, T]
    num_classes: int

    def override_for(self, own, alpha, length):
        """What replaces the model's attention so that its α becomes ``alpha``."""
        if own.ndim == 4:  # the last layer's CLS rows, heads re-weighted
            return mix_heads(own[-1, :, 0, :], alpha, length)
        # The model's own mass off the real tokens kept, its mass on them spread as α.
        real = real_token_mask(length, own.shape[0])
        return jnp.where(real, jnp.sum(jnp.where(real, own, 0.0)) * alpha, own)


def two_class(logits):
    probability = jax.nn.sigmoid(logits[0])
    return jnp.stack([1.0 - probability, probability])


def linen_case(name, module, variables, probabilities, **options) -> Case:
    """A linen model whose ``logits_from_embedded_inputs`` takes a test-only ``alpha``."""
    model, params = attn_audit.flax_model(
        module, variables, embed="embed_token_ids", logits="logits_from_embedded_inputs",
        attention="attention", **options,
    )  # fmt: skip
    keyword = "lengths" if "lengths" in options else "padding_mask"

    def inputs(length, width):
        return length[None] if keyword == "lengths" else (jnp.arange(width) < length)[None]

    def embed(ids):
        return module.apply(variables, ids[None], method="embed_token_ids")[0]

    def forward(embedded, length, alpha=None):
        alpha = None if alpha is None else alpha[None]
        logits = module.apply(variables, embedded[None], inputs(length, embedded.shape[0]),
                              alpha, method="logits_from_embedded_inputs")  # fmt: skip
        return probabilities(logits[0])

    def own(embedded, length):
        _, state = module.apply(
            variables, embedded[None], inputs(length, embedded.shape[0]),
            method="logits_from_embedded_inputs", capture_intermediates=True,
            mutable=["intermediates"],
        )  # fmt: skip
        return state["intermediates"]["attention"]["__call__"][0][0]

    classes = 2 if options.get("output") == "sigmoid" else 3
    return Case(name, model, params, embed, forward, own, classes)


def initial_bilstm():
    module = LinenBiLSTM()
    variables = module.init(
        jax.random.key(0), jnp.zeros((1, WIDTH), jnp.int32), jnp.asarray([5]),
        method=lambda m, ids, n: m.logits_from_embedded_inputs(m.embed_token_ids(ids), n),
    )  # fmt: skip
    return module, variables


def linen_bilstm_case() -> Case:
    module, variables = initial_bilstm()
    # Larger weights make the output depend visibly on every token.
    variables = jax.tree.map(lambda w: 4.0 * w, variables)
    return linen_case("linen_bilstm", module, variables, two_class, output="sigmoid",
                      lengths="lengths")  # fmt: skip


def linen_average_case() -> Case:
    module = LinenAverage()
    ids = jnp.zeros((1, WIDTH), jnp.int32)
    variables = module.init(jax.random.key(1), ids, method=lambda m, i: (
        m.logits_from_embedded_inputs(m.embed_token_ids(i), i >= 0)))  # fmt: skip
    variables = jax.tree.map(lambda w: 3.0 * w, variables)
    return linen_case("linen_average", module, variables, jax.nn.softmax,
                      padding_mask="padding_mask")  # fmt: skip


def linen_transformer_case() -> Case:
    module = LinenTransformer()
    ids = jnp.ones((1, WIDTH), jnp.int32)
    variables = module.init(jax.random.key(2), ids, method=lambda m, i: (
        m.logits_from_embedded_inputs(m.embed_token_ids(i), i > 0)))  # fmt: skip
    model, params = attn_audit.flax_model(
        module, variables, embed="embed_token_ids", logits="logits_from_embedded_inputs",
        attention=nn.MultiHeadDotProductAttention, padding_mask="padding_mask",
    )  # fmt: skip

    def reference(rows=None):
        recorded = []
        fns = [RowsAttention(nn.dot_product_attention_weights, recorded) for _ in range(2)]
        fns[-1].rows = rows
        return LinenTransformer(attention_fns=tuple(fns)), recorded

    def embed(ids):
        return module.apply(variables, ids[None], method="embed_token_ids")[0]

    def apply(chosen, embedded, length):
        mask = (jnp.arange(embedded.shape[0]) < length)[None]
        return chosen.apply(variables, embedded[None], mask, method="logits_from_embedded_inputs")

    def forward(embedded, length, rows=None):
        chosen = module if rows is None else reference(rows)[0]
        return jax.nn.softmax(apply(chosen, embedded, length)[0])

    def own(embedded, length):
        chosen, recorded = reference()
        apply(chosen, embedded, length)
        return jnp.stack(recorded)[:, 0]  # [L, H, T, T]

    return Case("linen_transformer", model, params, embed, forward, own, 3)


def nnx_transformer_case() -> Case:
    module = NnxTransformer(nnx.Rngs(3))
    recorded = []
    weights_fn = nnx.nn.attention.dot_product_attention_weights
    fns = [RowsAttention(weights_fn, recorded) for _ in range(2)]
    reference = NnxTransformer(nnx.Rngs(3), tuple(fns))
    nnx.update(reference, nnx.state(module))
    model, params = attn_audit.flax_model(
        module, embed="embed_token_ids", logits="logits_from_embedded_inputs",
        attention="layers/1/attention", lengths="lengths",
    )  # fmt: skip

    def embed(ids):
        return module.embed_token_ids(ids[None])[0]

    def forward(embedded, length, rows=None):
        chosen = module if rows is None else reference
        fns[-1].rows = rows
        return jax.nn.softmax(chosen.logits_from_embedded_inputs(embedded[None], length[None])[0])

    def own(embedded, length):
        fns[-1].rows = None
        recorded.clear()
        reference.logits_from_embedded_inputs(embedded[None], length[None])
        return jnp.stack(recorded)[:, 0]

    return Case("nnx_transformer", model, params, embed, forward, own, 2)


def nnx_average_case() -> Case:
    module = NnxAverage(nnx.Rngs(4))
    module.decoder.kernel.set_value(4.0 * module.decoder.kernel.get_value())
    model, params = attn_audit.flax_model(
        module, embed="embed_token_ids", logits="logits_from_embedded_inputs",
        attention="attention", output="sigmoid", padding_mask="padding_mask", batched=False,
    )  # fmt: skip

    def forward(embedded, length, alpha=None):
        valid = jnp.arange(embedded.shape[0]) < length
        return two_class(module.logits_from_embedded_inputs(embedded, valid, alpha))

    def own(embedded, length):
        states = jnp.tanh(module.encoder(embedded))
        return module.attention(states, jnp.arange(embedded.shape[0]) < length)

    return Case("nnx_average", model, params, module.embed_token_ids, forward, own, 2)


CASE_BUILDERS = {
    "linen_bilstm": linen_bilstm_case,
    "linen_average": linen_average_case,
    "linen_transformer": linen_transformer_case,
    "nnx_transformer": nnx_transformer_case,
    "nnx_average": nnx_average_case,
}


@pytest.fixture(scope="module", params=list(CASE_BUILDERS))
def case(request) -> Case:
    return CASE_BUILDERS[request.param]()


BATCH = padded_batch((5, 7, 4), WIDTH)  # three instances of 3, 5 and 2 real tokens


# -------------------------------------------------------------------- equal to plain computations


def reference_audits(case: Case, batch: dict) -> list[dict]:
    """Per instance: probabilities, α, gradient importance and leave-one-out through the plain
    apply (SPEC §3): the attention held at the model's own for the gradient; each token
    deleted, one at a time."""

    @jax.jit
    def plain(ids, length):
        embedded = case.embed(ids)
        own = jax.lax.stop_gradient(case.own(embedded, length))
        probabilities = case.forward(embedded, length)
        predicted = jnp.argmax(probabilities)
        override = own[-1, :, 0, :] if own.ndim == 4 else own

        def held(inputs):
            return case.forward(inputs, length, override)[predicted]

        gradient = jax.grad(held)(embedded)
        return probabilities, own, jnp.abs(jnp.sum(gradient * embedded, axis=-1))

    references = []
    for token_ids, length in zip(batch["token_ids"], batch["lengths"], strict=True):
        probabilities, own, importance = map(np.asarray, plain(token_ids, length))
        real = np.asarray(real_token_mask(length, len(token_ids)))
        own = own[-1, :, 0, :].mean(axis=0) if own.ndim == 4 else own  # heads averaged
        importance = np.where(real, importance, 0.0)
        loo = np.zeros(len(token_ids), np.float32)
        for position in range(1, length - 1):
            deleted = np.append(np.delete(token_ids, position), 0)
            without = np.asarray(plain(deleted, length - 1)[0])
            loo[position] = 0.5 * np.abs(without - probabilities).sum()
        references.append({
            "probabilities": probabilities, "attention": np.where(real, own, 0.0) / own[real].sum(),
            "gradient": importance / importance.sum(), "loo": loo,
        })  # fmt: skip
    return references


def test_audits_equal_the_plain_apply(case):
    """The adapter's α, output, gradient importance and leave-one-out equal the same
    computations on the unedited model (1e-6), for every instance of a batch.

    Compiled with the tests' XLA settings, as the reference: the engine's programs outside
    the tests (``batch_engine.COMPILER_OPTIONS``) round differently, by up to about 1e-6 on
    the gradient importance, whose ``Σ_d g e`` cancels.
    """

    @jax.jit
    def adapted(params, instances):
        def one(instance):
            _, _, alpha, probabilities = original_pass(case.model, params, instance)
            return {
                "attention": alpha, "probabilities": probabilities,
                "gradient": audits.gradient_importance(case.model, params, instance),
                "loo": audits.leave_one_out(case.model, params, instance),
            }  # fmt: skip

        return jax.vmap(one)(instances)

    found = adapted(case.params, batch_engine.instances_from_batch(BATCH))
    for row, expected in enumerate(reference_audits(case, BATCH)):
        for name, value in expected.items():
            np.testing.assert_allclose(found[name][row], value, atol=1e-6, err_msg=name)


def test_gradient_explainers_differentiate_the_plain_apply(case):
    """grad × input is the gradient of the unedited model's output, every attention free
    (the audit's decode holds the heads' rows; the explainers must not)."""
    explain = jax.jit(grad_input, static_argnums=0)
    for token_ids, length in zip(BATCH["token_ids"], BATCH["lengths"], strict=True):
        instance = {"token_ids": jnp.asarray(token_ids), "length": jnp.asarray(length)}
        embedded = case.embed(jnp.asarray(token_ids))
        target = jnp.argmax(case.forward(embedded, length))
        gradient = jax.grad(lambda e: case.forward(e, length)[target])(embedded)  # noqa: B023
        real = np.asarray(real_token_mask(length, len(token_ids)))
        expected = np.where(real, np.sum(np.asarray(gradient * embedded), axis=-1), 0.0)
        found = np.asarray(explain(case.model, case.params, instance))
        np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-7)


def test_the_engine_runs_all_four_audits(case):
    """BatchAuditor (3 adversary steps, 4 shuffles): finite results of the documented shapes."""
    audited = audits.BatchAuditor(
        case.model, case.params, adversary=audits.AdversarySettings(steps=3), num_permutations=4
    )(BATCH)
    rows = len(BATCH["lengths"])
    for name in ("attention", "gradient", "loo"):
        assert audited[name].shape == (rows, WIDTH), name
    np.testing.assert_allclose(audited["gradient"].sum(-1), 1.0, atol=1e-5)
    shapes = {
        "probabilities": (rows, case.num_classes), "permutation_median_tvd": (rows,),
        "adversarial_max_jsd": (rows,), "adversarial_candidates": (rows, 5, WIDTH),
        "adversarial_selected_attention": (rows, WIDTH),
    }  # fmt: skip
    for name, shape in shapes.items():
        assert audited[name].shape == shape, name
        assert np.all(np.isfinite(audited[name])), name
    assert np.all(audited["permutation_median_tvd"] >= 0.0)
    assert np.all(np.isfinite(audited["gradient"])) and np.all(np.isfinite(audited["loo"]))


def test_decoding_another_alpha_is_the_plain_apply_with_that_attention(case):
    """A shuffled α (the permutation test's) decodes to the model's output with its attention
    replaced: the submodule's output, or the last layer's CLS rows re-weighted (mix_heads)."""
    token_ids, length = BATCH["token_ids"][1], int(BATCH["lengths"][1])
    instance = {"token_ids": jnp.asarray(token_ids), "length": jnp.int32(length)}

    @jax.jit
    def adapter(params, key):
        _, states, alpha, probabilities = original_pass(case.model, params, instance)
        permuted = audits.permute_real_tokens(alpha, real_token_mask(length, WIDTH), key)
        return permuted, probabilities, case.model.decode(params, instance, states, permuted)

    @jax.jit
    def plain(alpha):
        embedded = case.embed(instance["token_ids"])
        own = case.own(embedded, instance["length"])
        return case.forward(embedded, instance["length"],
                            case.override_for(own, alpha, instance["length"]))  # fmt: skip

    permuted, probabilities, decoded = adapter(case.params, jax.random.key(4))
    np.testing.assert_allclose(decoded, plain(permuted), atol=1e-6)
    assert np.abs(decoded - probabilities).max() > 1e-4  # the shuffle changed the output


# -------------------------------------------------------------------- the batch engines


SMALL_EXPLAINERS = explainer_engine.ExplainerSettings(
    ig_points=4, shapley_max_tokens=5, shapley_permutations=4, kernel_samples=8,
    lime_samples=8, max_sequence_positions=256,
)  # fmt: skip


# Each explainer is a program of its own: every explainer runs once, on the order-free models
# (fastest to compile); rollout and flow on the transformers. The audits above cover every
# model's code paths; the explainers and metrics reach a model only through them.
EXPLAINERS_OF = {
    "linen_average": ("gradient", "integrated_gradients", "occlusion", "shapley_exact", "random"),
    "nnx_average": ("grad_input", "grad_l2", "shapley_sampling", "kernel_shap", "lime", "random"),
    "linen_transformer": explainer_engine.MAP_EXPLAINERS,
    "nnx_transformer": explainer_engine.MAP_EXPLAINERS,
}


def test_every_explainer_runs_on_some_flax_model():
    chosen = {name for names in EXPLAINERS_OF.values() for name in names}
    assert chosen | {"attention"} == set(explainer_engine.EXPLAINERS)


@pytest.mark.parametrize("name", ["linen_average", "nnx_average"])
def test_explainers_and_metrics_run_through_the_engines(name):
    """BatchExplainer (``EXPLAINERS_OF``), BatchFaithfulness (ERASER, decision flips) and the
    explainers' agreement on a linen and an nnx model: finite results of the documented
    shapes."""
    case = CASE_BUILDERS[name]()
    rows = len(BATCH["lengths"])
    chosen = ("attention", *EXPLAINERS_OF[name])
    explained = explainer_engine.BatchExplainer(
        case.model, case.params, chosen, jax.random.key(5), SMALL_EXPLAINERS
    )(BATCH)
    for explainer in chosen:
        assert explained[explainer].shape == (rows, WIDTH), explainer
        assert np.all(np.isfinite(explained[explainer])), explainer
    records = {
        int(index): {"id": f"x{index}", **{e: explained[e][row][1 : length - 1].tolist()
                                           for e in chosen}}
        for row, (index, length) in enumerate(zip(BATCH["index"], BATCH["lengths"], strict=True))
    }  # fmt: skip
    metrics = faithfulness.BatchFaithfulness(
        case.model, case.params, chosen, records,
        faithfulness.FaithfulnessSettings(max_sequence_positions=256),
    )(BATCH)  # fmt: skip
    percents = len(faithfulness.PERCENTS)
    assert metrics["comprehensiveness"].shape == (rows, 2, len(chosen), percents)
    assert metrics["flip_fraction"].shape == (rows, len(chosen))
    for metric in ("comprehensiveness", "sufficiency", "flip_fraction", "top1_flip"):
        assert np.all(np.isfinite(metrics[metric])), metric
    agreement = faithfulness.pairwise_agreement(
        metrics["scores"], metrics["available"], BATCH["lengths"], chosen
    )
    assert agreement[f"attention|{chosen[1]}"]["tau"].shape == (rows,)


@pytest.mark.parametrize("name", ["linen_transformer", "nnx_transformer"])
def test_rollout_and_flow_read_every_layer_of_a_flax_transformer(name):
    """``attention_maps`` are every layer's weights in call order, and the explainers'
    rollout is AZ's of them."""
    case = CASE_BUILDERS[name]()
    chosen = ("attention", *EXPLAINERS_OF[name])
    explained = explainer_engine.BatchExplainer(case.model, case.params, chosen, None,
                                                SMALL_EXPLAINERS)(BATCH)  # fmt: skip
    adapted = jax.jit(case.model.attention_maps)
    plain = jax.jit(lambda ids, length: case.own(case.embed(ids), length))
    for row, length in enumerate(BATCH["lengths"]):
        instance = {"token_ids": jnp.asarray(BATCH["token_ids"][row]), "length": length}
        maps = adapted(case.params, instance)
        np.testing.assert_allclose(maps, plain(instance["token_ids"], length), atol=1e-6)
        rollout = az.layer_relevance(maps, length)["rollout"][-1]
        np.testing.assert_allclose(explained["attention_rollout"][row], rollout, atol=1e-6)
        assert np.all(np.isfinite(explained["attention_flow"][row]))


def test_map_explainers_need_a_transformer():
    case = CASE_BUILDERS["nnx_average"]()
    with pytest.raises(ValueError, match="need a transformer"):
        explainer_engine.BatchExplainer(case.model, case.params, ("attention_rollout",))


# -------------------------------------------------------------------- the adapter itself


def test_the_model_is_a_static_argument_and_equal_models_share_programs():
    module, variables = initial_bilstm()
    options = dict(embed="embed_token_ids", logits="logits_from_embedded_inputs",
                   attention="attention", output="sigmoid", lengths="lengths")  # fmt: skip
    one, _ = attn_audit.flax_model(module, variables, **options)
    two, _ = attn_audit.flax_model(LinenBiLSTM(), variables, **options)
    assert one == two and hash(one) == hash(two)
    assert type(one) is attn_audit.FlaxModel and not hasattr(one, "attention_maps")
    with_kwargs, _ = attn_audit.flax_model(
        module, variables, **options, logits_kwargs={"alpha": None}
    )
    assert with_kwargs.logits_kwargs == (("alpha", None),) and with_kwargs != one
    listed = LinenTransformer(attention_fns=[nn.dot_product_attention] * 2)
    variables = listed.init(jax.random.key(0), jnp.ones((1, 4), jnp.int32), method=lambda m, i: (
        m.logits_from_embedded_inputs(m.embed_token_ids(i), i > 0)))  # fmt: skip
    with pytest.raises(ValueError, match=r"LinenTransformer must be hashable .* its fields "
                       r"\['attention_fns'\] are not: use tuples"):  # fmt: skip
        attn_audit.flax_model(listed, variables, embed="embed_token_ids",
                              logits="logits_from_embedded_inputs", padding_mask="padding_mask",
                              attention=nn.MultiHeadDotProductAttention)  # fmt: skip


def test_nnx_state_is_the_split_state_and_the_user_module_is_untouched():
    module = NnxTransformer(nnx.Rngs(2))
    before = jax.tree.map(np.asarray, nnx.state(module))
    graphdef, state = nnx.split(module)
    model, params = attn_audit.flax_model(
        graphdef, state, embed="embed_token_ids", logits="logits_from_embedded_inputs",
        attention=nnx.MultiHeadAttention, lengths="lengths",
    )  # fmt: skip
    assert params is state and model.attention_path == ("layers", 1, "attention")
    assert model.map_paths == (("layers", 0, "attention"), ("layers", 1, "attention"))
    instance = {"token_ids": jnp.asarray([2, 5, 6, 3, 0, 0]), "length": jnp.int32(4)}
    maps = jax.jit(lambda p: model.attention_maps(p, instance))(params)
    assert maps.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-6)
    jax.jit(lambda p: original_pass(model, p, instance))(params)
    assert module.layers[1].attention.attention_fn is nnx.dot_product_attention
    assert not hasattr(module.layers[1].attention, "attention_weights")  # nothing sown
    after = jax.tree.map(np.asarray, nnx.state(module))
    jax.tree.map(np.testing.assert_array_equal, before, after)


def bilstm_options(**changes):
    module, variables = initial_bilstm()
    options = dict(embed="embed_token_ids", logits="logits_from_embedded_inputs",
                   attention="attention", output="sigmoid", lengths="lengths")  # fmt: skip
    return module, variables, {**options, **changes}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"embed": "embed_ids"}, "LinenBiLSTM has no method 'embed_ids'; name one of its own"),
        ({"logits": "classify"}, "logits='classify': LinenBiLSTM has no method 'classify'"),
        ({"attention": "classifier/attention"}, "names no submodule that "
         "logits_from_embedded_inputs calls; pass the path of one of: .*attention"),
        ({"attention": "encoder"}, r"must return the attention distribution \[1, 3\]"),
        ({"output": "relu"}, "output must be one of .*'softmax', 'sigmoid'.*got 'relu'"),
        ({"output": "softmax"}, "output='softmax' needs two or more logits; "
         "logits_from_embedded_inputs gave one: pass output='sigmoid'"),
        ({"attention": nn.MultiHeadDotProductAttention}, "calls no such layer; pass the path"),
        ({"attention": nnx.MultiHeadAttention}, "is not a flax.linen layer.*flax.linen.MultiHead"),
        ({"attention": nn.Dense}, "is a class: name the attention submodule by its path"),
        ({"logits_kwargs": {"alpha": [1.0]}}, r"logits_kwargs values must be hashable"),
    ],
)  # fmt: skip
def test_bad_input_is_a_one_line_error_that_names_the_fix(changes, message):
    module, variables, options = bilstm_options(**changes)
    with pytest.raises(ValueError, match=message) as raised:
        attn_audit.flax_model(module, variables, **options)
    assert "\n" not in str(raised.value)


def test_bad_modules_and_nnx_paths_are_clear_errors():
    module, variables, options = bilstm_options()
    with pytest.raises(ValueError, match="module must be a flax.linen.Module .* got object"):
        attn_audit.flax_model(object(), variables, **options)
    with pytest.raises(ValueError, match="A linen module holds no weights: pass the variables"):
        attn_audit.flax_model(module, None, **options)
    with pytest.raises(ValueError, match="A linen module holds no weights"):
        attn_audit.flax_model(module, variables["params"], **options)
    nnx_options = dict(embed="embed_token_ids", logits="logits_from_embedded_inputs",
                       lengths="lengths")  # fmt: skip
    transformer = NnxTransformer(nnx.Rngs(0))
    unknown = "'layers/2/attention' names no submodule of NnxTransformer; pass the path of one of"
    with pytest.raises(ValueError, match=f"{unknown}: .*layers/1/attention"):
        attn_audit.flax_model(transformer, attention="layers/2/attention", **nnx_options)
    with pytest.raises(ValueError, match="must return the attention distribution"):
        attn_audit.flax_model(transformer, attention="layers.1.norm", **nnx_options)
    with pytest.raises(ValueError, match="is not a flax.nnx layer.*flax.nnx.MultiHeadAttention"):
        attn_audit.flax_model(transformer, attention=nn.MultiHeadDotProductAttention,
                              **nnx_options)  # fmt: skip
    with pytest.raises(ValueError, match="needs its state"):
        attn_audit.flax_model(nnx.split(transformer)[0], attention="layers/1/attention",
                              **nnx_options)  # fmt: skip
    average = NnxAverage(nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"must give logits \[1, C\]; got shape \(1, 1, 1\): a "
                       "model written for one instance .* needs batched=False"):  # fmt: skip
        attn_audit.flax_model(average, embed="embed_token_ids", attention="attention",
                              logits="logits_from_embedded_inputs", output="sigmoid",
                              padding_mask="padding_mask")  # fmt: skip
    with pytest.raises(ValueError, match="output='sigmoid' needs one logit; .* gave 2: pass "
                       "output='softmax'"):  # fmt: skip
        attn_audit.flax_model(transformer, attention="layers/1/attention", output="sigmoid",
                              **nnx_options)  # fmt: skip
    with pytest.raises(ValueError, match="head_mixing must be one of"):
        attn_audit.flax_model(transformer, attention="layers/1/attention", head_mixing="max",
                              **nnx_options)  # fmt: skip


def test_the_adapter_is_public():
    assert attn_audit.flax_model is flax_model and audits.flax_model is flax_model
    assert attn_audit.FlaxTransformerModel is FlaxTransformerModel
