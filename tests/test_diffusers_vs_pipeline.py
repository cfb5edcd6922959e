"""The renderer drives the UNet as diffusers' own pipelines do: with the same sigmas, prompt
embeddings and starting noise, the project's Euler sampler gives the pipelines' images."""
import pytest
import torch

import hyperbatch
from prompt_pinning.builtin.seeds import batch_noise
from prompt_pinning.diffusers import load_diffusers_renderer
from prompt_pinning.rendering import GenerationSettings

SETTINGS = GenerationSettings(seed=3, batch_size=2, steps=6, width=64, height=64, sampler="Euler",
                              scheduler="karras", cfg_scale=4.0)


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_euler_equals_the_diffusers_pipeline(tiny_diffusers, kind):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        renderer = load_diffusers_renderer(tiny_diffusers[kind], device="cpu")
        pair = ("a (red:1.3) fox, in the snow", "blurry")
        ours = renderer.render([pair], SETTINGS)[0].images
        (cond,), (uncond,) = renderer.encode_pairs([pair])
        sigmas = renderer.sigmas(SETTINGS, hyperbatch.get_sampler("Euler"))[:-1].tolist()
        pipeline_class = StableDiffusionXLPipeline if kind == "sdxl" else StableDiffusionPipeline
        pipeline = pipeline_class.from_pretrained(tiny_diffusers[kind], local_files_only=True)
        pipeline.scheduler = EulerDiscreteScheduler.from_config(pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        pipeline.scheduler.set_timesteps(sigmas=sigmas)
        unit = batch_noise(SETTINGS.seeds(), (4, 8, 8))
        embeds = {"prompt_embeds": cond.context[None].expand(2, -1, -1),
                  "negative_prompt_embeds": uncond.context[None].expand(2, -1, -1)}
        if kind == "sdxl":
            embeds.update(pooled_prompt_embeds=cond.pooled[None].expand(2, -1),
                          negative_pooled_prompt_embeds=uncond.pooled[None].expand(2, -1))
        theirs = pipeline(**embeds, latents=unit * sigmas[0] / pipeline.scheduler.init_noise_sigma, sigmas=sigmas,
                          guidance_scale=SETTINGS.cfg_scale, output_type="pt", height=64, width=64).images
    finally:
        torch.set_num_threads(threads)
    assert theirs.shape == ours.shape
    assert float((theirs - ours).abs().max()) < 3e-3
    assert float((theirs - ours).abs().mean()) < 5e-4
