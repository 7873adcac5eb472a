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
function ``p -> states`` (each leaf with a leading axis of 2) of the sequence
without token p and of the sequence without its mirror ``length − 1 − p`` (or
``None``); leave-one-out then skips re-encoding (our BiLSTM reuses the
unchanged half of each direction and runs the two variants' new chains in
shared lanes, see ``models.deletion_shortcut.bilstm_states_without_pair``).
``masking_states(params, instance, embedded, states, mask_token_id)`` is its
counterpart for a masked token (occlusion).

The audits use them like this: gradient importance differentiates
``decode(encode(e), stop_gradient(α))`` with respect to ``e = embed(...)``;
leave-one-out deletes a token from ``token_ids`` (shifting the rest left, length
− 1) and runs all four; permutation and the adversarial search call ``decode``
with other α on fixed states.
"""

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from attn_audit import models
from attn_audit.models import decoder, deletion_shortcut


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
        """Optional leave-one-out shortcut: ``p -> states`` without p and without ``n − 1 − p``.

        Each leaf of the returned states has a leading axis of 2; they hold the
        readouts only (``"keys"``, ``"projected"``), which the BiLSTM computes
        without materialising the variants' states and the CNN by re-convolving only
        the states next to the deleted token. ``None`` for an encoder without a
        shortcut (``deletion_shortcut.has_deletion_shortcut``). The question is not touched.
        """
        if not deletion_shortcut.has_deletion_shortcut(self.config):
            return None
        encoder_params, length = params["encoder"], instance["length"]
        context = deletion_shortcut.deletion_context(encoder_params, self.config, embedded, length)

        def pair_states(position, readout):
            return deletion_shortcut.states_without_pair(
                encoder_params, self.config, context, length, position, readout
            )

        return self._pair_readouts(params, embedded, states, pair_states)

    def masking_states(self, params, instance, embedded, states, mask_token_id):
        """Optional occlusion shortcut: ``p -> states`` with p masked and with ``n − 1 − p``
        masked (``mask_token_id`` in their place), as ``deletion_states`` returns them.

        The BiLSTM reuses each direction's unchanged half and runs the two variants' new
        chains in shared lanes (``deletion_shortcut.bilstm_states_masked_pair``); ``None``
        for the other encoders (``deletion_shortcut.has_masking_shortcut``).
        """
        if not deletion_shortcut.has_masking_shortcut(self.config):
            return None
        encoder_params, length = params["encoder"], instance["length"]
        context = deletion_shortcut.deletion_context(encoder_params, self.config, embedded, length)
        mask_embedding = models.embed(params, self.config, jnp.asarray([mask_token_id]))[0]
        mask_gates = deletion_shortcut.mask_input_gates(encoder_params, mask_embedding)

        def pair_states(position, readout):
            return deletion_shortcut.bilstm_states_masked_pair(
                encoder_params["rnn"], context, mask_gates, length, position, readout
            )

        return self._pair_readouts(params, embedded, states, pair_states)

    def _pair_readouts(self, params, embedded, states, pair_states):
        """``p -> {"question", "keys", "projected"}`` of a pair of variants (leading axis 2)
        from ``pair_states(p, readout)``, which reads their states out through ``readout``."""
        question = states["question"]
        # Both readouts are linear and bias-free: their matrix is the readout of the identity.
        identity = jnp.eye(self.config.state_dim, dtype=embedded.dtype)
        readouts = self._readouts(params, identity, question)
        widths = [readouts["keys"].shape[-1]]
        readout = jnp.concatenate([readouts["keys"], readouts["projected"]], axis=-1)

        def pair(position):
            keys, projected = jnp.split(pair_states(position, readout), widths, axis=-1)
            pair_question = None if question is None else jnp.stack([question, question])
            return {"question": pair_question, "keys": keys, "projected": projected}

        return pair
