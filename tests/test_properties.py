"""Properties every divergence shares, by hypothesis: weights, padding, batching, order.

- **Weighted divergences** (``WEIGHTED``: MMD for each kernel and estimator that takes
  weights, sliced, Sinkhorn): zero-weight padding equals removing the points, uniform
  weights equal no weights, a batch equals its items, and permuting a cloud together
  with its weights changes nothing.
- **Paired and code-based divergences** (``PAIRED``: GW, total correlation, the
  density-ratio TC, a critic's estimate): a batch equals its items (where batched), and
  permuting the samples (jointly, for paired inputs) changes nothing.

Adding a divergence to one of the lists subjects it to every property here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from otloss import (
    DensityRatioTC,
    GWEstimator,
    KantorovichCritic,
    gw_loss,
    mmd,
    sinkhorn_divergence,
    sliced_wasserstein,
    total_correlation,
)
from otloss.nn import MLP
from otloss.ops import pairwise_distances

F64 = torch.float64
D = 2
_THETA = torch.nn.functional.normalize(
    torch.randn(D, 16, generator=torch.Generator().manual_seed(0), dtype=F64), dim=0
)


@dataclass(frozen=True)
class Weighted:
    name: str
    fn: Callable[..., torch.Tensor]  # fn(x, y, x_weights, y_weights)
    rtol: float = 1e-9
    atol: float = 1e-10

    def __str__(self) -> str:
        return self.name


WEIGHTED = [
    *[
        Weighted(f"mmd-{kernel}-{estimator}",
                 lambda x, y, a, b, k=kernel, e=estimator: mmd(x, y, a, b, kernel=k, estimator=e,
                                                              bandwidth=1.5))
        for kernel in ("imq", "rbf", "laplacian", "energy")
        for estimator in ("unbiased", "biased")
    ],
    Weighted("sliced_wasserstein",
             lambda x, y, a, b: sliced_wasserstein(x, y, a, b, projections=_THETA)),
    Weighted("sinkhorn_divergence",
             lambda x, y, a, b: sinkhorn_divergence(x, y, a, b, blur=0.5, tol=None),
             rtol=1e-6, atol=1e-8),
]

sizes = st.integers(min_value=2, max_value=6)
seeds = st.integers(0, 10_000)
quick = settings(max_examples=10)


def _cloud(n, seed, batch=()):
    return torch.randn(*batch, n, D, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _simplex(n, seed, batch=()):
    w = torch.rand(*batch, n, generator=torch.Generator().manual_seed(seed), dtype=F64) + 0.2
    return w / w.sum(-1, keepdim=True)


def _close(div, a, b):
    torch.testing.assert_close(a, b, rtol=div.rtol, atol=div.atol)


@pytest.mark.parametrize("div", WEIGHTED, ids=str)
@quick
@given(n=sizes, m=sizes, pad=st.integers(1, 3), seed=seeds)
def test_zero_weight_padding_equals_removing_the_points(div, n, m, pad, seed):
    x, y = _cloud(n + pad, seed), _cloud(m, seed + 1) + 0.5
    a, b = _simplex(n, seed + 2), _simplex(m, seed + 3)
    padded = torch.cat([a, torch.zeros(pad, dtype=F64)])
    _close(div, div.fn(x, y, padded, b), div.fn(x[:n], y, a, b))


@pytest.mark.parametrize("div", WEIGHTED, ids=str)
@quick
@given(n=sizes, m=sizes, seed=seeds)
def test_uniform_weights_equal_no_weights(div, n, m, seed):
    x, y = _cloud(n, seed), _cloud(m, seed + 1) + 0.5
    a, b = torch.full((n,), 1 / n, dtype=F64), torch.full((m,), 1 / m, dtype=F64)
    _close(div, div.fn(x, y, a, b), div.fn(x, y, None, None))


@pytest.mark.parametrize("div", WEIGHTED, ids=str)
@quick
@given(n=sizes, m=sizes, batch=st.integers(1, 3), seed=seeds)
def test_a_weighted_batch_equals_its_items(div, n, m, batch, seed):
    x, y = _cloud(n, seed, (batch,)), _cloud(m, seed + 1, (batch,)) + 0.5
    a, b = _simplex(n, seed + 2, (batch,)), _simplex(m, seed + 3, (batch,))
    batched = div.fn(x, y, a, b)
    assert batched.shape == (batch,)
    for i in range(batch):
        _close(div, batched[i], div.fn(x[i], y[i], a[i], b[i]))


@pytest.mark.parametrize("div", WEIGHTED, ids=str)
@quick
@given(n=sizes, m=sizes, seed=seeds)
def test_permuting_a_cloud_with_its_weights_changes_nothing(div, n, m, seed):
    x, y = _cloud(n, seed), _cloud(m, seed + 1) + 0.5
    a, b = _simplex(n, seed + 2), _simplex(m, seed + 3)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    _close(div, div.fn(x[perm], y, a[perm], b), div.fn(x, y, a, b))


# ----------------------------------------------------------------- paired and code-based


@dataclass(frozen=True)
class Paired:
    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # fn(x, z), paired samples
    batched: bool

    def __str__(self) -> str:
        return self.name


def _critic():
    torch.manual_seed(0)
    return KantorovichCritic(MLP(D, 1, hidden=(8,), activation="leaky_relu").double())


def _density_ratio():
    torch.manual_seed(0)
    return DensityRatioTC(D, hidden=8, depth=2).double()


_CRITIC, _DENSITY_RATIO = _critic(), _density_ratio()

PAIRED = [
    Paired("gw_loss", lambda x, z: gw_loss(pairwise_distances(x), pairwise_distances(z),
                                           scale=0.7, rho=1.5), batched=True),
    Paired("GWEstimator", lambda x, z: GWEstimator(scale=0.7)(x, z), batched=False),
    Paired("total_correlation-mss",
           lambda x, z: total_correlation(x, z, -z.abs(), estimator="mss", dataset_size=50),
           batched=True),
    Paired("total_correlation-mws",
           lambda x, z: total_correlation(x, z, -z.abs(), estimator="mws", dataset_size=50),
           batched=True),
    Paired("DensityRatioTC", lambda x, z: _DENSITY_RATIO(x), batched=True),
    Paired("critic-estimate", lambda x, z: _CRITIC.estimate(x, z), batched=False),
]


@pytest.mark.parametrize("div", [d for d in PAIRED if d.batched], ids=str)
@quick
@given(n=sizes, batch=st.integers(1, 3), seed=seeds)
def test_a_batch_equals_its_items(div, n, batch, seed):
    x, z = _cloud(n, seed, (batch,)), _cloud(n, seed + 1, (batch,))
    batched = div.fn(x, z)
    assert batched.shape == (batch,)
    for i in range(batch):
        torch.testing.assert_close(batched[i], div.fn(x[i], z[i]))


@pytest.mark.parametrize("div", PAIRED, ids=str)
@quick
@given(n=sizes, seed=seeds)
def test_permuting_the_samples_jointly_changes_nothing(div, n, seed):
    x, z = _cloud(n, seed), _cloud(n, seed + 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(div.fn(x[perm], z[perm]), div.fn(x, z))
