r"""The GM-VAE baseline of GM-WAE (Gaujac, Feige and Barber, ACML 2021, section 2.1).

The same generative model and encoder as `GMWAE` (a fixed Gaussian
mixture prior over a discrete $k$ and a continuous $z$, the heads
$q_C(z \mid k, x)$ and the weights $q_D(k \mid x) = \pi_k(x)$), trained as a
VAE: by the negative ELBO of the paper's eq. 3,

$$
-\mathrm{ELBO}(x) = \sum_k \pi_k(x) \Bigl(\mathbb{E}_{q_C(z \mid k, x)}
    [-\log p(x \mid z)] + \mathrm{KL}(q_C(z \mid k, x) \,\|\, p_C(z \mid k))\Bigr)
    + \beta_D\, \mathrm{KL}(q_D(k \mid x) \,\|\, p_D(k)),
$$

with the continuous KL scaled by $\beta$ as well (the paper's rescaled GM-VAE of
figure 6d; $\beta = 1$ is the ELBO itself). The paper uses it to show the collapse
of $q(k \mid x)$ onto few components under the per-data-point KL.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Categorical, MultivariateNormal, kl_divergence
from torch.nn import functional as F

from otloss._checks import check_nonnegative
from otloss.models.base import reparameterize
from otloss.models.gmwae import GMWAE

__all__ = ["GMVAE"]

#: Decoder means are clamped to [EPS, 1 - EPS] so the Bernoulli log-likelihood is finite.
BERNOULLI_EPS = 1e-6


class GMVAE(GMWAE):
    r"""GM-WAE's networks and prior trained by the GM-VAE's negative ELBO (module docstring).

    The decoder's output in [0, 1] is read as the mean of a Bernoulli likelihood (as in
    the paper, which uses the GM-WAE's networks unchanged). The Gaussian KL is computed in
    closed form by `torch.distributions.kl_divergence` between the diagonal head
    $N(\mu_k(x), \operatorname{diag}\sigma_k^2(x))$ and the prior component
    $N(\mu^0_k, \Sigma^0_k)$; the discrete KL against the uniform $p_D$ is
    $\log K - H(\pi(x))$. The expectation over $k$ is exact (all heads, one
    reparameterised code each), like GM-WAE's; the expectation over $z$ uses that
    one code, so ``reconstruction`` is an unbiased one-sample estimate.

    Everything else (constructor arguments, `pretrain_heads`, `assignments`,
    `component_probs`) is `GMWAE`'s; ``lambda_z`` and ``mmd``
    are unused.

    Args:
        data_shape: shape of one sample; values in [0, 1].
        latent_dim: $L$.
        n_components: $K$.
        beta: $\beta$, the weight of both KL terms (1: the ELBO).
        **kwargs: the remaining `GMWAE` arguments (``prior``,
            networks, ``arch``, ``head_hidden``).

    Shape:
        - x: ``(N, *data_shape)``

    Examples:
        >>> model = GMVAE((1, 28, 28))
        >>> terms = model.losses(torch.rand(32, 1, 28, 28))
        >>> sorted(terms)
        ['continuous_kl', 'discrete_kl', 'loss', 'reconstruction']
    """

    def __init__(
        self,
        data_shape: tuple[int, ...] | list[int],
        latent_dim: int = 10,
        n_components: int = 10,
        *,
        beta: float = 1.0,
        **kwargs: object,
    ) -> None:
        super().__init__(data_shape, latent_dim, n_components, **kwargs)
        self.beta = check_nonnegative("beta", beta)

    def losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""The negative ELBO and its terms on one batch, each a mean over the batch.

        Returns:
            dict of scalars: ``loss`` (``reconstruction + beta * (continuous_kl +
            discrete_kl)``), ``reconstruction`` ($\sum_k \pi_k(x)$ times the Bernoulli
            negative log-likelihood of $x$ at $G(z_k)$, in nats),
            ``continuous_kl`` ($\sum_k \pi_k(x)\,\mathrm{KL}(q_C \,\|\, p_C)$) and
            ``discrete_kl`` ($\mathrm{KL}(q_D \,\|\, p_D)$).
        """
        x = self.check_data(x)
        n, k = x.shape[0], self.n_components
        log_probs, mu, logvar = self.posterior(x)
        probs = log_probs.exp()
        z = reparameterize(mu, logvar)  # (N, K, L)
        x_hat = self.decode(z.flatten(0, 1)).clamp(BERNOULLI_EPS, 1 - BERNOULLI_EPS)
        targets = x.unsqueeze(1).expand(n, k, *self.data_shape).flatten(0, 1)
        nll = F.binary_cross_entropy(x_hat, targets, reduction="none").flatten(1).sum(1)
        posterior = MultivariateNormal(mu, scale_tril=torch.diag_embed((0.5 * logvar).exp()))
        prior = MultivariateNormal(self.prior.means.to(mu), scale_tril=self.prior.scale_tril.to(mu))
        kl_c = kl_divergence(posterior, prior)  # (N, K)
        kl_d = math.log(k) - Categorical(logits=log_probs).entropy()  # (N,)
        reconstruction = (probs * nll.view(n, k)).sum(-1).mean()
        continuous_kl = (probs * kl_c).sum(-1).mean()
        discrete_kl = kl_d.mean()
        return {
            "loss": reconstruction + self.beta * (continuous_kl + discrete_kl),
            "reconstruction": reconstruction,
            "continuous_kl": continuous_kl,
            "discrete_kl": discrete_kl,
        }
