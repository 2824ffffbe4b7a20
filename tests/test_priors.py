"""Priors: reparameterised sampling, factorisation, mixture weights, layouts, SWAE."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from otloss import priors
from otloss.priors import (
    FactorizedNeuralPrior,
    FixedGaussianMixture,
    GaussianMixturePrior,
    NeuralPrior,
    PseudoInputPrior,
    StandardNormal,
)
from tests.conftest import cuda


def _pseudo_prior(k=6, latent=3, shape=(2, 4)):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 16), nn.Tanh(),
                        nn.Linear(16, 2 * latent))  # fmt: skip
    return PseudoInputPrior(net, k, shape)


def _all_priors():
    torch.manual_seed(0)
    return [
        StandardNormal(3),
        NeuralPrior(3, hidden=16),
        NeuralPrior(3, hidden=16, normalize=True),
        FactorizedNeuralPrior(3, hidden=8),
        GaussianMixturePrior(3, 4),
        FixedGaussianMixture(3, 4),
        FixedGaussianMixture(2, 5, layout="rotated"),
        _pseudo_prior(),
    ]


@pytest.mark.parametrize("prior", _all_priors(), ids=lambda p: type(p).__name__)
def test_rsample_shape_generator_and_gradients_reach_every_parameter(prior):
    z = prior.rsample(200, generator=torch.Generator().manual_seed(1))
    assert z.shape == (200, prior.latent_dim) and torch.isfinite(z).all()
    again = prior.rsample(200, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z, again)
    assert prior.sample(5).requires_grad is False
    assert prior(4).shape == (4, prior.latent_dim)
    params = list(prior.parameters())
    if params:
        (z.pow(2).sum() + z.sum()).backward()
        for name, p in prior.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("prior", _all_priors(), ids=lambda p: type(p).__name__)
def test_bad_sample_counts_raise(prior):
    with pytest.raises(ValueError, match="n must be a positive int"):
        prior.rsample(0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        prior.rsample(-3)
    with pytest.raises(TypeError, match="n must be an int"):
        prior.rsample(2.5)


@pytest.mark.parametrize("prior", _all_priors(), ids=lambda p: type(p).__name__)
def test_device_and_dtype_follow_the_module(prior):
    z = prior.double().rsample(8)
    assert z.dtype == torch.float64


def test_factorized_prior_coordinate_depends_only_on_its_own_noise():
    torch.manual_seed(0)
    prior = FactorizedNeuralPrior(5, hidden=8)
    eps = torch.randn(5)

    def g(e):
        return prior.net(e.view(1, 5, 1)).view(5)

    jac = torch.autograd.functional.jacobian(g, eps)
    off_diagonal = jac * (1 - torch.eye(5))
    assert off_diagonal.abs().max() == 0
    assert (jac.diagonal().abs() > 0).all()
    # the unconstrained neural prior mixes coordinates
    mixed = NeuralPrior(5, hidden=8)
    jac_np = torch.autograd.functional.jacobian(lambda e: mixed.net(e[None])[0], eps)
    assert (jac_np * (1 - torch.eye(5))).abs().max() > 0


def test_factorized_prior_with_normalisation_stays_factorised():
    torch.manual_seed(0)
    prior = FactorizedNeuralPrior(4, hidden=8, normalize=True)
    z = prior.rsample(512, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    # var / (var + eps) with BatchNorm's eps = 1e-5 and a small raw output variance
    torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(4), atol=0.05, rtol=0)
    corr = torch.corrcoef(z.T) - torch.eye(4)
    assert corr.abs().max() < 0.15  # independent coordinates: sampling noise only


def test_neural_prior_normalize_needs_two_samples_in_training():
    prior = NeuralPrior(2, hidden=4, normalize=True)
    with pytest.raises(ValueError, match="n >= 2"):
        prior.rsample(1)
    prior.eval()
    assert prior.rsample(1).shape == (1, 2)


def _hand_gmp():
    prior = GaussianMixturePrior(2, 2)
    with torch.no_grad():
        prior.logits.copy_(torch.log(torch.tensor([0.3, 0.7])))
        prior.means.copy_(torch.tensor([[1.0, -1.0], [-2.0, 0.5]]))
        prior.scales.copy_(torch.tensor([[[1.0, 0.5], [0.0, 2.0]], [[0.5, 0.0], [0.3, 0.8]]]))
    return prior


def test_gmp_log_prob_matches_torch_distributions():
    prior = _hand_gmp()
    cov = prior.scales @ prior.scales.mT
    reference = MixtureSameFamily(
        Categorical(probs=torch.tensor([0.3, 0.7])), MultivariateNormal(prior.means, cov)
    )
    z = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-3.0, 2.0]])
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))
    torch.testing.assert_close(prior.log_prob(z.view(3, 1, 2)), reference.log_prob(z).view(3, 1))


def test_gmp_samples_follow_the_mixture():
    prior = _hand_gmp()
    z = prior.sample(40000, generator=torch.Generator().manual_seed(0))
    mean = (prior.weights[:, None] * prior.means).sum(0)
    torch.testing.assert_close(z.mean(0), mean.detach(), atol=0.05, rtol=0)
    # every sample is exactly one component's sample: m_k + M_k eps (hard forward pass)
    closest = z[:, None, 0] - prior.means[None, :, 0].detach()
    assert closest.abs().min(1).values.median() < 2.0


def test_gmp_weights_receive_gradients_in_the_right_direction():
    torch.manual_seed(0)
    prior = GaussianMixturePrior(1, 2)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[5.0], [-5.0]]))
    z = prior.rsample(4000, generator=torch.Generator().manual_seed(0))
    z.mean().backward()  # lowering E z means moving weight from component 0 to component 1
    assert prior.logits.grad[0] > 0 > prior.logits.grad[1]

    prior.zero_grad()
    zw, w = prior.rsample_weighted(50, generator=torch.Generator().manual_seed(0))
    assert zw.shape == (100, 1) and torch.isclose(w.sum(), torch.tensor(1.0))
    (w * zw[:, 0]).sum().backward()
    # exact: d/dlogit_k sum_j w_j m_j = w_k (m_k - sum_j w_j m_j) (+ the noise term)
    wk = prior.weights.detach()
    eps_mean = zw[:50, 0].detach() - 5.0  # component 0's noise average (scale 0.5 * eps)
    comp_mean = torch.stack([5.0 + eps_mean.mean(), -5.0 + eps_mean.mean()])
    expected = wk * (comp_mean - (wk * comp_mean).sum())
    torch.testing.assert_close(prior.logits.grad, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_gmp_learns_unequal_weights():
    torch.manual_seed(0)
    prior = GaussianMixturePrior(1, 2)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[2.0], [-2.0]]))
    prior.means.requires_grad_(False)
    prior.scales.requires_grad_(False)
    opt = torch.optim.Adam([prior.logits], lr=0.05)
    g = torch.Generator().manual_seed(0)
    target = 0.8 * 2.0 + 0.2 * -2.0  # mean of a mixture with weights (0.8, 0.2)
    for _ in range(200):
        opt.zero_grad()
        (prior.rsample(256, generator=g).mean() - target).pow(2).backward()
        opt.step()
    assert abs(prior.weights[0].item() - 0.8) < 0.05, prior.weights


@pytest.mark.parametrize(("latent_dim", "k"), [(9, 10), (16, 10), (3, 4), (2, 2)])
def test_fixed_mixture_means_are_pairwise_equidistant_at_4_sigma(latent_dim, k):
    prior = FixedGaussianMixture(latent_dim, k, sigma=0.5)
    d = torch.cdist(prior.means.double(), prior.means.double())
    off = d[~torch.eye(k, dtype=torch.bool)]
    torch.testing.assert_close(off, torch.full_like(off, 4 * 0.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(prior.means.mean(0), torch.zeros(latent_dim), atol=1e-6, rtol=0)
    assert torch.allclose(prior.weights, torch.full((k,), 1 / k))


def test_fixed_mixture_per_component_samples_and_covariances():
    cov = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.5, 0.0], [0.0, 0.0, 2.0]])
    prior = FixedGaussianMixture(3, 4, covariance=cov, separation=6.0)
    z = prior.rsample_per_component(20000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, 20000, 3)
    torch.testing.assert_close(z.mean(1), prior.means, atol=0.05, rtol=0)
    for k in range(4):
        torch.testing.assert_close(torch.cov(z[k].T), cov, atol=0.06, rtol=0)
    reference = MixtureSameFamily(
        Categorical(probs=torch.full((4,), 0.25)), MultivariateNormal(prior.means, cov)
    )
    pts = torch.randn(7, 3)
    torch.testing.assert_close(prior.log_prob(pts), reference.log_prob(pts))
    counts = torch.bincount(
        torch.cdist(prior.sample(8000), prior.means).argmin(1), minlength=4
    )  # well separated: the nearest mean is the component; uniform weights
    assert (counts - 2000).abs().max() < 200


def test_fixed_mixture_rotated_layout_of_gmwae_figure_3():
    prior = FixedGaussianMixture(2, 10, layout="rotated")
    theta = torch.arange(10) * 2 * math.pi / 10
    expected = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    torch.testing.assert_close(prior.means, expected)
    cov = prior.scale_tril @ prior.scale_tril.mT
    torch.testing.assert_close(cov[0], torch.diag(torch.tensor([0.01, 0.25])))
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # R(pi / 2)
    quarter = FixedGaussianMixture(2, 4, layout="rotated")  # theta_1 = pi / 2
    c1 = quarter.scale_tril[1] @ quarter.scale_tril[1].mT
    torch.testing.assert_close(c1, rot @ torch.diag(torch.tensor([0.01, 0.25])) @ rot.T)


def test_fixed_mixture_bad_arguments():
    with pytest.raises(ValueError, match="latent_dim >= 9"):
        FixedGaussianMixture(5, 10)
    with pytest.raises(ValueError, match="2-D"):
        FixedGaussianMixture(3, 10, layout="rotated")
    with pytest.raises(ValueError, match="unknown layout"):
        FixedGaussianMixture(3, 2, layout="grid")
    with pytest.raises(ValueError, match="covariance must have shape"):
        FixedGaussianMixture(3, 2, covariance=torch.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        FixedGaussianMixture(2, 2, covariance=-torch.eye(2))
    with pytest.raises(ValueError, match="n_per_component must be a positive int"):
        FixedGaussianMixture(2, 2).rsample_per_component(0)
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., 2\)"):
        FixedGaussianMixture(2, 2).log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="latent_dim must be a positive int"):
        StandardNormal(0)


def test_standard_normal_log_prob():
    z = torch.randn(6, 4)
    reference = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(StandardNormal(4).log_prob(z), reference)


def _brute_nearest(x, u, space):
    a, b = x.flatten(1), u.flatten(1)
    if space == "cosine":
        sim = torch.stack([torch.stack([torch.cosine_similarity(p, q, 0) for q in b]) for p in a])
        return sim.argmax(1)
    dist = torch.stack([torch.stack([(p - q).norm() for q in b]) for p in a])
    return dist.argmin(1)


@pytest.mark.parametrize("space", ["data", "cosine"])
def test_rsample_nearest_picks_the_nearest_pseudo_input(space):
    prior = _pseudo_prior()
    x = torch.rand(20, 2, 4)
    idx = prior.nearest(x, space=space)
    torch.testing.assert_close(idx, _brute_nearest(x, prior.pseudo_inputs.detach(), space))
    # a data point equal to pseudo-input k gets the conditional prior of u_k
    x_exact = prior.pseudo_inputs.detach()[[4, 1, 1]]
    assert prior.nearest(x_exact, space=space).tolist() == [4, 1, 1]
    mu, logvar = prior.conditional(torch.tensor([4, 1, 1]))
    g = torch.Generator().manual_seed(3)
    z = prior.rsample_nearest(x_exact, space=space, generator=g)
    eps = torch.randn(3, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)


def test_rsample_nearest_in_latent_space():
    prior = _pseudo_prior()
    x = torch.rand(15, 2, 4)
    mu_x = prior.encoder_net(x)[:, :3]
    mu_u = prior.encoder_net(prior.pseudo_inputs)[:, :3]
    expected = torch.cdist(mu_x, mu_u).argmin(1)
    assert torch.equal(prior.nearest(x, space="latent"), expected)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(8, 2))
    with torch.no_grad():
        e_x, e_u = encoder(x), encoder(prior.pseudo_inputs)
    assert torch.equal(
        prior.nearest(x, space="latent", encoder=encoder), torch.cdist(e_x, e_u).argmin(1)
    )
    z = prior.rsample_nearest(x, space="latent")
    assert z.shape == (15, 3)
    z.sum().backward()
    assert prior.raw_pseudo_inputs.grad is not None


def test_pseudo_inputs_are_clamped_and_initialisable_from_data():
    prior = _pseudo_prior(k=4)
    with torch.no_grad():
        prior.raw_pseudo_inputs.add_(5.0)
    assert prior.pseudo_inputs.max() <= 1.0 and prior.pseudo_inputs.min() >= 0.0
    data = torch.rand(10, 2, 4)
    prior.init_from_data(data, generator=torch.Generator().manual_seed(0))
    rows = prior.pseudo_inputs.detach().flatten(1)
    matches = (torch.cdist(rows, data.flatten(1)) == 0).sum(1)
    assert (matches == 1).all()
    assert len({tuple(r.tolist()) for r in rows}) == 4  # without replacement
    small = _pseudo_prior(k=6)
    small.init_from_data(data[:2])  # fewer samples than pseudo-inputs: with replacement
    assert (
        (torch.cdist(small.pseudo_inputs.detach().flatten(1), data[:2].flatten(1)) == 0)
        .any(1)
        .all()
    )


def test_pseudo_prior_log_prob_matches_torch_distributions():
    prior = _pseudo_prior()
    mu, logvar = prior.conditional()
    from torch.distributions import Independent, Normal

    reference = MixtureSameFamily(
        Categorical(probs=torch.full((6,), 1 / 6)),
        Independent(Normal(mu, torch.exp(0.5 * logvar)), 1),
    )
    z = torch.randn(5, 3)
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))


def test_pseudo_prior_accepts_tuple_outputs_and_validates():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.mu, self.logvar = nn.Linear(8, 2), nn.Linear(8, 2)

        def forward(self, u):
            return self.mu(u.flatten(1)), self.logvar(u.flatten(1))

    prior = PseudoInputPrior(TwoHeads(), 5, (8,), data_range=None)
    assert prior.latent_dim == 2 and prior.rsample(7).shape == (7, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 8\)"):
        prior.rsample_nearest(torch.rand(3, 9))
    with pytest.raises(ValueError, match="unknown space"):
        prior.rsample_nearest(torch.rand(3, 8), space="manhattan")
    with pytest.raises(ValueError, match="2L"):
        PseudoInputPrior(nn.Linear(8, 3), 5, (8,))
    with pytest.raises(ValueError, match="data_range"):
        PseudoInputPrior(TwoHeads(), 5, (8,), data_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="input_shape"):
        PseudoInputPrior(TwoHeads(), 5, (0,))


def test_priors_module_is_exported():
    assert priors.GaussianMixturePrior is GaussianMixturePrior
    assert set(priors.__all__) >= {
        "StandardNormal", "NeuralPrior", "FactorizedNeuralPrior", "GaussianMixturePrior",
        "FixedGaussianMixture", "PseudoInputPrior",
    }  # fmt: skip


def test_gmp_log_prob_gradcheck_float64():
    prior = _hand_gmp().double()
    z = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(prior.log_prob, (z,))
    assert next(prior.parameters()).dtype == torch.float64


@cuda
def test_priors_on_cuda():
    for prior in _all_priors():
        prior = prior.to("cuda")
        g = torch.Generator(device="cuda").manual_seed(0)
        assert prior.rsample(8, generator=g).device.type == "cuda"


@pytest.mark.parametrize("prior", _all_priors(), ids=lambda p: type(p).__name__)
def test_a_generator_that_is_not_a_generator_is_named(prior):
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int"):
        prior.rsample(4, generator=0)


@pytest.mark.parametrize(
    "prior",
    [p for p in _all_priors() if isinstance(p, (GaussianMixturePrior, FixedGaussianMixture,
                                                 PseudoInputPrior))],
    ids=lambda p: type(p).__name__,
)
def test_mixture_log_prob_in_another_dtype_names_z(prior):
    z = prior.sample(5)
    with pytest.raises(TypeError, match=r"z has dtype torch.float64 but the prior's parameters"):
        prior.log_prob(z.double())
    assert prior.log_prob(z).shape == (5,)
