"""The argument convention of every public divergence function and module forward.

``f(x, y, x_weights=None, y_weights=None, *, config...)``: the tensors positional (weights
defaulting to ``None``), then only keyword-only configuration. GW compares paired
samples or distance matrices: ``gw_loss(dx, dz, *, ...)``, ``GWEstimator.forward(x, z)``;
the GW solver compares two metric-measure spaces: ``gromov_wasserstein(Cx, Cy, a, b, *, ...)``
(POT's names).
Functions on other tensors (a critic and its real/fake samples, a Gaussian encoder's
codes) take those tensors positionally and everything else keyword-only.
"""

from __future__ import annotations

import inspect

import pytest

import otloss

POINT_CLOUD = ("x", "y", "x_weights", "y_weights")

#: Every public divergence callable and the names of its positional tensors.
CONVENTION = {
    otloss.mmd: POINT_CLOUD,
    otloss.sliced_wasserstein: POINT_CLOUD,
    otloss.sinkhorn_divergence: POINT_CLOUD,
    otloss.MMD.forward: ("self", *POINT_CLOUD),
    otloss.SlicedWasserstein.forward: ("self", *POINT_CLOUD),
    otloss.SinkhornDivergence.forward: ("self", *POINT_CLOUD),
    otloss.gw_loss: ("dx", "dz"),
    otloss.gromov_wasserstein: ("Cx", "Cy", "a", "b"),
    otloss.GromovWasserstein.forward: ("self", "Cx", "Cy", "a", "b"),
    otloss.GWEstimator.forward: ("self", "x", "z"),
    otloss.gradient_penalty: ("f", "real", "fake"),
    otloss.KantorovichCritic.estimate: ("self", "real", "fake"),
    otloss.KantorovichCritic.critic_loss: ("self", "real", "fake"),
    otloss.total_correlation: ("z", "mu", "logvar"),
    otloss.tc_decomposition: ("z", "mu", "logvar"),
    otloss.TotalCorrelation.forward: ("self", "z", "mu", "logvar"),
    otloss.DensityRatioTC.forward: ("self", "z"),
    otloss.permute_dims: ("z",),
    otloss.gaussian_entropy: ("logvar",),
}

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@pytest.mark.parametrize("fn", list(CONVENTION), ids=lambda f: f.__qualname__)
def test_tensors_are_positional_and_configuration_keyword_only(fn):
    params = list(inspect.signature(fn).parameters.values())
    positional = tuple(p.name for p in params if p.kind in POSITIONAL)
    assert positional == CONVENTION[fn], f"{fn.__qualname__}{inspect.signature(fn)}"
    rest = [p for p in params if p.kind not in POSITIONAL]
    assert all(p.kind == inspect.Parameter.KEYWORD_ONLY for p in rest), rest
    for p in params:
        if p.name in ("x_weights", "y_weights"):
            assert p.default is None, p


def test_every_exported_divergence_function_is_checked():
    """A new public divergence function must be added to CONVENTION."""
    checked = {getattr(fn, "__name__", "") for fn in CONVENTION}
    exported = {
        name for name in otloss.__all__
        if inspect.isfunction(getattr(otloss, name))
    }
    assert exported <= checked, exported - checked
