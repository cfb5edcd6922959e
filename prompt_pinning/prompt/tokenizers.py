"""The CLIP BPE tokenizer, and what a host A1111 sees for a prompt.

The CLIP vocabulary (``bpe_simple_vocab_16e6.txt.gz``) ships inside the PyPI
package open-clip-torch; it is found on disk without importing that package.
"""
from __future__ import annotations

import gzip
import html
import importlib.util
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from .attention import parse_pieces, strip_extra_networks
from ..rendering import Tokenizer

log = logging.getLogger(__name__)

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGE_COUNT = 49152 - 256 - 2  # merges the CLIP vocabulary uses
CHUNK_LENGTH = 75  # content tokens per CLIP chunk (77 with start and end)
COMMA_PADDING_BACKTRACK = 20  # A1111 default of "Prompt word wrap length limit"; a host tokenizer may say otherwise
_FLAVORS = ("hf", "open_clip")


def find_clip_vocab() -> Path:
    """Path of the CLIP BPE vocabulary inside the installed open-clip-torch."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / VOCAB_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"CLIP vocabulary {VOCAB_FILE} not found: install open-clip-torch "
        "(pip install --no-deps open-clip-torch), or give the file (--webui-vocab FILE on the command "
        "line, vocab_path in Python)"
    )


@lru_cache(maxsize=1)
def byte_symbols() -> dict[int, str]:
    """Each byte to a printable character, as CLIP's BPE spells bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return symbols  # printable bytes first: this order numbers the vocabulary


def _fix_text(text: str) -> str:
    try:
        import ftfy
    except ImportError:  # pragma: no cover - ftfy ships with open-clip-torch
        log.warning("ftfy is not installed; CLIP text is not repaired before tokenizing")
        return text
    return ftfy.fix_text(text)


