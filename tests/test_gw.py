"""GWEstimator and gw_loss: the math against POT, invariances, gradients, bad inputs."""

import math

import numpy as np
import ot
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from otloss import GWEstimator, gw_loss
from otloss.ops import pairwise_distances
from tests.conftest import cuda


def _pair(n=12, dx=5, dz=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dx, generator=g, dtype=dtype), torch.randn(
        n, dz, generator=g, dtype=dtype
    )


def _random_rotation(d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=dtype))
    return q


def test_rho2_with_diagonal_equals_pot_gwloss_at_identity_coupling():
    x, z = _pair(n=15)
    value = GWEstimator(rho=2, scale=1.0, include_diagonal=True)(x, z)
    c1, c2 = ot.dist(x.numpy(), metric="euclidean"), ot.dist(z.numpy(), metric="euclidean")
    p = np.full(15, 1 / 15)
    const_c, h_c1, h_c2 = ot.gromov.init_matrix(c1, c2, p, p, "square_loss")
    expected = ot.gromov.gwloss(const_c, h_c1, h_c2, np.eye(15) / 15)
    assert value.item() == pytest.approx(expected, rel=1e-10)


def test_pot_gromov_wasserstein_from_identity_is_never_above_the_estimate():
    for seed in range(3):
        x, z = _pair(n=20, seed=seed)
        value = GWEstimator(rho=2, include_diagonal=True)(x, z).item()
        c1, c2 = ot.dist(x.numpy(), metric="euclidean"), ot.dist(z.numpy(), metric="euclidean")
        p = np.full(20, 1 / 20)
        solved = ot.gromov.gromov_wasserstein2(c1, c2, p, p, "square_loss", G0=np.eye(20) / 20)
        assert solved <= value + 1e-12


@pytest.mark.parametrize("rho", [1.0, 1.5, 2.0])
def test_gw_is_invariant_to_rotations_and_translations(rho):
    x, z = _pair(n=16, dx=6, dz=4)
    gw = GWEstimator(rho=rho, scale=0.7)
    expected = gw(x, z)
    x2 = x @ _random_rotation(6, 1) + torch.randn(6, dtype=torch.float64)
    z2 = z @ _random_rotation(4, 2) - 3.0
    torch.testing.assert_close(gw(x2, z2), expected)


def test_gw_is_invariant_to_joint_permutations_but_not_to_breaking_the_pairs():
    x, z = _pair(n=16)
    gw = GWEstimator()
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(gw(x[perm], z[perm]), gw(x, z))
    assert not torch.allclose(gw(x[perm], z), gw(x, z))


def test_rho2_gradient_optimal_scale_is_the_closed_form():
    x, z = _pair(n=20)
    dx, dz = pairwise_distances(x), pairwise_distances(z)
    c_star = ((dx * dz).sum() / (dz * dz).sum()).item()
    gw = GWEstimator(rho=2).double()
    with torch.no_grad():
        gw.log_scale.fill_(math.log(c_star))  # float64, not the float32 initialiser
    gw(x, z).backward()
    assert abs(gw.log_scale.grad.item()) < 1e-10
    off = GWEstimator(rho=2, scale=1.5 * c_star)
    off(x, z).backward()
    assert off.log_scale.grad.item() > 1e-3  # above the optimum the loss grows with C


def test_zero_for_an_isometry_up_to_scale():
    z = torch.randn(10, 3, dtype=torch.float64)
    x = 2.5 * torch.cat([z, torch.zeros(10, 4, dtype=torch.float64)], 1) @ _random_rotation(7, 5)
    assert GWEstimator(scale=2.5)(x, z).item() == pytest.approx(0.0, abs=1e-12)


def test_diagonal_only_rescales_the_mean():
    x, z = _pair(n=9)
    off = GWEstimator(rho=1.0)(x, z)
    full = GWEstimator(rho=1.0, include_diagonal=True)(x, z)
    torch.testing.assert_close(full, off * 8 / 9)


