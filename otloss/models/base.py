"""The shape every reference model shares, and its default networks.

A model is an ``nn.Module`` with ``encode(x)``, ``decode(z)``, ``sample(n)``,
``reconstruct(x)`` and ``losses(x) -> dict`` (the total under ``"loss"`` plus every term
as a tensor). Adversarial models add ``critic_losses(x) -> dict`` and
``critic_parameters()``; `otloss.train.Trainer` steps the critic's parameters with
one optimiser and all the others with another.

A model's critic is the submodule named by its class's `OTAutoencoder.critic_attribute`;
``has_critic`` (whether that submodule exists on this instance) is defined once, here, and
`critic_method` makes ``critic_losses`` and the base class's ``critic_parameters``
exist exactly on the instances that have a critic. So ``model.has_critic`` and the
trainer's test (`otloss.train.is_adversarial`: both methods present) agree.

Every model records the arguments it was built with: `OTAutoencoder.config` returns
them as plain values and `OTAutoencoder.from_config` rebuilds the model, which is how
`otloss.models.load_model` reloads a run.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from otloss._checks import check_min_samples
from otloss.nn import MLP, ConvDecoder, ConvEncoder
from otloss.ops import full_precision

__all__ = [
    "INITIAL_LOGVAR",
    "OTAutoencoder",
    "critic_method",
    "default_decoder",
    "default_encoder",
    "default_gaussian_encoder",
    "frozen",
    "he_init",
    "reparameterize",
    "squared_error",
]

#: Convolution channels of the papers' image networks.
ARCHITECTURES: dict[str, dict[str, tuple[int, ...]]] = {
    "gwae": {"channels": (32, 64, 128, 256), "hidden": ()},
    "tcwae": {"channels": (32, 32, 64, 64), "hidden": (256,)},
}


def _is_image(shape: Sequence[int]) -> bool:
    return len(shape) == 3


def default_encoder(
    data_shape: Sequence[int], out_features: int, *, arch: str = "gwae"
) -> nn.Module:
    """A convolutional encoder for ``(C, H, W)`` images, an MLP for ``(D,)`` vectors."""
    if _is_image(data_shape):
        c, h, w = data_shape
        return ConvEncoder(c, (h, w), out_features, **ARCHITECTURES[arch])
    if len(data_shape) != 1:
        raise ValueError(f"data_shape must be (C, H, W) or (D,), got {tuple(data_shape)}")
    return MLP(data_shape[0], out_features, hidden=(256, 256))


def default_decoder(latent_dim: int, data_shape: Sequence[int], *, arch: str = "gwae") -> nn.Module:
    """The mirror of `default_encoder`; images come out in ``[0, 1]`` (sigmoid)."""
    if _is_image(data_shape):
        c, h, w = data_shape
        return ConvDecoder(latent_dim, c, (h, w), output="sigmoid", **ARCHITECTURES[arch])
    if len(data_shape) != 1:
        raise ValueError(f"data_shape must be (C, H, W) or (D,), got {tuple(data_shape)}")
    return MLP(latent_dim, data_shape[0], hidden=(256, 256))


#: Initial log-variance of `default_gaussian_encoder`'s posteriors
#: ($\sigma \approx 0.05$).
INITIAL_LOGVAR = -6.0


def he_init(module: nn.Module) -> nn.Module:
    r"""Re-initialise every convolution and linear layer of ``module`` in place with He
    (Kaiming-normal, fan-in, ReLU gain) weights and zero biases; returns ``module``.

    PyTorch's default initialisation shrinks the signal's variance about six-fold per ReLU
    layer, so at the output of the six-layer default networks the codes of different
    images differ by about $10^{-3}$ (for the sparse sprites, $6 \cdot 10^{-4}$).
    A deterministic encoder still trains from there; a Gaussian one with unit posterior
    variance does not: its samples are pure noise, the decoder learns to ignore them and
    the encoder stays on the prior (TCWAE's and SWAE's collapse).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def default_gaussian_encoder(
    data_shape: Sequence[int], latent_dim: int, *, arch: str = "gwae",
    logvar: float = INITIAL_LOGVAR,
) -> nn.Module:
    r"""`default_encoder` with ``2 * latent_dim`` outputs (mean, log-variance) for a
    diagonal-Gaussian $q(z \mid x)$ that starts informative: `he_init` weights,
    and a last layer whose log-variance half has zero weights and bias ``logvar``, so every
    posterior starts with $\sigma^2 = e^{\text{logvar}}$ (default
    `INITIAL_LOGVAR`) around means that differ between inputs. (With PyTorch's
    default initialisation the means differ by $10^{-3}$ under unit-variance noise:
    the posterior starts equal to the prior and the reconstruction has no signal.)
    """
    net = he_init(default_encoder(data_shape, 2 * latent_dim, arch=arch))
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight[latent_dim:].zero_()
        last.bias[latent_dim:].fill_(float(logvar))
    return net


