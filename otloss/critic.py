r"""Kantorovich critics: adversarial estimates of the 1-Wasserstein distance.

By Kantorovich-Rubinstein duality

$$
W_1(P, Q) = \sup_{\|f\|_{L} \le 1} \mathbb{E}_{P} f - \mathbb{E}_{Q} f,
$$

so a neural network $f$ kept (approximately) 1-Lipschitz and trained to maximise
$\mathbb{E}_P f - \mathbb{E}_Q f$ gives a differentiable estimate of $W_1$
for a generator to minimise (WGAN; GWAE's joint term $L_D$ on $(x, z)$ pairs).
The Lipschitz constraint is imposed by a gradient penalty (Gulrajani et al., 2017) and/or
spectral normalisation (Miyato et al., 2018).

Bias: the estimate is a **lower bound** on $W_1$ of the samples it is evaluated on
whenever $f$ is truly 1-Lipschitz; an under-trained or over-constrained critic
(spectral norm with piecewise-linear activations) underestimates, and a gradient-penalty
critic can slightly overshoot because the penalty is soft. ``docs/critic.md`` gives the
measured sizes of both effects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from otloss._checks import (
    check_count,
    check_differentiable_inputs,
    check_generator,
    check_module_dtype,
    check_nonnegative,
    check_positive,
    check_real_fake,
    check_scores,
)
from otloss.nn import MLP, ImageBranch, VectorBranch
from otloss.ops import loss_precision, safe_sqrt

__all__ = ["JointCritic", "KantorovichCritic", "gradient_penalty"]

Inputs = Tensor | Sequence[Tensor]
_NORMALIZED_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def _interpolate(
    real: tuple[Tensor, ...], fake: tuple[Tensor, ...], generator: torch.Generator | None
) -> tuple[Tensor, ...]:
    """Detached random interpolates with ONE coefficient t ~ U(0, 1) per sample.

    The same t is used for every member of a tuple input, so ``(x_t, z_t)`` lies on the
    segment between the pairs ``(x, z)`` and ``(x', z')`` of the joint space.
    """
    r0 = real[0]
    t = torch.rand(r0.shape[0], generator=generator, device=r0.device, dtype=r0.dtype)
    out = []
    for a, b in zip(real, fake, strict=True):
        tt = t.view(-1, *([1] * (a.dim() - 1)))
        out.append(torch.lerp(b.detach(), a.detach(), tt).requires_grad_(True))
    return tuple(out)


def _penalty(values: Tensor, points: tuple[Tensor, ...], center: float) -> Tensor:
    r"""Mean of $(\|\nabla f(p_i)\| - c)^2$ over samples, the gradient being the
    concatenation of the flattened gradients with respect to every member of ``points``."""
    if values.grad_fn is None:
        raise ValueError(
            "the critic's scores carry no gradient (it detaches its output, or runs under "
            "no_grad inside): the gradient penalty needs f differentiable in its inputs"
        )
    grads = torch.autograd.grad(values.sum(), points, create_graph=True, allow_unused=True)
    # A member the critic ignores contributes a zero gradient.
    sq = sum(
        g.flatten(1).pow(2).sum(1) if g is not None else p.new_zeros(p.shape[0])
        for g, p in zip(grads, points, strict=True)
    )
    if center == 0:
        return sq.mean()  # no sqrt: the zero-centred penalty is smooth at a zero gradient
    return (safe_sqrt(sq) - center).pow(2).mean()


def gradient_penalty(
    f: Callable[..., Tensor],
    real: Inputs,
    fake: Inputs,
    *,
    center: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Gradient penalty of a critic on random interpolates (WGAN-GP, GWAE appendix B.3).

    $$
    \mathrm{GP} = \mathbb{E}_i \bigl(\|\nabla f(\hat u_i)\|_2 - c\bigr)^2, \qquad
    \hat u_i = t_i\, u_i + (1 - t_i)\, u'_i, \quad t_i \sim U(0, 1),
    $$

    with $u_i$ a real and $u'_i$ a fake sample. For a joint critic
    $f(x, z)$ the inputs are tuples, one $t_i$ is shared by $x$ and
    $z$ of the same pair, and $\nabla f$ is the concatenation of the flattened
    gradients with respect to every member. $c = 1$ (default) is the one-centred
    penalty of Gulrajani et al.; $c = 0$ penalises $\|\nabla f\|^2$ (zero-centred,
    Mescheder et al. 2018 / Thanh-Tung et al. 2019).

    The interpolates are built from **detached** inputs, so the penalty's gradient reaches
    only the critic's parameters, never the networks that produced ``real`` or ``fake``.
    ``f`` must map each sample independently (no batch normalisation).

    Args:
        f: the critic, called as ``f(u)`` or ``f(x, z)``; returns ``(N,)`` or ``(N, 1)``.
        real: ``(N, *)`` tensor or tuple of ``(N, *)`` tensors.
        fake: same shapes as ``real``.
        center: target gradient norm $c \ge 0$.
        generator: random generator for the $t_i$ (on the inputs' device).

    Returns:
        Scalar tensor, differentiable with respect to the critic's parameters.

    Raises:
        TypeError: ``f`` is a module whose parameters have another dtype than the inputs.
        ValueError: the inputs are inference tensors, or ``f``'s scores carry no gradient
            (a critic that detaches its output).
        RuntimeError: called under ``torch.inference_mode()``.

    Examples:
        >>> f = nn.Linear(3, 1)
        >>> gradient_penalty(f, torch.randn(8, 3), torch.randn(8, 3))
    """
    center = check_nonnegative("center", center)
    check_generator("generator", generator)
    r, fk = check_real_fake(real, fake, same_n=True)
    if isinstance(f, nn.Module):
        for i, t in enumerate(r):
            check_module_dtype(f"real[{i}]", t, f)
    check_differentiable_inputs(r, fk)
    points = _interpolate(r, fk, generator)
    with torch.enable_grad():
        values = check_scores(f(*points), r[0].shape[0])
        return _penalty(values, points, center)


