"""Sliced Wasserstein: POT cross-checks, quantile transport, gradients, properties."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from otloss import SlicedWasserstein, sliced_wasserstein
from tests.conftest import cuda

ot = pytest.importorskip("ot")

F64 = torch.float64


def clouds(n=12, m=12, d=3, batch=(), seed=0, shift=0.5, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n, d, generator=g, dtype=dtype)
    y = torch.randn(*batch, m, d, generator=g, dtype=dtype) * 1.3 + shift
    return x, y


def directions(d=3, p=16, seed=1, dtype=F64):
    theta = torch.randn(d, p, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return theta / theta.norm(dim=0, keepdim=True)


def simplex(*shape, seed=2, dtype=F64):
    w = torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) + 0.05
    return w / w.sum(-1, keepdim=True)


# ----------------------------------------------------------------- POT cross-checks


@pytest.mark.parametrize("p", [1, 2, 1.5, 3])
@pytest.mark.parametrize(
    ("n", "m", "weighted"), [(20, 20, False), (20, 13, False), (17, 11, True), (15, 15, True)]
)
def test_equals_pot_sliced_wasserstein_to_the_p(p, n, m, weighted):
    x, y = clouds(n, m, 4)
    theta = directions(4, 25)
    a, b = (simplex(n, seed=3), simplex(m, seed=4)) if weighted else (None, None)
    ours = sliced_wasserstein(x, y, p=p, x_weights=a, y_weights=b, projections=theta)
    ref = ot.sliced_wasserstein_distance(x, y, a, b, projections=theta, p=p) ** p
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12, abs=1e-14)


def test_module_equals_pot_and_function():
    x, y = clouds(30, 22, 5)
    theta = directions(5, 40)
    sw = SlicedWasserstein(n_projections=40, p=2)
    ref = ot.sliced_wasserstein_distance(x, y, projections=theta, p=2) ** 2
    assert sw(x, y, projections=theta).item() == pytest.approx(ref.item(), rel=1e-12)
    torch.testing.assert_close(sw(x, y, projections=theta),
                               sliced_wasserstein(x, y, projections=theta))
    assert "n_projections=40" in repr(sw)
    assert list(sw.parameters()) == []


def test_sorting_and_quantile_paths_agree_on_uniform_equal_sizes():
    x, y = clouds(14, 14, 3)
    theta = directions()
    uniform = torch.full((14,), 1 / 14, dtype=F64)
    for p in (1, 2, 2.5):
        torch.testing.assert_close(
            sliced_wasserstein(x, y, p=p, projections=theta),
            sliced_wasserstein(x, y, p=p, projections=theta, x_weights=uniform,
                               y_weights=uniform),
        )


def test_one_dimensional_value_is_the_sorted_matching_cost():
    x, y = clouds(9, 9, 1)
    one = torch.ones(1, 1, dtype=F64)
    ref = (x[:, 0].sort().values - y[:, 0].sort().values).pow(2).mean()
    torch.testing.assert_close(sliced_wasserstein(x, y, projections=one), ref)


def test_zero_weights_act_as_padding():
    x, y = clouds(10, 8, 3)
    theta = directions()
    a = simplex(10, seed=5)
    a[7:] = 0
    a = a / a.sum()
    padded = sliced_wasserstein(x, y, x_weights=a, projections=theta)
    trimmed = sliced_wasserstein(x[:7], y, x_weights=a[:7] / a[:7].sum(), projections=theta)
    torch.testing.assert_close(padded, trimmed)


# ----------------------------------------------------------------- batching, randomness


def test_batched_equals_per_item_with_shared_and_per_item_projections():
    x, y = clouds(11, 8, 3, batch=(4,))
    a, b = simplex(4, 11, seed=6), simplex(4, 8, seed=7)
    shared = directions(3, 10)
    per_item = torch.stack([directions(3, 10, seed=s) for s in range(4)])
    for theta, pick in ((shared, lambda i: shared), (per_item, lambda i: per_item[i])):
        for kw, kwi in (({}, lambda i: {}),
                        ({"x_weights": a, "y_weights": b},
                         lambda i: {"x_weights": a[i], "y_weights": b[i]})):
            batched = sliced_wasserstein(x, y, projections=theta, **kw)
            assert batched.shape == (4,)
            for i in range(4):
                torch.testing.assert_close(
                    batched[i], sliced_wasserstein(x[i], y[i], projections=pick(i), **kwi(i))
                )


def test_seeded_generator_is_reproducible_and_draws_unit_gaussian_directions():
    x, y = clouds(10, 10, 4)
    v1 = sliced_wasserstein(x, y, n_projections=32, generator=torch.Generator().manual_seed(5))
    v2 = sliced_wasserstein(x, y, n_projections=32, generator=torch.Generator().manual_seed(5))
    v3 = sliced_wasserstein(x, y, n_projections=32, generator=torch.Generator().manual_seed(6))
    assert v1.item() == v2.item() != v3.item()
    theta = torch.randn(4, 32, generator=torch.Generator().manual_seed(5), dtype=F64)
    expected = sliced_wasserstein(x, y, projections=theta / theta.norm(dim=0))
    torch.testing.assert_close(v1, expected)


def test_random_directions_estimate_the_sliced_distance_of_a_translation():
    # SW_2^2(x + t, x) = E_theta <theta, t>^2 = |t|^2 / D for uniform directions.
    x, _ = clouds(50, 50, 3)
    t = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    gen = torch.Generator().manual_seed(0)
    value = sliced_wasserstein(x + t, x, n_projections=4000, generator=gen)
    assert value.item() == pytest.approx(t.pow(2).sum().item() / 3, rel=0.05)


# ----------------------------------------------------------------- gradients


@pytest.mark.parametrize("p", [1, 2, 1.5])
def test_gradcheck_points_sorted_path(p):
    x, y = clouds(6, 6, 2)
    theta = directions(2, 5)
    x.requires_grad_()
    y.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, y: sliced_wasserstein(x, y, p=p, projections=theta), (x, y)
    )


@pytest.mark.parametrize("p", [1, 2])
def test_gradcheck_points_and_weights_quantile_path(p):
    x, y = clouds(5, 4, 2)
    theta = directions(2, 4)
    x.requires_grad_()
    y.requires_grad_()
    # The value depends on the weights only on the simplex (off it the total masses differ
    # and the last breakpoint is a max), so perturb them through softmax logits.
    la = simplex(5, seed=8).log().requires_grad_()
    lb = simplex(4, seed=9).log().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, y, la, lb: sliced_wasserstein(x, y, p=p, x_weights=la.softmax(-1),
                                                y_weights=lb.softmax(-1), projections=theta),
        (x, y, la, lb),
    )


def test_gradient_of_translation_is_exact():
    # For p = 2 and y = x - t: SW = t^T (P P^T / n) t, gradient wrt x is 2 (P P^T / n) t / N.
    x, _ = clouds(8, 8, 3)
    t = torch.tensor([0.3, -0.2, 0.7], dtype=F64)
    theta = directions(3, 7)
    x.requires_grad_()
    value = sliced_wasserstein(x, x.detach() - t, projections=theta)
    m = theta @ theta.T / 7
    torch.testing.assert_close(value, t @ m @ t)
    (g,) = torch.autograd.grad(value, x)
    torch.testing.assert_close(g, (2 * m @ t / 8).expand(8, 3))


def test_duplicated_and_coincident_points_give_finite_gradients():
    x, _ = clouds(4, 4, 2)
    x = torch.cat([x, x]).requires_grad_()
    for p in (1, 1.5, 2):
        for y in (x.detach().clone(), x.detach()[:5].clone()):
            gen = torch.Generator().manual_seed(0)
            value = sliced_wasserstein(x, y, n_projections=8, p=p, generator=gen)
            (g,) = torch.autograd.grad(value, x)
            assert torch.isfinite(value) and torch.isfinite(g).all()


def test_half_precision_and_autocast():
    x, y = clouds(20, 15, 3, dtype=torch.float32)
    theta = directions(3, 8, dtype=torch.float32)
    value = sliced_wasserstein(x.half(), y.half(), projections=theta.half())
    assert value.dtype == torch.float16
    ref = sliced_wasserstein(x.half().float(), y.half().float(), projections=theta.half().float())
    torch.testing.assert_close(value.float(), ref, rtol=2e-3, atol=1e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert sliced_wasserstein(x, y, projections=theta).dtype == torch.float32


# ----------------------------------------------------------------- properties


@given(n=st.integers(1, 9), m=st.integers(1, 9), d=st.integers(1, 4),
       seed=st.integers(0, 10_000), p=st.sampled_from([1.0, 1.5, 2.0, 3.0]))
def test_properties(n, m, d, seed, p):
    x, y = clouds(n, m, d, seed=seed)
    theta = directions(d, 6, seed=seed)
    xy = sliced_wasserstein(x, y, p=p, projections=theta)
    assert xy.item() >= 0
    torch.testing.assert_close(xy, sliced_wasserstein(y, x, p=p, projections=theta))
    assert sliced_wasserstein(x, x.clone(), p=p, projections=theta).item() == 0
    # A common translation changes nothing; permuting samples changes nothing.
    shift = torch.randn(d, dtype=F64, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(
        sliced_wasserstein(x + shift, y + shift, p=p, projections=theta), xy,
        rtol=1e-9, atol=1e-9,
    )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(sliced_wasserstein(x[perm], y, p=p, projections=theta), xy)


@given(seed=st.integers(0, 10_000), p=st.sampled_from([1.0, 2.0]))
def test_property_directions_enter_up_to_sign(seed, p):
    x, y = clouds(7, 5, 3, seed=seed)
    theta = directions(3, 6, seed=seed)
    torch.testing.assert_close(sliced_wasserstein(x, y, p=p, projections=theta),
                               sliced_wasserstein(x, y, p=p, projections=-theta))


# ----------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y": torch.randn(6, 2)}, ValueError, "feature size"),
        ({"x": torch.randn(2, 5, 3), "y": torch.randn(3, 6, 3)}, ValueError, "batch size"),
        ({"y": torch.randn(6, 3, dtype=F64)}, TypeError, "dtype"),
        ({"x": torch.ones(5, 3, dtype=torch.int32)}, TypeError, "floating"),
        ({"x_weights": torch.tensor([0.5, 0.6, -0.1, 0.0, 0.0])}, ValueError, "non-negative"),
        ({"y_weights": torch.full((6,), 0.5)}, ValueError, "sum to 1"),
        ({"y_weights": torch.full((5,), 0.2)}, ValueError, r"\(6,\)"),
        ({"p": 0.5}, ValueError, "p must be"),
        ({"p": "two"}, ValueError, "p must be"),
        ({"p": float("inf")}, ValueError, "p must be"),
        ({"n_projections": 0}, ValueError, "n_projections"),
        ({"n_projections": 2.5}, TypeError, "n_projections"),
        ({"projections": torch.randn(4, 8)}, ValueError, r"\(3, P\)"),
        ({"projections": torch.randn(3, 0)}, ValueError, "projections"),
        ({"projections": torch.randn(2, 3, 8)}, ValueError, "projections"),
        ({"projections": torch.randn(3, 8, dtype=F64)}, TypeError, "dtype"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, error, match):
    args = {"x": torch.randn(5, 3), "y": torch.randn(6, 3)} | kwargs
    with pytest.raises(error, match=match):
        sliced_wasserstein(**args)


def test_module_validates_configuration():
    with pytest.raises(ValueError, match="p must be"):
        SlicedWasserstein(p=0)
    with pytest.raises(ValueError, match="n_projections"):
        SlicedWasserstein(n_projections=-3)


@cuda
def test_cuda_matches_cpu():
    x, y = clouds(40, 30, 3, batch=(2,), dtype=torch.float32)
    a = simplex(2, 40, seed=10, dtype=torch.float32)
    theta = directions(3, 16, dtype=torch.float32)
    xc = x.cuda().requires_grad_()
    value = sliced_wasserstein(xc, y.cuda(), x_weights=a.cuda(), projections=theta.cuda())
    value.sum().backward()
    xr = x.clone().requires_grad_()
    ref = sliced_wasserstein(xr, y, x_weights=a, projections=theta)
    ref.sum().backward()
    torch.testing.assert_close(value.cpu(), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(xc.grad.cpu(), xr.grad, rtol=1e-4, atol=1e-5)
    gen = torch.Generator(device="cuda").manual_seed(0)
    assert torch.isfinite(sliced_wasserstein(xc, y.cuda(), generator=gen)).all()
