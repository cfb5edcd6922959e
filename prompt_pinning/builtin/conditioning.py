"""From a prompt to the built-in model's prior over its images.

A prompt is parsed with the attention syntax (``(word:1.3)``, ``(word)``,
``[word]``) into (word, weight) pairs. Words name tags; a colour word
directly followed by "background" names the background tag instead, with
weight colour-weight * background-weight. Image n then gets the prior logit

    beta * sum over the prompt's tags t of weight(t) * [image n has tag t]

Unknown words, and tags no image has, contribute nothing.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence

import torch

from .images import ImageSet
from .tokenizer import split_words
from .vocabulary import BACKGROUND_WORDS, COLOUR_WORDS, WORD_TAGS, background_tag

DEFAULT_BETA = 2.0
ROUND_UP, SQUARE_DOWN = 1.1, 1 / 1.1

Parser = Callable[[str], Sequence[Sequence]]

_ATTENTION_TOKENS = re.compile(
    r"\\[()\[\]\\]|\(|\[|:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)|\)|\]|[^\\()\[\]:]+|[\\:]"
)


def parse_attention_fallback(text: str) -> list[tuple[str, float]]:
    """Minimal attention parser: ``(x:w)``, ``(x)`` = x1.1, ``[x]`` = /1.1, ``\\(`` escapes.

    Used only where the engine's full parser is missing. Returns (text, weight)
    chunks with neighbouring equal weights merged.
    """
    chunks: list[list] = []
    open_round: list[int] = []
    open_square: list[int] = []

    def scale(start: int, factor: float) -> None:
        for chunk in chunks[start:]:
            chunk[1] *= factor

    for match in _ATTENTION_TOKENS.finditer(text):
        token, number = match.group(0), match.group(1)
        if token.startswith("\\"):
            chunks.append([token[1:], 1.0])
        elif token == "(":
            open_round.append(len(chunks))
        elif token == "[":
            open_square.append(len(chunks))
        elif number is not None and open_round:
            scale(open_round.pop(), float(number))
        elif token == ")" and open_round:
            scale(open_round.pop(), ROUND_UP)
        elif token == "]" and open_square:
            scale(open_square.pop(), SQUARE_DOWN)
        else:
            chunks.append([token, 1.0])
    for start in open_round:
        scale(start, ROUND_UP)
    for start in open_square:
        scale(start, SQUARE_DOWN)
    merged: list[list] = []
    for chunk_text, weight in chunks:
        if merged and merged[-1][1] == weight:
            merged[-1][0] += chunk_text
        else:
            merged.append([chunk_text, weight])
    return [(chunk_text, weight) for chunk_text, weight in merged]


def attention_parser() -> Parser:
    """The engine's A1111 parser (prompt_pinning.attention) when present, else the fallback."""
    try:
        from prompt_pinning.attention import parse_prompt_attention
    except ImportError:
        return parse_attention_fallback
    return parse_prompt_attention


def word_weights(prompt: str, parser: Parser | None = None) -> list[tuple[str, float]]:
    """(word, weight) for every token of the prompt, in order."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    chunks = (parser or attention_parser())(prompt)
    pairs = []
    for chunk_text, weight in chunks:
        if chunk_text == "BREAK" and weight == -1:  # A1111's chunk separator
            continue
        pairs.extend((word, float(weight)) for word in split_words(chunk_text))
    return pairs


def tag_weights(pairs: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Total weight per tag named by the words (repeated tags add up)."""
    totals: dict[str, float] = {}
    for i, (word, weight) in enumerate(pairs):
        if word not in WORD_TAGS:
            continue
        following = pairs[i + 1] if i + 1 < len(pairs) else None
        if word in COLOUR_WORDS and following is not None and following[0] in BACKGROUND_WORDS:
            tag, weight = background_tag(word), weight * following[1]
        else:
            tag = WORD_TAGS[word]
        totals[tag] = totals.get(tag, 0.0) + weight
    return totals


def prior_logits(prompt: str, images: ImageSet, beta: float = DEFAULT_BETA,
                 parser: Parser | None = None) -> torch.Tensor:
    """(N,) float32 prior logit of every image under the prompt."""
    column = images.tag_index()
    weights = torch.zeros(len(images.tag_names), dtype=torch.float64)
    for tag, weight in tag_weights(word_weights(prompt, parser)).items():
        if tag in column:
            weights[column[tag]] += weight
    return (beta * (images.tag_matrix.double() @ weights)).float()


def prompt_logit_rows(prompts: Iterable[str], images: ImageSet, beta: float = DEFAULT_BETA) -> torch.Tensor:
    """(len(prompts), N) prior logits, one row per prompt (each prompt parsed once)."""
    cache: dict[str, torch.Tensor] = {}
    rows = []
    for prompt in prompts:
        if prompt not in cache:
            cache[prompt] = prior_logits(prompt, images, beta)
        rows.append(cache[prompt])
    if not rows:
        return torch.zeros((0, images.images.shape[0]))
    return torch.stack(rows)
