"""Stanford Sentiment Treebank, binary (JW, SPEC §1).

Reads the PTB-style tree files ``sst/{train,dev,test}.txt`` (one tree per line,
a 0–4 label at every node). JW's binary rule: drop trees whose root is neutral
(2); root ≥ 3 is positive (1), ≤ 1 negative (0). The sentence is the tree's
leaves, PTB escapes undone (``-LRB-`` → ``(``), then every non-word character
becomes a space (JW's cleaning; punctuation disappears).

Each leaf's own 0–4 label is kept as the human evidence of SPEC §9: a token is evidence
(1) when its leaf is labelled ≤ 1 or ≥ 3, else 0 (``Example.evidence``, aligned with the
tokens: a leaf is tokenised alone, which gives the same tokens as the whole text since
JW's cleaning works character by character and leaves are separated by spaces).
"""

import functools
import pathlib
import re

from attn_audit.data.dataset import (
    DataError,
    Example,
    LazySplits,
    TextDataset,
    malformed,
    require_file,
    utf8_lines,
)
from attn_audit.data.text import tokenize

# PTB separates tokens by ASCII spaces; a word may hold other white space: SST writes the
# film "8 1/2" as one leaf with a no-break space, ``(2 8\xa01\\/2)``.
_TREE_TOKEN = re.compile(r"[()]|[^ \t\r\n\f\v()]+")
_LABELS = ("0", "1", "2", "3", "4")
_PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "``": '"', "''": '"'}
_NOT_A_TREE = "not a labelled PTB tree such as '(3 (2 It) (3 works))'"
SPLIT_FILES = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}


class TreeSyntaxError(ValueError):
    """A line that is not a labelled PTB tree; ``column`` (0-based) says where."""

    def __init__(self, problem: str, column: int):
        super().__init__(f"{problem} (column {column + 1})")
        self.problem, self.column = problem, column


def parse_tree(line: str) -> tuple[int, list[str], list[int]]:
    """The root label (0–4), the leaves and each leaf's own label (0–4) of one PTB tree line.

    The same grammar and checks as ``parse_tree_with_columns``, about 3× faster (no match
    objects, no columns): a line it rejects is parsed again by that one, for the error.

    Raises:
      TreeSyntaxError (a ValueError): the line is not such a tree; says what and where.
    """
    # Per open node, innermost last: its label (None until read) and what it holds so far
    # (0 nothing, 1 a word, 2 subtrees).
    labels: list = []
    holds: list = []
    leaves: list[str] = []
    leaf_labels: list[int] = []
    root_label = None
    for token in _TREE_TOKEN.findall(line):
        if root_label is not None:
            break
        if token == "(":
            if labels:
                if labels[-1] is None or holds[-1] == 1:
                    break
                holds[-1] = 2
            labels.append(None)
            holds.append(0)
        elif token == ")":
            if not labels or labels[-1] is None or not holds[-1]:
                break
            label = labels.pop()
            holds.pop()
            if not labels:
                root_label = label
        elif not labels:
            break
        elif labels[-1] is None:
            if token not in _LABELS:
                break
            labels[-1] = int(token)
        else:
            if holds[-1]:
                break
            holds[-1] = 1
            leaves.append(_PTB_ESCAPES.get(token, token))
            leaf_labels.append(labels[-1])
    else:
        if not labels and root_label is not None:
            return root_label, leaves, leaf_labels
    return parse_tree_with_columns(line)  # raises, naming the problem and its column


