"""Small reusable networks: convolutional encoders and decoders, MLPs, Y-critic branches.

The convolutional networks follow the papers' architectures: a stack of 4x4 convolutions
with stride 2 and padding 1, each halving the image (GWAE: 32-64-128-256 channels;
TCWAE: 32-32-64-64), then fully connected layers. The decoder mirrors the encoder with
transposed convolutions, so any image of at least ``2 ** len(channels)`` pixels a side
works: 28x28 MNIST (28 -> 14 -> 7 -> 3 -> 1), 32x32 and 64x64 CelebA (64 -> 4).

The Y-shaped joint critic of GWAE (paper's Table 7) reads an image through
`ImageBranch` and a latent code through `VectorBranch`, concatenates the
two feature vectors and scores them with an `MLP` stem. The branches contain no
normalisation layers, so spectral normalisation and the gradient penalty of
``otloss.KantorovichCritic`` apply to them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

from torch import Tensor, nn

from otloss._checks import check_batch_shape, check_count, check_image_shape, check_widths

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "ConvDecoder",
    "ConvEncoder",
    "ImageBranch",
    "VectorBranch",
    "feature_sizes",
]

#: Activation names accepted by every network here (LeakyReLU uses the GWAE critic's 0.2).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
}

Activation = str | Callable[[], nn.Module]

_KERNEL, _STRIDE, _PADDING = 4, 2, 1  # each convolution halves the image (floor)


def _activation(activation: Activation) -> nn.Module:
    """A fresh activation module from a name in ACTIVATIONS or a zero-argument factory."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            names = ", ".join(map(repr, ACTIVATIONS))
            raise ValueError(f"unknown activation {activation!r}; expected one of {names}")
        return ACTIVATIONS[activation]()
    if callable(activation):
        module = activation()
        if not isinstance(module, nn.Module):
            raise TypeError(f"activation factory must return an nn.Module, got {type(module)}")
        return module
    raise TypeError(f"activation must be a name or a callable, got {type(activation).__name__}")


