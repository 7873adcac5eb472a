"""Text cleaning and tokenisation (JW, SPEC §1).

Every token is lower-cased, and a token that contains a digit becomes ``qqq``.
JW tokenised with spaCy; we use a regular expression that splits words from
punctuation the way spaCy does for plain English (``don't`` stays one token,
``end.`` becomes ``end .``). For SST, JW first turned every non-word character
into a space, so punctuation disappears (``punctuation="strip"``).
"""

import re

DIGIT_TOKEN = "qqq"

_WHITESPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"\W")
_WORD_OR_PUNCT = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
PUNCTUATION_MODES = ("split", "strip")


def tokenize(text: str, punctuation: str = "split") -> tuple[str, ...]:
    """Cleans and splits ``text`` into lower-cased tokens.

    Args:
      text: raw text.
      punctuation: ``"split"`` keeps punctuation marks as tokens of their own;
        ``"strip"`` turns every non-word character into a space first (JW's SST).

    Returns:
      The tokens; a token containing a digit is replaced by ``qqq``.
    """
    if punctuation not in PUNCTUATION_MODES:
        raise ValueError(f"punctuation must be one of {PUNCTUATION_MODES}, got {punctuation!r}.")
    text = _WHITESPACE.sub(" ", text.strip()).lower()
    if punctuation == "strip":
        tokens = _NON_WORD.sub(" ", text).split()
    else:
        tokens = _WORD_OR_PUNCT.findall(text)
    return tuple(DIGIT_TOKEN if _has_digit(token) else token for token in tokens)


def _has_digit(token: str) -> bool:
    # No character is both a letter and a digit, so the common all-letter token skips the scan.
    return not token.isalpha() and any(c.isdigit() for c in token)
