"""Shared geometry: distances, the safe sqrt and kernels."""

import math

import pytest
import torch

import otloss
from otloss import ops
from otloss.ops import (
    KERNELS,
    Kernel,
    get_kernel,
    imq_kernel,
    median_sqdist,
    multiscale_kernel,
    pairwise_distances,
    rbf_kernel,
    register_kernel,
    safe_sqrt,
    sqdist,
)


def _brute(x, y):
    return ((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1)


@pytest.mark.parametrize("shape", [(9, 4), (3, 7, 5)])
def test_sqdist_matches_brute_force_for_self_and_cross_distances(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) + 100.0  # far from the origin
    y = torch.randn(*shape[:-2], 6, shape[-1], generator=g, dtype=torch.float64) + 100.0
    torch.testing.assert_close(sqdist(x), _brute(x, x))
    torch.testing.assert_close(sqdist(x, y), _brute(x, y))
    assert (sqdist(x).diagonal(dim1=-2, dim2=-1) == 0).all()


def test_self_sqdist_gradients_match_autograd_to_second_order():
    x = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sqdist, (x,))
    assert torch.autograd.gradgradcheck(sqdist, (x[0].detach().requires_grad_(True),))
    w = torch.randn(3, 6, 6, dtype=torch.float64)
    (ours,) = torch.autograd.grad(sqdist(x), x, w)
    (brute,) = torch.autograd.grad(_brute(x, x), x, w * ~torch.eye(6, dtype=torch.bool))
    torch.testing.assert_close(ours, brute)


def test_distances_have_finite_gradients_where_points_coincide():
    x = torch.zeros(5, 3, requires_grad=True)
    y = torch.zeros(4, 3, requires_grad=True)
    (pairwise_distances(x).sum() + pairwise_distances(x, y).sum()).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    t = torch.tensor([0.0, 4.0], requires_grad=True)
    safe_sqrt(t).sum().backward()
    assert t.grad.tolist() == [0.0, 0.25]


def test_kernels_and_multiscale_sum_from_one_distance_matrix():
    d2 = torch.tensor([[0.0, 1.0], [4.0, 9.0]], dtype=torch.float64)
    torch.testing.assert_close(imq_kernel(d2, 2.0), 2.0 / (2.0 + d2))
    torch.testing.assert_close(rbf_kernel(d2, 2.0), torch.exp(-d2 / 2.0))
    torch.testing.assert_close(KERNELS["laplacian"](d2, 2.0), torch.exp(-d2.sqrt() / 2.0))
    torch.testing.assert_close(KERNELS["energy"](d2, 2.0), -d2.sqrt())
    scales = (0.5, 1.0, 3.0)
    expected = sum(imq_kernel(d2, s * 2.0) for s in scales)
    torch.testing.assert_close(multiscale_kernel(d2, "imq", 2.0, scales), expected)


def test_median_sqdist_is_the_median_of_distinct_pairs():
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[3.0]])
    # pairs: (0,1) -> 1, (0,3) -> 9, (1,3) -> 4
    assert median_sqdist(x, y).item() == 4.0


# ----------------------------------------------------------------- non-finite input


