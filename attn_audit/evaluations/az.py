r"""Abnar & Zuidema's evaluation of attention as token relevance (AZ §2, Tables 1–2; SPEC §5).

Per test instance and per layer l, the relevance of each input token read from the CLS
(first) position is correlated (Spearman ρ, NaN counted as 0) with two importance scores:

- **blank-out**: ``b_t = p_y(x) − p_y(x with token t replaced by UNK/[MASK])``, the drop of the
  probability of the correct class y when token t is blanked out (``blank_out_importance``);
- **input gradients**: ``g_t = |Σ_d ∂p_y/∂e_{t,d}|``, the gradient of the same probability
  with respect to the input word vectors e, summed over the vector and made absolute
  (``input_gradient_importance``).

The relevances (``layer_relevance``, ``flow_relevance``) are the CLS row of

- **raw** attention, the head average ``Ā_l`` (no residual),
- **rollout** ``R_l = A'_l · R_{l−1}`` and **flow** over ``A' = rownorm(0.5·Ā + 0.5·I)``
  (``attn_audit.relevance``),

at every layer, kept on the real tokens only (positions ``1 … length − 2``: CLS/SOS and
SEP/EOS are nodes of the graph but are not scored, as every statistic of SPEC §1). They are
not renormalised over the real tokens: a rank correlation does not see a common scale.

At layer 1 the three agree in rank on the real tokens: the residual only adds to the CLS
row's own position, so ``A'_1[0, t] = ½·Ā_1[0, t]`` for every real t, and ``R_1 = F_1 = A'_1``.

**Word pieces.** For a word-piece model (MiniLM) every score is per piece. Given a
``word_index`` (the word of each piece, −1 on [CLS], [SEP] and padding), relevance and
importance are summed over each word's pieces before the correlation (``word_sums``):
a sum keeps a distribution a distribution, and blanking out every piece of a word is, to
first order, the sum of blanking each piece.

Every function here works on ONE instance; ``attn_audit.evaluations.az_sweep`` vmaps and
jits them over batches, ``attn_audit.report.az`` writes the tables and figures.
"""

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit import models, stats
from attn_audit.audits import flow as flow_lib
from attn_audit.audits import rollout
from attn_audit.models import is_real_token, real_token_mask

# JW's vocabularies: PAD 0, UNK 1 (SPEC §1). MiniLM's [MASK] is 103: pass it instead.
UNK_ID = 1

# AZ Tables 1 and 2 (6-layer GPT-2-block encoder with a CLS token, subject–verb agreement,
# 2,000 test instances): mean Spearman ρ of the CLS relevance with blank-out and with input
# gradients, layers 1 to 6. SPEC §5 quotes layers 1 and 6 (and layer 6 with gradients); layers
# 2-5 are transcribed from AZ's tables, and match SPEC at the layers it quotes.
AZ_PUBLISHED = {
    ("raw", "blank_out"): (0.69, 0.10, -0.11, -0.09, 0.20, 0.29),
    ("rollout", "blank_out"): (0.32, 0.38, 0.51, 0.62, 0.70, 0.71),
    ("flow", "blank_out"): (0.32, 0.44, 0.70, 0.70, 0.71, 0.70),
    ("raw", "gradient"): (0.53, 0.16, -0.06, 0.00, 0.24, 0.46),
    ("rollout", "gradient"): (0.22, 0.27, 0.39, 0.47, 0.53, 0.54),
    ("flow", "gradient"): (0.22, 0.31, 0.54, 0.61, 0.60, 0.61),
}
RELEVANCES = ("raw", "rollout", "flow")
IMPORTANCES = ("blank_out", "gradient")


# ---------------------------------------------------------------- importance scores


def class_probability(params, config, embedded: jax.Array, length: jax.Array, label) -> jax.Array:
    """``p_y``: the model's probability of class ``label`` from input word vectors.

    Args:
      params, config: the model (any of ``attn_audit.models``, classification).
      embedded: ``[T, E]`` from ``models.embed``.
      length: scalar int, the number of non-PAD positions.
      label: scalar int, the class y.

    Returns:
      a scalar.
    """
    logits, _ = models.forward_from_embedded(params, config, embedded, length)
    return models.probabilities(logits, config)[label]


