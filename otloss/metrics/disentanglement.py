r"""Disentanglement metrics as defined in google-research's disentanglement_lib.

Four scores of a representation against discrete ground-truth factors of variation:
MIG (Chen et al., 2018), SAP (Kumar et al., 2018), DCI (Eastwood & Williams, 2018) and
the FactorVAE score (Kim & Mnih, 2018). Each follows the protocol of disentanglement_lib
(Locatello et al., 2019), the reference implementation every later paper quotes, with its
default sample sizes as keyword defaults; the sizes and seeds are arguments.

``mig``, ``sap`` and ``dci`` score fixed arrays: ``codes (N, L)`` (e.g. the encoder means)
and ``factors (N, K)`` of discrete values. Draw them from a dataset with known factors
with `sample_codes`. ``factor_vae_score`` needs to choose its own batches, so it takes
the encoder and the dataset. A dataset with known factors is any object with

- ``factors_num_values``: a sequence with the number of values of each of the K factors;
- ``sample_factors(n, random_state) -> (n, K)`` integer array;
- ``sample_observations_from_factors(factors, random_state) -> (n, ...)`` observations

(the ``GroundTruthData`` interface of disentanglement_lib, implemented by
``otloss.data``'s procedural sprites, dSprites and 3D Shapes). ``random_state`` is passed to
both methods unchanged: a ``numpy.random.RandomState`` built from the integer seed you
give (disentanglement_lib's convention), or the RandomState / Generator you pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from otloss._checks import check_count
from otloss._optional import import_optional
from otloss.metrics.arrays import as_codes, as_factors, check_same_length, to_numpy

__all__ = [
    "dci",
    "dci_from_importance",
    "factor_vae_score",
    "mig",
    "sample_codes",
    "sap",
]

RandomState = int | np.random.RandomState | np.random.Generator | None


# --------------------------------------------------------------------------- helpers


def _as_random_state(random_state: RandomState) -> np.random.RandomState | np.random.Generator:
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    if random_state is not None and (
        not isinstance(random_state, (int, np.integer)) or isinstance(random_state, bool)
    ):
        raise TypeError(
            "random_state must be an int seed, None, numpy.random.RandomState or "
            f"numpy.random.Generator, got {type(random_state).__name__}"
        )
    return np.random.RandomState(random_state)


def _randint(rng: np.random.RandomState | np.random.Generator, high: int) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(high))
    return int(rng.randint(high))


def _num_factors(data: Any) -> int:
    for attr in ("factors_num_values", "sample_factors", "sample_observations_from_factors"):
        if not hasattr(data, attr):
            raise TypeError(
                f"data must implement the ground-truth interface (factors_num_values, "
                f"sample_factors, sample_observations_from_factors); "
                f"{type(data).__name__} has no {attr!r}"
            )
    return len(data.factors_num_values)


def _concat(chunks: list[Any]) -> Any:
    if isinstance(chunks[0], torch.Tensor):
        return torch.cat(chunks)
    return np.concatenate([np.asarray(c) for c in chunks])


def _encode(encode: Callable[[Any], Any], observations: Any, n: int) -> np.ndarray:
    """Codes (n, L) of ``observations``: gradients off, moved to float64 numpy."""
    with torch.no_grad():
        codes = encode(observations)
    codes = to_numpy("encode(observations)", codes)
    if codes.ndim != 2 or codes.shape[0] != n:
        raise ValueError(
            f"encode must map {n} observations to codes of shape ({n}, L), got shape "
            f"{codes.shape}"
        )
    return as_codes("encode(observations)", codes)


def _sample_factors(data: Any, n: int, rng: Any) -> np.ndarray:
    factors = np.array(to_numpy("data.sample_factors(...)", data.sample_factors(n, rng)))
    if factors.ndim != 2 or factors.shape[0] != n:
        raise ValueError(
            f"data.sample_factors({n}, random_state) must return shape ({n}, K), got "
            f"{factors.shape}"
        )
    return factors


def _split(
    name: str,
    codes: object,
    factors: object,
    test_codes: object,
    test_factors: object,
    train_fraction: float,
    min_dims: int,
    min_factors: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test (codes, factors): the given test set, or disentanglement_lib's split
    (the first ``ceil(N * train_fraction)`` samples train, the rest test)."""
    codes = as_codes("codes", codes, min_samples=2, min_dims=min_dims)
    factors = as_factors("factors", factors, min_factors=min_factors)
    check_same_length(codes=codes, factors=factors)
    if (test_codes is None) != (test_factors is None):
        raise ValueError(f"{name}: give both test_codes and test_factors, or neither")
    if test_codes is None:
        if not isinstance(train_fraction, (int, float)) or not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
        n_train = math.ceil(codes.shape[0] * train_fraction)
        if n_train >= codes.shape[0]:
            raise ValueError(
                f"{name}: {codes.shape[0]} samples with train_fraction={train_fraction} "
                "leave no test samples"
            )
        train = (codes[:n_train], factors[:n_train])
        test = (codes[n_train:], factors[n_train:])
    else:
        train = (codes, factors)
        test_c = as_codes("test_codes", test_codes, min_dims=min_dims)
        test_f = to_numpy("test_factors", test_factors)
        if test_f.ndim != 2 or not np.array_equal(np.rint(test_f), test_f):
            raise ValueError(
                f"test_factors must be discrete factors of shape (N, K), got shape {test_f.shape}"
            )
        check_same_length(test_codes=test_c, test_factors=test_f)
        test = (test_c, np.rint(test_f).astype(np.int64))
    if test[0].shape[1] != train[0].shape[1] or test[1].shape[1] != train[1].shape[1]:
        raise ValueError(
            f"test_codes/test_factors shapes {test[0].shape}/{test[1].shape} do not match "
            f"the training codes/factors shapes {train[0].shape}/{train[1].shape}"
        )
    # Each classifier needs two classes in its training part.
    as_factors("factors (training part)", train[1])
    return train[0], train[1], test[0], test[1]


