"""The loaded model's own tokenizer, as prompt_pinning's Tokenizer protocol.

A1111 wraps each text encoder in a "custom words" embedder with a
``tokenize(texts) -> list[list[int]]`` method (no start/end tokens):
SD1.x wraps Hugging Face's CLIPTokenizer (``.tokenizer``), SD2.x and SDXL's
second encoder use open_clip's module tokenizer. SDXL has two embedders in
``sd_model.conditioner.embedders``; both use the CLIP BPE vocabulary, and
``HostTokenizer`` checks that they agree on every text it encodes.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from prompt_pinning.prompt.tokenizers import COMMA_PADDING_BACKTRACK


def text_encoders(sd_model: Any) -> list[Any]:
    """The tokenizing embedders of a loaded A1111 model, first encoder first."""
    conditioner = getattr(sd_model, "conditioner", None)
    if conditioner is not None:
        found = [e for e in getattr(conditioner, "embedders", []) if hasattr(e, "tokenize")]
        if found:
            return found
    model = getattr(sd_model, "cond_stage_model", None)
    if model is not None and hasattr(model, "tokenize"):
        return [model]
    raise ValueError("the loaded model has no text encoder with a tokenize() method "
                     "(prompt pinning supports SD1.x, SD2.x and SDXL checkpoints)")


def _open_clip_decoder() -> dict:
    from modules import sd_hijack_open_clip  # the module-level open_clip tokenizer

    return sd_hijack_open_clip.tokenizer.decoder


def _id_to_token(encoder: Any):
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "convert_ids_to_tokens"):
        return lambda ids: list(tokenizer.convert_ids_to_tokens(list(ids)))
    decoder = getattr(getattr(encoder, "wrapped", None), "decoder", None) or _open_clip_decoder()
    return lambda ids: [decoder[int(i)] for i in ids]


class HostTokenizer:
    """Text -> token ids and token strings, as the host model's encoders see them."""

    def __init__(self, encoders: Sequence[Any]):
        if not encoders:
            raise ValueError("HostTokenizer needs at least one text encoder")
        self.encoders = list(encoders)
        self._token_strings = _id_to_token(self.encoders[0])

    @classmethod
    def from_model(cls, sd_model: Optional[Any] = None) -> "HostTokenizer":
        if sd_model is None:
            from modules import shared

            sd_model = shared.sd_model
        return cls(text_encoders(sd_model))

    def encode(self, text: str) -> list[int]:
        ids = [int(i) for i in self.encoders[0].tokenize([text])[0]]
        for index, other in enumerate(self.encoders[1:], start=1):
            other_ids = [int(i) for i in other.tokenize([text])[0]]
            if other_ids != ids:
                raise ValueError(
                    f"text encoders 0 and {index} split {text!r} differently "
                    f"({len(ids)} vs {len(other_ids)} tokens); prompt pinning needs one split"
                )
        return ids

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        return self._token_strings(ids)

    @property
    def comma_padding_backtrack(self) -> int:
        """The user's "Prompt word wrap length limit" (A1111's ``comma_padding_backtrack`` option)."""
        from modules import shared

        value = getattr(getattr(shared, "opts", None), "comma_padding_backtrack", None)
        return COMMA_PADDING_BACKTRACK if value is None else int(value)

    def embeddings(self) -> dict[str, int]:
        """Loaded textual-inversion embeddings: name -> number of vectors."""
        try:
            from modules import sd_hijack
        except ImportError:
            return {}
        db = getattr(sd_hijack.model_hijack, "embedding_db", None)
        loaded = getattr(db, "word_embeddings", {}) or {}
        return {name: int(getattr(emb, "vectors", 1) or 1) for name, emb in loaded.items()}

    def embedding_names(self) -> list[str]:
        """Names of the loaded textual-inversion embeddings (kept whole as units)."""
        try:
            from modules import sd_hijack
        except ImportError:
            return []
        db = getattr(sd_hijack.model_hijack, "embedding_db", None)
        return sorted(getattr(db, "word_embeddings", {}) or {})
