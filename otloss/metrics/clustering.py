r"""Latent-structure metrics: k-NN accuracy of codes and cluster accuracy of assignments.

- `knn_accuracy`: how well the codes separate classes locally (SWAE reports 5-NN).
- `cluster_accuracy`: accuracy of unsupervised cluster ids under the best one-to-one
  relabelling (Hungarian matching), the standard clustering accuracy.
- `greedy_cluster_accuracy`: GM-WAE's protocol for the discrete encoder
  $q(k \mid x)$, after Makhzani et al. (2016): classes pick components greedily from
  the class-by-component matrix of `class_cluster_matrix`.
"""

from __future__ import annotations

import numpy as np

from otloss._optional import import_optional
from otloss.metrics.arrays import as_codes, as_labels, check_same_length, to_numpy

__all__ = [
    "class_cluster_matrix",
    "cluster_accuracy",
    "greedy_class_assignment",
    "greedy_cluster_accuracy",
    "knn_accuracy",
]


def knn_accuracy(
    train_codes: object,
    train_labels: object,
    test_codes: object,
    test_labels: object,
    k: int = 5,
) -> float:
    r"""Accuracy of a k-nearest-neighbour classifier fit on training codes, on test codes.

    Each test code gets the majority label of its ``k`` nearest training codes in Euclidean
    distance (``sklearn.neighbors.KNeighborsClassifier``, uniform weights; ties go to the
    smallest label). SWAE (Sun & Guo, 2021) reports the 5-NN accuracy of test-set codes with
    the training-set codes as the reference.

    Args:
        train_codes: ``(N, L)`` reference codes.
        train_labels: ``(N,)`` their labels.
        test_codes: ``(M, L)`` codes to classify.
        test_labels: ``(M,)`` their labels.
        k: number of neighbours, 1 <= k <= N.

    Returns:
        Accuracy in [0, 1].
    """
    neighbors = import_optional("sklearn.neighbors", "otloss.metrics.knn_accuracy")
    train_codes = as_codes("train_codes", train_codes)
    test_codes = as_codes("test_codes", test_codes)
    train_labels = as_labels("train_labels", train_labels)
    test_labels = as_labels("test_labels", test_labels)
    check_same_length(train_codes=train_codes, train_labels=train_labels)
    check_same_length(test_codes=test_codes, test_labels=test_labels)
    if train_codes.shape[1] != test_codes.shape[1]:
        raise ValueError(
            f"train_codes and test_codes must have the same dimension L, got shapes "
            f"{train_codes.shape} and {test_codes.shape}"
        )
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= train_codes.shape[0]:
        raise ValueError(f"k must be in [1, {train_codes.shape[0]}] (the training size), got {k}")
    clf = neighbors.KNeighborsClassifier(n_neighbors=int(k))
    clf.fit(train_codes, train_labels)
    return float(np.mean(clf.predict(test_codes) == test_labels))


def _contingency(labels_true: np.ndarray, labels_pred: np.ndarray) -> np.ndarray:
    """Counts (n_clusters, n_classes) of each (predicted cluster, true class) pair."""
    _, true_idx = np.unique(labels_true, return_inverse=True)
    _, pred_idx = np.unique(labels_pred, return_inverse=True)
    counts = np.zeros((pred_idx.max() + 1, true_idx.max() + 1), dtype=np.int64)
    np.add.at(counts, (pred_idx, true_idx), 1)
    return counts


def cluster_accuracy(labels_true: object, labels_pred: object) -> float:
    r"""Clustering accuracy under the best one-to-one matching of clusters to classes.

    $$
    \mathrm{ACC} = \max_{m} \frac{1}{N} \sum_n \mathbb{1}[y_n = m(c_n)]
    $$

    over injective maps m from cluster ids to classes, found by the Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``) on the cluster-by-class count matrix. With
    more clusters than classes the unmatched clusters count as errors; with fewer, the
    unmatched classes do. Invariant to any relabelling of either argument.

    Args:
        labels_true: ``(N,)`` ground-truth classes.
        labels_pred: ``(N,)`` cluster ids (any values; only equality matters).

    Returns:
        Accuracy in [0, 1].
    """
    optimize = import_optional("scipy.optimize", "otloss.metrics.cluster_accuracy")
    labels_true = as_labels("labels_true", labels_true)
    labels_pred = as_labels("labels_pred", labels_pred)
    check_same_length(labels_true=labels_true, labels_pred=labels_pred)
    counts = _contingency(labels_true, labels_pred)
    rows, cols = optimize.linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / labels_true.shape[0])


