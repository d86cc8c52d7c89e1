"""The paper's U-Net: architecture arithmetic, any input size, gradients, residual start."""

import pytest
import torch

from lowdose.models.unet import UNet


def conv_params(in_maps: int, out_maps: int) -> int:
    """A 3x3 convolution: in*out*9 weights + out biases."""
    return in_maps * out_maps * 9 + out_maps


def test_parameter_count_matches_the_architecture_by_hand():
    # Paper width 48, decoder 96, one input and one output channel:
    encoder = conv_params(1, 48) + 6 * conv_params(48, 48)  # enc_conv0, enc_conv1..6
    assert encoder == 480 + 6 * 20_784 == 125_184
    decoder = (
        conv_params(48 + 48, 96)
        + conv_params(96, 96)  # dec_conv5a/b: upsampled + pool4
        + 3 * (conv_params(96 + 48, 96) + conv_params(96, 96))  # dec_conv4..2 a/b
        + conv_params(96 + 1, 64)
        + conv_params(64, 32)  # dec_conv1a/b: concat with the input
        + conv_params(32, 1)  # dec_conv1, linear output
    )
    assert decoder == 83_040 * 2 + 3 * (124_512 + 83_040) + 55_936 + 18_464 + 289 == 863_425
    model = UNet()
    assert sum(p.numel() for p in model.parameters()) == encoder + decoder == 988_609
    assert model.name == "unet-w48"


def test_narrow_variant_scales_every_layer_with_width():
    # width 16: encoder 16, decoder 32, last level round(64/3)=21 and round(32/3)=11 maps.
    expected = (
        conv_params(1, 16)
        + 6 * conv_params(16, 16)
        + conv_params(32, 32)
        + conv_params(32, 32)
        + 3 * (conv_params(48, 32) + conv_params(32, 32))
        + conv_params(33, 21)
        + conv_params(21, 11)
        + conv_params(11, 1)
    )
    model = UNet(width=16)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.name == "unet-w16"
    assert UNet(width=16, residual=True).name == "unet-w16-res"


@pytest.mark.parametrize("shape", [(97, 131), (64, 64), (20, 33)])
def test_output_shape_equals_input_shape_for_any_size(shape):
    model = UNet(width=8).eval()
    x = torch.rand(2, 1, *shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = UNet(width=8)
    x = torch.rand(2, 1, 64, 64)
    model(x).pow(2).mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_residual_network_is_the_identity_before_training_and_then_learns():
    torch.manual_seed(0)
    model = UNet(width=8, residual=True)
    x = torch.rand(1, 1, 45, 70)
    assert torch.equal(model(x), x)
    # The zero last layer still receives a gradient, so training can move away from identity.
    model(x).sub(0.5).pow(2).mean().backward()
    assert model.dec_conv1.weight.grad.abs().sum() > 0


def test_he_initialisation_scale():
    torch.manual_seed(0)
    model = UNet()
    # He-normal: std = sqrt(2 / fan_in); fan_in of enc_conv1 is 48 * 9.
    std = model.enc_conv1.weight.std().item()
    assert std == pytest.approx((2 / (48 * 9)) ** 0.5, rel=0.05)
    assert torch.count_nonzero(model.enc_conv1.bias) == 0


def test_config_rebuilds_the_same_architecture():
    model = UNet(width=12, residual=True)
    clone = UNet(**model.config())
    assert clone.name == model.name
    clone.load_state_dict(model.state_dict())
