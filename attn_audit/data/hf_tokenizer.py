"""The tokenizer of a Hugging Face-layout checkpoint folder, in attn_audit's id space (SPEC §10).

A folder holds ``tokenizer.json`` (read with the ``tokenizers`` library), or else
``vocab.txt`` (BERT's WordPiece; ``tokenizer_config.json`` says whether it lower-cases
and strips accents), or ``vocab.json`` + ``merges.txt`` (RoBERTa's byte-level BPE).
Special tokens come from ``special_tokens_map.json`` / ``tokenizer_config.json`` when
present, else from the family's defaults (``[CLS]`` ... for BERT, ``<s>`` ... for RoBERTa).

attn_audit pads with id 0 (``models.PAD_ID``). RoBERTa's ``<pad>`` is 1 and its ``<s>`` 0,
so ids ``0`` and ``pad`` are swapped on the way in (``PieceTokenizer.pieces``) and the
embedding rows likewise on import (``pretrained.hf``): the model sees the same vectors.

Texts become ``[CLS] + pieces + [SEP]``; a text longer than the model's positions is an
error that names it (never cut silently), or, with ``long_inputs="window"``, consecutive
windows of whole words, each an instance of its own (``PieceTokenizer.windows``).
"""

import dataclasses
import json
import pathlib
from collections.abc import Sequence

import numpy as np

