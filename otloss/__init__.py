"""otloss: optimal-transport and information divergences for PyTorch.

Each divergence is a function (``otloss.mmd``) and an ``nn.Module`` (``otloss.MMD``)
with the same arguments; see ``docs/`` for the math, estimators and biases.
"""

__version__ = "0.1.0"

from otloss import ops, priors
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
from otloss.train import TrainConfig, Trainer

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
