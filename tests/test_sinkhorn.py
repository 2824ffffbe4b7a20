"""Sinkhorn divergence: GeomLoss/POT cross-checks, gradients, batching, padding, stability."""

import math
import warnings

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
from otloss.sinkhorn import SinkhornConvergenceWarning, epsilon_schedule
from otloss.sinkhorn._geometry import CostGeometry
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
            x, y, blur=blur, reach=reach, debias=debias, tol=None, rtol=None, backend=backend
        )
        assert abs(float(ours - ref)) <= 1e-5 * abs(float(ref))


def test_tol_none_reproduces_geomloss_p1_and_scaling():
    # GeomLoss's own p=1 cost clamps distances at 1e-4 (so its diagonal is not 0): give
    # both libraries the same callable cost to compare the algorithms.
    def cost(u, v):
        return ((u[:, :, None] - v[:, None]) ** 2).sum(-1).clamp_min(1e-8).sqrt()

    x, y = clouds(30, 20)
    ref = SamplesLoss("sinkhorn", p=1, blur=0.1, scaling=0.7, cost=cost, backend="tensorized")(x, y)
    ours = sinkhorn_divergence(x, y, p=1, blur=0.1, scaling=0.7, cost=cost, tol=None, rtol=None)
    assert abs(float(ours - ref)) <= 1e-5 * abs(float(ref))


def _pot_entropic_ot(x, y, eps, f_init, g_init, a=None, b=None, marginal_tol=1e-4):
    """OT_eps(x, y) from POT's log-domain Sinkhorn (200 iterations, L1 marginal error < 1e-4).

    Cold, POT needs tens of thousands of iterations at these temperatures (minutes: its
    alternating updates crawl on the self-transport problems), and ``ot.solve`` ignores
    ``potentials_init`` in the balanced case, so ``ot.bregman.sinkhorn_log`` is
    warm-started from the given potentials. POT's own stopping test on its own marginals
    certifies the solution; the value is ``ot.solve``'s: ``<P, M> + eps KL(P | a b^T)``.
    """
    m = ot.dist(x.numpy(), y.numpy()) / 2
    a = np.full(len(x), 1 / len(x)) if a is None else a.numpy()
    b = np.full(len(y), 1 / len(y)) if b is None else b.numpy()
    init = (np.log(a) + f_init / eps, np.log(b) + g_init / eps)
    plan = ot.bregman.sinkhorn_log(a, b, m, eps, numItermax=200, stopThr=1e-9, warmstart=init)
    assert np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum() < marginal_tol
    prior = a[:, None] * b[None]
    kl = (xlogy(plan, plan / prior) - plan + prior).sum()
    return (plan * m).sum() + eps * kl


def _potentials(x, y, blur):
    # Only a warm start: POT's own test on its own marginals certifies the solution.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SinkhornConvergenceWarning)
        out = sinkhorn_divergence(
            x, y, blur=blur, debias=False, tol=1e-6, max_iter=2000, potentials=True
        )
    return out.f.numpy(), out.g.numpy()


@pytest.mark.slow
# Measured relative error of the default stopping test on these 40 x 30 clouds: 2e-9 at
# blur 0.5, 1.3e-3 at 0.1 and 1.9e-3 at 0.05 (nearly discrete problems, the hardest case).
@pytest.mark.parametrize(("blur", "default_rtol"), [(0.5, 1e-6), (0.1, 3e-3), (0.05, 3e-3)])
def test_converged_value_matches_pot(blur, default_rtol):
    x, y = clouds(40, 30)
    eps = blur**2
    parts = [
        _pot_entropic_ot(u, v, eps, *_potentials(u, v, blur)) for u, v in ((x, y), (x, x), (y, y))
    ]
    reference = parts[0] - parts[1] / 2 - parts[2] / 2
    value = float(sinkhorn_divergence(x, y, blur=blur))  # the default stopping test
    assert abs(value - reference) <= default_rtol * abs(reference)
    raw = float(sinkhorn_divergence(x, y, blur=blur, debias=False))
    assert abs(raw - parts[0]) <= default_rtol * abs(parts[0])


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
    tight = float(sinkhorn_divergence(x, y, blur=0.1, rtol=1e-8, max_iter=5000))
    default = float(sinkhorn_divergence(x, y, blur=0.1))
    fixed = float(sinkhorn_divergence(x, y, blur=0.1, tol=None, rtol=None))
    assert abs(default - tight) <= 5e-4 * tight
    assert abs(fixed - tight) > 3e-2 * tight  # GeomLoss's schedule alone stops short