from attn_audit.data.dataset import DataError, excerpt
from attn_audit.data.wordpiece import WordPieces, piece_starts, require_unicode

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json + merges.txt")
# What to do with a text longer than the model reads: refuse it, or cut it into windows.
LONG_INPUTS = ("error", "window")
SPECIAL_ROLES = ("cls", "sep", "pad", "unk", "mask")
# The family's special tokens when the folder does not name them.
DEFAULT_SPECIAL_TOKENS = {
    "wordpiece": {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]", "mask": "[MASK]"},
    "bpe": {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"},
}


@dataclasses.dataclass(frozen=True, eq=False)
class PieceTokenizer:
    """A checkpoint's tokenizer that gives ids in attn_audit's space (PAD = 0).

    Attributes:
      tokenizer: the ``tokenizers.Tokenizer`` (no padding, no truncation).
      hf_ids: the checkpoint's ids of the special tokens, ``{"cls", "sep", "pad", "unk", "mask"}``.
      max_pieces: the longest sequence the model reads, ``[CLS]`` and ``[SEP]`` included.
      source: the folder it was read from, for messages.
      long_inputs: ``"error"`` (a longer text is refused) or ``"window"`` (data sets
        encode it as consecutive windows, ``windows``).
    """

    tokenizer: object
    hf_ids: dict
    max_pieces: int
    source: str = ""
    long_inputs: str = "error"

    def __post_init__(self):
        if self.long_inputs not in LONG_INPUTS:
            raise ValueError(f"long_inputs must be one of {LONG_INPUTS}; got {self.long_inputs!r}.")

    @property
    def special_ids(self) -> dict:
        """The special tokens' ids in attn_audit's space (``pad`` is 0)."""
        return {role: int(self.to_ours(np.asarray([i]))[0]) for role, i in self.hf_ids.items()}

    @property
    def mask_id(self) -> int:
        """The mask token, the default replacement of explainers and metrics (SPEC §10)."""
        return self.special_ids["mask"]

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def to_ours(self, hf_ids: np.ndarray) -> np.ndarray:
        """Checkpoint ids to attn_audit's: ``0`` and ``pad`` swap (the identity if pad is 0)."""
        pad = self.hf_ids["pad"]
        hf_ids = np.asarray(hf_ids, np.int32)
        return np.where(hf_ids == pad, 0, np.where(hf_ids == 0, pad, hf_ids)).astype(np.int32)

    to_checkpoint = to_ours  # a swap is its own inverse

    def id_to_token(self, our_id: int) -> str:
        return self.tokenizer.id_to_token(int(self.to_checkpoint(np.asarray([our_id]))[0]))

    def pieces(self, text: str | Sequence[str]) -> WordPieces:
        """``[CLS] + pieces + [SEP]`` of a text (or of pre-split words), in attn_audit's ids.

        The words are the spans of the text that the tokenizer's pre-tokenizer made
        (their characters as written, so that records read like the text).

        Raises:
          DataError: the text is empty, not Unicode, or has more pieces than the model reads.
        """
        for word in [text] if isinstance(text, str) else text:
            require_unicode(word)
        if isinstance(text, str):
            if not text.strip():
                raise DataError("An empty text has no words to explain; drop it from the input.")
            encoding = self.tokenizer.encode(text)
        else:
            if not text:
                raise DataError("An empty list of words has nothing to explain.")
            encoding = self.tokenizer.encode(list(text), is_pretokenized=True)
        if len(encoding.ids) > self.max_pieces:
            raise DataError(
                f"The text {excerpt(text if isinstance(text, str) else ' '.join(text), 0)} has "
                f"{len(encoding.ids)} word pieces ([CLS]/[SEP] included) but the model reads at "
                f"most {self.max_pieces}; shorten it, or read it as consecutive windows of whole "
                "words (--long_inputs=window). attn_audit never cuts a text silently."
            )
        word_index = np.asarray([-1 if w is None else w for w in encoding.word_ids], np.int32)
        if isinstance(text, str):
            words = _word_spans(text, encoding, word_index)
            starts = piece_starts(encoding, word_index)
        else:
            words, starts = tuple(text), None
        return WordPieces(self.to_ours(encoding.ids), word_index, words, starts)

    def windows(self, text: str) -> list[WordPieces]:
        """A text as consecutive windows of whole words, each ``[CLS] + pieces + [SEP]`` of at
        most ``max_pieces``; one window when the text fits. Every piece is in exactly one
        window; word indices and words are the window's own.

        Raises:
          DataError: as ``pieces``, or one word has more pieces than a window holds.
        """
        require_unicode(text)
        if not text.strip():
            raise DataError("An empty text has no words to explain; drop it from the input.")
        encoding = self.tokenizer.encode(text)
        if len(encoding.ids) <= self.max_pieces:
            return [self.pieces(text)]
        word_index = np.asarray([-1 if w is None else w for w in encoding.word_ids], np.int32)
        words = _word_spans(text, encoding, word_index)
        offsets = piece_starts(encoding, word_index)[1:-1]  # each piece's first character
        ids, word_index = np.asarray(encoding.ids[1:-1], np.int32), word_index[1:-1]
        budget = self.max_pieces - 2
        starts = np.flatnonzero(np.diff(word_index, prepend=-2) != 0)  # each word's first piece
        bounds, first = [], 0
        for start, end in zip(starts, [*starts[1:], len(ids)], strict=True):
            if end - start > budget:
                raise DataError(
                    f"The word {words[word_index[start]]!r} has {end - start} word pieces, more "
                    f"than a window of {budget} holds."
                )
            if end - first > budget:
                bounds.append((first, start))
                first = start
        bounds.append((first, len(ids)))
        cls, sep = self.hf_ids["cls"], self.hf_ids["sep"]
        windows = []
        for first, last in bounds:
            local = word_index[first:last] - word_index[first]
            window_ids = np.concatenate([[cls], ids[first:last], [sep]]).astype(np.int32)
            first_word = int(word_index[first])
            windows.append(
                WordPieces(
                    self.to_ours(window_ids),
                    np.concatenate([[-1], local, [-1]]).astype(np.int32),
                    words[first_word : first_word + int(local.max()) + 1],
                    np.concatenate([[-1], offsets[first:last], [-1]]).astype(np.int32),
                )
            )
        return windows


def _word_spans(text: str, encoding, word_index: np.ndarray) -> tuple[str, ...]:
    num_words = int(word_index.max()) + 1 if (word_index >= 0).any() else 0
    starts, ends = [len(text)] * num_words, [0] * num_words
    for word, (start, end) in zip(word_index, encoding.offsets, strict=True):
        if word >= 0:
            starts[word], ends[word] = min(starts[word], start), max(ends[word], end)
    return tuple(text[s:e].strip() for s, e in zip(starts, ends, strict=True))


def _read_json(path: pathlib.Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}).") from None


