"""Sinkhorn divergence: GeomLoss/POT cross-checks, gradients, batching, padding, stability."""

import math

import numpy as np
import ot
import pytest
import torch
from geomloss import SamplesLoss
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import xlogy

import otloss
from otloss import SinkhornDivergence, sinkhorn_divergence
from otloss.sinkhorn import epsilon_schedule
from tests.conftest import cuda

F64 = torch.float64


def clouds(n=100, m=80, d=3, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randn(m, d, generator=g, dtype=dtype) + 0.5
    return x, y


# -- cross-checks against GeomLoss and POT ------------------------------------------------


@pytest.mark.parametrize("debias", [True, False])
@pytest.mark.parametrize("reach", [None, 0.7])
@pytest.mark.parametrize("blur", [0.5, 0.05])
def test_tol_none_reproduces_geomloss(blur, reach, debias):
    x, y = clouds(40, 30)
    ref = SamplesLoss(
        "sinkhorn", p=2, blur=blur, reach=reach, scaling=0.5, debias=debias, backend="tensorized"
    )(x, y)
    for backend in ("tensorized", "blocked"):
        ours = sinkhorn_divergence(
            x, y, blur=blur, reach=reach, debias=debias, tol=None, backend=backend
        )
        assert abs(float(ours - ref)) <= 1e-5 * abs(float(ref))


def test_tol_none_reproduces_geomloss_p1_and_scaling():
    # GeomLoss's own p=1 cost clamps distances at 1e-4 (so its diagonal is not 0): give
    # both libraries the same callable cost to compare the algorithms.
    def cost(u, v):
        return ((u[:, :, None] - v[:, None]) ** 2).sum(-1).clamp_min(1e-8).sqrt()

    x, y = clouds(30, 20)
    ref = SamplesLoss("sinkhorn", p=1, blur=0.1, scaling=0.7, cost=cost, backend="tensorized")(x, y)
    ours = sinkhorn_divergence(x, y, p=1, blur=0.1, scaling=0.7, cost=cost, tol=None)
    assert abs(float(ours - ref)) <= 1e-5 * abs(float(ref))


def _pot_entropic_ot(x, y, eps, f_init, g_init):
    """OT_eps(x, y) from POT's log-domain Sinkhorn (200 iterations, L1 marginal error < 1e-4).

    Cold, POT needs tens of thousands of iterations at these temperatures (minutes: its
    alternating updates crawl on the self-transport problems), and ``ot.solve`` ignores
    ``potentials_init`` in the balanced case, so ``ot.bregman.sinkhorn_log`` is
    warm-started from the given potentials. POT's own stopping test on its own marginals
    certifies the solution; the value is ``ot.solve``'s: ``<P, M> + eps KL(P | a b^T)``.
    """
    m = ot.dist(x.numpy(), y.numpy()) / 2
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    init = (np.log(a) + f_init / eps, np.log(b) + g_init / eps)
    plan = ot.bregman.sinkhorn_log(a, b, m, eps, numItermax=200, stopThr=1e-9, warmstart=init)
    assert np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum() < 1e-4
    prior = a[:, None] * b[None]
    kl = (xlogy(plan, plan / prior) - plan + prior).sum()
    return (plan * m).sum() + eps * kl


def _potentials(x, y, blur):
    out = sinkhorn_divergence(
        x, y, blur=blur, debias=False, tol=1e-6, max_iter=2000, potentials=True
    )
    return out.f.numpy(), out.g.numpy()


@pytest.mark.slow
@pytest.mark.parametrize("blur", [0.5, 0.1, 0.05])
def test_converged_value_matches_pot(blur):
    x, y = clouds(40, 30)
    eps = blur**2
    parts = [
        _pot_entropic_ot(u, v, eps, *_potentials(u, v, blur)) for u, v in ((x, y), (x, x), (y, y))
    ]
    reference = parts[0] - parts[1] / 2 - parts[2] / 2
    value = float(sinkhorn_divergence(x, y, blur=blur))  # the default tolerance
    assert abs(value - reference) <= 1e-4 * abs(reference)
    raw = float(sinkhorn_divergence(x, y, blur=blur, debias=False))
    assert abs(raw - parts[0]) <= 1e-4 * abs(parts[0])


def test_cold_pot_agrees_at_large_blur():
    x, y = clouds(30, 20)
    m = ot.dist(x.numpy(), y.numpy()) / 2
    a, b = np.full(30, 1 / 30), np.full(20, 1 / 20)
    ref = ot.solve(m, a, b, reg=0.25, reg_type="KL", tol=1e-12, max_iter=10000).value
    ours = float(sinkhorn_divergence(x, y, blur=0.5, debias=False, tol=1e-8))
    assert abs(ours - ref) <= 1e-8 * ref


@pytest.mark.slow
def test_default_is_converged_where_geomloss_is_not():
    x, y = clouds(40, 30)
    tight = float(sinkhorn_divergence(x, y, blur=0.1, tol=1e-7, max_iter=3000))
    default = float(sinkhorn_divergence(x, y, blur=0.1))
    fixed = float(sinkhorn_divergence(x, y, blur=0.1, tol=None))
    assert abs(default - tight) <= 1e-4 * tight
    assert abs(fixed - tight) > 1e-3 * tight  # GeomLoss's schedule alone stops short


def test_primal_cost_approaches_emd_as_blur_vanishes():
    x, y = clouds(40, 30)
    c = torch.cdist(x, y) ** 2 / 2
    emd = ot.emd2(np.full(40, 1 / 40), np.full(30, 1 / 30), c.numpy())
    gaps = []
    for blur in (0.3, 0.1, 0.03):
        out = sinkhorn_divergence(x, y, blur=blur, debias=False, tol=1e-5, potentials=True)
        # the plan of the last update: exact row marginals, columns within tol
        plan = torch.softmax((out.g[None] - c) / blur**2, dim=1) / 40
        gaps.append(float((plan * c).sum()) - emd)
    assert gaps[0] > gaps[1] > gaps[2] > -1e-3 * emd
    assert abs(gaps[2]) < 0.02 * emd


# -- gradients -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorized", "blocked"])
@pytest.mark.parametrize("p", [1, 2])
def test_point_gradients_match_finite_differences(p, backend):
    x, y = clouds(7, 5, d=2)
    x.requires_grad_(True)
    y.requires_grad_(True)

    def f(u, v):
        return sinkhorn_divergence(u, v, p=p, blur=0.5, tol=1e-12, max_iter=300, backend=backend)

    assert torch.autograd.gradcheck(f, (x, y), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("reach", [None, 1.0])
def test_weight_gradients_match_finite_differences_and_are_centred(reach):
    x, y = clouds(7, 5, d=2)
    g = torch.Generator().manual_seed(1)
    a = torch.rand(7, generator=g, dtype=F64) + 0.2
    a = (a / a.sum()).requires_grad_(True)

    def f(w):
        return sinkhorn_divergence(x, y, w, blur=0.5, reach=reach, tol=1e-12, max_iter=300)

    (grad,) = torch.autograd.grad(f(a), a)
    if reach is None:
        assert abs(float(grad.sum())) < 1e-10
    for _ in range(3):
        d = torch.randn(7, generator=g, dtype=F64)
        d -= d.mean()  # stay on the simplex
        num = (f(a.detach() + 1e-6 * d) - f(a.detach() - 1e-6 * d)) / 2e-6
        assert abs(float(num - (grad * d).sum())) < 1e-6


def test_memory_of_backward_does_not_grow_with_iterations():
    x, y = clouds(20, 20)
    x.requires_grad_(True)
    short = sinkhorn_divergence(x, y, blur=0.05, tol=None)
    long = sinkhorn_divergence(x, y, blur=0.05, tol=1e-12, max_iter=400)

    def graph_size(t):
        seen, stack = set(), [t.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            stack.extend(n for n, _ in node.next_functions)
        return len(seen)

    assert graph_size(short) == graph_size(long)
    long.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("grad_mode", [True, False])
def test_restores_grad_mode(grad_mode):
    x, y = clouds(10, 8)
    with torch.set_grad_enabled(grad_mode):
        sinkhorn_divergence(x, y)
        assert torch.is_grad_enabled() is grad_mode
    with torch.inference_mode():
        assert torch.isfinite(sinkhorn_divergence(x, y))


# -- batching and padding ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("tol", [None, 1e-6])
def test_batched_equals_per_item(tol):
    x = torch.randn(3, 12, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    y = torch.randn(3, 9, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    x[1] *= 5  # a different diameter, hence a longer schedule, for item 1
    batched = sinkhorn_divergence(x, y, blur=0.1, tol=tol)
    assert batched.shape == (3,)
    single = torch.stack([sinkhorn_divergence(x[i], y[i], blur=0.1, tol=tol) for i in range(3)])
    # tol=None: the same iterations; with tol the batch stops when its worst item converges
    rtol = 1e-10 if tol is None else 1e-5
    torch.testing.assert_close(batched, single, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("backend", ["tensorized", "blocked"])
@pytest.mark.parametrize("tol", [None, 1e-6])
def test_zero_weights_act_as_padding(tol, backend):
    x, y = clouds(10, 8)
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(10, generator=g, dtype=F64), torch.rand(8, generator=g, dtype=F64)
    a, b = a / a.sum(), b / b.sum()
    ref = sinkhorn_divergence(x, y, a, b, blur=0.1, tol=tol, backend=backend)
    xp = torch.cat([x, torch.full((3, 3), 40.0, dtype=F64)])  # far away, and coincident
    yp = torch.cat([torch.zeros(2, 3, dtype=F64), y])
    ap = torch.cat([a, torch.zeros(3, dtype=F64)])
    bp = torch.cat([torch.zeros(2, dtype=F64), b])
    xp.requires_grad_(True)
    padded = sinkhorn_divergence(xp, yp, ap, bp, blur=0.1, tol=tol, backend=backend)
    torch.testing.assert_close(padded, ref, rtol=1e-10, atol=1e-12)
    padded.backward()
    assert torch.isfinite(xp.grad).all() and xp.grad[10:].abs().max() == 0


# -- stability and precision ---------------------------------------------------------------


@pytest.mark.parametrize("debias", [True, False])
def test_zero_diameter_gives_zero(debias):
    x = torch.ones(6, 2, requires_grad=True)
    y = torch.ones(4, 2)
    value = sinkhorn_divergence(x, y, debias=debias)
    value.backward()
    assert abs(float(value)) < 1e-6
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("backend", ["tensorized", "blocked"])
def test_tiny_blur_and_duplicates_stay_finite(backend):
    x, y = clouds(30, 20, dtype=torch.float32)
    x = torch.cat([x, x[:5]]).requires_grad_(True)  # duplicated points
    diameter = float((torch.cat([x, y]).amax(0) - torch.cat([x, y]).amin(0)).norm())
    value = sinkhorn_divergence(x, y, blur=1e-3 * diameter, max_iter=200, backend=backend)
    value.backward()
    assert torch.isfinite(value) and value > 0 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    x, y = clouds(20, 16, dtype=torch.float32)
    ref = sinkhorn_divergence(x.to(dtype).float(), y.to(dtype).float())
    xh = x.to(dtype).requires_grad_(True)
    value = sinkhorn_divergence(xh, y.to(dtype))
    assert value.dtype == dtype
    torch.testing.assert_close(value.float(), ref, rtol=1e-2, atol=1e-3)
    value.backward()
    assert xh.grad.dtype == dtype and torch.isfinite(xh.grad.float()).all()


def test_float32_agrees_with_float64():
    x, y = clouds(30, 20)
    torch.testing.assert_close(
        sinkhorn_divergence(x.float(), y.float()),
        sinkhorn_divergence(x, y).float(),
        rtol=1e-4,
        atol=1e-6,
    )


def test_diameter_argument_sets_the_schedule():
    x, y = clouds(20, 16)
    auto = sinkhorn_divergence(x, y, blur=0.1, tol=None)
    d = float((torch.cat([x, y]).amax(0) - torch.cat([x, y]).amin(0)).norm())
    given_d = sinkhorn_divergence(x, y, blur=0.1, tol=None, diameter=d)
    torch.testing.assert_close(auto, given_d)
    assert sinkhorn_divergence(x, y, blur=0.1, tol=None, diameter=100.0) != auto


def test_epsilon_schedule_is_geomlosss():
    from geomloss._legacy.sinkhorn_divergence import epsilon_schedule as gl_schedule

    for p, d, blur, s in [(2, 7.3, 0.05, 0.5), (1, 3.0, 0.1, 0.9), (2, 1.0, 0.01, 0.3)]:
        np.testing.assert_allclose(epsilon_schedule(p, d, blur, s), gl_schedule(p, d, blur, s))
    assert epsilon_schedule(2, 0.0, 0.1, 0.5) == pytest.approx([0.01, 0.01])


def test_potentials_and_diagnostics():
    x, y = clouds(20, 16)
    out = sinkhorn_divergence(x, y, blur=0.1, tol=1e-5, potentials=True)
    assert out.f.shape == (20,) and out.g.shape == (16,)
    assert out.marginal_error < 1e-4 and out.iterations > len(epsilon_schedule(2, 1, 0.1, 0.5))
    torch.testing.assert_close(out.value, out.f.mean() + out.g.mean())
    gl_f, gl_g = SamplesLoss("sinkhorn", blur=0.1, potentials=True, backend="tensorized")(x, y)
    fixed = sinkhorn_divergence(x, y, blur=0.1, tol=None, potentials=True)
    torch.testing.assert_close(fixed.f, gl_f.reshape(20))
    torch.testing.assert_close(fixed.g, gl_g.reshape(16))


def test_auto_backend_and_module_agree():
    x, y = clouds(25, 15)
    module = SinkhornDivergence(blur=0.2)
    assert "blur=0.2" in repr(module)
    for backend in ("blocked", "tensorized"):
        ref = sinkhorn_divergence(x, y, blur=0.2, backend=backend)
        torch.testing.assert_close(module(x, y), ref)
    assert otloss.sinkhorn_divergence is sinkhorn_divergence


@cuda
def test_cuda_matches_cpu():
    x, y = clouds(30, 20)
    torch.testing.assert_close(
        sinkhorn_divergence(x.cuda(), y.cuda()).cpu(), sinkhorn_divergence(x, y)
    )


# -- properties ----------------------------------------------------------------------------


points = st.integers(min_value=0, max_value=10_000).map(
    lambda seed: torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))
)


@pytest.mark.slow
@settings(max_examples=10)
@given(points, points)
def test_is_symmetric(x, y):
    forward = sinkhorn_divergence(x, y + 1, blur=0.3, tol=1e-9)
    backward = sinkhorn_divergence(y + 1, x, blur=0.3, tol=1e-9)
    assert math.isclose(float(forward), float(backward), rel_tol=1e-6, abs_tol=1e-9)


@pytest.mark.slow
@settings(max_examples=10)
@given(points)
def test_is_zero_on_equal_inputs(x):
    assert abs(float(sinkhorn_divergence(x, x.clone(), blur=0.2, tol=1e-9))) < 1e-6


@pytest.mark.slow
@settings(max_examples=15)
@given(points, points, st.sampled_from([0.05, 0.3, 1.0]))
def test_debiased_p2_is_nonnegative(x, y, blur):
    assert float(sinkhorn_divergence(x, 0.3 * y, blur=blur, tol=1e-7)) >= -1e-9


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"p": 3}, ValueError, "unknown p"),
        ({"blur": 0.0}, ValueError, "blur"),
        ({"blur": -1.0}, ValueError, "blur"),
        ({"scaling": 1.0}, ValueError, "scaling"),
        ({"reach": 0.0}, ValueError, "reach"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"backend": "keops"}, ValueError, "backend"),
        ({"diameter": -1.0}, ValueError, "diameter"),
        ({"cost": "sqeuclidean"}, TypeError, "cost"),
        ({"cost": lambda u, v: u.sum(-1)}, ValueError, "cost"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, match):
    x, y = clouds(5, 4)
    with pytest.raises(error, match=match):
        sinkhorn_divergence(x, y, **kwargs)


def test_rejects_bad_inputs():
    x, y = clouds(5, 4)
    with pytest.raises(ValueError, match=r"feature size D.*\(5, 3\).*\(4, 2\)"):
        sinkhorn_divergence(x, y[:, :2])
    with pytest.raises(ValueError, match="non-negative"):
        sinkhorn_divergence(x, y, torch.tensor([0.5, 0.6, -0.1, 0.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match="sum to 1"):
        sinkhorn_divergence(x, y, torch.full((5,), 0.3, dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        sinkhorn_divergence(x, y, torch.full((4,), 0.25, dtype=F64))
    with pytest.raises(TypeError, match="dtype"):
        sinkhorn_divergence(x, y.float())
    with pytest.raises(ValueError, match="batch size"):
        sinkhorn_divergence(x.expand(2, 5, 3), y.expand(3, 4, 3))
