"""SNLI 1.0 (JW, SPEC §1): premise attended, hypothesis as the question.

Reads ``snli/snli_1.0_{train,dev,test}.jsonl(.gz)``. Pairs whose gold label is
``-`` (no annotator majority) are dropped. Labels: entailment 0, neutral 1,
contradiction 2. Where the train file is absent (as in ../shared/data), the
model trains on the dev file with 15% of it held out for model selection
(seed 16377) and is evaluated on test; a note says so in every output.
"""

import gzip
import json
import logging
import pathlib

from attn_audit.data.dataset import (
    READ_ERRORS,
    DataError,
    Example,
    TextDataset,
    malformed,
    seeded_split,
    utf8_lines,
)
from attn_audit.data.text import tokenize

LABELS = ("entailment", "neutral", "contradiction")
FIELDS = ("gold_label", "sentence1", "sentence2")
NO_GOLD_LABEL = "-"
HELD_OUT_FRACTION = 0.15
SPLIT_SEED = 16377


def _find(folder: pathlib.Path, split: str) -> pathlib.Path | None:
    for name in (f"snli_1.0_{split}.jsonl.gz", f"snli_1.0_{split}.jsonl"):
        if (folder / name).is_file():
            return folder / name
    return None


def parse_pair(line: str, path: pathlib.Path, line_number: int) -> dict | None:
    """One JSON line as ``{gold_label, sentence1, sentence2, pairID?}``; ``None`` for a blank line.

    Raises:
      DataError: the line is not a JSON object with the three string fields, or its
        gold label is not one of ``LABELS`` or ``-``.
    """
    if not line.strip():
        return None
    try:
        pair = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise malformed(path, line_number, f"not a JSON line ({error})", line) from None
    if not isinstance(pair, dict):
        raise malformed(path, line_number, "expected a JSON object {...}", line)
    missing = [field for field in FIELDS if field not in pair]
    if missing:
        raise malformed(path, line_number, f"not an SNLI pair: it lacks {', '.join(missing)}", line)
    for field in FIELDS:
        if not isinstance(pair[field], str):
            raise malformed(
                path,
                line_number,
                f"the field {field} should be a string, got {type(pair[field]).__name__}",
                line,
            )
    if pair["gold_label"] not in (*LABELS, NO_GOLD_LABEL):
        raise malformed(
            path,
            line_number,
            f"unknown gold_label {pair['gold_label']!r} (expected one of {LABELS} or "
            f"{NO_GOLD_LABEL!r})",
            line,
        )
    return pair


def read_jsonl(path: pathlib.Path, split: str) -> list[Example]:
    """The pairs with a gold label, from a ``.jsonl`` or ``.jsonl.gz`` file.

    Raises:
      DataError: naming the file (and the line, where the damage is in one) when the
        file cannot be read or decompressed, a line is not UTF-8 or not an SNLI pair, or
        the file holds no pair with a gold label.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    examples = []
    line_number = 0
    try:
        with opener(path, "rb") as f:
            for line_number, line in enumerate(utf8_lines(f, path), start=1):
                pair = parse_pair(line, path, line_number)
                if pair is None or pair["gold_label"] == NO_GOLD_LABEL:
                    continue
                examples.append(
                    Example(
                        id=str(pair.get("pairID", f"{split}-{line_number}")),
                        tokens=tokenize(pair["sentence1"]),
                        label=LABELS.index(pair["gold_label"]),
                        question=tokenize(pair["sentence2"]),
                    )
                )
    except READ_ERRORS as error:
        raise DataError(
            f"Cannot read {path}{f' after line {line_number}' if line_number else ''} "
            f"({error}). Restore the original file (download it again)."
        ) from None
    if not examples:
        raise DataError(
            f"{path} holds no SNLI pair with a gold label, so the {split} split would be "
            "empty. Restore the original file."
        )
    return examples


def load(data_dir: pathlib.Path) -> TextDataset:
    folder = data_dir / "snli"
    paths = {split: _find(folder, split) for split in ("train", "dev", "test")}
    for split in ("dev", "test"):
        if paths[split] is None:
            raise DataError(
                f"Missing file {folder}/snli_1.0_{split}.jsonl(.gz). Put the original SNLI 1.0 "
                "files there, or point --data_dir / ATTN_AUDIT_DATA at the folder that has them."
            )
    dev = read_jsonl(paths["dev"], "dev")
    test = read_jsonl(paths["test"], "test")
    notes = []
    if paths["train"] is not None:
        train = read_jsonl(paths["train"], "train")
    else:
        message = (
            "SNLI: the train file is absent, so the model trains on SNLI's dev file "
            f"({int((1 - HELD_OUT_FRACTION) * 100)}%, the other "
            f"{int(HELD_OUT_FRACTION * 100)}% held out for model selection, seed {SPLIT_SEED}) "
            "and is evaluated on SNLI's test file; JW trained on 550,152 pairs."
        )
        logging.warning(message)
        notes.append(message)
        train, dev = seeded_split(dev, HELD_OUT_FRACTION, SPLIT_SEED, labels=[e.label for e in dev])
    return TextDataset(
        name="snli",
        task="qa",
        label_names=LABELS,
        splits={"train": train, "dev": dev, "test": test},
        min_df=3,
        length_filter=False,
        notes=notes,
    )
