"""attn_audit.models.deletion_shortcut: the states without a token equal re-encoding."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import models
from attn_audit.models import deletion_shortcut
from tests._fixtures import initial_params, padded, tiny_config


def _stacked(contexts: list[dict]) -> dict:
    """The contexts of several sequences as a batch's (leading axis B)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *contexts)


def _masking_contexts(params, config, sequences, mask_embedding, matrix):
    """Each sequence's ``masking_context`` and the same stacked as a batch's."""
    contexts = [
        deletion_shortcut.masking_context(
            params["encoder"], models.embed(params, config, token_ids), length, mask_embedding,
            matrix,
        )
        for token_ids, length in sequences
    ]  # fmt: skip
    return contexts, _stacked(contexts)


@pytest.mark.parametrize("encoder", ["lstm", "cnn", "average"])
def test_states_without_pair_equal_encoding_each_deleted_sequence(encoder):
    """Both variants of every pair (p, n − 1 − p), SOS and EOS included, as states and through
    a random linear readout, against encoding the shorter sequence from scratch; from one
    sequence's context and from its row of a batch's contexts."""
    config = tiny_config(encoder, "tanh")
    params = initial_params(config)
    readout = jax.random.normal(jax.random.key(5), (config.state_dim, 3))
    sequences = [padded(list(range(4, 4 + length - 2)), 12) for length in (3, 6, 10)]
    for matrix in (None, readout):
        contexts = [
            deletion_shortcut.deletion_context(
                params["encoder"], config, models.embed(params, config, token_ids), length,
                matrix,
            )
            for token_ids, length in sequences
        ]  # fmt: skip
        batch = _stacked(contexts)
        for row, (token_ids, length) in enumerate(sequences):
            for position in range(length):
                # From a batch's row, the chains stop at the row's own length (longest).
                pair, from_batch = (
                    deletion_shortcut.states_without_pair(
                        params["encoder"], config, context, length, jnp.int32(position), matrix,
                        index, longest,
                    )
                    for context, index, longest in ((contexts[row], None, None),
                                                    (batch, jnp.int32(row), jnp.int32(length)))
                )  # fmt: skip
                np.testing.assert_allclose(from_batch, pair, atol=1e-6)
                for member, deleted in enumerate([position, length - 1 - position]):
                    kept = [t for t in range(12) if t != deleted] + [11]
                    shorter = jnp.where(jnp.arange(12) < length - 1, token_ids[jnp.array(kept)], 0)
                    expected = models.encode(
                        params, config, models.embed(params, config, shorter), length - 1
                    )
                    tolerance = 1e-6 if matrix is None else 1e-5
                    if matrix is not None:
                        expected = expected @ matrix
                    np.testing.assert_allclose(pair[member], expected, atol=tolerance)


@pytest.mark.parametrize("kernel_sizes", [(1,), (3,), (5, 1), (1, 3, 5, 7)])
def test_cnn_states_without_equal_encoding_the_deleted_sequence_at_any_reach(kernel_sizes):
    """Every deleted position of sequences shorter and longer than the re-convolved window
    (4r), in a bucket wider than both."""
    config = dataclasses.replace(tiny_config("cnn", "tanh"), cnn_kernel_sizes=kernel_sizes)
    params = initial_params(config)
    width = 24
    for length in (3, 9, 20):
        token_ids, length = padded(list(range(4, 4 + length - 2)), width)
        embedded = models.embed(params, config, token_ids)
        context = deletion_shortcut.deletion_context(params["encoder"], config, embedded, length)
        for position in range(length):
            got = deletion_shortcut.cnn_states_without(
                params["encoder"]["convolutions"], config, context, length, jnp.int32(position)
            )
            kept = [t for t in range(width) if t != position] + [width - 1]
            shorter = jnp.where(jnp.arange(width) < length - 1, token_ids[jnp.array(kept)], 0)
            expected = models.encode(
                params, config, models.embed(params, config, shorter), length - 1
            )
            np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=f"{length} {position}")