@pytest.mark.parametrize("rho", [1.0, 1.5, 2.0])
def test_gradcheck_in_float64(rho):
    x, z = _pair(n=6, dx=4, dz=2)
    gw = GWEstimator(rho=rho, scale=0.8).double()
    x.requires_grad_(True)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: gw(a, b), (x, z))
    scale = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    dx, dz = pairwise_distances(x.detach()), pairwise_distances(z.detach())
    assert torch.autograd.gradcheck(lambda s: gw_loss(dx, dz, scale=s, rho=rho), (scale,))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_coincident_points_give_finite_gradients(metric):
    x = torch.zeros(6, 3, 4, 4, requires_grad=True)
    z = torch.randn(6, 2)
    z = torch.cat([z[:3], z[:3]]).requires_grad_(True)  # duplicated codes
    gw = GWEstimator(rho=1.0, x_metric=metric, z_metric=metric, normalize_z=True)
    loss = gw(x, z)
    loss.backward()
    for t in (loss, x.grad, z.grad, gw.log_scale.grad):
        assert torch.isfinite(t).all()
    collapsed = torch.zeros(5, 2, requires_grad=True)
    gw(torch.zeros(5, 3), collapsed).backward()
    assert torch.isfinite(collapsed.grad).all()


def test_sqeuclidean_and_callable_metrics():
    x, z = _pair(n=8)
    sq = GWEstimator(x_metric="sqeuclidean", z_metric="sqeuclidean", learn_scale=False)(x, z)
    expected = gw_loss(pairwise_distances(x) ** 2, pairwise_distances(z) ** 2)
    torch.testing.assert_close(sq, expected)
    manhattan = GWEstimator(x_metric=lambda t: torch.cdist(t, t, p=1))(x, z)
    expected = gw_loss(torch.cdist(x, x, p=1), pairwise_distances(z))
    torch.testing.assert_close(manhattan, expected)


def test_normalize_z_makes_the_loss_invariant_to_rescaling_z():
    x, z = _pair(n=12)
    gw = GWEstimator(normalize_z=True)
    torch.testing.assert_close(gw(x, 7.0 * z), gw(x, z))
    assert not torch.allclose(GWEstimator()(x, 7.0 * z), GWEstimator()(x, z))


def test_scale_is_a_parameter_or_a_buffer():
    learned = GWEstimator(scale=2.0)
    assert [n for n, _ in learned.named_parameters()] == ["log_scale"]
    assert learned.scale.item() == pytest.approx(2.0)
    fixed = GWEstimator(scale=2.0, learn_scale=False)
    assert list(fixed.parameters()) == []
    assert "log_scale" in dict(fixed.named_buffers())


def test_gw_loss_is_batched():
    x = torch.randn(4, 10, 5, dtype=torch.float64)
    z = torch.randn(4, 10, 2, dtype=torch.float64)
    dx, dz = pairwise_distances(x), pairwise_distances(z)
    scale = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=torch.float64)
    batched = gw_loss(dx, dz, scale=scale, rho=2.0)
    assert batched.shape == (4,)
    for b in range(4):
        torch.testing.assert_close(
            batched[b], gw_loss(dx[b], dz[b], scale=scale[b].item(), rho=2.0)
        )


def test_half_precision_and_autocast_compute_in_float32():
    x, z = _pair(n=16, dtype=torch.float32)
    reference = GWEstimator()(x, z)
    half = GWEstimator()(x.half(), z.half())
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), reference, rtol=1e-2, atol=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = GWEstimator()(x.bfloat16(), z.bfloat16())
    assert auto.dtype == torch.float32 and torch.isfinite(auto)
    torch.testing.assert_close(auto, reference, rtol=2e-2, atol=2e-2)


