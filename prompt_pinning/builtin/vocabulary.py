"""Words the built-in model understands and the image tags they stand for."""
from __future__ import annotations

from .layouts import PALETTE, SHAPES

BACKGROUND_WORDS = ("background", "backdrop", "backgrounds")

# word -> tag; a tag is a shape, colour, size or position word of layouts.py.
WORD_TAGS: dict[str, str] = {}
for _shape in SHAPES:
    WORD_TAGS[_shape] = _shape
for _colour in PALETTE:
    WORD_TAGS[_colour] = _colour
WORD_TAGS.update(
    {
        "circles": "circle", "disc": "circle", "disk": "circle", "dot": "circle", "round": "circle",
        "squares": "square", "box": "square", "rectangle": "square",
        "triangles": "triangle", "rings": "ring", "donut": "ring", "doughnut": "ring",
        "crosses": "cross", "plus": "cross", "stripe": "stripes", "striped": "stripes",
        "diamonds": "diamond", "rhombus": "diamond",
        "gray": "grey", "violet": "purple", "magenta": "pink",
        "small": "small", "tiny": "small", "little": "small",
        "medium": "medium",
        "large": "large", "big": "large", "huge": "large",
        "left": "left", "right": "right", "top": "top", "upper": "top",
        "bottom": "bottom", "lower": "bottom",
        "center": "center", "centre": "center", "middle": "center", "centered": "center",
    }
)

COLOUR_WORDS = frozenset(w for w, tag in WORD_TAGS.items() if tag in PALETTE)

STOP_WORDS = ("a", "an", "the", "on", "in", "of", "with", "and", "at", "shape", "image", "picture")
PUNCTUATION = tuple(",.;:!?()[]{}|-'\"/")

KNOWN_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys([*STOP_WORDS, *PUNCTUATION, *WORD_TAGS, *BACKGROUND_WORDS])
)


def background_tag(colour_word: str) -> str:
    return f"{WORD_TAGS[colour_word]} background"
