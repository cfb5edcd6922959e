"""LDR-FLIP in torch against NVIDIA's flip-evaluator, on real photographs."""
import itertools
import math

import numpy as np
import pytest
import torch

from prompt_pinning.score import flip, flip_filters

import flip_evaluator
import skimage.data as skdata


@pytest.fixture(scope="module")
def photos():
    names = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")
    return {n: getattr(skdata, n)().astype(np.float32) / 255.0 for n in names}


def crop(photo, top, left, height, width):
    out = photo[top:top + height, left:left + width]
    assert out.shape == (height, width, 3), "crop outside the photograph"
    return np.ascontiguousarray(out)


def to_tensor(*arrays):
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])


def reference_map(ref, test, **parameters):
    """flip-evaluator's error map, with its own float32 mean drift avoided (facts.md 3)."""
    errmap, _, _ = flip_evaluator.evaluate(ref, test, "LDR", applyMagma=False, computeMeanError=False,
                                           parameters=parameters)
    return errmap[..., 0]


# (height, width): pairs of (photo, top, left) crops; shifted crops of one photo and crops of two photos.
CASES = {
    (64, 64): [(("astronaut", 100, 200), ("astronaut", 103, 205)), (("coffee", 50, 60), ("chelsea", 80, 90))],
    (256, 256): [(("astronaut", 40, 60), ("astronaut", 42, 65)), (("rocket", 100, 200), ("coffee", 30, 100))],
    (512, 512): [(("hubble_deep_field", 100, 200), ("hubble_deep_field", 104, 207)),
                 (("retina", 300, 400), ("hubble_deep_field", 0, 0))],
    (512, 768): [(("hubble_deep_field", 50, 40), ("hubble_deep_field", 53, 34)),
                 (("retina", 400, 300), ("retina", 401, 309))],
}


SIZES = [pytest.param(s, id=f"{s[1]}x{s[0]}", marks=[pytest.mark.slow] if s[0] >= 512 else [])
         for s in CASES]


@pytest.mark.parametrize("size", SIZES)
def test_matches_flip_evaluator_on_photographs(photos, size):
    h, w = size
    for (name_a, *at_a), (name_b, *at_b) in CASES[size]:
        ref, test = crop(photos[name_a], *at_a, h, w), crop(photos[name_b], *at_b, h, w)
        expected = reference_map(ref, test)
        ours = flip.flip_error_map(to_tensor(ref), to_tensor(test))[0].numpy()
        assert ours.shape == expected.shape
        mean_ours, mean_expected = ours.mean(dtype=np.float64), expected.mean(dtype=np.float64)
        assert mean_expected > 0.01  # a real difference, not a trivial pair
        assert abs(mean_ours - mean_expected) <= 1e-3 * mean_expected
        assert np.abs(ours - expected).mean() <= 1e-3
        # What a correct float32 implementation reaches (facts.md 3): far inside the bounds above.
        assert abs(mean_ours - mean_expected) <= 1e-5 * mean_expected


def test_batched_all_pairs_equal_separate_comparisons(photos):
    h = w = 64
    images = [crop(photos["astronaut"], 100 + 3 * k, 150 + 5 * k, h, w) for k in range(4)]
    images.append(crop(photos["coffee"], 10, 10, h, w))
    feats = flip.preprocess(to_tensor(*images))
    ia, ib = flip.all_pairs(len(images))
    assert list(zip(ia.tolist(), ib.tolist())) == list(itertools.combinations(range(len(images)), 2))
    batched = flip.pair_means(feats, feats, ia, ib, max_pairs_per_chunk=3)
    gathered = flip.pair_means(feats, feats, ia, ib, budget_bytes=1, gather=True)
    for k, (i, j) in enumerate(zip(ia.tolist(), ib.tolist())):
        alone = flip.flip_error_map(to_tensor(images[i]), to_tensor(images[j]))[0].double().mean().item()
        assert batched[k].item() == pytest.approx(alone, rel=1e-6)
        assert gathered[k].item() == pytest.approx(alone, rel=1e-6)


def test_cross_pairs_match_flip_evaluator(photos):
    """Pairs between two preprocessed sets, in any order of indices."""
    targets = [crop(photos["chelsea"], 20, 30, 64, 64), crop(photos["rocket"], 200, 300, 64, 64)]
    images = [crop(photos["chelsea"], 22, 33, 64, 64), crop(photos["coffee"], 0, 0, 64, 64)]
    a, b = flip.preprocess(to_tensor(*targets)), flip.preprocess(to_tensor(*images))
    ia, ib = [1, 0, 1, 0], [1, 1, 0, 0]
    means = flip.pair_means(a, b, ia, ib)
    for k in range(4):
        expected = reference_map(targets[ia[k]], images[ib[k]]).mean(dtype=np.float64)
        assert means[k].item() == pytest.approx(expected, rel=1e-4)


