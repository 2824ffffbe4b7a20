r"""Gaussian-mixture Wasserstein autoencoder (GM-WAE, Gaujac, Feige and Barber, ACML 2021).

The generative model has a discrete latent $k$ above a continuous one,
$p(z) = \sum_{k=1}^{K} p_D(k)\, p_C(z \mid k)$ with $p_D$ uniform and fixed
Gaussian components (`otloss.priors.FixedGaussianMixture`: means mutually at
$4\sigma$), and a deterministic decoder $G$. The encoder mirrors the prior,
$q(z, k \mid x) = q_C(z \mid k, x)\, q_D(k \mid x)$ with
$q_D(k \mid x) = \pi_k(x)$ and $q_C(z \mid k, x) = N(\mu_k(x),
\operatorname{diag}\sigma_k^2(x))$. The objective (eq. 16) is

$$
\mathbb{E}_{p(x)} \sum_{k=1}^{K} \pi_k(x)\, \mathbb{E}_{q_C(z \mid k, x)}
    \lVert x - G(z) \rVert_2^2
+ \lambda\, \mathrm{MMD}^2\Bigl(\mathbb{E}_{p(x)} \sum_k \pi_k(x)\, q_C(z \mid k, x),\;
    p(z)\Bigr).
$$

The expectation over $k$ is computed **exactly**: all $K$ heads are evaluated
for every $x$ (one reparameterised code $z_{ik}$ each), the reconstruction is
weighted by $\pi_k(x_i)$, and the aggregated posterior of a batch is the weighted
point cloud $\sum_{i, k} \frac{\pi_k(x_i)}{N} \delta_{z_{ik}}$, compared with prior
samples drawn from every component (`mixture_mmd`: IMQ kernels with the paper's 15
bandwidths $\{1, 2, 5\} \times 10^{j}$, $j = -2, \dots, 2$). No discrete sample
is drawn, so $\pi$ gets exact gradients from both terms (through the weights).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from otloss._checks import (
    check_choice,
    check_count,
    check_min_samples,
    check_nonnegative,
    check_positive,
    check_prior_matches,
)
from otloss.mmd import MMD
from otloss.models.base import (
    OTAutoencoder,
    default_decoder,
    default_encoder,
    he_init,
    reparameterize,
    squared_error,
)
from otloss.nn import MLP
from otloss.ops import full_precision, loss_precision, median_sqdist, multiscale_kernel, sqdist
from otloss.priors import FixedGaussianMixture

__all__ = ["GMWAE", "GMWAE_SCALES", "ComponentHeads", "mixture_mmd"]

#: The paper's IMQ bandwidths C in {1, 2, 5} x 10^j, j = -2..2 (absolute, bandwidth=1).
GMWAE_SCALES: tuple[float, ...] = tuple(
    m * 10.0**j for j in range(-2, 3) for m in (1.0, 2.0, 5.0)
)


def mixture_mmd(
    z: Tensor,
    probs: Tensor,
    z_prior: Tensor,
    *,
    kernel: str = "imq",
    bandwidth: float | str | None = 1.0,
    scales: Sequence[float] = GMWAE_SCALES,
    estimator: str = "unbiased",
) -> Tensor:
    r"""Squared MMD between GM-WAE's aggregated posterior and its mixture prior.

    The batch's aggregated posterior puts weight $\pi_k(x_i) / N$ on the code
    $z_{ik} \sim q_C(z \mid k, x_i)$; the prior sample holds one draw
    $\zeta_{mk} \sim p_C(z \mid k)$ of every component for each of $M$ draws,
    weighted $p_D(k) / M = 1 / (K M)$ (stratified: the batch's component counts do
    not fluctuate). With $\kappa$ the multi-scale kernel,

    $$
    \widehat{\mathrm{MMD}}^2 = \frac{1}{N (N - 1)} \sum_{i \ne j} \sum_{k, k'}
        \pi_k(x_i) \pi_{k'}(x_j)\, \kappa(z_{ik}, z_{jk'})
    + \frac{1}{K^2 M (M - 1)} \sum_{m \ne m'} \sum_{k, k'} \kappa(\zeta_{mk}, \zeta_{m'k'})
    - \frac{2}{K N M} \sum_{i, m} \sum_{k, k'} \pi_k(x_i)\, \kappa(z_{ik}, \zeta_{mk'}).
    $$

    ``"unbiased"`` (the default, the authors' estimator) leaves out every pair of codes of
    the same data point $i = j$ (and of the same prior draw): given $x_i$, its
    $K$ codes are not independent draws from the aggregated posterior. It is an
    unbiased estimate of the population MMD for any $\pi$, so it does not penalise a
    decisive $q(k \mid x)$. Leaving out only each code's pair with itself (the
    weighted U-statistic of `otloss.mmd` on the flattened cloud) keeps the
    same-$x$ pairs $k \ne k'$, whose weight $\sum_{k \ne k'} \pi_k \pi_{k'}$
    is largest when $\pi(x)$ is uniform: an $O(1/N)$ bias towards an undecided
    $q(k \mid x)$, multiplied by $\lambda$. ``"biased"``: the V-statistic, all
    pairs with $1/N^2$ and $1/(K M)^2$.

    Args:
        z: ``(N, K, L)`` codes, one per sample and component.
        probs: ``(N, K)`` $\pi_k(x_i)$, rows summing to 1 (they receive gradients).
        z_prior: ``(M, K, L)`` prior draws, ``z_prior[m, k]`` from component ``k``
            (e.g. ``prior.rsample_per_component(M).transpose(0, 1)``).
        kernel: a kernel name of `otloss.ops.KERNELS`.
        bandwidth: the base constant $c_0$ (``None``: $2L$; ``"median"``: the
            median squared distance of the pooled codes), times each of ``scales``.
        scales: the multipliers of $c_0$; the kernel is their sum.
        estimator: ``"unbiased"`` (needs $N, M \ge 2$) or ``"biased"``.

    Shape:
        - output: ``()``
    """
    if z.dim() != 3 or z_prior.dim() != 3 or z.shape[1:] != z_prior.shape[1:]:
        raise ValueError(
            f"z (N, K, L) and z_prior (M, K, L) must share K and L, got {tuple(z.shape)} "
            f"and {tuple(z_prior.shape)}"
        )
    if probs.shape != z.shape[:2]:
        raise ValueError(f"probs must have shape {tuple(z.shape[:2])}, got {tuple(probs.shape)}")
    check_choice("estimator", estimator, ("unbiased", "biased"))
    n, k, dim = z.shape
    m = z_prior.shape[0]
    minimum = 2 if estimator == "unbiased" else 1
    check_min_samples("z", n, minimum, f"the {estimator} mixture MMD")
    check_min_samples("z_prior", m, minimum, f"the {estimator} mixture MMD")
    with full_precision(z, probs, z_prior) as precision:
        z, probs, z_prior = (t.to(precision.compute) for t in (z, probs, z_prior))
        zq, zp = z.reshape(n * k, dim), z_prior.reshape(m * k, dim)
        if bandwidth is None:
            c0: float | Tensor = 2.0 * dim
        elif bandwidth == "median":
            c0 = median_sqdist(zq, zp)
        else:
            c0 = float(bandwidth)
        wq = probs.reshape(n * k) / n
        wp = torch.full((m * k,), 1.0 / (m * k), dtype=z.dtype, device=z.device)

        def within(a: Tensor, w: Tensor, size: int) -> Tensor:
            gram = multiscale_kernel(sqdist(a), kernel, c0, scales)
            total = w @ gram @ w
            if estimator == "biased":
                return total
            # every pair of one sample's K atoms: the (i, i) blocks of the Gram matrix
            blocks = torch.diagonal(gram.view(size, k, size, k), dim1=0, dim2=2)  # (K, K, size)
            wb = w.view(size, k).T  # (K, size)
            same = torch.einsum("ki,kli,li->", wb, blocks, wb)
            return (total - same) * size / (size - 1)

        cross = wq @ multiscale_kernel(sqdist(zq, zp), kernel, c0, scales) @ wp
        value = within(zq, wq, n) + within(zp, wp, m) - 2.0 * cross
    return value.to(precision.result)


class ComponentHeads(nn.Module):
    r"""The per-component Gaussian heads $(\mu_k(x), \log\sigma_k^2(x))$, k = 1..K.

    One dense network per component on the flattened input (the paper: two hidden layers
    of 32 units), so the heads share nothing and the moment-matching pre-training can
    place each one on its own prior component.

    Args:
        data_shape: shape of one sample.
        n_components: $K$.
        latent_dim: $L$.
        hidden: hidden widths of each head.

    Shape:
        - x: ``(N, *data_shape)``
        - output: ``(N, K, 2 L)``: means then log-variances along the last dimension.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        n_components: int,
        latent_dim: int,
        hidden: Sequence[int] = (32, 32),
    ) -> None:
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)
        in_features = 1
        for s in self.data_shape:
            in_features *= s
        self.heads = nn.ModuleList(
            MLP(in_features, 2 * latent_dim, hidden) for _ in range(n_components)
        )

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        return torch.stack([head(flat) for head in self.heads], dim=1)


