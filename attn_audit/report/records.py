"""Per-instance audit records as JSON Lines: one JSON object per line of ``records.jsonl``.

This docstring is the field reference. Lists are aligned with ``tokens``: real tokens only,
no SOS/EOS. A field of an audit that was not run is **absent**; a field that was computed but
is undefined is **null** (``None`` in Python). ``write_records`` turns NaN and ±inf into null.

Instance
  ``id`` (str): the example's identifier in its data set.
  ``index`` (int): the example's position in the audited split; records are in this order.
  ``tokens`` (list[str]): the words the model read, without SOS/EOS.
  ``question`` (list[str], optional): the question or hypothesis of a two-input task
  (bAbI, SNLI); attention is over ``tokens`` only.
  ``label`` (int): the gold class.
  ``prediction`` (list[float]): class probabilities ŷ, ``[num_classes]``; binary ``[1 − p, p]``.
  ``predicted_class`` (int): ``argmax(prediction)``; Table 2 groups instances by it.
  ``evidence`` (list[int], optional): per token, 1 where the data set marks it as human
  evidence (SST: its leaf's own label is ≤ 1 or ≥ 3; SPEC §9), else 0.

Attention and importance (JW §3, SPEC §3.1–3.2)
  ``attention`` (list[float]): the model's attention α over ``tokens``, sums to 1.
  ``max_attention`` (float): ``max(attention)``; the x-axis bins of the permutation and
  adversarial results: [0, .25), [.25, .5), [.5, .75), [.75, 1].
  ``gradient`` (list[float]): gradient importance ``|Σ_d g_{t,d} e_{t,d}|`` of the predicted
  class probability with α held fixed, normalised to sum 1. Absent if not run.
  ``loo`` (list[float]): leave-one-out importance ``TVD(ŷ(x₋t), ŷ(x))`` (token deleted, encoder
  re-run). Absent if not run.

Agreement (Kendall τ-b with ties, two-sided p as ``scipy.stats.kendalltau``; SPEC §3.3)
  ``tau_gradient``, ``p_gradient`` (float | null): τ between ``attention`` and ``gradient``.
  ``tau_loo``, ``p_loo`` (float | null): τ between ``attention`` and ``loo``.
  ``tau_gradient_loo``, ``p_gradient_loo`` (float | null): τ between ``gradient`` and ``loo``.
  Null means τ is undefined (a constant vector, or a single token); such instances are
  excluded from the means and counted as ``undefined``. Absent if the audit was not run.

Permutation (SPEC §3.4)
  ``permutation_median_tvd`` (float): median over 100 shuffles of α among the real tokens of
  ``TVD(ŷ_perm, ŷ)``, encoder states held fixed. Absent if not run.

Adversarial attention (SPEC §3.5)
  ``adversarial_attention`` (list[float] | null): the surviving candidate (output within
  ``TVD ≤ ε = 0.05``) with the largest JSD from α; null when only the original α survived.
  ``adversarial_max_jsd`` (float): its ``JSD(α_adv, α)`` in nats (at most ln 2 ≈ 0.693); 0 when
  only the original survived.
  ``adversarial_tvd`` (float): ``TVD(ŷ(α_adv), ŷ(α))`` of the selected adversary; 0 when none.
  All three are absent if the audit was not run.
"""

import json
import math
import os
import pathlib
from collections.abc import Iterable

import numpy as np


class RecordsFormatError(ValueError):
    """A line of a records file is not one JSON object."""


def write_records(path: str | os.PathLike, records: Iterable[dict]) -> pathlib.Path:
    """Writes ``records`` as JSON Lines, numpy values as Python ones and NaN/±inf as null.

    The file is written beside ``path`` and renamed into place, so a reader never sees half.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise TypeError(f"Record #{number} is a {type(record).__name__}; expected a dict.")
        value = _to_json_value(record, where=f"record #{number}")
        lines.append(json.dumps(value, ensure_ascii=False, allow_nan=False) + "\n")
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(lines), encoding="utf-8")
    os.replace(partial, path)
    return path


def read_records(path: str | os.PathLike, skipped: list[str] | None = None) -> list[dict]:
    """Reads a JSON Lines records file; blank lines are skipped.

    Args:
      path: the file.
      skipped: when given, a line that is not one JSON object is left out and a sentence
        naming it appended here (the report page of a damaged run shows the rest); when
        None, such a line is an error.

    Raises:
      RecordsFormatError: naming the file and line number of the first malformed line.
    """
    path = pathlib.Path(path)
    records = []
    with path.open(encoding="utf-8", errors="strict" if skipped is None else "replace") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                problem = (
                    f"{path}:{line_number}: line {line_number} is not valid JSON ({error.msg}, "
                    f"column {error.colno}); each line must be one JSON object as written by "
                    f"attn_audit.report.write_records. The line starts {line[:60]!r}."
                )
            else:
                if isinstance(record, dict):
                    records.append(record)
                    continue
                problem = (
                    f"{path}:{line_number}: line {line_number} holds a JSON "
                    f"{type(record).__name__}, expected an object (one record per line)."
                )
            if skipped is None:
                raise RecordsFormatError(problem) from None
            skipped.append(problem + " That record is left out.")
    return records


def summary_json(summary: dict) -> str:
    """``summary`` as strict JSON text (indent 2): numpy values as Python ones, NaN/±inf as
    null (undefined, as in the records), so no file the project writes holds NaN."""
    return json.dumps(_to_json_value(summary, "summary"), indent=2, allow_nan=False)


def _to_json_value(value, where: str):
    """``value`` with numpy arrays/scalars as lists/Python scalars and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(key): _to_json_value(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if all(type(item) is int or type(item) is float and math.isfinite(item) for item in value):
            return list(value)  # the common case (scores per token), without a call per item
        return [_to_json_value(item, where) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    elif hasattr(value, "__array__"):  # numpy or device arrays, without importing jax
        return _to_json_value(np.asarray(value).tolist(), where)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raise TypeError(
        f"{where} is a {type(value).__name__}, which JSON cannot hold; records hold strings, "
        "numbers, lists, dicts and None."
    )
