"""Known-answer tests of otloss.metrics: disentanglement, clustering, PSNR, OoD, isometry."""

import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("sklearn")
pytest.importorskip("scipy")
ot = pytest.importorskip("ot")
from sklearn.metrics import roc_auc_score  # noqa: E402

from otloss.metrics import (  # noqa: E402
    bootstrap,
    class_cluster_matrix,
    cluster_accuracy,
    dci,
    dci_from_importance,
    empirical_gw,
    factor_vae_score,
    greedy_class_assignment,
    greedy_cluster_accuracy,
    isometry_pairs,
    knn_accuracy,
    mig,
    normalized_mutual_information,
    ood_auroc,
    psnr,
    sample_codes,
    sap,
)

NUM_VALUES = (4, 5, 3)


class FakeGroundTruth:
    """A dataset with known factors whose observations are the factors, mixed linearly."""

    factors_num_values = NUM_VALUES

    def __init__(self, torch_observations=False):
        self.mixing = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0]])
        self.torch_observations = torch_observations

    def sample_factors(self, n, random_state):
        draw = (
            random_state.integers
            if isinstance(random_state, np.random.Generator)
            else random_state.randint
        )
        return np.stack([draw(0, v, size=n) for v in self.factors_num_values], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        obs = factors @ self.mixing.T
        return torch.as_tensor(obs, dtype=torch.float32) if self.torch_observations else obs

    def unmix(self, obs):
        return np.asarray(obs) @ np.linalg.inv(self.mixing).T


def random_factors(n, rng, num_values=NUM_VALUES):
    return np.stack([rng.integers(0, v, size=n) for v in num_values], axis=1)


# ------------------------------------------------------------------------ MIG


def test_mig_is_near_one_for_a_code_equal_to_the_factors():
    rng = np.random.default_rng(0)
    factors = random_factors(1000, rng)
    codes = factors + 1e-3 * rng.normal(size=factors.shape)
    assert mig(codes, factors) > 0.97


def test_mig_is_near_zero_for_a_random_code():
    rng = np.random.default_rng(1)
    factors = random_factors(1000, rng)
    assert mig(rng.normal(size=(1000, 4)), factors) < 0.05


def test_mig_is_exactly_one_or_zero_for_hand_built_codes():
    rng = np.random.default_rng(2)
    factor = rng.integers(0, 2, size=(400, 1))
    informative_and_constant = np.concatenate([factor, np.zeros_like(factor)], axis=1)
    assert mig(informative_and_constant, factor) == pytest.approx(1.0, abs=1e-12)
    duplicated = np.concatenate([factor, factor], axis=1).astype(float)
    assert mig(duplicated, factor) == pytest.approx(0.0, abs=1e-12)


def test_normalized_mutual_information_tells_unencoded_from_spread_factors():
    rng = np.random.default_rng(4)
    factor = rng.integers(0, 2, size=(400, 1))
    # the factor copied into two dimensions: encoded (maximum 1) but MIG 0
    spread = normalized_mutual_information(np.concatenate([factor, factor], 1), factor)
    np.testing.assert_allclose(spread, 1.0, atol=1e-12)
    noise = normalized_mutual_information(rng.normal(size=(400, 2)), factor)
    assert noise.shape == (2, 1) and noise.max() < 0.05
    # MIG is the mean over factors of the gap between the two largest entries
    factors = random_factors(500, rng)
    codes = factors + 0.3 * rng.normal(size=factors.shape)
    top = np.sort(normalized_mutual_information(codes, factors), axis=0)
    assert mig(codes, factors) == pytest.approx(float(np.mean(top[-1] - top[-2])), abs=1e-12)


def test_mig_is_invariant_to_permuting_and_rescaling_code_dimensions():
    rng = np.random.default_rng(3)
    factors = random_factors(500, rng)
    codes = factors + 0.3 * rng.normal(size=factors.shape)
    moved = codes[:, [2, 0, 1]] * np.array([3.0, -0.5, 10.0]) + 7.0
    assert mig(moved, factors) == pytest.approx(mig(codes, factors), abs=1e-12)


def test_mig_accepts_torch_tensors_and_n_bins():
    rng = np.random.default_rng(4)
    factors = random_factors(300, rng)
    codes = factors + 1e-3 * rng.normal(size=factors.shape)
    value = mig(torch.tensor(codes, dtype=torch.float32), torch.tensor(factors), n_bins=10)
    assert isinstance(value, float) and value > 0.95


# ------------------------------------------------------------------------ SAP


def test_sap_is_about_one_half_for_binary_factors_read_off_one_code_each():
    # A linear threshold on the right code classifies perfectly (1.0); any other code is at
    # chance (0.5): the gap is 0.5.
    rng = np.random.default_rng(5)
    factors = random_factors(900, rng, num_values=(2, 2))
    codes = factors + 0.05 * rng.normal(size=factors.shape)
    assert sap(codes, factors) == pytest.approx(0.5, abs=0.08)


def test_sap_is_near_zero_for_random_or_duplicated_codes():
    rng = np.random.default_rng(6)
    factors = random_factors(900, rng, num_values=(2, 2))
    assert sap(rng.normal(size=(900, 3)), factors) < 0.06
    duplicated = np.repeat(factors[:, :1], 2, axis=1) + 0.05 * rng.normal(size=(900, 2))
    assert sap(duplicated, factors[:, :1]) < 0.03


def test_sap_uses_an_explicit_test_set():
    rng = np.random.default_rng(7)
    factor = rng.integers(0, 2, size=(600, 1))
    informative = factor + 0.05 * rng.normal(size=(600, 1))
    codes = np.concatenate([informative, rng.normal(size=(600, 2))], axis=1)
    split = sap(codes[:400], factor[:400], test_codes=codes[400:], test_factors=factor[400:])
    assert split == sap(codes, factor, train_fraction=400 / 600)
    assert split == pytest.approx(0.5, abs=0.08)
    # Flipped test labels: the informative code now scores 0, the two random ones ~0.5.
    flipped = sap(codes[:400], factor[:400], test_codes=codes[400:], test_factors=1 - factor[400:])
    assert flipped < 0.1


# ------------------------------------------------------------------------ DCI


def test_dci_from_importance_known_matrices():
    assert dci_from_importance(np.eye(3)) == pytest.approx(
        {"disentanglement": 1.0, "completeness": 1.0}, abs=1e-8
    )
    assert dci_from_importance(np.ones((3, 3))) == pytest.approx(
        {"disentanglement": 0.0, "completeness": 0.0}, abs=1e-8
    )
    # One code explains both factors: not disentangled, but complete.
    one_code = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert dci_from_importance(one_code) == pytest.approx(
        {"disentanglement": 0.0, "completeness": 1.0}, abs=1e-8
    )


def test_dci_from_importance_weights_codes_by_their_importance():
    # Code 0 (importance 3) is pure; code 1 (importance 1) is spread evenly over 2 factors.
    r = np.array([[3.0, 0.0], [0.5, 0.5]])
    assert dci_from_importance(r)["disentanglement"] == pytest.approx(0.75, abs=1e-8)


def test_dci_is_near_one_for_a_code_equal_to_the_factors():
    rng = np.random.default_rng(8)
    factors = random_factors(600, rng)
    codes = factors + 1e-3 * rng.normal(size=factors.shape)
    scores = dci(codes, factors, n_estimators=10)
    assert set(scores) == {
        "disentanglement",
        "completeness",
        "informativeness",
        "informativeness_train",
    }
    assert scores["disentanglement"] > 0.95
    assert scores["completeness"] > 0.95
    assert scores["informativeness"] > 0.99


def test_dci_is_near_zero_for_a_random_code():
    rng = np.random.default_rng(9)
    factors = random_factors(600, rng)
    scores = dci(rng.normal(size=(600, 4)), factors, n_estimators=10)
    assert scores["disentanglement"] < 0.15
    assert scores["informativeness"] < 0.5


def test_dci_is_reproducible_with_a_seed():
    rng = np.random.default_rng(10)
    factors = random_factors(300, rng)
    codes = factors + 0.5 * rng.normal(size=factors.shape)
    assert dci(codes, factors, n_estimators=5) == dci(codes, factors, n_estimators=5)


# ------------------------------------------------------------------------ FactorVAE


def test_factor_vae_score_is_one_for_an_encoder_recovering_the_factors():
    data = FakeGroundTruth()

    def encode(obs):
        return data.unmix(obs) + 1e-3 * np.random.default_rng(0).normal(size=obs.shape)

    scores = factor_vae_score(
        encode, data, batch_size=16, num_train=150, num_eval=100, num_variance_estimate=300
    )
    assert scores["eval_accuracy"] == pytest.approx(1.0)
    assert scores["train_accuracy"] == pytest.approx(1.0)
    assert scores["num_active_dims"] == 3


def test_factor_vae_score_is_near_chance_for_a_random_code():
    data = FakeGroundTruth()
    noise = np.random.default_rng(1)
    scores = factor_vae_score(
        lambda obs: noise.normal(size=(len(obs), 4)),
        data,
        batch_size=16,
        num_train=300,
        num_eval=300,
        num_variance_estimate=300,
    )
    assert scores["eval_accuracy"] < 0.5  # chance is 1/3 with three factors


def test_factor_vae_score_prunes_collapsed_dimensions():
    data = FakeGroundTruth()

    def encode(obs):
        factors = data.unmix(obs)
        collapsed = np.full((len(obs), 2), 0.3)
        collapsed[:, 1] += 1e-3 * np.arange(len(obs)) / len(obs)  # std far below 0.05
        return np.concatenate([collapsed[:, :1], factors, collapsed[:, 1:]], axis=1)

    kwargs = {"batch_size": 8, "num_train": 60, "num_eval": 40, "num_variance_estimate": 200}
    scores = factor_vae_score(encode, data, **kwargs)
    assert scores["num_active_dims"] == 3
    assert scores["eval_accuracy"] == pytest.approx(1.0)
    dead = factor_vae_score(lambda obs: np.zeros((len(obs), 3)), data, **kwargs)
    assert dead == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def test_factor_vae_votes_do_not_depend_on_the_encode_chunking():
    data = FakeGroundTruth()
    weights = np.random.default_rng(2).normal(size=(3, 3))

    def encode(obs):  # deterministic and entangled: a non-trivial score
        f = data.unmix(obs)
        return f + 0.7 * np.sin(f @ weights)

    kwargs = {"batch_size": 8, "num_train": 50, "num_eval": 30, "num_variance_estimate": 100}
    small = factor_vae_score(encode, data, encode_batch_size=8, random_state=3, **kwargs)
    large = factor_vae_score(encode, data, encode_batch_size=4096, random_state=3, **kwargs)
    assert small == large
    assert 0.0 < small["eval_accuracy"] < 1.0


def test_factor_vae_score_takes_a_torch_encoder_and_a_numpy_generator():
    data = FakeGroundTruth(torch_observations=True)
    inverse = torch.tensor(np.linalg.inv(data.mixing).T, dtype=torch.float32)
    net = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        net.weight.copy_(inverse.T)
    scores = factor_vae_score(
        net,
        data,
        batch_size=8,
        num_train=40,
        num_eval=40,
        num_variance_estimate=100,
        random_state=np.random.default_rng(0),
    )
    assert scores["eval_accuracy"] == pytest.approx(1.0)


def test_sample_codes_draws_factors_and_their_codes_reproducibly():
    data = FakeGroundTruth()
    codes, factors = sample_codes(data.unmix, data, 50, random_state=4, batch_size=16)
    assert codes.shape == (50, 3) and factors.shape == (50, 3)
    assert codes.dtype == np.float64 and factors.dtype == np.int64
    np.testing.assert_allclose(codes, factors, atol=1e-9)
    again, factors_again = sample_codes(data.unmix, data, 50, random_state=4, batch_size=16)
    np.testing.assert_array_equal(codes, again)
    np.testing.assert_array_equal(factors, factors_again)


# ------------------------------------------------------------------------ validation


def test_disentanglement_metrics_reject_bad_inputs():
    rng = np.random.default_rng(11)
    factors = random_factors(100, rng)
    codes = rng.normal(size=(100, 3))
    with pytest.raises(ValueError, match=r"shape \(N, L\)"):
        mig(codes[:, 0], factors)
    with pytest.raises(ValueError, match="same number of samples"):
        mig(codes[:50], factors)
    with pytest.raises(ValueError, match="discrete"):
        mig(codes, factors + 0.5)
    with pytest.raises(ValueError, match="single value"):
        mig(codes, np.concatenate([factors, np.zeros((100, 1))], axis=1))
    with pytest.raises(ValueError, match="at least 2"):
        mig(codes[:, :1], factors)
    with pytest.raises(ValueError, match="n_bins"):
        mig(codes, factors, n_bins=1)
    with pytest.raises(ValueError, match="NaN"):
        mig(np.where(codes > 1, np.nan, codes), factors)
    with pytest.raises(TypeError, match="numbers"):
        mig(np.array([["a", "b"]] * 100), factors)
    with pytest.raises(ValueError, match="both test_codes and test_factors"):
        sap(codes, factors, test_codes=codes)
    with pytest.raises(ValueError, match="train_fraction"):
        dci(codes, factors, train_fraction=1.5)
    with pytest.raises(ValueError, match="at least 2"):
        dci(codes, factors[:, :1])
    with pytest.raises(ValueError, match="non-negative"):
        dci_from_importance(-np.eye(2))


def test_factor_vae_score_rejects_bad_inputs():
    data = FakeGroundTruth()
    with pytest.raises(TypeError, match="ground-truth interface"):
        factor_vae_score(data.unmix, object())
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        factor_vae_score(data.unmix, data, batch_size=1)
    with pytest.raises(TypeError, match="random_state"):
        factor_vae_score(data.unmix, data, random_state="seed")
    with pytest.raises(ValueError, match=r"codes of shape \(16, L\)"):
        factor_vae_score(lambda obs: obs[:, 0], data, num_variance_estimate=16)


# ------------------------------------------------------------------------ clustering


def test_cluster_accuracy_is_one_for_permuted_labels():
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 10, size=500)
    permutation = rng.permutation(10)
    assert cluster_accuracy(labels, permutation[labels] + 100) == 1.0
    assert cluster_accuracy(torch.tensor(labels), torch.tensor(permutation[labels])) == 1.0


