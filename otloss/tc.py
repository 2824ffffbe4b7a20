r"""Total correlation and the KL decomposition of the aggregate posterior (TCWAE, β-TCVAE).

For a Gaussian encoder
$q(z \mid x_n) = \mathcal N(\mu_n, \operatorname{diag} e^{\log\sigma^2_n})$
over a dataset of $N$ points, the aggregate posterior is the mixture
$q(z) = \frac1N \sum_n q(z \mid x_n)$ and (Chen et al., 2018, eq. 2)

$$
\mathbb{E}_{n}\, \mathrm{KL}(q(z \mid x_n) \,\|\, p(z))
    = \underbrace{I_q(z; n)}_{\text{mutual\_info}}
    + \underbrace{\mathrm{KL}\bigl(q(z) \,\|\, \textstyle\prod_d q_d(z_d)\bigr)}_{\text{tc}}
    + \underbrace{\textstyle\sum_d \mathrm{KL}(q_d(z_d) \,\|\, p_d(z_d))}_{\text{dimwise\_kl}}.
$$

TCWAE penalises ``tc`` and ``dimwise_kl``. The densities $q(z_i)$ and
$q_d(z_{id})$ at the batch codes $z_i \sim q(z \mid x_i)$ are estimated from the
$M$ posteriors of the minibatch with an importance-weight matrix $W$:

$$
\log \hat q(z_i) = \log \sum_{j} W_{ij}\, q(z_i \mid x_j),
$$

evaluated with log-sum-exp on the ``(M, M, L)`` tensor of $\log q(z_{id} \mid x_{jd})$.

- **MWS** (minibatch-weighted sampling): $W_{ij} = 1/(NM)$. Biased: in probability
  space its expectation is $\frac{1}{NM}[q(z_i \mid x_i) + (M-1)\,q(z_i)]$, between
  $q(z_i)/N$ (broad posteriors) and about $q(z_i)/M$ (posteriors so narrow that
  only $x_i$ explains $z_i$). The TC estimate is therefore offset upwards, by
  about $(L-1)\log N$ when the posteriors overlap; the offset is nearly constant, so
  the gradients stay useful, but the value is not the TC. It never converges to the TC.
- **MSS** (minibatch-stratified sampling): $W_{ii} = 1/N$ (the code's own posterior,
  the stratum of size 1) and $W_{ij} = \frac{N-1}{N(M-1)}$ for $j \ne i$ (the
  other $M-1$ points, a uniform sample of the other $N-1$). Every row sums to 1
  and $\hat q(z_i)$ is unbiased in probability space; the log is concave, so
  $\log \hat q$ is biased down by about half its relative variance (Jensen), more for
  the joint than for the 1-D marginals, so the TC is slightly underestimated for small
  batches; the bias vanishes as $M$ grows. When the batch is the whole dataset
  ($M = N$) it is exact.

The widely copied reference implementation of MSS writes its diagonal with
``W.view(-1)[::M + 1]`` where ``M = batch_size - 1``: that stride walks down column 0, not
the diagonal, so the weight $1/N$ of the code's own posterior lands on
$q(z_i \mid x_0)$ for every $i$. `log_importance_weights` builds the
matrix above and is tested entry by entry.

The density-ratio estimators (`DensityRatioTC`, `DensityRatioDimwiseKL`)
replace the density estimates by a discriminator (FactorVAE, TCWAE-GAN).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from otloss._checks import (
    check_bool,
    check_choice,
    check_codes,
    check_codes_for,
    check_count,
    check_dataset_size,
    check_floating,
    check_generator,
    check_min_samples,
    check_real,
    check_same_device_dtype,
)
from otloss.distributed import gather as _gather
from otloss.gaussian import gaussian_entropy, gaussian_log_density
from otloss.nn import MLP
from otloss.ops import full_precision, loss_precision

__all__ = [
    "DensityRatioDimwiseKL",
    "DensityRatioTC",
    "TotalCorrelation",
    "gaussian_entropy",
    "gaussian_log_density",
    "log_importance_weights",
    "pairwise_gaussian_log_density",
    "permute_dims",
    "tc_decomposition",
    "total_correlation",
]

ESTIMATORS = ("mws", "mss")
_MIN_BATCH = 2
_WHY_BATCH = "the total-correlation estimators (q(z) is estimated from the other codes)"

PriorLogDensity = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------------------------------------
# Gaussian log-densities
# ---------------------------------------------------------------------------------------------


def pairwise_gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    r"""Per-dimension $\log q(z_{id} \mid x_j)$ for every pair of a batch.

    Args:
        z: ``(..., M, L)`` codes $z_i \sim q(z \mid x_i)$.
        mu: ``(..., M, L)`` posterior means $\mu_j$.
        logvar: ``(..., M, L)`` posterior log-variances $\log\sigma^2_j$.

    Returns:
        ``(..., M, M, L)`` tensor whose entry ``[..., i, j, d]`` is
        $\log \mathcal N(z_{id}; \mu_{jd}, \sigma^2_{jd})$; sum the last dimension for
        the joint $\log q(z_i \mid x_j)$.
    """
    z, mu, logvar = check_codes(z, mu, logvar, min_samples=1, why=_WHY_BATCH)
    return _pairwise(z, mu, logvar)


def _pairwise(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    return gaussian_log_density(z.unsqueeze(-2), mu.unsqueeze(-3), logvar.unsqueeze(-3))


# ---------------------------------------------------------------------------------------------
# Importance weights and the MWS / MSS estimators
# ---------------------------------------------------------------------------------------------


def log_importance_weights(
    batch_size: int,
    dataset_size: int,
    estimator: str = "mss",
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Log importance weights, $\hat q(z_i) = \sum_j W_{ij}\, q(z_i \mid x_j)$.

    - ``"mss"``: $W_{ii} = 1/N$, $W_{ij} = (N-1)/(N(M-1))$ for $j \ne i$.
      Row $i$ estimates $q(z_i) = \frac1N q(z_i \mid x_i) + \frac1N\sum_{n \ne i}
      q(z_i \mid x_n)$: the first term is known exactly, the sum over the $N-1$ other
      data points is estimated without bias by $\frac{N-1}{M-1}$ times the sum over
      the $M-1$ other batch members. Each row sums to 1; for $M = N$ all
      weights are $1/N$ and the estimate is exact.
      Chen et al.'s appendix splits the other points into strata of which one is smaller,
      giving one off-diagonal entry per row a different weight; with shuffled minibatches
      the other members are exchangeable, so equal weights are unbiased too, have lower
      variance, do not depend on the order of the batch and are exact for $M = N$.
    - ``"mws"``: $W_{ij} = 1/(NM)$ (Chen et al., 2018); rows sum to $1/N$.

    Args:
        batch_size: $M \ge 2$.
        dataset_size: $N \ge M$, the number of data points the aggregate posterior
            averages over.
        estimator: ``"mss"`` or ``"mws"``.
        dtype: of the result (default float32).
        device: of the result (default the CPU).

    Returns:
        ``(M, M)`` tensor of $\log W_{ij}$ (row ``i`` is the code, column ``j`` the
        posterior it is evaluated under).
    """
    check_choice("estimator", estimator, ESTIMATORS)
    m = check_count("batch_size", batch_size)
    check_min_samples("the batch", m, _MIN_BATCH, _WHY_BATCH)
    n = check_dataset_size(dataset_size, m)
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    if estimator == "mws":
        return torch.full((m, m), -math.log(n * m), dtype=dtype, device=device)
    # N >= M >= 2, so log(N - 1) is finite.
    weights = torch.full((m, m), math.log(n - 1) - math.log(n * (m - 1)), dtype=dtype,
                         device=device)
    return weights.fill_diagonal_(-math.log(n))


