"""Word-level tokenizer of the built-in model.

Text is lower-cased and split into words, numbers and single punctuation
characters; each is one token. Known words have fixed ids; any other word
gets a stable id of its own (derived from its text), so unknown words are
allowed: they simply tag no image.
"""
from __future__ import annotations

import re
import zlib
from typing import Sequence

from .vocabulary import KNOWN_WORDS

TOKEN_PATTERN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+(?:'[^\W\d_]+)?|[^\s\w]|_", re.UNICODE)
UNKNOWN_ID_BASE = 1 << 20  # unknown words get ids at or above this


def split_words(text: str) -> list[str]:
    """Lower-cased tokens of ``text``: words, numbers and punctuation marks."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return TOKEN_PATTERN.findall(text.lower())


class WordTokenizer:
    """Implements the engine's Tokenizer protocol for the built-in model."""

    def __init__(self, known_words: Sequence[str] = KNOWN_WORDS):
        self._id_of = {word: i for i, word in enumerate(dict.fromkeys(known_words))}
        self._word_of = {i: word for word, i in self._id_of.items()}

    def _id(self, word: str) -> int:
        found = self._id_of.get(word)
        if found is None:
            found = UNKNOWN_ID_BASE + zlib.crc32(word.encode("utf-8"))
            while self._word_of.get(found, word) != word:  # crc collision: probe on
                found += 1
            self._id_of[word] = found
            self._word_of[found] = word
        return found

    def encode(self, text: str) -> list[int]:
        return [self._id(word) for word in split_words(text)]

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        words = []
        for token_id in ids:
            word = self._word_of.get(int(token_id))
            if word is None:
                raise ValueError(f"token id {token_id!r} was never produced by this tokenizer's encode()")
            words.append(word)
        return words

    def is_known(self, word: str) -> bool:
        return word in self._id_of and self._id_of[word] < UNKNOWN_ID_BASE
