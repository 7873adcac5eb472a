"""The vocabulary: ids for words seen in the train split (JW, SPEC §1).

Ids ``PAD=0, UNK=1, SOS=2, EOS=3`` come first, then the words whose document
frequency in the train split is at least ``min_df``, most frequent first (ties
alphabetical), so a vocabulary is a pure function of the train split.
"""

import collections
import dataclasses
import json
import os
from collections.abc import Iterable, Sequence

PAD, UNK, SOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS = ("<PAD>", "<UNK>", "<SOS>", "<EOS>")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """An id for every token; ``tokens[i]`` is the token with id ``i``."""

    tokens: tuple[str, ...]
    min_df: int

    def __post_init__(self):
        if self.tokens[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise ValueError(f"A vocabulary must start with {SPECIAL_TOKENS}.")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def num_words(self) -> int:
        """The number of words, special tokens excluded."""
        return len(self.tokens) - len(SPECIAL_TOKENS)

    def id(self, token: str) -> int:
        return self._index.get(token, UNK)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """``[SOS] + ids(tokens) + [EOS]``; unknown words map to UNK."""
        return [SOS, *(self._index.get(t, UNK) for t in tokens), EOS]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"min_df": self.min_df, "tokens": list(self.tokens)}, f)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        try:
            with open(path, encoding="utf-8") as f:
                content = json.load(f)
            return cls(tokens=tuple(content["tokens"]), min_df=int(content["min_df"]))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"No vocabulary at {path}. A run folder gets one when training starts; "
                "check the --workdir you passed."
            ) from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"The vocabulary file {path} is corrupt ({error}). Delete the run folder "
                "and train again, or restore the file."
            ) from None


def build_vocabulary(documents: Iterable[Sequence[str]], min_df: int) -> Vocabulary:
    """Keeps tokens that occur in at least ``min_df`` documents.

    Args:
      documents: token sequences of the train split (for QA/NLI, passages and
        questions both count as documents).
      min_df: the minimum document frequency, ≥ 1.
    """
    if min_df < 1:
        raise ValueError(f"min_df must be at least 1, got {min_df}.")
    document_frequency = collections.Counter()
    for tokens in documents:
        document_frequency.update(set(tokens))
    for special in SPECIAL_TOKENS:
        document_frequency.pop(special, None)
    kept = sorted(
        (t for t, df in document_frequency.items() if df >= min_df),
        key=lambda t: (-document_frequency[t], t),
    )
    return Vocabulary(tokens=SPECIAL_TOKENS + tuple(kept), min_df=min_df)
