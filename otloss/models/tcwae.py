r"""Total-correlation Wasserstein autoencoder (TCWAE, Gaujac, Feige and Barber, 2021).

TCWAE takes the KL divergence as the latent divergence of the WAE objective, splits it as
in β-TCVAE and re-weights the two parts that concern the aggregate posterior
$q(z) = \mathbb{E}_{p(x)} q(z \mid x)$ (eq. 8):

$$
W_{TC} = \mathbb{E}_{p(x)} \mathbb{E}_{q(z \mid x)}\, c(x, G(z))
    + \beta\, \underbrace{\mathrm{KL}\Bigl(q(z) \,\Big\|\, \prod_{d} q_d(z_d)\Bigr)}_{\text{tc}}
    + \gamma \sum_{d=1}^{L}
        \underbrace{\mathrm{KL}(q_d(z_d) \,\|\, p_d(z_d))}_{\text{dimwise\_kl}},
$$

with a Gaussian encoder $q(z \mid x) = N(\mu(x), \operatorname{diag}\sigma^2(x))$, a
deterministic decoder $G$, and the factorised prior $p = N(0, I)$. It upper
bounds the WAE objective with $\lambda = \min(\beta, \gamma)$. The two KL terms are
intractable and estimated on the minibatch:

- **TCWAE-MWS** (``estimator="mws"``): minibatch-weighted sampling (Chen et al., 2018), the
  paper's choice; needs the dataset size $N$; biased (the TC is offset upwards by
  about $(L - 1) \log N$, a nearly constant shift), see `otloss.tc`.
- ``estimator="mss"``: minibatch-stratified sampling with the correct weight matrix;
  consistent.
- **TCWAE-GAN** (``estimator="gan"``): the density-ratio trick (Kim and Mnih, 2018), one
  discriminator telling $q(z)$ from its dimension-permuted codes
  (`otloss.tc.DensityRatioTC`) and one telling permuted codes from prior samples
  (`otloss.tc.DensityRatioDimwiseKL`); both are trained in their own step
  (`TCWAE.critic_losses`) on detached codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from otloss._checks import check_choice, check_count, check_nonnegative
from otloss.models.base import (
    OTAutoencoder,
    critic_method,
    default_decoder,
    default_gaussian_encoder,
    frozen,
    he_init,
    reparameterize,
    squared_error,
)
from otloss.priors import StandardNormal
from otloss.tc import DensityRatioDimwiseKL, DensityRatioTC, TotalCorrelation

__all__ = ["TCWAE"]

ESTIMATORS = ("mws", "mss", "gan")
COSTS = ("squared", "l1", "cross_entropy")

#: The paper's (beta, gamma): dSprites with the cross-entropy (Tables 1 and 5), smallNORB
#: with the L1 and squared L2 costs (Tables 1 and 5). MSS takes the MWS values.
PAPER_WEIGHTS: dict[tuple[str, str], tuple[float, float]] = {
    ("mws", "cross_entropy"): (50.0, 100.0),
    ("gan", "cross_entropy"): (100.0, 5.0),
    ("mws", "l1"): (2.0, 4.0),
    ("gan", "l1"): (4.0, 1.0),
    ("mws", "squared"): (4.0, 8.0),
    ("gan", "squared"): (4.0, 1.0),
}

#: The discriminator of Table 3: 6 hidden layers of 1000 ReLU units, two logits.
_DISCRIMINATOR_HIDDEN, _DISCRIMINATOR_DEPTH = 1000, 6


def _l1_error(x: Tensor, x_hat: Tensor) -> Tensor:
    if x.shape != x_hat.shape:
        raise ValueError(
            f"x and its reconstruction must have the same shape, got {tuple(x.shape)} and "
            f"{tuple(x_hat.shape)}"
        )
    return (x - x_hat).abs().flatten(1).sum(1)


def _cross_entropy(x: Tensor, x_hat: Tensor) -> Tensor:
    if x.shape != x_hat.shape:
        raise ValueError(
            f"x and its reconstruction must have the same shape, got {tuple(x.shape)} and "
            f"{tuple(x_hat.shape)}"
        )
    return F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1)


_COST_FUNCTIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "squared": squared_error,
    "l1": _l1_error,
    "cross_entropy": _cross_entropy,
}


class TCWAE(OTAutoencoder):
    r"""Total-correlation WAE: $\mathbb{E}\,c(x, G(z)) + \beta\,\mathrm{TC}
    + \gamma \sum_d \mathrm{KL}(q_d \| p_d)$ (see the module docstring).

    The networks are the paper's (Table 3, ``arch="tcwae"``): four 4x4 stride-2
    convolutions with 32-32-64-64 channels and a 256-unit dense layer for images (an MLP
    for vectors), the encoder outputting the mean and log-variance of a diagonal Gaussian
    sampled with the reparameterisation trick, the decoder mirroring it. The prior is
    $N(0, I)$, as the decomposition needs a factorised prior. The default networks
    start with He initialisation and posteriors of variance
    $e^{-6}$ around means that differ between images
    (`default_gaussian_encoder`; why: ``docs/models.md``,
    "Initialisation of the default networks").

    Defaults follow the paper: $L = 10$, MWS, and $(\beta, \gamma)$ from
    `PAPER_WEIGHTS` for the estimator and cost (the squared L2 cost: (4, 8) for
    MWS/MSS, (4, 1) for GAN; the cross-entropy on dSprites: (50, 100) and (100, 5)); Adam
    at $4 \cdot 10^{-4}$ with $\epsilon = 8 \cdot 10^{-4}$, and Adam at
    $10^{-4}$, betas (0.5, 0.9) for the discriminators (`training_defaults`).

    Args:
        data_shape: shape of one sample, ``(C, H, W)`` or ``(D,)``.
        latent_dim: $L$.
        estimator: ``"mws"``, ``"mss"`` or ``"gan"``.
        dataset_size: $N$, the number of training points; required by ``"mws"`` and
            ``"mss"`` (their importance weights), not used by ``"gan"``.
        beta: weight $\beta$ of the total correlation; ``None`` takes the paper's.
        gamma: weight $\gamma$ of the dimension-wise KL; ``None`` takes the paper's.
        cost: the reconstruction cost $c$, summed over the data dimensions:
            ``"squared"`` ($\lVert x - \hat x\rVert_2^2$), ``"l1"``
            ($\lVert x - \hat x\rVert_1$) or ``"cross_entropy"`` (binary, for data and
            decoder outputs in ``[0, 1]``; not a true OT cost, the paper's dSprites
            baseline).
        arch: ``"tcwae"`` (32-32-64-64, the paper's) or ``"gwae"`` (32-64-128-256) default
            image networks.
        discriminator_hidden: width of each GAN discriminator's hidden ReLU layers
            (Table 3: 1000).
        discriminator_depth: number of those layers (Table 3: 6).
        encoder: maps data to ``(N, 2 L)`` (mean, log-variance); replaces the default.
        decoder: maps ``(N, L)`` codes to data; replaces the default.

    Shape:
        - x: ``(N, *data_shape)`` with $2 \le N$ (and $N \le$ ``dataset_size``
          for MWS/MSS).

    Examples:
        >>> model = TCWAE((1, 64, 64), estimator="mws", dataset_size=737_280,
        ...               cost="cross_entropy")
        >>> terms = model.losses(torch.rand(64, 1, 64, 64))
        >>> terms["loss"].backward()
    """

    critic_attribute: ClassVar[str | None] = "critic"
    training_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adam",
        "lr": 4e-4,
        "betas": (0.9, 0.999),
        "eps": 8e-4,
        "critic_lr": 1e-4,
        "critic_betas": (0.5, 0.9),
        "batch_size": 64,
    }

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 10,
        *,
        estimator: str = "mws",
        dataset_size: int | None = None,
        beta: float | None = None,
        gamma: float | None = None,
        cost: str = "squared",
        arch: str = "tcwae",
        discriminator_hidden: int = _DISCRIMINATOR_HIDDEN,
        discriminator_depth: int = _DISCRIMINATOR_DEPTH,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        latent_dim = check_count("latent_dim", latent_dim)
        check_choice("estimator", estimator, ESTIMATORS)
        check_choice("cost", cost, COSTS)
        data_shape = tuple(int(s) for s in data_shape)
        if cost == "cross_entropy" and len(data_shape) == 1 and decoder is None:
            raise ValueError(
                "cost='cross_entropy' needs decoder outputs in [0, 1]; the default decoder for "
                f"vectors of shape {data_shape} is an unbounded MLP: pass a decoder ending in "
                "a sigmoid, or use cost='squared'"
            )
        super().__init__(
            encoder if encoder is not None else default_gaussian_encoder(data_shape, latent_dim,
                                                                         arch=arch),
            decoder if decoder is not None else he_init(default_decoder(latent_dim, data_shape,
                                                                        arch=arch)),
            StandardNormal(latent_dim),
            data_shape,
        )
        paper_beta, paper_gamma = PAPER_WEIGHTS["gan" if estimator == "gan" else "mws", cost]
        self.beta = check_nonnegative("beta", paper_beta if beta is None else beta)
        self.gamma = check_nonnegative("gamma", paper_gamma if gamma is None else gamma)
        self.estimator = estimator
        self.cost = cost
        if estimator == "gan":
            self.total_correlation = None
            self.critic = nn.ModuleDict({
                "tc": DensityRatioTC(latent_dim, discriminator_hidden, discriminator_depth,
                                     negative_slope=0.0),
                "dimwise_kl": DensityRatioDimwiseKL(latent_dim, discriminator_hidden,
                                                    discriminator_depth, negative_slope=0.0),
            })
        else:
            if dataset_size is None:
                raise ValueError(
                    f"estimator={estimator!r} needs dataset_size, the number of training points "
                    "(its importance weights depend on it)"
                )
            self.total_correlation = TotalCorrelation(estimator, dataset_size=dataset_size)
            self.critic = None

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean and log-variance of $q(z \mid x)$, each ``(N, L)``."""
        return self.gaussian_posterior(x)

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean ``(N, L)``."""
        return self.posterior(x)[0]

    def losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""The TCWAE objective and its terms on one batch.

        Returns:
            dict of scalars: ``loss``, ``reconstruction`` ($\mathbb{E}\,c(x, G(z))$),
            ``tc`` and ``dimwise_kl`` (the estimates, unweighted) and, for MWS/MSS,
            ``mutual_info`` (the index-code mutual information, detached: logged, not
            penalised).
        """
        x = self.check_data(x, min_samples=2, why="TCWAE (q(z) from the other codes)")
        mu, logvar = self.posterior(x)
        z = reparameterize(mu, logvar)
        reconstruction = _COST_FUNCTIONS[self.cost](x, self.decode(z)).mean()
        extra: dict[str, Tensor] = {}
        if self.critic is not None:
            with frozen(self.critic):
                tc = self.critic["tc"](z)
                dimwise_kl = self.critic["dimwise_kl"](z)
        else:
            terms = self.total_correlation.decompose(z, mu, logvar)
            tc, dimwise_kl = terms["tc"], terms["dimwise_kl"]
            extra["mutual_info"] = terms["mutual_info"].detach()
        loss = reconstruction + self.beta * tc + self.gamma * dimwise_kl
        return {
            "loss": loss,
            "reconstruction": reconstruction,
            "tc": tc,
            "dimwise_kl": dimwise_kl,
            **extra,
        }

    @critic_method
    def critic_losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""The two discriminators' objective (TCWAE-GAN only).

        Codes $z \sim q(z \mid x)$ are drawn without a graph; the TC discriminator
        tells them from ``permute_dims(z)``, the dimension-wise one tells ``permute_dims(z)``
        from prior samples. ``loss`` is the sum of the two cross-entropies
        (``tc_discriminator``, ``dimwise_discriminator``); it reaches only the
        discriminators.
        """
        x = self.check_data(x, min_samples=2, why="TCWAE (q(z) from the other codes)")
        with torch.no_grad():
            z = reparameterize(*self.posterior(x))
            z_prior = self.prior.rsample(z.shape[0]).to(z)
        tc_loss = self.critic["tc"].discriminator_loss(z)
        dimwise_loss = self.critic["dimwise_kl"].discriminator_loss(z, z_prior)
        return {
            "loss": tc_loss + dimwise_loss,
            "tc_discriminator": tc_loss,
            "dimwise_discriminator": dimwise_loss,
        }
