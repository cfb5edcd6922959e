"""Turns the stand-in WebUI (tests/fake_webui, A1111 v1.10.1) into Forge's surface.

What differs in Forge (lllyasviel/stable-diffusion-webui-forge, f2.0.1v1.10.1, and Forge
Classic), as read from its source, and what this stand-in reproduces:

- the checkpoint is loaded lazily: ``sd_models.model_data.sd_model`` starts as a
  ``FakeInitialModel`` (``cond_stage_model`` None, ``chunk_length`` 75), and
  ``sd_models.forge_model_reload()`` loads the selected checkpoint when the loading
  parameters changed since the last load, returning ``(model, reloaded)``;
  ``process_images`` calls it first, so a Script runs before the first load;
- a loaded model has ``cond_stage_model`` None and text processing engines
  (``text_processing_engine``, SDXL ``text_processing_engine_l``/``_g``) that tokenize;
- ``sd_hijack.model_hijack`` has no ``embedding_db``: embeddings live in each engine's
  ``embeddings.word_embeddings``;
- the long-prompt chunker uses a comma backtrack of 20 whatever the user's
  "Prompt word wrap length limit" says (the chunker itself is the host's; tests check what
  the adapter reports).

``install(kind)`` applies this on top of ``webui_stand_in.reset()``; the next reset undoes it.
"""
import stand_in_models

CHECKPOINT = "random-sd15.safetensors"


class FakeInitialModel:
    """Forge's placeholder before the first load."""

    def __init__(self):
        self.cond_stage_model = None
        self.chunk_length = 75


class ForgeModelHijack:
    """Forge's sd_hijack.model_hijack: the A1111 methods are no-ops, there is no embedding_db."""

    def clear_comments(self):
        pass


def install(kind: str = "sd1") -> None:
    from modules import sd_hijack, sd_models

    data = sd_models.model_data
    data.sd_model = FakeInitialModel()
    data.forge_loading_parameters = {"checkpoint_info": CHECKPOINT, "kind": kind}
    data.forge_hash = ""
    data.loads = 0  # tests: how many times the checkpoint was loaded

    def forge_model_reload():
        current = str(data.forge_loading_parameters)
        if data.forge_hash == current:
            return data.sd_model, False
        data.sd_model = None  # Forge drops the old model before loading the new one
        data.sd_model = stand_in_models.forge_model(data.forge_loading_parameters["kind"])
        data.forge_hash = current
        data.loads += 1
        return data.sd_model, True

    sd_models.FakeInitialModel = FakeInitialModel
    sd_models.forge_model_reload = forge_model_reload
    sd_hijack.model_hijack = ForgeModelHijack()


def uninstall() -> None:
    """Back to A1111's surface (``webui_stand_in.reset`` calls this)."""
    from modules import sd_hijack, sd_models

    for name in ("FakeInitialModel", "forge_model_reload"):
        if hasattr(sd_models, name):
            delattr(sd_models, name)
    sd_hijack.model_hijack = sd_hijack.StableDiffusionModelHijack()
