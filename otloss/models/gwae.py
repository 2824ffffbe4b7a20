r"""Gromov-Wasserstein autoencoder (GWAE, Nakagawa et al., ICLR 2023).

GWAE trains a generative model $p_\theta(x, z) = \pi_\theta(z)\, p_\theta(x | z)$ whose
decoder is close to an isometry (up to a learned scale $C$) between the latent space
and the data space, with a Gaussian encoder $q_\phi(z | x)$ and a learnable prior
$\pi_\theta$ (section 3.2):

$$
\min_{\theta, \phi} \max_{\psi}\; L = L_{GW} + \lambda_W L_W + \lambda_D L_D
    - \lambda_H R_H,
$$

with, for $d(u, u') = \lVert u - u' \rVert_2 / \sqrt 2$ on both spaces (appendix C.2),

- $L_{GW} = \mathbb{E}\, |d_X(x, x') - C\, d_Z(z, z')|^{\rho}$ over two generated
  pairs $(x, z), (x', z')$ with $z \sim \pi_\theta$ and $x$ = decoder(z),
  $\rho = 1$ (`otloss.GWEstimator`, unbiased U-statistic over the batch);
- $L_W = \mathbb{E}_{q_\phi(x, z)}\, d_X(x, \text{decoder}(z))^2 =
  \tfrac12 \lVert x - \hat x \rVert^2$, the reconstruction cost ($\xi = 2$) through the
  reparameterised Gaussian encoder;
- $L_D = \mathbb{E}_{q_\phi(x, z)} f_\psi - \mathbb{E}_{p_\theta(x, z)} f_\psi$, a
  Kantorovich estimate of $W_1(q_\phi(x, z), p_\theta(x, z))$ by a joint critic with
  spectral normalisation and a gradient penalty (`otloss.KantorovichCritic` around
  `otloss.JointCritic`; appendix B.3); the critic maximises it in its own step;
- $R_H = \mathbb{E}_x H[q_\phi(z | x)]$, the encoder's entropy
  (`otloss.gaussian_entropy`), which keeps the encoder from collapsing to a look-up
  table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from otloss._checks import (
    check_choice,
    check_count,
    check_floating,
    check_nonnegative,
    check_prior_matches,
)
from otloss.critic import JointCritic, KantorovichCritic
from otloss.gaussian import gaussian_entropy
from otloss.gw import GWEstimator
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
from otloss.ops import compute_dtype
from otloss.priors import (
    FactorizedNeuralPrior,
    GaussianMixturePrior,
    NeuralPrior,
    StandardNormal,
)

__all__ = ["GWAE", "AggregatedPosteriorNorm", "joint_critic", "make_prior"]

#: Names of the priors GWAE selects by string (section 3.2.3).
PRIORS = ("np", "fnp", "gmp", "normal")

#: Width of each branch's features and the hidden widths of GWAE's critic (Table 7).
_CRITIC_FEATURES = 64
_CRITIC_HIDDEN = (256, 256)
# d(u, u') = |u - u'| / sqrt(2) on both spaces (appendix C.2).
_DISTANCE_FACTOR = 1.0 / math.sqrt(2.0)


def make_prior(name: str, latent_dim: int, *, n_components: int = 10) -> nn.Module:
    """A prior by name: ``"np"`` (neural prior), ``"fnp"`` (factorised neural prior),
    ``"gmp"`` (Gaussian mixture with ``n_components``) or ``"normal"`` (N(0, I)).

    The neural priors standardise their output with an affine-free batch normalisation,
    as GWAE's released code does, so their samples keep unit variance per coordinate.
    """
    check_choice("prior", name, PRIORS)
    if name == "np":
        return NeuralPrior(latent_dim, normalize=True)
    if name == "fnp":
        return FactorizedNeuralPrior(latent_dim, normalize=True)
    if name == "gmp":
        return GaussianMixturePrior(latent_dim, n_components)
    return StandardNormal(latent_dim)


def joint_critic(
    data_shape: Sequence[int], latent_dim: int, *, gp_weight: float = 10.0
) -> KantorovichCritic:
    r"""GWAE's Y-shaped critic (Table 7) under spectral normalisation and a gradient penalty.

    `otloss.JointCritic` with GWAE's widths: the $x$ branch halves the image
    with 4x4 stride-2 convolutions from 8 channels, doubling up to 256, until a side would
    drop below 1 pixel (six for 64x64, four for 28x28), then a linear layer to 64
    features; vectors get an MLP with two hidden layers of 256 units. The $z$ branch
    is an MLP $L \to 256 \to 256 \to 64$. The 128 concatenated features are halved
    (``merge_scale``) and scored by an MLP $128 \to 256 \to 256 \to 1$;
    LeakyReLU(0.2) throughout.
    """
    data_shape = tuple(int(s) for s in data_shape)
    if len(data_shape) not in (1, 3):
        raise ValueError(f"data_shape must be (C, H, W) or (D,), got {data_shape}")
    channels = None
    if len(data_shape) == 3:
        depth = max(1, int(math.log2(min(data_shape[1:]))))
        channels = tuple(min(8 * 2**i, 256) for i in range(depth))
    net = JointCritic(data_shape, latent_dim, features=_CRITIC_FEATURES,
                      hidden=_CRITIC_HIDDEN, channels=channels)
    return KantorovichCritic(net, spectral_norm=True, gp_weight=gp_weight)


class AggregatedPosteriorNorm(nn.Module):
    r"""Batch normalisation of a Gaussian encoder against the aggregated posterior (GWAE C.2).

    Standardises $q_\phi(z | x) = N(\mu(x), \operatorname{diag}\sigma^2(x))$ by the
    mean and variance of the aggregated posterior $q_\phi(z) = \mathbb{E}_x
    q_\phi(z | x)$ instead of the sample statistics of the means alone:

    $$
    \hat\mu(x) = \frac{\mu(x) - m}{\sqrt{v}}, \qquad
    \hat\sigma^2(x) = \frac{\sigma^2(x)}{v}, \qquad
    m = \frac{1}{B}\sum_{i} \mu(x_i), \quad
    v = \frac{1}{B}\sum_i \sigma^2(x_i) + \frac{1}{B - 1}\sum_i (\mu(x_i) - m)^2,
    $$

    element-wise; $v$ is the law of total variance with unbiased minibatch
    estimates. In training mode the batch statistics are used (and differentiated through)
    and running averages are updated; in eval mode the running averages are used. No
    affine parameters: the normalised codes have zero mean and unit variance under
    $q_\phi(z)$, the scale the prior is compared with.

    Args:
        latent_dim: $L$.
        momentum: weight of the new batch in the running averages, as in
            ``nn.BatchNorm1d``.
        eps: added to $v$ before dividing.

    Shape:
        - mu, logvar: ``(B, L)``, ``B >= 2`` in training mode.
        - output: the normalised ``(mu, logvar)``, same shapes.
    """

    def __init__(self, latent_dim: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.latent_dim = check_count("latent_dim", latent_dim)
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.eps = check_nonnegative("eps", eps)
        self.register_buffer("running_mean", torch.zeros(latent_dim))
        self.register_buffer("running_var", torch.ones(latent_dim))

    def forward(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = check_floating("mu", mu), check_floating("logvar", logvar)
        if mu.dim() != 2 or mu.shape[1] != self.latent_dim or logvar.shape != mu.shape:
            raise ValueError(
                f"mu and logvar must both have shape (B, {self.latent_dim}), got "
                f"{tuple(mu.shape)} and {tuple(logvar.shape)}"
            )
        dtype = compute_dtype(mu.dtype)
        if self.training:
            if mu.shape[0] < 2:
                raise ValueError(
                    f"the aggregated-posterior normalisation needs B >= 2 codes in training "
                    f"mode (an unbiased variance), got {tuple(mu.shape)}"
                )
            m32, lv32 = mu.to(dtype), logvar.to(dtype)
            mean = m32.mean(0)
            var = lv32.exp().mean(0) + m32.var(0, unbiased=True)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean), self.momentum)
                self.running_var.lerp_(var.detach().to(self.running_var), self.momentum)
        else:
            mean, var = self.running_mean.to(dtype), self.running_var.to(dtype)
        var = var + self.eps
        mu_hat = (mu.to(dtype) - mean) * var.rsqrt()
        logvar_hat = logvar.to(dtype) - var.log()
        return mu_hat.to(mu.dtype), logvar_hat.to(logvar.dtype)

    def extra_repr(self) -> str:
        return f"{self.latent_dim}, momentum={self.momentum}, eps={self.eps}"


class GWAE(OTAutoencoder):
    r"""Gromov-Wasserstein autoencoder: $L = L_{GW} + \lambda_W L_W + \lambda_D L_D
    - \lambda_H R_H$ (see the module docstring for each term).

    Built from otloss's parts: `otloss.GWEstimator` ($\rho$, learnable
    $C$) on generated pairs $(\text{decoder}(z), z)$, $z$ from the prior
    by ``rsample`` (so $L_{GW}$ trains the decoder, the prior and $C$, never
    the encoder); a diagonal-Gaussian encoder (reparameterised) for $L_W$ and
    $R_H$ (`otloss.gaussian_entropy`); `otloss.KantorovichCritic`
    around `otloss.JointCritic` (spectral norm, gradient penalty 10) for
    $L_D$. The critic is trained separately by `critic_losses`; during
    `losses` its parameters are frozen, so the generator objective sends no gradient
    into the critic.

    Defaults follow the paper and its released configuration: $\rho = 1$,
    $\lambda_W = \lambda_D = 1$, $L = 16$ (its isometry study, Fig. 1; it
    searches $\lambda_W, \lambda_D \in [1, 10]$, $\lambda_H \in [10^{-4}, 1]$),
    $\lambda_H = 0.06$ and $C_0 = 2.5$ (the released configuration's weight
    0.03 on $-\sum_d \log\sigma_d^2 = -2 R_H + \text{const}$, and its initial scale),
    the 4-layer 32-64-128-256 convolutional networks of Tables 3-4, and RMSprop at
    $10^{-4}$ / $5 \cdot 10^{-5}$ with several critic steps per generator step
    (`training_defaults`, to pass to `otloss.train.Trainer`). The entropy bonus
    is unbounded above: with a small data space (few pixels, so a small $L_W$) a
    large $\lambda_H$ inflates the encoder's variance until the decoder ignores
    $z$; lower $\lambda_H$ or raise $\lambda_W$ then. The default
    encoder and decoder are He-initialised, the encoder's posteriors starting with
    variance $e^{-6}$ around means that differ between images
    (`default_gaussian_encoder`), so the reconstruction depends
    on $z$ from the first step (why: ``docs/models.md``, "Initialisation of the
    default networks").

    Args:
        data_shape: shape of one sample, ``(C, H, W)`` images or ``(D,)`` vectors.
        latent_dim: $L$.
        prior: ``"np"`` (neural prior), ``"fnp"`` (factorised neural prior, for
            disentanglement), ``"gmp"`` (Gaussian mixture, for clusters), ``"normal"``
            (fixed N(0, I); $L_{GW}$ then trains only the decoder) or a prior module
            with ``rsample(n)`` and ``latent_dim`` (`otloss.priors`).
        n_components: mixture components of the ``"gmp"`` prior.
        lambda_w: $\lambda_W$, weight of the reconstruction $L_W$.
        lambda_d: $\lambda_D$, weight of the joint critic term $L_D$.
        lambda_h: $\lambda_H$, weight of the entropy bonus $R_H$.
        rho: exponent $\rho \ge 1$ of $L_{GW}$.
        scale: initial value of the learnable scale $C$.
        normalize_z: divide the latent distances of $L_{GW}$ by the batch's mean
            per-dimension standard deviation of $z$ (see `otloss.GWEstimator`);
            ``None`` turns it on exactly when the prior has trainable parameters.
        aggregated_norm: standardise the encoder's Gaussian by the aggregated posterior
            (`AggregatedPosteriorNorm`, appendix C.2).
        gp_weight: $\lambda_{GP}$ of the critic's gradient penalty.
        encoder: maps data to ``(N, 2 L)`` (mean and log-variance); default
            `default_gaussian_encoder` (He-initialised, every
            posterior starting with $\sigma^2 = e^{-6}$).
        decoder: maps ``(N, L)`` codes to data; default
            `default_decoder` (sigmoid output for images),
            He-initialised.
        critic: a `otloss.KantorovichCritic` scoring ``(x, z)`` pairs; default
            `joint_critic` (the paper's Table 7 network, spectral norm, gradient
            penalty ``gp_weight``).

    Shape:
        - x: ``(N, *data_shape)`` with ``N >= 2``.
        - losses: a dict of scalars (see `losses`).

    Examples:
        >>> model = GWAE((1, 28, 28), latent_dim=8, prior="np")
        >>> terms = model.losses(torch.rand(16, 1, 28, 28))
        >>> terms["loss"].backward()
    """

    critic_attribute: ClassVar[str | None] = "critic"
    #: The paper's optimisers (appendix C.2), as `otloss.train.TrainConfig` fields.
    training_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "rmsprop",
        "lr": 1e-4,
        "critic_lr": 5e-5,
        "n_critic": 5,
        "batch_size": 64,
    }

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 16,
        *,
        prior: str | nn.Module = "np",
        n_components: int = 10,
        lambda_w: float = 1.0,
        lambda_d: float = 1.0,
        lambda_h: float = 0.06,
        rho: float = 1.0,
        scale: float = 2.5,
        normalize_z: bool | None = None,
        aggregated_norm: bool = False,
        gp_weight: float = 10.0,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        critic: KantorovichCritic | None = None,
    ) -> None:
        latent_dim = check_count("latent_dim", latent_dim)
        data_shape = tuple(int(s) for s in data_shape)
        if isinstance(prior, str):
            prior = make_prior(prior, latent_dim, n_components=n_components)
        elif not isinstance(prior, nn.Module) or not hasattr(prior, "rsample"):
            raise TypeError(
                f"prior must be one of {PRIORS} or a module with rsample(n), got "
                f"{type(prior).__name__}"
            )
        check_prior_matches(prior, latent_dim=latent_dim)
        super().__init__(
            encoder if encoder is not None else default_gaussian_encoder(data_shape, latent_dim),
            decoder if decoder is not None else he_init(default_decoder(latent_dim, data_shape)),
            prior,
            data_shape,
        )
        self.lambda_w = check_nonnegative("lambda_w", lambda_w)
        self.lambda_d = check_nonnegative("lambda_d", lambda_d)
        self.lambda_h = check_nonnegative("lambda_h", lambda_h)
        if normalize_z is None:
            normalize_z = any(p.requires_grad for p in prior.parameters())
        self.gw = GWEstimator(rho=rho, scale=scale, learn_scale=True, normalize_z=normalize_z)
        self.posterior_norm = AggregatedPosteriorNorm(latent_dim) if aggregated_norm else None
        if critic is None:
            critic = joint_critic(data_shape, latent_dim, gp_weight=gp_weight)
        elif not isinstance(critic, KantorovichCritic):
            raise TypeError(
                f"critic must be a KantorovichCritic (wrap your network in one), got "
                f"{type(critic).__name__}"
            )
        self.critic = critic

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean and log-variance of $q_\phi(z | x)$, each ``(N, L)`` (normalised by
        `AggregatedPosteriorNorm` when enabled)."""
        mu, logvar = self.gaussian_posterior(x)
        if self.posterior_norm is not None:
            mu, logvar = self.posterior_norm(mu, logvar)
        return mu, logvar

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean ``(N, L)``."""
        return self.posterior(x)[0]

    def losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""The GWAE objective and its terms on one batch.

        Returns:
            dict of scalars: ``loss`` ($L$), ``gw`` ($L_{GW}$),
            ``reconstruction`` ($L_W$), ``joint_critic`` ($L_D$), ``entropy``
            ($R_H$, in nats) and ``scale`` ($C$, detached, for logging).
        """
        x = self.check_data(x, min_samples=2, why="GWAE (pairs i != j)")
        n = x.shape[0]
        mu, logvar = self.posterior(x)
        z_q = reparameterize(mu, logvar)
        z_p = self.prior.rsample(n).to(z_q)
        # One decoder pass for both halves (the default decoders have no batch statistics).
        x_rec, x_gen = self.decode(torch.cat([z_q, z_p])).split(n)
        gw = self.gw(x_gen, z_p) * _DISTANCE_FACTOR**self.gw.rho
        reconstruction = 0.5 * squared_error(x, x_rec).mean()
        with frozen(self.critic):
            joint = self.critic.estimate((x, z_q), (x_gen, z_p))
        entropy = gaussian_entropy(logvar).mean()
        loss = gw + self.lambda_w * reconstruction + self.lambda_d * joint - self.lambda_h * entropy
        return {
            "loss": loss,
            "gw": gw,
            "reconstruction": reconstruction,
            "joint_critic": joint,
            "entropy": entropy,
            "scale": self.gw.scale.detach(),
        }

    @critic_method
    def critic_losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""The critic's objective on one batch: ``loss`` = $-L_D + \lambda_{GP}
        \mathrm{GP}$, with ``estimate`` ($L_D$) and ``gradient_penalty``.

        The encoded pairs $(x, z_q)$ and generated pairs $(\text{decoder}(z_p),
        z_p)$ are drawn afresh without a graph, so the loss reaches only the critic.
        """
        x = self.check_data(x, min_samples=2, why="GWAE (pairs i != j)")
        with torch.no_grad():
            z_q = reparameterize(*self.posterior(x))
            z_p = self.prior.rsample(x.shape[0]).to(z_q)
            x_gen = self.decode(z_p)
        terms = self.critic.critic_terms((x, z_q), (x_gen, z_p))
        return {k: terms[k] for k in ("loss", "estimate", "gradient_penalty")}
