"""bAbI tasks 1–3 (en-10k) as (passage, question, answer) (JW, SPEC §1).

Reads ``babi/tasks_1-20_v1-2/`` if extracted, else the tarball in place. A
story's statements up to a question form the passage, joined with " . "; the
question loses its "?" (JW's ``query[:-1]``). The answer (one word for tasks 1–3)
is the label, an index into JW's candidate answers: every word of the training
passages and questions of tasks 1–3 together (their ``entity_list``), so the
output layer spans that vocabulary (36 words), not only the 6 places that are ever
correct. 15% of train is held out as dev (seed 16377). Task 3's 10k training file
is missing from ../shared/data: the loader then falls back to the 1k file in
``en/`` and says so.
"""

import logging
import pathlib
import re
import tarfile

import numpy as np

from attn_audit.data.dataset import (
    READ_ERRORS,
    DataError,
    Example,
    TextDataset,
    decode_utf8,
    malformed,
    seeded_split,
)
from attn_audit.data.text import tokenize

TASK_FILES = {
    1: "qa1_single-supporting-fact",
    2: "qa2_two-supporting-facts",
    3: "qa3_three-supporting-facts",
}
ROOT = "tasks_1-20_v1-2"
TARBALLS = ("tasks_1-20_v1-2.partial.tar.gz", "tasks_1-20_v1-2.tar.gz")
DEV_FRACTION = 0.15
SPLIT_SEED = 16377
_LINE = re.compile(r"^(\d+) (.*)$")


def parse_stories(lines: list[str], path: str, split: str) -> list[tuple[str, tuple, tuple, str]]:
    """(id, passage tokens, question tokens, answer) for every question.

    A story's lines are numbered 1, 2, 3, ...; the next story starts again at 1. A
    question line is ``<n> <question>\\t<answer>[\\t<supporting line numbers>]``.

    Raises:
      DataError: naming the file and line of a line that breaks this layout, or when the
        file holds no question.
    """
    examples, statements = [], []
    previous_index = 0
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise malformed(path, line_number, "expected '<number> <sentence>'", line)
        index, text = int(match.group(1)), match.group(2)
        if index == 1:
            statements = []
        elif index != previous_index + 1:
            raise malformed(
                path,
                line_number,
                f"the line is numbered {index} after {previous_index}; a story's lines are "
                "numbered 1, 2, 3, ... and the next story starts again at 1",
                line,
            )
        previous_index = index
        if "\t" in text:
            fields = text.split("\t")
            if len(fields) not in (2, 3) or not fields[0].strip() or not fields[1].strip():
                raise malformed(
                    path,
                    line_number,
                    "a question needs '<question>\\t<answer>[\\t<supporting lines>]'",
                    line,
                )
            supporting = fields[2].split() if len(fields) == 3 else []
            if not all(s.isdecimal() and 1 <= int(s) < index for s in supporting):
                raise malformed(
                    path,
                    line_number,
                    f"the supporting facts {fields[2].strip()!r} are not numbers of earlier "
                    "lines of the story",
                    line,
                )
            passage = " . ".join(s.rstrip(" .") for s in statements)
            examples.append(
                (
                    f"{split}-{line_number}",
                    tokenize(passage),
                    tokenize(fields[0].strip().removesuffix("?")),
                    fields[1].strip().lower(),
                )
            )
        else:
            statements.append(text)
    if not examples:
        raise DataError(
            f"{path} holds no question ('<n> <question>\\t<answer>'), so the {split} split "
            "would be empty. Restore the original bAbI file."
        )
    return examples


