"""Total correlation (MWS / MSS), density-ratio estimators, permute_dims, Gaussian entropy."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from otloss import (
    DensityRatioDimwiseKL,
    DensityRatioTC,
    TotalCorrelation,
    gaussian_entropy,
    permute_dims,
    tc_decomposition,
    total_correlation,
)
from otloss.tc import (
    gaussian_log_density,
    log_importance_weights,
    pairwise_gaussian_log_density,
)
from tests.conftest import cuda

ESTIMATORS = ("mws", "mss")


@pytest.fixture
def single_thread():
    """Small training loops are ~30x slower with 2 threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _posteriors(n, latent, generator, *, dtype=torch.float64, batch=()):
    mu = torch.randn(*batch, n, latent, generator=generator, dtype=dtype)
    logvar = torch.rand(*batch, n, latent, generator=generator, dtype=dtype) * 2 - 2
    z = mu + torch.randn(mu.shape, generator=generator, dtype=dtype) * (0.5 * logvar).exp()
    return z, mu, logvar


def _correlated_codes(cov, sigma, m, generator, *, batch=()):
    """Posteriors N(mu_n, sigma^2 I) with mu_n ~ N(0, cov - sigma^2 I): q(z) = N(0, cov) exactly."""
    latent = cov.shape[0]
    chol = torch.linalg.cholesky(cov - sigma**2 * torch.eye(latent, dtype=cov.dtype))
    mu = torch.randn(*batch, m, latent, generator=generator, dtype=cov.dtype) @ chol.T
    logvar = torch.full_like(mu, 2 * math.log(sigma))
    z = mu + sigma * torch.randn(mu.shape, generator=generator, dtype=cov.dtype)
    return z, mu, logvar


def _gaussian_tc(cov):
    """TC of N(0, cov) = -1/2 log det R, R the correlation matrix."""
    std = cov.diagonal().sqrt()
    return -0.5 * torch.logdet(cov / std[:, None] / std[None, :])


def _mixture(mu, logvar):
    """The empirical aggregate posterior (1/N) sum_n N(mu_n, diag exp(logvar_n))."""
    weights = Categorical(logits=torch.zeros(mu.shape[0], dtype=mu.dtype))
    return MixtureSameFamily(weights, Independent(Normal(mu, (0.5 * logvar).exp()), 1))


def _exact_terms(z, mu, logvar):
    """log q(z_i) and log q_d(z_id) under the exact mixture over all rows of mu/logvar."""
    log_qz = _mixture(mu, logvar).log_prob(z)
    log_qd = torch.stack(
        [
            _mixture(mu[:, d : d + 1], logvar[:, d : d + 1]).log_prob(z[:, d : d + 1])
            for d in range(z.shape[-1])
        ],
        dim=-1,
    )
    return log_qz, log_qd


# ---------------------------------------------------------------------------------------------
# Log-densities and entropy
# ---------------------------------------------------------------------------------------------


def test_gaussian_log_density_matches_torch_normal(generator):
    z, mu, logvar = _posteriors(7, 3, generator)
    expected = Normal(mu, (0.5 * logvar).exp()).log_prob(z)
    torch.testing.assert_close(gaussian_log_density(z, mu, logvar), expected)


def test_pairwise_log_density_entry_ij_is_code_i_under_posterior_j(generator):
    z, mu, logvar = _posteriors(5, 3, generator)
    pairwise = pairwise_gaussian_log_density(z, mu, logvar)
    assert pairwise.shape == (5, 5, 3)
    for i, j in [(0, 0), (1, 3), (4, 2)]:
        expected = Normal(mu[j], (0.5 * logvar[j]).exp()).log_prob(z[i])
        torch.testing.assert_close(pairwise[i, j], expected)
    batched = pairwise_gaussian_log_density(*(t.expand(2, -1, -1) for t in (z, mu, logvar)))
    torch.testing.assert_close(batched[1], pairwise)