@pytest.mark.slow
def test_primal_cost_approaches_emd_as_blur_vanishes():
    x, y = clouds(40, 30)
    c = torch.cdist(x, y) ** 2 / 2
    emd = ot.emd2(np.full(40, 1 / 40), np.full(30, 1 / 30), c.numpy())
    gaps = []
    for blur in (0.3, 0.1, 0.03):
        out = sinkhorn_divergence(
            x, y, blur=blur, debias=False, rtol=1e-8, max_iter=5000, potentials=True
        )
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
    short = sinkhorn_divergence(x, y, blur=0.05, tol=None, rtol=None)
    with pytest.warns(SinkhornConvergenceWarning):  # 400 updates, not converged: on purpose
        long = sinkhorn_divergence(x, y, blur=0.05, rtol=None, tol=1e-12, max_iter=400)

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
@pytest.mark.parametrize(
    ("stop", "rtol"),
    [({"tol": None, "rtol": None}, 1e-10), ({"tol": 1e-12, "max_iter": 300}, 1e-8), ({}, 3e-3)],
)
@pytest.mark.filterwarnings("ignore::otloss.sinkhorn.SinkhornConvergenceWarning")
def test_batched_equals_per_item(stop, rtol):
    x = torch.randn(3, 12, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    y = torch.randn(3, 9, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    x[1] *= 5  # a different diameter, hence a longer schedule, for item 1
    batched = sinkhorn_divergence(x, y, blur=0.1, **stop)
    assert batched.shape == (3,)
    single = torch.stack([sinkhorn_divergence(x[i], y[i], blur=0.1, **stop) for i in range(3)])
    # The fixed schedule and a capped budget: the same iterations; with a test the batch
    # stops when its worst item passes, so the others are at least as converged as alone.
    torch.testing.assert_close(batched, single, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("backend", ["tensorized", "blocked"])
@pytest.mark.parametrize("tol", [None, 1e-6])
def test_zero_weights_act_as_padding(tol, backend):  # tol=None: the default value test
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
    auto = sinkhorn_divergence(x, y, blur=0.1, tol=None, rtol=None)
    d = float((torch.cat([x, y]).amax(0) - torch.cat([x, y]).amin(0)).norm())
    given_d = sinkhorn_divergence(x, y, blur=0.1, tol=None, rtol=None, diameter=d)
    torch.testing.assert_close(auto, given_d)
    assert sinkhorn_divergence(x, y, blur=0.1, tol=None, rtol=None, diameter=100.0) != auto


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
    fixed = sinkhorn_divergence(x, y, blur=0.1, tol=None, rtol=None, potentials=True)
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
    # GeomLoss's symmetric updates treat x and y alike: equal up to rounding.
    fixed = {"tol": None, "rtol": None}
    forward = sinkhorn_divergence(x, y + 1, blur=0.3, **fixed)
    backward = sinkhorn_divergence(y + 1, x, blur=0.3, **fixed)
    assert math.isclose(float(forward), float(backward), rel_tol=1e-12, abs_tol=1e-12)
    # The converged default starts with x; both land on the same value.
    forward, backward = (
        sinkhorn_divergence(x, y + 1, blur=0.3),
        sinkhorn_divergence(y + 1, x, blur=0.3),
    )
    assert math.isclose(float(forward), float(backward), rel_tol=3e-3)


@pytest.mark.slow
@settings(max_examples=10)
@given(points, st.sampled_from([1, 2]))
def test_is_zero_on_shared_points(x, p):
    # The cross cost of shared points has the self cost's exact zero diagonal, so the
    # fixed schedule (the same updates on the same matrices) gives exactly 0 ...
    fixed = {"tol": None, "rtol": None}
    assert float(sinkhorn_divergence(x, x.clone(), p=p, blur=0.2, **fixed)) == 0.0
    assert float(sinkhorn_divergence(x.float(), x.float(), p=p, blur=0.2, **fixed)) == 0.0
    # ... and the converged default 0 up to its stopping test.
    assert abs(float(sinkhorn_divergence(x, x.clone(), p=p, blur=0.2))) < 1e-4


@pytest.mark.slow
@settings(max_examples=15)
@given(points, points, st.sampled_from([0.05, 0.3, 1.0]))
def test_debiased_p2_is_nonnegative(x, y, blur):
    assert float(sinkhorn_divergence(x, 0.3 * y, blur=blur)) >= -1e-9


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


# -- safeguarded refinement, honest outputs, no subnormals -----------------------------------


def _bumps(c1, w1, c2, w2):
    t = torch.linspace(0, 1, 200, dtype=F64)[:, None]

    def bump(c, w):
        v = torch.exp(-((t[:, 0] - c) ** 2) / (2 * w**2))
        return v / v.sum()

    return t, bump(c1, w1), bump(c2, w2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bumps", "blur"),
    [
        ((0.3, 0.05, 0.7, 0.1), 0.005),
        ((0.2, 0.02, 0.6, 0.05), 0.01),
        ((0.5, 0.1, 0.5, 0.03), 0.005),
    ],
)
def test_refinement_converges_on_histograms_spanning_many_orders_of_magnitude(bumps, blur):
    # Gaussian bumps on a grid (weights down to 1e-44), blur of the order of the grid step:
    # a fixed over-relaxation of 1.8 diverged here (marginal errors up to 1e26).
    t, a, b = _bumps(*bumps)
    m = ot.dist(t.numpy(), t.numpy()) / 2
    ref = ot.solve(
        m, a.numpy(), b.numpy(), reg=blur**2, reg_type="KL", tol=1e-12, max_iter=200000,
        method="sinkhorn_log",
    ).value  # fmt: skip
    out = sinkhorn_divergence(t, t, a, b, blur=blur, debias=False, tol=1e-6, potentials=True)
    assert out.converged and out.marginal_error < 2e-6
    assert abs(float(out.value) - ref) <= 1e-8 * ref


weights = st.builds(
    lambda seed, span: torch.softmax(
        span * torch.randn(7, dtype=F64, generator=torch.Generator().manual_seed(seed)), 0
    ),
    st.integers(0, 10**6),
    st.sampled_from([0.0, 5.0, 30.0]),
)


@settings(max_examples=8, deadline=None)
@given(points, points, weights, weights, st.sampled_from([0.05, 0.3, 3.0]))
def test_balanced_refinement_reaches_pots_value_whenever_tol_is_reached(x, y, a, b, blur):
    # Weights spanning up to ~1e50, tiny to large blur: the refinement never diverges,
    # and when it reports convergence its value is POT's converged entropic value.
    x, y = torch.cat([x, x[:1] + 0.1]), torch.cat([y, y[:1] - 0.2]) + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SinkhornConvergenceWarning)
        out = sinkhorn_divergence(
            x, y, a, b, blur=blur, debias=False, tol=1e-8, max_iter=2000, potentials=True
        )
    assert torch.isfinite(out.value) and out.marginal_error < 1.0
    if out.converged:
        # POT's log-domain Sinkhorn, warm-started from our potentials, certifies them on
        # its own marginals (cold, it needs 1e5+ iterations here).
        f, g = out.f.numpy(), out.g.numpy()
        ref = _pot_entropic_ot(x, y, blur**2, f, g, a, b, marginal_tol=1e-7)
        assert abs(float(out.value) - ref) <= 1e-6 * (abs(ref) + blur**2)


@settings(max_examples=8, deadline=None)
@given(points, points, st.sampled_from([0.5, 1.0]), st.sampled_from([0.3, 1.0]))
def test_unbalanced_refinement_converges_to_its_fixed_point(x, y, blur, reach):
    # Unbalanced updates are plain (damped by 1 / (1 + eps / rho)): they contract.
    out = sinkhorn_divergence(x, y + 1, blur=blur, reach=reach, tol=1e-9, potentials=True)
    assert out.converged and torch.isfinite(out.value)
    longer = sinkhorn_divergence(x, y + 1, blur=blur, reach=reach, tol=1e-12, max_iter=5000)
    assert abs(float(out.value - longer)) <= 1e-6 * (abs(float(longer)) + blur**2)


def test_unreached_tolerance_warns_once_and_says_so():
    x, y = clouds(40, 30)
    with pytest.warns(SinkhornConvergenceWarning, match="max_iter=20") as record:
        out = sinkhorn_divergence(x, y, blur=0.05, tol=1e-9, max_iter=20, potentials=True)
    assert len(record) == 1
    assert not out.converged and out.marginal_error > 1e-9
    batched = sinkhorn_divergence(
        torch.stack([x[:30], 5 * x[:30]]), torch.stack([y, y]), blur=0.5, tol=1e-6,
        max_iter=30, potentials=True,
    )  # fmt: skip
    assert batched.converged.shape == (2,)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SinkhornConvergenceWarning)
        fixed = sinkhorn_divergence(x, y, blur=0.05, tol=None, rtol=None, potentials=True)
        assert fixed.converged  # no test was asked for: nothing to report
        assert sinkhorn_divergence(x, y, blur=0.5, tol=1e-6, potentials=True).converged


@pytest.mark.slow
def test_default_value_is_within_1e3_of_converged_on_a_minibatch_problem():
    # 256 points in 3-D at blur 0.1 in float32: GeomLoss's schedule is 8% low here.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 3, generator=g), torch.randn(256, 3, generator=g) + 0.5
    ref = float(sinkhorn_divergence(x.double(), y.double(), blur=0.1, tol=1e-7, max_iter=5000))
    out = sinkhorn_divergence(x, y, blur=0.1, potentials=True)
    assert out.converged and abs(float(out.value) - ref) <= 1e-3 * ref
    fixed = float(sinkhorn_divergence(x, y, blur=0.1, tol=None, rtol=None))
    assert abs(fixed - ref) > 3e-2 * ref


@pytest.mark.parametrize("backend", ["tensorized", "blocked"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_backward_plans_hold_no_subnormal_numbers(backend, dtype):
    # Far-apart rows with tiny masses: entries near exp(-80) times a mass of 1e-4 would
    # be subnormal in float32 (100x slower arithmetic on many CPUs).
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(300, 8, generator=g, dtype=dtype),
        torch.randn(200, 8, generator=g, dtype=dtype),
    )
    out = sinkhorn_divergence(x, y, blur=0.05, backend=backend, tol=None, rtol=None)
    tiny = torch.finfo(dtype).tiny
    xy = CostGeometry(x[None], y[None], p=2, cost=None, blocked=backend == "blocked")
    eps = torch.full((1,), 0.05**2, dtype=dtype)
    h = (torch.full((1, 200), 1 / 200, dtype=dtype)).log()
    lse = xy.log_partition(eps, h)
    for _, _, w in xy.plan_rows(eps, h, lse):
        assert not ((w > 0) & (w < tiny)).any()
        assert (w == 0).any()  # the floor is exercised
        # rows sum to 1 up to the rounding of exponents of size |C / eps| ~ 1e3
        rtol = 1e-4 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)), rtol=rtol, atol=0)
    assert torch.isfinite(out)