class _Source:
    """Text files of the bAbI tree, from the extracted folder or the tarball."""

    def __init__(self, folder: pathlib.Path):
        self.folder = folder
        self.names: dict[str, object] = {}
        if (folder / ROOT).is_dir():
            self.archive = None
        else:
            tarballs = [folder / name for name in TARBALLS if (folder / name).is_file()]
            if not tarballs:
                raise DataError(
                    f"No bAbI data in {folder}: expected {ROOT}/ or one of {TARBALLS}. "
                    "Download tasks_1-20_v1-2.tar.gz and put it there."
                )
            self.archive = tarballs[0]
            try:
                with tarfile.open(self.archive, "r:gz") as archive:
                    self.names = {m.name: None for m in archive.getmembers() if m.isfile()}
            except READ_ERRORS as error:
                raise self._unreadable(error) from None

    def _unreadable(self, error: Exception) -> DataError:
        return DataError(
            f"Cannot read the bAbI archive {self.archive} ({error}). Replace it with the "
            f"original {TARBALLS[-1]}, or extract it so that {ROOT}/ exists."
        )

    def exists(self, relative: str) -> bool:
        if self.archive is None:
            return (self.folder / ROOT / relative).is_file()
        return f"{ROOT}/{relative}" in self.names

    def read(self, relative: str) -> list[str]:
        """The file's lines (split at ``\\n`` only, so line numbers are an editor's)."""
        if self.archive is None:
            raw = (self.folder / ROOT / relative).read_bytes()
        else:
            try:
                with tarfile.open(self.archive, "r:gz") as archive:
                    raw = archive.extractfile(f"{ROOT}/{relative}").read()
            except READ_ERRORS as error:
                raise self._unreadable(error) from None
        return decode_utf8(raw, self.where(relative)).split("\n")

    def where(self, relative: str) -> str:
        return (
            str(self.archive or self.folder / ROOT)
            + (f":{ROOT}/" if self.archive else "/")
            + (relative)
        )


def _task_file(source: _Source, task: int, part: str) -> tuple[str, str | None]:
    """The file of ``task``'s ``part`` (10k, else 1k) and a note when it is the 1k file."""
    stem = TASK_FILES[task]
    relative = f"en-10k/{stem}_{part}.txt"
    if source.exists(relative):
        return relative, None
    fallback = f"en/{stem}_{part}.txt"
    if not source.exists(fallback):
        raise DataError(
            f"Missing bAbI file {source.where(relative)} (and {fallback}). Restore the "
            "complete tasks_1-20_v1-2 archive."
        )
    return fallback, (
        f"bAbI task {task}: {relative} is missing, so the {part} split comes from the 1k file "
        f"{fallback} (JW used the 10k file)."
    )


def candidate_answers(source: _Source, parsed_train: dict[int, list]) -> tuple[str, ...]:
    """JW's answer candidates: the sorted words of tasks 1–3's training passages and questions.

    JW fit one vocabulary on the three training files and took every word of it as a
    candidate answer (``entity_list``; the entity mask is all ones, SPEC §2). ``parsed_train``
    holds tasks already parsed; the others are read here.
    """
    words = set()
    for task in TASK_FILES:
        examples = parsed_train.get(task)
        if examples is None:
            relative, _ = _task_file(source, task, "train")
            examples = parse_stories(source.read(relative), source.where(relative), "train")
        for _, passage, question, _ in examples:
            words.update(passage, question)
    return tuple(sorted(words))


def load(data_dir: pathlib.Path, task: int) -> TextDataset:
    if task not in TASK_FILES:
        raise ValueError(f"bAbI task must be one of {sorted(TASK_FILES)}, got {task}.")
    source = _Source(data_dir / "babi")
    notes = []
    files = {}
    for part in ("train", "test"):
        files[part], note = _task_file(source, task, part)
        if note:
            logging.warning(note)
            notes.append(note)
    parsed = {
        part: parse_stories(source.read(relative), source.where(relative), part)
        for part, relative in files.items()
    }
    answers = candidate_answers(source, {task: parsed["train"]})

    def to_examples(part):
        examples = []
        for example_id, passage, question, answer in parsed[part]:
            if answer not in answers:
                line_number = example_id.rsplit("-", 1)[1]
                raise DataError(
                    f"{source.where(files[part])}, line {line_number}: the answer {answer!r} "
                    f"is no word of the bAbI 1–3 training files, so no model can predict it. "
                    "Restore the original bAbI files."
                )
            examples.append(Example(example_id, passage, answers.index(answer), question))
        return examples

    train_all = to_examples("train")
    train, dev = seeded_split(train_all, DEV_FRACTION, SPLIT_SEED)
    return TextDataset(
        name=f"babi{task}",
        task="qa",
        label_names=answers,
        splits={"train": train, "dev": dev, "test": to_examples("test")},
        min_df=1,
        length_filter=False,
        notes=notes,
    )