def test_tiny_posterior_variances_stay_finite():
    g = torch.Generator().manual_seed(3)
    z, mu, logvar = _posteriors(16, 4, g, dtype=torch.float32)
    logvar = torch.full_like(logvar, -80.0)  # sigma ~ 4e-18
    z = mu + 1e-18 * torch.randn(mu.shape, generator=g)
    for estimator in ESTIMATORS:
        terms = tc_decomposition(z, mu, logvar, estimator=estimator, dataset_size=100)
        assert all(torch.isfinite(v) for v in terms.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_entropy_matches_torch_distributions(dtype, generator):
    mu = torch.randn(6, 4, 5, generator=generator, dtype=dtype)
    logvar = torch.randn(6, 4, 5, generator=generator, dtype=dtype)
    expected = Normal(mu, (0.5 * logvar).exp()).entropy().sum(-1)
    h = gaussian_entropy(logvar)
    assert h.shape == (6, 4) and h.dtype == dtype
    torch.testing.assert_close(h, expected)
    torch.testing.assert_close(gaussian_entropy(logvar[0]), expected[0])


def test_gaussian_entropy_half_precision_and_gradient(generator):
    logvar = torch.randn(8, 3, generator=generator)
    h = gaussian_entropy(logvar.to(torch.bfloat16))
    assert h.dtype == torch.bfloat16
    torch.testing.assert_close(h.float(), gaussian_entropy(logvar), atol=0.05, rtol=0.02)
    logvar = logvar.double().requires_grad_()
    assert torch.autograd.gradcheck(gaussian_entropy, (logvar,))
    with pytest.raises(ValueError, match="logvar"):
        gaussian_entropy(torch.zeros(()))
    with pytest.raises(TypeError, match="floating"):
        gaussian_entropy(torch.zeros(3, 2, dtype=torch.long))


# ---------------------------------------------------------------------------------------------
# Importance weights
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "n"), [(2, 2), (5, 5), (8, 100), (64, 60_000)])
def test_mss_weight_rows_sum_to_one_with_own_posterior_on_the_diagonal(m, n):
    w = log_importance_weights(m, n, "mss", dtype=torch.float64).exp()
    assert w.shape == (m, m)
    torch.testing.assert_close(w.sum(-1), torch.ones(m, dtype=torch.float64))
    torch.testing.assert_close(w.diagonal(), torch.full((m,), 1 / n, dtype=torch.float64))
    off = w[~torch.eye(m, dtype=torch.bool)]
    torch.testing.assert_close(off, torch.full_like(off, (n - 1) / (n * (m - 1))))
    # The copied reference code puts 1/N down column 0 (a stride of M + 1 with M = batch - 1);
    # here column 0 carries the 1/N weight only in row 0.
    if m > 2 and n > m:
        assert not torch.isclose(w[1:, 0], torch.tensor(1 / n, dtype=torch.float64)).any()


def test_mss_weights_are_exact_when_the_batch_is_the_dataset():
    w = log_importance_weights(6, 6, "mss", dtype=torch.float64).exp()
    torch.testing.assert_close(w, torch.full((6, 6), 1 / 6, dtype=torch.float64))


def test_mws_weights_are_uniform_one_over_n_times_m():
    w = log_importance_weights(4, 10, "mws", dtype=torch.float64).exp()
    torch.testing.assert_close(w, torch.full((4, 4), 1 / 40, dtype=torch.float64))


def test_mss_density_estimate_is_unbiased_over_random_batches():
    """In probability space, E[q^(z)] over batches holding the code's own point is q(z)."""
    g = torch.Generator().manual_seed(11)
    n, m, latent, draws = 12, 4, 2, 4000
    z, mu, logvar = _posteriors(n, latent, g)
    anchor = 5
    exact = _mixture(mu, logvar).log_prob(z[anchor]).exp()
    # Each draw: the anchor at a random position, the others a uniform sample of the rest.
    others = torch.tensor([k for k in range(n) if k != anchor])
    picks = others[torch.rand(draws, n - 1, generator=g).argsort(-1)[:, : m - 1]]
    batch = torch.cat([torch.full((draws, 1), anchor), picks], dim=1)
    position = torch.randint(m, (draws,), generator=g)
    batch = batch.gather(1, (torch.arange(m) + position[:, None]) % m)  # rotate the anchor
    codes = torch.where((batch == anchor)[..., None], z[anchor], z[batch])
    pairwise = pairwise_gaussian_log_density(codes, mu[batch], logvar[batch]).sum(-1)
    row = (batch == anchor).long().argmax(-1)
    estimates = {}
    for estimator in ESTIMATORS:
        w = log_importance_weights(m, n, estimator, dtype=torch.float64)
        log_q = torch.logsumexp(pairwise + w, dim=-1)  # (draws, M)
        estimates[estimator] = log_q.gather(1, row[:, None]).exp().mean()
    assert abs(estimates["mss"] / exact - 1) < 0.03
    assert estimates["mws"] / exact < 0.5  # MWS's rows sum to 1/N: biased low


