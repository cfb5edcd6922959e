"""A hyperbatch keeps most of a plain batch's diversity on the built-in model.

The hyperbatch shares each image's path up to its split (the first at step 5
of 20), so its images can only differ as much as the model is still undecided
there. Measured as mean pairwise LDR-FLIP within a batch of 8 (pytest -s prints
the figures).
"""
import torch

from prompt_pinning.score import flip
from prompt_pinning.builtin.renderer import BuiltinRenderer
from prompt_pinning.rendering import GenerationSettings

PROMPTS = ["a red circle", "large ring", "green background"]
SEEDS = [1, 10]
MIN_RATIO = 0.5


def mean_pairwise_flip(images: torch.Tensor) -> float:
    features = flip.preprocess(images)
    first, second = flip.all_pairs(images.shape[0])
    return float(flip.pair_means(features, features, first, second).mean())


def test_hyperbatch_batches_keep_at_least_half_the_plain_diversity():
    renderer = BuiltinRenderer()
    plain_total = hyper_total = 0.0
    for seed in SEEDS:
        for prompt in PROMPTS:
            settings = GenerationSettings(seed=seed, batch_size=8, steps=20, sampler="DPM++ 2M")
            plain = mean_pairwise_flip(renderer.render([(prompt, "")], settings)[0].images)
            hyper = mean_pairwise_flip(renderer.render(
                [(prompt, "")], settings.with_(sampler="DPM++ 2M Karras - Hyperbatch"))[0].images)
            print(f"seed {seed:3d} {prompt!r:22}: mean pairwise FLIP plain {plain:.3f}, hyperbatch {hyper:.3f}")
            assert plain > 0.2, "the plain batch itself should be diverse"
            plain_total, hyper_total = plain_total + plain, hyper_total + hyper
    ratio = hyper_total / plain_total
    print(f"hyperbatch / plain diversity over {len(SEEDS) * len(PROMPTS)} batches: {ratio:.2f}")
    assert ratio >= MIN_RATIO