def _normalized_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy in base ``base`` of each column of non-negative ``p`` (columns normalised)."""
    p = p / p.sum(axis=0, keepdims=True)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -plogp.sum(axis=0) / math.log(base)


# --------------------------------------------------------------------------- sampling


def sample_codes(
    encode: Callable[[Any], Any],
    data: Any,
    num_points: int,
    *,
    random_state: RandomState = 0,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw factors, render their observations and encode them (disentanglement_lib's
    ``generate_batch_factor_code``).

    Args:
        encode: maps a batch of observations ``(n, ...)`` to codes ``(n, L)`` (numpy or
            torch; called under ``torch.no_grad()``), e.g. an encoder's mean.
        data: a dataset with the ground-truth interface (module docstring).
        num_points: number of samples N.
        random_state: int seed, or a numpy RandomState / Generator handed to ``data``.
        batch_size: observations per draw and ``encode`` call (16 in disentanglement_lib);
            it changes the order of the random draws, hence the sample.

    Returns:
        ``(codes, factors)``: float64 ``(N, L)`` and int64 ``(N, K)`` arrays, the inputs of
        `mig`, `sap` and `dci`.
    """
    _num_factors(data)
    num_points = check_count("num_points", num_points, 1)
    batch_size = check_count("batch_size", batch_size, 1)
    rng = _as_random_state(random_state)
    codes, factors = [], []
    for start in range(0, num_points, batch_size):
        n = min(batch_size, num_points - start)
        f = _sample_factors(data, n, rng)
        codes.append(_encode(encode, data.sample_observations_from_factors(f, rng), n))
        factors.append(f)
    return np.concatenate(codes), np.concatenate(factors).astype(np.int64)


# --------------------------------------------------------------------------- MIG


