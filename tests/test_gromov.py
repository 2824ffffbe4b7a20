"""Entropic Gromov-Wasserstein solver: POT cross-checks, invariances, padding, gradients."""

import math
import warnings

import numpy as np
import ot
import pytest
import torch

import otloss
from otloss import GromovWasserstein, gromov_wasserstein
from otloss.gromov import DEFAULT_TOL
from tests.conftest import cuda

F64 = torch.float64
TIGHT = {"tol": 1e-9, "sinkhorn_tol": 1e-8}


def spaces(n=64, m=None, *, dx=784, dy=16, clustered=False, seed=0, dtype=F64):
    """Point clouds of dimensions dx and dy; clustered: 4 well-separated groups in each."""
    m = n if m is None else m
    g = torch.Generator().manual_seed(seed)
    if clustered:
        cx = 3 * torch.randn(4, dx, generator=g, dtype=dtype)
        cy = 3 * torch.randn(4, dy, generator=g, dtype=dtype)
        x = cx[torch.arange(n) % 4] + torch.randn(n, dx, generator=g, dtype=dtype)
        y = cy[torch.arange(m) % 4] + torch.randn(m, dy, generator=g, dtype=dtype)
    else:
        x = torch.randn(n, dx, generator=g, dtype=dtype)
        y = torch.randn(m, dy, generator=g, dtype=dtype)
    return x, y


def unit_costs(x, y):
    """Euclidean distance matrices, each divided by its largest entry."""
    cx, cy = torch.cdist(x, x), torch.cdist(y, y)
    return cx / cx.max(), cy / cy.max()


def pot_entropic(cx, cy, a=None, b=None, *, epsilon, loss_fun="square_loss"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = ot.gromov.entropic_gromov_wasserstein2(
            cx.double().numpy(),
            cy.double().numpy(),
            None if a is None else a.double().numpy(),
            None if b is None else b.double().numpy(),
            loss_fun=loss_fun,
            epsilon=epsilon,
            solver="PGD",
        )
    return float(value)


def rotation(d, seed):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    return q


# -- cross-checks against POT ---------------------------------------------------------------


@pytest.mark.parametrize("clustered", [False, True])
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_value_matches_pots_entropic_gw_at_n64(clustered, dtype):
    cx, cy = unit_costs(*spaces(64, clustered=clustered))
    ref = pot_entropic(cx, cy, epsilon=1e-2)
    value = gromov_wasserstein(cx.to(dtype), cy.to(dtype), epsilon=1e-2)
    assert value.dtype == dtype
    assert float(value) == pytest.approx(ref, rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("clustered", [False, True])
def test_value_matches_pots_entropic_gw_at_n256(clustered):
    cx, cy = unit_costs(*spaces(256, clustered=clustered, seed=1))
    ref = pot_entropic(cx, cy, epsilon=1e-2)
    assert float(gromov_wasserstein(cx.float(), cy.float(), epsilon=1e-2)) == pytest.approx(
        ref, rel=1e-3
    )


def test_value_matches_pot_with_weights_and_different_sizes():
    cx, cy = unit_costs(*spaces(30, 20, dx=5, dy=3, seed=2))
    g = torch.Generator().manual_seed(3)
    a = torch.rand(30, generator=g, dtype=F64) + 0.5
    b = torch.rand(20, generator=g, dtype=F64) + 0.5
    a, b = a / a.sum(), b / b.sum()
    ref = pot_entropic(cx, cy, a, b, epsilon=2e-2)
    assert float(gromov_wasserstein(cx, cy, a, b, epsilon=2e-2)) == pytest.approx(ref, rel=1e-3)


@pytest.mark.slow
def test_kl_loss_matches_pot():
    x, y = spaces(24, 18, dx=4, dy=2, seed=4)
    kx, ky = torch.exp(-torch.cdist(x, x) ** 2 / 8), torch.exp(-torch.cdist(y, y) ** 2 / 4)
    ref = pot_entropic(kx, ky, epsilon=1e-2, loss_fun="kl_loss")
    value = gromov_wasserstein(kx, ky, epsilon=1e-2, loss="kl")
    assert float(value) == pytest.approx(ref, rel=1e-3)


def test_asymmetric_costs_match_pot():
    g = torch.Generator().manual_seed(5)
    cx, cy = torch.rand(12, 12, generator=g, dtype=F64), torch.rand(9, 9, generator=g, dtype=F64)
    ref = pot_entropic(cx, cy, epsilon=5e-2)
    assert float(gromov_wasserstein(cx, cy, epsilon=5e-2)) == pytest.approx(ref, rel=1e-3)
    # Declaring them symmetric changes the linearised cost, hence the plan and the value.
    assert float(gromov_wasserstein(cx, cy, epsilon=5e-2, symmetric=True)) != pytest.approx(
        ref, rel=1e-3
    )


def test_small_epsilon_with_annealing_approaches_exact_gw():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 2, generator=g, dtype=F64)
    th = 0.7
    rot = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], dtype=F64)
    perm = torch.randperm(10, generator=g)
    y = (x @ rot.T)[perm] + 0.1 * torch.randn(10, 2, generator=g, dtype=F64)
    cx, cy = torch.cdist(x, x), torch.cdist(y, y)
    # Exact GW (conditional gradient with exact OT steps) from the true matching.
    matching = torch.zeros(10, 10, dtype=F64)
    matching[perm, torch.arange(10)] = 0.1
    exact = float(ot.gromov.gromov_wasserstein2(cx.numpy(), cy.numpy(), G0=matching.numpy()))
    value, plan = gromov_wasserstein(
        cx, cy, epsilon=1e-3, epsilon_start=1.0, tol=1e-7, sinkhorn_tol=1e-6, return_plan=True
    )
    assert float(value) == pytest.approx(exact, rel=1e-3)
    torch.testing.assert_close(plan, matching, atol=1e-3, rtol=0)
    # A larger epsilon is visibly biased upwards.
    assert float(gromov_wasserstein(cx, cy, epsilon=1e-2, epsilon_start=1.0)) > exact * 1.01