class GMWAE(OTAutoencoder):
    r"""Gaussian-mixture WAE: exact expectation over the discrete latent, weighted MMD.

    `losses` returns the objective of the module docstring: ``reconstruction``
    $= \frac1N \sum_i \sum_k \pi_k(x_i) \lVert x_i - G(z_{ik}) \rVert^2$ and ``mmd``,
    `mixture_mmd` between the $N K$ codes $z_{ik}$ with weights
    $\pi_k(x_i)/N$ and $N$ draws from each prior component (weights
    $1/(K N)$). Unbiased: the U-statistic leaves out every pair of codes of one data
    point, so for any $\pi$ its expectation is the population MMD.

    `pretrain_heads` is the paper's moment-matching pre-training of the component
    heads (`pretrain_losses` over `pretrain_parameters`): run it for a few
    hundred steps before the main training, so every head starts on its own prior
    component. `assignments` gives $\arg\max_k \pi_k(x)$, the paper's
    clustering protocol, and `component_probs` the $\pi_k(x)$.

    Defaults follow the paper: $K = 10$, $L = 10$, $\lambda = 500$,
    heads of two 32-unit hidden layers, the prior's means mutually at $4\sigma$,
    Adam at $5 \cdot 10^{-4}$ (`training_defaults`). The $\pi(x)$ network
    is `default_encoder` with $K$ outputs (logits); the
    paper's 3-layer DCGAN networks with batch normalisation are replaced by otloss's
    convolutional networks (``arch``). The default $\pi$ network and decoder are
    He-initialised (`he_init`), so that at the start the logits
    differ between images and the decoder's output depends on $z$. How these
    choices were found, and how the model differs from the authors' code, is in
    ``docs/models.md`` (section "GM-WAE").

    Args:
        data_shape: shape of one sample, ``(C, H, W)`` or ``(D,)``.
        latent_dim: $L$.
        n_components: $K$.
        lambda_z: $\lambda$, weight of the MMD.
        prior: a `otloss.priors.FixedGaussianMixture` with ``n_components``
            components; default ``FixedGaussianMixture(latent_dim, n_components)``.
        head_hidden: hidden widths of each default component head.
        arch: default image networks, ``"gwae"`` or ``"tcwae"``.
        mmd: an `otloss.MMD` whose ``kernel``, ``bandwidth``, ``scales`` and
            ``estimator`` (``"unbiased"`` or ``"biased"``) configure `mixture_mmd`;
            default ``MMD(kernel="imq", bandwidth=1.0, scales=GMWAE_SCALES)``.
        encoder: the $\pi$ network, data to ``(N, K)`` logits.
        component_encoder: data to ``(N, K, 2 L)`` (means, log-variances of each head);
            default `ComponentHeads`.
        decoder: ``(N, L)`` codes to data.

    Shape:
        - x: ``(N, *data_shape)`` with ``N >= 2``.

    Examples:
        >>> model = GMWAE((1, 28, 28))
        >>> model.pretrain_heads(x_train, steps=500, batch_size=100)  # moment matching
        >>> model.losses(torch.rand(32, 1, 28, 28))["loss"].backward()
        >>> model.assignments(x_test)              # clusters, (N,) in 0..K-1
    """

    training_defaults: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 5e-4}

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 10,
        n_components: int = 10,
        *,
        lambda_z: float = 500.0,
        prior: FixedGaussianMixture | None = None,
        head_hidden: Sequence[int] = (32, 32),
        arch: str = "gwae",
        mmd: nn.Module | None = None,
        encoder: nn.Module | None = None,
        component_encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        latent_dim = check_count("latent_dim", latent_dim)
        n_components = check_count("n_components", n_components)
        data_shape = tuple(int(s) for s in data_shape)
        if prior is None:
            prior = FixedGaussianMixture(latent_dim, n_components)
        elif not isinstance(prior, FixedGaussianMixture):
            raise TypeError(
                f"prior must be an otloss.priors.FixedGaussianMixture, got {type(prior).__name__}"
            )
        check_prior_matches(prior, latent_dim=latent_dim, n_components=n_components)
        super().__init__(
            encoder if encoder is not None else he_init(default_encoder(data_shape,
                                                                        n_components, arch=arch)),
            decoder if decoder is not None else he_init(default_decoder(latent_dim, data_shape,
                                                                        arch=arch)),
            prior,
            data_shape,
        )
        self.component_encoder = (
            component_encoder
            if component_encoder is not None
            else ComponentHeads(data_shape, n_components, latent_dim, head_hidden)
        )
        self.n_components = n_components
        self.lambda_z = check_nonnegative("lambda_z", lambda_z)
        if mmd is None:
            mmd = MMD(kernel="imq", bandwidth=1.0, scales=GMWAE_SCALES)
        elif not isinstance(mmd, MMD):
            raise TypeError(f"mmd must be an otloss.MMD, got {type(mmd).__name__}")
        if not isinstance(mmd.kernel, str) or mmd.estimator not in ("unbiased", "biased"):
            raise ValueError(
                "mmd must use a named kernel and the 'unbiased' or 'biased' estimator, got "
                f"kernel={mmd.kernel!r}, estimator={mmd.estimator!r}"
            )
        self.mmd = mmd

    # -- the encoder q(z, k | x) ------------------------------------------------------

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""The encoder's distribution $q(z, k \mid x)$.

        Returns:
            ``(log_probs, mu, logvar)``: $\log \pi_k(x)$ of shape ``(N, K)`` (a
            log-softmax) and the heads' means and log-variances, each ``(N, K, L)``.
        """
        x = self.check_data(x)
        n, k, dim = x.shape[0], self.n_components, self.latent_dim
        logits = self._logits(x)
        heads = self.component_encoder(x)
        if heads.shape != (n, k, 2 * dim):
            raise ValueError(
                f"the component encoder must return (N, n_components, 2 * latent_dim) = "
                f"({n}, {k}, {2 * dim}) (means and log-variances), got {tuple(heads.shape)}"
            )
        mu, logvar = heads.chunk(2, dim=-1)
        return torch.log_softmax(logits, dim=-1), mu, logvar

    def _logits(self, x: Tensor) -> Tensor:
        logits = self.encoder(x)
        if logits.shape != (x.shape[0], self.n_components):
            raise ValueError(
                f"the encoder must return (N, n_components) = ({x.shape[0]}, "
                f"{self.n_components}) logits of q(k | x), got {tuple(logits.shape)}"
            )
        return logits

    def component_probs(self, x: Tensor) -> Tensor:
        r"""$q(k \mid x) = \pi_k(x)$, shape ``(N, K)``; each row sums to 1."""
        return torch.softmax(self._logits(self.check_data(x)), dim=-1)

    @torch.no_grad()
    def assignments(self, x: Tensor) -> Tensor:
        r"""Cluster of each sample, $\arg\max_k q(k \mid x)$: ``(N,)`` int64 in
        ``[0, K)`` (GM-WAE's clustering protocol)."""
        return self.component_probs(x).argmax(dim=-1)

    def encode(self, x: Tensor) -> Tensor:
        r"""Deterministic codes ``(N, L)``: the mean $\mu_{k^*}(x)$ of the most
        probable component $k^* = \arg\max_k \pi_k(x)$ (the paper's two-step
        encoding, without noise; the mixture mean would fall between the modes)."""
        log_probs, mu, _ = self.posterior(x)
        best = log_probs.argmax(dim=-1)
        index = best.view(-1, 1, 1).expand(-1, 1, mu.shape[-1])
        return mu.gather(1, index).squeeze(1)

    # -- objectives --------------------------------------------------------------------

    def losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""The GM-WAE objective and its terms on one batch.

        Returns:
            dict of scalars: ``loss`` (``reconstruction + lambda_z * mmd``),
            ``reconstruction`` (the $\pi$-weighted squared error, exact in
            $k$), ``mmd`` (`mixture_mmd`, unweighted by $\lambda$)
            and ``component_entropy`` (entropy of the batch's mean $\pi$, in nats,
            detached: $\log K$ when every component is used equally).
        """
        x = self.check_data(x, min_samples=2, why="GMWAE's unbiased MMD")
        n, k = x.shape[0], self.n_components
        log_probs, mu, logvar = self.posterior(x)
        probs = log_probs.exp()
        z = reparameterize(mu, logvar)  # (N, K, L): one code per sample and component
        x_hat = self.decode(z.flatten(0, 1))  # (N K, *data_shape)
        targets = x.unsqueeze(1).expand(n, k, *self.data_shape).flatten(0, 1)
        errors = squared_error(targets, x_hat).view(n, k)
        reconstruction = (probs * errors).sum(-1).mean()
        z_prior = self.prior.rsample_per_component(n).transpose(0, 1).to(z)  # (N, K, L)
        mmd = mixture_mmd(z, probs, z_prior, kernel=self.mmd.kernel,
                          bandwidth=self.mmd.bandwidth, scales=self.mmd.scales,
                          estimator=self.mmd.estimator)
        with torch.no_grad():
            usage = probs.mean(0).to(loss_precision(probs).result)
            component_entropy = -(usage * usage.clamp_min(1e-30).log()).sum()
        return {
            "loss": reconstruction + self.lambda_z * mmd,
            "reconstruction": reconstruction,
            "mmd": mmd,
            "component_entropy": component_entropy,
        }

    def pretrain_losses(self, x: Tensor) -> dict[str, Tensor]:
        r"""Moment matching of every head to its prior component (the paper's pre-training).

        For head $k$, the batch's codes $z \sim q_C(z \mid k, x_i)$ have mean
        $m_k = \frac1N \sum_i \mu_k(x_i)$ and covariance (law of total covariance)
        $C_k = \widehat{\mathrm{Cov}}_i\, \mu_k(x_i) + \frac1N \sum_i
        \operatorname{diag} \sigma_k^2(x_i)$, computed in closed form. With the
        component's $(\mu^0_k, \Sigma^0_k)$,

        $$
        \text{mean} = \frac{1}{K L} \sum_{k, d} (m_{kd} - \mu^0_{kd})^2, \qquad
        \text{covariance} = \frac{1}{K L^2} \sum_{k, d, e}
            (C_{k, de} - \Sigma^0_{k, de})^2,
        $$

        as WAE's encoder pre-training, per component. Only the heads
        (`pretrain_parameters`) receive gradients.

        Returns:
            dict of scalars: ``loss`` (``mean + covariance``), ``mean``, ``covariance``.
        """
        x = self.check_data(x, min_samples=2, why="moment matching (a covariance)")
        heads = self.component_encoder(x)
        n, k, dim = x.shape[0], self.n_components, self.latent_dim
        if heads.shape != (n, k, 2 * dim):
            raise ValueError(
                f"the component encoder must return (N, n_components, 2 * latent_dim) = "
                f"({n}, {k}, {2 * dim}), got {tuple(heads.shape)}"
            )
        mu, logvar = heads.chunk(2, dim=-1)
        mean = mu.mean(0)  # (K, L)
        centred = (mu - mean).transpose(0, 1)  # (K, N, L)
        cov = centred.transpose(1, 2) @ centred / (n - 1)
        cov = cov + torch.diag_embed(logvar.exp().mean(0))
        tril = self.prior.scale_tril.to(cov)
        prior_mean, prior_cov = self.prior.means.to(mean), tril @ tril.mT
        mean_loss = (mean - prior_mean).pow(2).mean()
        cov_loss = (cov - prior_cov).pow(2).mean()
        return {"loss": mean_loss + cov_loss, "mean": mean_loss, "covariance": cov_loss}

    def pretrain_parameters(self) -> Iterator[nn.Parameter]:
        """The component heads' parameters, trained by `pretrain_losses`."""
        return self.component_encoder.parameters()

    def pretrain_heads(
        self,
        data: Tensor | Iterable[Any],
        steps: int,
        *,
        batch_size: int = 64,
        lr: float | None = None,
        seed: int = 0,
    ) -> dict[str, float]:
        """Run the moment-matching pre-training: ``steps`` Adam steps of
        `pretrain_losses` on `pretrain_parameters` only.

        Args:
            data: a tensor of samples ``(N, *data_shape)``, from which ``batch_size`` rows
                are drawn with replacement each step (a ``torch.Generator`` seeded with
                ``seed``, so the run is reproducible), or an iterable of batches (e.g.
                `otloss.train.InfiniteBatches`), each a tensor or a tuple whose first
                item is the batch. Batches are moved to the model's device.
            steps: optimiser steps (0: nothing is done).
            batch_size: rows per step when ``data`` is a tensor.
            lr: Adam's learning rate; default `training_defaults`' ``lr``.
            seed: seed of the batch order when ``data`` is a tensor.

        Returns:
            The last step's terms (``loss``, ``mean``, ``covariance``) as floats; empty
            when ``steps`` is 0.
        """
        steps = check_nonnegative("steps", steps)
        if int(steps) != steps:
            raise ValueError(f"steps must be an integer, got {steps}")
        lr = self.training_defaults["lr"] if lr is None else check_positive("lr", lr)
        device = next(self.component_encoder.parameters()).device
        if isinstance(data, Tensor):
            data = self.check_data(data, min_samples=2, why="moment matching (a covariance)")
            batch_size = check_count("batch_size", batch_size)
            order = torch.Generator().manual_seed(seed)
            batches: Iterator[Any] = (
                data[torch.randint(data.shape[0], (batch_size,), generator=order)]
                for _ in range(int(steps))
            )
        else:
            batches = iter(data)
        optimizer = torch.optim.Adam(self.pretrain_parameters(), lr=lr)
        terms: dict[str, Tensor] = {}
        for _ in range(int(steps)):
            batch = next(batches)
            x = batch if isinstance(batch, Tensor) else batch[0]
            optimizer.zero_grad()
            terms = self.pretrain_losses(x.to(device))
            terms["loss"].backward()
            optimizer.step()
        return {name: float(value.detach()) for name, value in terms.items()}
