"""modules.shared: opts, state, cmd_opts, total_tqdm, sd_model (stand-ins).

``sd_model`` is a property of the module, as both hosts make it: it reads and sets
``sd_models.model_data``.
"""
import sys
import types
from types import SimpleNamespace

from modules.shared_state import State


class TotalTQDM:
    """shared.total_tqdm: updateTotal(n) sets the console bar's total."""

    def __init__(self):
        self.total = None
        self.updates = 0

    def updateTotal(self, new_total):
        self.total = new_total

    def update(self):
        self.updates += 1

    def clear(self):
        pass


def default_opts():
    return SimpleNamespace(samples_save=True, samples_format="png", return_grid=True, grid_save=True,
                           hide_samplers=[], enable_pnginfo=True, outdir_samples="",
                           outdir_txt2img_samples="outputs/txt2img-images",
                           outdir_img2img_samples="outputs/img2img-images", s_noise=1.0,
                           no_dpmpp_sde_batch_determinism=False, comma_padding_backtrack=20)


opts = default_opts()
state = State()
total_tqdm = TotalTQDM()
cmd_opts = SimpleNamespace(prompt_pinning_max_images_per_call=0, prompt_pinning_no_samplers=False)
demo = None  # the Gradio app (gradio.App) once the UI is up; None with --nowebui


class _Shared(types.ModuleType):
    @property
    def sd_model(self):
        from modules import sd_models

        return sd_models.model_data.get_sd_model()

    @sd_model.setter
    def sd_model(self, value):
        from modules import sd_models

        sd_models.model_data.set_sd_model(value)


sys.modules[__name__].__class__ = _Shared