# ---------------------------------------------------------------------------------------------
# Known answers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("latent", [2, 3])
def test_mss_is_exact_when_the_batch_is_the_whole_dataset(latent, generator):
    z, mu, logvar = _posteriors(24, latent, generator)
    log_qz, log_qd = _exact_terms(z, mu, logvar)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qzx = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    terms = tc_decomposition(z, mu, logvar, estimator="mss", dataset_size=24)
    torch.testing.assert_close(terms["tc"], (log_qz - log_qd.sum(-1)).mean())
    torch.testing.assert_close(terms["dimwise_kl"], (log_qd.sum(-1) - log_pz).mean())
    torch.testing.assert_close(terms["mutual_info"], (log_qzx - log_qz).mean())
    # tc + dimwise_kl is the KL(q(z) || p(z)) estimate; + mutual_info the mean posterior KL.
    torch.testing.assert_close(terms["tc"] + terms["dimwise_kl"], (log_qz - log_pz).mean())
    torch.testing.assert_close(sum(terms.values()), (log_qzx - log_pz).mean())


def test_mws_is_mss_offset_by_log_batch_when_the_batch_is_the_dataset(generator):
    m, latent = 16, 3
    z, mu, logvar = _posteriors(m, latent, generator)
    mws = tc_decomposition(z, mu, logvar, estimator="mws", dataset_size=m)
    mss = tc_decomposition(z, mu, logvar, estimator="mss", dataset_size=m)
    torch.testing.assert_close(mws["tc"], mss["tc"] + (latent - 1) * math.log(m))
    torch.testing.assert_close(mws["mutual_info"], mss["mutual_info"] + math.log(m))
    torch.testing.assert_close(mws["dimwise_kl"], mss["dimwise_kl"] - latent * math.log(m))


def test_tc_of_correlated_gaussian_codes_is_minus_half_log_det_correlation():
    """q(z) = N(0, S R S): TC = -1/2 log det R, dimwise KL and KL(q(z) || N(0, I)) known.

    MSS (batch 1024, sigma = 0.3: each code overlaps many posteriors of the batch) is within
    a few hundredths of a nat of every term; MWS is offset by ~(L - 1) log N as documented.
    """
    g = torch.Generator().manual_seed(0)
    corr = torch.tensor([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]], dtype=torch.float64)
    scale = torch.tensor([1.4, 0.8, 1.0], dtype=torch.float64)
    cov = corr * scale[:, None] * scale[None, :]
    n, m, latent = 1_000_000, 1024, 3
    z, mu, logvar = _correlated_codes(cov, 0.3, m, g, batch=(2,))
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    true_tc = _gaussian_tc(cov).item()
    true_dimwise = (0.5 * (scale**2 - 1 - torch.log(scale**2))).sum().item()
    true_kl = 0.5 * (cov.trace() - latent - torch.logdet(cov)).item()

    mss = tc_decomposition(z, mu, logvar, estimator="mss", dataset_size=n)
    mws = total_correlation(z, mu, logvar, estimator="mws", dataset_size=n)
    # errors measured over seeds 0-5: tc -0.017..-0.043, dimwise_kl -0.021..+0.012,
    # KL -0.015..-0.062 (MSS's Jensen bias is negative), MWS minus 2 log N +0.015..+0.043
    assert abs(mss["tc"].mean().item() - true_tc) < 0.07
    assert abs(mss["dimwise_kl"].mean().item() - true_dimwise) < 0.05
    assert abs((mss["tc"] + mss["dimwise_kl"]).mean().item() - true_kl) < 0.09
    assert abs(mws.mean().item() - (latent - 1) * math.log(n) - true_tc) < 0.08
    assert abs(mss["tc"].mean() - true_tc) < abs(mws.mean() - true_tc)


