"""Planted-evidence tasks: real sentences with marker words whose label function is known.

After Zhou et al. (AAAI 2022) and Bastings et al. (EMNLP 2022), SPEC §9. Each sentence of a
source data set (SST or AG News) gets one or two marker words inserted at random word gaps,
and its label becomes a known function of the markers, so a model that reaches high
accuracy can only have used them: the markers are the ground truth (``Example.evidence``).

Tasks (``planted:<task>[:option=value,...]``, e.g. ``planted:xor``,
``planted:mixed:rate=0.8``, ``planted:single:markers=sentiment,source=agnews``):

- ``single``: one marker, ``A0`` or ``A1``; the label is its index.
- ``and``: two markers, one of ``A0``/``A1`` then one of ``B0``/``B1`` (each at its own
  random gap); the label is ``A1 ∧ B1``. The pair (A1, B1) is drawn with probability 1/2 and
  each other pair with 1/6, so the classes are balanced.
- ``xor``: the same two markers, each pair with probability 1/4; the label is ``A1 ⊕ B1``,
  so neither marker alone says anything about the label (LOO and Shapley must differ).
- ``mixed``: one marker as ``single`` (the label is its index), but the sentence is drawn so
  that its own sentiment agrees with the marker at ``rate`` (SST only): at 1.0 the sentence
  always says the same as the marker, at 0.5 it says nothing; the model may use both.

Marker words (``markers=``): ``rare`` (English words no sentence of the sources holds:
walrus, narwhal, marmot, ibis), ``frequent`` (function words in 3–4% of SST's sentences:
just, even, what, there) or ``sentiment`` (words with a sentiment of their own, in the
order of their polarity: bad, good, awful, great). Source sentences that already hold any
of the task's marker words are dropped, so every marker in the data is a planted one.

Everything is deterministic by ``seed`` (default 0): the same name gives the same data.
"""

import dataclasses
import pathlib

import numpy as np

from attn_audit.data import agnews, sst
from attn_audit.data.dataset import DataError, Example, TextDataset
from attn_audit.data.text import tokenize

PREFIX = "planted:"
TASKS = ("single", "and", "xor", "mixed")
MARKER_WORDS = {
    "rare": ("walrus", "narwhal", "marmot", "ibis"),
    "frequent": ("just", "even", "what", "there"),
    "sentiment": ("bad", "good", "awful", "great"),
}
SOURCES = {"sst": sst.load, "agnews": agnews.load}
DEFAULT_RATE = 0.8
_OPTIONS = ("markers", "rate", "source", "seed")
_EXAMPLE = "planted:single, planted:xor:markers=frequent, planted:mixed:rate=0.8"


@dataclasses.dataclass(frozen=True)
class PlantedTask:
    """One planted task; ``name`` is its canonical data set name (defaults left out)."""

    task: str
    markers: str = "rare"
    rate: float | None = None
    source: str = "sst"
    seed: int = 0

    def __post_init__(self):
        if self.task not in TASKS:
            raise DataError(
                f"Unknown planted task {self.task!r}; choose one of {list(TASKS)} "
                f"(e.g. {_EXAMPLE})."
            )
        if self.markers not in MARKER_WORDS:
            raise DataError(
                f"Unknown marker kind {self.markers!r}; choose one of {list(MARKER_WORDS)}."
            )
        if self.source not in SOURCES:
            raise DataError(
                f"Unknown source {self.source!r} for planted tasks; choose one of {list(SOURCES)}."
            )
        if self.task == "mixed":
            if self.source != "sst":
                raise DataError(
                    "planted:mixed mixes a marker with the sentence's own sentiment, which "
                    f"only source=sst has; {self.source} has topics."
                )
            rate = DEFAULT_RATE if self.rate is None else self.rate
            if not 0.0 <= rate <= 1.0:
                raise DataError(
                    f"rate is the share of sentences whose sentiment agrees with the marker, "
                    f"in [0, 1]; got {rate}."
                )
            object.__setattr__(self, "rate", float(rate))
        elif self.rate is not None:
            raise DataError(f"rate= applies to planted:mixed only, not planted:{self.task}.")

    @property
    def name(self) -> str:
        options = []
        if self.markers != "rare":
            options.append(f"markers={self.markers}")
        if self.task == "mixed" and self.rate != DEFAULT_RATE:
            options.append(f"rate={self.rate:g}")
        if self.source != "sst":
            options.append(f"source={self.source}")
        if self.seed != 0:
            options.append(f"seed={self.seed}")
        return PREFIX + self.task + (":" + ",".join(options) if options else "")

    @property
    def marker_words(self) -> tuple[str, ...]:
        """The words in use: ``(A0, A1)`` for one marker, ``(A0, A1, B0, B1)`` for two."""
        words = MARKER_WORDS[self.markers]
        return words if self.task in ("and", "xor") else words[:2]


def parse_name(name: str) -> PlantedTask:
    """``planted:<task>[:option=value,...]`` → ``PlantedTask``; a one-line DataError if not."""
    if not name.startswith(PREFIX):
        raise DataError(f"A planted task's name starts with {PREFIX!r}; got {name!r}.")
    task, _, option_text = name[len(PREFIX) :].partition(":")
    options = {}
    for item in filter(None, option_text.split(",")):
        key, equals, value = item.partition("=")
        if not equals or key not in _OPTIONS or key in options:
            raise DataError(
                f"Bad option {item!r} in {name!r}: options are key=value with key one of "
                f"{list(_OPTIONS)}, each at most once (e.g. {_EXAMPLE})."
            )
        options[key] = value
    try:
        if "rate" in options:
            options["rate"] = float(options["rate"])
        if "seed" in options:
            options["seed"] = int(options["seed"])
    except ValueError:
        raise DataError(f"rate= takes a number and seed= an integer, in {name!r}.") from None
    return PlantedTask(task, **options)


