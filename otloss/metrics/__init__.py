"""Evaluation metrics for representations, reconstructions and OoD scores.

Import them from here (``from otloss.metrics import mig``); they are not exported at the
``otloss`` top level. numpy or torch arrays in, Python floats or dicts out. The
disentanglement and clustering metrics use scikit-learn and SciPy, `empirical_gw`
uses POT: otloss's ``examples`` and ``compare`` extras install them. See
``docs/metrics.md`` for the exact protocol of each metric.
"""

from otloss.metrics.clustering import (
    class_cluster_matrix,
    cluster_accuracy,
    greedy_class_assignment,
    greedy_cluster_accuracy,
    knn_accuracy,
)
from otloss.metrics.disentanglement import (
    dci,
    dci_from_importance,
    factor_vae_score,
    mig,
    normalized_mutual_information,
    sample_codes,
    sap,
)
from otloss.metrics.isometry import empirical_gw, isometry_pairs
from otloss.metrics.ood import ood_auroc
from otloss.metrics.reconstruction import psnr
from otloss.metrics.resampling import bootstrap

__all__ = [
    "bootstrap",
    "class_cluster_matrix",
    "cluster_accuracy",
    "dci",
    "dci_from_importance",
    "empirical_gw",
    "factor_vae_score",
    "greedy_class_assignment",
    "greedy_cluster_accuracy",
    "isometry_pairs",
    "knn_accuracy",
    "mig",
    "normalized_mutual_information",
    "ood_auroc",
    "psnr",
    "sample_codes",
    "sap",
]
