"""Mixed precision: every divergence, critic loss and model loss under ``torch.autocast``.

The policy (``otloss.ops.loss_precision``): the sensitive part of a loss runs outside
autocast in float32 and the loss comes back in float32. Inputs reach the losses through
a linear layer, as in training, so autocast really hands them over in half precision.

Tolerances. A bf16 input carries a relative rounding error of at most 2^-9 ~ 2e-3
(8 significant bits). A loss computed in float32 *from those rounded inputs* must then
equal the float32 evaluation of the same rounded inputs up to float32 rounding (1e-5):
this pins "computed in float32" (a bf16 matmul inside would be ~1e-2 off). Against the
float32 result on the unrounded inputs, the gap is the input rounding times the loss's
sensitivity: measured at most 0.7% relative (entropic GW, whose plan moves with the
costs; 0.3% for the others), so 3% relative plus 1e-2 absolute (for values near 0, such
as an MMD) leaves a margin of four. Models and critics run their networks in bf16 too
(every layer rounds its output): measured at most 0.8% relative, tested at 5%.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import otloss
from otloss.critic import JointCritic, KantorovichCritic, gradient_penalty
from otloss.models import GMWAE, GWAE, SWAE, TCWAE, WAE
from otloss.ops import loss_precision, pairwise_distances
from otloss.priors import GaussianMixturePrior
from tests.conftest import cuda

#: Rounding of one float32 evaluation against another (bf16 inputs made exact in float32).
FLOAT32 = {"rtol": 1e-5, "atol": 1e-5}
#: bf16-rounded inputs against unrounded ones (see the module docstring).
BF16_INPUTS = {"rtol": 3e-2, "atol": 1e-2}
#: Whole models whose networks also run in bf16.
BF16_MODELS = {"rtol": 5e-2, "atol": 5e-2}


def _clouds(device: str = "cpu") -> list[Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, generator=g)
    y = torch.randn(20, 3, generator=g) + 0.5
    mu = torch.randn(24, 3, generator=g)
    logvar = 0.3 * torch.randn(24, 3, generator=g) - 1.0
    return [t.to(device) for t in (x, y, mu, logvar)]


def _critic(device: str = "cpu") -> KantorovichCritic:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    return KantorovichCritic(net).to(device)


def _joint_critic(device: str = "cpu") -> KantorovichCritic:
    torch.manual_seed(0)
    net = JointCritic(x_shape=(3,), latent_dim=3, features=16, hidden=16)
    return KantorovichCritic(net).to(device)


def _seeded(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def run(*args: Tensor) -> Tensor:
        torch.manual_seed(1)
        return fn(*args)

    return run


def _density_ratio_tc(device: str = "cpu") -> Callable[..., Tensor]:
    torch.manual_seed(0)
    d = otloss.DensityRatioTC(3, hidden=32, depth=2).to(device)
    return lambda x, y, mu, lv: d(x) + d.discriminator_loss(
        x, generator=torch.Generator(device).manual_seed(0))


def _density_ratio_dimwise(device: str = "cpu") -> Callable[..., Tensor]:
    torch.manual_seed(0)
    d = otloss.DensityRatioDimwiseKL(3, hidden=32, depth=2).to(device)
    g = lambda: torch.Generator(device).manual_seed(0)  # noqa: E731
    return lambda x, y, mu, lv: d(x, generator=g()) + d.discriminator_loss(
        x, y.repeat(2, 1)[:24], generator=g())


def _gmp_log_density(device: str = "cpu") -> Callable[..., Tensor]:
    torch.manual_seed(0)
    prior = GaussianMixturePrior(3, 4).to(device)
    return lambda x, y, mu, lv: -prior.log_prob(x).mean()


#: name -> factory(device) -> loss(x, y, mu, logvar), each a scalar.
DIVERGENCES: dict[str, Callable[[str], Callable[..., Tensor]]] = {
    "gw_estimator": lambda d: lambda x, y, mu, lv: otloss.GWEstimator()(x, mu),
    "gw_loss": lambda d: lambda x, y, mu, lv: otloss.gw_loss(
        pairwise_distances(x), pairwise_distances(mu)),
    "mmd": lambda d: lambda x, y, mu, lv: otloss.mmd(x, y),
    "mmd_rbf_biased": lambda d: lambda x, y, mu, lv: otloss.MMD(
        kernel="rbf", estimator="biased")(x, y),
    "sliced": lambda d: lambda x, y, mu, lv: otloss.sliced_wasserstein(
        x, y, generator=torch.Generator(d).manual_seed(0)),
    "sinkhorn": lambda d: lambda x, y, mu, lv: otloss.SinkhornDivergence(blur=0.1)(x, y),
    "gromov": lambda d: lambda x, y, mu, lv: otloss.gromov_wasserstein(
        x, y, epsilon=0.5, metric="sqeuclidean"),
    "tc_mws": lambda d: lambda x, y, mu, lv: otloss.total_correlation(
        x, mu, lv, estimator="mws", dataset_size=1000),
    "tc_mss_decomposition": lambda d: lambda x, y, mu, lv: sum(otloss.tc_decomposition(
        x, mu, lv, estimator="mss", dataset_size=1000).values()),
    "gaussian_entropy": lambda d: lambda x, y, mu, lv: otloss.gaussian_entropy(lv).mean(),
    "gmp_log_density": _gmp_log_density,
    "density_ratio_tc": _density_ratio_tc,
    "density_ratio_dimwise_kl": _density_ratio_dimwise,
    "critic_loss": lambda d: _seeded(
        lambda x, y, mu, lv: _critic(d).critic_loss(x, y.repeat(2, 1)[:24])),
    "critic_estimate": lambda d: lambda x, y, mu, lv: _critic(d).estimate(x, y),
    "joint_critic_loss": lambda d: _seeded(
        lambda x, y, mu, lv: _joint_critic(d).critic_loss((x, mu), (x.flip(0), lv))),
    "gradient_penalty": lambda d: _seeded(
        lambda x, y, mu, lv: gradient_penalty(_critic(d), x, mu)),
}


def _leaves(device: str) -> list[Tensor]:
    return [t.requires_grad_(True) for t in _clouds(device)]


def _through_layers(leaves: list[Tensor]) -> list[Tensor]:
    """The leaves through identity linear layers: half precision under autocast."""
    return [nn.functional.linear(t, torch.eye(t.shape[1], device=t.device)) for t in leaves]


def _check_divergence(name: str, device: str, dtype: torch.dtype) -> None:
    loss = DIVERGENCES[name](device)
    leaves = _leaves(device)
    with torch.autocast(device, dtype=dtype):
        fed = _through_layers(leaves)
        assert fed[0].dtype == dtype  # autocast really hands the loss half precision
        value = loss(*fed)
    assert value.dtype == torch.float32 and value.dim() == 0
    assert torch.isfinite(value)
    value.backward()
    grads = [t.grad for t in leaves if t.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

    # The sensitive part ran in float32: the same (rounded) inputs in float32, no autocast.
    rounded = [t.detach().to(dtype).float() for t in leaves]
    torch.testing.assert_close(value.detach(), loss(*rounded).detach(), **FLOAT32)
    # And it is the float32 loss up to the rounding of its inputs.
    exact = loss(*[t.detach() for t in leaves]).detach()
    torch.testing.assert_close(value.detach(), exact, **BF16_INPUTS)


# The networks of the density-ratio estimators and critics run in half precision under
# autocast, so only their float32 *losses* are compared against the rounded inputs loosely.
_NETWORK_LOSSES = {
    "density_ratio_tc", "density_ratio_dimwise_kl", "critic_loss", "critic_estimate",
    "joint_critic_loss", "gradient_penalty",
}


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_divergence_under_bf16_autocast_is_float32_finite_close_and_differentiable(name):
    if name in _NETWORK_LOSSES:
        _check_network_loss(name, "cpu", torch.bfloat16)
    else:
        _check_divergence(name, "cpu", torch.bfloat16)


def _check_network_loss(name: str, device: str, dtype: torch.dtype) -> None:
    loss = DIVERGENCES[name](device)
    leaves = _leaves(device)
    with torch.autocast(device, dtype=dtype):
        fed = _through_layers(leaves)
        assert fed[0].dtype == dtype
        value = loss(*fed)
    assert value.dtype == torch.float32 and value.dim() == 0
    assert torch.isfinite(value)
    value.backward()
    grads = [t.grad for t in leaves if t.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    exact = loss(*[t.detach() for t in leaves]).detach()
    torch.testing.assert_close(value.detach(), exact, **BF16_MODELS)


def test_the_policy_keeps_explicit_half_input_half_and_autocast_float32():
    x = torch.randn(4, 3)
    assert loss_precision(x.bfloat16()) == (torch.float32, torch.bfloat16)
    assert loss_precision(x.double()) == (torch.float64, torch.float64)
    assert loss_precision(x, x.double()) == (torch.float64, torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert loss_precision(x.bfloat16()) == (torch.float32, torch.float32)
        assert loss_precision(x.bfloat16(), None, x) == (torch.float32, torch.float32)
    # Outside autocast an explicit half input still returns a half loss.
    assert otloss.mmd(x.bfloat16(), x.bfloat16() + 1).dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["mmd", "sliced", "sinkhorn", "gromov", "tc_mws"])
def test_half_and_float32_inputs_mix_under_autocast_as_in_training(name):
    # An encoder's half codes next to float32 prior draws: promoted, not rejected.
    loss = DIVERGENCES[name]("cpu")
    x, y, mu, lv = _clouds()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(x.bfloat16(), y, mu, lv)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss(x.bfloat16().float(), y, mu, lv), **FLOAT32)
    with pytest.raises(TypeError, match="dtype"):
        loss(x.bfloat16(), y, mu, lv)  # outside autocast a mix is still a mistake


def test_pairwise_distances_under_autocast_are_float32():
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = pairwise_distances(x, x + 1)
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, pairwise_distances(x, x + 1), **FLOAT32)


# --------------------------------------------------------------------------------- models

VECTOR = (10,)
IMAGE = (1, 28, 28)

#: name -> model factory; small networks, every estimator / regulariser / prior.
MODELS: dict[str, Callable[[], nn.Module]] = {
    "gwae_np": lambda: GWAE(VECTOR, latent_dim=4, prior="np"),
    "gwae_fnp": lambda: GWAE(VECTOR, latent_dim=4, prior="fnp"),
    "gwae_gmp": lambda: GWAE(VECTOR, latent_dim=4, prior="gmp", n_components=3),
    "gwae_normal_image": lambda: GWAE(IMAGE, latent_dim=4, prior="normal",
                                      aggregated_norm=True),
    "wae_mmd": lambda: WAE(VECTOR, 4),
    "wae_mmd_stochastic": lambda: WAE(VECTOR, 4, stochastic_encoder=True),
    "wae_gan": lambda: WAE(VECTOR, 4, regularizer="gan"),
    "tcwae_mws": lambda: TCWAE(VECTOR, latent_dim=4, estimator="mws", dataset_size=1000),
    "tcwae_mss_image": lambda: TCWAE(IMAGE, latent_dim=4, estimator="mss", dataset_size=1000),
    "tcwae_gan": lambda: TCWAE(VECTOR, latent_dim=4, estimator="gan", discriminator_hidden=32,
                               discriminator_depth=2),
    "swae": lambda: SWAE(VECTOR, latent_dim=3, n_pseudo=4),
    "gmwae": lambda: GMWAE(VECTOR, latent_dim=3, n_components=4),
}


def _model_terms(model: nn.Module, method: str, x: Tensor, autocast: torch.dtype | None,
                 device: str) -> dict[str, Tensor]:
    torch.manual_seed(1)
    if autocast is None:
        return getattr(model, method)(x)
    with torch.autocast(device, dtype=autocast):
        return getattr(model, method)(x)


def _check_model(name: str, device: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = MODELS[name]().to(device)
    x = torch.rand(8, *model.data_shape, generator=torch.Generator().manual_seed(0)).to(device)
    methods = ["losses"] + (["critic_losses"] if hasattr(model, "critic_losses") else [])
    for method in methods:
        model.zero_grad()
        terms = _model_terms(model, method, x, dtype, device)
        assert all(t.dtype == torch.float32 for t in terms.values()), {
            k: t.dtype for k, t in terms.items()}
        assert all(torch.isfinite(t).all() for t in terms.values()), terms
        terms["loss"].backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        reference = _model_terms(model, method, x, None, device)
        torch.testing.assert_close(terms["loss"].detach(), reference["loss"].detach(),
                                   **BF16_MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_losses_under_bf16_autocast_are_float32_finite_close_and_differentiable(name):
    _check_model(name, "cpu", torch.bfloat16)


# ------------------------------------------------------------------------------------ CUDA


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_divergence_under_cuda_autocast(name, dtype):
    if name in _NETWORK_LOSSES:
        _check_network_loss(name, "cuda", dtype)
    else:
        _check_divergence(name, "cuda", dtype)


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_losses_under_cuda_autocast(name, dtype):
    _check_model(name, "cuda", dtype)