def feature_sizes(image_size: int | Sequence[int], depth: int) -> list[tuple[int, int]]:
    """Spatial sizes ``[(H, W), ..., (H_depth, W_depth)]`` through ``depth`` stride-2 convolutions.

    Each 4x4 convolution with stride 2 and padding 1 maps a side ``s`` to ``floor(s / 2)``.

    Raises:
        ValueError: the image is smaller than ``2 ** depth`` pixels on a side, so a feature
            map would vanish.
    """
    height, width = check_image_shape(image_size)
    if min(height, width) < 2**depth:
        raise ValueError(
            f"image_size {(height, width)} is too small for {depth} stride-2 convolutions: "
            f"each side needs at least {2**depth} pixels; use fewer channels or a larger image"
        )
    sizes = [(height, width)]
    for _ in range(depth):
        h, w = sizes[-1]
        sizes.append((h // 2, w // 2))
    return sizes


class MLP(nn.Sequential):
    r"""Fully connected network ``Linear -> act -> ... -> Linear``.

    Args:
        in_features: input width.
        out_features: output width (the last layer is linear, no activation).
        hidden: widths of the hidden layers; ``()`` gives a single linear layer.
        activation: a name from `ACTIVATIONS` or a zero-argument factory
            returning an ``nn.Module`` (e.g. ``functools.partial(nn.LeakyReLU, 0.1)``).

    Shape:
        - Input: ``(N, in_features)``.
        - Output: ``(N, out_features)``.

    Examples:
        >>> net = MLP(10, 1, hidden=(1000,) * 6)   # TCWAE / FactorVAE discriminator trunk
        >>> net(torch.randn(64, 10)).shape
        torch.Size([64, 1])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (256, 256),
        *,
        activation: Activation = "relu",
    ) -> None:
        widths = (
            check_count("in_features", in_features),
            *check_widths("hidden", hidden, allow_empty=True),
            check_count("out_features", out_features),
        )
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(pairwise(widths)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(widths) - 2:
                layers.append(_activation(activation))
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        check_batch_shape("x", x, (self.in_features,), "a batch of vectors")
        return super().forward(x)


class ConvEncoder(nn.Module):
    r"""Convolutional encoder: stride-2 4x4 convolutions, then fully connected layers.

    ``len(channels)`` convolutions with padding 1 halve the image each time, e.g. for a
    64x64 input and the GWAE channels ``(32, 64, 128, 256)``: 64 -> 32 -> 16 -> 8 -> 4,
    flattened to 256 * 4 * 4 features, then ``hidden`` fully connected layers and a linear
    output. TCWAE's encoder is ``channels=(32, 32, 64, 64), hidden=(256,)``. A Gaussian
    encoder uses ``out_features = 2 * latent_dim`` and splits the output into the mean and
    the log-variance.

    Args:
        in_channels: image channels (1 for MNIST, 3 for CelebA).
        image_size: side length ``S`` of square images, or ``(H, W)``; each side must be
            at least ``2 ** len(channels)``.
        out_features: width of the (linear) output.
        channels: output channels of the successive convolutions.
        hidden: widths of fully connected layers between the convolutions and the output.
        activation: a name from `ACTIVATIONS` or a zero-argument module factory,
            used after every convolution and hidden layer.

    Shape:
        - Input: ``(N, in_channels, H, W)``.
        - Output: ``(N, out_features)``.

    Raises:
        ValueError: the image is too small for the number of convolutions, or a width is
            not positive; at call time, an input whose shape is not ``(N, C, H, W)``.

    Examples:
        >>> enc = ConvEncoder(1, 28, 2 * 16)
        >>> mu, logvar = enc(torch.rand(8, 1, 28, 28)).chunk(2, dim=1)
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int | Sequence[int],
        out_features: int,
        *,
        channels: Sequence[int] = (32, 64, 128, 256),
        hidden: Sequence[int] = (),
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        self.in_channels = check_count("in_channels", in_channels)
        self.out_features = check_count("out_features", out_features)
        channels = check_widths("channels", channels, allow_empty=False)
        sizes = feature_sizes(image_size, len(channels))
        self.image_size = sizes[0]
        layers: list[nn.Module] = []
        for n_in, n_out in zip((in_channels, *channels[:-1]), channels, strict=True):
            layers += [nn.Conv2d(n_in, n_out, _KERNEL, _STRIDE, _PADDING), _activation(activation)]
        self.convs = nn.Sequential(*layers, nn.Flatten())
        h, w = sizes[-1]
        self.head = MLP(channels[-1] * h * w, out_features, hidden, activation=activation)

    def forward(self, x: Tensor) -> Tensor:
        check_batch_shape("x", x, (self.in_channels, *self.image_size), "a batch of images")
        return self.head(self.convs(x))


class ConvDecoder(nn.Module):
    r"""Convolutional decoder mirroring `ConvEncoder` with transposed convolutions.

    A latent code goes through ``hidden`` fully connected layers to a
    ``channels[-1] x h x w`` feature map (``h, w`` the encoder's last spatial size), then
    through transposed 4x4 convolutions with stride 2 over ``reversed(channels)`` to
    ``out_channels``. Each transposed convolution doubles the map, plus one row or column
    where the encoder's floor division dropped one, so the output is exactly
    ``image_size`` (28x28 comes back as 1 -> 3 -> 7 -> 14 -> 28).

    Args:
        latent_dim: width ``L`` of the latent code.
        out_channels: image channels.
        image_size: side length of square images, or ``(H, W)``.
        channels: the encoder's convolution channels (traversed in reverse).
        hidden: widths of fully connected layers before the feature map (TCWAE: ``(256,)``).
        activation: a name from `ACTIVATIONS` or a zero-argument module factory.
        output: ``"logits"`` (no final activation: for Bernoulli/BCE-with-logits losses or
            unbounded data) or ``"sigmoid"`` (pixels in ``[0, 1]``).

    Shape:
        - Input: ``(N, latent_dim)``.
        - Output: ``(N, out_channels, H, W)``.

    Examples:
        >>> dec = ConvDecoder(16, 3, 64, output="sigmoid")
        >>> dec(torch.randn(8, 16)).shape
        torch.Size([8, 3, 64, 64])
    """

    def __init__(
        self,
        latent_dim: int,
        out_channels: int,
        image_size: int | Sequence[int],
        *,
        channels: Sequence[int] = (32, 64, 128, 256),
        hidden: Sequence[int] = (),
        activation: Activation = "relu",
        output: str = "logits",
    ) -> None:
        super().__init__()
        if output not in ("logits", "sigmoid"):
            raise ValueError(f"unknown output {output!r}; expected 'logits' or 'sigmoid'")
        self.latent_dim = check_count("latent_dim", latent_dim)
        self.out_channels = check_count("out_channels", out_channels)
        self.output = output
        channels = check_widths("channels", channels, allow_empty=False)
        sizes = feature_sizes(image_size, len(channels))
        self.image_size = sizes[0]
        self._map_shape = (channels[-1], *sizes[-1])
        n_map = channels[-1] * sizes[-1][0] * sizes[-1][1]
        self.head = nn.Sequential(
            MLP(latent_dim, n_map, hidden, activation=activation), _activation(activation)
        )
        layers: list[nn.Module] = []
        widths = (*reversed(channels), out_channels)
        upsampled = list(reversed(sizes))  # the encoder's feature sizes, last to first
        for i, (n_in, n_out) in enumerate(pairwise(widths)):
            (h, w), (target_h, target_w) = upsampled[i], upsampled[i + 1]
            extra = (target_h - 2 * h, target_w - 2 * w)  # the row/column floor(s / 2) dropped
            layers.append(
                nn.ConvTranspose2d(n_in, n_out, _KERNEL, _STRIDE, _PADDING, output_padding=extra)
            )
            if i < len(channels) - 1:
                layers.append(_activation(activation))
        if output == "sigmoid":
            layers.append(nn.Sigmoid())
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        check_batch_shape("z", z, (self.latent_dim,), "a batch of latent codes")
        return self.deconvs(self.head(z).view(z.shape[0], *self._map_shape))


class ImageBranch(nn.Sequential):
    r"""Image side of a Y-shaped joint critic: a `ConvEncoder` and an activation.

    The features ``phi(x)`` of width ``out_features`` are meant to be concatenated with a
    `VectorBranch`'s features of the latent code and scored by a stem network
    (GWAE's Table 7: LeakyReLU(0.2) everywhere, spectral normalisation applied by the
    critic wrapper). No normalisation layers, so the Lipschitz constraints carry over.

    Args:
        in_channels: image channels.
        image_size: side length of square images, or ``(H, W)``.
        out_features: width of the feature vector.
        channels: convolution channels (default: GWAE's).
        hidden: fully connected widths before the feature layer.
        activation: a name from `ACTIVATIONS` or a zero-argument module factory.

    Attributes:
        out_features: the feature width, for sizing the stem
            (``stem_in = image_branch.out_features + vector_branch.out_features``).

    Shape:
        - Input: ``(N, in_channels, H, W)``.
        - Output: ``(N, out_features)``.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int | Sequence[int],
        out_features: int = 256,
        *,
        channels: Sequence[int] = (32, 64, 128, 256),
        hidden: Sequence[int] = (),
        activation: Activation = "leaky_relu",
    ) -> None:
        encoder = ConvEncoder(
            in_channels,
            image_size,
            out_features,
            channels=channels,
            hidden=hidden,
            activation=activation,
        )
        super().__init__(encoder, _activation(activation))
        self.out_features = out_features


class VectorBranch(nn.Sequential):
    r"""Vector side of a Y-shaped joint critic (the latent code, or flattened data).

    An `MLP` followed by an activation, so its output is a feature vector like
    `ImageBranch`'s.

    Args:
        in_features: input width (the latent dimension ``L``).
        out_features: width of the feature vector.
        hidden: hidden widths.
        activation: a name from `ACTIVATIONS` or a zero-argument module factory.

    Attributes:
        out_features: the feature width.

    Shape:
        - Input: ``(N, in_features)``.
        - Output: ``(N, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int = 256,
        *,
        hidden: Sequence[int] = (256,),
        activation: Activation = "leaky_relu",
    ) -> None:
        mlp = MLP(in_features, out_features, hidden, activation=activation)
        super().__init__(mlp, _activation(activation))
        self.in_features = in_features
        self.out_features = out_features
