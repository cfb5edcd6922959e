"""Loaded-model stand-ins for the WebUI stand-ins: the text side only, laid out as each host lays it out.

Both hosts' models tokenize with one word vocabulary (a word or punctuation mark is one
token, ids given in order of first sight and shared by every encoder of a process), so the
two SDXL encoders agree as the CLIP BPE ones do.

- A1111 v1.10.1: ``cond_stage_model`` is an embedder with ``tokenize(texts)`` and a Hugging
  Face-like ``.tokenizer``; SDXL has ``conditioner.embedders`` (the second one without an HF
  tokenizer, as open_clip's); embeddings live in ``modules.sd_hijack``.
- Forge: ``cond_stage_model`` is None; each CLIP has a text processing engine
  (``text_processing_engine``, SDXL ``_l`` and ``_g``) with ``tokenize(texts)``, an HF
  ``.tokenizer`` and its own ``embeddings`` database; ``forge_objects`` marks a loaded model.
"""
import re
from types import SimpleNamespace

VOCAB: dict[str, int] = {}


def word_ids(text: str) -> list[int]:
    return [VOCAB.setdefault(piece, len(VOCAB) + 1) for piece in re.findall(r"\w+|[^\w\s]", text.lower())]


class WordTokenizer:
    """The Hugging Face CLIPTokenizer surface the hosts use: __call__ and convert_ids_to_tokens."""

    def __call__(self, texts, truncation=False, add_special_tokens=False):
        assert add_special_tokens is False  # both hosts ask for content ids only
        return {"input_ids": [word_ids(t) for t in texts]}

    def convert_ids_to_tokens(self, ids):
        inverse = {v: k for k, v in VOCAB.items()}
        return [inverse[int(i)] + "</w>" for i in ids]


class A1111Embedder:
    def __init__(self, hf_tokenizer=True):
        if hf_tokenizer:
            self.tokenizer = WordTokenizer()

    def tokenize(self, texts):
        return [word_ids(t) for t in texts]


def a1111_model(kind="sd1"):
    if kind == "sdxl":
        return SimpleNamespace(conditioner=SimpleNamespace(embedders=[A1111Embedder(), A1111Embedder(False)]))
    return SimpleNamespace(cond_stage_model=A1111Embedder())


class Embedding:
    def __init__(self, name, vectors):
        self.name, self.vectors = name, vectors


class ForgeEngine:
    """Forge's ClassicTextProcessingEngine surface: tokenize, tokenizer, embeddings.word_embeddings."""

    def __init__(self):
        self.tokenizer = WordTokenizer()
        self.embeddings = SimpleNamespace(word_embeddings={})

    def tokenize(self, texts):
        return self.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]


def forge_model(kind="sd1"):
    model = SimpleNamespace(cond_stage_model=None, forge_objects=SimpleNamespace(), is_sd1=kind == "sd1",
                            is_sdxl=kind == "sdxl")
    if kind == "sdxl":
        model.text_processing_engine_l, model.text_processing_engine_g = ForgeEngine(), ForgeEngine()
    elif kind == "flux":
        model.text_processing_engine_l, model.text_processing_engine_t5 = ForgeEngine(), object()
    else:
        model.text_processing_engine = ForgeEngine()
    return model