def test_mss_is_closer_than_mws_to_the_exact_tc_of_a_finite_dataset():
    """Dataset of 256 posteriors, batches of 32: exact TC by enumerating the mixture."""
    g = torch.Generator().manual_seed(5)
    n, m, batches = 256, 32, 64
    cov = torch.tensor([[1.0, 0.7], [0.7, 1.0]], dtype=torch.float64)
    z, mu, logvar = _correlated_codes(cov, 0.4, n, g)
    log_qz, log_qd = _exact_terms(z, mu, logvar)
    exact = (log_qz - log_qd.sum(-1)).mean().item()
    index = torch.rand(batches, n, generator=g).argsort(-1)[:, :m]
    errors = {
        estimator: abs(
            total_correlation(
                z[index], mu[index], logvar[index], estimator=estimator, dataset_size=n
            ).mean().item() - exact
        )
        for estimator in ESTIMATORS
    }
    assert errors["mss"] < 0.06  # measured over seeds 0-5: |error| <= 0.023
    assert errors["mss"] < errors["mws"]  # MWS: +5.55 ~ log N


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 9), latent=st.integers(1, 4),
       estimator=st.sampled_from(ESTIMATORS))
def test_estimates_are_invariant_to_permuting_the_batch(seed, m, latent, estimator):
    g = torch.Generator().manual_seed(seed)
    z, mu, logvar = _posteriors(m, latent, g)
    perm = torch.randperm(m, generator=g)
    a = tc_decomposition(z, mu, logvar, estimator=estimator, dataset_size=50)
    b = tc_decomposition(z[perm], mu[perm], logvar[perm], estimator=estimator, dataset_size=50)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 9), latent=st.integers(1, 4),
       estimator=st.sampled_from(ESTIMATORS))
def test_tc_and_mutual_info_are_invariant_to_affine_maps_of_each_dimension(
    seed, m, latent, estimator
):
    g = torch.Generator().manual_seed(seed)
    z, mu, logvar = _posteriors(m, latent, g)
    shift = torch.randn(latent, generator=g, dtype=torch.float64)
    scale = torch.rand(latent, generator=g, dtype=torch.float64) * 3 + 0.2
    perm = torch.randperm(latent, generator=g)
    a = tc_decomposition(z, mu, logvar, estimator=estimator, dataset_size=30)
    b = tc_decomposition(
        (z * scale + shift)[:, perm],
        (mu * scale + shift)[:, perm],
        (logvar + 2 * scale.log())[:, perm],
        estimator=estimator,
        dataset_size=30,
    )
    torch.testing.assert_close(a["tc"], b["tc"])
    torch.testing.assert_close(a["mutual_info"], b["mutual_info"])


@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 9))
def test_tc_of_one_dimensional_codes_is_zero(seed, m):
    g = torch.Generator().manual_seed(seed)
    z, mu, logvar = _posteriors(m, 1, g)
    for estimator in ESTIMATORS:
        assert total_correlation(z, mu, logvar, estimator=estimator, dataset_size=m + 3) == 0


@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 9))
def test_mws_mutual_info_is_at_least_the_mss_one(seed, m):
    """MWS's weights are pointwise <= MSS's (1/(NM) <= both MSS weights), so its log q^ is
    lower and its mutual-information estimate higher."""
    g = torch.Generator().manual_seed(seed)
    z, mu, logvar = _posteriors(m, 3, g)
    mws = tc_decomposition(z, mu, logvar, estimator="mws", dataset_size=40)
    mss = tc_decomposition(z, mu, logvar, estimator="mss", dataset_size=40)
    assert mws["mutual_info"] >= mss["mutual_info"] - 1e-12


def test_batched_input_matches_one_batch_at_a_time(generator):
    z, mu, logvar = _posteriors(10, 3, generator, batch=(3,))
    for estimator in ESTIMATORS:
        batched = tc_decomposition(z, mu, logvar, estimator=estimator, dataset_size=500)
        assert batched["tc"].shape == (3,)
        for b in range(3):
            single = tc_decomposition(z[b], mu[b], logvar[b], estimator=estimator,
                                      dataset_size=500)
            for key in single:
                torch.testing.assert_close(batched[key][b], single[key])


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_gradcheck_float64(estimator, generator):
    z, mu, logvar = (t.requires_grad_() for t in _posteriors(5, 3, generator))

    def terms(z, mu, logvar):
        out = tc_decomposition(z, mu, logvar, estimator=estimator, dataset_size=20)
        return out["tc"], out["dimwise_kl"], out["mutual_info"]

    assert torch.autograd.gradcheck(terms, (z, mu, logvar))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype, generator):
    z, mu, logvar = _posteriors(12, 3, generator, dtype=torch.float32)
    ref = total_correlation(z, mu, logvar, estimator="mss", dataset_size=100)
    low = total_correlation(z.to(dtype), mu.to(dtype), logvar.to(dtype), estimator="mss",
                            dataset_size=100)
    assert low.dtype == dtype
    torch.testing.assert_close(low.float(), ref, atol=0.1, rtol=0.05)


