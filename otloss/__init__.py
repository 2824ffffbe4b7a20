"""otloss: optimal-transport and information divergences for PyTorch.

Each divergence is a function (``otloss.mmd``) and an ``nn.Module`` (``otloss.MMD``)
with the same arguments; see ``docs/`` for the math, estimators and biases.
"""

from otloss import distributed, ops, priors
from otloss._version import __version__
from otloss.critic import JointCritic, KantorovichCritic, gradient_penalty
from otloss.gromov import GromovWasserstein, gromov_wasserstein
from otloss.gw import GWEstimator, gw_loss
from otloss.mmd import MMD, mmd
from otloss.sinkhorn import SinkhornDivergence, sinkhorn_divergence
from otloss.sliced import SlicedWasserstein, sliced_wasserstein
from otloss.tc import (
    DensityRatioDimwiseKL,
    DensityRatioTC,
    TotalCorrelation,
    gaussian_entropy,
    permute_dims,
    tc_decomposition,
    total_correlation,
)

__all__ = [
    "MMD",
    "DensityRatioDimwiseKL",
    "DensityRatioTC",
    "GWEstimator",
    "GromovWasserstein",
    "JointCritic",
    "KantorovichCritic",
    "SinkhornDivergence",
    "SlicedWasserstein",
    "TotalCorrelation",
    "TrainConfig",
    "Trainer",
    "__version__",
    "distributed",
    "gaussian_entropy",
    "gradient_penalty",
    "gromov_wasserstein",
    "gw_loss",
    "mmd",
    "ops",
    "permute_dims",
    "priors",
    "sinkhorn_divergence",
    "sliced_wasserstein",
    "tc_decomposition",
    "total_correlation",
]

#: Names that live in `otloss.train`, imported on first use so that ``import otloss``
#: loads no training machinery.
_TRAINING = ("TrainConfig", "Trainer")


def __getattr__(name: str) -> object:
    if name in _TRAINING:
        from otloss import train

        return getattr(train, name)
    raise AttributeError(f"module 'otloss' has no attribute {name!r}")
