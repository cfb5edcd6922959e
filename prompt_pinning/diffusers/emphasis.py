"""A1111's prompt weighting on text-encoder outputs ("Original" emphasis).

A prompt is parsed with the project's A1111-syntax parser and packed into
75-token chunks as the WebUI packs them (``host_encoding``: BREAK, comma
backtrack, extra-network tags removed). Each chunk is encoded on its own as
77 tokens (start, content, end padding); then every token's output vector is
multiplied by its weight and the chunk is rescaled so that its mean over all
tokens and channels is the one before weighting.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..prompt.tokenizers import CHUNK_LENGTH, COMMA_PADDING_BACKTRACK, host_encoding
from ..rendering import Tokenizer

TOKENS_PER_CHUNK = CHUNK_LENGTH + 2  # with the start and end tokens


def original_emphasis(z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """z (..., 77, C) times each token's weight (..., 77), rescaled to z's mean (over all of z)."""
    mean_before = z.mean()
    weighted = z * weights[..., None].to(z.dtype)
    return weighted * (mean_before / weighted.mean())


def prompt_chunks(prompt: str, tokenizer: Tokenizer, start_id: int, end_id: int, pad_id: Optional[int] = None,
                  comma_padding_backtrack: int = COMMA_PADDING_BACKTRACK) -> tuple[torch.Tensor, torch.Tensor]:
    """(chunks, 77) token ids and weights of ``prompt``, chunked as the WebUI chunks it.

    ``pad_id`` (where it differs from the end token, as in SDXL's second
    encoder) replaces the tokens after the first end token.
    """
    ids, weights = [], []
    for chunk in host_encoding(prompt, tokenizer, comma_padding_backtrack=comma_padding_backtrack):
        if chunk.embeddings:  # never here: no embeddings are passed to host_encoding
            raise ValueError("textual-inversion embeddings are not supported by the diffusers renderer")
        chunk_ids, chunk_weights = chunk.padded(start_id, end_id)
        if pad_id is not None and pad_id != end_id:
            first_end = 1 + len(chunk.tokens)
            chunk_ids = chunk_ids[:first_end + 1] + [pad_id] * (len(chunk_ids) - first_end - 1)
        ids.append(chunk_ids)
        weights.append(chunk_weights)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(weights, dtype=torch.float32)


def empty_chunk(start_id: int, end_id: int, pad_id: Optional[int] = None) -> list[int]:
    """The ids of an empty chunk (A1111 pads shorter prompts of a batch with it)."""
    pad = end_id if pad_id is None else pad_id
    return [start_id, end_id] + [pad] * (TOKENS_PER_CHUNK - 2)


def pad_chunks(ids: torch.Tensor, weights: torch.Tensor, count: int, empty: Sequence[int]):
    """Append empty chunks (weight 1) until there are ``count``."""
    missing = count - len(ids)
    if missing <= 0:
        return ids, weights
    extra = torch.tensor([list(empty)] * missing, dtype=torch.long)
    return torch.cat([ids, extra]), torch.cat([weights, torch.ones(missing, TOKENS_PER_CHUNK)])