# -- invariances ------------------------------------------------------------------------------


@pytest.mark.slow
def test_invariant_to_isometries_of_either_space():
    x, y = spaces(40, 30, dx=6, dy=3, seed=6)
    ref = gromov_wasserstein(x, y, epsilon=0.5, metric="euclidean")
    moved_x = x @ rotation(6, 1).T + 3.0
    moved_y = -(y @ rotation(3, 2).T) - 1.0
    for u, v in ((moved_x, y), (x, moved_y), (moved_x, moved_y)):
        value = gromov_wasserstein(u, v, epsilon=0.5, metric="euclidean")
        assert float(value) == pytest.approx(float(ref), rel=1e-6)
    # Relabelling the points (with their weights) is an isometry of the measure space too.
    g = torch.Generator().manual_seed(7)
    a = torch.rand(40, generator=g, dtype=F64) + 0.1
    a = a / a.sum()
    perm = torch.randperm(40, generator=g)
    ref = gromov_wasserstein(x, y, a, epsilon=0.5, metric="euclidean")
    permuted = gromov_wasserstein(x[perm], y, a[perm], epsilon=0.5, metric="euclidean")
    assert float(permuted) == pytest.approx(float(ref), rel=1e-6)


def test_gw_of_a_space_with_itself_is_near_zero():
    x, _ = spaces(30, dx=3, seed=8)
    other, _ = spaces(30, dx=5, seed=9)
    cx = torch.cdist(x, x)
    co = torch.cdist(other, other)
    scale = float(gromov_wasserstein(cx, co, epsilon=1e-3, epsilon_start=1.0))
    for init in ("product", "identity"):
        value = gromov_wasserstein(cx, cx, epsilon=1e-3, epsilon_start=1.0, init=init)
        assert abs(float(value)) < 1e-3 * scale  # 0 up to rounding (and the entropy)


def test_identity_init_for_paired_samples_finds_the_isometry():
    x, _ = spaces(25, dx=3, seed=10)
    z = x @ rotation(3, 3).T
    value, plan = gromov_wasserstein(
        x, z, epsilon=1e-3, metric="euclidean", init="identity", return_plan=True
    )
    assert float(value) < 1e-6
    assert torch.allclose(plan, torch.eye(25, dtype=F64) / 25, atol=1e-4)


# -- padding and batching -----------------------------------------------------------------