def _apply_spectral_norm(net: nn.Module) -> int:
    """Spectrally normalise every Linear/Conv weight of ``net`` in place; count them."""
    count = 0
    for module in net.modules():
        if isinstance(module, _NORMALIZED_LAYERS) and module.weight is not None:
            if not parametrize.is_parametrized(module, "weight"):
                _spectral_norm(module)
            count += 1
    return count


class KantorovichCritic(nn.Module):
    r"""A 1-Lipschitz critic $f$ and the dual estimate of $W_1$ it yields.

    $$
    \widehat{W}_1 = \frac{1}{N}\sum_i f(u_i) - \frac{1}{M}\sum_j f(u'_j), \qquad
    \mathcal{L}_{\text{critic}} = -\widehat{W}_1 + \lambda_{GP}\, \mathrm{GP}_c
        + \frac{\lambda_{\text{drift}}}{N + M}
          \Bigl(\sum_i f(u_i)^2 + \sum_j f(u'_j)^2\Bigr)
    $$

    with $\mathrm{GP}_c$ the `gradient_penalty` centred at
    $c$ = ``gp_center``. The drift term (ProGAN) anchors the free additive constant
    of $f$; here it is averaged over real and fake samples alike.

    **Two-step usage.** The critic step and the generator step are separate forward
    passes; no graph is ever reused after an optimiser step, and the critic step cannot
    push gradients into the generator because `critic_loss` detaches its inputs::

        for _ in range(n_critic):                       # 1. critic step(s)
            critic_opt.zero_grad()
            critic.critic_loss(real, fake).backward()   # real/fake detached inside
            critic_opt.step()
        gen_opt.zero_grad()                             # 2. generator step
        critic.estimate(real, fake).backward()          # fresh forward, new critic
        gen_opt.step()

    The generator minimises the estimate (it raises the critic's scores of its samples;
    GWAE minimises $L_D$ over the encoder, whose pairs are "real", and the decoder
    and prior, whose pairs are "fake"). ``fake`` may be computed once per iteration and
    used in both steps: the critic step never backpropagates into its graph.
    The generator step also leaves gradients on the critic's parameters; the critic
    optimiser's ``zero_grad`` clears them, or call ``critic.requires_grad_(False)``
    around the generator step to skip computing them.

    Bias: $\widehat W_1 \le W_1$ of the evaluated samples whenever $f$ is
    1-Lipschitz; spectral normalisation with LeakyReLU layers underestimates by a few to
    tens of percent (measured in ``docs/critic.md``), the soft gradient penalty can
    overshoot by a few percent.

    Args:
        net: any module mapping ``net(*inputs)`` to ``(N,)`` or ``(N, 1)`` scores. It must
            treat samples independently (no batch normalisation); real, fake and
            interpolated samples go through it in one concatenated pass.
        spectral_norm: wrap every Linear/Conv/ConvTranspose weight of ``net`` (in place)
            with `torch.nn.utils.parametrizations.spectral_norm`.
        gp_weight: $\lambda_{GP} \ge 0$ (GWAE: 10); 0 disables the penalty.
        gp_center: $c$: 1 (one-centred) or 0 (zero-centred).
        drift_weight: $\lambda_{\text{drift}} \ge 0$.

    Shape:
        - real, fake: a ``(N, *)`` tensor or a tuple such as ``(x (N, *), z (N, L))``;
          the gradient penalty needs as many fakes as reals.
        - forward output: ``(N,)``; losses: scalars.

    Examples:
        >>> critic = KantorovichCritic(nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2),
        ...                                          nn.Linear(64, 1)))
        >>> loss = critic.critic_loss(torch.randn(128, 2), torch.randn(128, 2) + 1)
    """

    def __init__(
        self,
        net: nn.Module,
        spectral_norm: bool = True,
        gp_weight: float = 10.0,
        gp_center: float = 1.0,
        drift_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
        self.gp_weight = check_nonnegative("gp_weight", gp_weight)
        self.gp_center = check_nonnegative("gp_center", gp_center)
        self.drift_weight = check_nonnegative("drift_weight", drift_weight)
        self.spectral_norm = bool(spectral_norm)
        if self.spectral_norm and _apply_spectral_norm(net) == 0:
            raise ValueError(
                "spectral_norm=True but net has no Linear/Conv layer to normalise; pass "
                "spectral_norm=False for a parameter-free or custom-layer critic"
            )
        self.net = net

    def forward(self, *inputs: Tensor) -> Tensor:
        """Scores $f(u)$ or $f(x, z)$: ``(N,)``."""
        if not inputs:
            raise TypeError("the critic needs at least one input tensor")
        for i, t in enumerate(inputs):
            check_module_dtype(f"input {i}", t, self.net)
        return check_scores(self.net(*inputs), inputs[0].shape[0])

    def _joint_scores(self, groups: Sequence[tuple[Tensor, ...]]) -> list[Tensor]:
        """One forward pass on the concatenation of several input groups, split back."""
        sizes = [g[0].shape[0] for g in groups]
        merged = tuple(torch.cat(members) for members in zip(*groups, strict=True))
        scores = self(*merged)
        # Under autocast the means, the drift and the penalty are taken in float32.
        return list(scores.to(loss_precision(scores).result).split(sizes))

    def critic_terms(
        self, real: Inputs, fake: Inputs, *, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """The critic objective and its parts, for logging.

        Returns:
            dict with ``loss`` (what `critic_loss` returns), ``estimate``
            ($\\widehat W_1$, detached from the generator), ``gradient_penalty`` and
            ``drift`` (unweighted; zero tensors when their weight is 0).
        """
        use_gp = self.gp_weight > 0
        if use_gp and torch.compiler.is_compiling():
            return _eager_critic_terms(self, real, fake, generator=generator)
        check_generator("generator", generator)
        r, f = check_real_fake(real, fake, same_n=use_gp)
        if use_gp:
            check_differentiable_inputs(r, f)
        r = tuple(t.detach() for t in r)
        f = tuple(t.detach() for t in f)
        zero = r[0].new_zeros(())
        with torch.enable_grad():
            if use_gp:
                points = _interpolate(r, f, generator)
                f_real, f_fake, f_mid = self._joint_scores([r, f, points])
                gp = _penalty(f_mid, points, self.gp_center)
            else:
                f_real, f_fake = self._joint_scores([r, f])
                gp = zero
            estimate = f_real.mean() - f_fake.mean()
            drift = torch.cat([f_real, f_fake]).pow(2).mean() if self.drift_weight > 0 else zero
            loss = -estimate + self.gp_weight * gp + self.drift_weight * drift
        return {"loss": loss, "estimate": estimate, "gradient_penalty": gp, "drift": drift}

    def critic_loss(
        self, real: Inputs, fake: Inputs, *, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""Loss the critic minimises: $-\widehat W_1$ + penalties (scalar).

        ``real`` and ``fake`` are detached: backpropagating this loss reaches only the
        critic's parameters. ``generator`` drives the interpolation coefficients.
        """
        return self.critic_terms(real, fake, generator=generator)["loss"]

    def estimate(self, real: Inputs, fake: Inputs) -> Tensor:
        r"""$\widehat W_1 = \mathbb{E} f(\text{real}) - \mathbb{E} f(\text{fake})$
        (scalar), differentiable with respect to ``real`` and ``fake`` for the generator
        step. Call it after the critic step, never reuse a critic-step graph."""
        r, f = check_real_fake(real, fake, same_n=False)
        f_real, f_fake = self._joint_scores([r, f])
        return f_real.mean() - f_fake.mean()

    def extra_repr(self) -> str:
        return (
            f"spectral_norm={self.spectral_norm}, gp_weight={self.gp_weight}, "
            f"gp_center={self.gp_center}, drift_weight={self.drift_weight}"
        )


#: The gradient penalty differentiates the critic twice, which compiled graphs do not
#: support (their critic gradients would silently miss the penalty): under
#: ``torch.compile`` the critic step runs eagerly (a graph break; ``fullgraph=True``
#: raises). Compile it with ``gp_weight=0`` (spectral norm only) for one graph.
_eager_critic_terms = torch.compiler.disable(KantorovichCritic.critic_terms)


def _default_channels(height: int, width_px: int, top: int) -> tuple[int, ...]:
    """Channels of the default image branch: 4x4 stride-2 convolutions while a side is at
    least 8 px (down to at most 7 px), from ``top // 4`` channels doubling up to ``top``."""
    channels: list[int] = []
    c = max(top // 4, 1)
    while min(height, width_px) >= 8:
        channels.append(c)
        height, width_px = height // 2, width_px // 2
        c = min(2 * c, top)
    return tuple(channels)


class JointCritic(nn.Module):
    r"""GWAE's Y-shaped critic $f(x, z)$ on joint data-latent pairs.

    $$
    f(x, z) = \mathrm{stem}\Bigl(s\,\bigl[\,h_x(x),\; h_z(z)\,\bigr]\Bigr),
    \qquad s = \tfrac12 \text{ by default}
    $$

    An $x$ branch $h_x$ and a $z$ branch $h_z$ produce feature
    vectors that are concatenated and multiplied by $s$ = ``merge_scale`` (GWAE,
    Table 7: "multiplied by 0.5 for the sake of the gradient norm"), then a stem maps them
    to a score. All default parts use LeakyReLU(0.2). Wrap it in
    `KantorovichCritic` to get spectral normalisation and the gradient penalty.

    Lipschitz bound: with 1-Lipschitz branches the concatenation is already 1-Lipschitz
    in the joint Euclidean norm $\|(x, z)\|$, so with spectral normalisation the
    whole critic is at most $s$-Lipschitz and its estimate is at most
    $s\, W_1$ (GWAE's $L_D$ is thus a scaled $W_1$, which is harmless for
    minimisation). Pass ``merge_scale=1.0`` for an estimate on the $W_1$ scale.

    Args:
        x_shape: shape of one data sample, used to build the default $x$ branch: a
            ``(C, H, W)`` image gets an `otloss.nn.ImageBranch` (4x4 stride-2
            convolutions with ``channels``, then a Linear layer to ``features``), any other
            shape a `otloss.nn.VectorBranch` on the flattened sample.
        latent_dim: $L$, used to build the default $z$ branch (a
            `otloss.nn.VectorBranch`).
        x_branch: a module mapping ``(N, *x_shape)`` to ``(N, features)``, replacing the
            default; like the defaults it should end in its activation.
        z_branch: a module mapping ``(N, L)`` to ``(N, features)``, replacing the default.
        stem: a module mapping ``(N, 2 * features)`` to ``(N,)`` or ``(N, 1)``; default an
            `otloss.nn.MLP` with hidden widths ``hidden``.
        features: width of each branch's output (what the default stem expects).
        hidden: hidden widths of the default MLPs (an int is one hidden layer).
        channels: convolution channels of the default image branch; by default from
            ``max(hidden) // 4`` doubling up to ``max(hidden)``, down to at most 7 px.
        merge_scale: $s > 0$, the factor applied to the concatenated features.

    The defaults use LeakyReLU(0.2) throughout and contain no normalisation layer.
    GWAE's Table 7 network is this class with ``features=64, hidden=(256, 256)`` and
    channels from 8 doubling to 256 down to 1 px (`otloss.models.gwae.joint_critic`).
    A wrong sample shape for a default branch raises ``ValueError`` naming the expected
    and actual shapes; an input dtype other than the parameters' raises ``TypeError``.

    Shape:
        x: ``(N, *x_shape)``, z: ``(N, L)``, output: ``(N,)``.

    Examples:
        >>> critic = KantorovichCritic(JointCritic(x_shape=(1, 28, 28), latent_dim=8))
        >>> critic(torch.rand(4, 1, 28, 28), torch.randn(4, 8)).shape
        torch.Size([4])
    """

    def __init__(
        self,
        x_shape: Sequence[int] | None = None,
        latent_dim: int | None = None,
        *,
        x_branch: nn.Module | None = None,
        z_branch: nn.Module | None = None,
        stem: nn.Module | None = None,
        features: int = 256,
        hidden: int | Sequence[int] = 256,
        channels: Sequence[int] | None = None,
        merge_scale: float = 0.5,
    ) -> None:
        super().__init__()
        features = check_count("features", features)
        if isinstance(hidden, Sequence):
            widths = tuple(check_count(f"hidden[{i}]", w) for i, w in enumerate(hidden))
        else:
            widths = (check_count("hidden", hidden),)
        if x_branch is None:
            if x_shape is None:
                raise ValueError("pass x_shape (the shape of one sample) or an x_branch module")
            x_shape = tuple(int(s) for s in x_shape)
            if not x_shape or any(s < 1 for s in x_shape):
                raise ValueError(
                    f"x_shape must be a non-empty shape of positive sizes, got {x_shape}"
                )
            x_branch = _default_x_branch(x_shape, features, widths, channels)
        if z_branch is None:
            if latent_dim is None:
                raise ValueError("pass latent_dim (a positive int) or a z_branch module")
            z_branch = VectorBranch(check_count("latent_dim", latent_dim), features,
                                    hidden=widths, activation="leaky_relu")
        self.x_branch = x_branch
        self.z_branch = z_branch
        self.features = features
        self.merge_scale = check_positive("merge_scale", merge_scale)
        self._default_stem = stem is None
        self.stem = (
            stem if stem is not None
            else MLP(2 * features, 1, hidden=widths, activation="leaky_relu")
        )

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """Scores of the pairs $(x_i, z_i)$: ``(N,)``."""
        check_module_dtype("x", x, self.x_branch)
        check_module_dtype("z", z, self.z_branch)
        if x.shape[0] != z.shape[0]:
            raise ValueError(
                f"x and z must have the same number of samples, got shapes {tuple(x.shape)} "
                f"and {tuple(z.shape)}"
            )
        hx, hz = self.x_branch(x).flatten(1), self.z_branch(z).flatten(1)
        if self._default_stem and hx.shape[1] + hz.shape[1] != 2 * self.features:
            raise ValueError(
                f"the default stem expects {self.features} features from each branch, got "
                f"{hx.shape[1]} from x_branch and {hz.shape[1]} from z_branch; pass "
                "features=... or a stem"
            )
        return check_scores(self.stem(self.merge_scale * torch.cat([hx, hz], dim=1)), x.shape[0])


def _default_x_branch(
    x_shape: tuple[int, ...], features: int, widths: tuple[int, ...],
    channels: Sequence[int] | None,
) -> nn.Module:
    """An image branch for ``(C, H, W)`` samples large enough for one convolution, else a
    vector branch on the flattened sample."""
    if len(x_shape) == 3:
        c, h, w = x_shape
        channels = _default_channels(h, w, max(widths)) if channels is None else tuple(channels)
        if channels:
            return ImageBranch(c, (h, w), features, channels=channels, activation="leaky_relu")
    branch = VectorBranch(math.prod(x_shape), features, hidden=widths, activation="leaky_relu")
    return branch if len(x_shape) == 1 else nn.Sequential(nn.Flatten(), branch)