def test_symmetric_and_zero_for_identical_images(photos):
    a = crop(photos["astronaut"], 0, 0, 48, 40)
    b = crop(photos["rocket"], 100, 100, 48, 40)
    ab = flip.flip_error_map(to_tensor(a), to_tensor(b))
    ba = flip.flip_error_map(to_tensor(b), to_tensor(a))
    assert torch.allclose(ab, ba, atol=1e-6)
    assert flip.flip_error_map(to_tensor(a), to_tensor(a)).abs().max().item() == 0.0


def test_pixels_per_degree_default_and_configurable(photos):
    assert flip.DEFAULT_PPD == pytest.approx(0.7 * 3840 / 0.7 * math.pi / 180)
    ref, test = crop(photos["coffee"], 100, 100, 64, 64), crop(photos["coffee"], 102, 104, 64, 64)
    _, _, params = flip_evaluator.evaluate(ref, test, "LDR", applyMagma=False, computeMeanError=False)
    assert params["ppd"] == pytest.approx(flip.DEFAULT_PPD, rel=1e-6)
    ppd = flip.pixels_per_degree(distance_m=0.5, width_px=1920, width_m=0.6)
    expected = reference_map(ref, test, ppd=ppd)
    ours = flip.flip_error_map(to_tensor(ref), to_tensor(test), ppd=ppd)[0].numpy()
    default = flip.flip_error_map(to_tensor(ref), to_tensor(test))[0].numpy()
    assert ours.mean(dtype=np.float64) == pytest.approx(expected.mean(dtype=np.float64), rel=1e-5)
    assert abs(ours.mean() - default.mean()) > 1e-3  # the setting really changes the metric


def test_images_smaller_than_the_filters(photos):
    ref, test = crop(photos["astronaut"], 200, 200, 5, 7), crop(photos["astronaut"], 210, 190, 5, 7)
    expected = reference_map(ref, test)
    ours = flip.flip_error_map(to_tensor(ref), to_tensor(test))[0].numpy()
    assert np.abs(ours - expected).max() < 1e-4


def test_out_of_range_values_are_clamped(photos):
    ref = crop(photos["coffee"], 0, 0, 32, 32)
    test = crop(photos["chelsea"], 0, 0, 32, 32)
    wild = test * 1.6 - 0.3
    clamped = np.clip(wild, 0.0, 1.0)
    assert torch.equal(flip.flip_error_map(to_tensor(ref), to_tensor(wild)),
                       flip.flip_error_map(to_tensor(ref), to_tensor(clamped)))


def test_bad_input_is_rejected_with_a_clear_error():
    with pytest.raises(ValueError, match="dtype torch.uint8"):
        flip.preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        flip.preprocess(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        flip.preprocess(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="ppd"):
        flip.preprocess(torch.zeros(1, 3, 8, 8), ppd=0)
    a, b = flip.preprocess(torch.zeros(1, 3, 8, 8)), flip.preprocess(torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="differ in size"):
        flip.pair_means(a, b, [0], [0])


def test_conv_filter_path_used_on_cuda_gives_the_same_result(photos, monkeypatch):
    images = to_tensor(crop(photos["coffee"], 30, 40, 40, 56), crop(photos["rocket"], 10, 20, 40, 56))
    shifted = flip.preprocess(images)
    monkeypatch.setattr(flip_filters, "_prefers_conv", lambda device: True)
    convolved = flip.preprocess(images)
    assert torch.allclose(convolved.lab, shifted.lab, atol=1e-4)
    assert torch.allclose(convolved.features, shifted.features, atol=1e-6)


def test_out_of_memory_halves_the_chunk_and_retries(photos, monkeypatch):
    images = to_tensor(*[crop(photos["astronaut"], 20 * k, 10 * k, 16, 16) for k in range(5)])
    feats = flip.preprocess(images)
    ia, ib = flip.all_pairs(5)
    expected = flip.pair_means(feats, feats, ia, ib)
    real, sizes = flip._gathered, []

    def fails_when_large(a, b, ia_, ib_):
        sizes.append(len(ia_))
        if len(ia_) > 3:
            raise torch.cuda.OutOfMemoryError("test")
        return real(a, b, ia_, ib_)

    monkeypatch.setattr(flip, "_gathered", fails_when_large)
    got = flip.pair_means(feats, feats, ia, ib, gather=True)
    assert sizes[:3] == [10, 5, 2]
    assert torch.equal(got, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_even_with_tf32_enabled(photos):
    images = to_tensor(*[crop(photos["hubble_deep_field"], 10 * k, 7 * k, 256, 256) for k in range(5)])
    ia, ib = flip.all_pairs(5)
    cpu = flip.pair_means(flip.preprocess(images), flip.preprocess(images), ia, ib)
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        feats = flip.preprocess(images.cuda())
        assert feats.device.type == "cuda"
        gpu = flip.pair_means(feats, feats, ia, ib)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    assert torch.allclose(gpu, cpu, rtol=1e-5)