@pytest.mark.slow
def test_padding_equals_no_padding():
    sizes = [(20, 15), (12, 18), (7, 7)]
    n, m = 20, 18
    cx = torch.full((3, n, n), float("nan"), dtype=F64)  # padding may hold anything
    cy = torch.full((3, m, m), 1e6, dtype=F64)
    a, b = torch.zeros(3, n, dtype=F64), torch.zeros(3, m, dtype=F64)
    singles = []
    for k, (nk, mk) in enumerate(sizes):
        x, y = spaces(nk, mk, dx=4, dy=3, seed=20 + k)
        ux, uy = unit_costs(x, y)
        cx[k, :nk, :nk], cy[k, :mk, :mk] = ux, uy
        a[k, :nk], b[k, :mk] = 1 / nk, 1 / mk
        singles.append((ux.requires_grad_(True), uy.requires_grad_(True)))
    cx.requires_grad_(True)
    cy.requires_grad_(True)
    for kw in ({}, {"tol": None, "sinkhorn_tol": None, "max_iter": 30, "sinkhorn_max_iter": 5}):
        values, plans = gromov_wasserstein(
            cx, cy, a, b, epsilon=2e-2, symmetric=True, return_plan=True, **kw
        )
        (gx, gy) = torch.autograd.grad(values.sum(), (cx, cy))
        for k, ((nk, mk), (ux, uy)) in enumerate(zip(sizes, singles, strict=True)):
            value, plan = gromov_wasserstein(ux, uy, epsilon=2e-2, return_plan=True, **kw)
            sx, sy = torch.autograd.grad(value, (ux, uy))
            # Equal up to rounding (sums over padded zeros change the order of additions).
            torch.testing.assert_close(values[k], value, rtol=1e-8, atol=0)
            torch.testing.assert_close(plans[k, :nk, :mk], plan, rtol=1e-6, atol=1e-12)
            assert float(plans[k].sum()) == pytest.approx(1.0, abs=1e-3)
            assert plans[k, nk:].abs().sum() == 0 and plans[k, :, mk:].abs().sum() == 0
            torch.testing.assert_close(gx[k, :nk, :nk], sx, rtol=1e-6, atol=1e-12)
            torch.testing.assert_close(gy[k, :mk, :mk], sy, rtol=1e-6, atol=1e-12)
            assert gx[k, nk:].abs().sum() == 0 and gy[k, :, mk:].abs().sum() == 0


@pytest.mark.slow
def test_batched_equals_per_item():
    xs, ys = zip(*(spaces(16, 12, dx=5, dy=2, seed=30 + k) for k in range(4)), strict=True)
    xs, ys = [x / 4 for x in xs], [y / 2 for y in ys]
    x, y = torch.stack(xs), torch.stack(ys)
    # Each item stops on its own tests, so a batch reproduces the single runs up to the
    # rounding of batched products; the inner tolerance test can then flip by one update
    # and move the stopping point by about sinkhorn_tol.
    cases = (
        ({"tol": None, "sinkhorn_tol": None, "max_iter": 40, "sinkhorn_max_iter": 10}, 1e-12),
        ({"sinkhorn_tol": None, "sinkhorn_max_iter": 20}, 1e-12),
        ({}, 1e-3),
    )
    for kw, rtol in cases:
        values = gromov_wasserstein(x, y, epsilon=5e-2, metric="sqeuclidean", **kw)
        assert values.shape == (4,)
        for k in range(4):
            single = gromov_wasserstein(xs[k], ys[k], epsilon=5e-2, metric="sqeuclidean", **kw)
            torch.testing.assert_close(values[k], single, rtol=rtol, atol=0)


def test_module_equals_function_and_validates_at_construction():
    x, y = spaces(20, 15, dx=4, dy=2, seed=40)
    cx, cy = unit_costs(x, y)
    module = GromovWasserstein(epsilon=0.05, loss="square")
    assert float(module(cx, cy)) == float(gromov_wasserstein(cx, cy, epsilon=0.05))
    assert "epsilon=0.05" in repr(module)
    with pytest.raises(ValueError, match="epsilon"):
        GromovWasserstein(epsilon=0.0)
    with pytest.raises(ValueError, match="loss"):
        GromovWasserstein(epsilon=0.1, loss="l1")


# -- the plan, the entropy term, annealing and the iteration modes ------------------------


def test_plan_has_the_requested_marginals():
    cx, cy = unit_costs(*spaces(30, 20, dx=4, dy=3, seed=41))
    g = torch.Generator().manual_seed(4)
    a = torch.softmax(torch.randn(30, generator=g, dtype=F64), 0)
    value, plan = gromov_wasserstein(cx, cy, a, epsilon=1e-2, return_plan=True)
    assert plan.shape == (30, 20) and (plan >= 0).all()
    b = torch.full((20,), 1 / 20, dtype=F64)
    torch.testing.assert_close(plan.sum(0), b, atol=1e-12, rtol=0)
    assert float((plan.sum(1) - a).abs().sum()) < 1e-4  # sinkhorn_tol's default
    # The value is the GW objective of the plan, POT's gwloss.
    const, hx, hy = ot.gromov.init_matrix(
        cx.numpy(), cy.numpy(), a.numpy(), np.full(20, 1 / 20), "square_loss"
    )
    expected = ot.gromov.gwloss(const, hx, hy, plan.numpy())
    assert float(value) == pytest.approx(float(expected), rel=1e-10)