def test_custom_factorised_prior_per_dimension_or_summed(generator):
    z, mu, logvar = _posteriors(8, 3, generator)
    tc = TotalCorrelation("mss", dataset_size=100)
    default = tc.decompose(z, mu, logvar)
    per_dim = tc.decompose(z, mu, logvar, lambda u: Normal(0.0, 1.0).log_prob(u))
    summed = tc.decompose(z, mu, logvar, lambda u: Normal(0.0, 1.0).log_prob(u).sum(-1))
    for key in default:
        torch.testing.assert_close(per_dim[key], default[key])
        torch.testing.assert_close(summed[key], default[key])
    wide = tc.decompose(z, mu, logvar, lambda u: Normal(0.0, 2.0).log_prob(u))
    log_ratio = (Normal(0.0, 2.0).log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1).mean()
    torch.testing.assert_close(wide["dimwise_kl"], default["dimwise_kl"] - log_ratio)
    torch.testing.assert_close(wide["tc"], default["tc"])
    with pytest.raises(ValueError, match="prior_log_density must return shape"):
        tc.decompose(z, mu, logvar, lambda u: u[:, :2])
    with pytest.raises(TypeError, match="callable"):
        tc.decompose(z, mu, logvar, prior_log_density=3.0)


def test_module_matches_functional_and_backpropagates(generator):
    z, mu, logvar = _posteriors(8, 4, generator)
    mu.requires_grad_()
    tc = TotalCorrelation("mss", dataset_size=1000)
    assert "mss" in repr(tc) and "1000" in repr(tc)
    value = tc(z, mu, logvar)
    torch.testing.assert_close(
        value, total_correlation(z, mu, logvar, estimator="mss", dataset_size=1000)
    )
    value.backward()
    assert mu.grad is not None and torch.isfinite(mu.grad).all()
    assert TotalCorrelation(dataset_size=10).estimator == "mws"


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(generator):
    z, mu, logvar = _posteriors(8, 3, generator)
    with pytest.raises(ValueError, match=r"mu \(8, 2\)"):
        total_correlation(z, mu[:, :2], logvar, dataset_size=100)
    with pytest.raises(ValueError, match=r"logvar \(7, 3\)"):
        total_correlation(z, mu, logvar[:7], dataset_size=100)
    with pytest.raises(ValueError, match=r"\(N, D\) or \(B, N, D\)"):
        total_correlation(z[0], mu[0], logvar[0], dataset_size=100)
    with pytest.raises(ValueError, match="dataset_size=5 is smaller than the batch size 8"):
        total_correlation(z, mu, logvar, dataset_size=5)
    with pytest.raises(ValueError, match="dataset_size=5 is smaller"):
        TotalCorrelation("mss", dataset_size=5)(z, mu, logvar)
    with pytest.raises(ValueError, match="unknown estimator 'mmd'"):
        TotalCorrelation("mmd", dataset_size=100)
    with pytest.raises(ValueError, match="unknown estimator"):
        log_importance_weights(8, 100, "MSS")
    with pytest.raises(ValueError, match="needs at least 2"):
        total_correlation(z[:1], mu[:1], logvar[:1], dataset_size=100)
    with pytest.raises(ValueError, match="needs at least 2"):
        log_importance_weights(1, 100)
    with pytest.raises(TypeError, match="dataset_size must be an int"):
        TotalCorrelation("mss", dataset_size=100.0)
    with pytest.raises(ValueError, match="dataset_size must be a positive int"):
        TotalCorrelation("mss", dataset_size=0)
    with pytest.raises(TypeError, match="dataset_size"):
        TotalCorrelation("mss")
    with pytest.raises(TypeError, match="dtype"):
        total_correlation(z, mu.float(), logvar, dataset_size=100)
    with pytest.raises(TypeError, match="floating"):
        total_correlation(z, mu, logvar.long(), dataset_size=100)


