"""MMD: outside references (GeomLoss), brute force, estimator properties, gradients."""

import importlib
import itertools
import math

import numpy as np
import pytest
import torch
from geomloss import SamplesLoss
from hypothesis import given
from hypothesis import strategies as st

from otloss import MMD, mmd
from otloss.ops import DEFAULT_SCALES, get_kernel
from tests.conftest import cuda

mmd_module = importlib.import_module("otloss.mmd")

KERNELS = ("imq", "rbf", "laplacian", "energy")
F64 = torch.float64


@pytest.fixture(params=[1 << 19, 24], ids=["one-block", "many-blocks"])
def block(request, monkeypatch):
    """Run the fused path with the default block and with tiny blocks (many strips)."""
    monkeypatch.setattr(mmd_module, "_CPU_BLOCK", request.param)
    return request.param


def clouds(n=9, m=7, d=3, batch=(), seed=0, shift=0.4, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n, d, generator=g, dtype=dtype)
    y = torch.randn(*batch, m, d, generator=g, dtype=dtype) + shift
    return x, y


def simplex(*shape, seed=1, dtype=F64):
    w = torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) + 0.1
    return w / w.sum(-1, keepdim=True)


def brute_kernel(kernel, u, v, c0, scales):
    d2 = float(((u - v) ** 2).sum())
    d = math.sqrt(d2)
    total = 0.0
    for s in scales:
        c = s * c0
        if kernel == "imq":
            total += c / (c + d2)
        elif kernel == "rbf":
            total += math.exp(-d2 / c)
        elif kernel == "laplacian":
            total += math.exp(-d / c)
        else:
            total += -d
    return total


def brute_mmd(x, y, kernel, c0, scales, estimator, a=None, b=None):
    """Double loops over samples, straight from the estimator's definition."""
    n, m = len(x), len(y)
    a = [1.0 / n] * n if a is None else a.tolist()
    b = [1.0 / m] * m if b is None else b.tolist()

    def within(z, w):
        total = 0.0
        for i, j in itertools.product(range(len(z)), repeat=2):
            if estimator == "unbiased" and i == j:
                continue
            total += w[i] * w[j] * brute_kernel(kernel, z[i], z[j], c0, scales)
        if estimator == "unbiased":
            total /= 1 - sum(wi * wi for wi in w)
        return total

    cross = sum(
        a[i] * b[j] * brute_kernel(kernel, x[i], y[j], c0, scales)
        for i in range(n)
        for j in range(m)
    )
    return within(x, a) + within(y, b) - 2 * cross


# ----------------------------------------------------------------- outside references


@pytest.mark.parametrize("blur", [0.3, 1.0, 2.5])
def test_biased_rbf_single_scale_is_twice_geomloss_gaussian(blur, block):
    x, y = clouds(40, 30, 3)
    ours = mmd(x, y, kernel="rbf", bandwidth=2 * blur**2, scales=(1.0,), estimator="biased")
    ref = 2 * SamplesLoss("gaussian", blur=blur, backend="tensorized")(x, y)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


