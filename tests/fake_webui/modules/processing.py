"""modules/processing.py stand-in: p objects, fix_seed, Processed, process_images.

Mirrored from v1.10.1: ``get_fixed_seed``/``fix_seed``; ``setup_prompts`` (a list
prompt gives per-image prompts); ``all_seeds`` = the seed list as given, or seed + i
(seed for every image when subseed_strength != 0); ``state.job_count`` set only when
-1; per batch: skipped cleared, interrupted breaks; ``state.nextjob()``; a grid first
(``index_of_first_image`` 1) unless ``do_not_save_grid``; ``save_samples()``; img2img's
init-image rules; under the Forge stand-in, ``forge_model_reload()`` first. Generation
itself is a toy latent model run through the selected sampler
(``sd_samplers.create_sampler``), decoded to PIL images of the asked size. Extra-network
tags are cut out of each batch's prompts and its first prompt's LoRAs activated
(``modules/extra_networks.py``); infotexts carry the prompts as given and the
batch's ``extra_generation_params``.
"""
import hashlib
import json
import random

import numpy as np
import torch
from PIL import Image

from modules import images as host_images
from modules import extra_networks, prompt_parser, sd_models, sd_samplers, shared
from modules.shared import opts, state

before_batch_hooks = []  # tests: callables(p, n) run at the start of each batch
calls = []  # tests: (prompts, seeds, batch_size) of every process_images call


class StableDiffusionProcessing:
    def __init__(self, prompt="", negative_prompt="", seed=-1, subseed=-1, subseed_strength=0,
                 sampler_name="DPM++ 2M", scheduler=None, batch_size=1, n_iter=1, steps=50,
                 cfg_scale=7.0, width=512, height=512, styles=None, outpath_samples=None,
                 outpath_grids=None, do_not_save_samples=False, do_not_save_grid=False,
                 denoising_strength=None, override_settings=None, eta=None, s_noise=None, **extra):
        self.prompt, self.negative_prompt = prompt, negative_prompt
        self.seed, self.subseed, self.subseed_strength = seed, subseed, subseed_strength
        self.sampler_name, self.scheduler = sampler_name, scheduler
        self.batch_size, self.n_iter, self.steps, self.cfg_scale = batch_size, n_iter, steps, cfg_scale
        self.width, self.height = width, height
        self.styles = styles or []
        self.outpath_samples, self.outpath_grids = outpath_samples, outpath_grids
        self.do_not_save_samples, self.do_not_save_grid = do_not_save_samples, do_not_save_grid
        self.denoising_strength = denoising_strength
        self.override_settings = override_settings or {}
        self.extra_generation_params = {}
        self.comments = {}
        self.eta = eta
        self.s_noise = s_noise if s_noise is not None else getattr(opts, "s_noise", 1.0)
        self.scripts = None
        self.script_args = None
        self.is_api = False
        self.all_prompts = self.all_negative_prompts = self.all_seeds = self.all_subseeds = None
        self.iteration = 0
        for key, value in extra.items():
            setattr(self, key, value)

    def comment(self, text):
        self.comments[text] = 1

    def setup_prompts(self):
        if isinstance(self.prompt, list):
            self.all_prompts = self.prompt
        elif isinstance(self.negative_prompt, list):
            self.all_prompts = [self.prompt] * len(self.negative_prompt)
        else:
            self.all_prompts = self.batch_size * self.n_iter * [self.prompt]
        if isinstance(self.negative_prompt, list):
            self.all_negative_prompts = self.negative_prompt
        else:
            self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)
        if len(self.all_prompts) != len(self.all_negative_prompts):
            raise RuntimeError(f"Received a different number of prompts ({len(self.all_prompts)}) "
                               f"and negative prompts ({len(self.all_negative_prompts)})")

    def setup_conds(self):
        """Prompt parsing and text encoding of the current batch (per batch, as the host does)."""
        self.c, self.uc = _conds(self.prompts, self.negative_prompts, self.steps)

    def parse_extra_network_prompts(self):
        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)

    def save_samples(self):
        return opts.samples_save and not self.do_not_save_samples and not state.interrupted and not state.skipped

    def close(self):
        self.sampler = None


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    pass


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    def __init__(self, init_images=None, denoising_strength=0.75, **kwargs):
        super().__init__(denoising_strength=denoising_strength, **kwargs)
        self.init_images = init_images
        self.mask = None


class Processed:
    def __init__(self, p, images_list, seed=-1, info="", subseed=None, all_prompts=None,
                 all_negative_prompts=None, all_seeds=None, all_subseeds=None, index_of_first_image=0,
                 infotexts=None, comments=""):
        self.images = images_list
        self.prompt = p.prompt if not isinstance(p.prompt, list) else p.prompt[0]
        self.negative_prompt = p.negative_prompt if not isinstance(p.negative_prompt, list) else p.negative_prompt[0]
        self.seed = int(seed if not isinstance(seed, list) else seed[0]) if seed is not None else -1
        self.subseed = subseed
        self.info = info
        self.comments = "".join(f"{comment}\n" for comment in p.comments)
        self.width, self.height = p.width, p.height
        self.sampler_name = p.sampler_name
        self.batch_size = p.batch_size
        self.index_of_first_image = index_of_first_image
        self.all_prompts = all_prompts or p.all_prompts or [self.prompt]
        self.all_negative_prompts = all_negative_prompts or p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = all_seeds or p.all_seeds or [self.seed]
        self.all_subseeds = all_subseeds or p.all_subseeds or [self.subseed]
        self.infotexts = infotexts or [info] * len(images_list)


