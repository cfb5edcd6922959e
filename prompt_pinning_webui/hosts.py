"""The WebUIs prompt pinning runs in, and the few ways they differ.

AUTOMATIC1111 v1.10.1 and Forge (lllyasviel/stable-diffusion-webui-forge, and
the SD1/SDXL fork Forge Classic) share the Script, ``process_images``, sampler
and API contracts. They differ only in the four things a host class answers:

- when the checkpoint is there: A1111 loads it at start (``shared.sd_model``
  loads it on first access); Forge starts with a placeholder model
  (``FakeInitialModel``) and loads the checkpoint inside ``process_images``
  with ``sd_models.forge_model_reload()``;
- where the tokenizers are: A1111 wraps each text encoder in an embedder with
  ``tokenize()`` (``cond_stage_model``, or SDXL's ``conditioner.embedders``);
  Forge sets ``cond_stage_model`` to None and keeps one text processing engine
  per CLIP (``text_processing_engine``, or ``_l`` and ``_g`` for SDXL);
- where textual-inversion embeddings are: A1111's
  ``sd_hijack.model_hijack.embedding_db``; Forge's engines' ``embeddings``;
- the comma backtrack of long prompts: A1111 reads the "Prompt word wrap
  length limit" setting; Forge's chunker always uses 20.

``current_host()`` picks the host from ``modules.sd_models``: Forge's has
``forge_model_reload``. ``modules`` is imported inside functions only.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from prompt_pinning.prompt.tokenizers import COMMA_PADDING_BACKTRACK

SUPPORTED_MODELS = "prompt pinning supports SD1.x, SD2.x and SDXL checkpoints"


class ModelNotLoaded(ValueError):
    """The host has not loaded its checkpoint yet (and was asked not to)."""


def _vector_counts(word_embeddings: Any) -> dict[str, int]:
    """name -> number of vectors, from an embedding database's ``word_embeddings``."""
    loaded = word_embeddings or {}
    return {name: int(getattr(emb, "vectors", 1) or 1) for name, emb in loaded.items()}


class A1111Host:
    """AUTOMATIC1111 Stable Diffusion WebUI v1.10.1."""

    name = "AUTOMATIC1111 WebUI"
    serves_working_dir = True  # Gradio 3.41's /file= also serves any file under the working directory

    def loaded_model(self, load: bool = True) -> Any:
        from modules import shared

        return shared.sd_model  # A1111 loads the checkpoint on first access

    def text_encoders(self, sd_model: Any) -> list[Any]:
        conditioner = getattr(sd_model, "conditioner", None)
        if conditioner is not None:
            found = [e for e in getattr(conditioner, "embedders", []) if hasattr(e, "tokenize")]
            if found:
                return found
        model = getattr(sd_model, "cond_stage_model", None)
        if model is not None and hasattr(model, "tokenize"):
            return [model]
        raise ValueError(f"the loaded model has no text encoder with a tokenize() method ({SUPPORTED_MODELS})")

    def embeddings(self, encoders: Sequence[Any]) -> dict[str, int]:
        try:
            from modules import sd_hijack
        except ImportError:
            return {}
        db = getattr(sd_hijack.model_hijack, "embedding_db", None)
        return _vector_counts(getattr(db, "word_embeddings", None))

    def comma_padding_backtrack(self) -> int:
        from modules import shared

        value = getattr(getattr(shared, "opts", None), "comma_padding_backtrack", None)
        return COMMA_PADDING_BACKTRACK if value is None else int(value)


# Forge's engines, first CLIP first: SD1/SD2 have one, SDXL has clip_l and clip_g.
FORGE_ENGINES = ("text_processing_engine", "text_processing_engine_l", "text_processing_engine_g")
FORGE_COMMA_PADDING_BACKTRACK = 20  # Forge's ClassicTextProcessingEngine ignores the setting