def parse_tree_with_columns(line: str) -> tuple[int, list[str], list[int]]:
    """The root label (0–4), the leaves and each leaf's label of one PTB tree line (the
    reference parser).

    A tree is ``(label child ...)``: the label one of 0–4, the children either one word
    (a leaf, ``(2 film)``) or one or more trees. PTB escapes are undone in the leaves.
    Parsing the whole tree (rather than picking leaves out with a pattern) is what
    catches a label out of range, a missing parenthesis and a word no leaf holds.

    Raises:
      TreeSyntaxError (a ValueError): the line is not such a tree; says what and where.
    """
    # One entry per node still open, innermost last: [label, words, subtrees].
    open_nodes: list[list] = []
    root_label, leaves, leaf_labels = None, [], []
    for match in _TREE_TOKEN.finditer(line):
        token, column = match.group(), match.start()
        if root_label is not None:
            raise TreeSyntaxError("text after the end of the tree", column)
        if token == "(":
            if open_nodes:
                parent = open_nodes[-1]
                if parent[0] is None:
                    raise TreeSyntaxError("a node without a label", column)
                if parent[1]:
                    raise TreeSyntaxError("a node holds both a word and a subtree", column)
                parent[2] += 1
            open_nodes.append([None, 0, 0])
        elif token == ")":
            if not open_nodes:
                raise TreeSyntaxError("unbalanced parentheses: a ')' closes no node", column)
            label, words, subtrees = open_nodes.pop()
            if label is None or not (words or subtrees):
                raise TreeSyntaxError(
                    "an empty node (a label and a word or subtree needed)", column
                )
            if not open_nodes:
                root_label = label
        elif not open_nodes:
            raise TreeSyntaxError(_NOT_A_TREE, column)
        elif open_nodes[-1][0] is None:
            if token not in _LABELS:
                raise TreeSyntaxError(f"a node's label must be 0-4, got {token!r}", column)
            open_nodes[-1][0] = int(token)
        else:
            node = open_nodes[-1]
            if node[2]:
                raise TreeSyntaxError("a node holds both a word and a subtree", column)
            if node[1]:
                raise TreeSyntaxError("a leaf holds one word, this one holds more", column)
            node[1] = 1
            leaves.append(_PTB_ESCAPES.get(token, token))
            leaf_labels.append(node[0])
    if open_nodes:
        raise TreeSyntaxError(
            f"unbalanced parentheses: {len(open_nodes)} node(s) still open at the end of the line",
            len(line.rstrip()),
        )
    if root_label is None:
        raise TreeSyntaxError(_NOT_A_TREE, 0)
    return root_label, leaves, leaf_labels


def read_split(path: pathlib.Path, split: str) -> list[Example]:
    """Binary examples from one tree file; neutral roots are dropped.

    Raises:
      DataError: naming the file and line of a line that is not a labelled tree or not
        UTF-8, or when the file holds no tree with a positive or negative root.
    """
    examples = []
    with open(path, "rb") as f:
        for line_number, line in enumerate(utf8_lines(f, path), start=1):
            if not line.strip():
                continue
            try:
                root_label, leaves, leaf_labels = parse_tree(line)
            except TreeSyntaxError as error:
                raise malformed(path, line_number, str(error), line, at=error.column) from None
            if root_label == 2:
                continue
            text = " ".join(leaves)
            tokens, evidence = [], []
            for leaf, leaf_label in zip(leaves, leaf_labels, strict=True):
                words = tokenize(leaf, punctuation="strip")
                tokens += words
                evidence += [int(leaf_label != 2)] * len(words)
            examples.append(
                Example(
                    id=f"{split}-{line_number}",
                    tokens=tuple(tokens),
                    label=int(root_label >= 3),
                    text=text,
                    evidence=tuple(evidence),
                    text_evidence=tuple(int(label != 2) for label in leaf_labels),
                )
            )
    if not examples:
        raise DataError(
            f"{path} holds no tree with a positive (3, 4) or negative (0, 1) root, so the "
            f"{split} split would be empty. Restore the original SST file."
        )
    return examples


def load(data_dir: pathlib.Path) -> TextDataset:
    folder = data_dir / "sst"
    paths = {
        split: require_file(folder / name, f"SST {split} trees")
        for split, name in SPLIT_FILES.items()
    }  # every file must be there; each is parsed when its split is first used
    splits = LazySplits({
        split: functools.partial(read_split, path, split) for split, path in paths.items()
    })  # fmt: skip
    return TextDataset(
        name="sst",
        task="classification",
        label_names=("negative", "positive"),
        splits=splits,
        min_df=1,
        min_length=5,
        punctuation="strip",
        evidence="SST leaf labels <= 1 or >= 3 (SPEC §9)",
    )
