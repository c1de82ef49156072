"""A token's characters and shape as integer columns: what the char CNN and the shape embedding read.

``char_matrix`` gives one row per token: column 0 the word's shape class
(``word_shape``), columns 1.. its character ids, left-aligned, 0 past the end.
"""
import numpy as np

CHAR_WIDTH = 20   # characters kept per word: the first 10 and the last 10 of a longer word

# word shape classes (0 = <PAD>)
SHAPES = ("<PAD>", "lower", "Title", "UPPER", "mIxed", "digits", "alnum-digit", "punct", "other", "X")
N_SHAPES = len(SHAPES)


def word_shape(token: str) -> int:
    """The shape class of a token: casing pattern, digits, punctuation."""
    if token.isalpha():
        if token.islower():
            return 1
        if token.isupper():
            return 9 if len(token) == 1 else 3
        return 2 if token[0].isupper() and token[1:].islower() else 4
    if token.isdigit():
        return 5
    if any(ch.isdigit() for ch in token):
        return 6
    if not any(ch.isalnum() for ch in token):
        return 7
    return 8


def char_row(token: str, index: dict, width: int = CHAR_WIDTH) -> list:
    """[shape, char ids...] of one token (unknown characters -> <UNK> = 1), padded to 1 + width."""
    if len(token) > width:
        token = token[:width // 2] + token[len(token) - (width - width // 2):]
    ids = [index.get(ch, 1) for ch in token]
    return [word_shape(token)] + ids + [0] * (width - len(ids))


def char_matrix(token_lists, index: dict, width: int = CHAR_WIDTH, cache: dict | None = None) -> np.ndarray:
    """(total tokens, 1 + width) int32 for the tokens of all records, in order (aligned with a Ragged's flat).

    Each distinct token's row is built once (text repeats: most tokens of a
    chunk are a few hundred words); ``cache`` (token -> row array) may be kept
    by the caller across chunks.
    """
    cache = {} if cache is None else cache
    distinct: dict = {}
    slots = [distinct.setdefault(token, len(distinct)) for tokens in token_lists for token in tokens]
    table = np.empty((len(distinct), 1 + width), dtype=np.int32)
    for token, k in distinct.items():
        row = cache.get(token)
        if row is None:
            row = cache[token] = np.array(char_row(token, index, width), dtype=np.int32)
        table[k] = row
    return table[np.array(slots, dtype=np.intp)] if slots else table[:0]