def mig(codes: object, factors: object, n_bins: int = 20) -> float:
    r"""Mutual Information Gap (Chen et al., 2018), disentanglement_lib's discrete estimator.

    Protocol:
        1. Each code dimension is discretised into ``n_bins`` equal-width bins spanning its
           observed range (``np.histogram`` edges, ``np.digitize``; 20 in the lib).
        2. $I(c_i; v_k)$ is the plug-in mutual information (nats) between binned code
           $c_i$ and factor $v_k$ (``sklearn.metrics.mutual_info_score``).
        3. For each factor, the gap between the two most informative codes is divided by the
           factor's entropy $H(v_k)$, and the gaps are averaged:

            $$
            \mathrm{MIG} = \frac{1}{K} \sum_k
            \frac{I(c_{(1)}; v_k) - I(c_{(2)}; v_k)}{H(v_k)}
            $$

    The plug-in MI is biased upwards by about $(B - 1)(|v_k| - 1) / 2N$ nats, so an
    uninformative code scores slightly above 0 on few samples (the lib uses N = 10000).

    Args:
        codes: ``(N, L)`` representations, L >= 2.
        factors: ``(N, K)`` discrete factors, none constant.
        n_bins: number of histogram bins per code dimension.

    Returns:
        MIG in [0, 1] (1: each factor captured by exactly one code dimension).
    """
    top = np.sort(_normalized_mi(codes, factors, n_bins, "otloss.metrics.mig"), axis=0)[::-1]
    return float(np.mean(top[0] - top[1]))


def normalized_mutual_information(codes: object, factors: object, n_bins: int = 20) -> np.ndarray:
    r"""$I(c_i; v_k) / H(v_k)$ for every code dimension $i$ and factor $k$: MIG's
    steps 1 and 2 (binned codes, plug-in MI, see `mig`), normalised by the factors'
    entropies.

    Its column maxima say how much of each factor the most informative code dimension
    carries: a low MIG with low maxima means the factors are not encoded at all, a low
    MIG with high maxima means they are encoded but spread over several dimensions.

    Args:
        codes: ``(N, L)`` representations, L >= 2.
        factors: ``(N, K)`` discrete factors, none constant.
        n_bins: number of histogram bins per code dimension.

    Returns:
        ``(L, K)`` float64 array in [0, 1] (up to the plug-in estimate's upward bias).
    """
    return _normalized_mi(codes, factors, n_bins, "otloss.metrics.normalized_mutual_information")


def _normalized_mi(codes: object, factors: object, n_bins: int, caller: str) -> np.ndarray:
    skm = import_optional("sklearn.metrics", caller)
    codes = as_codes("codes", codes, min_samples=2, min_dims=2)
    factors = as_factors("factors", factors)
    check_same_length(codes=codes, factors=factors)
    n_bins = check_count("n_bins", n_bins, 2)
    binned = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], n_bins)[1]
        binned[:, i] = np.digitize(codes[:, i], edges[:-1])
    mi = np.array(
        [
            [skm.mutual_info_score(factors[:, k], binned[:, i]) for k in range(factors.shape[1])]
            for i in range(codes.shape[1])
        ]
    )  # (L, K)
    entropy = np.array([skm.mutual_info_score(f, f) for f in factors.T])
    return mi / entropy


# --------------------------------------------------------------------------- SAP


