r"""Latent priors for OT autoencoders: fixed, neural (GWAE), mixtures (GWAE, GM-WAE), SWAE.

Every prior is an ``nn.Module`` with ``.latent_dim`` and ``.rsample(n, generator=None)``
returning ``(n, L)`` **reparameterised** samples: noise is drawn from a fixed
distribution and pushed through the prior's parameters, so gradients of any loss on the
samples reach every parameter. Noise follows the device and dtype of the module
(``prior.to(device, dtype)``); a ``torch.Generator`` on that device makes sampling
reproducible. ``sample(n)`` is the same without a graph, and ``prior(n)`` calls
``rsample``. Priors with a closed-form density also expose ``log_prob(z)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from otloss._checks import (
    check_choice,
    check_count,
    check_floating,
    check_generator,
    check_latent_codes,
    check_positive,
    check_samples_of_shape,
)
from otloss.nn import MLP
from otloss.ops import LOG_2PI, autocast_enabled, compute_dtype

__all__ = [
    "FactorizedNeuralPrior",
    "FixedGaussianMixture",
    "GaussianMixturePrior",
    "NeuralPrior",
    "PseudoInputPrior",
    "StandardNormal",
]

class _Prior(nn.Module):
    """Shared plumbing: ``latent_dim``, device/dtype of the noise, ``sample``, ``forward``."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = check_count("latent_dim", latent_dim)
        # parameter-free priors follow .to(device, dtype) through this empty buffer
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    def _factory(self) -> dict:
        ref = next(itertools.chain(self.parameters(), self.buffers()))
        return {"device": ref.device, "dtype": ref.dtype}

    def _noise(self, *shape: int, generator: torch.Generator | None) -> Tensor:
        check_generator("generator", generator)
        return torch.randn(*shape, generator=generator, **self._factory())

    def _choice(self, k: int, n: int, generator: torch.Generator | None) -> Tensor:
        """``(n,)`` indices drawn uniformly from ``range(k)`` on the module's device."""
        check_generator("generator", generator)
        return torch.randint(k, (n,), generator=generator, device=self._factory()["device"])

    def _check_z(self, z: object, *, match_dtype: bool = False) -> Tensor:
        """``z (..., L)``; ``match_dtype``: also in the dtype and on the device of the
        prior's parameters (the densities that solve linear systems with them)."""
        factory = self._factory() if match_dtype else {}
        if isinstance(z, Tensor) and z.is_floating_point() and autocast_enabled(z.device):
            # Log-densities follow `otloss.ops.loss_precision`: autocast's half codes are
            # upcast (to the parameters' dtype where they meet them).
            z = z.to(factory.get("dtype", compute_dtype(z.dtype)))
        return check_latent_codes("z", z, self.latent_dim, **factory)

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Same as `rsample`."""
        return self.rsample(n, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, L)`` samples without a graph."""
        return self.rsample(n, generator=generator)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"