def blank_out_importance(
    params, config, token_ids: jax.Array, length: jax.Array, label, unk_id: int = UNK_ID
) -> jax.Array:
    """Blank-out: ``b_t = p_y(x) − p_y(x[t ← unk])`` for each real token t (AZ §2).

    Positive when the token supports class y. One forward pass per position, vmapped over
    the positions (every position of the bucket, so that the shape is static; non-real ones
    are computed and dropped).

    Args:
      params, config: the model (any of ``attn_audit.models``, classification).
      token_ids: int ``[T]``, ``[SOS] + tokens + [EOS]`` then PAD.
      length: scalar int.
      label: scalar int, the class y (AZ: the correct class).
      unk_id: the blank: UNK (1) for JW's vocabularies, ``[MASK]`` (103) for MiniLM.

    Returns:
      ``[T]``, 0 off the real tokens.
    """
    num_positions = token_ids.shape[0]
    base = class_probability(params, config, models.embed(params, config, token_ids), length, label)

    def blanked(position):
        ids = token_ids.at[position].set(unk_id)
        return class_probability(params, config, models.embed(params, config, ids), length, label)

    dropped = jax.vmap(blanked)(jnp.arange(num_positions))  # [T]
    return jnp.where(real_token_mask(length, num_positions), base - dropped, 0.0)


def input_gradient_importance(
    params, config, token_ids: jax.Array, length: jax.Array, label
) -> jax.Array:
    """Input gradients: ``g_t = |Σ_d ∂p_y/∂e_{t,d}|`` (AZ §2, SPEC §5).

    The score is the probability of class y (AZ: the correct class; pass the predicted class
    for JW's choice). Every attention map stays live (no stop-gradient), unlike JW's gradient
    audit. For one sigmoid output, ``∂p_y/∂e = ±σ'(z)·∂z/∂e``: the ranks are those of the
    logit's gradient.

    Args:
      params, config: the model (any of ``attn_audit.models``, classification).
      token_ids: int ``[T]``.
      length: scalar int.
      label: scalar int, the class y.

    Returns:
      ``[T]``, 0 off the real tokens.
    """
    embedded = models.embed(params, config, token_ids)  # [T, E]
    gradient = jax.grad(class_probability, argnums=2)(params, config, embedded, length, label)
    real = real_token_mask(length, token_ids.shape[0])
    return jnp.where(real, jnp.abs(jnp.sum(gradient, axis=-1)), 0.0)


# ---------------------------------------------------------------- relevance per layer


def layer_relevance(attention_maps: jax.Array, length: jax.Array) -> dict[str, jax.Array]:
    """Raw attention and rollout of the CLS row at every layer, on the real tokens (AZ §3).

    ``raw_l[t] = Ā_l[0, t]``, ``rollout_l[t] = R_l[0, t]`` for ``1 <= t <= length − 2``.

    Args:
      attention_maps: ``[L, H, T, T]`` (rows queries; ``transformer.forward``'s aux).
      length: scalar int.

    Returns:
      ``{"raw": [L, T], "rollout": [L, T]}``, 0 off the real tokens.
    """
    real = real_token_mask(length, attention_maps.shape[-1])[None, :]  # [1, T]
    raw = rollout.raw_attention(attention_maps, length)[:, 0, :]
    rolled = rollout.rollout(attention_maps, length)[:, 0, :]
    return {"raw": jnp.where(real, raw, 0.0), "rollout": jnp.where(real, rolled, 0.0)}


def flow_relevance(attention_maps, length: int) -> np.ndarray:
    """Attention flow into the CLS node of every layer, on the real tokens (AZ §3).

    ``flow_l[t]`` = max flow from input token t to (l, 0), normalised over all ``length``
    inputs (``flow_lib.attention_flow_row``). numpy and scipy: not traceable; for a batch
    use ``flow_lib.attention_flow_batch(maps, lengths, row=0)`` and ``real_token_mask``.

    Args:
      attention_maps: ``[L, H, T, T]``.
      length: the number of non-PAD positions, at least 1.

    Returns:
      ``[L, T]`` float64, 0 off the real tokens.
    """
    flow = flow_lib.attention_flow_row(attention_maps, int(length), row=0)
    return np.where(is_real_token(np.arange(flow.shape[-1]), length)[None, :], flow, 0.0)


