"""torch.compile(fullgraph=True) of the divergences, and higher-order gradients.

Each divergence is compiled once on the CPU (``aot_eager``, which traces the whole graph
and runs it without code generation; one test goes through inductor) and must give the
eager value and gradients. ``fullgraph=True`` makes any graph break an error.
"""

import pytest
import torch
from torch import nn

from otloss import MMD, GWEstimator, SlicedWasserstein, gromov_wasserstein, mmd
from otloss.critic import KantorovichCritic
from otloss.sinkhorn import SinkhornDivergence, sinkhorn_divergence


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _cloud(n, d, seed, shift=0.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=dtype) + shift).requires_grad_(True)


def _weights(n, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n, generator=g) + 0.1
    return (w / w.sum()).requires_grad_(True)


def _value_and_grads(fn, inputs):
    value = fn(*inputs)
    grads = torch.autograd.grad(value.sum(), [t for t in inputs if t.requires_grad])
    return value.detach(), grads


def _assert_compiled_matches(fn, inputs, *, backend="aot_eager", rtol=1e-5, atol=1e-6):
    want, want_grads = _value_and_grads(fn, inputs)
    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    got, got_grads = _value_and_grads(compiled, inputs)
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol)


@pytest.mark.slow
@pytest.mark.parametrize("module", [GWEstimator(), MMD()], ids=["gw", "mmd"])
def test_compiles_with_inductor(module):
    # Generated C++ code: tolerances allow for its different summation order.
    x, z = _cloud(48, 3, 0), _cloud(48, 3, 1, shift=0.5)
    _assert_compiled_matches(module, (x, z), backend="inductor", rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "module",
    [MMD(), MMD(kernel="rbf", estimator="biased"), MMD(bandwidth="median"), MMD(kernel="energy")],
    ids=["imq-unbiased", "rbf-biased", "median", "energy"],
)
def test_mmd_compiles_with_weights(module):
    x, y = _cloud(30, 2, 2), _cloud(25, 2, 3, shift=1.0)
    _assert_compiled_matches(module, (x, y, _weights(30, 4), _weights(25, 5)))


def test_mmd_linear_and_callable_kernel_compile():
    x, y = _cloud(32, 2, 6), _cloud(32, 2, 7, shift=0.3)
    _assert_compiled_matches(MMD(estimator="linear"), (x, y))
    _assert_compiled_matches(MMD(kernel=lambda d2, c: c / (c + d2)), (x, y))


def test_compiled_mmd_still_checks_weights():
    # Under compile the value check is queued in the graph instead of read on the host.
    x, y = _cloud(10, 2, 8), _cloud(10, 2, 9)
    bad = torch.full((10,), 0.1)
    bad[0], bad[1] = -0.1, 0.3
    compiled = torch.compile(MMD(), fullgraph=True, backend="aot_eager")
    with pytest.raises((RuntimeError, ValueError), match="x_weights must be non-negative"):
        compiled(x, y, bad, None)


def test_gw_estimator_compiles():
    x, z = _cloud(24, 5, 10), _cloud(24, 2, 11)
    _assert_compiled_matches(GWEstimator(), (x, z))
    _assert_compiled_matches(GWEstimator(rho=2.0, normalize_z=True, z_metric="sqeuclidean"), (x, z))


def test_sliced_wasserstein_compiles():
    x, y = _cloud(40, 3, 12), _cloud(30, 3, 13, shift=1.0)
    theta = torch.randn(3, 16, generator=torch.Generator().manual_seed(14))
    theta = theta / theta.norm(dim=0)
    sw = SlicedWasserstein(n_projections=16)

    def with_directions(x, y, a, b):
        return sw(x, y, a, b, projections=theta)

    _assert_compiled_matches(with_directions, (x, y, _weights(40, 15), _weights(30, 16)))


@pytest.mark.parametrize("backend", ["tensorized", "blocked"])
def test_sinkhorn_fixed_schedule_compiles(backend):
    # Equal sizes: the eager shortcut for x equal to y (a host read) must stay out.
    x, y = _cloud(24, 2, 17), _cloud(24, 2, 18, shift=0.5)
    loss = SinkhornDivergence(blur=0.1, diameter=8.0, tol=None, rtol=None, backend=backend)
    _assert_compiled_matches(loss, (x, y, _weights(24, 19), _weights(24, 20)), rtol=1e-4)


@pytest.mark.slow
def test_sinkhorn_recompiles_for_a_new_size_with_static_shapes():
    # Dynamic shapes are not supported by the Sinkhorn graph: dynamic=False specialises
    # it to each size, and every size gives the eager value.
    loss = SinkhornDivergence(blur=0.1, diameter=8.0, tol=None, rtol=None)
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager", dynamic=False)
    for n in (12, 16, 20):
        x, y = _cloud(n, 2, n), _cloud(n, 2, n + 1, shift=0.5)
        torch.testing.assert_close(compiled(x, y), loss(x, y), rtol=1e-4, atol=1e-6)