def test_entropic_flag_adds_epsilon_times_kl():
    cx, cy = unit_costs(*spaces(15, 12, dx=3, dy=2, seed=42))
    eps = 5e-2
    value, plan = gromov_wasserstein(cx, cy, epsilon=eps, return_plan=True)
    entropic = gromov_wasserstein(cx, cy, epsilon=eps, entropic=True)
    prod = torch.full((15, 1), 1 / 15, dtype=F64) * torch.full((1, 12), 1 / 12, dtype=F64)
    kl = (plan * (plan / prod).log()).sum() - plan.sum() + 1
    assert float(entropic) == pytest.approx(float(value + eps * kl), rel=1e-12)
    assert float(kl) > 0


def test_fixed_iteration_mode_makes_no_host_sync(monkeypatch):
    cx, cy = unit_costs(*spaces(12, 10, dx=3, dy=2, seed=43))
    expected = gromov_wasserstein(cx, cy, epsilon=0.05, tol=None, sinkhorn_tol=None, max_iter=7)

    def sync(*_args, **_kwargs):
        raise AssertionError("host synchronisation in fixed-iteration mode")

    for name in ("__bool__", "item", "tolist", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, sync)
    value = gromov_wasserstein(
        cx, cy, epsilon=0.05, symmetric=True, tol=None, sinkhorn_tol=None, max_iter=7
    )
    monkeypatch.undo()
    assert float(value) == float(expected)


@cuda
def test_cuda_matches_cpu_in_both_modes():
    cx, cy = unit_costs(*spaces(20, 15, dx=4, dy=2, seed=47))
    for kw in ({}, {"tol": None, "sinkhorn_tol": None, "max_iter": 30, "sinkhorn_max_iter": 10}):
        cpu = gromov_wasserstein(cx, cy, epsilon=2e-2, **kw)
        gpu = gromov_wasserstein(cx.cuda(), cy.cuda(), epsilon=2e-2, symmetric=True, **kw)
        assert float(gpu) == pytest.approx(float(cpu), rel=1e-4)


def test_max_iter_caps_the_outer_iterations():
    cx, cy = unit_costs(*spaces(20, 15, dx=4, dy=2, seed=44))
    one = gromov_wasserstein(cx, cy, epsilon=1e-2, tol=None, max_iter=1)
    many = gromov_wasserstein(cx, cy, epsilon=1e-2, tol=None, max_iter=300, sinkhorn_tol=1e-9)
    converged = gromov_wasserstein(cx, cy, epsilon=1e-2, **TIGHT)
    assert float(many) == pytest.approx(float(converged), rel=1e-5)
    assert abs(float(one) - float(converged)) > 1e-4 * float(converged)
    assert DEFAULT_TOL > 0


def test_initial_plan_tensor_is_used():
    cx, cy = unit_costs(*spaces(10, 10, dx=3, dy=3, seed=45))
    eye = torch.eye(10, dtype=F64) / 10
    kw = {"epsilon": 0.05, "tol": None, "max_iter": 1}
    assert float(gromov_wasserstein(cx, cy, init=eye, **kw)) == float(
        gromov_wasserstein(cx, cy, init="identity", **kw)
    )
    product = gromov_wasserstein(cx, cy, **kw)
    assert float(gromov_wasserstein(cx, cy, init=eye, **kw)) != float(product)


def test_half_precision_is_computed_in_float32():
    cx, cy = unit_costs(*spaces(12, 10, dx=3, dy=2, seed=46, dtype=torch.float32))
    value = gromov_wasserstein(cx.half(), cy.half(), epsilon=0.05)
    assert value.dtype == torch.float16
    assert float(value) == pytest.approx(float(gromov_wasserstein(cx, cy, epsilon=0.05)), rel=1e-2)


def test_empty_batch_returns_an_empty_result():
    cx, cy = torch.zeros(0, 5, 5), torch.zeros(0, 4, 4)
    assert gromov_wasserstein(cx, cy, epsilon=0.1).shape == (0,)
    value, plan = gromov_wasserstein(cx, cy, epsilon=0.1, return_plan=True)
    assert value.shape == (0,) and plan.shape == (0, 5, 4)