def get_fixed_seed(seed):
    if seed == "" or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except Exception:
            seed = -1
    if seed == -1:
        return int(random.randrange(4294967294))
    return seed


def fix_seed(p):
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


def _vector(text, salt):
    digest = hashlib.sha256(f"{salt}:{text}".encode()).digest()
    return torch.tensor([b / 255.0 * 2 - 1 for b in digest[:4]])


def _conds(prompts, negatives, steps):
    shift = sum((te * extra_networks.lora_vector(name, "te") for name, te, _ in extra_networks.active), 0)
    cond = prompt_parser.MulticondLearnedConditioning(shape=(len(prompts),), batch=[
        [prompt_parser.ComposableScheduledPromptConditioning(
            [prompt_parser.ScheduledPromptConditioning(steps, _vector(t, "c") + shift)])] for t in prompts])
    uncond = [[prompt_parser.ScheduledPromptConditioning(steps, _vector(t, "u"))] for t in negatives]
    return cond, uncond


def _noise(seeds, shape):
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def _init_latent(p, shape):
    imgs = [np.asarray(img.convert("RGB").resize(shape[::-1][:2]), dtype=np.float32)[..., 0] / 127.5 - 1
            for img in p.init_images]
    if len(imgs) == 1:
        imgs = imgs * p.batch_size
    elif len(imgs) <= p.batch_size:
        p.batch_size = len(imgs)
    else:
        raise RuntimeError(f"bad number of images passed: {len(imgs)}; expecting {p.batch_size} or less")
    return torch.stack([torch.from_numpy(i)[None].repeat(4, 1, 1) for i in imgs])


def _decode(latent, width, height):
    rgb = ((latent[:3].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(rgb)).resize((width, height), Image.NEAREST)


def _infotext(p, i):
    """As the host writes it: the prompt as given (tags and all), then the batch's extra parameters."""
    row = p.iteration * p.batch_size + i
    extra = "".join(f", {k}: {json.dumps(v) if any(c in str(v) for c in ',:') else v}"
                    for k, v in p.extra_generation_params.items())
    return (f"{p.all_prompts[row]}\nNegative prompt: {p.all_negative_prompts[row]}\n"
            f"Steps: {p.steps}, Sampler: {p.sampler_name}, Seed: {p.seeds[i]}{extra}")


def process_images(p):
    reload = getattr(sd_models, "forge_model_reload", None)  # Forge (tests/forge_stand_in.py) loads here
    if reload is not None:
        reload()
    seed, subseed = get_fixed_seed(p.seed), get_fixed_seed(p.subseed)
    p.setup_prompts()
    p.all_seeds = seed if isinstance(seed, list) else [int(seed) + (x if p.subseed_strength == 0 else 0)
                                                       for x in range(len(p.all_prompts))]
    p.all_subseeds = subseed if isinstance(subseed, list) else [int(subseed) + x for x in range(len(p.all_prompts))]
    shape = (4, max(1, p.height // 8), max(1, p.width // 8))
    init = _init_latent(p, shape) if getattr(p, "init_images", None) else None
    if state.job_count == -1:
        state.job_count = p.n_iter
    calls.append({"prompts": list(p.all_prompts), "seeds": list(p.all_seeds), "batch_size": p.batch_size})
    output_images, infotexts = [], []
    for n in range(p.n_iter):
        p.iteration = n
        if state.skipped:
            state.skipped = False
        if state.interrupted or state.stopping_generation:
            break
        for hook in before_batch_hooks:
            hook(p, n)
        rows = slice(n * p.batch_size, (n + 1) * p.batch_size)
        p.prompts, p.negative_prompts = p.all_prompts[rows], p.all_negative_prompts[rows]
        p.seeds, p.subseeds = p.all_seeds[rows], p.all_subseeds[rows]
        p.parse_extra_network_prompts()
        extra_networks.activate(p, p.extra_network_data)
        p.setup_conds()
        cond, uncond = p.c, p.uc
        image_cond = torch.zeros(len(p.prompts), 5, 1, 1)
        p.sampler = sd_samplers.create_sampler(p.sampler_name, shared.sd_model)
        lora_shift = [unet * extra_networks.lora_vector(name, "unet") for name, _, unet in extra_networks.active]
        noise = _noise(p.seeds, shape) + sum(lora_shift, torch.zeros(4))[:, None, None]
        if init is None:
            samples = p.sampler.sample(p, noise, cond, uncond, image_conditioning=image_cond)
        else:
            samples = p.sampler.sample_img2img(p, init, noise, cond, uncond, image_conditioning=image_cond)
        state.nextjob()
        for i, latent in enumerate(samples):
            image = _decode(latent, p.width, p.height)
            text = _infotext(p, i)
            if p.save_samples():
                host_images.save_image(image, p.outpath_samples, "", p.seeds[i], p.prompts[i], info=text, p=p)
            infotexts.append(text)
            output_images.append(image)
    index_of_first_image = 0
    if (opts.return_grid or opts.grid_save) and not p.do_not_save_grid and len(output_images) >= 2:
        output_images.insert(0, Image.new("RGB", (p.width * 2, p.height)))
        infotexts.insert(0, infotexts[0])
        index_of_first_image = 1
    return Processed(p, output_images, seed=p.all_seeds[0], info=infotexts[0] if infotexts else "",
                     subseed=p.all_subseeds[0], index_of_first_image=index_of_first_image, infotexts=infotexts)