def squared_error(x: Tensor, x_hat: Tensor) -> Tensor:
    r"""Per-sample squared Euclidean error $\lVert x - \hat x\rVert_2^2$, shape ``(N,)``.

    The reconstruction cost $c(x, \hat x)$ of WAE, GWAE ($\xi = 2$), SWAE and
    GM-WAE: the Gaussian negative log-likelihood up to constants.
    """
    if x.shape != x_hat.shape:
        raise ValueError(
            f"x and its reconstruction must have the same shape, got {tuple(x.shape)} and "
            f"{tuple(x_hat.shape)}"
        )
    with full_precision(x, x_hat) as precision:
        diff = x.to(precision.compute) - x_hat.to(precision.compute)
        return diff.pow(2).flatten(1).sum(1).to(precision.result)


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    r"""A reparameterised draw $z = \mu + e^{\log\sigma^2 / 2} \odot \epsilon$,
    $\epsilon \sim N(0, I)$, from $N(\mu, \operatorname{diag}\sigma^2)$; same shape
    as ``mu``."""
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Within the block, ``module``'s parameters take no gradient (restored on exit).

    A generator objective that goes through a critic uses it so that its backward pass
    neither computes nor accumulates gradients on the critic.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class critic_method:
    """Decorator for ``critic_losses`` / ``critic_parameters`` of a model whose critic is
    optional: the method exists only on instances with ``has_critic`` true.

    On the others, reading the attribute raises ``AttributeError``, so ``hasattr(model,
    "critic_losses")`` is False and `otloss.train.Trainer` trains the model with a
    single optimiser.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        if not obj.has_critic:
            raise AttributeError(
                f"this {type(obj).__name__} has no critic, so no {self.__name__}()"
            )
        return types.MethodType(self.fn, obj)


class OTAutoencoder(nn.Module):
    """Base class of the reference models: an encoder, a decoder and a prior.

    Args:
        encoder: maps data ``(N, *data_shape)`` to ``(N, code_features)``.
        decoder: maps codes ``(N, L)`` to data ``(N, *data_shape)``.
        prior: a module from `otloss.priors` (``.rsample(n)``, ``.latent_dim``).
        data_shape: shape of one sample, ``(C, H, W)`` or ``(D,)``.
    """

    #: Suggested `otloss.train.TrainConfig` fields (the paper's optimiser settings).
    training_defaults: ClassVar[dict[str, Any]] = {}

    #: Name of the submodule that ``critic_losses`` trains (a critic or discriminator), or
    #: ``None`` for models without one; an instance whose submodule is ``None`` has none.
    critic_attribute: ClassVar[str | None] = None

    def __new__(cls, *args: Any, **kwargs: Any) -> OTAutoencoder:
        """Record the constructor's arguments (defaults filled in) for `config`."""
        self = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(self, *args, **kwargs)
        except TypeError:  # copy/pickle call __new__ alone; __init__ reports bad calls
            return self
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop(next(iter(bound.signature.parameters)))  # self
        for name, parameter in bound.signature.parameters.items():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:  # a subclass's **kwargs
                arguments.update(arguments.pop(name))
        object.__setattr__(self, "_init_arguments", arguments)
        return self

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, prior: nn.Module, data_shape: Sequence[int]
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.data_shape = tuple(int(s) for s in data_shape)

    @property
    def latent_dim(self) -> int:
        """Width ``L`` of the latent codes."""
        return int(self.prior.latent_dim)

    def check_data(self, x: Tensor, *, min_samples: int = 1, why: str = "this model") -> Tensor:
        """Require a floating batch ``(N, *data_shape)`` of at least ``min_samples``."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__}")
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.data_shape))}), "
                f"got {tuple(x.shape)}"
            )
        check_min_samples("x", x.shape[0], min_samples, why)
        return x

    def encode(self, x: Tensor) -> Tensor:
        """Deterministic codes ``(N, L)`` (the posterior mean for Gaussian encoders)."""
        raise NotImplementedError

    def gaussian_posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Split the encoder's ``(N, 2 L)`` output into the mean and log-variance of
        a diagonal-Gaussian $q(z | x)$, each ``(N, L)``."""
        out = self.encoder(self.check_data(x))
        if out.dim() != 2 or out.shape[1] != 2 * self.latent_dim:
            raise ValueError(
                f"the encoder must return (N, 2 * latent_dim) = (N, {2 * self.latent_dim}) "
                f"(mean and log-variance), got {tuple(out.shape)}"
            )
        mu, logvar = out.chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Data ``(N, *data_shape)`` from codes ``(N, L)``."""
        return self.decoder(z)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` generated samples: ``decode(z)`` with ``z`` from the prior."""
        return self.decode(self.prior.rsample(n))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """``decode(encode(x))``."""
        return self.decode(self.encode(self.check_data(x)))

    def losses(self, x: Tensor) -> dict[str, Tensor]:
        """The training objective under ``"loss"`` and each of its terms."""
        raise NotImplementedError

    @property
    def has_critic(self) -> bool:
        """Whether this model has a critic (the submodule `critic_attribute` names)
        trained by ``critic_losses`` with its own optimiser."""
        name = self.critic_attribute
        return name is not None and getattr(self, name, None) is not None

    @critic_method
    def critic_parameters(self) -> Iterator[nn.Parameter]:
        """The critic's parameters (trained by their own optimiser); only on models that
        have a critic."""
        return getattr(self, self.critic_attribute).parameters()

    # -- constructor arguments -------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The arguments this model was built with, as JSON-ready plain values.

        Returns:
            ``{"class": "<module>.<name>", "arguments": {name: value, ...}}`` with every
            constructor argument (defaults filled in; tuples as lists).

        Raises:
            TypeError: an argument is not a plain value (e.g. a custom ``encoder`` module):
                such a model cannot be rebuilt from its arguments alone.
        """
        cls = type(self)
        if "_init_arguments" not in self.__dict__:
            raise TypeError(f"this {cls.__name__} was built from modules, not from arguments")
        arguments = self.__dict__["_init_arguments"]
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "arguments": {name: _plain(cls.__name__, name, v) for name, v in arguments.items()},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OTAutoencoder:
        """A new, untrained model built with the arguments of `config`'s output.

        Raises:
            ValueError: ``config`` describes another class.
        """
        name = f"{cls.__module__}.{cls.__qualname__}"
        if config.get("class", name) != name:
            raise ValueError(f"the config describes {config['class']}, not {name}")
        return cls(**config["arguments"])


def _plain(owner: str, name: str, value: Any) -> Any:
    """``value`` as JSON-ready data (tuples as lists), or a TypeError naming the argument."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(owner, name, v) for v in value]
    raise TypeError(
        f"{owner}({name}=...) is a {type(value).__name__}, not a plain value: the model "
        "cannot be rebuilt from its arguments (build it yourself and load the checkpoint's "
        "state dict)"
    )