# -- gradients ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["square", "kl"])
def test_cost_gradients_match_finite_differences_of_the_entropic_value(loss):
    g = torch.Generator().manual_seed(50)
    cx = torch.rand(4, 4, generator=g, dtype=F64) + 0.1
    cy = torch.rand(3, 3, generator=g, dtype=F64) + 0.1
    a = torch.softmax(torch.randn(4, generator=g, dtype=F64), 0)

    def value(u, v):
        return gromov_wasserstein(
            u, v, a, epsilon=0.1, loss=loss, symmetric=False, entropic=True,
            tol=1e-11, sinkhorn_tol=1e-12,
        )

    assert torch.autograd.gradcheck(
        value, (cx.requires_grad_(True), cy.requires_grad_(True)), eps=1e-6, atol=1e-6, rtol=1e-4
    )


@pytest.mark.slow
def test_gradient_through_points_matches_finite_differences():
    x, y = spaces(5, 4, dx=3, dy=2, seed=51)

    def value(u, v):
        return gromov_wasserstein(
            u, v, epsilon=2.0, metric="euclidean", entropic=True, tol=1e-11, sinkhorn_tol=1e-12
        )

    assert torch.autograd.gradcheck(
        value, (x.requires_grad_(True), y.requires_grad_(True)), eps=1e-6, atol=1e-6, rtol=1e-4
    )


@pytest.mark.slow
def test_weight_gradients_are_directional_derivatives_of_the_entropic_value():
    cx, cy = unit_costs(*spaces(8, 7, dx=3, dy=2, seed=52))
    g = torch.Generator().manual_seed(53)
    a = torch.softmax(torch.randn(8, generator=g, dtype=F64), 0).requires_grad_(True)
    b = torch.softmax(torch.randn(7, generator=g, dtype=F64), 0).requires_grad_(True)
    kw = {"epsilon": 0.1, "entropic": True, "tol": 1e-12, "sinkhorn_tol": 1e-13}
    ga, gb = torch.autograd.grad(gromov_wasserstein(cx, cy, a, b, **kw), (a, b))
    assert float(ga.sum()) == pytest.approx(0.0, abs=1e-12)  # centred: the simplex's tangent
    da = torch.randn(8, generator=g, dtype=F64)
    db = torch.randn(7, generator=g, dtype=F64)
    da, db = da - da.mean(), db - db.mean()
    h = 1e-6
    with torch.no_grad():
        up = gromov_wasserstein(cx, cy, a + h * da, b + h * db, **kw)
        down = gromov_wasserstein(cx, cy, a - h * da, b - h * db, **kw)
    numeric = float(up - down) / (2 * h)
    assert float(ga @ da + gb @ db) == pytest.approx(numeric, rel=1e-4)


def test_square_loss_cost_gradient_is_the_envelope_formula():
    cx, cy = unit_costs(*spaces(9, 8, dx=3, dy=2, seed=54))
    cx.requires_grad_(True)
    cy.requires_grad_(True)
    value, plan = gromov_wasserstein(cx, cy, epsilon=0.05, return_plan=True)
    gx, gy = torch.autograd.grad(3 * value, (cx, cy))
    a, b = torch.full((9,), 1 / 9, dtype=F64), torch.full((8,), 1 / 8, dtype=F64)
    with torch.no_grad():
        ex = 2 * cx * torch.outer(a, a) - 2 * plan @ cy @ plan.T
        ey = 2 * cy * torch.outer(b, b) - 2 * plan.T @ cx @ plan
    torch.testing.assert_close(gx, 3 * ex)
    torch.testing.assert_close(gy, 3 * ey)


# -- validation and non-finite input -----------------------------------------------------


def test_non_finite_costs_propagate_in_fixed_mode_and_raise_with_a_tolerance():
    cx, cy = unit_costs(*spaces(8, 6, dx=3, dy=2, seed=60))
    cx = cx.clone()
    cx[2, 3] = cx[3, 2] = float("nan")
    fixed = gromov_wasserstein(cx, cy, epsilon=0.1, tol=None, sinkhorn_tol=None, max_iter=5)
    assert math.isnan(float(fixed))
    with pytest.raises(ValueError, match="non-finite"):
        gromov_wasserstein(cx, cy, epsilon=0.1, max_iter=5)


