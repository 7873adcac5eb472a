"""Each vmapped audit against a plain loop, a hand-computable case and the PyTorch twin."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, models, stats
from attn_audit.audits import JWModel

VOCAB = 23


def tiny_model(encoder="lstm", attention="tanh", task="classification", num_classes=2, seed=0):
    config = models.ModelConfig(
        vocab_size=VOCAB, num_classes=num_classes, encoder=encoder, attention=attention,
        task=task, embed_dim=6, hidden_size=4, cnn_filters=3,
    )  # fmt: skip
    params = models.init(jax.random.key(seed), config)
    # Larger output weights make the outputs depend visibly on every token.
    params["decoder"] = jax.tree.map(lambda w: 3.0 * w, params["decoder"])
    return JWModel(config), params


def tiny_batch(lengths=(7, 4, 9), width=12, seed=1, questions=False):
    """Rows ``[SOS] + real tokens + [EOS]`` padded to ``width``; ``lengths`` count SOS/EOS."""
    rng = np.random.default_rng(seed)
    token_ids = np.zeros((len(lengths), width), np.int32)
    for row, n in enumerate(lengths):
        token_ids[row, :n] = [2, *rng.integers(4, VOCAB, n - 2), 3]
    batch = {"token_ids": token_ids, "lengths": np.asarray(lengths, np.int32)}
    if questions:
        batch["question_ids"] = np.asarray([[2, 5, 6, 3, 0]] * len(lengths), np.int32)
        batch["question_lengths"] = np.full(len(lengths), 4, np.int32)
    return batch


def instance_of(batch, row):
    instance = {"token_ids": jnp.asarray(batch["token_ids"][row]),
                "length": jnp.asarray(batch["lengths"][row])}  # fmt: skip
    if "question_ids" in batch:
        instance["question_ids"] = jnp.asarray(batch["question_ids"][row])
        instance["question_length"] = jnp.asarray(batch["question_lengths"][row])
    return instance


def forward_probabilities(model, params, token_ids, length, question=None):
    """The model's output through ``models.forward`` (not the audit code path)."""
    extra = (
        {} if question is None else {"question_ids": question[0], "question_length": question[1]}
    )
    logits, aux = models.forward(params, model.config, jnp.asarray(token_ids), length, **extra)
    return np.asarray(models.probabilities(logits, model.config)), np.asarray(aux["attention"])


CASES = [
    ("lstm", "tanh", "classification", 2), ("cnn", "dot", "classification", 2),
    ("average", "tanh", "classification", 3), ("lstm", "dot", "qa", 4),
]  # fmt: skip


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES)
def test_loo_equals_a_python_loop_of_deletions(encoder, attention, task, num_classes):
    model, params = tiny_model(encoder, attention, task, num_classes)
    batch = tiny_batch(questions=task == "qa")
    vmapped = np.asarray(audits.engine.loo_batch(model, params, audits.engine.instances_from_batch(
        {k: jnp.asarray(v) for k, v in batch.items()})))  # fmt: skip
    for row, length in enumerate(batch["lengths"]):
        question = None
        if task == "qa":
            question = (batch["question_ids"][row], batch["question_lengths"][row])
        ids = list(batch["token_ids"][row][:length])
        original, _ = forward_probabilities(
            model, params, batch["token_ids"][row], length, question
        )
        expected = np.zeros(batch["token_ids"].shape[1])
        for t in range(1, length - 1):
            shorter = ids[:t] + ids[t + 1 :]
            padded = np.zeros(batch["token_ids"].shape[1], np.int32)
            padded[: len(shorter)] = shorter
            deleted, _ = forward_probabilities(model, params, padded, length - 1, question)
            expected[t] = 0.5 * np.abs(deleted - original).sum()
        np.testing.assert_allclose(vmapped[row], expected, atol=1e-6)