# ---------------------------------------------------------------------------------------------
# permute_dims
# ---------------------------------------------------------------------------------------------


def test_permute_dims_keeps_each_column_and_breaks_dependence(generator):
    base = torch.randn(2000, 1, generator=generator)
    z = torch.cat([base, 2 * base, -base], dim=1)  # perfectly dependent columns
    out = permute_dims(z, generator=generator)
    assert out.shape == z.shape
    torch.testing.assert_close(out.sort(0).values, z.sort(0).values)
    corr = torch.corrcoef(out.T)
    assert (corr - torch.eye(3)).abs().max() < 0.1  # |corr| ~ 1/sqrt(2000) after permuting
    assert not torch.equal(out[:, 0], z[:, 0])


def test_permute_dims_is_batched_reproducible_and_differentiable():
    z = torch.randn(4, 50, 3, requires_grad=True)
    a = permute_dims(z, generator=torch.Generator().manual_seed(1))
    b = permute_dims(z, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 50, 3)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.sort(1).values, z.sort(1).values)
    # every (batch, column) gets its own permutation
    order = a.detach().argsort(1)
    assert len({tuple(order[i, :, d].tolist()) for i in range(4) for d in range(3)}) == 12
    a.pow(2).sum().backward()
    torch.testing.assert_close(z.grad, 2 * z.detach())
    with pytest.raises(ValueError, match=r"\(\.\.\., N, L\)"):
        permute_dims(torch.randn(5))


# ---------------------------------------------------------------------------------------------
# Density-ratio estimators
# ---------------------------------------------------------------------------------------------


