"""Reference OT autoencoders, built only from otloss's public divergences, critics and priors.

Every model shares `OTAutoencoder`'s shape: ``encode(x)``,
``decode(z)``, ``sample(n)``, ``reconstruct(x)``, ``losses(x) -> dict`` and, for
adversarial models, ``critic_losses(x) -> dict`` and ``critic_parameters()``; train them
with `otloss.train.Trainer`, and reload a trained one with `load_model`.
"""

from otloss.models.base import OTAutoencoder
from otloss.models.gmvae import GMVAE
from otloss.models.gmwae import GMWAE
from otloss.models.gwae import GWAE, AggregatedPosteriorNorm
from otloss.models.loading import load_model
from otloss.models.swae import SWAE
from otloss.models.tcwae import TCWAE
from otloss.models.wae import WAE

__all__ = [
    "GMVAE",
    "GMWAE",
    "GWAE",
    "SWAE",
    "TCWAE",
    "WAE",
    "AggregatedPosteriorNorm",
    "OTAutoencoder",
    "load_model",
]
