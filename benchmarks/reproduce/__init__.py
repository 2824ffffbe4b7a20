"""Reproduce the papers' evaluation claims on real data, on the CPU, in one command.

    python -m benchmarks.reproduce                       # ~20 min on 2 cores -> docs/results.md
    python -m benchmarks.reproduce --budget-minutes 12   # the base step counts: ~12 min
    make reproduce

Five experiments, each trained with :class:`otloss.train.Trainer` on the real datasets in
``--data-root`` and measured with :mod:`otloss.metrics`, figures drawn by :mod:`otloss.plots`,
one module each:

1. :mod:`.gmwae`: GM-WAE on MNIST (K = 10), cluster accuracy of q(k | x), against k-means on
   pixels and the same model trained as a GM-VAE (:class:`otloss.models.GMVAE`).
2. :mod:`.swae`: SWAE on MNIST (L = 8), 5-NN accuracy of test codes and reconstruction,
   against WAE-MMD.
3. :mod:`.gwae`: GWAE (neural prior) on MNIST, L_GW against POT's empirical GW over
   training, the isometry histogram, PSNR.
4. :mod:`.ood`: GWAE (Gaussian-mixture prior) on MNIST against Omniglot, OoD ROC-AUC of the
   critic's potential, against WAE-MMD scored by the prior's negative log-likelihood.
5. :mod:`.tcwae`: TCWAE (MWS and GAN, two values of beta each) against WAE-MMD on the
   procedural sprites: MIG, FactorVAE score, SAP and reconstruction.

Shared code, once: :mod:`.budget` (step counts and sizes against the time budget),
:mod:`.data`, :mod:`.training`, :mod:`.report` (rows, sections, verdict functions, the
Markdown report and ``results.json``) and :mod:`.run` (the command line).
"""

from benchmarks.reproduce.budget import (
    DEFAULT_BUDGET_MINUTES,
    REFERENCE_MINUTES,
    Budget,
    Context,
)
from benchmarks.reproduce.gmwae import SMALL_LAMBDA
from benchmarks.reproduce.report import RESULT_KEYS, Row, Section
from benchmarks.reproduce.run import main, parse_args

__all__ = [
    "DEFAULT_BUDGET_MINUTES",
    "REFERENCE_MINUTES",
    "RESULT_KEYS",
    "SMALL_LAMBDA",
    "Budget",
    "Context",
    "Row",
    "Section",
    "main",
    "parse_args",
]
