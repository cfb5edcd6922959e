"""A1111's emphasis on the diffusers renderer's prompt embeddings, against a reference written
here from the documented rule: z * weight per token, then z * (mean before / mean after), per
75-token chunk and per text encoder; SDXL's pooled vector is the second encoder's, unweighted."""
import os
import sys

import numpy as np
import pytest
import torch

from prompt_pinning.diffusers import load_diffusers_renderer
from prompt_pinning.diffusers.emphasis import original_emphasis

START, END = 49406, 49407


@pytest.fixture(scope="module")
def sd15(tiny_diffusers):
    return load_diffusers_renderer(tiny_diffusers["sd15"], device="cpu")


@pytest.fixture(scope="module")
def sdxl(tiny_diffusers):
    return load_diffusers_renderer(tiny_diffusers["sdxl"], device="cpu")


def word_id(renderer, word):
    (token,) = renderer.tokenizer.hf(word, add_special_tokens=False)["input_ids"]
    return token


def reference(model, ids, weights, layer="last"):
    """The documented rule in float64 on one 77-token chunk, straight from the encoder's outputs."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    z = (out.last_hidden_state if layer == "last" else out.hidden_states[-2])[0].double().numpy()
    weighted = z * np.asarray(weights, dtype=np.float64)[:, None]
    return weighted * (z.mean() / weighted.mean()), out


def chunk(content_ids, content_weights, pad=END):
    pad_count = 75 - len(content_ids)
    return ([START, *content_ids, END] + [pad] * pad_count, [1.0, *content_weights, 1.0] + [1.0] * pad_count)


def test_sd15_weights_follow_the_documented_rule(sd15):
    words = ["a", "red", "fox", ",", "blue", "sky"]
    ids = [word_id(sd15, w) for w in words]
    weights = [1.0, 1.5, 1.0, 1.0, 1 / 1.1, 1.21]
    expected, _ = reference(sd15.text.encoders[0].model, *chunk(ids, np.float32(weights).tolist()))
    got = sd15.text.encode("a (red:1.5) fox, [blue] ((sky))")
    assert got.context.shape == (77, 32) and got.pooled is None
    np.testing.assert_allclose(got.context.numpy(), expected, rtol=1e-4, atol=1e-5)
    plain = sd15.text.encode("a red fox, blue sky").context
    assert float(plain.mean()) == pytest.approx(float(got.context.mean()), rel=1e-5)
    assert not torch.allclose(plain, got.context, atol=1e-3)


def test_long_prompts_are_weighted_per_chunk_and_the_negative_is_padded(sd15):
    fox = word_id(sd15, "fox")
    prompt = "(fox:1.3) " + "fox " * 79  # 80 tokens: a chunk of 75, then one of 5
    got = sd15.text.encode(prompt).context
    assert got.shape == (154, 32)
    model = sd15.text.encoders[0].model
    first, _ = reference(model, *chunk([fox] * 75, [np.float32(1.3).item()] + [1.0] * 74))
    second, _ = reference(model, *chunk([fox] * 5, [1.0] * 5))
    np.testing.assert_allclose(got[:77].numpy(), first, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[77:].numpy(), second, rtol=1e-4, atol=1e-5)
    (cond,), (uncond,) = sd15.encode_pairs([(prompt, "")])
    empty, _ = reference(model, *chunk([], []))
    assert uncond.context.shape == (154, 32)  # the empty negative, padded with an empty chunk
    np.testing.assert_allclose(uncond.context[77:].numpy(), empty, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(uncond.context[:77], uncond.context[77:])
    torch.testing.assert_close(cond.context, got)


def test_sdxl_weights_each_encoder_and_keeps_the_pooled_vector(sdxl):
    ids = [word_id(sdxl, w) for w in ("a", "red", "fox")]
    weights = [1.0, np.float32(1.4).item(), np.float32(0.8).item()]
    first, _ = reference(sdxl.text.encoders[0].model, *chunk(ids, weights), layer="penultimate")
    second, out = reference(sdxl.text.encoders[1].model, *chunk(ids, weights, pad=0), layer="penultimate")
    got = sdxl.text.encode("a (red:1.4) (fox:0.8)")
    assert got.context.shape == (77, 64) and got.pooled.shape == (32,)
    np.testing.assert_allclose(got.context.numpy(), np.concatenate([first, second], axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.pooled.numpy(), out.text_embeds[0].numpy(), rtol=1e-5, atol=1e-6)
    plain = sdxl.text.encode("a red fox")
    torch.testing.assert_close(plain.pooled, got.pooled)  # weights never reach the pooled vector
    (cond,), (uncond,) = sdxl.encode_pairs([("a (red:1.4) (fox:0.8)", "")])
    torch.testing.assert_close(cond.context, got.context)
    assert not uncond.context.any() and not uncond.pooled.any()  # A1111 zeroes an empty SDXL negative
    (_,), (blurry,) = sdxl.encode_pairs([("a fox", "blurry")])
    assert blurry.context.abs().sum() > 0 and blurry.pooled.abs().sum() > 0


@pytest.mark.skipif(not os.environ.get("PP_A1111_DIR"), reason="PP_A1111_DIR (an A1111 checkout) not set")
def test_matches_the_webuis_own_emphasis_class(sd15):
    """The host's EmphasisOriginal on the same encoder outputs and multipliers as the renderer's."""
    sys.path.insert(0, os.environ["PP_A1111_DIR"])
    try:
        from modules import sd_emphasis
    finally:
        sys.path.pop(0)
    prompt = "a (red:1.5) fox, [blue] ((sky)) " + "(tree:0.7) " * 75
    encoder = sd15.text.encoders[0]
    ids, weights = encoder.chunks(prompt)
    got = sd15.text.encode(prompt).context
    assert got.shape == (154, 32)
    for k in range(len(ids)):
        with torch.no_grad():
            z = encoder.model(input_ids=ids[k:k + 1]).last_hidden_state
        host = sd_emphasis.EmphasisOriginal()
        host.tokens, host.multipliers, host.z = ids[k:k + 1].tolist(), weights[k:k + 1], z
        host.after_transformers()
        torch.testing.assert_close(got[77 * k:77 * (k + 1)], host.z[0], rtol=1e-5, atol=1e-6)
