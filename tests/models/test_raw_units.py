"""``RawUnitsDenoiser``: lowdose's scaling inside the graph equals ``lowdose.data.scaling``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from lowdose.data.scaling import estimate_clean_max
from lowdose.models.raw_units import (
    RULE_CODES,
    RawUnitsDenoiser,
    gaussian_kernel_1d,
    raw_units_unet,
)


class _Ones(torch.nn.Module):
    """A "network" answering 1 everywhere: the wrapper then returns ``divisor - offset``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)


def test_kernel_is_scipys_gaussian():
    impulse = np.zeros(41)
    impulse[20] = 1.0
    expected = ndimage.gaussian_filter1d(impulse, 2.0, mode="constant")[12:29]
    np.testing.assert_allclose(gaussian_kernel_1d(2.0).numpy(), expected, rtol=1e-6)


def test_per_image_divisor_is_the_smoothed_maximum_of_lowdose():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.0, 3.0, (3, 1, 37, 45)).astype(np.float32)
    raw[1] -= 5.0  # an all-dark image: divisor 1
    wrapped = RawUnitsDenoiser(_Ones(), rule=RULE_CODES["per_image_max"], offset=0.0, divisor=1.0)
    with torch.no_grad():
        divisor = wrapped(torch.from_numpy(raw))[:, 0, 0, 0].numpy()
    np.testing.assert_allclose(divisor, estimate_clean_max(raw[:, 0]), rtol=1e-5)
    assert divisor[1] == 1.0


@pytest.mark.parametrize("rule", ["dataset_max", "none"])
def test_fixed_rules_scale_and_invert(rule):
    offset, divisor = (1024.0, 3000.0) if rule == "dataset_max" else (0.0, 1.0)
    identity = RawUnitsDenoiser(
        torch.nn.Identity(), rule=RULE_CODES[rule], offset=offset, divisor=divisor
    )
    raw = torch.linspace(-1000.0, 1500.0, 64 * 64).reshape(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(identity(raw), raw, rtol=1e-6, atol=1e-3)
        assert torch.allclose(
            RawUnitsDenoiser(_Ones(), rule=RULE_CODES[rule], offset=offset, divisor=divisor)(raw),
            torch.full_like(raw, divisor - offset),
        )


def test_builder_and_bad_settings():
    model = raw_units_unet(
        width=4, residual=True, scaling_rule="dataset_max", scaling_offset=1024.0, divisor=3000.0
    )
    assert set(model.state_dict()) == {f"network.{k}" for k in model.network.state_dict()}
    with pytest.raises(ValueError, match="divisor"):
        RawUnitsDenoiser(_Ones(), rule=RULE_CODES["dataset_max"], offset=0.0, divisor=0.0)
    with pytest.raises(ValueError, match="rule"):
        RawUnitsDenoiser(_Ones(), rule=7, offset=0.0, divisor=1.0)