def test_masked_pair_states_equal_encoding_each_masked_sequence():
    """Both variants of every pair (p, n − 1 − p), SOS and EOS included, as states and through
    a random linear readout, against encoding the masked sequence from scratch; from one
    sequence's context and from its row of a batch's contexts."""
    config = tiny_config("lstm", "tanh")
    params = initial_params(config)
    readout = jax.random.normal(jax.random.key(5), (config.state_dim, 3))
    mask_id = 1
    mask_embedding = models.embed(params, config, jnp.asarray([mask_id]))[0]
    sequences = [padded(list(range(4, 4 + length - 2)), 12) for length in (3, 6, 11, 12)]
    for matrix in (None, readout):
        contexts, batch = _masking_contexts(params, config, sequences, mask_embedding, matrix)
        for row, (token_ids, length) in enumerate(sequences):
            for position in range(length):
                # From a batch's row, the chains stop at the row's own length (longest).
                pair, from_batch = (
                    deletion_shortcut.bilstm_states_masked_pair(
                        params["encoder"]["rnn"], context, length, jnp.int32(position), matrix,
                        index, longest,
                    )
                    for context, index, longest in ((contexts[row], None, None),
                                                    (batch, jnp.int32(row), jnp.int32(length)))
                )  # fmt: skip
                np.testing.assert_allclose(from_batch, pair, atol=1e-6)
                for member, masked in enumerate([position, length - 1 - position]):
                    variant = jnp.asarray(token_ids).at[masked].set(mask_id)
                    expected = models.encode(params, config, models.embed(params, config, variant),
                                             length)  # fmt: skip
                    tolerance = 1e-6 if matrix is None else 1e-5
                    if matrix is not None:
                        expected = expected @ matrix
                    np.testing.assert_allclose(pair[member], expected, atol=tolerance,
                                               err_msg=f"{length} {position} {member}")  # fmt: skip


def test_blended_states_equal_encoding_the_blended_sequence():
    """Random coalitions of masked real tokens (none, some, all; presence 0 or 1) and random
    points between the mask token and each token (presence in (0, 1), integrated gradients'
    path), as states and through a random linear readout, against encoding the blended
    embeddings ``w e + (1 − w) m`` from scratch; from one sequence's context and from its
    row of a batch's contexts."""
    config = tiny_config("lstm", "tanh")
    params = initial_params(config)
    readout = jax.random.normal(jax.random.key(5), (config.state_dim, 3))
    mask_id = 1
    mask_embedding = models.embed(params, config, jnp.asarray([mask_id]))[0]
    sequences = [padded(list(range(4, 4 + length - 2)), 12) for length in (3, 7, 12)]
    rng = np.random.default_rng(0)
    for matrix in (None, readout):
        contexts, batch = _masking_contexts(params, config, sequences, mask_embedding, matrix)
        for row, (token_ids, length) in enumerate(sequences):
            real = (np.arange(12) >= 1) & (np.arange(12) <= length - 2)
            embedded = models.embed(params, config, jnp.asarray(token_ids))
            coalitions = [np.where(real & (rng.random(12) < rate), 0.0, 1.0)
                          for rate in (0.0, 0.4, 1.0)]  # fmt: skip
            points = [np.where(real, rng.random(12), 1.0) for _ in range(2)]
            for case, presence in enumerate(coalitions + points):
                presence = jnp.asarray(presence, jnp.float32)
                # From a batch's row, the chains stop at the row's own length (longest).
                got, from_batch = (
                    deletion_shortcut.bilstm_states_blended(
                        params["encoder"]["rnn"], context, length, presence, matrix, index,
                        longest,
                    )
                    for context, index, longest in ((contexts[row], None, None),
                                                    (batch, jnp.int32(row), jnp.int32(length)))
                )  # fmt: skip
                np.testing.assert_allclose(from_batch, got, atol=1e-6)
                if case < len(coalitions):  # the masked sequence, embedded from its tokens
                    variant = jnp.where(presence == 0, mask_id, jnp.asarray(token_ids))
                    blended = models.embed(params, config, variant)
                else:
                    weight = presence[:, None]
                    blended = weight * embedded + (1 - weight) * mask_embedding[None, :]
                expected = models.encode(params, config, blended, length)
                tolerance = 1e-6 if matrix is None else 1e-5
                if matrix is not None:
                    expected = expected @ matrix
                message = f"{length} case {case}"
                np.testing.assert_allclose(got, expected, atol=tolerance, err_msg=message)


def test_only_the_bilstm_has_a_masking_shortcut():
    assert deletion_shortcut.has_masking_shortcut(tiny_config("lstm", "tanh"))
    for encoder in ("cnn", "average"):
        assert not deletion_shortcut.has_masking_shortcut(tiny_config(encoder, "tanh"))
