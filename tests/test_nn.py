"""Tests of otloss.nn: shapes for 28/32/64-pixel images, gradient flow, clear errors."""

import functools

import pytest
import torch
from torch import nn

from otloss.nn import (
    MLP,
    ConvDecoder,
    ConvEncoder,
    ImageBranch,
    VectorBranch,
    feature_sizes,
)

GWAE_CHANNELS = (32, 64, 128, 256)
TCWAE_CHANNELS = (32, 32, 64, 64)
SMALL = (4, 4, 8, 8)  # the same depth with fewer channels, for speed


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_encoder_and_decoder_shapes_for_paper_image_sizes(size, in_channels):
    enc = ConvEncoder(in_channels, size, 6, channels=SMALL)
    dec = ConvDecoder(3, in_channels, size, channels=SMALL)
    assert enc(torch.rand(2, in_channels, size, size)).shape == (2, 6)
    assert dec(torch.randn(2, 3)).shape == (2, in_channels, size, size)


def test_gwae_architecture_maps_64px_to_256x4x4_features():
    enc = ConvEncoder(3, 64, 32, channels=GWAE_CHANNELS)
    convs = [m for m in enc.convs if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == list(GWAE_CHANNELS)
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert enc.head[0].in_features == 256 * 4 * 4
    assert enc(torch.rand(2, 3, 64, 64)).shape == (2, 32)


def test_tcwae_architecture_has_fc256_layers_both_sides():
    enc = ConvEncoder(1, 64, 20, channels=TCWAE_CHANNELS, hidden=(256,))
    dec = ConvDecoder(10, 1, 64, channels=TCWAE_CHANNELS, hidden=(256,))
    assert [m.out_features for m in enc.head if isinstance(m, nn.Linear)] == [256, 20]
    assert [m.out_features for m in dec.head[0] if isinstance(m, nn.Linear)] == [256, 64 * 4 * 4]
    deconvs = [m.out_channels for m in dec.deconvs if isinstance(m, nn.ConvTranspose2d)]
    assert deconvs == [64, 32, 32, 1]
    assert dec(torch.randn(3, 10)).shape == (3, 1, 64, 64)


def test_decoder_mirrors_the_28px_floor_division():
    assert feature_sizes(28, 4) == [(28, 28), (14, 14), (7, 7), (3, 3), (1, 1)]
    dec = ConvDecoder(4, 1, 28, channels=SMALL)
    assert dec(torch.randn(1, 4)).shape == (1, 1, 28, 28)


def test_rectangular_images_are_supported():
    enc = ConvEncoder(3, (28, 40), 5, channels=SMALL)
    dec = ConvDecoder(5, 3, (28, 40), channels=SMALL)
    assert enc(torch.rand(2, 3, 28, 40)).shape == (2, 5)
    assert dec(torch.randn(2, 5)).shape == (2, 3, 28, 40)


def test_sigmoid_output_is_in_unit_interval_and_logits_are_not_bounded():
    torch.manual_seed(0)
    z = 30 * torch.randn(16, 3)
    probs = ConvDecoder(3, 1, 32, channels=SMALL, output="sigmoid")(z)
    assert probs.min() >= 0 and probs.max() <= 1
    logits = ConvDecoder(3, 1, 32, channels=SMALL, output="logits")(z)
    assert logits.min() < 0 or logits.max() > 1


@pytest.mark.parametrize("size", [28, 32, 64])
def test_gradients_reach_every_parameter(size):
    torch.manual_seed(0)
    enc = ConvEncoder(1, size, 4, channels=SMALL, hidden=(8,))
    dec = ConvDecoder(4, 1, size, channels=SMALL, hidden=(8,), output="sigmoid")
    x = torch.rand(3, 1, size, size)
    loss = ((dec(enc(x)) - x) ** 2).mean()
    loss.backward()
    for name, p in [*enc.named_parameters(), *dec.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_encoder_gradcheck_in_float64():
    torch.manual_seed(0)
    enc = ConvEncoder(1, 4, 2, channels=(2,), hidden=(3,), activation="tanh").double()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(enc, (x,))


@pytest.mark.parametrize(
    ("size", "channels", "match"),
    [
        (8, GWAE_CHANNELS, "too small for 4 stride-2 convolutions.*at least 16"),
        ((28, 12), GWAE_CHANNELS, "too small"),
        (0, SMALL, "image_size\\[0\\] must be a positive int"),
        ((28, 28, 3), SMALL, "image_size must be an int or \\(height, width\\)"),
        (28, (), "channels must name at least one layer"),
        (28, (4, 0), "channels\\[1\\] must be a positive int"),
    ],
)
def test_bad_image_sizes_and_widths_raise_value_error(size, channels, match):
    with pytest.raises(ValueError, match=match):
        ConvEncoder(1, size, 4, channels=channels)
    with pytest.raises(ValueError, match=match):
        ConvDecoder(4, 1, size, channels=channels)


def test_non_integer_sizes_raise_type_error():
    with pytest.raises(TypeError, match="image_size must be an int or \\(height, width\\)"):
        ConvEncoder(1, 28.0, 4)
    with pytest.raises(TypeError, match="image_size\\[1\\] must be an int"):
        ConvDecoder(4, 1, (28, 28.0))
    with pytest.raises(TypeError, match="in_channels must be an int"):
        ConvEncoder(True, 28, 4)


def test_wrong_input_shapes_name_the_expected_shape():
    enc = ConvEncoder(3, 32, 4, channels=SMALL)
    expected = r"x must have shape \(N, 3, 32, 32\).*got \(2, 3, 28, 28\)"
    with pytest.raises(ValueError, match=expected):
        enc(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\).*got \(3, 32, 32\)"):
        enc(torch.rand(3, 32, 32))
    dec = ConvDecoder(5, 3, 32, channels=SMALL)
    with pytest.raises(ValueError, match=r"z must have shape \(N, 5\).*got \(2, 4\)"):
        dec(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        MLP(7, 1)(torch.randn(2, 3))


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError, match="unknown output 'tanh'"):
        ConvDecoder(2, 1, 28, output="tanh")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MLP(2, 1, activation="swish")
    with pytest.raises(TypeError, match=r"must return an nn\.Module"):
        MLP(2, 1, activation=lambda: 3)


def test_mlp_layout_and_custom_activation_factory():
    net = MLP(10, 1, hidden=(16, 16), activation=functools.partial(nn.LeakyReLU, 0.1))
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"]
    assert net[1].negative_slope == 0.1
    assert isinstance(MLP(3, 2, hidden=())[0], nn.Linear) and len(MLP(3, 2, hidden=())) == 1
    assert net(torch.randn(5, 10)).shape == (5, 1)


def test_y_critic_branches_produce_features_for_a_stem():
    torch.manual_seed(0)
    image = ImageBranch(3, 32, 12, channels=SMALL)
    vector = VectorBranch(5, 7, hidden=(9,))
    stem = MLP(image.out_features + vector.out_features, 1, hidden=(8,), activation="leaky_relu")
    x, z = torch.rand(4, 3, 32, 32), torch.randn(4, 5)
    features = torch.cat([image(x), vector(z)], dim=1)
    assert features.shape == (4, 19)
    score = stem(0.5 * features)
    assert score.shape == (4, 1)
    score.sum().backward()
    for p in [*image.parameters(), *vector.parameters(), *stem.parameters()]:
        assert p.grad is not None
    # LeakyReLU(0.2) by default, as in GWAE's critic, and no normalisation layers
    modules = [*image.modules(), *vector.modules()]
    assert all(m.negative_slope == 0.2 for m in modules if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in modules)


def test_branches_accept_spectral_norm_on_every_layer():
    branch = ImageBranch(1, 28, 8, channels=SMALL)
    for m in list(branch.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
    assert branch(torch.rand(2, 1, 28, 28)).shape == (2, 8)