def test_weighted_batched_biased_kernels_are_twice_geomloss(block):
    x, y = clouds(20, 15, 2, batch=(3,))
    a, b = simplex(3, 20, seed=2), simplex(3, 15, seed=3)
    # GeomLoss clamps squared distances at 1e-8, so its self-distances are 1e-4 (of x / blur
    # for the laplacian, of x for energy) instead of 0; the diagonal terms differ by k(0) -
    # k(1e-4) each, and the correction below is exact.
    diagonal = (a * a).sum(-1) + (b * b).sum(-1)
    cases = [("rbf", 2 * 0.8**2, "gaussian", 0.0), ("laplacian", 0.8, "laplacian",
             1 - math.exp(-1e-4)), ("energy", 1.0, "energy", 1e-4)]
    for kernel, c0, name, k0_gap in cases:
        ours = mmd(x, y, a, b, kernel=kernel, bandwidth=c0, scales=(1.0,), estimator="biased")
        ref = 2 * SamplesLoss(name, blur=0.8, backend="tensorized")(a, x, b, y)
        torch.testing.assert_close(ours, ref + k0_gap * diagonal, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------- brute force


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_matches_brute_force_double_loop(kernel, estimator, block):
    x, y = clouds(8, 6, 3)
    ours = mmd(x, y, kernel=kernel, bandwidth=1.3, scales=(0.5, 1.0, 4.0), estimator=estimator)
    ref = brute_mmd(x, y, kernel, 1.3, (0.5, 1.0, 4.0), estimator)
    assert ours.item() == pytest.approx(ref, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_weighted_matches_brute_force(kernel, estimator, block):
    x, y = clouds(7, 9, 2)
    a, b = simplex(7, seed=4), simplex(9, seed=5)
    ours = mmd(x, y, a, b, kernel=kernel, bandwidth=0.7, scales=(1.0, 3.0), estimator=estimator)
    ref = brute_mmd(x, y, kernel, 0.7, (1.0, 3.0), estimator, a, b)
    assert ours.item() == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_default_bandwidth_is_two_d_with_wae_scales():
    x, y = clouds(6, 5, 4)
    ref = brute_mmd(x, y, "imq", 2 * 4, DEFAULT_SCALES, "unbiased")
    assert mmd(x, y).item() == pytest.approx(ref, rel=1e-10)
    # Laplacian's constant is a distance: None means sqrt(2 D).
    ref = brute_mmd(x, y, "laplacian", math.sqrt(8), DEFAULT_SCALES, "unbiased")
    assert mmd(x, y, kernel="laplacian").item() == pytest.approx(ref, rel=1e-10)


def test_median_bandwidth_is_the_median_pooled_squared_distance():
    x, y = clouds(6, 5, 3)
    z = torch.cat([x, y]).numpy()
    iu = np.triu_indices(len(z), 1)
    med = float(np.median(((z[:, None] - z[None]) ** 2).sum(-1)[iu]))
    for estimator in ("unbiased", "biased"):
        ours = mmd(x, y, kernel="rbf", bandwidth="median", scales=(1.0, 2.0), estimator=estimator)
        ref = brute_mmd(x, y, "rbf", med, (1.0, 2.0), estimator)
        assert ours.item() == pytest.approx(ref, rel=1e-6)
    ours = mmd(x, y, kernel="laplacian", bandwidth="median", scales=(1.0,))
    assert ours.item() == pytest.approx(
        brute_mmd(x, y, "laplacian", math.sqrt(med), (1.0,), "unbiased"), rel=1e-6
    )


def test_median_bandwidth_survives_mostly_duplicated_points():
    x = torch.zeros(8, 2, dtype=F64)
    x[0] = 1.0
    value = mmd(x, x.clone(), kernel="imq", bandwidth="median")
    assert torch.isfinite(value)
    value = mmd(x, x.clone(), kernel="imq", bandwidth="median", estimator="biased")
    assert value.item() == pytest.approx(0)
    same = torch.ones(5, 2, dtype=F64)
    assert mmd(same, same.clone(), kernel="rbf", bandwidth="median", estimator="biased").item() == 0


def test_linear_estimator_matches_its_definition():
    x, y = clouds(9, 9, 3)  # odd: the last sample is dropped
    ours = mmd(x, y, kernel="imq", bandwidth=1.5, scales=(1.0, 2.0), estimator="linear")
    terms = []
    for i in range(4):
        x0, x1, y0, y1 = x[2 * i], x[2 * i + 1], y[2 * i], y[2 * i + 1]

        def k(u, v):
            return brute_kernel("imq", u, v, 1.5, (1.0, 2.0))

        terms.append(k(x0, x1) + k(y0, y1) - k(x0, y1) - k(x1, y0))
    assert ours.item() == pytest.approx(sum(terms) / 4, rel=1e-12)


def test_callable_kernel_uses_the_plain_path_and_matches_builtin():
    x, y = clouds(8, 6, 3)

    def my_imq(d2, c):
        return c / (c + d2)

    for estimator in ("unbiased", "biased", "linear"):
        yy = y if estimator != "linear" else clouds(8, 8, 3)[1]
        torch.testing.assert_close(
            mmd(x, yy, kernel=my_imq, bandwidth=2.0, estimator=estimator),
            mmd(x, yy, kernel="imq", bandwidth=2.0, estimator=estimator),
        )


# ----------------------------------------------------------------- estimator properties


@pytest.mark.parametrize("estimator", ["unbiased", "linear"])
def test_unbiased_estimators_have_zero_mean_under_equal_distributions(estimator):
    # 600 independent draws of two N(0, I) samples of size 8, in one batched call.
    x, y = clouds(8, 8, 2, batch=(600,), shift=0.0, seed=3)
    values = mmd(x, y, estimator=estimator)
    mean, sem = values.mean().item(), values.std().item() / math.sqrt(len(values))
    assert abs(mean) < 4 * sem
    biased = mmd(x, y, estimator="biased")
    assert biased.mean().item() > 20 * biased.std().item() / math.sqrt(len(values))


def test_batched_equals_per_item(block):
    x, y = clouds(10, 7, 3, batch=(4,))
    a, b = simplex(4, 10, seed=6), simplex(4, 7, seed=7)
    for kernel, bandwidth, estimator in itertools.product(
        KERNELS, (None, 0.9, "median"), ("unbiased", "biased")
    ):
        batched = mmd(x, y, a, b, kernel=kernel, bandwidth=bandwidth, estimator=estimator)
        assert batched.shape == (4,)
        for i in range(4):
            single = mmd(x[i], y[i], kernel=kernel, bandwidth=bandwidth, estimator=estimator,
                         x_weights=a[i], y_weights=b[i])
            torch.testing.assert_close(batched[i], single)
    xl, yl = clouds(10, 10, 3, batch=(4,))
    batched = mmd(xl, yl, estimator="linear", bandwidth="median")
    torch.testing.assert_close(
        batched, torch.stack([mmd(xl[i], yl[i], estimator="linear", bandwidth="median")
                              for i in range(4)])
    )


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_uniform_weights_equal_unweighted(estimator, kernel, block):
    x, y = clouds(9, 6, 3)
    weighted = mmd(x, y, torch.full((9,), 1 / 9, dtype=F64), kernel=kernel, estimator=estimator,
                   y_weights=torch.full((6,), 1 / 6, dtype=F64))
    torch.testing.assert_close(weighted, mmd(x, y, kernel=kernel, estimator=estimator))


def test_zero_weights_act_as_padding_in_the_biased_estimator():
    x, y = clouds(9, 6, 3)
    a = simplex(9, seed=8)
    a[6:] = 0
    a = a / a.sum()
    padded = mmd(x, y, estimator="biased", x_weights=a)
    trimmed = mmd(x[:6], y, estimator="biased", x_weights=a[:6] / a[:6].sum())
    torch.testing.assert_close(padded, trimmed)


def test_unbiased_weighted_with_one_point_carrying_all_weight_raises():
    # No pair i != j carries weight: the weighted U-statistic is undefined (0 / 0).
    x, y = clouds(5, 4, 2)
    a = torch.zeros(5, dtype=F64)
    a[2] = 1.0
    with pytest.raises(ValueError, match="x_weights puts all its weight on one sample"):
        mmd(x, y, a)
    with pytest.raises(ValueError, match="y_weights puts all its weight on one sample"):
        mmd(x, x[:4], None, a[:4] * 0 + torch.tensor([0, 1.0, 0, 0], dtype=F64))
    assert torch.isfinite(mmd(x, y, a, estimator="biased"))  # the V-statistic is defined


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("kernel", KERNELS)
def test_unbiased_near_one_hot_weights_have_the_exact_finite_gradient(kernel, dtype):
    # Weights (1 - eps, eps / 4, ...): the estimate is a weighted mean over the pairs of the
    # heavy sample with the light ones, so its weight gradient is genuinely of order
    # 1 / eps; it must be that gradient (autograd through the plain formula in float64),
    # not the 1 / machine-eps of a clamped normaliser.
    x, y = clouds(5, 4, 2)
    eps = 1e-3
    a = torch.full((5,), eps / 4, dtype=F64)
    a[2] = 1 - eps

    value = get_kernel(kernel).value  # the same kernel as a plain callable: autograd path
    ax = a.to(dtype).requires_grad_()
    fused = mmd(x.to(dtype), y.to(dtype), ax, kernel=kernel, bandwidth=2.0)
    (g,) = torch.autograd.grad(fused, ax)
    a64 = a.clone().requires_grad_()
    (ref,) = torch.autograd.grad(mmd(x, y, a64, kernel=lambda d2, c: value(d2, c),
                                     bandwidth=2.0), a64)
    assert torch.isfinite(g).all()
    assert ref.abs().max() > 10  # the gradient is large here, and must match
    torch.testing.assert_close(g.double(), ref, rtol=2e-3 if dtype == torch.float32 else 1e-7,
                               atol=1e-3 if dtype == torch.float32 else 1e-9)


def test_thread_count_does_not_change_the_result_and_is_left_alone(monkeypatch):
    monkeypatch.setattr(mmd_module, "_CPU_BLOCK", 40)
    x, y = clouds(23, 17, 3, batch=(2,))
    a = simplex(2, 23, seed=13).requires_grad_()
    x.requires_grad_()
    before = torch.get_num_threads()
    results = []
    for threads in (1, 3):
        torch.set_num_threads(threads)
        try:
            value = mmd(x, y, x_weights=a)
            results.append((value, *torch.autograd.grad(value.sum(), (x, a))))
            assert torch.get_num_threads() == threads
        finally:
            torch.set_num_threads(before)
    for one, three in zip(*results, strict=True):
        torch.testing.assert_close(one, three)


def test_no_grad_value_equals_grad_value():
    x, y = clouds(12, 10, 3)
    x.requires_grad_()
    with_grad = mmd(x, y)
    with torch.no_grad():
        without = mmd(x, y)
    torch.testing.assert_close(with_grad.detach(), without)


def test_module_matches_function_and_repr():
    x, y = clouds(8, 6, 3)
    module = MMD(kernel="rbf", bandwidth=1.5, scales=(1.0, 2.0), estimator="biased")
    torch.testing.assert_close(
        module(x, y),
        mmd(x, y, kernel="rbf", bandwidth=1.5, scales=(1.0, 2.0), estimator="biased"),
    )
    assert "rbf" in repr(module) and "biased" in repr(module)
    assert list(module.parameters()) == []


def test_half_precision_is_computed_in_float32():
    x, y = clouds(16, 12, 3, dtype=torch.float32)
    value = mmd(x.half(), y.half())
    assert value.dtype == torch.float16
    torch.testing.assert_close(value.float(), mmd(x.half().float(), y.half().float()),
                               rtol=1e-3, atol=1e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = mmd(x, y)
    assert value.dtype == torch.float32


def test_float32_agrees_with_float64_on_larger_clouds():
    x, y = clouds(300, 200, 16, shift=0.2)
    v64 = mmd(x, y)
    v32 = mmd(x.float(), y.float())
    assert abs(v32.item() - v64.item()) < 1e-5


def test_mmd_starts_no_thread_and_changes_no_global_setting(monkeypatch):
    import threading

    def forbidden(*args, **kwargs):
        raise AssertionError("a loss must not change torch's thread count or start threads")

    monkeypatch.setattr(mmd_module, "_CPU_BLOCK", 40)  # many strips
    monkeypatch.setattr(torch, "set_num_threads", forbidden)
    monkeypatch.setattr(threading.Thread, "start", forbidden)
    x, y = clouds(23, 17, 3, batch=(2,))
    x.requires_grad_()
    value = mmd(x, y, simplex(2, 23, seed=13))
    value.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_empty_batch_gives_an_empty_result_for_every_kernel_and_estimator():
    x, y = clouds(6, 6, 2, batch=(0,))
    for kernel, estimator in itertools.product(KERNELS, ("unbiased", "biased", "linear")):
        value = mmd(x, y, kernel=kernel, estimator=estimator)
        assert value.shape == (0,) and value.dtype == x.dtype


# ----------------------------------------------------------------- gradients


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_gradcheck_points_and_weights(kernel, estimator, block):
    x, y = clouds(5, 4, 2)
    x.requires_grad_()
    y.requires_grad_()
    a, b = simplex(5, seed=9).requires_grad_(), simplex(4, seed=10).requires_grad_()

    def f(x, y, a, b):
        return mmd(x, y, a, b, kernel=kernel, bandwidth=0.8, scales=(1.0, 3.0), estimator=estimator)

    assert torch.autograd.gradcheck(f, (x, y, a, b))
    assert torch.autograd.gradcheck(
        lambda x, y: mmd(x, y, kernel=kernel, estimator=estimator), (x, y)
    )


def test_gradcheck_batched_median_linear_and_one_sided():
    x, y = clouds(6, 6, 2, batch=(2,))
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: mmd(x, y, bandwidth=1.7).sum(), (x,))
    # The median bandwidth is a detached hyper-parameter: the gradient is the one at the
    # fixed value it takes (item 0's median is used for both items of this check).
    med = mmd_module.median_sqdist(x[0], y[0]).item()
    (g_median,) = torch.autograd.grad(mmd(x[0], y[0], bandwidth="median"), x)
    (g_fixed,) = torch.autograd.grad(mmd(x[0], y[0], bandwidth=med), x)
    torch.testing.assert_close(g_median, g_fixed)
    y.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, y: mmd(x, y, kernel="laplacian", bandwidth=1.0, estimator="linear"), (x, y)
    )
    b = simplex(2, 6, seed=11).requires_grad_()
    assert torch.autograd.gradcheck(lambda b: mmd(x.detach(), y.detach(), y_weights=b), (b,))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
def test_coincident_and_duplicated_points_give_finite_gradients(kernel, estimator):
    x, _ = clouds(6, 6, 3)
    x = torch.cat([x[:3], x[:3]])  # every point duplicated
    y = x.clone().requires_grad_()  # and coinciding with the other cloud
    x = x.clone().requires_grad_()
    for dtype in (F64, torch.float32):
        xx, yy = x.detach().to(dtype).requires_grad_(), y.detach().to(dtype).requires_grad_()
        value = mmd(xx, yy, kernel=kernel, estimator=estimator)
        value.backward()
        assert torch.isfinite(value)
        assert torch.isfinite(xx.grad).all() and torch.isfinite(yy.grad).all()


def test_gradient_of_unbiased_mmd_matches_autograd_of_brute_force():
    x, y = clouds(6, 5, 2)
    x.requires_grad_()
    (gx,) = torch.autograd.grad(mmd(x, y, kernel="imq", bandwidth=1.0, scales=(1.0, 2.0)), x)
    # Autograd through explicit kernel matrices (no fused pass).
    d2xx = ((x[:, None] - x[None]) ** 2).sum(-1)
    d2xy = ((x[:, None] - y[None]) ** 2).sum(-1)
    kxx = sum(s / (s + d2xx) for s in (1.0, 2.0))
    kxy = sum(s / (s + d2xy) for s in (1.0, 2.0))
    ref = (kxx.sum() - kxx.diagonal().sum()) / 30 - 2 * kxy.mean()
    (gref,) = torch.autograd.grad(ref, x)
    torch.testing.assert_close(gx, gref)


# ----------------------------------------------------------------- hypothesis properties

sizes = st.integers(min_value=2, max_value=7)


@pytest.mark.slow
@given(n=sizes, m=sizes, d=st.integers(1, 4), seed=st.integers(0, 10_000),
       kernel=st.sampled_from(KERNELS))
def test_properties_symmetry_nonnegativity_zero_translation(n, m, d, seed, kernel):
    x, y = clouds(n, m, d, seed=seed)
    for estimator in ("unbiased", "biased"):
        xy = mmd(x, y, kernel=kernel, estimator=estimator)
        torch.testing.assert_close(xy, mmd(y, x, kernel=kernel, estimator=estimator))
        shift = torch.randn(d, dtype=F64, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(
            mmd(x + shift, y + shift, kernel=kernel, estimator=estimator), xy, rtol=1e-7, atol=1e-9
        )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(mmd(x[perm], y, kernel=kernel, estimator=estimator), xy)
    # The V-statistic is a squared kernel norm: >= 0, and 0 when the clouds are equal.
    assert mmd(x, y, kernel=kernel, estimator="biased").item() >= -1e-12
    assert abs(mmd(x, x.clone(), kernel=kernel, estimator="biased").item()) < 1e-12


@given(n=sizes, seed=st.integers(0, 10_000))
def test_property_rotation_invariance(n, seed):
    x, y = clouds(n, n + 1, 3, seed=seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=F64,
                                       generator=torch.Generator().manual_seed(seed)))
    torch.testing.assert_close(mmd(x @ q, y @ q), mmd(x, y))


# ----------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": torch.randn(5, 3), "y": torch.randn(5, 2)}, ValueError, "feature size"),
        ({"x": torch.randn(2, 5, 3), "y": torch.randn(3, 5, 3)}, ValueError, "batch size"),
        ({"x": torch.randn(5, 3), "y": torch.randn(2, 5, 3)}, ValueError, "both"),
        ({"x": torch.randn(5, 3), "y": torch.randn(5, 3, dtype=F64)}, TypeError, "dtype"),
        ({"x": torch.ones(5, 3, dtype=torch.long), "y": torch.randn(5, 3)}, TypeError, "float"),
        ({"x": torch.randn(5), "y": torch.randn(5)}, ValueError, r"\(N, D\)"),
        ({"x": torch.randn(1, 3), "y": torch.randn(5, 3)}, ValueError, "at least 2"),
        ({"x": torch.randn(5, 3), "y": torch.randn(1, 3)}, ValueError, "at least 2"),
        ({"estimator": "linear", "y": torch.randn(6, 3)}, ValueError, "N == M"),
        ({"estimator": "linear", "x_weights": torch.full((5,), 0.2)}, ValueError, "weights"),
        ({"estimator": "quadratic"}, ValueError, "estimator"),
        ({"kernel": "cauchy"}, ValueError, "kernel"),
        ({"bandwidth": -1.0}, ValueError, "positive"),
        ({"bandwidth": "mean"}, ValueError, "bandwidth"),
        ({"scales": ()}, ValueError, "scales"),
        ({"scales": 1.0}, ValueError, "scales"),
        ({"scales": (1.0, 0.0)}, ValueError, "positive"),
        ({"x_weights": torch.full((4,), 0.25)}, ValueError, r"\(5,\)"),
        ({"x_weights": torch.tensor([0.5, 0.5, 0.5, -0.5, 0.0])}, ValueError, "non-negative"),
        ({"x_weights": torch.full((5,), 0.3)}, ValueError, "sum to 1"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, error, match):
    args = {"x": torch.randn(5, 3), "y": torch.randn(5, 3)} | kwargs
    with pytest.raises(error, match=match):
        mmd(**args)


def test_module_validates_configuration_at_construction():
    with pytest.raises(ValueError, match="kernel"):
        MMD(kernel="polynomial")
    with pytest.raises(ValueError, match="estimator"):
        MMD(estimator="mc")
    with pytest.raises(TypeError, match="number"):
        MMD(bandwidth=[1.0])


@cuda
def test_cuda_matches_cpu():
    x, y = clouds(64, 48, 5, batch=(2,), dtype=torch.float32)
    a = simplex(2, 64, seed=12, dtype=torch.float32)
    xc, yc, ac = (t.cuda().requires_grad_() for t in (x, y, a))
    value = mmd(xc, yc, x_weights=ac)
    value.sum().backward()
    xr, yr, ar = (t.clone().requires_grad_() for t in (x, y, a))
    ref = mmd(xr, yr, x_weights=ar)
    ref.sum().backward()
    torch.testing.assert_close(value.cpu(), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(xc.grad.cpu(), xr.grad, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(ac.grad.cpu(), ar.grad, rtol=1e-3, atol=1e-5)