def _special_tokens(folder: pathlib.Path, kind: str) -> dict:
    """Role -> token string, from the folder's files over the family's defaults."""
    tokens = dict(DEFAULT_SPECIAL_TOKENS[kind])
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        settings = _read_json(folder / name)
        for role in SPECIAL_ROLES:
            value = settings.get(f"{role}_token")
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                tokens[role] = value
    return tokens


def load_tokenizer_folder(
    folder: str | pathlib.Path, vocab_size: int, max_pieces: int, long_inputs: str = "error"
):
    """The tokenizer of a checkpoint folder, checked against the model's vocabulary.

    Args:
      folder: the checkpoint folder.
      vocab_size: rows of the model's word embedding; the tokenizer must not have more ids.
      max_pieces: the longest sequence the model reads.
      long_inputs: ``"error"`` or ``"window"`` (``PieceTokenizer``).

    Returns:
      a ``PieceTokenizer``.

    Raises:
      FileNotFoundError: no tokenizer file (``TOKENIZER_FILES``) in the folder.
      ValueError: a special token is missing, the tokenizer does not add ``[CLS]`` and
        ``[SEP]``, or it has more ids than the model's embedding has rows.
    """
    import tokenizers

    folder = pathlib.Path(folder)
    config = _read_json(folder / "tokenizer_config.json")
    if (folder / "tokenizer.json").is_file():
        path = folder / "tokenizer.json"
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(path))
        except Exception as error:  # the library raises a bare Exception on bad files
            raise ValueError(f"{path} is not a tokenizer file ({error}).") from None
        kind = "bpe" if tokenizer.token_to_id("<s>") is not None else "wordpiece"
    elif (folder / "vocab.txt").is_file():
        path, kind = folder / "vocab.txt", "wordpiece"
        lowercase = bool(config.get("do_lower_case", True))
        strip_accents = config.get("strip_accents")
        tokenizer = tokenizers.BertWordPieceTokenizer(
            str(path), lowercase=lowercase,
            strip_accents=lowercase if strip_accents is None else bool(strip_accents),
            handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
            unk_token=_special_tokens(folder, kind)["unk"],
        )._tokenizer  # fmt: skip
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        path, kind = folder / "vocab.json", "bpe"
        tokenizer = tokenizers.ByteLevelBPETokenizer(
            str(path), str(folder / "merges.txt"),
            add_prefix_space=bool(config.get("add_prefix_space", False)), trim_offsets=True,
        )._tokenizer  # fmt: skip
    else:
        raise FileNotFoundError(
            f"{folder} has no tokenizer: it needs one of {', '.join(TOKENIZER_FILES)} (save "
            "the tokenizer beside the model with tokenizer.save_pretrained(folder))."
        )
    tokens = _special_tokens(folder, kind)
    hf_ids = {}
    for role, token in tokens.items():
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"{path} has no {role} token {token!r}; is it this model's tokenizer?")
        hf_ids[role] = token_id
    if path.name != "tokenizer.json":
        tokenizer.post_processor = (
            tokenizers.processors.RobertaProcessing(
                (tokens["sep"], hf_ids["sep"]), (tokens["cls"], hf_ids["cls"]),
                add_prefix_space=bool(config.get("add_prefix_space", False)),
            ) if kind == "bpe" else tokenizers.processors.BertProcessing(
                (tokens["sep"], hf_ids["sep"]), (tokens["cls"], hf_ids["cls"])
            )
        )  # fmt: skip
    tokenizer.no_padding()
    tokenizer.no_truncation()
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > vocab_size:
        raise ValueError(
            f"{path} has {size} token ids but the model's word embedding has {vocab_size} rows: "
            "the tokenizer does not belong to this model."
        )
    probe = tokenizer.encode("a")
    if not probe.ids or probe.ids[0] != hf_ids["cls"] or probe.ids[-1] != hf_ids["sep"]:
        raise ValueError(
            f"{path} does not wrap a text in {tokens['cls']} ... {tokens['sep']}; attn_audit "
            "needs the classifier's special tokens (add its post-processor)."
        )
    return PieceTokenizer(tokenizer, hf_ids, max_pieces, str(folder), long_inputs)