class ForgeHost:
    """Stable Diffusion WebUI Forge (f2.0.1v1.10.1) and Forge Classic."""

    name = "Forge"
    serves_working_dir = False  # Gradio 4.40's /file= serves only allowed paths (Forge adds its data folder)

    @staticmethod
    def is_loaded(sd_model: Any) -> bool:
        """A real checkpoint, not Forge's start-up placeholder (or None while it reloads)."""
        return sd_model is not None and getattr(sd_model, "forge_objects", None) is not None

    def loaded_model(self, load: bool = True) -> Any:
        from modules import sd_models, shared

        if load:  # what process_images does first: loads the selected checkpoint if it is not the current one
            model, _ = sd_models.forge_model_reload()
            return model
        model = shared.sd_model
        if not self.is_loaded(model):
            raise ModelNotLoaded("the checkpoint is not loaded yet (Forge loads it at the first generation)")
        return model

    def text_encoders(self, sd_model: Any) -> list[Any]:
        if getattr(sd_model, "text_processing_engine_t5", None) is not None:
            raise ValueError(f"the loaded model encodes prompts with T5 (Flux, SD3, Chroma); {SUPPORTED_MODELS}")
        found = [engine for engine in (getattr(sd_model, name, None) for name in FORGE_ENGINES)
                 if engine is not None and hasattr(engine, "tokenize")]
        if not found:
            raise ValueError(f"the loaded model has no CLIP text processing engine ({SUPPORTED_MODELS})")
        return found

    def embeddings(self, encoders: Sequence[Any]) -> dict[str, int]:
        db = getattr(encoders[0], "embeddings", None) if encoders else None
        return _vector_counts(getattr(db, "word_embeddings", None))

    def comma_padding_backtrack(self) -> int:
        return FORGE_COMMA_PADDING_BACKTRACK


def _lora_files() -> Optional[dict[str, Any]]:
    """Name or alias -> the file entry, from the host's Lora extension (its ``networks`` module, as
    loaded); None where the host has no such module."""
    import sys

    lora = sys.modules.get("networks")
    available = getattr(lora, "available_networks", None)
    if not isinstance(available, dict):
        return None
    return {**available, **(getattr(lora, "available_network_aliases", None) or {})}


def host_networks() -> dict[str, list[str]]:
    """The host's extra networks by kind, for the name check of network units: LoRAs (names and
    aliases) from the Lora extension's ``networks`` module, as loaded, and hypernetworks from
    ``shared.hypernetworks``. A kind the host does not expose is left out (not checked)."""
    found: dict[str, list[str]] = {}
    files = _lora_files()
    if files is not None:
        found["lora"] = sorted(files)
    try:
        from modules import shared
    except ImportError:
        return found
    hypernetworks = getattr(shared, "hypernetworks", None)
    if isinstance(hypernetworks, dict):
        found["hypernet"] = sorted(hypernetworks)
    return found


def host_lora_hashes(prompt: str) -> dict[str, str]:
    """The "Lora hashes" entry the host's Lora extension writes for ``prompt`` (empty when none): each
    LoRA tag's name as written, less ":" and ",", with the short hash of the file it names, for the
    files the extension lists with a hash (it reads one as it activates them). For an infotext the
    host did not write (an image of an earlier session of a resumed run)."""
    from prompt_pinning.prompt.attention import EXTRA_NETWORK_TAG
    from prompt_pinning.prompt.networks import LORA_KINDS

    files = _lora_files() or {}
    try:
        from modules import shared

        if not getattr(shared.opts, "lora_add_hashes_to_infotext", True):
            return {}
    except ImportError:
        pass
    hashes = {}
    for kind, args in EXTRA_NETWORK_TAG.findall(prompt):
        name = args.split(":")[0]
        entry = files.get(name) if kind in LORA_KINDS else None
        if entry is not None and not getattr(entry, "shorthash", None) and callable(getattr(entry, "read_hash", None)):
            entry.read_hash()
        if getattr(entry, "shorthash", None):
            hashes[name.translate(str.maketrans("", "", ":,"))] = entry.shorthash
    return {"Lora hashes": ", ".join(f"{k}: {v}" for k, v in hashes.items())} if hashes else {}


def current_host() -> A1111Host | ForgeHost:
    """The running WebUI's host; A1111 when there is no ``modules`` (tests, scripts)."""
    try:
        from modules import sd_models
    except ImportError:
        return A1111Host()
    return ForgeHost() if callable(getattr(sd_models, "forge_model_reload", None)) else A1111Host()
