"""attn_audit.explainers.perturbation: removing tokens by mask or deletion equals list surgery,
and coalition values are the model's output on the modified instance."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, batch_engine
from attn_audit.data.vocab import UNK
from attn_audit.explainers import perturbation
from attn_audit.explainers.occlusion import occlusion, occlusion_of_batch
from tests._fixtures import CASES, forward_probabilities, instance_of, tiny_batch, tiny_model

MASK_ID = 1
remove_tokens = jax.jit(perturbation.remove_tokens, static_argnums=(2, 3))


def removed_by_hand(ids, length, keep, removal):
    """The same removal on Python lists: real tokens (1 … length − 2) outside ``keep`` go."""
    real = range(1, length - 1)
    if removal == "mask":
        return [MASK_ID if t in real and not keep[t] else ids[t] for t in range(len(ids))], length
    kept = [ids[t] for t in range(length) if t not in real or keep[t]]
    return kept + [0] * (len(ids) - len(kept)), len(kept)


@pytest.mark.parametrize("removal", ["mask", "delete"])
def test_removal_equals_list_surgery(removal):
    batch = tiny_batch((9, 4, 3, 12), width=12, seed=3)
    rng = np.random.default_rng(0)
    for row in range(4):
        instance = instance_of(batch, row)
        for _ in range(5):
            keep = rng.random(12) < 0.5
            got = remove_tokens(instance, jnp.asarray(keep), removal, MASK_ID)
            ids, length = removed_by_hand(
                batch["token_ids"][row].tolist(), int(batch["lengths"][row]), keep, removal
            )
            assert np.asarray(got["token_ids"]).tolist() == ids
            assert int(got["length"]) == length


def test_unknown_removal_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown removal 'drop'"):
        perturbation.remove_tokens(instance_of(tiny_batch(), 0), jnp.ones(12, bool), "drop", 1)


@pytest.mark.parametrize("removal", ["mask", "delete"])
@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_coalition_values_are_the_models_probability_of_the_target(removal, case):
    encoder, attention, task, classes = case
    model, params = tiny_model(encoder, attention, task, classes)
    batch = tiny_batch((9,), width=12, seed=5, questions=task == "qa")
    instance = instance_of(batch, 0)
    question = None if task != "qa" else (batch["question_ids"][0], batch["question_lengths"][0])
    keeps = jnp.asarray(np.random.default_rng(1).random((6, 12)) < 0.5)
    target = classes - 1
    values = perturbation.coalition_values(
        model, params, instance, keeps, target, removal, MASK_ID, 4
    )
    for keep, value in zip(np.asarray(keeps), np.asarray(values), strict=True):
        ids, length = removed_by_hand(batch["token_ids"][0].tolist(), 9, keep, removal)
        expected, _ = forward_probabilities(model, params, np.asarray(ids), length, question)
        assert value == pytest.approx(expected[target], abs=1e-6)


def test_player_layout_round_trips():
    players = jnp.asarray([[True, False, True], [False, False, True]])
    keeps = perturbation.keep_from_players(players, 7)
    assert np.asarray(keeps).tolist() == [
        [True, True, False, True, True, True, True], [True, False, False, True, True, True, True]
    ]  # fmt: skip
    scores = perturbation.scores_on_positions(jnp.asarray([1.0, 2.0, 3.0]), 7)
    assert np.asarray(scores).tolist() == [0, 1, 2, 3, 0, 0, 0]


def test_random_ranks_order_the_real_players_first_and_do_not_depend_on_the_width():
    key = jax.random.key(3)
    narrow, narrow_uniform = map(np.asarray, perturbation.random_player_ranks(key, 6, 50, 4))
    wide, wide_uniform = map(np.asarray, perturbation.random_player_ranks(key, 12, 50, 4))
    np.testing.assert_array_equal(narrow_uniform, wide_uniform)
    for ranks in (narrow, wide):
        assert (np.sort(ranks[:, :4], axis=1) == np.arange(4)).all()  # real players: 0 … n − 1
    np.testing.assert_array_equal(narrow[:, :4], wide[:, :4])
    assert len({tuple(r) for r in narrow[:, :4]}) > 10  # orders vary


occlusion_jit = jax.jit(occlusion, static_argnums=(0, 3, 4, 5, 6))


@pytest.mark.parametrize("removal", ["mask", "delete"])
@pytest.mark.parametrize("task", ["classification", "qa"])
def test_occlusion_through_the_bilstm_shortcut_equals_re_running_the_model(removal, task):
    """The masked (deleted) pairs' states reused from the original pass (``masking_states``,
    ``deletion_states``), all pairs at once and 3 variants a step, against one whole forward
    pass per removed token; rows from no real token to the full width."""
    model, params = tiny_model("lstm", "dot" if task == "qa" else "tanh", task, num_classes=3)
    batch = tiny_batch((2, 3, 4, 7, 12), width=12, seed=4, questions=task == "qa")
    for row in range(5):
        instance = instance_of(batch, row)
        plain = occlusion_jit(model, params, instance, UNK, removal, None, False)
        assert np.abs(plain).max() > 0 or row == 0  # the tokens move the output
        for chunk in (None, 3):
            found = occlusion_jit(model, params, instance, UNK, removal, chunk, True)
            np.testing.assert_allclose(found, plain, atol=1e-6, err_msg=f"row {row}")


@pytest.mark.parametrize("removal", ["mask", "delete"])
@pytest.mark.parametrize("encoder", ["lstm", "cnn"])  # with and without the pair shortcut
def test_occlusion_of_a_batch_equals_each_row_alone(removal, encoder):
    model, params = tiny_model(encoder, "tanh", num_classes=3)
    batch = tiny_batch((3, 7, 12, 5), width=12)
    batch["lengths"][3] = 0  # a padding row
    batch["token_ids"][3] = 0
    instances = {k: jnp.asarray(v) for k, v in (("token_ids", batch["token_ids"]),
                                                 ("length", batch["lengths"]))}  # fmt: skip
    for per_step in (1, 5):  # the pairs in 5 steps and in one
        found = jax.jit(occlusion_of_batch, static_argnums=(0, 3, 4, 5))(
            model, params, instances, UNK, removal, per_step
        )
        for row in range(3):
            expected = occlusion_jit(
                model, params, instance_of(batch, row), UNK, removal, None, False
            )
            np.testing.assert_allclose(found[row], expected, atol=1e-6)
        np.testing.assert_array_equal(found[3], 0.0)


@dataclasses.dataclass(frozen=True)
class WithoutCoalitionShortcut(audits.JWModel):
    """A JW model whose coalitions re-run the whole model (embedding and projection)."""

    def coalition_states(self, params, instance, embedded, states, mask_token_id):
        return None


@pytest.mark.parametrize("encoder, attention, task, num_classes", [CASES[0], CASES[3]])
def test_coalitions_through_the_projection_shortcut_equal_re_running_the_model(
    encoder, attention, task, num_classes
):
    """The BiLSTM's coalitions of masked tokens read from the stacked masking contexts
    (``coalition_states``) equal one whole forward pass each, in steps spanning rows; a
    padding row and the empty and full coalitions included (QA: the question is kept)."""
    model, params = tiny_model(encoder, attention, task, num_classes)
    batch = tiny_batch((3, 7, 12, 5), width=12, questions=task == "qa")
    batch["lengths"][3], batch["token_ids"][3] = 0, 0  # a padding row
    instances = batch_engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    keeps = jnp.asarray(np.random.default_rng(4).random((4, 6, 12)) < 0.5)
    keeps = keeps.at[:, 0].set(False).at[:, 1].set(True)
    needed = jnp.asarray(batch["lengths"] > 0)[:, None] & jnp.ones((4, 6), bool)
    of_batch = jax.jit(
        perturbation.coalition_probabilities_of_batch, static_argnums=(0, 5, 6, 7)
    )  # fmt: skip
    assert perturbation.coalition_shortcut(model, params, instances, MASK_ID) is not None
    shortcut = of_batch(model, params, instances, keeps, needed, "mask", MASK_ID, 5)
    plain_model = WithoutCoalitionShortcut(model.config)
    plain = of_batch(plain_model, params, instances, keeps, needed, "mask", MASK_ID, 5)
    assert np.all(np.asarray(plain)[:3] > 0)
    np.testing.assert_allclose(np.asarray(shortcut), np.asarray(plain), atol=1e-6)