def test_autocast_keeps_the_cost_in_float32():
    x, y = clouds(64, 48, dtype=torch.float32)
    ref = sinkhorn_divergence(x, y, blur=0.1, backend="tensorized")
    xr = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = sinkhorn_divergence(xr, y, blur=0.1, backend="tensorized")
    value.backward()
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, ref, rtol=1e-6, atol=0)
    assert torch.isfinite(xr.grad).all()


def test_module_validates_at_construction_and_returns_potentials():
    with pytest.raises(ValueError, match="blur"):
        SinkhornDivergence(blur=-1.0)
    with pytest.raises(ValueError, match="scaling"):
        SinkhornDivergence(scaling=1.5)
    with pytest.raises(TypeError, match="potentials"):
        SinkhornDivergence(potentials=1)
    x, y = clouds(20, 16)
    out = SinkhornDivergence(blur=0.2, potentials=True)(x, y)
    ref = sinkhorn_divergence(x, y, blur=0.2, potentials=True)
    assert isinstance(out, otloss.sinkhorn.SinkhornOutput) and out.converged
    torch.testing.assert_close(out.value, ref.value)
    torch.testing.assert_close(out.f, ref.f)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("which", ["x", "y"])
def test_non_finite_points_raise_naming_the_input(bad, which):
    x, y = clouds(10, 8)
    (x if which == "x" else y)[3, 1] = bad
    with pytest.raises(ValueError, match=rf"^{which} of shape .* NaN or infinite"):
        sinkhorn_divergence(x, y)
    # With the diameter given, the first stopping test finds it (no extra sync) ...
    with pytest.raises(ValueError, match=rf"^{which} of shape"):
        sinkhorn_divergence(x, y, diameter=10.0)
    # ... and without any test there is no sync at all: NaN out.
    assert torch.isnan(sinkhorn_divergence(x, y, diameter=10.0, tol=None, rtol=None))


def test_empty_batch_gives_an_empty_result():
    x, y = torch.randn(0, 5, 2, dtype=F64), torch.randn(0, 4, 2, dtype=F64)
    assert sinkhorn_divergence(x, y).shape == (0,)
    out = sinkhorn_divergence(x, y, potentials=True)
    assert out.value.shape == (0,) and out.f.shape == (0, 5) and out.converged.shape == (0,)
