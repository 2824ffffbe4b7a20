"""The library's input policy (docs/input-policy.md), checked on every public divergence.

Each entry of ``DIVERGENCES`` maps two point clouds ``x (…, N, D)``, ``y (…, M, D)`` to the
divergence's value; adding a divergence to the list covers it by every test here:

- a NaN coordinate in ``x`` gives NaN, an infinite one a non-finite value (never a
  plausible finite number); Sinkhorn without a ``diameter`` reads the data on the host
  anyway, so it raises a ``ValueError`` naming ``x`` instead;
- a batch of ``B = 0`` clouds gives an empty ``(0,)`` result;
- a cloud with ``N = 0`` samples raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from otloss import (
    MMD,
    DensityRatioTC,
    GWEstimator,
    KantorovichCritic,
    SinkhornDivergence,
    SlicedWasserstein,
    TotalCorrelation,
    gw_loss,
    mmd,
    sinkhorn_divergence,
    sliced_wasserstein,
    total_correlation,
)
from otloss.nn import MLP
from otloss.ops import pairwise_distances

D = 3


@dataclass(frozen=True)
class Divergence:
    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batched: bool = True  # accepts (B, N, D) clouds and returns (B,)
    #: a non-finite x raises ValueError naming x (solvers that read data on the host)
    raises_on_nonfinite: bool = False

    def __str__(self) -> str:
        return self.name


def _critic() -> KantorovichCritic:
    torch.manual_seed(0)
    return KantorovichCritic(MLP(D, 1, hidden=(8,), activation="leaky_relu"))


def _density_ratio() -> DensityRatioTC:
    torch.manual_seed(0)
    return DensityRatioTC(D, hidden=8, depth=2)


def _codes(z):
    # a Gaussian encoder's (z, mu, logvar) from the cloud: NaN/Inf in z reach all three
    return z, 0.5 * z, torch.zeros_like(z)


_CRITIC = _critic()
_DENSITY_RATIO = _density_ratio()

DIVERGENCES: list[Divergence] = [
    *[
        Divergence(f"mmd-{kernel}-{estimator}",
                   lambda x, y, k=kernel, e=estimator: mmd(x, y, kernel=k, estimator=e))
        for kernel in ("imq", "rbf", "laplacian", "energy")
        for estimator in ("unbiased", "biased", "linear")
    ],
    Divergence("mmd-median-bandwidth", lambda x, y: mmd(x, y, bandwidth="median")),
    Divergence("MMD-module", lambda x, y: MMD(kernel="rbf")(x, y)),
    Divergence("sliced_wasserstein", lambda x, y: sliced_wasserstein(
        x, y, generator=torch.Generator().manual_seed(0))),
    Divergence("SlicedWasserstein-weighted", lambda x, y: SlicedWasserstein(16)(
        x, y, torch.ones(x.shape[:-1]).softmax(-1),
        generator=torch.Generator().manual_seed(0))),
    Divergence("gw_loss", lambda x, y: gw_loss(pairwise_distances(x), pairwise_distances(y))),
    Divergence("GWEstimator", lambda x, y: GWEstimator()(x, y), batched=False),
    Divergence("GWEstimator-normalize_z",
               lambda x, y: GWEstimator(normalize_z=True)(x, y), batched=False),
    Divergence("sinkhorn_divergence", lambda x, y: sinkhorn_divergence(x, y),
               raises_on_nonfinite=True),
    Divergence("sinkhorn_divergence-diameter-fixed-schedule",  # no host sync: NaN out
               lambda x, y: sinkhorn_divergence(x, y, diameter=10.0, tol=None, rtol=None)),
    Divergence("SinkhornDivergence-module", lambda x, y: SinkhornDivergence(blur=0.1)(x, y),
               raises_on_nonfinite=True),
    Divergence("critic-estimate", lambda x, y: _CRITIC.estimate(x, y), batched=False),
    Divergence("total_correlation-mss",
               lambda x, y: total_correlation(*_codes(x), estimator="mss", dataset_size=100)),
    Divergence("TotalCorrelation-mws",
               lambda x, y: TotalCorrelation("mws", dataset_size=100)(*_codes(x))),
    Divergence("DensityRatioTC", lambda x, y: _DENSITY_RATIO(x)),
]


def _case(*cases: str):
    out = []
    for div in DIVERGENCES:
        for case in cases:
            if case == "empty_batch" and not div.batched:
                continue
            out.append(pytest.param(div, case, id=f"{div}-{case}"))
    return out


def _clouds(n=8, m=8, batch=()):
    g = torch.Generator().manual_seed(1)
    return torch.randn(*batch, n, D, generator=g), torch.randn(*batch, m, D, generator=g)


@pytest.mark.parametrize(("div", "case"), _case("nan", "inf"))
def test_non_finite_input_never_gives_a_finite_number(div, case):
    x, y = _clouds()
    x[2, 1] = float(case)
    if div.raises_on_nonfinite:
        with pytest.raises(ValueError, match=r"\bx\b.*(NaN|Inf|finite)"):
            div.fn(x, y)
        return
    value = div.fn(x, y)
    if case == "nan":
        assert torch.isnan(value).all(), value
    else:
        assert not torch.isfinite(value).any(), value


@pytest.mark.parametrize(
    "div", [d for d in DIVERGENCES if d.batched and not d.raises_on_nonfinite], ids=str
)
def test_non_finite_item_of_a_batch_stays_in_that_item(div):
    x, y = _clouds(batch=(3,))
    x[1, 2, 0] = float("nan")
    value = div.fn(x, y)
    assert torch.isnan(value[1])
    assert torch.isfinite(value[[0, 2]]).all(), value


@pytest.mark.parametrize(("div", "case"), _case("empty_batch"))
def test_empty_batch_gives_an_empty_result(div, case):
    del case
    x, y = _clouds(batch=(0,))
    value = div.fn(x, y)
    assert value.shape == (0,)


@pytest.mark.parametrize(("div", "case"), _case("no_samples"))
def test_cloud_without_samples_raises_value_error(div, case):
    del case
    x, y = _clouds(n=0, m=0)
    with pytest.raises(ValueError, match="0 samples"):
        div.fn(x, y)
