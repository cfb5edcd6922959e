"""Property tests: prompts drawn from the attention grammar survive rendering."""
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from prompt_pinning.prompt.weights import PromptVector, check_zero_offsets
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer

CLIP = ClipBpeTokenizer()
WORDS = ["cat", "red", "sky", "blue-eyed", "1girl", "don't", "masterpiece", "chiaroscuro", "a", "of",
         "8k", "x_y", "café", "!!", ".", "&"]
WEIGHTS = ["0", "0.5", "0.75", "1", "1.1", "1.25", "1.5", "2", ".8", " 1.3 "]


class ToyTokenizer:
    """Word-level ids: words, numbers and single punctuation marks."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def encode(self, text):
        return [self.ids.setdefault(w, len(self.ids)) for w in re.findall(r"\w+|[^\w\s]", text.lower())]

    def token_strings(self, ids):
        names = {i: w for w, i in self.ids.items()}
        return [names[i] for i in ids]


def _grammar():
    word = st.sampled_from(WORDS)
    escaped = st.sampled_from([r"\(", r"\)", r"\[", r"\]", r"\\"])
    leaf = st.one_of(word, word, word, escaped)

    def wrap(inner):
        seq = st.lists(inner, min_size=1, max_size=4).flatmap(
            lambda parts: st.lists(st.sampled_from([" ", ", ", ""]), min_size=len(parts), max_size=len(parts))
            .map(lambda seps: "".join(s + p for s, p in zip(seps, parts)).strip()))
        return st.one_of(
            seq,
            seq.map(lambda s: f"({s})"),
            seq.map(lambda s: f"[{s}]"),
            st.tuples(seq, st.sampled_from(WEIGHTS)).map(lambda t: f"({t[0]}:{t[1]})"),
        )

    body = st.recursive(leaf, wrap, max_leaves=12)
    top = st.one_of(body, body, st.sampled_from(["BREAK", "<lora:detail:0.8>", "<hypernet:h:1>"]))
    return st.lists(top, min_size=1, max_size=8).map(lambda parts: " ".join(parts))


PROMPTS = _grammar().filter(lambda p: re.search(r"\w", re.sub(r"<[^>]*>|BREAK", "", p)) is not None)


def _same_units(a, b):
    assert [(u.text, u.prompt) for u in a.units] == [(u.text, u.prompt) for u in b.units]


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(PROMPTS, st.sampled_from(["word", "phrase"]), st.sampled_from([CLIP, ToyTokenizer()]))
def test_zero_offsets_round_trip(prompt, mode, tokenizer):
    vector = PromptVector.from_prompts(prompt, prompt, tokenizer, unit_mode=mode)
    positive, negative = vector.render()
    again = PromptVector.from_prompts(positive, negative, tokenizer, unit_mode=mode)
    _same_units(vector, again)
    assert np.array_equal(again.base_weights.astype(np.float32), vector.base_weights.astype(np.float32))
    assert again.render() == (positive, negative)
    check_zero_offsets(vector, tokenizer)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(PROMPTS, st.sampled_from(["word", "phrase"]), st.data())
def test_random_offsets_give_abs_base_plus_offset(prompt, mode, data):
    vector = PromptVector.from_prompts(prompt, "", CLIP, unit_mode=mode)
    offsets = np.array(data.draw(st.lists(st.floats(-2, 2), min_size=vector.size, max_size=vector.size)))
    positive, _ = vector.render(offsets)
    again = PromptVector.from_prompts(positive, "", CLIP, unit_mode=mode)
    _same_units(vector, again)
    expected = np.abs(vector.base_weights + offsets)
    tolerance = 0.5 * 10.0 ** -vector.decimals + 1e-6 * (1 + expected)
    assert np.all(np.abs(again.base_weights - expected) <= tolerance)