def _train(model, sample_pair, steps, generator, lr=2e-3):
    """Adam with a cosine-annealed rate: the final discriminator, not a noisy iterate."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        model.discriminator_loss(*sample_pair(), generator=generator).backward()
        opt.step()
        schedule.step()


@pytest.mark.slow
def test_density_ratio_tc_approaches_the_gaussian_tc(single_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    corr = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    chol = torch.linalg.cholesky(corr)
    true_tc = _gaussian_tc(corr.double()).item()  # 0.511

    def codes(n=256):
        return torch.randn(n, 2, generator=g) @ chol.T

    model = DensityRatioTC(2, hidden=32, depth=2)
    _train(model, lambda: (codes(), codes()), 400, g)
    with torch.no_grad():
        estimate = model(codes(20_000)).item()
    assert abs(estimate - true_tc) < 0.08  # errors over 8 seeds: -0.008 to -0.039


@pytest.mark.slow
def test_density_ratio_dimwise_kl_approaches_the_marginal_kl(single_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    chol = torch.linalg.cholesky(torch.tensor([[1.0, 0.8], [0.8, 1.0]]))
    scale, shift = torch.tensor([1.5, 0.6]), torch.tensor([0.5, 0.0])
    # KL(prod_d q_d || N(0, I)): the correlation between the dimensions must not count.
    true_kl = (0.5 * (scale**2 + shift**2 - 1 - torch.log(scale**2))).sum().item()  # 0.535

    def codes(n=256):
        return (torch.randn(n, 2, generator=g) @ chol.T) * scale + shift

    model = DensityRatioDimwiseKL(2, hidden=32, depth=2)
    _train(model, lambda: (codes(), torch.randn(256, 2, generator=g)), 400, g)
    with torch.no_grad():
        estimate = model(codes(20_000), generator=g).item()
    assert abs(estimate - true_kl) < 0.12  # errors over 8 seeds: -0.053 to -0.077


@pytest.mark.parametrize("cls", [DensityRatioTC, DensityRatioDimwiseKL])
def test_discriminator_step_does_not_leak_into_the_encoder(cls):
    encoder = torch.nn.Linear(5, 3)
    model = cls(3, hidden=16, depth=2)
    z = encoder(torch.randn(32, 5))
    loss = (
        model.discriminator_loss(z)
        if cls is DensityRatioTC
        else model.discriminator_loss(z, torch.randn(32, 3))
    )
    loss.backward()
    assert all(p.grad is None for p in encoder.parameters())
    assert all(p.grad is not None for p in model.parameters())
    # the encoder step reaches the encoder
    model.zero_grad()
    model(z).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_density_ratio_forward_is_the_mean_logit_difference_and_gradchecks():
    torch.manual_seed(0)
    model = DensityRatioTC(3, hidden=8, depth=2).double()
    assert len([m for m in model.modules() if isinstance(m, torch.nn.Linear)]) == 3
    z = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    logits = model.discriminator(z)
    torch.testing.assert_close(model(z), (logits[:, 0] - logits[:, 1]).mean())
    assert torch.autograd.gradcheck(model, (z,))
    batched = model(z.detach()[None].expand(2, -1, -1))
    assert batched.shape == (2,)
    # default architecture: six hidden layers of 1000 units, two logits
    default = DensityRatioTC(10)
    linears = [m for m in default.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 7 and linears[0].out_features == 1000 and linears[-1].out_features == 2


def test_density_ratio_dimwise_kl_forward_gradchecks():
    torch.manual_seed(0)
    model = DensityRatioDimwiseKL(3, hidden=8, depth=2).double()
    z = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)

    def estimate(z):  # the same permutation at every evaluation
        return model(z, generator=torch.Generator().manual_seed(4))

    assert torch.autograd.gradcheck(estimate, (z,))


@cuda
def test_estimators_run_on_cuda_with_a_cpu_generator(generator):
    z, mu, logvar = (t.float().cuda() for t in _posteriors(16, 3, generator))
    cpu = tc_decomposition(z.cpu(), mu.cpu(), logvar.cpu(), estimator="mss", dataset_size=100)
    gpu = tc_decomposition(z, mu, logvar, estimator="mss", dataset_size=100)
    for key in cpu:
        assert gpu[key].device.type == "cuda"
        torch.testing.assert_close(gpu[key].cpu(), cpu[key], atol=1e-4, rtol=1e-4)
    cpu_generator = torch.Generator("cpu").manual_seed(0)  # the fixture follows the device
    assert permute_dims(z, generator=cpu_generator).device.type == "cuda"
    model = DensityRatioTC(3, hidden=8, depth=1).cuda()
    assert model.discriminator_loss(z, generator=cpu_generator).device.type == "cuda"
    torch.testing.assert_close(gaussian_entropy(logvar).cpu(), gaussian_entropy(logvar.cpu()))


def test_density_ratio_bad_inputs():
    model = DensityRatioTC(3, hidden=8, depth=1)
    with pytest.raises(ValueError, match="latent_dim=3"):
        model(torch.randn(10, 4))
    with pytest.raises(ValueError, match="latent_dim=3"):
        model.discriminator_loss(torch.randn(10, 3), torch.randn(10, 2))
    with pytest.raises(ValueError, match=r"\(N, D\) or \(B, N, D\)"):
        model(torch.randn(3))
    with pytest.raises(ValueError, match="leading shape"):
        model.discriminator_loss(torch.randn(2, 10, 3), torch.randn(10, 3))
    with pytest.raises(ValueError, match="hidden must be a positive int"):
        DensityRatioTC(3, hidden=0)
    with pytest.raises(ValueError, match="depth"):
        DensityRatioTC(3, depth=-1)
    kl = DensityRatioDimwiseKL(3, hidden=8, depth=1)
    with pytest.raises(ValueError, match="z_prior"):
        kl.discriminator_loss(torch.randn(10, 3), torch.randn(10, 5))


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int"):
        permute_dims(torch.randn(6, 3), generator=0)
    with pytest.raises(TypeError, match=r"depth must be an int, got float 1.5"):
        DensityRatioTC(4, depth=1.5)
    with pytest.raises(TypeError, match="negative_slope must be a number"):
        DensityRatioTC(4, negative_slope="0.2")
    model = DensityRatioTC(3, hidden=8, depth=1)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator"):
        model.discriminator_loss(torch.randn(6, 3), generator=0)


def test_gaussian_entropy_on_the_meta_device_gives_the_shape():
    h = gaussian_entropy(torch.empty(7, 4, device="meta"))
    assert h.device.type == "meta" and h.shape == (7,)


def test_density_ratio_discriminator_is_the_shared_mlp_and_batches():
    from otloss.nn import MLP

    model = DensityRatioTC(3, hidden=8, depth=2)
    assert isinstance(model.discriminator, MLP)
    z = torch.randn(2, 5, 3)
    torch.testing.assert_close(model(z), torch.stack([model(z[0]), model(z[1])]))