def test_loo_in_chunks_equals_loo_at_once():
    model, params = tiny_model("lstm", "tanh")
    instances = audits.engine.instances_from_batch(
        {k: jnp.asarray(v) for k, v in tiny_batch().items()}
    )
    at_once = audits.engine.loo_batch(model, params, instances)
    for chunk in (1, 5, 11):
        chunked = audits.engine.loo_batch(model, params, instances, chunk)
        np.testing.assert_allclose(chunked, at_once, atol=1e-6)
    assert audits.engine.loo_positions_per_chunk(32, 64) is None
    assert audits.engine.loo_positions_per_chunk(32, 512) == 16


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES)
def test_gradient_equals_a_loop_of_per_instance_gradients(encoder, attention, task, num_classes):
    model, params = tiny_model(encoder, attention, task, num_classes)
    batch = tiny_batch(questions=task == "qa")
    vmapped = np.asarray(audits.engine.gradient_batch(
        model, params, audits.engine.instances_from_batch(
            {k: jnp.asarray(v) for k, v in batch.items()})))  # fmt: skip
    for row, length in enumerate(batch["lengths"]):
        token_ids = jnp.asarray(batch["token_ids"][row])
        question = None
        if task == "qa":
            question = models.question_vector(
                params, model.config, jnp.asarray(batch["question_ids"][row]),
                batch["question_lengths"][row],
            )  # fmt: skip
        embedded = models.embed(params, model.config, token_ids)

        def predicted(e, length=length, question=question):
            logits, _ = models.forward_from_embedded(
                params, model.config, e, length, question, stop_attention_gradient="audited"
            )
            return models.probabilities(logits, model.config)

        c = int(np.argmax(predicted(embedded)))
        grads = jax.grad(lambda e, c=c: predicted(e)[c])(embedded)
        raw = np.abs(np.sum(np.asarray(grads) * np.asarray(embedded), axis=-1))
        raw[0], raw[length - 1 :] = 0.0, 0.0
        np.testing.assert_allclose(vmapped[row], raw / raw.sum(), atol=1e-6)


def test_permutation_equals_a_loop_over_the_same_permutations():
    model, params = tiny_model("lstm", "tanh")
    batch = tiny_batch()
    key = jax.random.key(3)
    for row in range(len(batch["lengths"])):
        instance = instance_of(batch, row)
        tvds = np.asarray(audits.permutation_tvds(model, params, instance, key, 20))
        embedded = model.embed(params, instance)
        states = model.encode(params, instance, embedded)
        alpha = model.attention(params, instance, states)
        original = np.asarray(model.decode(params, instance, states, alpha))
        mask = np.asarray(models.real_token_mask(instance["length"], 12))
        for i, permutation_key in enumerate(jax.random.split(key, 20)):
            permuted = audits.permute_real_tokens(alpha, jnp.asarray(mask), permutation_key)
            assert sorted(np.asarray(permuted)[mask]) == pytest.approx(
                sorted(np.asarray(alpha)[mask])
            )
            assert np.all(np.asarray(permuted)[~mask] == 0)
            shuffled = np.asarray(model.decode(params, instance, states, permuted))
            assert tvds[i] == pytest.approx(0.5 * np.abs(shuffled - original).sum(), abs=1e-6)


def test_permutations_are_uniform_over_positions():
    alpha = jnp.asarray([0.0, 1.0, 0.0, 0.0, 0.0])
    mask = jnp.asarray([False, True, True, True, False])
    moved = jax.vmap(lambda k: audits.permute_real_tokens(alpha, mask, k))(
        jax.random.split(jax.random.key(0), 3000)
    )
    share = np.asarray(moved).mean(axis=0)
    np.testing.assert_allclose(share[1:4], 1 / 3, atol=0.03)
    assert share[0] == share[4] == 0


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES[:3])
def test_adversaries_keep_the_output_and_match_a_loop(encoder, attention, task, num_classes):
    model, params = tiny_model(encoder, attention, task, num_classes)
    batch = tiny_batch()
    settings = audits.AdversarySettings(steps=60)
    keys = jax.random.split(jax.random.key(5), 3)
    instances = audits.engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    found = audits.engine.adversarial_batch(model, params, instances, keys, settings)
    for row, length in enumerate(batch["lengths"]):
        single = audits.adversarial_search(
            model, params, instance_of(batch, row), keys[row], settings
        )
        np.testing.assert_allclose(found["max_jsd"][row], single["max_jsd"], atol=1e-6)
        original, alpha = forward_probabilities(model, params, batch["token_ids"][row], length)
        adversary = np.asarray(found["selected_attention"][row])
        assert adversary.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.all(adversary[0] == 0) and np.all(adversary[length - 1 :] == 0)
        # Re-score the selected adversary through the ordinary forward pass.
        logits, _ = models.forward(
            params, model.config, jnp.asarray(batch["token_ids"][row]), length,
            attention_override=jnp.asarray(adversary),
        )  # fmt: skip
        rescored = np.asarray(models.probabilities(logits, model.config))
        assert 0.5 * np.abs(rescored - original).sum() <= settings.epsilon + 1e-6
        jsd = float(stats.jsd(jnp.asarray(adversary), jnp.asarray(alpha)))
        assert jsd == pytest.approx(float(found["max_jsd"][row]), abs=1e-5)
        if int(found["selected"][row]) >= 0:
            assert float(found["max_jsd"][row]) > 0