def sap(
    codes: object,
    factors: object,
    *,
    test_codes: object = None,
    test_factors: object = None,
    train_fraction: float = 2 / 3,
) -> float:
    r"""Separated Attribute Predictability (Kumar et al., 2018) for discrete factors.

    Protocol (disentanglement_lib, ``continuous_factors=False``):
        1. For every pair (code dimension i, factor k), a linear SVM on the single feature
           $c_i$ (``sklearn.svm.LinearSVC(C=0.01, class_weight="balanced")``) is fit on
           the training part and its test accuracy $S_{ik}$ recorded.
        2. For each factor, the gap between the two largest accuracies is taken, and the gaps
           are averaged: $\mathrm{SAP} = \frac{1}{K}\sum_k (S_{(1)k} - S_{(2)k})$.

    The training/test parts are ``(codes, factors)`` and ``(test_codes, test_factors)``
    when a test set is given; otherwise the first ``ceil(N * train_fraction)`` samples
    train and the rest test (the lib draws 10000 training and 5000 test points, i.e. 2/3).

    Args:
        codes: ``(N, L)`` representations, L >= 2.
        factors: ``(N, K)`` discrete factors.
        test_codes: optional held-out ``(M, L)`` codes.
        test_factors: optional held-out ``(M, K)`` factors.
        train_fraction: share of ``codes`` used for training when no test set is given.

    Returns:
        SAP in [0, 1].
    """
    svm = import_optional("sklearn.svm", "otloss.metrics.sap")
    c_tr, f_tr, c_te, f_te = _split(
        "sap", codes, factors, test_codes, test_factors, train_fraction, 2, 1
    )
    score = np.zeros((c_tr.shape[1], f_tr.shape[1]))
    for i in range(c_tr.shape[1]):
        for k in range(f_tr.shape[1]):
            clf = svm.LinearSVC(C=0.01, class_weight="balanced")
            clf.fit(c_tr[:, i : i + 1], f_tr[:, k])
            score[i, k] = np.mean(clf.predict(c_te[:, i : i + 1]) == f_te[:, k])
    top = np.sort(score, axis=0)
    return float(np.mean(top[-1] - top[-2]))


# --------------------------------------------------------------------------- DCI


def dci_from_importance(importance: object) -> dict[str, float]:
    r"""DCI disentanglement and completeness of an importance matrix ``R (L, K)``.

    With $P_{ik} = R_{ik} / \sum_{k'} R_{ik'}$ (code i's importance spread over the K
    factors) and $\tilde P_{ik} = R_{ik} / \sum_{i'} R_{i'k}$ (factor k's spread over
    the L codes), both after adding $10^{-11}$ to R as disentanglement_lib does:

    $$
    D = \sum_i \rho_i \bigl(1 - H_K(P_{i\cdot})\bigr), \quad
    \rho_i = \frac{\sum_k R_{ik}}{\sum_{jk} R_{jk}}, \qquad
    C = \sum_k \tilde\rho_k \bigl(1 - H_L(\tilde P_{\cdot k})\bigr), \quad
    \tilde\rho_k = \frac{\sum_i R_{ik}}{\sum_{ij} R_{ij}},
    $$

    with entropies in base K and base L so each term lies in [0, 1]. An all-zero matrix
    gets uniform weights.

    Args:
        importance: ``(L, K)`` non-negative importances, L >= 2 codes, K >= 2 factors.

    Returns:
        ``dict(disentanglement=D, completeness=C)``.
    """
    r = as_codes("importance", importance, min_samples=2, min_dims=2)
    if (r < 0).any():
        raise ValueError(f"importance must be non-negative, got a minimum of {r.min():.3g}")
    num_codes, num_factors = r.shape
    per_code = 1.0 - _normalized_entropy(r.T + 1e-11, base=num_factors)
    per_factor = 1.0 - _normalized_entropy(r + 1e-11, base=num_codes)
    weights = r if r.sum() > 0 else np.ones_like(r)
    code_weight = weights.sum(axis=1) / weights.sum()
    factor_weight = weights.sum(axis=0) / weights.sum()
    return {
        "disentanglement": float(np.sum(per_code * code_weight)),
        "completeness": float(np.sum(per_factor * factor_weight)),
    }


