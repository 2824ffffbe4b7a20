r"""Symmetric Wasserstein autoencoder (SWAE, Sun and Guo, 2020).

SWAE matches the joint distributions of the encoder, $(x_e, z_e = E(x_e))$, and of
the decoder, $(x_d = D(z_d), z_d)$, with an optimal-transport cost on the product
space. With a deterministic encoder and decoder the coupling reduces to a conditional
prior $p(z_d \mid x_e)$ (Theorem 1), and adding a reconstruction term gives (eq. 10)

$$
\mathbb{E}_{p(x_e)} \mathbb{E}_{p(z_d \mid x_e)}\;
    \beta\, \underbrace{\lVert x_e - D(z_d) \rVert_2^2}_{\text{x-loss}}
    + (1 - \beta)\, \underbrace{\lVert x_e - D(E(x_e)) \rVert_2^2}_{\text{reconstruction}}
    + \alpha\, \underbrace{\lVert E(x_e) - z_d \rVert_2^2}_{\text{z-loss}}.
$$

The prior is learnable (`otloss.priors.PseudoInputPrior`): a uniform mixture of
Gaussian conditional priors $p_\gamma(z \mid u_k)$ given $K$ learnable
pseudo-inputs $u_k$ in data space. Algorithm 1 draws each sample's
$z_d$ from the component of the pseudo-input nearest to it (in data space, or in
latent space through the encoder as the paper's faster approximation), with the
reparameterisation trick, so the x-loss trains the decoder and the prior, the z-loss the
encoder and the prior, and the reconstruction the encoder and the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from otloss._checks import check_choice, check_count, check_nonnegative, check_prior_matches
from otloss.models.base import (
    OTAutoencoder,
    default_decoder,
    default_encoder,
    default_gaussian_encoder,
    he_init,
    squared_error,
)
from otloss.priors import PseudoInputPrior

__all__ = ["SWAE"]

#: How the nearest pseudo-input is chosen: L2 in data space (the paper's choice), L2
#: between the codes E(x) and E(u_k) (its faster approximation), or cosine similarity.
NEAREST = ("data", "latent", "cosine")


class SWAE(OTAutoencoder):
    r"""Symmetric WAE: $\beta\,\lVert x - D(z_d)\rVert^2 + (1 - \beta)\,\lVert x -
    D(E(x))\rVert^2 + \alpha\,\lVert E(x) - z_d\rVert^2$, with $z_d$ drawn from the
    conditional prior of each sample's nearest pseudo-input (see the module docstring).

    The encoder $E$ and decoder $D$ are deterministic. The prior's conditional
    network $p_\gamma(z \mid u)$ is a separate encoder-shaped network (its own
    parameters $\gamma$) giving a mean and a log-variance. Initialise the
    pseudo-inputs from training samples, as the paper does, with
    `init_pseudo_inputs`. Samples are ``decode(prior.rsample(n))``, $z$ drawn
    uniformly over the components.

    Defaults follow the paper: $\beta = 0.5$, $\alpha = 1$, $K = 4000$
    pseudo-inputs (MNIST, Fashion-MNIST; 500 for small datasets), $L = 8$, nearest
    pseudo-input by L2 in data space, Adam at $10^{-3}$ (`training_defaults`).
    The paper's VampPrior gated convolutional networks are replaced by otloss's
    (``arch``), He-initialised, the conditional prior's log-variances starting at
    $-6$ (`default_gaussian_encoder`), so the codes and
    conditional means of different inputs differ from the first step (why:
    ``docs/models.md``, "Initialisation of the default networks").

    Args:
        data_shape: shape of one sample, ``(C, H, W)`` or ``(D,)``.
        latent_dim: $L$.
        n_pseudo: $K$, the number of pseudo-inputs (ignored when ``prior`` is given).
        beta: $\beta \in [0, 1]$, the share of the x-loss against the reconstruction
            (1: no reconstruction term, the pure symmetric objective of eq. 8).
        alpha: $\alpha \ge 0$, the weight of the z-loss.
        nearest: ``"data"``, ``"latent"`` or ``"cosine"`` (see `NEAREST`).
        data_range: ``(low, high)`` the default prior clamps its pseudo-inputs to (images in
            ``[0, 1]``); ``None`` for unbounded data (ignored when ``prior`` is given).
        arch: default image networks, ``"gwae"`` or ``"tcwae"``.
        prior: a `otloss.priors.PseudoInputPrior` replacing the default one.
        encoder: data to ``(N, L)`` codes; replaces the default.
        decoder: ``(N, L)`` codes to data; replaces the default.

    Shape:
        - x: ``(N, *data_shape)``.

    Examples:
        >>> model = SWAE((1, 28, 28), n_pseudo=500)
        >>> model.init_pseudo_inputs(train_images[:500])
        >>> model.losses(torch.rand(64, 1, 28, 28))["loss"].backward()
    """

    training_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adam",
        "lr": 1e-3,
        "betas": (0.9, 0.999),
    }

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 8,
        *,
        n_pseudo: int = 4000,
        beta: float = 0.5,
        alpha: float = 1.0,
        nearest: str = "data",
        data_range: tuple[float, float] | None = (0.0, 1.0),
        arch: str = "gwae",
        prior: PseudoInputPrior | None = None,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        latent_dim = check_count("latent_dim", latent_dim)
        data_shape = tuple(int(s) for s in data_shape)
        beta = check_nonnegative("beta", beta)
        if beta > 1:
            raise ValueError(f"beta must be in [0, 1] (a share of the x-loss), got {beta}")
        alpha = check_nonnegative("alpha", alpha)
        check_choice("nearest", nearest, NEAREST)
        if prior is None:
            conditional = default_gaussian_encoder(data_shape, latent_dim, arch=arch)
            prior = PseudoInputPrior(
                conditional, check_count("n_pseudo", n_pseudo), data_shape, data_range=data_range
            )
        elif not isinstance(prior, PseudoInputPrior):
            raise TypeError(
                f"prior must be an otloss.priors.PseudoInputPrior, got {type(prior).__name__}"
            )
        check_prior_matches(prior, latent_dim=latent_dim)
        super().__init__(
            encoder if encoder is not None else he_init(default_encoder(data_shape, latent_dim,
                                                                        arch=arch)),
            decoder if decoder is not None else he_init(default_decoder(latent_dim, data_shape,
                                                                        arch=arch)),
            prior,
            data_shape,
        )
        self.beta = beta
        self.alpha = alpha
        self.nearest = nearest

    def encode(self, x: Tensor) -> Tensor:
        """The deterministic codes $E(x)$, ``(N, L)``."""
        z = self.encoder(self.check_data(x))
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"the encoder must return (N, latent_dim) = (N, {self.latent_dim}) codes, got "
                f"{tuple(z.shape)}"
            )
        return z

    def prior_codes(self, x: Tensor) -> Tensor:
        r"""$z_d \sim p_\gamma(z \mid u^{(n)})$ for each sample, $u^{(n)}$ its
        nearest pseudo-input (Algorithm 1, steps 2-3); reparameterised, ``(N, L)``."""
        x = self.check_data(x)
        encoder = self.encoder if self.nearest == "latent" else None
        return self.prior.rsample_nearest(x, space=self.nearest, encoder=encoder)

    @torch.no_grad()
    def init_pseudo_inputs(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """Set the pseudo-inputs to ``K`` training samples drawn from ``x`` ``(M,
        *data_shape)`` (without replacement when ``M >= K``), as the paper initialises them."""
        self.prior.init_from_data(self.check_data(x), generator=generator)

    def losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""The SWAE objective (Algorithm 1, step 4) and its terms on one batch.

        Returns:
            dict of scalars, batch means: ``loss``, ``x_loss`` ($\lVert x -
            D(z_d)\rVert^2$), ``reconstruction`` ($\lVert x - D(E(x))\rVert^2$) and
            ``z_loss`` ($\lVert E(x) - z_d\rVert^2$), unweighted.
        """
        x = self.check_data(x)
        n = x.shape[0]
        z_e = self.encode(x)
        z_d = self.prior_codes(x).to(z_e)
        # One decoder pass for both codes (the default decoders have no batch statistics).
        x_d, x_e = self.decode(torch.cat([z_d, z_e])).split(n)
        x_loss = squared_error(x, x_d).mean()
        reconstruction = squared_error(x, x_e).mean()
        z_loss = squared_error(z_e, z_d).mean()
        loss = self.beta * x_loss + (1 - self.beta) * reconstruction + self.alpha * z_loss
        return {
            "loss": loss,
            "x_loss": x_loss,
            "reconstruction": reconstruction,
            "z_loss": z_loss,
        }
