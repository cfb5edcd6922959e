"""Word tokenizer and prompt -> conditioning rows of the built-in model."""

import pytest
import torch

from prompt_pinning.builtin import conditioning as cnd
from prompt_pinning.builtin import layouts as geo
from prompt_pinning.builtin.conditioning import (
    conditioning_rows, effective_weights, pair_conditioning, prompt_tags, tag_weights,
    token_mean, word_weights,
)
from prompt_pinning.builtin.latents import untone
from prompt_pinning.builtin.layouts import PALETTE, SHAPES
from prompt_pinning.builtin.tokenizer import UNKNOWN_ID_BASE, WordTokenizer
from prompt_pinning.rendering import Tokenizer


def test_tokenizer_words_numbers_and_punctuation():
    tokenizer = WordTokenizer()
    assert isinstance(tokenizer, Tokenizer)
    ids = tokenizer.encode("A large, RED circle (1.5) on zorblax!")
    assert tokenizer.token_strings(ids) == ["a", "large", ",", "red", "circle", "(", "1.5", ")", "on", "zorblax", "!"]
    known = [i for i, word in zip(ids, tokenizer.token_strings(ids)) if word not in ("1.5", "zorblax")]
    assert ids[-2] >= UNKNOWN_ID_BASE > max(known)
    assert WordTokenizer().encode("zorblax") == [ids[-2]]  # unknown ids are stable across instances


def test_token_strings_rejects_ids_never_encoded():
    with pytest.raises(ValueError, match="token id"):
        WordTokenizer().token_strings([UNKNOWN_ID_BASE + 12345])




def test_word_weights_follow_attention_syntax():
    pairs = word_weights("a (large:1.5) red [circle]")
    assert pairs == [("a", 1.0), ("large", 1.5), ("red", 1.0), ("circle", pytest.approx(1 / 1.1))]


def test_colour_before_background_names_the_background():
    weights = tag_weights(word_weights("a red circle on a (blue:1.2) (background:0.5), big box"))
    assert weights == pytest.approx({"red": 1.0, "circle": 1.0, "blue background": 0.6, "large": 1.0, "square": 1.0})


def test_emphasis_restores_the_original_mean_as_a1111_does():
    pairs = word_weights("a (red:1.5) circle")
    effective = effective_weights(pairs)
    padding = 77 - 3  # start, end and filler tokens of the 77-token chunk, weight 1 and mean 1
    means = [token_mean(w) for w, _ in pairs]
    total = sum(means) + padding
    # z * w, rescaled by the original mean over the new one (padding included)
    scale = total / (total + 0.5 * means[1])
    assert [e for _, e in effective] == pytest.approx([w * scale for _, w in pairs])
    # Raising one word lowers every other word's effective weight a little.
    assert all(e < 1.0 for w, e in effective if w != "red") and effective[0][1] > 0.99
    assert effective_weights(word_weights("a red circle")) == [("a", 1.0), ("red", 1.0), ("circle", 1.0)]
    assert all(0.5 <= token_mean(w) <= 1.5 for w in ("a", "red", "zorblax", ","))


def test_colour_words_pull_their_prior_smoothly_towards_the_palette():
    def fg(weight):
        return pair_conditioning(f"a (red:{weight}) circle")[0]

    red = torch.tensor(PALETTE["red"], dtype=torch.float64)
    distances = [float((fg(w)[cnd.FG_MEAN] - red).norm()) for w in (0.5, 0.75, 1.0, 1.25, 1.5)]
    stds = [float(fg(w)[cnd.FG_STD][0]) for w in (0.5, 1.0, 1.5)]
    assert distances == sorted(distances, reverse=True) and distances[-1] > 0.02  # closer, never saturated
    assert stds == sorted(stds, reverse=True) and stds[0] < cnd.BROAD_STD
    blue_bg = pair_conditioning("on a blue background")[0]
    # The mean moves part of the way (guidance multiplies the rest) towards the latent colour of blue.
    towards = untone(torch.tensor(PALETTE["blue"], dtype=torch.float64)) - cnd.BROAD_MEAN
    moved = blue_bg[cnd.BG_MEAN] - cnd.BROAD_MEAN
    share = moved / towards
    assert torch.allclose(share, share[0].expand(3)) and 0.2 < float(share[0]) < 0.5
    assert torch.equal(blue_bg[cnd.FG_MEAN], torch.full((3,), cnd.BROAD_MEAN, dtype=torch.float64))


def test_negative_prompt_sets_the_uncond_colour_prior_and_shares_the_geometry():
    cond, uncond = pair_conditioning("large red ring", "green, small")
    assert torch.equal(cond[cnd.GEOMETRY], uncond[cnd.GEOMETRY])
    assert float(uncond[cnd.FG_MEAN][1]) > float(cond[cnd.FG_MEAN][1])  # green in the negative prompt
    alone = pair_conditioning("large red ring")[0]
    # "small" in the negative prompt makes the shape larger still.
    assert float(cond[cnd.GEOMETRY][geo.LOG_SCALE]) > float(alone[cnd.GEOMETRY][geo.LOG_SCALE]) > 0


def test_geometry_words_move_size_place_and_shape_continuously():
    def geometry(prompt):
        return pair_conditioning(prompt)[0][cnd.GEOMETRY]

    scales = [float(geometry(f"(large:{w}) ring")[geo.LOG_SCALE]) for w in (0.5, 1.0, 1.5)]
    assert scales == sorted(scales) and scales[0] > 0
    assert float(geometry("small ring")[geo.LOG_SCALE]) < 0
    left = geometry("circle, left")
    assert float(left[geo.TARGET_X]) == pytest.approx(0.25) and 0 < float(left[geo.PULL_X]) < 1
    assert float(left[geo.PULL_Y]) == 0.0
    ring = geometry("(ring:1.2)")
    mix = ring[geo.SHAPE_MIX]
    assert float(mix[SHAPES.index("ring")]) > 0.8 and float(ring[geo.OWN_SHAPE] + mix.sum()) == pytest.approx(1.0)
    assert torch.equal(geometry("zorblax"), geo.neutral_geometry())


def test_unknown_words_change_only_the_emphasis_normalisation():
    assert torch.equal(pair_conditioning("red zorblax circle")[0], pair_conditioning("red circle zorblax")[0])
    plain, emphasised = pair_conditioning("red circle zorblax")[0], pair_conditioning("red circle (zorblax:1.4)")[0]
    assert not torch.equal(plain, emphasised)
    assert float((plain - emphasised).abs().max()) < 0.02
    assert prompt_tags("zorblax (quux:3) the of") == {}


def test_conditioning_rows_one_per_pair():
    cond, uncond = conditioning_rows([("red", ""), ("", "blue"), ("red", "")])
    assert cond.shape == uncond.shape == (3, cnd.FEATURE_SIZE) and cond.dtype == torch.float64
    assert torch.equal(cond[0], cond[2]) and not torch.equal(cond[0], cond[1])
    assert not torch.equal(uncond[0], uncond[1])
    assert conditioning_rows([])[0].shape == (0, cnd.FEATURE_SIZE)