def dci(
    codes: object,
    factors: object,
    *,
    test_codes: object = None,
    test_factors: object = None,
    train_fraction: float = 2 / 3,
    n_estimators: int = 100,
    random_state: int | None = 0,
) -> dict[str, float]:
    r"""DCI disentanglement, completeness and informativeness (Eastwood & Williams, 2018).

    Protocol (disentanglement_lib's gradient-boosted-trees variant):
        1. For each factor k, a ``sklearn.ensemble.GradientBoostingClassifier`` (100 trees
           of depth 3 by default) predicts $v_k$ from all codes on the training part;
           its impurity-based feature importances form column k of $R (L, K)$.
        2. Disentanglement and completeness are `dci_from_importance` of R.
        3. Informativeness is the classifiers' accuracy on the test part, averaged over
           factors (``informativeness``), and on the training part
           (``informativeness_train``).

    The train/test parts are chosen as in `sap` (the lib uses 10000 / 5000 points).
    The GWAE paper describes the random-forest variant of DCI; the lib, and otloss, use
    gradient-boosted trees, which is what "DCI" means in the benchmarks it reports.

    Args:
        codes: ``(N, L)`` representations, L >= 2.
        factors: ``(N, K)`` discrete factors, K >= 2.
        test_codes: optional held-out ``(M, L)`` codes.
        test_factors: optional held-out ``(M, K)`` factors.
        train_fraction: share of ``codes`` used for training when no test set is given.
        n_estimators: boosting stages per factor (fewer is faster and noisier).
        random_state: seed of the tree ensembles.

    Returns:
        ``dict(disentanglement, completeness, informativeness, informativeness_train)``,
        each in [0, 1].
    """
    ensemble = import_optional("sklearn.ensemble", "otloss.metrics.dci")
    n_estimators = check_count("n_estimators", n_estimators, 1)
    c_tr, f_tr, c_te, f_te = _split(
        "dci", codes, factors, test_codes, test_factors, train_fraction, 2, 2
    )
    importance = np.zeros((c_tr.shape[1], f_tr.shape[1]))
    acc_train, acc_test = [], []
    for k in range(f_tr.shape[1]):
        model = ensemble.GradientBoostingClassifier(
            n_estimators=n_estimators, random_state=random_state
        )
        model.fit(c_tr, f_tr[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        acc_train.append(np.mean(model.predict(c_tr) == f_tr[:, k]))
        acc_test.append(np.mean(model.predict(c_te) == f_te[:, k]))
    scores = dci_from_importance(importance)
    scores["informativeness"] = float(np.mean(acc_test))
    scores["informativeness_train"] = float(np.mean(acc_train))
    return scores


# --------------------------------------------------------------------------- FactorVAE


def _factor_vae_votes(
    encode: Callable[[Any], Any],
    data: Any,
    num_votes: int,
    batch_size: int,
    rng: Any,
    global_variances: np.ndarray,
    active: np.ndarray,
    encode_batch_size: int,
) -> np.ndarray:
    """Votes (K, L): for each vote, the factor held fixed and the code dimension with the
    smallest normalised variance over the batch."""
    num_factors = len(data.factors_num_values)
    votes = np.zeros((num_factors, global_variances.shape[0]), dtype=np.int64)
    active_idx = np.flatnonzero(active)
    per_call = max(1, encode_batch_size // batch_size)
    done = 0
    while done < num_votes:
        group = min(per_call, num_votes - done)
        fixed, observations = [], []
        for _ in range(group):  # the lib's draw order: factor index, factors, observations
            k = _randint(rng, num_factors)
            factors = _sample_factors(data, batch_size, rng)
            factors[:, k] = factors[0, k]
            observations.append(data.sample_observations_from_factors(factors, rng))
            fixed.append(k)
        codes = _encode(encode, _concat(observations), group * batch_size)
        local = codes.reshape(group, batch_size, -1).var(axis=1, ddof=1)
        ratio = local[:, active_idx] / global_variances[active_idx]
        np.add.at(votes, (np.array(fixed), active_idx[ratio.argmin(axis=1)]), 1)
        done += group
    return votes


def factor_vae_score(
    encode: Callable[[Any], Any],
    data: Any,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
    random_state: RandomState = 0,
    encode_batch_size: int = 1024,
) -> dict[str, float]:
    r"""FactorVAE disentanglement score (Kim & Mnih, 2018), disentanglement_lib's protocol.

    Protocol:
        1. Global scale: encode ``num_variance_estimate`` random observations and take each
           code dimension's variance $s_j^2$ (``ddof=1``). Dimensions with
           $s_j <$ ``prune_threshold`` (collapsed to the prior; 0.05 in the lib's
           configs) or with zero variance are pruned; with none left every score is 0.
        2. One vote: draw a factor k uniformly, draw ``batch_size`` factor vectors, set
           factor k of all of them to the first one's value, render and encode them, and
           vote for $(k, \arg\min_{j\,\text{active}} \mathrm{Var}_{batch}(z_j)/s_j^2)$.
        3. ``num_train`` votes train a majority-vote classifier: each code dimension predicts
           the factor that voted for it most. Its accuracy on those votes is
           ``train_accuracy``; on ``num_eval`` fresh votes it is ``eval_accuracy``, the score.

    ``encode`` sees up to ``encode_batch_size`` observations per call (votes are rendered in
    groups); the random draws happen in the lib's order whatever its value, so the scores
    do not depend on it.

    Args:
        encode: maps observations ``(n, ...)`` to codes ``(n, L)`` (numpy or torch; called
            under ``torch.no_grad()``), e.g. the encoder's mean.
        data: dataset with the ground-truth interface (module docstring).
        batch_size: observations per vote (64 in the lib), at least 2.
        num_train: votes used to build the classifier (10000 in the lib).
        num_eval: votes used to evaluate it (5000 in the lib).
        num_variance_estimate: observations for the global variances (10000 in the lib).
        prune_threshold: minimum standard deviation of an active dimension.
        random_state: int seed, or a numpy RandomState / Generator handed to ``data``.
        encode_batch_size: most observations per ``encode`` call.

    Returns:
        ``dict(train_accuracy, eval_accuracy, num_active_dims)``; chance level is about 1/K.
    """
    num_factors = _num_factors(data)
    if num_factors < 1:
        raise ValueError("data.factors_num_values is empty: the dataset has no factors")
    batch_size = check_count("batch_size", batch_size, 2)
    num_train = check_count("num_train", num_train, 1)
    num_eval = check_count("num_eval", num_eval, 1)
    num_variance_estimate = check_count("num_variance_estimate", num_variance_estimate, 2)
    encode_batch_size = check_count("encode_batch_size", encode_batch_size, 1)
    if not isinstance(prune_threshold, (int, float)) or not prune_threshold >= 0:
        raise ValueError(f"prune_threshold must be a non-negative number, got {prune_threshold!r}")
    rng = _as_random_state(random_state)

    # One draw of all factors and observations, as the lib's ``sample_observations``.
    factors = _sample_factors(data, num_variance_estimate, rng)
    observations = data.sample_observations_from_factors(factors, rng)
    chunks = []
    for start in range(0, num_variance_estimate, encode_batch_size):
        stop = min(start + encode_batch_size, num_variance_estimate)
        chunks.append(_encode(encode, observations[start:stop], stop - start))
    codes = np.concatenate(chunks)
    global_variances = codes.var(axis=0, ddof=1)
    active = (np.sqrt(global_variances) >= prune_threshold) & (global_variances > 0)
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}

    def votes(n: int) -> np.ndarray:
        return _factor_vae_votes(
            encode, data, n, batch_size, rng, global_variances, active, encode_batch_size
        )

    train_votes = votes(num_train)
    classifier = train_votes.argmax(axis=0)  # factor predicted by each code dimension
    columns = np.arange(train_votes.shape[1])
    train_accuracy = train_votes[classifier, columns].sum() / train_votes.sum()
    eval_votes = votes(num_eval)
    eval_accuracy = eval_votes[classifier, columns].sum() / eval_votes.sum()
    return {
        "train_accuracy": float(train_accuracy),
        "eval_accuracy": float(eval_accuracy),
        "num_active_dims": int(active.sum()),
    }