def test_safe_sqrt_keeps_nan_and_inf_and_has_gradient_zero_at_zero():
    t = torch.tensor([4.0, 0.0, -1.0, float("nan"), float("inf")], requires_grad=True)
    out = safe_sqrt(t)
    assert out[0] == 2 and out[1] == 0 and out[2] == 0
    assert torch.isnan(out[3]) and out[4] == float("inf")
    (grad,) = torch.autograd.grad(out[:3].sum(), t)
    torch.testing.assert_close(grad[:3], torch.tensor([0.25, 0.0, 0.0]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_distances_of_a_non_finite_point_are_nan(bad):
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    x[2, 1] = bad
    for d in (pairwise_distances(x), pairwise_distances(x, x[:4] + 1), sqdist(x)):
        assert torch.isnan(d[2]).all(), d


# ----------------------------------------------------------------- kernel objects


@pytest.mark.parametrize("name", ["imq", "rbf", "laplacian", "energy"])
def test_builtin_fast_path_matches_the_kernels_value_and_derivative(name):
    """The hand-written in-place pass and the generic one built from value/derivative."""
    kernel = get_kernel(name)
    generic = Kernel(name, kernel.value, kernel.derivative, kernel.power)
    d2 = torch.tensor([[0.0, 0.3, 1.7], [4.0, float("nan"), 0.05]], dtype=torch.float64)
    scales = (0.5, 1.0, 3.0)
    results = []
    for k in (kernel, generic):
        bufs = [torch.empty_like(d2) for _ in range(3)]
        work = d2.clone()
        k.accumulate_scales(work, bufs[0], bufs[1], bufs[2], scales, True)
        results.append((bufs[1], bufs[2]))
    torch.testing.assert_close(results[0][0], results[1][0], equal_nan=True)
    torch.testing.assert_close(results[0][1], results[1][1], equal_nan=True)
    # and the derivative is that of the value (autograd), away from d = 0
    probe = torch.tensor([0.3, 1.7, 4.0], dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(kernel.value(probe, 1.3).sum(), probe)
    torch.testing.assert_close(kernel.derivative(probe.detach(), 1.3), auto)


def test_a_registered_kernel_runs_in_mmd_end_to_end(monkeypatch):
    monkeypatch.setattr(ops, "KERNELS", dict(ops.KERNELS))
    cauchy = register_kernel(
        Kernel("cauchy2", lambda d2, c: (c / (c + d2)) ** 2,
               lambda d2, c: -2 * c**2 / (c + d2) ** 3, power=2)
    )
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(7, 2, generator=g, dtype=torch.float64) + 0.5
    value = otloss.mmd(x, y, kernel="cauchy2", bandwidth=1.5, scales=(1.0, 2.0))
    assert otloss.mmd(x, y, kernel=cauchy, bandwidth=1.5, scales=(1.0, 2.0)) == value
    assert otloss.MMD(kernel="cauchy2", bandwidth=1.5, scales=(1.0, 2.0))(x, y) == value

    def naive(x):  # the U-statistic straight from its definition
        def k(u, v):
            d2 = ((u[:, None] - v[None]) ** 2).sum(-1)
            return sum((c / (c + d2)) ** 2 for c in (1.5, 3.0))

        kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
        n, m = len(x), len(y)
        return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
                + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())

    ref = naive(x)
    torch.testing.assert_close(value, ref)
    (g_fused,) = torch.autograd.grad(value, x)
    (g_ref,) = torch.autograd.grad(ref, x)
    torch.testing.assert_close(g_fused, g_ref)


def test_kernel_registry_and_definition_are_validated(monkeypatch):
    monkeypatch.setattr(ops, "KERNELS", dict(ops.KERNELS))
    with pytest.raises(ValueError, match="already registered as 'imq'"):
        register_kernel(Kernel("imq", imq_kernel, lambda d2, c: d2, power=2))
    with pytest.raises(ValueError, match="power must be 0, 1 or 2"):
        Kernel("cubic", imq_kernel, imq_kernel, power=3)
    with pytest.raises(ValueError, match="unknown kernel 'cauchy'"):
        get_kernel("cauchy")
    with pytest.raises(TypeError, match=r"otloss\.ops\.Kernel"):
        register_kernel(imq_kernel)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exponential_kernels_produce_no_subnormal_numbers(dtype):
    # exp(-d2 / c) far below the largest term would be subnormal (~100x slower arithmetic
    # on many CPUs); it is an exact 0 instead, and NaN still propagates.
    d2 = torch.linspace(0, 2000, 10001, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    for k in (ops.rbf_kernel(d2, 1.0), ops.laplacian_kernel(d2, 0.05)):
        assert not ((k > 0) & (k < tiny)).any() and (k == 0).any()
    for kernel in ("rbf", "laplacian"):
        k = ops.multiscale_kernel(d2[None], kernel, 1.0, (0.01, 1.0))
        assert not ((k > 0) & (k < tiny)).any()
    assert torch.isnan(ops.rbf_kernel(torch.tensor([math.nan], dtype=dtype), 1.0)).all()