# bAbI 1–2's sentences, by the word after the actor: "<actor> <verb> [back] to the <place>",
# "<actor> <verb> [up|down] the <object> [there]".
_TAKE_VERBS = frozenset({"got", "grabbed", "took", "picked"})
_DROP_VERBS = frozenset({"dropped", "discarded", "left", "put"})


def story_answer(statements: list[tuple[str, ...]], question: tuple[str, ...]) -> str | None:
    """The answer bAbI 1 or 2's rules give for ``statements`` in this order, or None.

    bAbI 1 asks "where is <actor>": the place of the actor's last move. bAbI 2 asks
    "where is the <object>": its holder's place, or the place where it was dropped.
    None where the order breaks the rules (an object taken while someone else holds it,
    dropped by someone who does not) or leaves the answer unknown.

    Args:
      statements: the passage's sentences, tokenised, in story order.
      question: the question's tokens (a final "?" is ignored).
    """
    place, holder, resting = {}, {}, {}
    for words in statements:
        actor, verb = words[0], words[1]
        if "to" in words:
            place[actor] = words[-1]
            continue
        thing = words[words.index("the") + 1]
        if verb in _TAKE_VERBS:
            if holder.get(thing) not in (None, actor):
                return None
            holder[thing] = actor
        elif verb in _DROP_VERBS:
            if holder.get(thing) != actor:
                return None
            holder[thing], resting[thing] = None, place.get(actor)
        else:
            raise ValueError(f"Not a bAbI 1–2 sentence: {' '.join(words)!r}.")
    question = tuple(word for word in question if word != "?")
    asked = question[-1]
    if question[2] != "the":  # bAbI 1: an actor
        return place.get(asked)
    if holder.get(asked) is not None:
        return place.get(holder[asked])
    return resting.get(asked)


def passage_statements(tokens: tuple[str, ...]) -> list[tuple[str, ...]]:
    """A passage's sentences (the loader joined them with " . ")."""
    sentences, current = [], []
    for token in tokens:
        if token == ".":
            sentences.append(tuple(current))
            current = []
        else:
            current.append(token)
    return sentences + [tuple(current)] if current else sentences


def order_free_ceiling(
    examples, label_names, num_orders: int, rng: np.random.Generator
) -> tuple[float, float]:
    """How well any model blind to sentence order can answer, estimated by shuffling.

    A model whose output depends on the passage only through its bag of tokens (the
    Average encoder: ``h_t`` from ``e_t`` alone, ``α_t`` from ``h_t`` and the question)
    gives one answer for every valid order of a story's sentences. If the orders of a
    story's sentences are equally likely, its expected accuracy on that story is at most
    ``max_a P(answer = a)`` over the orders; averaged over stories, that is the ceiling.
    Each story draws ``num_orders`` shuffles and keeps those that obey the rules.

    Returns:
      ``(ceiling, agreement)``: the mean ceiling over ``examples``, and the share of
      examples whose answer ``story_answer`` gives in the original order matches the
      gold label (1.0 checks the rules against the data).
    """
    ceilings, agreeing = [], 0
    for example in examples:
        statements = passage_statements(example.tokens)
        agreeing += story_answer(statements, example.question) == label_names[example.label]
        answers = []
        for _ in range(num_orders):
            order = rng.permutation(len(statements))
            answer = story_answer([statements[i] for i in order], example.question)
            if answer is not None:
                answers.append(answer)
        counts = np.unique(answers, return_counts=True)[1] if answers else np.array([1])
        ceilings.append(counts.max() / max(len(answers), 1))
    return float(np.mean(ceilings)), agreeing / len(examples)
