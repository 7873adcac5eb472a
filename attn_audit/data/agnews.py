"""AG News, World (0) vs Business (1), description column only (JW, SPEC §1).

The originators' CSV files have no header: ``class (1–4), title, description``
with classes 1 World, 2 Sports, 3 Business, 4 Sci/Tech. JW used the official
train file (15% of it as dev) and the official test file. Where only
``test.csv`` is present (as in ../shared/data), train/dev/test are carved from
it with a fixed seed: 30% test, then 15% of the rest as dev, stratified.
"""

import csv
import logging
import pathlib

from attn_audit.data.dataset import (
    DataError,
    Example,
    TextDataset,
    malformed,
    require_file,
    seeded_split,
    utf8_lines,
)
from attn_audit.data.text import tokenize

CLASS_TO_LABEL = {"1": 0, "3": 1}  # World → 0, Business → 1; Sports and Sci/Tech are dropped
CLASSES = ("1", "2", "3", "4")
DEV_FRACTION = 0.15
CARVED_TEST_FRACTION = 0.30
SPLIT_SEED = 1378


def read_csv(path: pathlib.Path, split: str) -> list[Example]:
    """World and Business rows of one originators' CSV file.

    Raises:
      DataError: naming the file and line of a row that is not valid CSV, not UTF-8, has
        other than 3 columns or a class outside 1-4, or when no row is World or Business.
    """
    examples = []
    with open(path, "rb") as f:
        lines = utf8_lines(f, path)
        reader = csv.reader(lines, strict=True)
        line_number = 1  # where the next row starts (a quoted field may span lines)
        try:
            for row in reader:
                if len(row) != 3 or row[0] not in CLASSES:
                    problem = (
                        f"expected 3 columns 'class (1-4),title,description', got {len(row)}"
                        if len(row) != 3
                        else f"expected 'class (1-4),title,description', got the class {row[0]!r}"
                    )
                    raise malformed(path, line_number, problem, ",".join(row))
                example_line, line_number = line_number, reader.line_num + 1
                if row[0] not in CLASS_TO_LABEL:
                    continue
                # The originators escaped line breaks as a backslash and '$' as '#36;'.
                description = row[2].replace("\\", " ").replace("#36;", "$")
                examples.append(
                    Example(
                        id=f"{split}-{example_line}",
                        tokens=tokenize(description),
                        label=CLASS_TO_LABEL[row[0]],
                    )
                )
        except csv.Error as error:
            raise malformed(path, line_number, f"not valid CSV ({error})") from None
    if not examples:
        raise DataError(
            f"{path} holds no World (1) or Business (3) row, so the {split} split would be "
            "empty. Restore the original AG News CSV file."
        )
    return examples


def load(data_dir: pathlib.Path) -> TextDataset:
    folder = data_dir / "ag_news"
    test = read_csv(require_file(folder / "test.csv", "AG News test CSV"), "test")
    notes = []
    if (folder / "train.csv").is_file():
        train_all = read_csv(folder / "train.csv", "train")
    else:
        message = (
            "AG News: ag_news/train.csv is absent, so train/dev/test are carved from "
            f"test.csv alone ({int(CARVED_TEST_FRACTION * 100)}% test, then "
            f"{int(DEV_FRACTION * 100)}% of the rest as dev, stratified, seed {SPLIT_SEED}); "
            "JW trained on the 120,000-row train file."
        )
        logging.warning(message)
        notes.append(message)
        train_all, test = seeded_split(
            test, CARVED_TEST_FRACTION, SPLIT_SEED, labels=[e.label for e in test]
        )
    train, dev = seeded_split(
        train_all, DEV_FRACTION, SPLIT_SEED, labels=[e.label for e in train_all]
    )
    return TextDataset(
        name="agnews",
        task="classification",
        label_names=("world", "business"),
        splits={"train": train, "dev": dev, "test": test},
        min_df=5,
        notes=notes,
    )
