"""The loaded model's own tokenizer, as prompt_pinning's Tokenizer protocol.

Every host's text encoder has a ``tokenize(texts) -> list[list[int]]`` method
(no start/end tokens). A1111 wraps each encoder in a "custom words" embedder:
SD1.x wraps Hugging Face's CLIPTokenizer (``.tokenizer``), SD2.x and SDXL's
second encoder use open_clip's module tokenizer. Forge's text processing
engines all hold a Hugging Face CLIPTokenizer. SDXL has two encoders; both use
the CLIP BPE vocabulary, and ``HostTokenizer`` checks that they agree on every
text it encodes. Where the encoders, embeddings and chunking options live is
the host's business (``hosts``).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from .hosts import A1111Host, ForgeHost, current_host


def text_encoders(sd_model: Any, host: Optional[A1111Host | ForgeHost] = None) -> list[Any]:
    """The tokenizing text encoders of a loaded model, first encoder first."""
    return (host or current_host()).text_encoders(sd_model)


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

    def __init__(self, encoders: Sequence[Any], host: Optional[A1111Host | ForgeHost] = None):
        if not encoders:
            raise ValueError("HostTokenizer needs at least one text encoder")
        self.encoders = list(encoders)
        self.host = host or current_host()
        self._token_strings = _id_to_token(self.encoders[0])

    @classmethod
    def from_model(cls, sd_model: Optional[Any] = None, *, load: bool = True,
                   host: Optional[A1111Host | ForgeHost] = None) -> "HostTokenizer":
        """The tokenizer of ``sd_model``, or of the host's model (loaded first unless ``load`` is false)."""
        host = host or current_host()
        if sd_model is None:
            sd_model = host.loaded_model(load=load)
        return cls(host.text_encoders(sd_model), host)

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
        """How far back the host's chunker moves a long prompt's text after a comma."""
        return self.host.comma_padding_backtrack()

    def embeddings(self) -> dict[str, int]:
        """Loaded textual-inversion embeddings: name -> number of vectors."""
        return self.host.embeddings(self.encoders)

    def embedding_names(self) -> list[str]:
        """Names of the loaded textual-inversion embeddings (kept whole as units)."""
        return sorted(self.embeddings())
