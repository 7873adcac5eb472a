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

from attn_audit.data.dataset import DataError, Example, TextDataset, malformed, seeded_split
from attn_audit.data.text import tokenize

LABELS = ("entailment", "neutral", "contradiction")
HELD_OUT_FRACTION = 0.15
SPLIT_SEED = 16377


def _find(folder: pathlib.Path, split: str) -> pathlib.Path | None:
    for name in (f"snli_1.0_{split}.jsonl.gz", f"snli_1.0_{split}.jsonl"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_jsonl(path: pathlib.Path, split: str) -> list[Example]:
    opener = gzip.open if path.suffix == ".gz" else open
    examples = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    pair = json.loads(line)
                    gold, premise, hypothesis = (
                        pair["gold_label"],
                        pair["sentence1"],
                        pair["sentence2"],
                    )
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise malformed(path, line_number, f"not an SNLI JSON pair ({error})") from None
                if gold == "-":
                    continue
                if gold not in LABELS:
                    raise malformed(path, line_number, f"unknown gold_label {gold!r}")
                examples.append(
                    Example(
                        id=str(pair.get("pairID", f"{split}-{line_number}")),
                        tokens=tokenize(premise),
                        label=LABELS.index(gold),
                        question=tokenize(hypothesis),
                    )
                )
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise DataError(f"Cannot read {path} ({error}). Restore the original file.") from None
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