def test_cluster_accuracy_known_values():
    assert cluster_accuracy([0, 0, 1, 1], [5, 7, 7, 7]) == 0.75
    # More clusters than classes: the extra cluster's samples are errors.
    assert cluster_accuracy([0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(4 / 6)
    # Fewer clusters than classes: one class goes unmatched.
    assert cluster_accuracy([0, 1, 2, 2], [0, 0, 1, 1]) == 0.75


def test_greedy_cluster_accuracy_follows_gm_waes_protocol():
    # Class 0 is the most confident (0.9 on k=1) and picks first; class 1 prefers k=1 too
    # but must take k=0; class 2 is left with k=2.
    labels = np.array([0, 1, 2])
    probs = np.array([[0.05, 0.9, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    matrix, classes = class_cluster_matrix(labels, probs)
    np.testing.assert_allclose(matrix, probs)
    np.testing.assert_array_equal(classes, [0, 1, 2])
    np.testing.assert_array_equal(greedy_class_assignment(matrix), [1, 0, 2])
    # argmax components: 1, 1, 2 -> classes 0, 0, 2: two of three right.
    assert greedy_cluster_accuracy(labels, probs) == pytest.approx(2 / 3)


def test_greedy_cluster_accuracy_is_one_for_permuted_one_hot_and_unassigned_components_err():
    rng = np.random.default_rng(13)
    labels = rng.integers(0, 4, size=200)
    perm = rng.permutation(4)
    assert greedy_cluster_accuracy(labels, perm[labels]) == 1.0
    assert greedy_cluster_accuracy(labels, np.eye(4)[perm[labels]]) == 1.0
    # Six components for two classes: the samples in the four leftover components are errors.
    two = np.array([0, 0, 1, 1, 1, 1])
    assert greedy_cluster_accuracy(two, np.array([0, 0, 1, 1, 2, 3])) == pytest.approx(4 / 6)


@given(st.integers(0, 2**31 - 1))
def test_greedy_cluster_accuracy_never_beats_hungarian(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=60)
    probs = rng.dirichlet(np.ones(5), size=60)
    greedy = greedy_cluster_accuracy(labels, probs)
    assert greedy <= cluster_accuracy(labels, probs.argmax(axis=1)) + 1e-12


def test_knn_accuracy_on_separable_clusters():
    rng = np.random.default_rng(14)
    centers = 10.0 * np.eye(3)
    train_labels, test_labels = rng.integers(0, 3, 150), rng.integers(0, 3, 60)
    train = centers[train_labels] + rng.normal(size=(150, 3))
    test = centers[test_labels] + rng.normal(size=(60, 3))
    assert knn_accuracy(train, train_labels, test, test_labels) == 1.0
    assert knn_accuracy(train, train_labels, test, (test_labels + 1) % 3, k=1) == 0.0


def test_knn_accuracy_uses_the_majority_of_k_neighbours():
    train = np.array([[0.0], [1.0], [2.0], [10.0]])
    labels = np.array([0, 1, 1, 0])
    # The nearest neighbour of 0.1 is class 0, but two of its three nearest are class 1.
    assert knn_accuracy(train, labels, [[0.1]], [0], k=1) == 1.0
    assert knn_accuracy(train, labels, [[0.1]], [0], k=3) == 0.0


def test_clustering_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match="same number of samples"):
        cluster_accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        cluster_accuracy(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="k must be in"):
        knn_accuracy(np.zeros((3, 2)), [0, 1, 1], np.zeros((2, 2)), [0, 1], k=4)
    with pytest.raises(ValueError, match="same dimension"):
        knn_accuracy(np.zeros((3, 2)), [0, 1, 1], np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="non-negative"):
        greedy_cluster_accuracy([0, 1], np.array([[-0.5, 1.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="integer component ids"):
        greedy_cluster_accuracy([0, 1], np.array([0.5, 1.0]))


# ------------------------------------------------------------------------ PSNR


def test_psnr_of_a_known_mse():
    x = np.zeros((4, 1, 8, 8))
    assert psnr(x, x + 0.1) == pytest.approx(20.0)
    assert psnr(x * 255, x * 255 + 2.55, data_range=255.0) == pytest.approx(40.0)
    assert psnr(torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.01)) == pytest.approx(40.0)


def test_psnr_is_per_image_then_averaged():
    x = np.zeros((2, 16))
    x_hat = np.stack([np.full(16, 0.1), np.full(16, 0.01)])  # MSEs 1e-2 and 1e-4
    assert psnr(x, x_hat) == pytest.approx(30.0)  # mean of 20 and 40 dB
    pooled = 10 * math.log10(1 / np.mean((x - x_hat) ** 2))
    assert pooled < 23.0  # what pooling over the batch would give


def test_psnr_of_an_exact_reconstruction_is_infinite():
    x = np.random.default_rng(15).random((3, 5))
    assert psnr(x, x) == math.inf


def test_psnr_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        psnr(np.zeros((2, 4)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"\(N, \*\)"):
        psnr(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.zeros((2, 4)), np.ones((2, 4)), data_range=0.0)
    with pytest.raises(ValueError, match="finite"):
        psnr(np.full((2, 4), np.nan), np.ones((2, 4)))


# ------------------------------------------------------------------------ OoD


def test_ood_auroc_of_separable_scores_is_one():
    assert ood_auroc([0.1, 0.2, 0.3], [0.5, 0.9]) == 1.0
    assert ood_auroc([0.5, 0.9], [0.1, 0.2, 0.3]) == 0.0
    assert ood_auroc([0.5, 0.9], [0.1, 0.2, 0.3], higher_is_ood=False) == 1.0


def test_ood_auroc_is_one_half_for_identical_distributions():
    rng = np.random.default_rng(16)
    assert ood_auroc(rng.normal(size=3000), rng.normal(size=3000)) == pytest.approx(0.5, abs=0.03)
    assert ood_auroc(np.ones(5), np.ones(7)) == 0.5


@given(st.integers(0, 2**31 - 1))
def test_ood_auroc_matches_sklearn_including_ties(seed):
    rng = np.random.default_rng(seed)
    scores_in = rng.integers(0, 6, size=rng.integers(1, 40)).astype(float)
    scores_out = rng.integers(2, 8, size=rng.integers(1, 40)).astype(float)
    labels = np.r_[np.zeros(scores_in.size), np.ones(scores_out.size)]
    expected = roc_auc_score(labels, np.r_[scores_in, scores_out])
    assert ood_auroc(torch.tensor(scores_in), scores_out) == pytest.approx(expected, abs=1e-12)


def test_ood_auroc_rejects_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        ood_auroc([], [1.0])
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        ood_auroc(np.zeros((2, 2)), [1.0])
    with pytest.raises(ValueError, match="NaN"):
        ood_auroc([np.inf], [1.0])


# ------------------------------------------------------------------------ isometry


def _rotation(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_empirical_gw_is_zero_for_an_isometric_pair():
    rng = np.random.default_rng(17)
    x = rng.normal(size=(40, 4))
    z = x @ _rotation(4, 1) + 3.0
    assert empirical_gw(x, z) == pytest.approx(0.0, abs=1e-8)
    assert empirical_gw(x, z, rho=2) == pytest.approx(0.0, abs=1e-8)
    # An isometry up to scale: z = 2 x rotated, with C = 1/2.
    assert empirical_gw(x, 2 * z, scale=torch.tensor(0.5)) == pytest.approx(0.0, abs=1e-8)


def test_empirical_gw_with_rho_two_is_pots_value():
    rng = np.random.default_rng(18)
    x, z = rng.normal(size=(30, 6)), rng.normal(size=(25, 2))
    dx, dz = ot.dist(x, x, metric="euclidean"), ot.dist(z, z, metric="euclidean")
    expected = ot.gromov.gromov_wasserstein2(dx, dz, ot.unif(30), ot.unif(25), "square_loss")
    assert empirical_gw(x, z, rho=2) == pytest.approx(float(expected), rel=1e-6)
    # The |.|^rho evaluation over the plan's support reproduces POT's value at rho -> 2.
    assert empirical_gw(x, z, rho=2 + 1e-9) == pytest.approx(float(expected), rel=1e-6)
    assert empirical_gw(x, z) > 0.1


def test_empirical_gw_flattens_images_and_takes_weights():
    rng = np.random.default_rng(19)
    x = torch.rand(12, 1, 3, 3)
    z = x.reshape(12, 9) @ torch.tensor(_rotation(9, 2), dtype=torch.float32)
    w = rng.dirichlet(np.ones(12))
    assert empirical_gw(x, z, x_weights=w, z_weights=w) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="sum to 1"):
        empirical_gw(x, z, x_weights=np.ones(12))
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        empirical_gw(x, z, z_weights=np.ones(5) / 5)
    with pytest.raises(ValueError, match="rho"):
        empirical_gw(x, z, rho=0.5)
    with pytest.raises(ValueError, match="scale"):
        empirical_gw(x, z, scale=-1.0)


def test_isometry_pairs_returns_the_distances_of_all_pairs():
    rng = np.random.default_rng(20)
    z = rng.normal(size=(20, 3))
    x = torch.tensor(z @ _rotation(3, 3), dtype=torch.float64)
    dz, dx = isometry_pairs(x, z)
    assert dz.shape == dx.shape == (190,)
    np.testing.assert_allclose(dz, dx, atol=1e-10)
    i, j = np.triu_indices(20, k=1)
    np.testing.assert_allclose(dz, np.linalg.norm(z[i] - z[j], axis=1), rtol=1e-10)


def test_isometry_pairs_subsamples_without_replacement():
    rng = np.random.default_rng(21)
    z = rng.normal(size=(15, 2))
    x = rng.normal(size=(15, 1, 2, 2))
    all_dz, all_dx = isometry_pairs(x, z)
    dz, dx = isometry_pairs(x, z, n_pairs=40, random_state=1)
    assert dz.shape == (40,)
    pairs = set(zip(all_dz.round(12), all_dx.round(12), strict=True))
    assert len(set(zip(dz.round(12), dx.round(12), strict=True)) & pairs) == 40
    with pytest.raises(ValueError, match="n_pairs"):
        isometry_pairs(x, z, n_pairs=500)
    with pytest.raises(ValueError, match="same N"):
        isometry_pairs(x[:5], z)


def test_a_missing_optional_dependency_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"otloss.metrics.mig needs .*scikit-learn.*pip install"):
        mig(np.zeros((4, 2)), np.array([[0], [1], [0], [1]]))


def test_bootstrap_spread_is_the_standard_error_of_the_mean():
    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    values = bootstrap(np.mean, x, n_resamples=400, random_state=1)
    assert values.shape == (400,)
    assert values.std() == pytest.approx(x.std() / math.sqrt(400), rel=0.15)
    again = bootstrap(np.mean, torch.from_numpy(x), n_resamples=400, random_state=1)
    np.testing.assert_array_equal(values, again)


def test_bootstrap_resamples_rows_of_every_array_together():
    x = np.arange(50.0)
    values = bootstrap(lambda a, b: float(np.abs(a - b).max()), x, 2 * x - x,
                               n_resamples=20)
    np.testing.assert_array_equal(values, 0.0)  # paired: the same rows in both


def test_bootstrap_rejects_unequal_lengths_and_tiny_samples():
    with pytest.raises(ValueError, match="same first dimension"):
        bootstrap(np.mean, np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap(np.mean, np.zeros(1))
    with pytest.raises(ValueError, match="at least one"):
        bootstrap(np.mean)
