"""The report page's instance data: one table row and heat-map rows per instance, packed.

A split of 100,000 instances would be hundreds of MB as JSON, so the page carries three
binary blobs (gzip, then base64; the browser inflates them with ``DecompressionStream``):

``columns``  float32 ``[C, N]``: the table's numeric columns (NaN where absent).
``sequences`` per token sequence (``tokens``; ``words`` of word-piece models; ``question``
  of two-input tasks): uint32 offsets ``[N + 1]`` then uint32 ids into ``vocab``.
``scores``   float32 scales ``[R, N]`` then, per heat-map row, float16 values aligned with
  its sequence: each instance's scores divided by its scale (its max |score|), so a score is
  kept to float16's 11 significant bits relative to the largest one of its row (about 3
  significant digits), and NaN where the row is missing for that instance.

``pack_instances`` returns the JSON-ready ``meta`` (columns, classes, vocabulary, sequences,
rows, ids) and the three blobs; ``unpack_instances`` reads them back (the tests' reference
for what the page decodes).
"""

import base64
import dataclasses
import gzip
import itertools

import numpy as np

from attn_audit.report.fields import explanation_fields
from attn_audit.report.run_contents import RunContents

# Audit fields shown as table columns: (record field, header, description).
AUDIT_COLUMNS = (
    ("max_attention", "max α", "the largest attention weight"),
    ("tau_gradient", "τ_g", "Kendall τ of attention vs gradient importance"),
    ("tau_loo", "τ_loo", "Kendall τ of attention vs leave-one-out importance"),
    ("tau_gradient_loo", "τ_g,loo", "Kendall τ of gradient vs leave-one-out"),
    ("word_tau_gradient", "word τ_g", "τ_g over words (word-piece models)"),
    ("word_tau_loo", "word τ_loo", "τ_loo over words (word-piece models)"),
    ("permutation_median_tvd", "perm. TVD", "median TVD of the output over attention shuffles"),
    ("adversarial_max_jsd", "adv. JSD", "max JSD of an adversarial attention at output TVD ≤ ε"),
    ("adversarial_tvd", "adv. TVD", "output TVD of the selected adversarial attention"),
)
# Audit heat-map rows over tokens and (word-piece models) words: (record field, row label).
AUDIT_ROWS = (
    ("attention", "attention"),
    ("gradient", "gradient (audit)"),
    ("loo", "leave-one-out"),
    ("adversarial_attention", "adversarial attention"),
)


@dataclasses.dataclass
class PackedInstances:
    """``meta`` (JSON-ready) and the three blobs as base64 text (see the module docstring)."""

    meta: dict
    blobs: dict[str, str]


def _encode(array_parts) -> str:
    raw = b"".join(np.ascontiguousarray(part).tobytes() for part in array_parts)
    return base64.b64encode(gzip.compress(raw, compresslevel=1, mtime=0)).decode("ascii")


def _flat_floats(lists) -> np.ndarray:
    """The concatenation of lists of floats (null as NaN) as one float64 array."""
    chained = itertools.chain.from_iterable(lists)
    try:
        return np.fromiter(chained, np.float64)
    except TypeError:  # a null among them
        return np.array([np.nan if v is None else v for v in itertools.chain.from_iterable(lists)],
                        np.float64)  # fmt: skip


def _float_or_nan(value) -> float:
    return np.nan if value is None or isinstance(value, (list, dict, str)) else float(value)


class _Vocabulary:
    def __init__(self):
        self.ids: dict[str, int] = {}

    def encode(self, tokens) -> list[int]:
        return [self.ids.setdefault(str(token), len(self.ids)) for token in tokens]

    @property
    def words(self) -> list[str]:
        return list(self.ids)


def _joined(records_by_job, index: int) -> dict:
    """The fields of instance ``index`` from every job (audit first: it holds tokens)."""
    joined = {}
    for job, records in records_by_job.items():
        record = records.get(index)
        if record is not None:
            for key, value in record.items():
                joined.setdefault(key, value)
            joined[f"has_{job}"] = True
    return joined