@given(
    n=st.integers(2, 12),
    rho=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    scale=st.floats(0.05, 20.0),
    seed=st.integers(0, 2**16),
)
def test_gw_is_non_negative_finite_and_symmetric_in_its_roles(n, rho, scale, seed):
    x, z = _pair(n=n, dx=3, dz=3, seed=seed)
    value = GWEstimator(rho=rho, scale=scale)(x, z)
    assert torch.isfinite(value) and value >= 0
    # |dx - C dz| = C |dz - dx / C|: swapping the roles rescales by C ** rho.
    swapped = GWEstimator(rho=rho, scale=1 / scale)(z, x)
    torch.testing.assert_close(value, scale**rho * swapped, rtol=1e-5, atol=1e-9)
    # C is stored in float32 by default, so it matches ``scale`` to float32 rounding only.
    isometric = GWEstimator(rho=rho, scale=scale)(scale * z, z).item()
    assert isometric == pytest.approx(0, abs=(1e-6 * scale) ** rho * 100)


@pytest.mark.parametrize(
    ("x", "z", "match"),
    [
        (torch.randn(8, 3), torch.randn(7, 2), "same number of paired samples"),
        (torch.randn(8, 3), torch.randn(8, 2, 1), r"z must have shape \(N, L\)"),
        (torch.randn(8), torch.randn(8, 2), r"x must have shape \(N, \*\)"),
        (torch.randn(1, 3), torch.randn(1, 2), "needs at least 2"),
    ],
)
def test_bad_shapes_raise_value_errors(x, z, match):
    with pytest.raises(ValueError, match=match):
        GWEstimator()(x, z)


def test_bad_dtypes_devices_and_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="floating-point"):
        GWEstimator()(torch.ones(4, 3, dtype=torch.long), torch.randn(4, 2))
    with pytest.raises(ValueError, match="meta"):
        GWEstimator()(torch.randn(4, 3), torch.empty(4, 2, device="meta"))
    with pytest.raises(ValueError, match="rho"):
        GWEstimator(rho=0.5)
    with pytest.raises(ValueError, match="rho"):
        GWEstimator(rho=math.inf)
    with pytest.raises(ValueError, match="scale"):
        GWEstimator(scale=0.0)
    with pytest.raises(ValueError, match="x_metric"):
        GWEstimator(x_metric="cosine")
    with pytest.raises(ValueError, match=r"\(4, 4\) matrix"):
        GWEstimator(x_metric=lambda t: t)(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="same shape"):
        gw_loss(torch.zeros(4, 4), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="square"):
        gw_loss(torch.zeros(4, 3), torch.zeros(4, 3))


@cuda
def test_gw_on_cuda_matches_cpu():
    x, z = _pair(n=32, dtype=torch.float32)
    gw = GWEstimator()
    torch.testing.assert_close(gw.cuda()(x.cuda(), z.cuda()).cpu(), gw.cpu()(x, z))


def test_gw_rejects_featureless_samples_bad_scales_and_negative_distances():
    x, z = torch.randn(6, 4), torch.randn(6, 2)
    with pytest.raises(ValueError, match="x has no features"):
        GWEstimator()(x[:, :0], z)
    with pytest.raises(ValueError, match="z has no features"):
        GWEstimator(normalize_z=True)(x, z[:, :0])
    dx, dz = pairwise_distances(x), pairwise_distances(z)
    for scale in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be positive and finite"):
            gw_loss(dx, dz, scale=scale)
        with pytest.raises(ValueError, match="scale must be positive and finite"):
            gw_loss(dx, dz, scale=torch.tensor([1.0, scale]).view(2, 1, 1)[1])
    with pytest.raises(ValueError, match="dx must be non-negative"):
        gw_loss(dx - 1.0, dz)
    with pytest.raises(ValueError, match="dz must be non-negative"):
        gw_loss(dx, -dz)
    with pytest.raises(ValueError, match="metric's output must be non-negative"):
        GWEstimator(z_metric=lambda t: -pairwise_distances(t))(x, z)
    with pytest.raises(TypeError, match="scale must be a number"):
        gw_loss(dx, dz, scale="1")
    # A NaN distance is not rejected: it propagates to the result.
    dx_nan = dx.clone()
    dx_nan[0, 1] = float("nan")
    assert torch.isnan(gw_loss(dx_nan, dz))


def test_gw_configuration_is_keyword_only():
    dx = pairwise_distances(torch.randn(5, 2))
    with pytest.raises(TypeError):
        gw_loss(dx, dx, 1.0)  # scale positionally
