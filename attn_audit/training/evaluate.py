"""Predictions and evaluation of a model over a split, in fixed-shape batches (SPEC §2).

The epoch with the best dev ROC-AUC (binary) or dev accuracy (otherwise) is kept; with an
adversary guide, the best WP objective.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit import data, models
from attn_audit.training import metrics
from attn_audit.training.objectives import Guide, adversarial_terms, guide_outputs

EVAL_BATCH_SIZE = 128


@functools.partial(jax.jit, static_argnames=("model_config", "guide"))
def predict_batch(params, batch, guide_params=None, *, model_config, guide=None):
    """``(probabilities [B, C], attention [B, T])`` for one batch.

    With a ``guide``, also the guide's ``(probabilities, attention)``; a
    ``frozen_attention`` guide's α replaces this model's.
    """
    guide_result = None
    if guide is not None:
        guide_result = guide_outputs(guide_params, guide, batch)
        if guide.role == "frozen_attention":
            batch = {**batch, "attention_override": guide_result[1]}
    logits, aux = models.forward_batch(params, model_config, batch)
    result = (models.probabilities(logits, model_config), aux["attention"])
    return result if guide is None else (*result, *guide_result)


def model_inputs(batch: dict) -> dict:
    keep = ("token_ids", "lengths", "labels", "weights", "question_ids", "question_lengths")
    return {k: jnp.asarray(v) for k, v in batch.items() if k in keep}


@dataclasses.dataclass
class Predictions:
    """A model's outputs on a split, in data order.

    Attributes:
      probabilities: ``[N, C]``.
      attention: ``N`` arrays over the real tokens (SOS/EOS removed).
      guide_probabilities, guide_attention: the guide's, when there is one.
    """

    probabilities: np.ndarray
    attention: list[np.ndarray]
    guide_probabilities: np.ndarray | None = None
    guide_attention: list[np.ndarray] | None = None


def predict(
    params, model_config, split: data.EncodedSplit, boundaries, guide_params=None, guide=None
) -> Predictions:
    """Runs the model (and its guide) over ``split`` in fixed-shape batches."""
    n = len(split)
    probabilities = np.zeros((n, model_config.num_classes), np.float32)
    attention: list = [None] * n
    guide_probabilities = None if guide is None else np.zeros_like(probabilities)
    guide_attention: list | None = None if guide is None else [None] * n
    for batch in data.batches(split, EVAL_BATCH_SIZE, boundaries):
        outputs = jax.device_get(
            predict_batch(params, model_inputs(batch), guide_params,
                          model_config=model_config, guide=guide)
        )  # fmt: skip
        for row in np.flatnonzero(batch["index"] >= 0):
            i, real = batch["index"][row], slice(1, batch["lengths"][row] - 1)
            probabilities[i] = outputs[0][row]
            attention[i] = outputs[1][row, real]
            if guide is not None:
                guide_probabilities[i] = outputs[2][row]
                guide_attention[i] = outputs[3][row, real]
    return Predictions(probabilities, attention, guide_probabilities, guide_attention)


def predict_split(params, model_config, split: data.EncodedSplit, boundaries) -> np.ndarray:
    """Class probabilities ``[N, C]`` for every instance of ``split``, in data order."""
    return predict(params, model_config, split, boundaries).probabilities


def evaluate(params, model_config, split, boundaries, guide_params=None, guide=None) -> dict:
    """Accuracy, ROC-AUC and macro-F1 against the labels; with an adversary guide also the
    means of ``TVD(ŷ, ŷ_g)``, ``KL(α ‖ α_g)``, ``JSD(α, α_g)`` and WP's objective."""
    predictions = predict(params, model_config, split, boundaries, guide_params, guide)
    report = metrics.classification_report(split.labels, predictions.probabilities)
    if guide is not None and guide.role == "adversary":
        pairs = [
            adversarial_terms(
                jnp.asarray(p), jnp.asarray(a), jnp.asarray(gp), jnp.asarray(ga), guide
            )
            for p, a, gp, ga in zip(
                predictions.probabilities, predictions.attention,
                predictions.guide_probabilities, predictions.guide_attention, strict=True,
            )
        ]  # fmt: skip
        tvd, kl, jsd = (float(np.mean([float(t[k]) for t in pairs])) for k in range(3))
        report.update(
            tvd_to_guide=tvd, kl_to_guide=kl, jsd_to_guide=jsd,
            neg_objective=-(tvd - guide.adversarial_lambda * kl),
        )  # fmt: skip
    return report


def selection_metric(model_config: models.ModelConfig, guide: Guide | None = None) -> str:
    if guide is not None and guide.role == "adversary":
        return "neg_objective"
    return "roc_auc" if model_config.binary else "accuracy"
