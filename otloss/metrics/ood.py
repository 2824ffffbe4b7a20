r"""Out-of-distribution detection: ROC-AUC of anomaly scores."""

from __future__ import annotations

import numpy as np

from otloss.metrics.arrays import as_scores

__all__ = ["ood_auroc"]


def ood_auroc(scores_in: object, scores_out: object, *, higher_is_ood: bool = True) -> float:
    r"""Area under the ROC curve for telling out-of-distribution samples from in-distribution.

    Out-of-distribution samples are the positive class. The AUROC is the Mann-Whitney
    statistic

    $$
    \mathrm{AUROC} = \frac{1}{N_{in} N_{out}} \sum_{i, j}
    \Bigl(\mathbb{1}[s^{out}_j > s^{in}_i] + \tfrac12 \mathbb{1}[s^{out}_j = s^{in}_i]\Bigr),
    $$

    the probability that a random OoD sample scores above a random in-distribution one
    (ties count half): exactly ``sklearn.metrics.roc_auc_score`` with OoD labelled 1.
    Computed by sorting, in $O((N_{in} + N_{out}) \log N_{in})$.

    GWAE scores MNIST (in) against Omniglot (out) with the critic's Kantorovich potential;
    a likelihood model uses $-\log \pi(z)$. If your score is larger for
    in-distribution samples (a log-likelihood, a potential that is high on the data), pass
    ``higher_is_ood=False``.

    Args:
        scores_in: ``(N_in,)`` scores of in-distribution samples.
        scores_out: ``(N_out,)`` scores of out-of-distribution samples.
        higher_is_ood: whether a larger score means "more likely out of distribution".

    Returns:
        AUROC in [0, 1]; 0.5 is chance, 1 perfect separation.
    """
    s_in = as_scores("scores_in", scores_in)
    s_out = as_scores("scores_out", scores_out)
    if not higher_is_ood:
        s_in, s_out = -s_in, -s_out
    sorted_in = np.sort(s_in)
    below = np.searchsorted(sorted_in, s_out, side="left")
    below_or_equal = np.searchsorted(sorted_in, s_out, side="right")
    wins = below.sum() + 0.5 * (below_or_equal - below).sum()
    return float(wins / (s_in.shape[0] * s_out.shape[0]))
