"""Prompt size limits: a long or pathological prompt is refused quickly, before parsing."""
import time

import pytest

from prompt_pinning.prompt.attention import PromptError
from prompt_pinning.prompt.units import (MAX_PROMPT_CHARS, MAX_PROMPT_TOKENS, MAX_UNIT_CHARS, prompt_items)
from prompt_pinning.prompt.weights import PromptVector
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer


class CountingTokenizer(ClipBpeTokenizer):
    def __init__(self):
        super().__init__()
        self.texts = []

    def encode(self, text):
        self.texts.append(text)
        return super().encode(text)


@pytest.fixture(scope="module")
def clip():
    return ClipBpeTokenizer()


def test_combining_accents_do_not_make_the_split_quadratic(clip):
    # Two words, 3 kB: "e" + U+0301 is one letter after normalisation, so every neighbour joins.
    accents = "cat " + "e\u0301" * 1000
    started = time.perf_counter()
    with pytest.raises(PromptError, match=rf"positive prompt: the word at character 4 .* longer than {MAX_UNIT_CHARS}"):
        prompt_items(accents, "positive", clip)
    assert time.perf_counter() - started < 1.0


def test_text_encoded_while_splitting_stays_short():
    tokenizer = CountingTokenizer()
    text = "cat " + "e\u0301" * (MAX_UNIT_CHARS // 2 - 1) + ", " + "(red dog:1.2) " * 100
    items = prompt_items(text, "positive", tokenizer)
    assert sum(item.kind == "unit" for item in items) >= 2 + 2 * 100
    longest_split = max(len(t) for t in tokenizer.texts[1:])  # the first is the size check
    assert longest_split <= 2 * MAX_UNIT_CHARS + 1  # a unit, or a seam between two pieces


def test_a_prompt_over_the_character_limit_is_refused_unread():
    tokenizer = CountingTokenizer()
    text = "cat " * (MAX_PROMPT_CHARS // 4) + "x"
    with pytest.raises(PromptError, match=rf"negative prompt: {len(text):,} characters; at most {MAX_PROMPT_CHARS:,}"):
        prompt_items(text, "negative", tokenizer)
    assert tokenizer.texts == []


def test_a_prompt_over_the_token_limit_is_refused_before_splitting(clip):
    text = "1" * (MAX_PROMPT_TOKENS + 1)  # every digit is a token
    with pytest.raises(PromptError, match=rf"positive prompt: {MAX_PROMPT_TOKENS + 1:,} tokens as written"):
        PromptVector.from_prompts(text, "", clip)


def test_150_weighted_phrases_fit_the_limits(clip):
    phrases = ", ".join(f"(red dog {i}:1.25)" for i in range(150))
    vector = PromptVector.from_prompts(phrases, "", clip, unit_mode="phrase")
    assert vector.size == 150