def pack_instances(contents: RunContents) -> PackedInstances:
    """Packs every instance the run holds for the page (see the module docstring)."""
    by_job = {}
    for job in ("audit", "explain", "faithfulness"):
        record_set = getattr(contents, job)
        if record_set is not None:
            by_job[job] = {record["index"]: record for record in record_set.records}
    indices = sorted(set().union(*(set(records) for records in by_job.values())))
    instances = [_joined(by_job, index) for index in indices]
    count = len(instances)
    audit_records = by_job.get("audit", {})
    explain_records = by_job.get("explain", {})
    faithful_records = by_job.get("faithfulness", {})

    # ------------------------------------------------------------ table columns
    columns = [("index", "#", "the instance's position in the split", "int")]
    values = [[float(index) for index in indices]]
    classes = contents.label_names
    label = [_float_or_nan(r.get("label")) for r in instances]
    predicted = [_float_or_nan(r.get("predicted_class")) for r in instances]
    correct = [
        np.nan if np.isnan(a) or np.isnan(b) else float(a == b)
        for a, b in zip(label, predicted, strict=True)
    ]
    confidence = [max(r["prediction"]) if r.get("prediction") else np.nan for r in instances]
    for key, header, about, kind, column in (
        ("label", "label", "the gold class", "class", label),
        ("predicted_class", "predicted", "the model's predicted class", "class", predicted),
        ("correct", "correct", "whether the prediction is the gold class", "bool", correct),
        ("confidence", "p(ŷ)", "the predicted class's probability", "float", confidence),
        (
            "num_tokens",
            "tokens",
            "the number of tokens the model read",
            "int",
            [len(r["tokens"]) if "tokens" in r else r.get("num_tokens", np.nan) for r in instances],
        ),
    ):
        columns.append((key, header, about, kind))
        values.append(column)
    for k, name in enumerate(classes):  # the page shows them with the instance, not as columns
        columns.append((f"prob/{k}", f"p({name})", f"the probability of {name}", "hidden"))
        values.append(
            [
                r["prediction"][k] if len(r.get("prediction") or []) > k else np.nan
                for r in instances
            ]
        )
    for field, header, about in AUDIT_COLUMNS:
        if any(field in record for record in audit_records.values()):
            columns.append((field, header, about, "float"))
            values.append([_float_or_nan(audit_records.get(i, {}).get(field)) for i in indices])
    removal = None
    faithfulness_summary = contents.faithfulness.summary if contents.faithfulness else None
    if faithful_records:
        removals = (faithfulness_summary or {}).get("removals") or ["delete"]
        removal = removals[0]
        explainers = list(
            dict.fromkeys(
                name for record in faithful_records.values() for name in record.get("metrics", {})
            )
        )
        for name in explainers:
            column = []
            for index in indices:
                metrics = faithful_records.get(index, {}).get("metrics", {}).get(name) or {}
                column.append(_float_or_nan(metrics.get("aopc_comprehensiveness", {}).get(removal)))
            columns.append(
                (
                    f"aopc/{name}",
                    f"AOPC {name}",
                    f"{name}'s ERASER comprehensiveness AOPC ({removal}); higher is more faithful",
                    "float",
                )
            )
            values.append(column)

    # ------------------------------------------------------------ sequences and rows
    vocabulary = _Vocabulary()
    has_words = any("words" in r for r in instances)
    sequence_fields = [("tokens", "word pieces" if has_words else "tokens")]
    if has_words:
        sequence_fields.append(("words", "words"))
    if any("question" in r for r in instances):
        sequence_fields.append(("question", "question / hypothesis"))
    sequences, sequence_parts = [], []
    lengths = {}
    for field, title in sequence_fields:
        ids, offsets = [], [0]
        for record in instances:
            ids += vocabulary.encode(record.get(field) or [])
            offsets.append(len(ids))
        lengths[field] = np.diff(offsets)
        sequences.append({"name": field, "title": title})
        sequence_parts += [np.asarray(offsets, np.uint32), np.asarray(ids, np.uint32)]

    rows = []  # (name, label, sequence, source, per-instance list or None)
    if any("evidence" in r for r in instances):  # the data set's human evidence (SST)
        rows.append(("data/evidence", "human evidence", "tokens", "data",
                     [r.get("evidence") for r in instances]))  # fmt: skip
    for prefix, sequence in (("", "tokens"), ("word_", "words")):
        if sequence not in lengths:
            continue
        for field, title in AUDIT_ROWS:
            got = [audit_records.get(i, {}).get(prefix + field) for i in indices]
            if any(value is not None for value in got):
                rows.append((f"audit/{prefix}{field}", title, sequence, "audit", got))
        explain_fields = explanation_fields(list(explain_records.values()), words=bool(prefix))
        for field in explain_fields:
            if field == prefix + "attention" and any(r[0] == f"audit/{field}" for r in rows):
                continue  # the audit's attention: the same numbers
            got = [explain_records.get(i, {}).get(field) for i in indices]
            title = field.removeprefix(prefix).replace("_", " ")
            if title == "gradient" and audit_records:
                title = "gradient (explain)"
            rows.append((f"explain/{field}", title, sequence, "explain", got))

    scales = np.full((len(rows), count), np.nan, np.float32)
    score_parts = []
    row_meta = []
    for r, (name, title, sequence, source, got) in enumerate(rows):
        length = lengths[sequence]
        # absent, or not aligned with the sequence: shown as missing
        usable = np.array([s is not None and len(s) == n for s, n in zip(got, length, strict=True)])
        usable &= length > 0
        flat = _flat_floats([s for s, ok in zip(got, usable, strict=True) if ok])
        starts = np.concatenate([[0], np.cumsum(length[usable])])[:-1]
        peaks = np.fmax.reduceat(np.abs(flat), starts) if starts.size else np.zeros(0)
        peaks = np.where(np.isfinite(peaks) & (peaks > 0), peaks, 1.0)
        scales[r, usable] = peaks
        values_of_row = np.full(int(length.sum()), np.nan, np.float32)
        values_of_row[np.repeat(usable, length)] = flat / np.repeat(peaks, length[usable])
        signed = bool(np.nanmin(flat, initial=0.0) < 0)
        score_parts.append(values_of_row.astype(np.float16))
        row_meta.append(
            {"name": name, "title": title, "sequence": sequence, "source": source, "signed": signed}
        )

    meta = {
        "count": count,
        "columns": [{"key": k, "title": t, "about": a, "kind": kind} for k, t, a, kind in columns],
        "classes": classes,
        "ids": [str(r.get("id", "")) for r in instances],
        "vocab": vocabulary.words,
        "sequences": sequences,
        "rows": row_meta,
        "aopc_removal": removal,
    }
    blobs = {
        "columns": _encode([np.asarray(values, np.float32).reshape(len(columns), count)]),
        "sequences": _encode(sequence_parts),
        "scores": _encode([scales, *score_parts]),
    }
    return PackedInstances(meta=meta, blobs=blobs)


