"""The fast SST tree parser against the reference one, on arbitrary lines: the same trees, the
same errors."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from attn_audit.data import sst

# Mostly the tree alphabet, so that many generated lines are trees or nearly trees.
TREE_PIECES = st.sampled_from(["(", ")", " ", "0", "2", "3", "4", "9", "a", "film", "\t", "-LRB-"])
TREE_LINES = st.one_of(
    st.lists(TREE_PIECES, max_size=40).map("".join),
    st.lists(st.sampled_from(["(2 a)", "(3 ", ")", " ", "(4 (2 b) (1 c))", "x"]), max_size=12).map(
        lambda pieces: "(3 " + "".join(pieces) + ")"
    ),
    st.text(max_size=30),
)


def example_each(lines):
    def decorate(test):
        for line in lines:
            test = example(line)(test)
        return test

    return decorate


def _outcome(parse, line):
    try:
        return parse(line)
    except sst.TreeSyntaxError as error:
        return ("error", str(error))


# One line per check of the parser, so that every branch is compared on every run.
CHECKS = ["(3 (2 a) (4 (2 b) (1 c)))", "(3 (2 a)(2 b))", "(9 (2 bad) (2 tree))", "(3 (2 a) (2 b)",
          "(3 (2 a) (2 b))) x", "(3 (2 a b))", "(3 ()", "(3 (2 a) word)", "(3 a (2 b))", "()",
          "word", "(3 (2 a)) (2 b)", "", "( (2 a))", ")"]  # fmt: skip


@given(TREE_LINES)
@example_each(CHECKS)
def test_the_fast_parser_agrees_with_the_reference(line):
    assert _outcome(sst.parse_tree, line) == _outcome(sst.parse_tree_with_columns, line)


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_the_fast_parser_agrees_on_every_real_line(real_data_dir, split):
    for line in (real_data_dir / "sst" / f"{split}.txt").read_text(encoding="utf-8").splitlines():
        assert sst.parse_tree(line) == sst.parse_tree_with_columns(line), line