def test_invalid_inputs_raise_clear_errors():
    cx, cy = unit_costs(*spaces(8, 6, dx=3, dy=2, seed=61))
    with pytest.raises(ValueError, match=r"square matrix.*\(8, 6\)"):
        gromov_wasserstein(cx[:, :6], cy, epsilon=0.1)
    with pytest.raises(ValueError, match="both be single or both batched"):
        gromov_wasserstein(cx[None], cy, epsilon=0.1)
    with pytest.raises(ValueError, match="batch size"):
        gromov_wasserstein(cx.expand(2, 8, 8), cy.expand(3, 6, 6), epsilon=0.1)
    with pytest.raises(TypeError, match="dtype"):
        gromov_wasserstein(cx, cy.float(), epsilon=0.1)
    with pytest.raises(TypeError, match="floating"):
        gromov_wasserstein(cx.long(), cy.long(), epsilon=0.1)
    with pytest.raises(ValueError, match=r"a must have shape \(8,\)"):
        gromov_wasserstein(cx, cy, torch.full((6,), 1 / 6, dtype=F64), epsilon=0.1)
    with pytest.raises(ValueError, match="unknown loss"):
        gromov_wasserstein(cx, cy, epsilon=0.1, loss="l1")
    with pytest.raises(ValueError, match="unknown metric"):
        gromov_wasserstein(cx, cy, epsilon=0.1, metric="cosine")
    with pytest.raises(ValueError, match="unknown init"):
        gromov_wasserstein(cx, cy, epsilon=0.1, init="random")
    with pytest.raises(ValueError, match="N == M"):
        gromov_wasserstein(cx, cy, epsilon=0.1, init="identity")
    with pytest.raises(ValueError, match=r"init must be a plan of shape \(8, 6\)"):
        gromov_wasserstein(cx, cy, epsilon=0.1, init=torch.ones(6, 8, dtype=F64))
    with pytest.raises(ValueError, match="epsilon"):
        gromov_wasserstein(cx, cy, epsilon=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        gromov_wasserstein(cx, cy, epsilon=0.1, max_iter=0)
    with pytest.raises(ValueError, match="0 samples"):
        gromov_wasserstein(cx[:0, :0], cy, epsilon=0.1)
    with pytest.raises(ValueError, match="Cy must be positive"):
        gromov_wasserstein(cx, cy, epsilon=0.1, loss="kl")  # zero diagonal: KL(u | 0) = inf
    with pytest.raises(ValueError, match=r"point cloud.*\(8,\)"):
        gromov_wasserstein(torch.ones(8), torch.ones(6, 2), epsilon=0.1, metric="euclidean")


def test_public_api_exports_the_solver():
    assert otloss.gromov_wasserstein is gromov_wasserstein
    assert otloss.GromovWasserstein is GromovWasserstein


# -- otloss.metrics without POT --------------------------------------------------------


@pytest.fixture
def without_pot(monkeypatch):
    """Make ``import_optional("ot", ...)`` fail inside otloss.metrics.isometry."""
    from otloss.metrics import isometry

    def missing(module, purpose):
        raise ImportError(f"{purpose} needs the optional dependency 'pot'")

    monkeypatch.setattr(isometry, "import_optional", missing)
    return isometry


@pytest.mark.slow
def test_empirical_gw_uses_the_solver_without_pot(without_pot):
    rng = np.random.default_rng(17)
    x = rng.normal(size=(30, 4))
    z = x @ rotation(4, 1).numpy() + 3.0
    # Zero up to the entropic blur: a small fraction of the squared distances (about 8).
    assert 0 <= without_pot.empirical_gw(x, z, rho=2) < 1e-3 * 8
    assert 0 <= without_pot.empirical_gw(x, 2 * z, scale=0.5) < 1e-3 * 8
    # A generic pair: the square-loss objective of the documented entropic solve.
    x, z = rng.normal(size=(10, 6)), rng.normal(size=(8, 2))
    value = without_pot.empirical_gw(x, z, rho=2)
    dx, dz = torch.cdist(*(torch.from_numpy(x),) * 2), torch.cdist(*(torch.from_numpy(z),) * 2)
    scale = float(((dx**2).mean() + (dz**2).mean()) / 2)
    expected = gromov_wasserstein(
        dx, dz, epsilon=without_pot.FALLBACK_EPSILON * scale, epsilon_start=scale
    )
    assert value == pytest.approx(float(expected), rel=1e-4) and value > 0.1
    assert 0 < without_pot.empirical_gw(x, z) < float("inf")  # rho = 1 on the dense plan
