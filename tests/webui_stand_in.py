"""Puts the stand-in ``modules`` (tests/fake_webui) on sys.path and resets its state."""
import sys
from pathlib import Path

import forge_stand_in
import host_kdiffusion
import stand_in_models

FAKE_WEBUI = Path(__file__).parent / "fake_webui"
REPO = Path(__file__).resolve().parent.parent


def install() -> None:
    host_kdiffusion.install()  # the stand-in host samples with k-diffusion, as the WebUI does
    if str(FAKE_WEBUI) not in sys.path:
        sys.path.insert(0, str(FAKE_WEBUI))


def reset() -> None:
    """A1111 v1.10.1 with a loaded SD1 model (its text side: ``stand_in_models``)."""
    from modules import extra_networks, images, processing, script_callbacks, shared

    import gradio

    shared.state.begin()
    shared.demo = gradio.App()
    shared.opts = shared.default_opts()
    processing.opts = shared.opts
    shared.total_tqdm.total = None
    shared.cmd_opts.prompt_pinning_max_images_per_call = 0
    shared.cmd_opts.prompt_pinning_no_samplers = False
    processing.before_batch_hooks.clear()
    processing.calls.clear()
    extra_networks.loras.clear()
    extra_networks.active.clear()
    images.saved.clear()
    script_callbacks.clear_callbacks()
    forge_stand_in.uninstall()
    shared.sd_model = stand_in_models.a1111_model()
    from modules import deepbooru

    deepbooru.model, deepbooru.offline = deepbooru.DeepDanbooru(), False
