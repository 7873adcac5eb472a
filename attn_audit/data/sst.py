"""Stanford Sentiment Treebank, binary (JW, SPEC §1).

Reads the PTB-style tree files ``sst/{train,dev,test}.txt`` (one tree per line,
a 0–4 label at every node). JW's binary rule: drop trees whose root is neutral
(2); root ≥ 3 is positive (1), ≤ 1 negative (0). The sentence is the tree's
leaves, PTB escapes undone (``-LRB-`` → ``(``), then every non-word character
becomes a space (JW's cleaning; punctuation disappears).
"""

import pathlib
import re

from attn_audit.data.dataset import Example, TextDataset, malformed, require_file
from attn_audit.data.text import tokenize

_ROOT_LABEL = re.compile(r"^\(\s*(\d)\s")
_LEAF = re.compile(r"\(\d ([^()\s]+)\)")
_PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "``": '"', "''": '"'}
SPLIT_FILES = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}


def parse_tree(line: str) -> tuple[int, list[str]]:
    """The root label (0–4) and the leaves of one PTB tree line.

    Raises ValueError when the line is not a tree.
    """
    line = line.strip()
    match = _ROOT_LABEL.match(line)
    leaves = _LEAF.findall(line)
    if match is None or not leaves or line.count("(") != line.count(")"):
        raise ValueError("not a labelled PTB tree such as '(3 (2 It) (3 works))'")
    return int(match.group(1)), [_PTB_ESCAPES.get(leaf, leaf) for leaf in leaves]


def read_split(path: pathlib.Path, split: str) -> list[Example]:
    """Binary examples from one tree file; neutral roots are dropped."""
    examples = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                root_label, leaves = parse_tree(line)
            except ValueError as error:
                raise malformed(path, line_number, str(error)) from None
            if root_label == 2:
                continue
            text = " ".join(leaves)
            examples.append(
                Example(
                    id=f"{split}-{line_number}",
                    tokens=tokenize(text, punctuation="strip"),
                    label=int(root_label >= 3),
                    text=text,
                )
            )
    return examples


def load(data_dir: pathlib.Path) -> TextDataset:
    folder = data_dir / "sst"
    splits = {
        split: read_split(require_file(folder / name, f"SST {split} trees"), split)
        for split, name in SPLIT_FILES.items()
    }
    return TextDataset(
        name="sst",
        task="classification",
        label_names=("negative", "positive"),
        splits=splits,
        min_df=1,
        min_length=5,
        punctuation="strip",
    )
