"""Shared by summary and figures: reading record fields, class names, max-attention bins."""

from collections.abc import Sequence

import numpy as np

# JW §4.2: permutation and adversarial results are shown against the instance's max attention,
# binned [0, .25), [.25, .5), [.5, .75), [.75, 1] (1.0 falls in the last bin).
MAX_ATTENTION_EDGES = (0.0, 0.25, 0.5, 0.75, 1.0)
MAX_ATTENTION_BINS = ("[0, 0.25)", "[0.25, 0.5)", "[0.5, 0.75)", "[0.75, 1]")

# Plausibility measures (SPEC §9) and their column titles, higher is better.
PLAUSIBILITY_TITLES = {"auprc": "AUPRC ↑", "top_k_f1": "top-k F1 ↑",
                       "exact_top_k": "exact top-k ↑", "top_1_evidence": "top-1 on evidence ↑",
                       "evidence_mass": "mass on evidence ↑",
                       "neighbour_mass": "mass beside evidence"}  # fmt: skip

# Fields of an explain record that are not an explainer's scores (batch_runner.record_header's).
EXPLAIN_RECORD_INFO = frozenset(
    {"id", "index", "tokens", "question", "evidence", "label", "prediction", "predicted_class",
     "words", "word_index"}
)  # fmt: skip


def explanation_fields(records: Sequence[dict], words: bool = False) -> list[str]:
    """The explainers' score lists that explain records hold, in order of appearance: over
    the tokens, or (``words``) the ``word_`` ones over a word-piece model's words. Sampled
    Shapley's ``*_standard_error`` lists are not explanations."""
    return list(dict.fromkeys(
        key for record in records for key, value in record.items()
        if isinstance(value, list) and key not in EXPLAIN_RECORD_INFO
        and key.startswith("word_") == words and not key.endswith("_standard_error")
    ))  # fmt: skip


# Record field of each τ and of its two-sided p-value (JW Table 2 columns).
TAU_FIELDS = {
    "tau_gradient": "p_gradient",
    "tau_loo": "p_loo",
    "tau_gradient_loo": "p_gradient_loo",
}


def has_field(records: Sequence[dict], field: str) -> bool:
    """Whether any record carries ``field`` (an audit that was not run leaves it absent)."""
    return any(field in record for record in records)


def field_values(records: Sequence[dict], field: str) -> tuple[np.ndarray, np.ndarray]:
    """``field`` as floats, NaN where null or absent, and where it is present.

    Returns:
      ``(values [N] float64, present [N] bool)``; a null value is present but NaN.
    """
    present = np.array([field in record for record in records], dtype=bool)
    values = np.array(
        [np.nan if record.get(field) is None else float(record[field]) for record in records],
        dtype=np.float64,
    )
    return values, present


def max_attention(records: Sequence[dict]) -> np.ndarray:
    """``max_attention`` of each record ``[N]``, from ``attention`` where the field is absent."""
    values = []
    for number, record in enumerate(records):
        if record.get("max_attention") is not None:
            values.append(float(record["max_attention"]))
        elif record.get("attention"):
            values.append(float(max(record["attention"])))
        else:
            raise ValueError(
                f"Record {_describe(record, number)} has neither 'max_attention' nor 'attention'; "
                "the permutation and adversarial summaries bin instances by max attention. "
                "Write records with attn_audit.audits.runner (fields: attn_audit.report.records)."
            )
    return np.array(values, dtype=np.float64)


def max_attention_bin(values: np.ndarray) -> np.ndarray:
    """Bin index in ``MAX_ATTENTION_BINS`` of each max attention ``[N]`` -> int ``[N]``.

    Left-closed bins; 1.0 (and float noise above it) goes to the last bin, below 0 to the first.
    """
    inner_edges = np.asarray(MAX_ATTENTION_EDGES[1:-1])
    return np.searchsorted(inner_edges, np.clip(values, 0.0, 1.0), side="right")


def class_name(predicted_class: int, label_names: Sequence[str] | None) -> str:
    """The name of class ``predicted_class``, or its number when ``label_names`` lacks it."""
    if label_names is not None and 0 <= predicted_class < len(label_names):
        return str(label_names[predicted_class])
    return str(predicted_class)


def predicted_classes(records: Sequence[dict]) -> np.ndarray:
    """``predicted_class`` of each record ``[N]`` int, with a clear error when it is missing."""
    classes = []
    for number, record in enumerate(records):
        if record.get("predicted_class") is None:
            raise ValueError(
                f"Record {_describe(record, number)} has no 'predicted_class'; every record needs "
                "it (Table 2 is per predicted class). Fields: attn_audit.report.records."
            )
        classes.append(int(record["predicted_class"]))
    return np.array(classes, dtype=np.int64)


# A label set this small is listed in full, so a class nobody is predicted shows as 0
# (JW's classification and NLI sets); a larger one (bAbI's 36 candidate answers, most never
# correct) lists only the classes predicted.
LISTED_IN_FULL = 3


def class_order(classes: np.ndarray, label_names: Sequence[str] | None) -> list[int]:
    """The classes to report, in label order, then any other predicted class.

    Every class of ``label_names`` when there are at most ``LISTED_IN_FULL`` (even with no
    instances), else only those in ``classes``.
    """
    predicted = {int(c) for c in classes.tolist()}
    known = list(range(len(label_names))) if label_names is not None else []
    if len(known) > LISTED_IN_FULL:
        known = [c for c in known if c in predicted]
    extra = sorted(c for c in predicted if c not in known)
    return known + extra


def _describe(record: dict, number: int) -> str:
    return f"#{number} (id {record.get('id', '?')!r})"
