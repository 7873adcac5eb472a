import pytest

from attn_audit.data.text import tokenize


def test_lowercases_and_splits_punctuation():
    assert tokenize("  The  Rock, isn't it?\n") == ("the", "rock", ",", "isn't", "it", "?")


def test_tokens_with_digits_become_qqq():
    assert tokenize("In 2002 the 21st film cost $5m") == (
        "in", "qqq", "the", "qqq", "film", "cost", "$", "qqq",
    )  # fmt: skip


def test_strip_mode_turns_non_word_characters_into_spaces():
    assert tokenize("Jean-Claud Van Damme 's ( film ) .", punctuation="strip") == (
        "jean", "claud", "van", "damme", "s", "film",
    )  # fmt: skip


def test_empty_text_gives_no_tokens():
    assert tokenize("") == ()
    assert tokenize(" \n\t ") == ()


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="punctuation must be one of"):
        tokenize("a", punctuation="keep")
