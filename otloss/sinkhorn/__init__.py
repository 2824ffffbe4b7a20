"""Sinkhorn divergences: the public functional and module, the solver and its costs.

- `otloss.sinkhorn._divergence`: `sinkhorn_divergence`, `SinkhornDivergence`
  (validation, dual value, envelope-theorem gradients);
- `otloss.sinkhorn._solver`: the annealed log-domain Sinkhorn loop;
- `otloss.sinkhorn._geometry`: dense or blocked costs and the soft c-transform on them.
"""

from otloss.sinkhorn._divergence import (
    DEFAULT_MAX_ITER,
    DEFAULT_RTOL,
    DEFAULT_TOL,
    SinkhornConvergenceWarning,
    SinkhornDivergence,
    SinkhornOutput,
    epsilon_schedule,
    sinkhorn_divergence,
)

__all__ = [
    "DEFAULT_MAX_ITER",
    "DEFAULT_RTOL",
    "DEFAULT_TOL",
    "SinkhornConvergenceWarning",
    "SinkhornDivergence",
    "SinkhornOutput",
    "epsilon_schedule",
    "sinkhorn_divergence",
]
