"""otloss: optimal-transport and information divergences for PyTorch.

Each divergence is a function (``otloss.mmd``) and an ``nn.Module`` (``otloss.MMD``)
with the same arguments; see ``docs/`` for the math, estimators and biases.
"""

__version__ = "0.1.0"

from otloss import ops
from otloss.gw import GWEstimator, gw_loss

__all__ = [
    "GWEstimator",
    "__version__",
    "gw_loss",
    "ops",
]