@dataclasses.dataclass(frozen=True)
class TwoTokenModel:
    """A hand-computable model: e_t = [t-th weight], h = e, scores (0, 1), ŷ = σ(w·Σ α h)."""

    def embed(self, params, instance):
        return params["vectors"][instance["token_ids"]]

    def encode(self, params, instance, embedded):
        return embedded

    def attention(self, params, instance, states):
        mask = models.real_token_mask(instance["length"], states.shape[0])
        return models.masked_softmax(params["scores"][instance["token_ids"]], mask)

    def decode(self, params, instance, states, alpha):
        positive = jax.nn.sigmoid(params["w"] * jnp.sum(alpha * states[:, 0]))
        return jnp.stack([1 - positive, positive])


def test_hand_computable_two_token_case():
    # ids: PAD 0, UNK 1, SOS 2, EOS 3, word a = 4 (h = 1, score 0), word b = 5 (h = 2, score 1).
    params = {
        "vectors": jnp.asarray([[0.0], [0.0], [0.0], [0.0], [1.0], [2.0]]),
        "scores": jnp.asarray([0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
        "w": jnp.asarray(1.0),
    }
    instance = {"token_ids": jnp.asarray([2, 4, 5, 3, 0]), "length": jnp.asarray(4)}
    model = TwoTokenModel()
    e = math.e
    alpha = np.asarray([0, 1, e, 0, 0]) / (1 + e)
    z = (1 + 2 * e) / (1 + e)
    sigma = 1 / (1 + math.exp(-z))
    *_, alpha_jax, probabilities = audits._instance.original_pass(model, params, instance)
    np.testing.assert_allclose(alpha_jax, alpha, atol=1e-7)
    np.testing.assert_allclose(probabilities, [1 - sigma, sigma], atol=1e-7)
    # Gradient (α fixed): ∂σ/∂e_t = σ(1−σ)·α_t, so importance ∝ α_t·e_t = (1, 2e)/(1+e).
    gradient = np.asarray(audits.gradient_importance(model, params, instance))
    np.testing.assert_allclose(gradient, np.asarray([0, 1, 2 * e, 0, 0]) / (1 + 2 * e), atol=1e-6)
    # LOO: without a, ŷ = σ(2); without b, ŷ = σ(1).
    loo = np.asarray(audits.leave_one_out(model, params, instance))
    s1, s2 = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))
    np.testing.assert_allclose(loo, [0, abs(s2 - sigma), abs(s1 - sigma), 0, 0], atol=1e-6)
    # Both permutations of two tokens: identity (TVD 0) or the swap.
    swapped = 1 / (1 + math.exp(-(e + 2) / (1 + e)))
    tvds = np.asarray(audits.permutation_tvds(model, params, instance, jax.random.key(0), 50))
    assert set(np.round(tvds.astype(float), 6)) <= {0.0, round(abs(swapped - sigma), 6)}