def _as_cluster_probs(cluster_probs: object, n: int) -> np.ndarray:
    """``(N, K)`` responsibilities, or ``(N,)`` integer component ids made one-hot."""
    probs = to_numpy("cluster_probs", cluster_probs)
    if probs.ndim == 1:
        ids = as_labels("cluster_probs", probs)
        if not np.array_equal(np.rint(ids), ids) or ids.min() < 0:
            raise ValueError(
                "cluster_probs of shape (N,) must hold non-negative integer component ids"
            )
        ids = np.rint(ids).astype(np.int64)
        probs = np.zeros((ids.shape[0], ids.max() + 1))
        probs[np.arange(ids.shape[0]), ids] = 1.0
    probs = as_codes("cluster_probs", probs)
    if probs.shape[0] != n:
        raise ValueError(
            f"cluster_probs and labels_true must have the same number of samples, got shapes "
            f"{probs.shape} and ({n},)"
        )
    if (probs < 0).any():
        raise ValueError("cluster_probs must be non-negative (probabilities q(k | x))")
    return probs


def class_cluster_matrix(
    labels_true: object, cluster_probs: object
) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean responsibility of each component for each class (GM-WAE's figure 7a).

    $$
    M_{\ell k} = \mathbb{E}_{x \mid \mathrm{label}(x) = \ell}\; q(k \mid x)
    $$

    Args:
        labels_true: ``(N,)`` classes.
        cluster_probs: ``(N, K)`` responsibilities $q(k \mid x)$ (rows summing to 1),
            or ``(N,)`` hard component ids in ``[0, K)``.

    Returns:
        ``(matrix, classes)``: ``M`` of shape ``(C, K)`` and the sorted class values
        labelling its rows.
    """
    labels_true = as_labels("labels_true", labels_true)
    probs = _as_cluster_probs(cluster_probs, labels_true.shape[0])
    classes, idx = np.unique(labels_true, return_inverse=True)
    sums = np.zeros((classes.shape[0], probs.shape[1]))
    np.add.at(sums, idx, probs)
    return sums / np.bincount(idx)[:, None], classes


def greedy_class_assignment(matrix: object) -> np.ndarray:
    r"""GM-WAE's greedy matching of classes to mixture components.

    Classes (rows of ``matrix``) are visited in decreasing order of their largest entry
    $\max_k M_{\ell k}$ (ties: lower row first); each takes the still-free component
    (column) with its largest entry. Stops when components run out.

    Args:
        matrix: ``(C, K)`` class-by-component scores, e.g. `class_cluster_matrix`.

    Returns:
        ``(K,)`` int64 array: the class row index assigned to each component, or -1.
    """
    matrix = as_codes("matrix", matrix)
    component_class = np.full(matrix.shape[1], -1, dtype=np.int64)
    for c in np.argsort(-matrix.max(axis=1), kind="stable"):
        free = np.flatnonzero(component_class < 0)
        if free.size == 0:
            break
        component_class[free[np.argmax(matrix[c, free])]] = c
    return component_class


def greedy_cluster_accuracy(labels_true: object, cluster_probs: object) -> float:
    r"""GM-WAE's accuracy of the discrete encoder $q(k \mid x)$ (after Makhzani et al.).

    Protocol (Gaujac et al., GM-WAE, Sec. 4):
        1. $M_{\ell k} = \mathbb{E}_{x \mid \ell}\, q(k \mid x)$
           (`class_cluster_matrix`).
        2. Classes are visited in decreasing order of $\max_k M_{\ell k}$; each takes
           the still-free component k with the largest $M_{\ell k}$
           (`greedy_class_assignment`).
        3. Each x is predicted as the class of its component $\arg\max_k q(k \mid x)$;
           components left without a class (more components than classes) are errors.

    Greedy matching is never better than the Hungarian optimum of `cluster_accuracy`
    on the same hard assignments, and usually equal when the matrix is nearly diagonal.

    Args:
        labels_true: ``(N,)`` classes.
        cluster_probs: ``(N, K)`` responsibilities, or ``(N,)`` hard component ids.

    Returns:
        Accuracy in [0, 1].
    """
    labels_true = as_labels("labels_true", labels_true)
    probs = _as_cluster_probs(cluster_probs, labels_true.shape[0])
    matrix, _ = class_cluster_matrix(labels_true, probs)
    component_class = greedy_class_assignment(matrix)
    _, true_idx = np.unique(labels_true, return_inverse=True)
    predicted = component_class[probs.argmax(axis=1)]
    return float(np.mean(predicted == true_idx))