# ---------------------------------------------------------------- one instance, every score


def instance_scores(
    params, config, token_ids: jax.Array, length: jax.Array, label, blank_id: int
) -> dict[str, jax.Array]:
    """Attention maps, raw/rollout relevance, blank-out and gradient importance of one instance.

    Args:
      params, config: a transformer (``config.is_transformer``), classification.
      token_ids: int ``[T]``, ``[SOS] + tokens + [EOS]`` then PAD.
      length: scalar int.
      label: scalar int, the class y (AZ: the correct class).
      blank_id: the blank of ``blank_out_importance`` (UNK, or ``[MASK]`` for MiniLM).

    Returns:
      ``{"attention_maps": [L, H, T, T], "raw": [L, T], "rollout": [L, T],
      "blank_out": [T], "gradient": [T], "probabilities": [C]}``.
    """
    logits, aux = models.forward(params, config, token_ids, length)
    scores = layer_relevance(aux["attention_maps"], length)
    scores["attention_maps"] = aux["attention_maps"]
    scores["probabilities"] = models.probabilities(logits, config)
    scores["blank_out"] = blank_out_importance(params, config, token_ids, length, label, blank_id)
    scores["gradient"] = input_gradient_importance(params, config, token_ids, length, label)
    return scores


# ---------------------------------------------------------------- words


def word_sums(scores: jax.Array, word_index: jax.Array) -> jax.Array:
    """Per-word sums of per-piece scores: ``s_w = Σ_{t: word_index[t] = w} s_t``.

    A word has at least one piece, so ``T`` slots hold every word; pieces with index −1
    ([CLS], [SEP], padding) are left out.

    Args:
      scores: ``[T]`` per position.
      word_index: int ``[T]``, the word of each position, −1 for none.

    Returns:
      ``[T]``: word w at slot w, 0 on slots with no word.
    """
    num_positions = scores.shape[-1]
    slots = jnp.where(word_index >= 0, word_index, num_positions)  # T: a slot that is cut off
    return jnp.zeros(num_positions + 1, scores.dtype).at[slots].add(scores)[:num_positions]


def word_mask(word_index: jax.Array) -> jax.Array:
    """bool ``[T]``: slot w holds a word (some position has ``word_index == w``)."""
    num_positions = word_index.shape[-1]
    slots = jnp.where(word_index >= 0, word_index, num_positions)
    return jnp.zeros(num_positions + 1, bool).at[slots].set(True)[:num_positions]


def correlations(
    relevances: dict[str, jax.Array],
    importances: dict[str, jax.Array],
    mask: jax.Array,
    word_index: jax.Array | None = None,
) -> dict[str, dict[str, jax.Array]]:
    """ρ of every layer's relevance with every importance score, for one instance.

    Args:
      relevances: name → ``[L, T]`` (``layer_relevance``, ``flow_relevance``).
      importances: name → ``[T]`` (``blank_out_importance``, ``input_gradient_importance``).
      mask: bool ``[T]``, the real tokens (``attention_mask``).
      word_index: optional int ``[T]`` (word-piece models): the word of each position, −1
        off the real tokens; scores are summed per word first (``word_sums``) and ρ runs
        over the words.

    Returns:
      ``{relevance name: {importance name: ρ [L]}}``.
    """
    if word_index is not None:
        word_index = jnp.where(mask, word_index, -1)
        relevances = {
            k: jax.vmap(word_sums, (0, None))(v, word_index) for k, v in relevances.items()
        }
        importances = {k: word_sums(v, word_index) for k, v in importances.items()}
        mask = word_mask(word_index)
    return {
        name: {
            kind: jax.vmap(stats.spearman_rho, (0, None, None))(layers, importance, mask)
            for kind, importance in importances.items()
        }
        for name, layers in relevances.items()
    }
