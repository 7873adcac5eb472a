"""Length-bucketed, fixed-shape batches, so jit compiles a handful of programs.

Every batch has ``batch_size`` rows (the last one is padded with empty rows whose
``weights`` are 0; balanced: as many rows as fill a bucket's batches evenly) and a
sequence length taken from a short list of bucket boundaries, so the number of
distinct shapes is at most the number of buckets. Nothing is truncated: the
boundaries always cover the longest sequence.
"""

from collections.abc import Iterator

import numpy as np

from attn_audit.data.pipeline import EncodedSplit
from attn_audit.data.vocab import PAD


def bucket_boundaries(max_length: int, smallest: int = 16, growth: float = 1.5) -> tuple[int, ...]:
    """Geometric boundaries (multiples of 8) from ``smallest`` up to ≥ ``max_length``."""
    boundaries = [smallest]
    while boundaries[-1] < max_length:
        boundaries.append(int(np.ceil(boundaries[-1] * growth / 8) * 8))
    return tuple(boundaries)


def fewest_padded_boundaries(lengths, num_buckets: int, multiple: int = 8) -> tuple[int, ...]:
    """At most ``num_buckets`` boundaries (multiples of ``multiple``) that cover every length and
    minimise the padded cost ``Σ_i width(i)²``, where ``width(i)`` is the bucket of length ``i``.

    For the audit, whose cost per instance grows with the padded width (leave-one-out about
    as its square) and which compiles one program per width: a few widths fitted to the
    split's own lengths instead of the training's geometric ones. Exact (dynamic
    programming over the candidate widths).

    Args:
      lengths: sequence lengths (ints), at least one.
      num_buckets: the most boundaries wanted (≥ 1).
      multiple: every boundary is a multiple of this.

    Returns:
      increasing boundaries; the last one is the longest length rounded up to ``multiple``.
    """
    lengths = np.asarray(lengths, np.int64)
    if lengths.size == 0:
        raise ValueError("fewest_padded_boundaries needs at least one length.")
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be at least 1, got {num_buckets}.")
    widths = np.arange(
        -(-int(lengths.min()) // multiple) * multiple,
        -(-int(lengths.max()) // multiple) * multiple + 1, multiple,
    )  # fmt: skip
    # at_most[j]: how many lengths fit in widths[j]; the bucket (widths[i], widths[j]] holds
    # at_most[j] - at_most[i] of them, at cost widths[j]² each.
    at_most = np.searchsorted(np.sort(lengths), widths, side="right").astype(float)
    squares = widths.astype(float) ** 2
    # cost[k - 1][j]: the cheapest k buckets whose largest is widths[j]; came_from: the one before.
    cost = [at_most * squares]
    came_from = [np.full(len(widths), -1)]
    for _ in range(1, num_buckets):
        with_one_more = cost[-1][:, None] + (at_most[None, :] - at_most[:, None]) * squares
        with_one_more[np.tril_indices(len(widths))] = np.inf  # the previous bucket is smaller
        came_from.append(np.argmin(with_one_more, axis=0))
        cost.append(with_one_more.min(axis=0))
    last = len(widths) - 1
    totals = [c[last] for c in cost]
    count = int(np.argmin(totals)) + 1  # the fewest buckets at the lowest cost
    boundaries, j = [], last
    for k in range(count - 1, -1, -1):
        boundaries.append(int(widths[j]))
        j = came_from[k][j]
    return tuple(reversed(boundaries))


def bucket_of(length: int, boundaries: tuple[int, ...]) -> int:
    """The smallest boundary ≥ ``length``."""
    index = int(np.searchsorted(boundaries, length))
    if index == len(boundaries):
        raise ValueError(
            f"A sequence of length {length} is longer than the largest bucket {boundaries[-1]}; "
            "build the boundaries with bucket_boundaries(max_length) over all splits."
        )
    return boundaries[index]


def _pad(sequences: list[np.ndarray], rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((rows, width), PAD, np.int32)
    lengths = np.zeros(rows, np.int32)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
        lengths[row] = len(sequence)
    return ids, lengths


def balanced_rows(count: int, batch_size: int, multiple: int = 1) -> int:
    """Rows per batch for a bucket of ``count`` instances: as many batches as ``batch_size``
    rows need (``m = ⌈count / batch_size⌉``), each ``⌈count / m⌉`` rows rounded up to
    ``multiple`` (the devices), so the bucket wastes fewer than ``m · multiple`` padding
    rows instead of up to ``batch_size − 1``. Never more than ``batch_size`` rounded up."""
    num_batches = -(-count // batch_size)
    rows = -(-count // num_batches)
    return -(-rows // multiple) * multiple


def batches(
    data: EncodedSplit,
    batch_size: int,
    boundaries: tuple[int, ...],
    rng: np.random.Generator | None = None,
    balanced_multiple: int | None = None,
    bucket_counts: dict | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Yields batches grouped by length bucket.

    Args:
      data: an encoded split.
      batch_size: rows per batch (the last batch of a bucket is padded).
      boundaries: bucket boundaries covering every sequence (``bucket_boundaries``).
      rng: if given, shuffles within buckets and the order of batches (training);
        otherwise batches come bucket by bucket in data order (evaluation).
      balanced_multiple: if given, each bucket's batches have ``balanced_rows(count,
        batch_size, balanced_multiple)`` rows (still one shape per bucket), so that its
        last batch is (nearly) full: for the batch runs, where padding rows cost as much
        as real ones.
      bucket_counts: with ``balanced_multiple``, the instances per bucket (``bucket_keys``
        → count) that set each bucket's rows instead of ``data``'s own: the whole split's,
        when ``data`` is one process's share, so its batches have the shapes (and so the
        compiled programs and results) of a single process's.

    Yields:
      dicts with ``token_ids [B, T]``, ``lengths [B]``, ``labels [B]``,
      ``index [B]`` (instance number, ``data.index``; −1 for padding rows), ``row [B]``
      (position in ``data``; −1 for padding rows), ``weights [B]``
      (1 for real rows, 0 for padding rows) and, for QA/NLI,
      ``question_ids [B, Tq]`` and ``question_lengths [B]``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    buckets = bucket_members(data, boundaries)
    plan = []
    for width in sorted(buckets):
        members = np.asarray(buckets[width])
        if rng is not None:
            members = rng.permutation(members)
        size = batch_size
        if balanced_multiple is not None:
            count = len(members) if bucket_counts is None else bucket_counts[width]
            size = balanced_rows(count, batch_size, balanced_multiple)
        plan += [(width, members[s : s + size], size) for s in range(0, len(members), size)]
    if rng is not None:
        plan = [plan[i] for i in rng.permutation(len(plan))]
    for width, rows, size in plan:
        text_width, question_width = width if isinstance(width, tuple) else (width, None)
        yield batch_of_rows(data, rows, size, text_width, question_width)


def bucket_keys(boundaries: tuple[int, ...], questions: bool) -> list:
    """Every bucket a split can have: its widths, or (text, question) width pairs for QA/NLI."""
    if not questions:
        return list(boundaries)
    return [(text, question) for text in boundaries for question in boundaries]


def bucket_members(data: EncodedSplit, boundaries: tuple[int, ...]) -> dict:
    """Bucket (``bucket_keys``) → positions in ``data`` of its instances, in data order."""
    buckets = {}
    for i, sequence in enumerate(data.token_ids):
        width = bucket_of(len(sequence), boundaries)
        if data.question_ids is not None:
            width = (width, bucket_of(len(data.question_ids[i]), boundaries))
        buckets.setdefault(width, []).append(i)
    return buckets


def batch_of_rows(
    data: EncodedSplit, rows: np.ndarray, batch_size: int, text_width: int,
    question_width: int | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The instances ``rows`` of ``data`` as one batch of ``batch_size`` rows (see ``batches``),
    texts padded to ``text_width`` and, for QA/NLI, questions to ``question_width``."""
    token_ids, lengths = _pad([data.token_ids[i] for i in rows], batch_size, text_width)
    batch = {
        "token_ids": token_ids,
        "lengths": lengths,
        "labels": np.zeros(batch_size, np.int32),
        "index": np.full(batch_size, -1, np.int32),
        "row": np.full(batch_size, -1, np.int32),
        "weights": np.zeros(batch_size, np.float32),
    }
    batch["labels"][: len(rows)] = data.labels[rows]
    batch["index"][: len(rows)] = data.index[rows]
    batch["row"][: len(rows)] = rows
    batch["weights"][: len(rows)] = 1.0
    if data.question_ids is not None:
        batch["question_ids"], batch["question_lengths"] = _pad(
            [data.question_ids[i] for i in rows], batch_size, question_width
        )
    return batch
