"""Sigma schedules' input checks and the per-row Brownian noise."""
import pytest
import torch

import hyperbatch as hb
from hyperbatch.noise import BrownianNoise


def test_row_noise_depends_only_on_its_seed():
    x = torch.zeros(3, 2, 4, 4)
    wide = BrownianNoise(x, 0.1, 10.0, seeds=[11, 12, 13])
    alone = BrownianNoise(x[:1], 0.1, 10.0, seeds=[12])
    a, b = wide(5.0, 2.0), alone(5.0, 2.0)
    assert a.shape == x.shape
    assert torch.allclose(a[1], b[0])
    assert not torch.allclose(a[0], a[1])
    assert torch.allclose(wide(5.0, 2.0), a)  # same interval, same noise
    assert torch.allclose(wide(2.0, 5.0), a)  # order of the ends does not matter


def test_brownian_increments_have_unit_variance():
    x = torch.zeros(4, 1, 64, 64)
    noise = BrownianNoise(x, 0.1, 10.0, seeds=range(4))(3.0, 1.0)
    assert abs(noise.std().item() - 1) < 0.05 and abs(noise.mean().item()) < 0.05


def test_brownian_noise_checks_its_inputs():
    with pytest.raises(ValueError, match="seeds"):
        BrownianNoise(torch.zeros(2, 3), 0.1, 1.0, seeds=[1])
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        BrownianNoise(torch.zeros(2, 3), 1.0, 0.1, seeds=[1, 2])


@pytest.mark.parametrize("call, message", [
    (lambda: hb.karras_sigmas(0, 0.1, 10), "n"),
    (lambda: hb.karras_sigmas(5, 10, 0.1), "sigma_min"),
    (lambda: hb.karras_sigmas(5, 0.1, 10, rho=0), "rho"),
    (lambda: hb.exponential_sigmas(5, 0, 10), "sigma_min"),
    (lambda: hb.make_sigmas("linear", 5, 0.1, 10), "karras"),
])
def test_bad_schedule_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_schedules_descend_and_end_in_zero():
    for name in ("karras", "exponential"):
        sigmas = hb.make_sigmas(name, 10, 0.03, 14.6)
        assert len(sigmas) == 11 and sigmas[-1] == 0
        assert torch.all(sigmas[:-1] > sigmas[1:])
        assert sigmas[0] == pytest.approx(14.6) and sigmas[-2] == pytest.approx(0.03)