@pytest.mark.parametrize("encoder", models.ENCODERS)
def test_gradient_and_loo_match_the_pytorch_twin(encoder):
    import torch

    from attn_audit.interop import to_torch_state_dict
    from tests.reference.torch_model import load_torch_model

    model, params = tiny_model(encoder, "tanh")
    twin = load_torch_model(to_torch_state_dict(params, model.config), model.config)
    batch = tiny_batch()
    instances = audits.engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    jax_gradient = np.asarray(audits.engine.gradient_batch(model, params, instances))
    jax_loo = np.asarray(audits.engine.loo_batch(model, params, instances))

    captured = {}

    def keep_embeddings(module, inputs, output):
        output.retain_grad()
        captured["embedded"] = output

    hooks = [
        twin.encoder.embedding.register_forward_hook(keep_embeddings),
        # Attention held fixed: detach the scores, so no gradient flows through α.
        twin.decoder.attention.register_forward_hook(lambda m, i, output: output.detach()),
    ]
    token_ids = torch.from_numpy(batch["token_ids"].astype(np.int64))
    lengths = torch.from_numpy(batch["lengths"].astype(np.int64))
    probabilities, _ = twin(token_ids, lengths)
    predicted = probabilities.argmax(dim=-1)
    probabilities.gather(1, predicted[:, None]).sum().backward()
    for hook in hooks:
        hook.remove()
    embedded = captured["embedded"]
    importance = (embedded.grad * embedded).sum(-1).abs().detach().numpy()
    for row, length in enumerate(batch["lengths"]):
        importance[row, 0], importance[row, length - 1 :] = 0.0, 0.0
    importance /= importance.sum(axis=1, keepdims=True)
    # float32 on both sides; 1e-5 absorbs summation-order differences.
    np.testing.assert_allclose(jax_gradient, importance, atol=1e-5)

    with torch.no_grad():
        original, _ = twin(token_ids, lengths)
        for row, length in enumerate(batch["lengths"]):
            for t in range(1, length - 1):
                shorter = torch.cat(
                    [token_ids[row, :t], token_ids[row, t + 1 :], torch.zeros(1, dtype=torch.int64)]
                )
                deleted, _ = twin(shorter[None], lengths[row : row + 1] - 1)
                expected = 0.5 * (deleted[0] - original[row]).abs().sum().item()
                assert jax_loo[row, t] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("encoder, task", [("lstm", "classification"), ("average", "qa")])
def test_deletion_shortcut_equals_re_encoding_the_deleted_sequence(encoder, task):
    model, params = tiny_model(encoder, "tanh", task, 2 if task == "classification" else 3)
    batch = tiny_batch(questions=task == "qa")
    for row, length in enumerate(batch["lengths"]):
        instance = instance_of(batch, row)
        embedded = model.embed(params, instance)
        states = model.encode(params, instance, embedded)
        states_without_pair = model.deletion_states(params, instance, embedded, states)
        for position in range(length):  # SOS and EOS included
            got = states_without_pair(jnp.asarray(position))
            for member, deleted in enumerate([position, length - 1 - position]):
                variant = dict(instance)
                variant["token_ids"] = audits.delete_position(instance["token_ids"], deleted)
                variant["length"] = length - 1
                expected = model.encode(params, variant, model.embed(params, variant))
                for key in ("keys", "projected"):
                    np.testing.assert_allclose(
                        got[key][member], expected[key], atol=1e-6, err_msg=f"{key} {deleted}"
                    )


def test_cnn_has_no_deletion_shortcut():
    model, params = tiny_model("cnn", "dot")
    instance = instance_of(tiny_batch(), 0)
    embedded = model.embed(params, instance)
    assert model.deletion_states(params, instance, embedded, None) is None


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES)
def test_decoding_through_projections_equals_the_plain_decoder(
    encoder, attention, task, num_classes
):
    model, params = tiny_model(encoder, attention, task, num_classes)
    instance = instance_of(tiny_batch(questions=task == "qa"), 2)
    states = model.encode(params, instance, model.embed(params, instance))
    alpha = jax.random.dirichlet(jax.random.key(3), jnp.ones(12))
    plain = models.decode(params, model.config, states["states"], alpha, states["question"])
    expected = models.probabilities(plain, model.config)
    np.testing.assert_allclose(model.decode(params, instance, states, alpha), expected, atol=1e-6)


def test_adversarial_objective_equals_its_formula_with_stats_jsd():
    settings = audits.AdversarySettings(num_candidates=4)
    mask = jnp.asarray([False, True, True, True, True, False, False])
    logits = 3.0 * jax.random.normal(jax.random.key(5), (4, 7))
    alpha = models.masked_softmax(jax.random.normal(jax.random.key(6), (7,)), mask)
    weights = jax.random.normal(jax.random.key(7), (7, 3))

    def decode_fn(candidate):
        return jax.nn.softmax(candidate @ weights)

    probabilities = decode_fn(alpha)
    got = audits.adversarial.adversarial_objective(
        logits, decode_fn, alpha, probabilities, mask, settings
    )
    candidates = models.masked_softmax(logits, mask)
    expected = 0.0
    for k in range(4):
        change = float(stats.tvd(decode_fn(candidates[k]), probabilities))
        expected += 500.0 * max(change - 0.01, 0.0) - float(stats.jsd(candidates[k], alpha))
    pairs = [float(stats.jsd(candidates[a], candidates[b]))
             for a in range(4) for b in range(a + 1, 4)]  # fmt: skip
    expected -= sum(pairs) / len(pairs)
    assert float(got) == pytest.approx(expected, abs=1e-5)
