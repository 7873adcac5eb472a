"""Are our bAbI 1 questions JW's? Parses the en-10k files with a transcription of JW's
``preprocess/Babi/Babi.ipynb`` ``_parse`` (passages joined with " . ", the question's last
character dropped, tokens split on spaces) and compares them with ``data.load_dataset``'s
examples as multisets of (passage, question, answer), lowercased (our tokenizer lowercases;
JW's keeps case). Prints the comparison; the run is in ``same_data.txt``.

    python results/isolating/babi1_lstm_tau/same_data.py     # data from ATTN_AUDIT_DATA
"""

import collections
import os
import pathlib
import tarfile

from attn_audit import data

MEMBER = "tasks_1-20_v1-2/en-10k/qa1_single-supporting-fact_{}.txt"


def jw_parse(lines: list[str]) -> list[tuple[list[str], list[str], str]]:
    examples, story = [], []
    for line in lines:
        line_id, text = line.rstrip("\n").split(" ", 1)
        if line_id == "1":
            story = []
        if text.endswith("."):
            story.append(text[:-1])
        else:
            query, answer, _ = (part.strip() for part in text.split("\t"))
            passage = " . ".join(sentence for sentence in story if sentence)
            examples.append((passage.split(" "), query[:-1].split(" "), answer))
            story.append("")
    return examples


def lowered(passage, question, answer) -> tuple:
    return tuple(w.lower() for w in passage), tuple(w.lower() for w in question), answer.lower()


def main() -> None:
    dataset = data.load_dataset("babi1")
    folder = pathlib.Path(os.environ["ATTN_AUDIT_DATA"]) / "babi"
    with tarfile.open(next(folder.glob("tasks_1-20_v1-2*.tar.gz"))) as tar:
        files = {s: tar.extractfile(MEMBER.format(s)).read().decode() for s in ("train", "test")}
    for split, ours in (
        ("train", dataset.splits["train"] + dataset.splits["dev"]),
        ("test", dataset.splits["test"]),
    ):
        jw = jw_parse(files[split].splitlines())
        same = collections.Counter(lowered(*e) for e in jw) == collections.Counter(
            lowered(e.tokens, e.question, dataset.label_names[e.label]) for e in ours
        )
        print(f"{split}: JW {len(jw)}, ours {len(ours)} questions; same multiset: {same}")
    words = {
        w
        for passage, question, _ in jw_parse(files["train"].splitlines())
        for w in passage + question
    }
    print(f"JW's train words: {len(words)}; lowercased: {len({w.lower() for w in words})}")


if __name__ == "__main__":
    main()
