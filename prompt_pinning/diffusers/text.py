"""Prompt text to UNet conditioning: one or two CLIP text encoders with A1111's emphasis.

SD1.x: one encoder, its last hidden state (after the final layer norm), or the
hidden state ``clip_skip`` layers from the end put through the final layer norm.
SDXL (as A1111 conditions it): the first encoder's penultimate hidden state and
the second's, concatenated along channels; the pooled embedding is the second
encoder's projected output of the prompt's first chunk. Emphasis applies to each
encoder's chunk on its own; the pooled embedding is never weighted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .emphasis import empty_chunk, original_emphasis, pad_chunks, prompt_chunks


class HFTokenizer:
    """A Hugging Face CLIPTokenizer as the project's Tokenizer (content ids, no start/end)."""

    def __init__(self, tokenizer):
        self.hf = tokenizer
        self.start_id, self.end_id = int(tokenizer.bos_token_id), int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else self.end_id

    def encode(self, text: str) -> list[int]:
        return list(self.hf(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])  # long is fine

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        return list(self.hf.convert_ids_to_tokens(list(ids)))


@dataclass
class Encoded:
    """One prompt's conditioning: (chunks * 77, C) context and the pooled vector (SDXL) or None."""

    context: torch.Tensor
    pooled: Optional[torch.Tensor] = None


class TextEncoder:
    """One CLIP text encoder with its tokenizer (an HFTokenizer, or any project Tokenizer with
    ``start_id`` and ``end_id``, and ``pad_id`` where padding differs from the end token). ``layer``: "last" (after the final norm), "penultimate" (SDXL,
    no final norm) or a negative index ``-k`` (clip skip k: hidden state -k, then the final norm)."""

    def __init__(self, model, tokenizer, layer="last", pooled: bool = False):
        if layer not in ("last", "penultimate") and not (isinstance(layer, int) and layer < 0):
            raise ValueError(f"layer must be 'last', 'penultimate' or a negative index, got {layer!r}")
        self.model, self.tokenizer, self.layer, self.pooled = model, tokenizer, layer, pooled

    def chunks(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.tokenizer
        return prompt_chunks(prompt, t, t.start_id, t.end_id, getattr(t, "pad_id", None))

    def empty(self) -> list[int]:
        t = self.tokenizer
        return empty_chunk(t.start_id, t.end_id, getattr(t, "pad_id", None))

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, weights: torch.Tensor):
        """(N, 77, C) weighted outputs of N chunks (each weighted on its own), and (C',) pooled of chunk 0."""
        device = next(self.model.parameters()).device
        hidden = self.layer != "last"
        out = self.model(input_ids=ids.to(device), output_hidden_states=hidden)
        if self.layer == "last":
            z = out.last_hidden_state
        elif self.layer == "penultimate":
            z = out.hidden_states[-2]
        else:
            inner = getattr(self.model, "text_model", self.model)
            z = inner.final_layer_norm(out.hidden_states[self.layer])
        z = z.float()
        weighted = torch.stack([original_emphasis(chunk, w.to(device)) for chunk, w in zip(z, weights)])
        pooled = out.text_embeds[0].float() if self.pooled else None
        return weighted, pooled


class PromptEncoder:
    """All of a model's text encoders: a prompt to its ``Encoded`` conditioning."""

    def __init__(self, encoders: Sequence[TextEncoder]):
        if not encoders:
            raise ValueError("a PromptEncoder needs at least one text encoder")
        self.encoders = list(encoders)

    @property
    def tokenizer(self) -> HFTokenizer:
        return self.encoders[0].tokenizer

    def chunk_count(self, prompt: str) -> int:
        return max(len(e.chunks(prompt)[0]) for e in self.encoders)

    def encode(self, prompt: str, chunks: int = 0) -> Encoded:
        """``prompt`` with at least ``chunks`` chunks (empty chunks appended, as A1111 pads)."""
        count = max(chunks, self.chunk_count(prompt))
        contexts, pooled = [], None
        for encoder in self.encoders:
            ids, weights = pad_chunks(*encoder.chunks(prompt), count, encoder.empty())
            z, p = encoder(ids, weights)
            contexts.append(z.reshape(-1, z.shape[-1]))
            pooled = p if p is not None else pooled
        return Encoded(torch.cat(contexts, dim=-1), pooled)