def _log_densities(
    z: Tensor, mu: Tensor, logvar: Tensor, estimator: str, dataset_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(log q(z_i|x_i) (..., M), log q^(z_i) (..., M), log q^_d(z_id) (..., M, L))."""
    pairwise = _pairwise(z, mu, logvar)  # (..., M, M, L): [i, j, d]
    log_w = log_importance_weights(
        z.shape[-2], dataset_size, estimator, dtype=z.dtype, device=z.device
    )
    joint = pairwise.sum(-1)  # (..., M, M)
    log_qz = torch.logsumexp(joint + log_w, dim=-1)
    log_qz_marginals = torch.logsumexp(pairwise + log_w.unsqueeze(-1), dim=-2)
    log_qzx = torch.diagonal(joint, dim1=-2, dim2=-1)
    return log_qzx, log_qz, log_qz_marginals


def total_correlation(
    z: Tensor,
    mu: Tensor,
    logvar: Tensor,
    *,
    estimator: str = "mws",
    dataset_size: int,
    gather: bool = False,
) -> Tensor:
    r"""Minibatch estimate of $\mathrm{TC} = \mathrm{KL}(q(z) \,\|\, \prod_d q_d(z_d))$.

    $$
    \widehat{\mathrm{TC}} = \frac1M \sum_{i=1}^{M} \Bigl[\log \hat q(z_i)
        - \sum_{d=1}^{L} \log \hat q_d(z_{id})\Bigr],
    \qquad \log \hat q(z_i) = \operatorname{logsumexp}_j
        \bigl(\log W_{ij} + \log q(z_i \mid x_j)\bigr),
    $$

    with $W$ from `log_importance_weights` (the same weights for the 1-D
    marginals). Bias: see the module docstring (MWS is offset by about $(L-1)\log N$;
    MSS is consistent, slightly low for small batches).

    Args:
        z: ``(M, L)`` or ``(B, M, L)`` codes, $z_i \sim q(z \mid x_i)$ (reparameterised).
        mu: posterior means, same shape.
        logvar: posterior log-variances, same shape.
        estimator: ``"mws"`` or ``"mss"``.
        dataset_size: $N$, the size of the dataset the batch is drawn from (``>= M``).
        gather: estimate over the global batch of a distributed run: every rank's
            ``z``, ``mu``, ``logvar`` are gathered (`otloss.distributed.gather`) and
            $M$ is the global batch size $W M_r$ (the densities $\hat q$ average over
            all ranks' posteriors; ``dataset_size`` stays the size of the whole dataset,
            and must be at least the global $M$). The value is identical on every
            rank; rank $r$'s input gradients are $W$ times the single-process
            gradients of its slice, so DDP's mean over ranks gives exactly the
            single-process parameter gradients of the concatenated batch. Every rank
            needs the same shape. A no-op without an initialised process group.

    Returns:
        Scalar, or ``(B,)`` for batched input. Half precision is computed in float32 and
        cast back.

    Examples:
        >>> mu, logvar = torch.randn(64, 10), torch.full((64, 10), -2.0)
        >>> z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        >>> total_correlation(z, mu, logvar, estimator="mss", dataset_size=60_000)
    """
    return _estimate(z, mu, logvar, estimator, dataset_size, None, full=False,
                     gather=gather)["tc"]


def tc_decomposition(
    z: Tensor,
    mu: Tensor,
    logvar: Tensor,
    *,
    estimator: str = "mws",
    dataset_size: int,
    prior_log_density: PriorLogDensity | None = None,
    gather: bool = False,
) -> dict[str, Tensor]:
    r"""Estimates of the three terms of $\mathbb{E}_n \mathrm{KL}(q(z \mid x_n) \| p(z))$.

    $$
    \text{mutual\_info} &= \tfrac1M \textstyle\sum_i
        \bigl[\log q(z_i \mid x_i) - \log \hat q(z_i)\bigr] \\
    \text{tc} &= \tfrac1M \textstyle\sum_i
        \bigl[\log \hat q(z_i) - \sum_d \log \hat q_d(z_{id})\bigr] \\
    \text{dimwise\_kl} &= \tfrac1M \textstyle\sum_i
        \bigl[\sum_d \log \hat q_d(z_{id}) - \log p(z_i)\bigr]
    $$

    so ``tc + dimwise_kl`` is the estimate $\frac1M\sum_i \log \hat q(z_i) - \log
    p(z_i)$ of $\mathrm{KL}(q(z) \| p(z))$, and adding ``mutual_info`` gives the
    Monte-Carlo estimate $\frac1M \sum_i \log q(z_i \mid x_i) - \log p(z_i)$ of the
    average posterior-to-prior KL (no density estimate involved).

    Args:
        z: ``(M, L)`` or ``(B, M, L)``, as in `total_correlation`.
        mu: the means, shaped like ``z``.
        logvar: the log-variances, shaped like ``z``.
        estimator: ``"mws"`` or ``"mss"``.
        dataset_size: $N \ge M$.
        prior_log_density: the factorised prior's log-density, a callable taking ``z`` (in
            the compute dtype) and returning per-dimension values $\log p_d(z_{id})$
            of shape ``(..., M, L)`` or their sums $\log p(z_i)$ of shape
            ``(..., M)``. Default $\mathcal N(0, I)$. With a non-factorised prior
            ``dimwise_kl`` estimates $\mathrm{KL}(\prod_d q_d \,\|\, p)$ instead.
        gather: estimate over the global batch of a distributed run (see
            `total_correlation`); ``prior_log_density`` is applied to the gathered ``z``.

    Returns:
        dict with ``tc``, ``dimwise_kl`` and ``mutual_info``: scalars, or ``(B,)``.
    """
    return _estimate(z, mu, logvar, estimator, dataset_size, prior_log_density, full=True,
                     gather=gather)


def _estimate(
    z: Tensor,
    mu: Tensor,
    logvar: Tensor,
    estimator: str,
    dataset_size: int,
    prior_log_density: PriorLogDensity | None,
    *,
    full: bool,
    gather: bool,
) -> dict[str, Tensor]:
    """Validate, compute in float32 or float64, return ``tc`` (and the other terms if full)."""
    z, mu, logvar = check_codes(z, mu, logvar, min_samples=_MIN_BATCH, why=_WHY_BATCH)
    if check_bool("gather", gather):
        z, mu, logvar = _gather(z, -2), _gather(mu, -2), _gather(logvar, -2)
    check_choice("estimator", estimator, ESTIMATORS)
    dataset_size = check_dataset_size(dataset_size, z.shape[-2])
    with full_precision(z, mu, logvar) as precision:
        dtype = precision.compute
        z, mu, logvar = z.to(dtype), mu.to(dtype), logvar.to(dtype)
        log_qzx, log_qz, log_qz_marginals = _log_densities(z, mu, logvar, estimator,
                                                           dataset_size)
        log_prod_marginals = log_qz_marginals.sum(-1)
        terms = {"tc": (log_qz - log_prod_marginals).mean(-1)}
        if full:
            log_pz = _prior_log_density(prior_log_density, z)
            terms["dimwise_kl"] = (log_prod_marginals - log_pz).mean(-1)
            terms["mutual_info"] = (log_qzx - log_qz).mean(-1)
    return {k: v.to(precision.result) for k, v in terms.items()}


def _prior_log_density(prior_log_density: PriorLogDensity | None, z: Tensor) -> Tensor:
    """log p(z_i), shape (..., M)."""
    if prior_log_density is None:
        return gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(-1)
    if not callable(prior_log_density):
        raise TypeError(
            f"prior_log_density must be a callable z -> log p(z), got "
            f"{type(prior_log_density).__name__}"
        )
    out = prior_log_density(z)
    if not isinstance(out, Tensor):
        raise TypeError(f"prior_log_density must return a Tensor, got {type(out).__name__}")
    if out.shape == z.shape:
        return out.to(z.dtype).sum(-1)
    if out.shape == z.shape[:-1]:
        return out.to(z.dtype)
    raise ValueError(
        f"prior_log_density must return shape {tuple(z.shape)} (per dimension) or "
        f"{tuple(z.shape[:-1])} (summed) for z of shape {tuple(z.shape)}, got {tuple(out.shape)}"
    )


class TotalCorrelation(nn.Module):
    r"""Total correlation of a Gaussian encoder's aggregate posterior (TCWAE-MWS, β-TCVAE).

    $$
    \mathrm{TC} = \mathrm{KL}\Bigl(q(z) \,\Big\|\, \prod_{d=1}^{L} q_d(z_d)\Bigr)
    \approx \frac1M \sum_{i} \Bigl[\log \hat q(z_i) - \sum_d \log \hat q_d(z_{id})\Bigr]
    $$

    with $\hat q$ the minibatch importance-sampling estimate of
    `total_correlation`.

    Bias: ``"mws"`` (Chen et al.'s minibatch-weighted sampling, used by TCWAE-MWS) is
    offset upwards by about $(L-1)\log N$ (its weights sum to $1/N$ per row);
    ``"mss"`` (minibatch-stratified sampling with the correct weight matrix) is consistent,
    exact when the batch is the whole dataset, slightly low for small batches (Jensen).
    ``docs/tc.md`` gives measured errors.

    Args:
        estimator: ``"mws"`` or ``"mss"``.
        dataset_size: $N$, the number of training points (keyword-only, required).
        gather: estimate over the global batch of a distributed run (see
            `total_correlation`; ``dataset_size`` stays the whole dataset's size).

    Shape:
        - z, mu, logvar: ``(M, L)`` or ``(B, M, L)`` with $2 \le M \le N$
        - output: scalar or ``(B,)``

    Examples:
        >>> tc = TotalCorrelation("mss", dataset_size=len(train_set))
        >>> mu, logvar = encoder(x).chunk(2, dim=-1)
        >>> z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        >>> loss = recon + beta * tc(z, mu, logvar)
    """

    def __init__(
        self, estimator: str = "mws", *, dataset_size: int, gather: bool = False
    ) -> None:
        super().__init__()
        self.estimator = check_choice("estimator", estimator, ESTIMATORS)
        self.dataset_size = check_count("dataset_size", dataset_size)
        self.gather = check_bool("gather", gather)

    def forward(self, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        return total_correlation(
            z, mu, logvar, estimator=self.estimator, dataset_size=self.dataset_size,
            gather=self.gather,
        )

    def decompose(
        self,
        z: Tensor,
        mu: Tensor,
        logvar: Tensor,
        prior_log_density: PriorLogDensity | None = None,
    ) -> dict[str, Tensor]:
        """``tc``, ``dimwise_kl`` and ``mutual_info`` (see `tc_decomposition`)."""
        return tc_decomposition(
            z,
            mu,
            logvar,
            estimator=self.estimator,
            dataset_size=self.dataset_size,
            prior_log_density=prior_log_density,
            gather=self.gather,
        )

    def extra_repr(self) -> str:
        return (
            f"estimator={self.estimator!r}, dataset_size={self.dataset_size}, "
            f"gather={self.gather}"
        )


# ---------------------------------------------------------------------------------------------
# Permuted codes and density-ratio estimators
# ---------------------------------------------------------------------------------------------


def permute_dims(z: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    r"""Permute every latent dimension independently across the samples.

    If the rows of ``z`` are samples of $q(z)$, the rows of the result are (exchangeable)
    samples of $\prod_d q_d(z_d)$: each column keeps its multiset of values, the
    dependence between columns is destroyed (FactorVAE's ``permute_dims``). One random key
    per entry and an ``argsort`` over the sample dimension: no Python loop, batched over
    leading dimensions, differentiable (a ``gather``).

    Args:
        z: ``(..., N, L)`` codes.
        generator: optional ``torch.Generator`` for the permutations (on any device; the
            indices are moved to ``z``'s device).

    Returns:
        ``(..., N, L)`` tensor with ``out[..., i, d] = z[..., pi_d(i), d]``.
    """
    z = check_floating("z", z)
    if z.dim() < 2:
        raise ValueError(f"z must have shape (..., N, L), got {tuple(z.shape)}")
    check_generator("generator", generator)
    key_device = generator.device if generator is not None else z.device
    keys = torch.rand(z.shape, generator=generator, device=key_device)
    index = keys.argsort(dim=-2).to(z.device)
    return z.gather(-2, index)


class _DensityRatio(nn.Module):
    """A two-logit discriminator D with log D / (1 - D) = logit_0 - logit_1."""

    def __init__(
        self, latent_dim: int, hidden: int = 1000, depth: int = 6, *, negative_slope: float = 0.2
    ) -> None:
        super().__init__()
        self.latent_dim = check_count("latent_dim", latent_dim)
        hidden = check_count("hidden", hidden)
        depth = check_count("depth", depth, minimum=0)
        slope = check_real("negative_slope", negative_slope)
        self.discriminator = MLP(
            self.latent_dim, 2, hidden=(hidden,) * depth,
            activation=functools.partial(nn.LeakyReLU, slope),
        )

    def log_ratio(self, z: Tensor) -> Tensor:
        r"""$\log \frac{D(z)}{1 - D(z)}$ = logit 0 - logit 1, shape ``(..., N)``."""
        z = self._check_codes("z", z)
        weight = self.discriminator[-1].weight
        # The MLP takes (N, L) rows: batch dimensions are flattened into them and back.
        logits = self.discriminator(z.to(weight.dtype).reshape(-1, self.latent_dim))
        log_ratio = logits[:, 0] - logits[:, 1]
        return log_ratio.reshape(z.shape[:-1]).to(loss_precision(z).result)

    def _check_codes(self, name: str, z: object) -> Tensor:
        return check_codes_for(name, z, self.latent_dim, self.discriminator)

    def _classification_loss(self, numerator: Tensor, denominator: Tensor) -> Tensor:
        """Cross-entropy of D: class 0 for numerator samples, class 1 for denominator ones."""
        if numerator.dim() != denominator.dim() or numerator.shape[:-2] != denominator.shape[:-2]:
            raise ValueError(
                f"the two sample sets must have the same leading shape, got "
                f"{tuple(numerator.shape)} and {tuple(denominator.shape)}"
            )
        check_same_device_dtype(numerator=numerator, denominator=denominator)
        # -log D = softplus(-l), -log(1 - D) = softplus(l) for l = log D / (1 - D).
        loss_num = F.softplus(-self.log_ratio(numerator)).mean(-1)
        loss_den = F.softplus(self.log_ratio(denominator)).mean(-1)
        return 0.5 * (loss_num + loss_den)


class DensityRatioTC(_DensityRatio):
    r"""Adversarial total correlation by the density-ratio trick (FactorVAE, TCWAE-GAN).

    A discriminator $D$ with two logits learns to tell codes $z \sim q(z)$ (class
    0) from codes with every dimension permuted across the batch, i.e. samples of
    $\prod_d q_d(z_d)$ (class 1). At the optimum
    $D/(1-D) = q(z) / \prod_d q_d(z_d)$, so

    $$
    \mathrm{TC} \approx \frac1N \sum_i \log\frac{D(z_i)}{1 - D(z_i)}
        = \frac1N \sum_i \bigl(\text{logit}_0(z_i) - \text{logit}_1(z_i)\bigr).
    $$

    Bias: the estimate is only as good as the discriminator; an under-trained or
    over-regularised one shrinks the log-ratio towards 0 and underestimates the TC, and
    permuting the batch itself (rather than a second batch) makes the permuted codes
    slightly dependent on the real ones. Not a bound in either direction.

    Training is a two-step pattern; never reuse the encoder-step graph after an optimiser
    step::

        tc = tc_model(z)                     # encoder step: gradients reach z
        (recon + beta * tc).backward(); enc_opt.step()
        disc_opt.zero_grad()                 # also clears grads left by the encoder step
        tc_model.discriminator_loss(z, z2).backward(); disc_opt.step()

    ``discriminator_loss`` detaches its inputs, so its gradients reach only the
    discriminator.

    Args:
        latent_dim: $L$.
        hidden: width of each hidden layer (1000 in FactorVAE / TCWAE, Table 3).
        depth: number of hidden layers (6 in FactorVAE / TCWAE).
        negative_slope: LeakyReLU slope (0.2 as in FactorVAE; 0 gives TCWAE's ReLU).

    Shape:
        - z: ``(N, L)`` or ``(B, N, L)``
        - output: scalar or ``(B,)``
    """

    def forward(self, z: Tensor) -> Tensor:
        """The TC estimate, differentiable with respect to ``z`` (the encoder step)."""
        return self.log_ratio(z).mean(-1)

    def discriminator_loss(
        self,
        z: Tensor,
        z_other: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""Cross-entropy of $D$ on ``z`` (class 0) and ``permute_dims(z_other)`` (class 1).

        Args:
            z: ``(..., N, L)`` codes of $q(z)$; detached.
            z_other: codes of an independent batch, ``(..., N', L)``, permuted for the
                class-1 samples (FactorVAE uses a second batch); ``None`` permutes ``z``.
                Detached.
            generator: drives the permutation.

        Returns:
            Scalar (or ``(B,)``) loss; its gradients reach only the discriminator.
        """
        z = self._check_codes("z", z).detach()
        other = z if z_other is None else self._check_codes("z_other", z_other).detach()
        return self._classification_loss(z, permute_dims(other, generator=generator))

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"


class DensityRatioDimwiseKL(_DensityRatio):
    r"""Adversarial dimension-wise KL, $\sum_d \mathrm{KL}(q_d(z_d) \| p_d(z_d))$ (TCWAE-GAN).

    For a factorised prior $p = \prod_d p_d$,
    $\sum_d \mathrm{KL}(q_d \| p_d) = \mathrm{KL}(\prod_d q_d \,\|\, p)$. A discriminator
    learns to tell permuted codes (samples of $\prod_d q_d$, class 0) from prior samples
    (class 1); at the optimum $D/(1-D) = \prod_d q_d(z) / p(z)$ and

    $$
    \sum_d \mathrm{KL}(q_d \| p_d) \approx \frac1N \sum_i
        \bigl(\text{logit}_0(\tilde z_i) - \text{logit}_1(\tilde z_i)\bigr),
    \qquad \tilde z = \text{permute\_dims}(z).
    $$

    Bias as for `DensityRatioTC` (an imperfect discriminator underestimates). Use it
    with the same two-step pattern; ``discriminator_loss`` detaches its inputs.

    Args:
        latent_dim: $L$.
        hidden: width of each hidden layer.
        depth: number of hidden layers.
        negative_slope: LeakyReLU slope.

    Shape:
        - z: ``(N, L)`` or ``(B, N, L)``
        - output: scalar or ``(B,)``
    """

    def forward(self, z: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The dimension-wise KL estimate on ``permute_dims(z)``, differentiable w.r.t. ``z``."""
        z = self._check_codes("z", z)
        return self.log_ratio(permute_dims(z, generator=generator)).mean(-1)

    def discriminator_loss(
        self,
        z: Tensor,
        z_prior: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""Cross-entropy of $D$ on ``permute_dims(z)`` (class 0) and ``z_prior`` (class 1).

        Args:
            z: ``(..., N, L)`` codes of $q(z)$; detached, then permuted.
            z_prior: ``(..., N', L)`` samples of the prior (e.g. ``prior.rsample(n)``);
                detached.
            generator: drives the permutation.
        """
        z = self._check_codes("z", z).detach()
        z_prior = self._check_codes("z_prior", z_prior).detach()
        return self._classification_loss(permute_dims(z, generator=generator), z_prior)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"