def marker_choices(task: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """Which marker of each slot every sentence gets: int ``[size, slots]`` of 0/1
    (slots: 1 for single/mixed, 2 for and/xor), drawn as the module docstring says."""
    if task in ("single", "mixed"):
        return rng.integers(0, 2, size=(size, 1))
    pairs = np.asarray([[0, 0], [0, 1], [1, 0], [1, 1]])
    weights = [1 / 6, 1 / 6, 1 / 6, 1 / 2] if task == "and" else [1 / 4] * 4
    return pairs[rng.choice(4, size=size, p=weights)]


def label_of(task: str, choice: np.ndarray) -> int:
    """The label function: ``choice`` is one sentence's row of ``marker_choices``."""
    if task in ("single", "mixed"):
        return int(choice[0])
    if task == "and":
        return int(choice[0] and choice[1])
    return int(choice[0] != choice[1])


def plant(example: Example, words: list[str], rng: np.random.Generator, tokenize_word):
    """``example`` with ``words`` inserted, each at a uniformly random gap between the words of
    its text (``text.split(" ")``; the tokens joined where it keeps no text).

    Returns:
      ``(text_words, tokens, evidence, text_evidence)``: the new text's words, its tokens
      (each word tokenised alone, as SST's leaves are), and 1 on the planted words' tokens
      and text words.
    """
    text_words = example.text.split(" ") if example.text is not None else list(example.tokens)
    text_evidence = [0] * len(text_words)
    for word in words:
        gap = int(rng.integers(0, len(text_words) + 1))
        text_words.insert(gap, word)
        text_evidence.insert(gap, 1)
    tokens, evidence = [], []
    for word, marked in zip(text_words, text_evidence, strict=True):
        pieces = tokenize_word(word)
        tokens += pieces
        evidence += [marked] * len(pieces)
    return text_words, tokens, evidence, text_evidence


def _sample_sources(examples, labels_wanted, agree_rate, rng):
    """Sentences for ``mixed``: one per wanted label, agreeing with it at ``agree_rate``.

    Sentences are drawn without replacement from each sentiment class in turn until a class
    runs out; the rest of the wanted labels are dropped (the split gets smaller)."""
    by_label = {}
    for label in (0, 1):
        indices = [i for i, example in enumerate(examples) if example.label == label]
        by_label[label] = list(rng.permutation(indices))
    chosen = []
    for wanted in labels_wanted:
        agree = rng.random() < agree_rate
        source_label = int(wanted) if agree else 1 - int(wanted)
        if not by_label[source_label]:
            continue
        chosen.append((by_label[source_label].pop(), int(wanted)))
    return chosen


def build_split(task: PlantedTask, examples: list[Example], split: str, punctuation: str):
    """The planted examples of one split of the source (seeded by the task's seed and split)."""
    split_number = ("train", "dev", "test").index(split)
    rng = np.random.default_rng([task.seed, split_number])
    words = task.marker_words
    kept = [e for e in examples if not set(words) & set(e.tokens)]
    choices = marker_choices(task.task, rng, len(kept))
    if task.task == "mixed":
        order = _sample_sources(kept, choices[:, 0], task.rate, rng)
        pairs = [(kept[index], np.asarray([wanted])) for index, wanted in order]
    else:
        pairs = list(zip(kept, choices, strict=True))
    planted = []
    for number, (source, choice) in enumerate(pairs):
        inserted = [words[slot * 2 + int(value)] for slot, value in enumerate(choice)]
        text_words, tokens, evidence, text_evidence = plant(
            source, inserted, rng, lambda word: tokenize(word, punctuation=punctuation)
        )
        planted.append(
            Example(
                id=f"{split}-{number}:{source.id}",
                tokens=tuple(tokens),
                label=label_of(task.task, choice),
                text=" ".join(text_words),
                evidence=tuple(evidence),
                text_evidence=tuple(text_evidence),
            )
        )
    return planted


def label_names(task: PlantedTask) -> tuple[str, ...]:
    a0, a1, *rest = task.marker_words
    if task.task in ("single", "mixed"):
        return (a0, a1)
    b1 = rest[1]
    if task.task == "and":
        return (f"not ({a1} and {b1})", f"{a1} and {b1}")
    return (f"{a1} same as {b1}", f"{a1} differs from {b1}")


def load(name: str, data_dir: pathlib.Path) -> TextDataset:
    """The planted task ``name`` built from its source's files in ``data_dir``."""
    task = parse_name(name)
    source = SOURCES[task.source](data_dir)
    splits = {
        split: build_split(task, examples, split, source.punctuation)
        for split, examples in source.splits.items()
    }
    for split, examples in splits.items():
        if not examples:
            raise DataError(f"{task.name}: the {split} split is empty; the source has too few "
                            "sentences without the marker words.")  # fmt: skip
    words = ", ".join(task.marker_words)
    return TextDataset(
        name=task.name,
        task="classification",
        label_names=label_names(task),
        splits=splits,
        min_df=source.min_df,
        min_length=source.min_length,
        max_length=source.max_length,
        length_filter=source.length_filter,
        punctuation=source.punctuation,
        notes=[
            *source.notes,
            f"{task.name}: {source.name}'s sentences with planted markers ({words}); the "
            "labels are a function of the markers (attn_audit/data/planted.py).",
        ],
        evidence=f"the planted markers ({words})",
        markers=task.marker_words,
    )