def unpack_instances(packed: PackedInstances) -> dict:
    """The packed data read back as arrays, as the page's script reads it.

    Returns:
      ``{"columns": {key: float32 [N]}, "sequences": {name: list of token lists},
      "scores": {row name: list of float32 arrays or None}}``.
    """
    meta, count = packed.meta, packed.meta["count"]

    def raw(name):
        return gzip.decompress(base64.b64decode(packed.blobs[name]))

    table = np.frombuffer(raw("columns"), np.float32).reshape(len(meta["columns"]), count)
    columns = {column["key"]: table[c] for c, column in enumerate(meta["columns"])}
    data, at, sequences, offsets_of = raw("sequences"), 0, {}, {}
    for sequence in meta["sequences"]:
        offsets = np.frombuffer(data, np.uint32, count + 1, at)
        at += 4 * (count + 1)
        ids = np.frombuffer(data, np.uint32, int(offsets[-1]), at)
        at += 4 * int(offsets[-1])
        offsets_of[sequence["name"]] = offsets
        sequences[sequence["name"]] = [
            [meta["vocab"][t] for t in ids[offsets[i] : offsets[i + 1]]] for i in range(count)
        ]
    data = raw("scores")
    scales = np.frombuffer(data, np.float32, len(meta["rows"]) * count).reshape(-1, count)
    at, scores = scales.nbytes, {}
    for r, row in enumerate(meta["rows"]):
        offsets = offsets_of[row["sequence"]]
        halves = np.frombuffer(data, np.float16, int(offsets[-1]), at).astype(np.float32)
        at += 2 * int(offsets[-1])
        scores[row["name"]] = [
            None if np.isnan(scales[r, i]) else halves[offsets[i] : offsets[i + 1]] * scales[r, i]
            for i in range(count)
        ]
    return {"columns": columns, "sequences": sequences, "scores": scores}
