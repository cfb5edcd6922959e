"""Word tokenizer and prompt -> prior logits of the built-in model."""
import pytest
import torch

from prompt_pinning.builtin.conditioning import (
    parse_attention_fallback, prior_logits, prompt_logit_rows, tag_weights, word_weights,
)
from prompt_pinning.builtin.images import image_set
from prompt_pinning.builtin.tokenizer import UNKNOWN_ID_BASE, WordTokenizer
from prompt_pinning.rendering import Tokenizer


def test_tokenizer_words_numbers_and_punctuation():
    tokenizer = WordTokenizer()
    assert isinstance(tokenizer, Tokenizer)
    ids = tokenizer.encode("A large, RED circle (1.5) on zorblax!")
    assert tokenizer.token_strings(ids) == ["a", "large", ",", "red", "circle", "(", "1.5", ")", "on", "zorblax", "!"]
    known = [i for i, word in zip(ids, tokenizer.token_strings(ids)) if word not in ("1.5", "zorblax")]
    assert ids[-2] >= UNKNOWN_ID_BASE > max(known)
    assert WordTokenizer().encode("zorblax") == [ids[-2]]  # unknown ids are stable across instances


def test_token_strings_rejects_ids_never_encoded():
    with pytest.raises(ValueError, match="token id"):
        WordTokenizer().token_strings([UNKNOWN_ID_BASE + 12345])


PARSER_CASES = [
    "a (large:1.5) red circle on a blue background",
    "(red) [blue] ((green)) [[x]]",
    "((a:2) b) c",
    r"\(literal\) (open",
    "x ] y ) z",
    "(neg:-0.5) [unclosed",
]


@pytest.mark.parametrize("text", PARSER_CASES)
def test_fallback_parser_matches_the_engine_parser(text):
    from prompt_pinning import attention
    expected = attention.parse_prompt_attention(text)
    got = parse_attention_fallback(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def test_word_weights_follow_attention_syntax():
    pairs = word_weights("a (large:1.5) red [circle]")
    assert pairs == [("a", 1.0), ("large", 1.5), ("red", 1.0), ("circle", pytest.approx(1 / 1.1))]


def test_colour_before_background_names_the_background():
    weights = tag_weights(word_weights("a red circle on a (blue:1.2) (background:0.5), big box"))
    assert weights == pytest.approx({"red": 1.0, "circle": 1.0, "blue background": 0.6, "large": 1.0, "square": 1.0})


def test_prior_logit_is_beta_times_matching_weights():
    images = image_set()
    logits = prior_logits("(red:1.5) circle on a green background", images, beta=2.0)
    for n in range(0, len(images.tags), 17):
        tags = images.tags[n]
        expected = 2.0 * (1.5 * ("red" in tags) + 1.0 * ("circle" in tags) + ("green background" in tags))
        assert float(logits[n]) == pytest.approx(expected)


def test_unknown_words_and_empty_prompts_have_no_effect():
    images = image_set()
    assert torch.equal(prior_logits("", images), torch.zeros(len(images.tags)))
    assert torch.equal(prior_logits("zorblax (quux:3) the of", images), torch.zeros(len(images.tags)))
    assert torch.equal(prior_logits("red zorblax circle", images), prior_logits("red circle", images))


def test_logit_rows_one_per_prompt():
    images = image_set()
    rows = prompt_logit_rows(["red", "", "red"], images)
    assert rows.shape == (3, len(images.tags))
    assert torch.equal(rows[0], rows[2]) and not torch.equal(rows[0], rows[1])