class ClipBpeTokenizer:
    """CLIP's byte-level BPE: lower-cased words, ``</w>`` marking word ends.

    ``flavor="hf"`` cleans text like the Hugging Face CLIPTokenizer (SD1.x and
    SDXL's first encoder in A1111); ``"open_clip"`` also unescapes HTML
    entities, as open_clip does (SD2.x and SDXL's second encoder).
    ``encode`` returns content ids without the start and end tokens.
    """

    def __init__(self, vocab_path: Optional[Path] = None, flavor: str = "hf"):
        import regex

        if flavor not in _FLAVORS:
            raise ValueError(f"flavor must be one of {_FLAVORS}, got {flavor!r}")
        self.flavor = flavor
        lines = gzip.open(vocab_path or find_clip_vocab()).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1:MERGE_COUNT + 1]]
        symbols = list(byte_symbols().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        specials = ["<|startoftext|>", "<|endoftext|>"] if flavor == "hf" else ["<start_of_text>", "<end_of_text>"]
        vocab += specials
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.strings = vocab
        self.merge_rank = {pair: rank for rank, pair in enumerate(merges)}
        self.start_id, self.end_id = self.ids[specials[0]], self.ids[specials[1]]
        self.comma_id = self.ids[",</w>"]
        self._specials = set(specials)
        self._word_pattern = regex.compile(
            "|".join(regex.escape(s) for s in specials)
            + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )
        self._bpe_cache: dict[str, tuple[str, ...]] = {}

    def clean(self, text: str) -> str:
        text = _fix_text(text)
        if self.flavor == "open_clip":
            text = html.unescape(html.unescape(text))
        return " ".join(text.split()).lower()

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        to_symbol = byte_symbols()
        for word in self._word_pattern.findall(self.clean(text)):
            if word in self._specials:
                ids.append(self.ids[word])
                continue
            spelled = "".join(to_symbol[b] for b in word.encode("utf-8"))
            ids.extend(self.ids[piece] for piece in self._bpe(spelled))
        return ids

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        return [self.strings[i] for i in ids]

    def _bpe(self, word: str) -> tuple[str, ...]:
        """Merge the word's symbols, lowest-ranked pair first, until none applies."""
        cached = self._bpe_cache.get(word)
        if cached is not None:
            return cached
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            ranked = [(self.merge_rank.get(pair, MERGE_COUNT), pair) for pair in zip(parts, parts[1:])]
            rank, best = min(ranked)
            if rank == MERGE_COUNT:
                break
            parts = _merge_pair(parts, best)
        result = tuple(parts)
        self._bpe_cache[word] = result
        return result


def _merge_pair(parts: list[str], pair: tuple[str, str]) -> list[str]:
    merged = []
    i = 0
    while i < len(parts):
        if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
            merged.append(parts[i] + parts[i + 1])
            i += 2
        else:
            merged.append(parts[i])
            i += 1
    return merged


@dataclass(frozen=True)
class HostChunk:
    """One 75-token chunk as the host fills it (start, end and padding left out).

    Weights are float32: the host turns multipliers into a float32 tensor.
    ``embeddings`` holds (offset, name) of each textual-inversion embedding;
    its vectors occupy token id 0 at those offsets.
    """

    tokens: tuple[int, ...]
    weights: tuple[float, ...]
    embeddings: tuple[tuple[int, str], ...] = ()

    def padded(self, start_id: int, end_id: int, length: int = CHUNK_LENGTH) -> tuple[list[int], list[float]]:
        """The full chunk: start token, content, end-token padding, end token."""
        pad = length - len(self.tokens)
        return [start_id, *self.tokens, *[end_id] * (pad + 1)], [1.0, *self.weights, *[1.0] * (pad + 1)]


class _EmbeddingIndex:
    """Textual-inversion embeddings found by their token ids, longest first."""

    def __init__(self, embeddings: Mapping[str, int], tokenizer: Tokenizer):
        self.by_first: dict[int, list[tuple[tuple[int, ...], str, int]]] = {}
        for name, vectors in embeddings.items():
            ids = tuple(tokenizer.encode(name))
            if ids:
                self.by_first.setdefault(ids[0], []).append((ids, name, int(vectors)))
        for matches in self.by_first.values():
            matches.sort(key=lambda m: len(m[0]), reverse=True)

    def at(self, tokens: Sequence[int], position: int) -> Optional[tuple[str, int, int]]:
        """(name, vector count, token length) of the embedding starting here."""
        for ids, name, vectors in self.by_first.get(tokens[position], ()):
            if tuple(tokens[position:position + len(ids)]) == ids:
                return name, vectors, len(ids)
        return None


class _ChunkBuilder:
    def __init__(self, chunk_length: int):
        self.chunk_length = chunk_length
        self.chunks: list[HostChunk] = []
        self.tokens: list[int] = []
        self.weights: list[float] = []
        self.embeddings: list[tuple[int, str]] = []
        self.last_comma = -1

    def close(self) -> None:
        self.chunks.append(HostChunk(tuple(self.tokens), tuple(self.weights), tuple(self.embeddings)))
        self.tokens, self.weights, self.embeddings = [], [], []
        self.last_comma = -1

    def full(self) -> bool:
        return len(self.tokens) == self.chunk_length

    def move_tail_after_comma(self) -> None:
        """Close the chunk at its last comma; what followed starts the next one."""
        cut = self.last_comma + 1
        tail_tokens, tail_weights = self.tokens[cut:], self.weights[cut:]
        self.tokens, self.weights = self.tokens[:cut], self.weights[:cut]
        self.close()
        self.tokens, self.weights = tail_tokens, tail_weights


def host_encoding(
    prompt: str,
    tokenizer: Tokenizer,
    *,
    embeddings: Optional[Mapping[str, int]] = None,
    comma_id: Optional[int] = None,
    comma_padding_backtrack: int = COMMA_PADDING_BACKTRACK,
    chunk_length: int = CHUNK_LENGTH,
) -> list[HostChunk]:
    """The chunks of (token ids, weights) that A1111 builds for one prompt.

    Extra-network tags are removed, the attention syntax parsed, each weighted
    piece tokenized on its own, and tokens packed into chunks: BREAK closes a
    chunk; a full chunk whose last comma is at most ``comma_padding_backtrack``
    tokens back moves the text after that comma into the next chunk.
    ``embeddings`` maps textual-inversion names to their vector counts.
    """
    if comma_id is None:
        comma_id = _single_id(tokenizer, ",")
    index = _EmbeddingIndex(embeddings or {}, tokenizer)
    text, _, _ = strip_extra_networks(prompt)
    builder = _ChunkBuilder(chunk_length)
    for piece in parse_pieces(text):
        if piece.is_break:
            builder.close()
            continue
        _add_piece(builder, tokenizer.encode(piece.text), float(np.float32(piece.weight)), index,
                   comma_id, comma_padding_backtrack)
    if builder.tokens or not builder.chunks:
        builder.close()
    return builder.chunks


def _add_piece(builder: _ChunkBuilder, tokens: list[int], weight: float, index: _EmbeddingIndex,
               comma_id: Optional[int], backtrack: int) -> None:
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token == comma_id:
            builder.last_comma = len(builder.tokens)
        elif (backtrack and builder.full() and builder.last_comma != -1
              and len(builder.tokens) - builder.last_comma <= backtrack):
            builder.move_tail_after_comma()
        if builder.full():
            builder.close()
        found = index.at(tokens, position)
        if found is None:
            builder.tokens.append(token)
            builder.weights.append(weight)
            position += 1
            continue
        name, vectors, length = found
        if len(builder.tokens) + vectors > builder.chunk_length:
            builder.close()
        builder.embeddings.append((len(builder.tokens), name))
        builder.tokens.extend([0] * vectors)
        builder.weights.extend([weight] * vectors)
        position += length


def _single_id(tokenizer: Tokenizer, text: str) -> Optional[int]:
    ids = tokenizer.encode(text)
    return ids[0] if len(ids) == 1 else None
