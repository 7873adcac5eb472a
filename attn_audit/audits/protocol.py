"""What a model must provide to be audited, and the adapter for attn_audit's own models.

An auditable model is any hashable object (a frozen dataclass is simplest: the
audits pass it to ``jax.jit`` as a static argument) with four pure functions of
ONE instance. An instance is a dict of arrays with at least

- ``"token_ids"``: int ``[T]``, ``[SOS] + tokens + [EOS]`` then PAD (0);
- ``"length"``: int scalar, the number of non-PAD positions (SOS and EOS included);

plus whatever else the model reads (our QA/NLI models read ``"question_ids"`` and
``"question_length"``). Attention lives on the real tokens, positions
``1 … length − 2`` (SPEC §1); the audits never look elsewhere.

```python
class AuditableModel(Protocol):
    def embed(self, params, instance) -> Array: ...             # [T, E] input embeddings
    def encode(self, params, instance, embedded) -> Any: ...    # hidden states (any pytree)
    def attention(self, params, instance, states) -> Array: ... # α [T], 0 off the real tokens
    def decode(self, params, instance, states, alpha) -> Array: # ŷ [C], class probabilities
```

Optionally, ``forward(params, instance, embedded)`` gives the class probabilities
``[C]`` with every attention map a function of ``embedded`` (nothing held): the
gradient explainers differentiate it. Without it they differentiate
``decode(encode(e), attention(encode(e)))``, which is the model itself only when
``decode`` lets the gradient through everything α does not replace (JWModel does; the
transformer adapters hold the other heads' rows and so provide ``forward``).

Optionally, ``deletion_states(params, instance, embedded, states)`` returns a
``StateShortcut``, ``p -> states`` (each leaf with a leading axis of 2) of the sequence
without token p and of the sequence without its mirror ``length − 1 − p`` (or
``None``); leave-one-out then skips re-encoding (our BiLSTM reuses the
unchanged half of each direction and runs the two variants' new chains in
shared lanes, see ``models.deletion_shortcut.bilstm_states_without_pair``).
``masking_states(params, instance, embedded, states, mask_token_id)`` is its
counterpart for a masked token (occlusion), and ``coalition_states`` (same arguments) gives
the states of the sequence whose embedding at t is ``w_t e_t + (1 − w_t) m`` (``m`` the mask
token's) for any ``w`` in [0, 1]: coalitions of masked tokens (the perturbation explainers
and the flips) and integrated gradients' path points, without embedding and projecting
each variant again.

The audits use them like this: gradient importance differentiates
``decode(encode(e), stop_gradient(α))`` with respect to ``e = embed(...)``;
leave-one-out deletes a token from ``token_ids`` (shifting the rest left, length
− 1) and runs all four; permutation and the adversarial search call ``decode``
with other α on fixed states.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from attn_audit import models
from attn_audit.batch_engine import ragged_map
from attn_audit.models import decoder, deletion_shortcut, is_real_token


class AuditableModel(Protocol):
    """The four functions the audits need; see the module docstring."""

    def embed(self, params: Any, instance: dict) -> jax.Array: ...

    def encode(self, params: Any, instance: dict, embedded: jax.Array) -> Any: ...

    def attention(self, params: Any, instance: dict, states: Any) -> jax.Array: ...

    def decode(self, params: Any, instance: dict, states: Any, alpha: jax.Array) -> jax.Array: ...


def original_pass(model, params, instance):
    """``(embedded [T, E], states, α [T], ŷ [C])`` of the unmodified instance: what every
    audit, explainer and metric starts from."""
    embedded = model.embed(params, instance)
    states = model.encode(params, instance, embedded)
    alpha = model.attention(params, instance, states)
    probabilities = model.decode(params, instance, states, alpha)
    return embedded, states, alpha, probabilities


def batch_predictions(model, params, instances) -> tuple[jax.Array, jax.Array]:
    """``(p(· | x) [B, C], ŷ [B])`` of every row of a batch (``original_pass`` vmapped): what
    the whole-batch audits, explainers and metrics start from."""
    probabilities = jax.vmap(lambda instance: original_pass(model, params, instance)[3])(instances)
    return probabilities, jnp.argmax(probabilities, axis=-1)


class StateShortcut(NamedTuple):
    """A model's shortcut for one instance's variants without one token (``deletion_states``,
    ``masking_states``): ``states(context, row, p, longest=None)`` are the states (each leaf
    with a leading axis of 2) without token p and without its mirror ``length − 1 − p``
    (``coalition_states``: of one blend, see there).

    ``context`` holds the instance's arrays that ``states`` reads, with ``row=None``; a
    batch's contexts stack (``batch_pair_shortcut``) and ``states`` reads row ``row`` of
    them in place, so one function serves every row and no variant copies its row's context.
    ``longest``: optional int scalar, at least the length of every instance whose variants
    run together (the same for all of them, not ``vmap``-ed): a recurrent encoder may stop
    there instead of at the padded width (not reverse-differentiable; None: all positions).
    ``shortcut(p)`` applies it to its own context."""

    context: Any
    states: Callable[..., Any]

    def __call__(self, position):
        return self.states(self.context, None, position)


def _row_of(leaf, row):
    """``leaf`` of one instance's context (``row`` None) or row ``row`` of a batch's."""
    return leaf if row is None else leaf[row]


def batch_pair_shortcut(shortcut_of, instances, embedded, states) -> StateShortcut | None:
    """``shortcut_of(instance, embedded, states)`` (a model's ``deletion_states`` or
    ``masking_states``, its other arguments bound) of every row of a batch: one
    ``StateShortcut`` whose context leaves have a leading ``[B]`` axis; None for a model
    without one (decided while tracing row 0, whose traced calls are dropped)."""
    found = shortcut_of(*jax.tree.map(lambda leaf: leaf[0], (instances, embedded, states)))
    if found is None:
        return None
    contexts = jax.vmap(lambda *row: shortcut_of(*row).context)(instances, embedded, states)
    return StateShortcut(contexts, found.states)


def pair_values_of_batch(shortcut: StateShortcut, instances, value, pairs_per_step) -> jax.Array:
    """``value`` of every real token of every row, two tokens per pair of variants.

    Row b's pairs are ``(p, n_b − 1 − p)`` for ``p = 1 … ⌊(n_b − 1) / 2⌋``: each real token
    once (the middle one of an odd count pairs with itself). Only these pairs run, gathered
    over the batch (``ragged_map``), ``pairs_per_step`` at a time; a row's padded width and
    its padding rows cost nothing.

    Args:
      shortcut: ``batch_pair_shortcut`` of the batch.
      instances: the batch, each leaf ``[B, ...]``.
      value: ``(row, instance, pair [2], pair_states) -> [2]``, the value of the variants
        without ``pair[0]`` and without ``pair[1]``, vmappable.
      pairs_per_step: pairs run together; None: all of them at once.

    Returns:
      ``[B, T]``: the value of the variant without t at each real token t, 0 elsewhere.
    """
    num_rows, num_positions = instances["token_ids"].shape
    lengths = instances["length"]
    firsts = jnp.arange(1, max((num_positions - 1) // 2, 1) + 1)  # [K]
    mirrors = lengths[:, None] - 1 - firsts[None, :]  # [B, K]
    needed = firsts[None, :] <= mirrors

    def pair_value(row, item, longest):
        instance = jax.tree.map(lambda leaf: leaf[row], instances)
        pair = jnp.stack([firsts[item], mirrors[row, item]])
        states = shortcut.states(shortcut.context, row, firsts[item], longest)
        return value(row, instance, pair, states)

    # A step's pairs run only as many positions as its longest row (StateShortcut).
    values = ragged_map(
        pair_value, needed, pairs_per_step, lambda rows: jnp.max(lengths[rows])
    )  # [B, K, 2]
    # p from the pair's first variant; its mirror from the second, unless it is p itself.
    slots = jnp.stack([
        jnp.where(needed, firsts[None, :], num_positions),
        jnp.where(needed & (mirrors > firsts[None, :]), mirrors, num_positions),
    ], axis=-1)  # fmt: skip
    rows = jnp.broadcast_to(jnp.arange(num_rows)[:, None, None], slots.shape)
    found = jnp.zeros((num_rows, num_positions), values.dtype)
    found = found.at[rows, slots].set(values, mode="drop")
    real = is_real_token(jnp.arange(num_positions)[None, :], lengths[:, None])
    return jnp.where(real, found, 0.0)


@dataclasses.dataclass(frozen=True)
class JWModel:
    """attn_audit's JW models (``attn_audit.models``) as an ``AuditableModel``.

    ``states`` is ``{"states": [T, H], "question": [H] or None, "keys": [T, K],
    "projected": [T, P]}``: besides the encoder states, their two linear readouts,
    the attention keys (``models.attention_keys``; the scores are a nonlinearity of
    them) and the projections through the decoder's first linear layer
    (``models.decoder.project_states``; ``decode`` of a new α costs ``α P``).
    Attention and decoder read only the readouts, so leave-one-out variants carry
    no ``"states"``.
    """

    config: models.ModelConfig

    def embed(self, params, instance):
        return models.embed(params, self.config, instance["token_ids"])

    def encode(self, params, instance, embedded):
        question = None
        if self.config.task == "qa":
            question = models.question_vector(
                params, self.config, instance["question_ids"], instance["question_length"]
            )
        states = models.encode(params, self.config, embedded, instance["length"])
        return {"states": states, **self._readouts(params, states, question)}

    def _readouts(self, params, states, question):
        return {
            "question": question,
            "keys": models.attention_keys(params, self.config, states, question),
            "projected": decoder.project_states(params, self.config, states),
        }

    def attention(self, params, instance, states):
        scores = models.scores_from_keys(params, self.config, states["keys"], states["question"])
        mask = models.real_token_mask(instance["length"], scores.shape[0])
        return models.attention_weights(scores, mask)

    def decode(self, params, instance, states, alpha):
        logits = decoder.decode_projected(
            params, self.config, states["projected"], alpha, states["question"]
        )
        return models.probabilities(logits, self.config)

    def deletion_states(self, params, instance, embedded, states):
        """Optional leave-one-out shortcut: a ``StateShortcut``, ``p -> states`` without p and
        without ``n − 1 − p``.

        Each leaf of the returned states has a leading axis of 2; they hold the
        readouts only (``"keys"``, ``"projected"``), which the BiLSTM computes
        without materialising the variants' states and the CNN by re-convolving only
        the states next to the deleted token. ``None`` for an encoder without a
        shortcut (``deletion_shortcut.has_deletion_shortcut``). The question is not touched.
        """
        if not deletion_shortcut.has_deletion_shortcut(self.config):
            return None
        encoder_params, length = params["encoder"], instance["length"]
        readout, widths = self._pair_readout(params, embedded, states["question"])
        context = deletion_shortcut.deletion_context(
            encoder_params, self.config, embedded, length, readout
        )

        def pair_states(pair_context, row, position, own_readout, longest):
            return deletion_shortcut.states_without_pair(
                encoder_params, self.config, pair_context["context"],
                _row_of(pair_context["length"], row), position, own_readout, row, longest,
            )  # fmt: skip

        pair_context = {"context": context, "length": length}
        return self._pair_shortcut(states, readout, widths, pair_states, pair_context)

    def masking_states(self, params, instance, embedded, states, mask_token_id):
        """Optional occlusion shortcut: a ``StateShortcut``, ``p -> states`` with p masked and
        with ``n − 1 − p`` masked (``mask_token_id`` in their place), as ``deletion_states``
        returns them.

        The BiLSTM reuses each direction's unchanged half and runs the two variants' new
        chains in shared lanes (``deletion_shortcut.bilstm_states_masked_pair``); ``None``
        for the other encoders (``deletion_shortcut.has_masking_shortcut``).
        """
        if not deletion_shortcut.has_masking_shortcut(self.config):
            return None
        return self._masking_shortcut(
            params, instance, embedded, states, mask_token_id,
            deletion_shortcut.bilstm_states_masked_pair, copies=2,
        )  # fmt: skip

    def coalition_states(self, params, instance, embedded, states, mask_token_id):
        """Optional shortcut for coalitions of masked tokens and the points between them: a
        ``StateShortcut``, ``presence -> states`` of the sequence whose embedding at t is
        ``w_t e_t + (1 − w_t) m`` (``w = presence``, float ``[T]`` in [0, 1]; ``m`` the mask
        token's embedding): 0 masks a token, 1 keeps it. Differentiable in ``presence``.

        The BiLSTM blends each position's input projection with the mask token's, read from
        the masking context, instead of embedding and projecting every variant
        (``deletion_shortcut.bilstm_states_blended``); ``None`` for the other encoders.
        """
        if not deletion_shortcut.has_masking_shortcut(self.config):
            return None
        return self._masking_shortcut(
            params, instance, embedded, states, mask_token_id,
            deletion_shortcut.bilstm_states_blended, copies=None,
        )  # fmt: skip

    def _masking_shortcut(self, params, instance, embedded, states, mask_token_id, variants_of,
                          copies):  # fmt: skip
        """``masking_states`` and ``coalition_states``: the BiLSTM's masking context (input
        projections of the positions and of the mask token) and ``variants_of(rnn, context,
        length, what, readout, row, longest)`` reading it."""
        encoder_params, length = params["encoder"], instance["length"]
        readout, widths = self._pair_readout(params, embedded, states["question"])
        mask_embedding = models.embed(params, self.config, jnp.asarray([mask_token_id]))[0]
        context = deletion_shortcut.masking_context(
            encoder_params, embedded, length, mask_embedding, readout
        )

        def variant_states(variant_context, row, what, own_readout, longest):
            return variants_of(
                encoder_params["rnn"], variant_context["context"],
                _row_of(variant_context["length"], row), what, own_readout, row, longest,
            )  # fmt: skip

        variant_context = {"context": context, "length": length}
        return self._pair_shortcut(states, readout, widths, variant_states, variant_context, copies)

    def _pair_readout(self, params, embedded, question) -> tuple[jax.Array, list[int]]:
        """``([2H, K + P], [K])``: the attention keys' and the decoder projections' readout
        matrix side by side, and where to split their outputs."""
        # Both readouts are linear and bias-free: their matrix is the readout of the identity.
        identity = jnp.eye(self.config.state_dim, dtype=embedded.dtype)
        readouts = self._readouts(params, identity, question)
        readout = jnp.concatenate([readouts["keys"], readouts["projected"]], axis=-1)
        return readout, [readouts["keys"].shape[-1]]

    def _pair_shortcut(self, states, readout, widths, pair_states, pair_context, copies=2):
        """A ``StateShortcut`` of ``{"question", "keys", "projected"}`` (leading axis
        ``copies``; none for ``copies=None``) of a pair of variants (or of one coalition),
        from ``pair_states(pair_context, row, what, readout, longest)``, their states read out
        through ``readout`` (``_pair_readout``)."""
        question = states["question"]
        # Without a question the readout is the parameters' alone: one for every row, not a
        # copy per row in the context (which a batch stacks, batch_pair_shortcut).
        context = {"pair": pair_context, "question": question,
                   "readout": None if question is None else readout}  # fmt: skip

        def pair(context, row, what, longest=None):
            own = readout if context["readout"] is None else _row_of(context["readout"], row)
            found = pair_states(context["pair"], row, what, own, longest)
            keys, projected = jnp.split(found, widths, axis=-1)
            pair_question = None if question is None else _row_of(context["question"], row)
            if pair_question is not None and copies:
                pair_question = jnp.stack([pair_question] * copies)
            return {"question": pair_question, "keys": keys, "projected": projected}

        return StateShortcut(context, pair)
