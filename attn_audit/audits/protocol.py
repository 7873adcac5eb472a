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

Optionally, ``deletion_states(params, instance, embedded, states)`` returns a
function ``position -> states`` of the sequence with that token deleted (or
``None``); leave-one-out then skips re-encoding (our BiLSTM reuses the
unchanged half of each direction, see ``models.encoders.bilstm_states_without``).

The audits use them like this: gradient importance differentiates
``decode(encode(e), stop_gradient(α))`` with respect to ``e = embed(...)``;
leave-one-out deletes a token from ``token_ids`` (shifting the rest left, length
− 1) and runs all four; permutation and the adversarial search call ``decode``
with other α on fixed states.
"""

import dataclasses
from typing import Any, Protocol

import jax

from attn_audit import models
from attn_audit.models import decoder, encoders


class AuditableModel(Protocol):
    """The four functions the audits need; see the module docstring."""

    def embed(self, params: Any, instance: dict) -> jax.Array: ...

    def encode(self, params: Any, instance: dict, embedded: jax.Array) -> Any: ...

    def attention(self, params: Any, instance: dict, states: Any) -> jax.Array: ...

    def decode(self, params: Any, instance: dict, states: Any, alpha: jax.Array) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class JWModel:
    """attn_audit's JW models (``attn_audit.models``) as an ``AuditableModel``.

    ``states`` is ``{"states": [T, H], "question": [H] or None, "projected": [T, P]}``, the
    last the states through the decoder's first linear layer, so that ``decode`` of a new
    α costs ``α P`` (``models.decoder.project_states``).
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
        return self._with_projection(params, {"states": states, "question": question})

    def _with_projection(self, params, states):
        # decode re-scores α through per-token projections (models.decoder.project_states).
        projected = decoder.project_states(params, self.config, states["states"])
        return {**states, "projected": projected}

    def attention(self, params, instance, states):
        scores = models.attention_scores(params, self.config, states["states"], states["question"])
        mask = models.attention_mask(instance["length"], scores.shape[0])
        return models.attention_weights(scores, mask)

    def decode(self, params, instance, states, alpha):
        logits = decoder.decode_projected(
            params, self.config, states["projected"], alpha, states["question"]
        )
        return models.probabilities(logits, self.config)

    def deletion_states(self, params, instance, embedded, states):
        """Optional leave-one-out shortcut: ``position -> states`` of the deleted sequence.

        ``None`` where re-encoding is as cheap (cnn). The question is not touched.
        """
        if not encoders.has_deletion_shortcut(self.config):
            return None
        encoder_params, length = params["encoder"], instance["length"]
        context = encoders.deletion_context(encoder_params, self.config, embedded, length)

        def without(position):
            variant = encoders.states_without(
                encoder_params, self.config, context, length, position
            )
            return self._with_projection(
                params, {"states": variant, "question": states["question"]}
            )

        return without