def test_sinkhorn_with_host_reads_breaks_the_graph():
    # Without `diameter` the schedule is read from the data: fullgraph must refuse it.
    x, y = _cloud(10, 2, 21), _cloud(10, 2, 22)
    compiled = torch.compile(
        SinkhornDivergence(tol=None, rtol=None), fullgraph=True, backend="aot_eager"
    )
    with pytest.raises(torch._dynamo.exc.Unsupported):
        compiled(x, y)


def _critic_net():
    torch.manual_seed(23)
    return nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


def test_critic_loss_compiles_without_gradient_penalty():
    critic = KantorovichCritic(_critic_net(), gp_weight=0.0, drift_weight=0.1)
    real, fake = _cloud(16, 3, 24), _cloud(16, 3, 25, shift=1.0)
    compiled = torch.compile(critic.critic_loss, fullgraph=True, backend="aot_eager")
    params = list(critic.parameters())
    critic.eval()  # spectral norm: no power iteration, both runs see the same weights
    want = critic.critic_loss(real, fake)
    want_grads = torch.autograd.grad(want, params)
    got = compiled(real, fake)
    got_grads = torch.autograd.grad(got, params)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)


def test_critic_loss_with_gradient_penalty_runs_eagerly_under_compile():
    # The penalty needs double backward through the critic, which compiled graphs do
    # not support (the critic gradients would silently miss it): the critic step leaves
    # the graph, so fullgraph refuses and a plain compile gives the eager gradients.
    critic = KantorovichCritic(_critic_net())
    critic.eval()
    real, fake = _cloud(16, 3, 26), _cloud(16, 3, 27, shift=1.0)
    with pytest.raises(torch._dynamo.exc.Unsupported, match="disable"):
        torch.compile(critic.critic_loss, fullgraph=True, backend="aot_eager")(real, fake)
    torch._dynamo.reset()
    params = list(critic.parameters())
    want = critic.critic_loss(real, fake, generator=torch.Generator().manual_seed(28))
    want_grads = torch.autograd.grad(want, params)
    compiled = torch.compile(critic.critic_loss, backend="aot_eager")
    got = compiled(real, fake, generator=torch.Generator().manual_seed(28))
    got_grads = torch.autograd.grad(got, params)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)


# --------------------------------------------------------------------------- double backward


@pytest.mark.parametrize(
    ("kernel", "estimator"),
    [("imq", "unbiased"), ("rbf", "biased"), ("laplacian", "unbiased"), ("energy", "biased")],
)
def test_mmd_gradgradcheck(kernel, estimator):
    x, y = _cloud(5, 2, 29, dtype=torch.float64), _cloud(4, 2, 30, 0.5, dtype=torch.float64)
    a = _weights(5, 31).detach().double().requires_grad_(True)
    b = _weights(4, 32).detach().double().requires_grad_(True)

    def f(x, y, a, b):
        return mmd(x, y, a, b, kernel=kernel, estimator=estimator, bandwidth=1.5)

    assert torch.autograd.gradcheck(f, (x, y, a, b))
    assert torch.autograd.gradgradcheck(f, (x, y, a, b))


def test_mmd_create_graph_gradient_equals_fused_gradient():
    x, y = _cloud(40, 3, 33, dtype=torch.float64), _cloud(30, 3, 34, 1.0, dtype=torch.float64)
    first = torch.autograd.grad(mmd(x, y), (x, y))
    graph = torch.autograd.grad(mmd(x, y), (x, y), create_graph=True)
    assert all(g.requires_grad for g in graph)
    for g, f in zip(graph, first, strict=True):
        torch.testing.assert_close(g, f, rtol=1e-10, atol=1e-12)
    # A penalty on the gradient (a second backward) reaches the points.
    (hx,) = torch.autograd.grad(graph[0].pow(2).sum(), x)
    assert hx.isfinite().all() and hx.abs().sum() > 0


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("sinkhorn_divergence", lambda x, y: sinkhorn_divergence(x, y, blur=0.5)),
        (
            "gromov_wasserstein",
            lambda x, y: gromov_wasserstein(x, y, epsilon=0.1, metric="sqeuclidean"),
        ),
    ],
)
def test_once_differentiable_solvers_refuse_create_graph(name, fn):
    x, y = _cloud(8, 2, 35), _cloud(6, 2, 36, 0.5)
    value = fn(x, y)
    with pytest.raises(RuntimeError, match=f"{name} is differentiable once only.*otloss"):
        torch.autograd.grad(value, (x, y), create_graph=True)
    # First-order gradients are unchanged.
    gx, gy = torch.autograd.grad(fn(x, y), (x, y))
    assert gx.isfinite().all() and gy.isfinite().all()


def test_gw_estimator_and_sliced_gradgradcheck():
    x, z = _cloud(6, 3, 37, dtype=torch.float64), _cloud(6, 2, 38, dtype=torch.float64)
    gw = GWEstimator(learn_scale=False).double()
    assert torch.autograd.gradgradcheck(gw, (x, z))
    theta = torch.randn(2, 4, generator=torch.Generator().manual_seed(39), dtype=torch.float64)
    y = _cloud(5, 2, 40, 0.5, dtype=torch.float64)

    def sw(z, y):
        return SlicedWasserstein(n_projections=4)(z, y, projections=theta)

    assert torch.autograd.gradgradcheck(sw, (z, y))