class StandardNormal(_Prior):
    r"""$\mathcal{N}(0, I_L)$, the prior of WAE and of the GWAE baselines.

    Args:
        latent_dim: $L$.

    Shape:
        ``rsample(n)``: ``(n, L)``; ``log_prob(z)``: ``z (..., L) -> (...)``.
    """

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, L)`` standard normal samples."""
        return self._noise(check_count("n", n), self.latent_dim, generator=generator)

    def log_prob(self, z: Tensor) -> Tensor:
        r"""$\log \mathcal{N}(z; 0, I) = -\tfrac12(\|z\|^2 + L \log 2\pi)$."""
        z = self._check_z(z)
        return -0.5 * (z.pow(2).sum(-1) + self.latent_dim * LOG_2PI)


def _activation() -> nn.Module:
    return nn.LeakyReLU(0.2)


class _NormalizedOutput(_Prior):
    """Optional affine-free batch normalisation of the generated codes."""

    def __init__(self, latent_dim: int, normalize: bool) -> None:
        super().__init__(latent_dim)
        self.norm = nn.BatchNorm1d(latent_dim, affine=False) if normalize else None

    def _finish(self, z: Tensor) -> Tensor:
        if self.norm is None:
            return z
        if self.training and z.shape[0] < 2:
            raise ValueError(
                f"normalize=True needs n >= 2 samples in training mode (batch statistics), "
                f"got n={z.shape[0]}; call .eval() to use the running statistics"
            )
        return self.norm(z)


class NeuralPrior(_NormalizedOutput):
    r"""GWAE's neural prior (NP): $z = g_\theta(\epsilon)$, $\epsilon \sim N(0, I_L)$.

    An implicit distribution (no density): $g_\theta$ is an MLP
    $\mathbb{R}^L \to \mathbb{R}^L$ with ``depth`` Linear layers of width ``hidden``
    and LeakyReLU(0.2) between them; it need not be invertible. With ``normalize=True``
    the output goes through an affine-free ``BatchNorm1d`` (as GWAE's reference code), so
    each coordinate of a training batch has zero mean and unit variance; in ``eval()`` mode
    the running statistics are used.

    Args:
        latent_dim: $L$.
        hidden: width of the hidden layers.
        depth: number of Linear layers (>= 2).
        normalize: batch-normalise the output without affine parameters.

    Examples:
        >>> prior = NeuralPrior(16)
        >>> z = prior.rsample(64)  # (64, 16), differentiable w.r.t. prior.parameters()
    """

    def __init__(
        self, latent_dim: int, hidden: int = 256, *, depth: int = 3, normalize: bool = False
    ) -> None:
        super().__init__(latent_dim, normalize)
        check_count("hidden", hidden)
        check_count("depth (layers including the output layer)", depth, minimum=2)
        self.net = MLP(latent_dim, latent_dim, hidden=(hidden,) * (depth - 1),
                       activation=_activation)

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, L)`` samples $g_\\theta(\\epsilon)$."""
        eps = self._noise(check_count("n", n), self.latent_dim, generator=generator)
        return self._finish(self.net(eps))


class FactorizedNeuralPrior(_NormalizedOutput):
    r"""GWAE's factorised neural prior (FNP): $z_i = g^{(i)}_\theta(\epsilon_i)$.

    $$
    \pi_\theta(z) = \prod_{i=1}^{L} \pi^{(i)}_\theta(z_i), \qquad
    z_i = g^{(i)}_\theta(\epsilon_i), \quad \epsilon_i \sim \mathcal{N}(0, 1)
    \text{ independent},
    $$

    so the coordinates of $z$ are independent (the disentanglement meta-prior). The
    $L$ scalar networks $g^{(i)}$ (``depth`` layers of width ``hidden``,
    LeakyReLU(0.2)) run in parallel as 1-D grouped convolutions with ``groups=L`` on a
    length-1 sequence with $L$ channels, as in GWAE (Table 6): group $i$ sees
    only channel $i$. ``normalize=True`` applies an affine-free ``BatchNorm1d``,
    which normalises each coordinate separately and keeps the factorisation.

    Args:
        latent_dim: $L$.
        hidden: width of each coordinate's hidden layers.
        depth: number of layers of each coordinate's network (>= 2).
        normalize: batch-normalise the output without affine parameters.
    """

    def __init__(
        self, latent_dim: int, hidden: int = 64, *, depth: int = 3, normalize: bool = False
    ) -> None:
        super().__init__(latent_dim, normalize)
        check_count("hidden", hidden)
        check_count("depth (layers including the output layer)", depth, minimum=2)
        sizes = [1] + [hidden] * (depth - 1) + [1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            if i:
                layers.append(_activation())
            layers.append(nn.Conv1d(a * latent_dim, b * latent_dim, 1, groups=latent_dim))
        self.net = nn.Sequential(*layers)

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, L)`` samples with independent coordinates."""
        eps = self._noise(check_count("n", n), self.latent_dim, generator=generator)
        return self._finish(self.net(eps.unsqueeze(-1)).squeeze(-1))


def _mixture_log_prob(z: Tensor, log_weights: Tensor, means: Tensor, scales: Tensor) -> Tensor:
    r"""Log-density of $\sum_k w_k \mathcal{N}(m_k, M_k M_k^\top)$ at ``z (..., L)``.

    ``scales`` ``(K, L, L)`` are square roots $M_k$ (any invertible matrices, not
    necessarily triangular): $\log\det(M M^\top) = 2 \log|\det M|$ and the Mahalanobis
    term is $\|M^{-1}(z - m)\|^2$.
    """
    lead = z.shape[:-1]
    diff = z.reshape(-1, 1, z.shape[-1]) - means  # (P, K, L)
    white = torch.linalg.solve(scales, diff.permute(1, 2, 0))  # (K, L, P)
    maha = white.pow(2).sum(1).T  # (P, K)
    logdet = torch.linalg.slogdet(scales).logabsdet  # (K,)
    comp = -0.5 * (maha + z.shape[-1] * LOG_2PI) - logdet
    return torch.logsumexp(comp + log_weights, dim=-1).reshape(lead)


def _component_samples(eps: Tensor, means: Tensor, scales: Tensor) -> Tensor:
    r"""$m_k + M_k \epsilon_n$ for every sample n and component k: ``(n, K, L)``."""
    return means + torch.einsum("kij,nj->nki", scales, eps)


class GaussianMixturePrior(_Prior):
    r"""GWAE's Gaussian mixture prior (GMP) with learnable weights, means and covariances.

    $$
    \pi_\theta(z) = \sum_{k=1}^{K} w_k\, \mathcal{N}(z;\, m_k,\, M_k M_k^\top),
    \qquad w = \operatorname{softmax}(\text{logits}),
    $$

    with $M_k \in \mathbb{R}^{L \times L}$ unconstrained square roots (any
    $M_k$ gives a positive semi-definite covariance).

    **Gradients for the weights.** Choosing a component by ``argmax`` or ``multinomial``
    (GWAE's reference code) gives the weights no gradient, so they never learn.
    `rsample` instead uses the *straight-through Gumbel-softmax* estimator: a
    component is drawn exactly, $k = \arg\max_j (\log w_j + g_j)$,
    $g_j \sim \text{Gumbel}(0, 1)$, and the sample
    $z = \sum_j y_j (m_j + M_j \epsilon)$ uses the one-hot $y$ in the forward
    pass (so $z$ is an exact mixture sample) and the relaxed
    $\operatorname{softmax}((\log w + g)/\tau)$ in the backward pass. The weight
    gradient is biased (it is exact only as $\tau \to 0$, where its variance grows)
    but points the right way. For an unbiased alternative, `rsample_weighted` returns
    samples from every component with weights $w_k / n$, for weighted divergences
    (``MMD(x_weights=...)``): the weights then enter the loss exactly.

    Args:
        latent_dim: $L$.
        n_components: $K$.
        mean_std: standard deviation of the random initial means.
        component_std: initial $M_k = \text{component\_std} \cdot I$.
        temperature: $\tau > 0$ of the relaxed backward pass.

    Examples:
        >>> prior = GaussianMixturePrior(2, 10)
        >>> prior.rsample(256).sum().backward()   # reaches logits, means and scales
    """

    def __init__(
        self,
        latent_dim: int,
        n_components: int,
        *,
        mean_std: float = 1.0,
        component_std: float = 0.5,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(latent_dim)
        self.n_components = check_count("n_components", n_components)
        check_positive("mean_std", mean_std)
        check_positive("component_std", component_std)
        self.temperature = check_positive("temperature", temperature)
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.means = nn.Parameter(mean_std * torch.randn(n_components, latent_dim))
        eye = torch.eye(latent_dim).expand(n_components, latent_dim, latent_dim)
        self.scales = nn.Parameter(component_std * eye.clone())

    @property
    def weights(self) -> Tensor:
        """Mixture weights $w$ ``(K,)``, summing to 1."""
        return torch.softmax(self.logits, dim=0)

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, L)`` exact mixture samples; straight-through gradients for the weights."""
        n = check_count("n", n)
        eps = self._noise(n, self.latent_dim, generator=generator)
        u = torch.rand(n, self.n_components, generator=generator, **self._factory())
        tiny = torch.finfo(u.dtype).tiny
        gumbel = -torch.log((-torch.log(u.clamp_min(tiny))).clamp_min(tiny))
        soft = torch.softmax((torch.log_softmax(self.logits, 0) + gumbel) / self.temperature, -1)
        hard = nn.functional.one_hot(soft.argmax(-1), self.n_components).to(soft.dtype)
        y = hard + soft - soft.detach()
        return torch.einsum("nk,nkl->nl", y, _component_samples(eps, self.means, self.scales))

    def rsample_weighted(
        self, n_per_component: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""Stratified samples from every component with exact, differentiable weights.

        Returns:
            ``z`` ``(K * n, L)`` (component-major: rows ``k n`` to ``(k + 1) n - 1`` come
            from component ``k``) and ``weights`` ``(K * n,)`` = $w_k / n$, summing
            to 1. $\sum_i \text{weights}_i\, h(z_i)$ is an unbiased estimate of
            $\mathbb{E}_\pi h$ whose gradient reaches the weights exactly.
        """
        n = check_count("n_per_component", n_per_component)
        eps = self._noise(n, self.latent_dim, generator=generator)
        z = _component_samples(eps, self.means, self.scales).transpose(0, 1)
        weights = (self.weights / n).repeat_interleave(n)
        return z.reshape(-1, self.latent_dim), weights

    def log_prob(self, z: Tensor) -> Tensor:
        """Mixture log-density at ``z (..., L)`` -> ``(...)``; needs invertible $M_k$.
        ``z`` must have the parameters' dtype and device (``TypeError``/``ValueError``)."""
        z = self._check_z(z, match_dtype=True)
        return _mixture_log_prob(z, torch.log_softmax(self.logits, 0), self.means, self.scales)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, n_components={self.n_components}"


def _simplex_means(n_components: int, latent_dim: int, distance: float) -> Tensor:
    """K mutually equidistant points (a regular simplex) centred at 0, in float64."""
    k = n_components
    if latent_dim < k - 1:
        raise ValueError(
            f"{k} mutually equidistant means need latent_dim >= {k - 1}, got {latent_dim}; "
            "use layout='rotated' for a 2-D latent space"
        )
    vertices = torch.eye(k, dtype=torch.float64) * (distance / math.sqrt(2))
    vertices = vertices - vertices.mean(0)
    # coordinates in the (K - 1)-dimensional affine hull, padded with zeros up to L
    u, s, _ = torch.linalg.svd(vertices)
    coords = (u * s)[:, : k - 1]
    out = torch.zeros(k, latent_dim, dtype=torch.float64)
    out[:, : coords.shape[1]] = coords
    return out


def _rotation(theta: Tensor) -> Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


class FixedGaussianMixture(_Prior):
    r"""GM-WAE's fixed Gaussian mixture prior with uniform weights.

    $$
    p(z) = \frac{1}{K}\sum_{k=1}^{K} \mathcal{N}(z;\, \mu_k,\, \Sigma_k).
    $$

    Layouts:

    - ``"simplex"`` (default, GM-WAE section 5.2): the means are the vertices of a regular
      simplex centred at 0, pairwise at distance ``separation * sigma`` (4 sigma by
      default, about 5 % overlap between modes); needs ``latent_dim >= K - 1``.
      $\Sigma_k = \sigma^2 I$, or the given ``covariance``.
    - ``"rotated"`` (GM-WAE figure 3, 2-D only): component $k$ is component 0 rotated
      by $\theta_k = 2\pi k / K$: $\mu_k = R(\theta_k)\mu_0$,
      $\Sigma_k = R(\theta_k)\operatorname{diag}(s)^2 R(\theta_k)^\top$ with
      $\mu_0$ = ``rotated_mean`` (default ``(1, 0)``) and standard deviations
      $s$ = ``rotated_scales`` (default ``(0.1, 0.5)``, the paper's
      $\sigma^0_x, \sigma^0_y$).

    Means and Cholesky factors are buffers (they move with ``.to()``, get no gradient).

    Args:
        latent_dim: $L$.
        n_components: $K$.
        sigma: isotropic standard deviation $\sigma$ (``"simplex"``).
        separation: distance between means in units of ``sigma``.
        covariance: ``(L, L)`` shared or ``(K, L, L)`` per-component covariances replacing
            $\sigma^2 I$ (``"simplex"``); must be positive definite.
        layout: ``"simplex"`` or ``"rotated"``.
        rotated_mean: $\mu_0$ of the ``"rotated"`` layout.
        rotated_scales: standard deviations of component 0 along the axes.

    Examples:
        >>> prior = FixedGaussianMixture(10, 10)        # MNIST GM-WAE prior
        >>> z = prior.rsample_per_component(8)           # (10, 8, 10)
    """

    def __init__(
        self,
        latent_dim: int,
        n_components: int,
        *,
        sigma: float = 1.0,
        separation: float = 4.0,
        covariance: Tensor | None = None,
        layout: str = "simplex",
        rotated_mean: Sequence[float] = (1.0, 0.0),
        rotated_scales: Sequence[float] = (0.1, 0.5),
    ) -> None:
        super().__init__(latent_dim)
        k = self.n_components = check_count("n_components", n_components)
        self.layout = check_choice("layout", layout, ("simplex", "rotated"))
        dtype = torch.get_default_dtype()
        if layout == "rotated":
            if latent_dim != 2:
                raise ValueError(f"layout='rotated' is 2-D; got latent_dim={latent_dim}")
            if covariance is not None:
                raise ValueError("layout='rotated' builds its own covariances; drop covariance")
            if len(rotated_mean) != 2 or len(rotated_scales) != 2:
                raise ValueError("rotated_mean and rotated_scales must have 2 entries each")
            for s in rotated_scales:
                check_positive("rotated_scales", s)
            rot = _rotation(torch.arange(k, dtype=torch.float64) * (2 * math.pi / k))
            means = rot @ torch.tensor(rotated_mean, dtype=torch.float64)
            # R diag(s) is a square root of R diag(s)^2 R^T; its Cholesky factor is stored
            root = rot @ torch.diag(torch.tensor(rotated_scales, dtype=torch.float64))
            tril = torch.linalg.cholesky(root @ root.mT)
        else:
            check_positive("sigma", sigma)
            check_positive("separation", separation)
            means = _simplex_means(k, latent_dim, separation * sigma)
            if covariance is None:
                tril = sigma * torch.eye(latent_dim, dtype=torch.float64).expand(k, -1, -1)
            else:
                tril = self._cholesky(covariance, k, latent_dim)
        self.sigma = float(sigma)
        self.separation = float(separation)
        self.register_buffer("means", means.to(dtype))
        self.register_buffer("scale_tril", tril.to(dtype).contiguous())

    @staticmethod
    def _cholesky(covariance: Tensor, k: int, latent_dim: int) -> Tensor:
        covariance = check_floating("covariance", covariance).detach().to(torch.float64)
        if covariance.shape == (latent_dim, latent_dim):
            covariance = covariance.expand(k, -1, -1)
        if covariance.shape != (k, latent_dim, latent_dim):
            raise ValueError(
                f"covariance must have shape ({latent_dim}, {latent_dim}) or "
                f"({k}, {latent_dim}, {latent_dim}), got {tuple(covariance.shape)}"
            )
        tril, info = torch.linalg.cholesky_ex(covariance)
        if bool((info != 0).any()):
            raise ValueError("covariance must be symmetric positive definite")
        return tril

    @property
    def weights(self) -> Tensor:
        """Uniform mixture weights ``(K,)``."""
        return self.means.new_full((self.n_components,), 1.0 / self.n_components)

    def rsample_per_component(
        self, n_per_component: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """``(K, n, L)``: ``n`` samples from each component ``k`` (stratified sampling)."""
        n = check_count("n_per_component", n_per_component)
        eps = self._noise(n, self.latent_dim, generator=generator)
        return _component_samples(eps, self.means, self.scale_tril).transpose(0, 1)

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, L)`` samples, components drawn uniformly."""
        n = check_count("n", n)
        k = self._choice(self.n_components, n, generator)
        eps = self._noise(n, self.latent_dim, generator=generator)
        return self.means[k] + torch.einsum("nij,nj->ni", self.scale_tril[k], eps)

    def log_prob(self, z: Tensor) -> Tensor:
        """Mixture log-density at ``z (..., L)`` -> ``(...)``; ``z`` in the buffers' dtype
        and on their device."""
        z = self._check_z(z, match_dtype=True)
        log_w = torch.log(self.weights)
        return _mixture_log_prob(z, log_w, self.means, self.scale_tril)

    def extra_repr(self) -> str:
        return (
            f"latent_dim={self.latent_dim}, n_components={self.n_components}, "
            f"layout={self.layout!r}"
        )


def _split_conditional(out: Tensor | Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """``(mu, logvar)`` from a network returning them as a tuple or as one ``(K, 2L)``."""
    if isinstance(out, Tensor):
        if out.dim() != 2 or out.shape[-1] % 2:
            raise ValueError(
                "encoder_net must return (mu, logvar) or one (K, 2L) tensor, got shape "
                f"{tuple(out.shape)}"
            )
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar
    mu, logvar = out[0], out[1]
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(
            f"encoder_net's mu and logvar must both be (K, L), got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    return mu, logvar


_SPACES = ("data", "latent", "cosine")


class PseudoInputPrior(_Prior):
    r"""SWAE's learnable prior: a mixture of conditional priors at learnable pseudo-inputs.

    $$
    p_\gamma(z) = \frac1K \sum_{k=1}^K \mathcal{N}\bigl(z;\, \mu_\gamma(u_k),\,
    \operatorname{diag}\sigma^2_\gamma(u_k)\bigr)
    $$

    with learnable pseudo-inputs $u_k$ in data space (clamped to ``data_range``) and
    a conditional prior network ``encoder_net`` giving $(\mu, \log\sigma^2)$.
    `rsample` draws $k$ uniformly; `rsample_nearest` draws from the
    conditional prior of each data point's nearest pseudo-input (SWAE's training step).

    Args:
        encoder_net: maps ``(K, *input_shape)`` to a tuple ``(mu, logvar)`` of
            ``(K, L)`` tensors, or to one ``(K, 2L)`` tensor split in half.
        n_pseudo: $K$.
        input_shape: shape of one data sample.
        data_range: ``(low, high)`` the pseudo-inputs are clamped to (``None``: no clamp);
            the clamp passes no gradient outside the range, like VampPrior's hard-tanh.
        latent_dim: $L$; inferred from one pass of ``encoder_net`` when ``None``.
        init_std: standard deviation of the random initial pseudo-inputs around the middle
            of ``data_range`` (use `init_from_data` to start from training samples,
            as SWAE does).

    Examples:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(784, 2 * 8))
        >>> prior = PseudoInputPrior(net, 100, (1, 28, 28))
        >>> prior.init_from_data(train_images)
        >>> z_d = prior.rsample_nearest(x)   # (N, 8): each x's nearest pseudo-input
    """

    def __init__(
        self,
        encoder_net: nn.Module,
        n_pseudo: int,
        input_shape: Sequence[int],
        *,
        data_range: tuple[float, float] | None = (0.0, 1.0),
        latent_dim: int | None = None,
        init_std: float = 0.1,
    ) -> None:
        if not isinstance(encoder_net, nn.Module):
            raise TypeError(f"encoder_net must be an nn.Module, got {type(encoder_net).__name__}")
        n_pseudo = check_count("n_pseudo", n_pseudo)
        input_shape = tuple(input_shape)
        if not input_shape or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in input_shape
        ):
            raise ValueError(f"input_shape must be a shape of positive ints, got {input_shape}")
        if data_range is not None and not data_range[0] < data_range[1]:
            raise ValueError(f"data_range must be (low, high) with low < high, got {data_range}")
        check_positive("init_std", init_std)
        center = 0.0 if data_range is None else 0.5 * (data_range[0] + data_range[1])
        pseudo = center + init_std * torch.randn(n_pseudo, *input_shape)
        if latent_dim is None:
            was_training = encoder_net.training
            encoder_net.eval()
            with torch.no_grad():
                latent_dim = _split_conditional(encoder_net(pseudo[:1]))[0].shape[-1]
            encoder_net.train(was_training)
        super().__init__(latent_dim)
        self.n_pseudo = n_pseudo
        self.encoder_net = encoder_net
        self.input_shape = input_shape
        self.data_range = (
            None if data_range is None else (float(data_range[0]), float(data_range[1]))
        )
        self.raw_pseudo_inputs = nn.Parameter(pseudo)

    @property
    def pseudo_inputs(self) -> Tensor:
        """The pseudo-inputs $u_k$ ``(K, *input_shape)``, clamped to ``data_range``."""
        u = self.raw_pseudo_inputs
        return u if self.data_range is None else u.clamp(*self.data_range)

    @torch.no_grad()
    def init_from_data(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """Set the pseudo-inputs to ``K`` random samples of ``x`` ``(N, *input_shape)``
        (without replacement when ``N >= K``)."""
        x = self._check_x(x)
        n = x.shape[0]
        if n >= self.n_pseudo:
            idx = torch.randperm(n, generator=generator, device=x.device)[: self.n_pseudo]
        else:
            idx = torch.randint(n, (self.n_pseudo,), generator=generator, device=x.device)
        self.raw_pseudo_inputs.copy_(x[idx])

    def _check_x(self, x: object) -> Tensor:
        return check_samples_of_shape("x", x, self.input_shape)

    def conditional(self, index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of the conditional priors of the pseudo-inputs ``index`` (all
        when ``None``): each ``(len(index), L)``."""
        u = self.pseudo_inputs if index is None else self.pseudo_inputs[index]
        mu, logvar = _split_conditional(self.encoder_net(u))
        if mu.shape[-1] != self.latent_dim:
            raise ValueError(f"encoder_net returned L={mu.shape[-1]}, expected {self.latent_dim}")
        return mu, logvar

    def _sample_at(self, index: Tensor, generator: torch.Generator | None) -> Tensor:
        mu, logvar = self.conditional(index)
        eps = self._noise(index.shape[0], self.latent_dim, generator=generator)
        return mu + torch.exp(0.5 * logvar) * eps

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, L)`` samples: $k$ uniform, then the conditional prior of $u_k$.

        Only the ``n`` drawn pseudo-inputs go through ``encoder_net``.
        """
        n = check_count("n", n)
        index = self._choice(self.n_pseudo, n, generator)
        return self._sample_at(index, generator)

    @torch.no_grad()
    def nearest(
        self,
        x: Tensor,
        space: str = "data",
        encoder: Callable[[Tensor], Tensor | Sequence[Tensor]] | None = None,
    ) -> Tensor:
        """Index ``(N,)`` of each sample's nearest pseudo-input, from one ``cdist``.

        ``space``: ``"data"`` (Euclidean in data space), ``"cosine"`` (largest cosine
        similarity in data space) or ``"latent"`` (Euclidean between codes: ``encoder``
        applied to ``x`` and to the pseudo-inputs, its first output if it returns a tuple;
        by default the conditional prior's mean, SWAE's cheaper approximation).
        """
        check_choice("space", space, _SPACES)
        x = self._check_x(x)
        u = self.pseudo_inputs
        if x.device != u.device or x.dtype != u.dtype:
            raise ValueError(
                f"x is {x.dtype} on {x.device} but the pseudo-inputs are {u.dtype} on {u.device}"
            )
        if space == "latent":
            embed = encoder if encoder is not None else self.encoder_net
            a, b = self._first(embed(x)), self._first(embed(u))
        else:
            a, b = x.flatten(1), u.flatten(1)
            if space == "cosine":  # |a/|a| - b/|b||^2 = 2 - 2 cos(a, b)
                a = nn.functional.normalize(a, dim=1)
                b = nn.functional.normalize(b, dim=1)
        return torch.cdist(a, b).argmin(dim=1)

    def _first(self, out: Tensor | Sequence[Tensor]) -> Tensor:
        if isinstance(out, Tensor):
            return _split_conditional(out)[0] if out.shape[-1] == 2 * self.latent_dim else out
        return out[0]

    def rsample_nearest(
        self,
        x: Tensor,
        space: str = "data",
        encoder: Callable[[Tensor], Tensor | Sequence[Tensor]] | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""``(N, L)``: for each ``x_n`` a sample of $p_\gamma(z \mid u^{(n)})$, with
        $u^{(n)}$ its nearest pseudo-input (see `nearest` for ``space`` and
        ``encoder``). The choice of $u^{(n)}$ is discrete (no gradient); the sample is
        reparameterised, so gradients reach the chosen pseudo-inputs and the network."""
        return self._sample_at(self.nearest(x, space, encoder), generator)

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of the uniform mixture at ``z (..., L)`` -> ``(...)`` (K network
        evaluations); ``z`` in the parameters' dtype and on their device."""
        z = self._check_z(z, match_dtype=True)
        mu, logvar = self.conditional()  # (K, L)
        zz = z.unsqueeze(-2)
        comp = -0.5 * (((zz - mu) ** 2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)
        return torch.logsumexp(comp, dim=-1) - math.log(self.n_pseudo)

    def extra_repr(self) -> str:
        return (
            f"latent_dim={self.latent_dim}, n_pseudo={self.n_pseudo}, "
            f"input_shape={self.input_shape}, data_range={self.data_range}"
        )
