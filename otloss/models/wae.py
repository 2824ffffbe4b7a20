r"""Wasserstein autoencoder (WAE, Tolstikhin et al., ICLR 2018).

WAE minimises a relaxation of the optimal-transport cost between the data and the model,

$$
\min_{Q(z | x),\, G}\; \mathbb{E}_{P_X} \mathbb{E}_{Q(z | x)}\, c(x, G(z))
    + \lambda\, \mathcal{D}_Z(Q_Z, P_Z),
$$

with $c(x, y) = \lVert x - y \rVert_2^2$, $Q_Z$ the aggregated posterior and
$P_Z$ the prior. Two penalties $\mathcal{D}_Z$:

- **WAE-MMD**: the squared MMD with the multi-scale IMQ kernel (`otloss.MMD`),
  unbiased over the batch;
- **WAE-GAN**: the Jensen-Shannon divergence estimated by a latent discriminator
  $D(z)$ (prior codes "real", encoded codes "fake"); the encoder minimises
  $-\log D(\tilde z)$ (the non-saturating GAN loss of the paper's Algorithm 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from otloss._checks import check_choice, check_count, check_nonnegative, check_prior_matches
from otloss.mmd import MMD
from otloss.models.base import (
    OTAutoencoder,
    critic_method,
    default_decoder,
    default_encoder,
    frozen,
    reparameterize,
    squared_error,
)
from otloss.nn import MLP
from otloss.ops import loss_precision
from otloss.priors import StandardNormal

__all__ = ["WAE"]

REGULARIZERS = ("mmd", "gan")
#: The paper's latent-penalty weights on MNIST (section 4).
_DEFAULT_LAMBDA = {"mmd": 10.0, "gan": 1.0}
#: The paper's adversary: 4 hidden layers of 512 units.
_DISCRIMINATOR_HIDDEN = (512, 512, 512, 512)


class WAE(OTAutoencoder):
    r"""Wasserstein autoencoder: $\mathbb{E}\lVert x - G(z)\rVert^2 + \lambda
    \mathcal{D}_Z(Q_Z, P_Z)$, with an MMD (WAE-MMD) or a latent discriminator (WAE-GAN).

    The encoder is deterministic by default, as in the paper's experiments; with
    ``stochastic_encoder=True`` it outputs a diagonal Gaussian, sampled with the
    reparameterisation trick. Defaults: $\lambda = 10$ for MMD and 1 for GAN,
    $L = 8$ (the paper's MNIST settings), Adam at $10^{-3}$ (generator) and
    $5 \cdot 10^{-4}$ (discriminator) in `training_defaults`.

    **WAE-MMD** uses `otloss.MMD` (IMQ, scales ``(0.1, ..., 10)`` of
    $c_0 = 2L$, which assumes a unit-variance prior; pass ``mmd=MMD(bandwidth=...)``
    for another prior scale). Its unbiased estimate can be slightly negative.

    **WAE-GAN** adds a discriminator $D$ (an MLP with 4 hidden layers of 512 units,
    one logit). `critic_losses` trains it with the cross-entropy
    $-\log D(z_p) - \log(1 - D(\tilde z))$ on detached codes; `losses`
    charges the encoder $\lambda\,\mathbb{E}[-\log D(\tilde z)]$ with the
    discriminator frozen. (The paper's Algorithm 1 also multiplies the discriminator's
    loss by $\lambda$; that only rescales its step, which Adam undoes.) The methods
    `critic_losses` and `critic_parameters` exist only for
    ``regularizer="gan"``.

    Args:
        data_shape: shape of one sample, ``(C, H, W)`` or ``(D,)``.
        latent_dim: $L$.
        regularizer: ``"mmd"`` or ``"gan"``.
        lambda_z: $\lambda$; ``None`` takes 10 (MMD) or 1 (GAN).
        prior: a prior module (``rsample``, ``latent_dim``); default N(0, I).
        stochastic_encoder: Gaussian encoder instead of a deterministic one.
        mmd: the MMD module for ``regularizer="mmd"`` (default ``MMD(kernel="imq")``).
        encoder: replaces the default encoder (it must output ``L`` features, or ``2 L``
            when stochastic).
        decoder: replaces the default decoder.
        discriminator: replaces the default discriminator (``(N, L) -> (N,)`` or
            ``(N, 1)`` logits).

    Shape:
        - x: ``(N, *data_shape)``, ``N >= 2`` for the unbiased MMD.

    Examples:
        >>> model = WAE((1, 28, 28))                 # WAE-MMD
        >>> model.losses(torch.rand(32, 1, 28, 28))["loss"].backward()
    """

    critic_attribute: ClassVar[str | None] = "discriminator"
    training_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adam",
        "lr": 1e-3,
        "critic_lr": 5e-4,
        "betas": (0.5, 0.999),
        "batch_size": 100,
    }

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 8,
        *,
        regularizer: str = "mmd",
        lambda_z: float | None = None,
        prior: nn.Module | None = None,
        stochastic_encoder: bool = False,
        mmd: nn.Module | None = None,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        discriminator: nn.Module | None = None,
    ) -> None:
        latent_dim = check_count("latent_dim", latent_dim)
        self.regularizer = check_choice("regularizer", regularizer, REGULARIZERS)
        lam = _DEFAULT_LAMBDA[regularizer] if lambda_z is None else lambda_z
        lam = check_nonnegative("lambda_z", lam)
        prior = StandardNormal(latent_dim) if prior is None else prior
        check_prior_matches(prior, latent_dim=latent_dim)
        data_shape = tuple(int(s) for s in data_shape)
        code_features = 2 * latent_dim if stochastic_encoder else latent_dim
        super().__init__(
            encoder if encoder is not None else default_encoder(data_shape, code_features),
            decoder if decoder is not None else default_decoder(latent_dim, data_shape),
            prior,
            data_shape,
        )
        self.lambda_z = float(lam)
        self.stochastic_encoder = bool(stochastic_encoder)
        self.code_features = code_features
        if regularizer == "mmd":
            if discriminator is not None:
                raise ValueError("a discriminator is used only with regularizer='gan'")
            self.mmd = mmd if mmd is not None else MMD(kernel="imq")
            self.discriminator = None
        else:
            if mmd is not None:
                raise ValueError("an mmd module is used only with regularizer='mmd'")
            self.mmd = None
            self.discriminator = (
                discriminator
                if discriminator is not None
                else MLP(latent_dim, 1, hidden=_DISCRIMINATOR_HIDDEN)
            )

    def _codes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's deterministic code (or mean) and a sample of $Q(z | x)$."""
        out = self.encoder(self.check_data(x))
        if out.dim() != 2 or out.shape[1] != self.code_features:
            raise ValueError(
                f"the encoder must return (N, {self.code_features}) codes, got {tuple(out.shape)}"
            )
        if not self.stochastic_encoder:
            return out, out
        mu, logvar = out.chunk(2, dim=1)
        return mu, reparameterize(mu, logvar)

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(N, L)``: the encoder's output, or its mean when stochastic."""
        return self._codes(x)[0]

    def _logits(self, z: Tensor) -> Tensor:
        out = self.discriminator(z)
        out = out.to(loss_precision(out).result)  # float32 logits under autocast
        if out.dim() == 2 and out.shape[1] == 1:
            out = out.squeeze(1)
        if out.shape != (z.shape[0],):
            raise ValueError(
                f"the discriminator must return ({z.shape[0]},) or ({z.shape[0]}, 1) logits, "
                f"got {tuple(out.shape)}"
            )
        return out

    def losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""The WAE objective and its terms on one batch.

        Returns:
            dict of scalars: ``loss``, ``reconstruction`` ($\mathbb{E}\lVert x -
            G(z)\rVert^2$) and ``mmd`` (the squared MMD) or ``gan`` ($\mathbb{E}[-\log
            D(\tilde z)]$), unweighted.
        """
        x = self.check_data(x)
        _, z = self._codes(x)
        reconstruction = squared_error(x, self.decode(z)).mean()
        if self.mmd is not None:
            name, penalty = "mmd", self.mmd(z, self.prior.rsample(x.shape[0]).to(z))
        else:
            with frozen(self.discriminator):
                name, penalty = "gan", F.softplus(-self._logits(z)).mean()
        loss = reconstruction + self.lambda_z * penalty
        return {"loss": loss, "reconstruction": reconstruction, name: penalty}

    @critic_method
    def critic_losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""WAE-GAN's discriminator objective: ``loss`` = $\mathbb{E}[-\log D(z_p)]
        + \mathbb{E}[-\log(1 - D(\tilde z))]$ on codes drawn without a graph, and
        ``accuracy`` (fraction of codes classified correctly, detached)."""
        with torch.no_grad():
            _, z_q = self._codes(x)
            z_p = self.prior.rsample(z_q.shape[0]).to(z_q)
        logits = self._logits(torch.cat([z_p, z_q]))
        real, fake = logits.split(z_q.shape[0])
        loss = F.softplus(-real).mean() + F.softplus(fake).mean()
        accuracy = 0.5 * ((real > 0).float().mean() + (fake < 0).float().mean())
        return {"loss": loss, "accuracy": accuracy.detach()}
