"""TCWAE, SWAE and GM-WAE: finite differentiable losses, gradient routing, descent, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import otloss
from otloss.data import Sprites
from otloss.models import GMVAE, GMWAE, SWAE, TCWAE
from otloss.models.base import INITIAL_LOGVAR
from otloss.models.gmwae import GMWAE_SCALES, mixture_mmd
from otloss.models.tcwae import PAPER_WEIGHTS

IMAGE = (1, 28, 28)
VECTOR = (10,)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks: intra-op threads only add contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(shape: tuple[int, ...], n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def _reached(term: torch.Tensor, groups: dict[str, nn.Module | list[nn.Parameter]]) -> set[str]:
    """Names of the parameter groups that receive a non-zero gradient from ``term``."""
    params = {
        name: list(g.parameters()) if isinstance(g, nn.Module) else list(g)
        for name, g in groups.items()
    }
    flat = [p for ps in params.values() for p in ps]
    grads = torch.autograd.grad(term, flat, retain_graph=True, allow_unused=True)
    reached, i = set(), 0
    for name, ps in params.items():
        gs = grads[i : i + len(ps)]
        i += len(ps)
        if any(g is not None and g.abs().sum() > 0 for g in gs):
            reached.add(name)
    return reached


def _descends(model: nn.Module, x: torch.Tensor, params, lr: float = 1e-3, key="loss") -> None:
    """One Adam step on ``key`` over ``params`` lowers it on the same batch and noise."""
    opt = torch.optim.Adam(params, lr=lr)
    torch.manual_seed(1)
    before = model.losses(x)[key]
    opt.zero_grad()
    before.backward()
    opt.step()
    torch.manual_seed(1)
    with torch.no_grad():
        after = model.losses(x)[key]
    assert after < before, (before.item(), after.item())


# ------------------------------------------------------------------------------- TCWAE


def _tcwae(shape=VECTOR, estimator="mws", **kwargs) -> TCWAE:
    torch.manual_seed(0)
    if estimator == "gan":
        kwargs.setdefault("discriminator_hidden", 32)
        kwargs.setdefault("discriminator_depth", 2)
    else:
        kwargs.setdefault("dataset_size", 1000)
    return TCWAE(shape, latent_dim=4, estimator=estimator, **kwargs)


@pytest.mark.parametrize("shape", [IMAGE, VECTOR])
@pytest.mark.parametrize("estimator", ["mws", "mss", "gan"])
def test_tcwae_losses_are_finite_and_differentiable(estimator, shape):
    model = _tcwae(shape, estimator)
    terms = model.losses(_data(shape))
    expected_keys = {"loss", "reconstruction", "tc", "dimwise_kl"}
    if estimator != "gan":
        expected_keys.add("mutual_info")
    assert set(terms) == expected_keys
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    torch.testing.assert_close(
        terms["loss"],
        terms["reconstruction"] + model.beta * terms["tc"] + model.gamma * terms["dimwise_kl"],
    )
    terms["loss"].backward()
    for p in [*model.encoder.parameters(), *model.decoder.parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("estimator", ["mws", "mss", "gan"])
def test_tcwae_latent_terms_reach_the_encoder_only(estimator):
    model = _tcwae(VECTOR, estimator)
    groups = {"encoder": model.encoder, "decoder": model.decoder}
    if estimator == "gan":
        groups["critic"] = model.critic
    terms = model.losses(_data(VECTOR))
    assert _reached(terms["reconstruction"], groups) == {"encoder", "decoder"}
    assert _reached(terms["tc"], groups) == {"encoder"}
    assert _reached(terms["dimwise_kl"], groups) == {"encoder"}
    assert _reached(terms["loss"], groups) == {"encoder", "decoder"}


def test_tcwae_gan_critic_losses_reach_only_the_discriminators():
    model = _tcwae(VECTOR, "gan")
    critic = model.critic_losses(_data(VECTOR))
    assert set(critic) == {"loss", "tc_discriminator", "dimwise_discriminator"}
    assert all(torch.isfinite(t) for t in critic.values())
    groups = {
        "encoder": model.encoder,
        "decoder": model.decoder,
        "tc": model.critic["tc"],
        "dimwise_kl": model.critic["dimwise_kl"],
    }
    assert _reached(critic["loss"], groups) == {"tc", "dimwise_kl"}
    assert _reached(critic["tc_discriminator"], groups) == {"tc"}
    assert set(model.critic_parameters()) == set(model.critic.parameters())


def test_tcwae_sampling_estimators_have_no_critic():
    model = _tcwae(VECTOR, "mss")
    assert not model.has_critic
    assert not hasattr(model, "critic_losses")
    assert not hasattr(model, "critic_parameters")


@pytest.mark.parametrize("estimator", ["mws", "gan"])
def test_tcwae_one_step_decreases_a_fixed_batch_loss(estimator):
    model = _tcwae(VECTOR, estimator)
    params = [*model.encoder.parameters(), *model.decoder.parameters()]
    _descends(model, _data(VECTOR, n=16), params)


def test_tcwae_defaults_follow_the_paper():
    model = TCWAE(IMAGE, dataset_size=100)
    assert model.latent_dim == 10
    assert (model.beta, model.gamma) == PAPER_WEIGHTS["mws", "squared"]
    gan = TCWAE(IMAGE, estimator="gan", cost="cross_entropy")
    assert (gan.beta, gan.gamma) == (100.0, 5.0)
    # Table 3: 4 convolutions with 32-32-64-64 channels, 6 x 1000 ReLU discriminators.
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    linears = [m for m in gan.critic["tc"].modules() if isinstance(m, nn.Linear)]
    assert [lin.out_features for lin in linears] == [1000] * 6 + [2]
    assert TCWAE.training_defaults["lr"] == 4e-4


@pytest.mark.parametrize("cost", ["l1", "cross_entropy"])
def test_tcwae_reconstruction_costs(cost):
    model = _tcwae(IMAGE, "mws", cost=cost)
    x = _data(IMAGE)
    torch.manual_seed(3)
    terms = model.losses(x)
    torch.manual_seed(3)
    mu, logvar = model.posterior(x)
    x_hat = model.decode(mu + (0.5 * logvar).exp() * torch.randn_like(mu))
    if cost == "l1":
        expected = (x - x_hat).abs().flatten(1).sum(1).mean()
    else:
        expected = -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).flatten(1).sum(1).mean()
    torch.testing.assert_close(terms["reconstruction"], expected)


def _sprites(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Sparse binary images (a small shape on black), where a badly scaled init shows most."""
    return Sprites(image_size=size).sample(n, np.random.RandomState(seed))[1]


def test_tcwae_default_posterior_starts_informative():
    # The posterior means of different sprites spread more than the posterior noise, so
    # q(z | x) does not start equal to the prior (PyTorch's default initialisation puts
    # the means 6e-4 apart under unit-variance noise, and training never leaves the prior).
    torch.manual_seed(0)
    model = TCWAE((1, 32, 32), dataset_size=100, cost="cross_entropy")
    with torch.no_grad():
        mu, logvar = model.posterior(_sprites(64))
    torch.testing.assert_close(logvar, torch.full_like(logvar, INITIAL_LOGVAR))
    assert mu.std(0).mean() > (0.5 * logvar).exp().mean()


@pytest.mark.slow
def test_tcwae_mws_with_the_papers_weights_does_not_collapse_onto_the_prior():
    # 60 steps with the paper's dSprites weights (beta 50, gamma 100, cross-entropy): the
    # posterior means vary between images (FactorVAE's active-dimension threshold 0.05)
    # instead of every dimension collapsing to a spread of 0.00 onto the prior.
    torch.manual_seed(0)
    x = _sprites(512)
    model = TCWAE((1, 32, 32), estimator="mws", dataset_size=512, cost="cross_entropy")
    opt = torch.optim.Adam(model.parameters(), lr=4e-4, eps=8e-4)
    order = torch.Generator().manual_seed(0)
    for _ in range(60):
        opt.zero_grad()
        model.losses(x[torch.randint(512, (64,), generator=order)])["loss"].backward()
        opt.step()
    with torch.no_grad():
        spread = model.encode(x).std(0)
    assert (spread > 0.05).sum() >= 5, spread


def test_tcwae_rejects_bad_configurations_and_inputs():
    with pytest.raises(ValueError, match="dataset_size"):
        TCWAE(VECTOR, estimator="mws")
    with pytest.raises(ValueError, match="unknown estimator"):
        TCWAE(VECTOR, estimator="kde", dataset_size=10)
    with pytest.raises(ValueError, match="cross_entropy"):
        TCWAE(VECTOR, cost="cross_entropy", dataset_size=10)
    with pytest.raises(ValueError, match="beta"):
        TCWAE(VECTOR, beta=-1.0, dataset_size=10)
    model = _tcwae(VECTOR, "mws", dataset_size=4)
    with pytest.raises(ValueError, match="dataset_size=4 is smaller"):
        model.losses(_data(VECTOR, n=8))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 10\)"):
        model.losses(torch.rand(4, 11))
    with pytest.raises(ValueError, match="at least 2"):
        model.losses(torch.rand(1, 10))
    with pytest.raises(TypeError, match="floating"):
        model.losses(torch.ones(4, 10, dtype=torch.long))


# -------------------------------------------------------------------------------- SWAE


def _swae(shape=VECTOR, **kwargs) -> SWAE:
    torch.manual_seed(0)
    kwargs.setdefault("n_pseudo", 6)
    return SWAE(shape, latent_dim=3, **kwargs)


@pytest.mark.parametrize("shape", [IMAGE, VECTOR])
@pytest.mark.parametrize("nearest", ["data", "latent", "cosine"])
def test_swae_losses_are_finite_and_differentiable(shape, nearest):
    model = _swae(shape, nearest=nearest)
    terms = model.losses(_data(shape))
    assert set(terms) == {"loss", "x_loss", "reconstruction", "z_loss"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    torch.testing.assert_close(
        terms["loss"],
        model.beta * terms["x_loss"]
        + (1 - model.beta) * terms["reconstruction"]
        + model.alpha * terms["z_loss"],
    )
    terms["loss"].backward()
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("nearest", ["data", "latent"])
def test_swae_terms_reach_the_parameters_they_should(nearest):
    model = _swae(VECTOR, nearest=nearest)
    groups = {"encoder": model.encoder, "decoder": model.decoder, "prior": model.prior}
    terms = model.losses(_data(VECTOR))
    assert _reached(terms["x_loss"], groups) == {"decoder", "prior"}
    assert _reached(terms["reconstruction"], groups) == {"encoder", "decoder"}
    assert _reached(terms["z_loss"], groups) == {"encoder", "prior"}


def test_swae_z_d_comes_from_the_nearest_pseudo_input():
    model = _swae(VECTOR, n_pseudo=5)
    model.init_pseudo_inputs(_data(VECTOR, n=5, seed=4))
    u = model.prior.pseudo_inputs.detach()
    x = u[torch.tensor([3, 0, 4, 1, 2])] + 0.01  # each sample next to one pseudo-input
    nearest = torch.stack([((u - xi) ** 2).sum(1).argmin() for xi in x])
    torch.manual_seed(2)
    z_d = model.prior_codes(x)
    torch.manual_seed(2)
    eps = torch.randn(5, 3)
    mu, logvar = model.prior.conditional(nearest)
    torch.testing.assert_close(z_d, mu + (0.5 * logvar).exp() * eps)


def test_swae_default_prior_noise_starts_below_the_spread_of_its_means():
    # The prior's samples z_d start closer to their conditional means than those means are
    # to each other; were z_d unit-variance noise around means 3e-3 apart (PyTorch's
    # default initialisation), the x-loss would train the decoder on noise.
    torch.manual_seed(0)
    x = _sprites(64, size=28)
    model = SWAE((1, 28, 28), n_pseudo=64)
    model.init_pseudo_inputs(x)
    with torch.no_grad():
        mu, logvar = model.prior.conditional()
        codes = model.encode(x)
    torch.testing.assert_close(logvar, torch.full_like(logvar, INITIAL_LOGVAR))
    assert mu.std(0).mean() > (0.5 * logvar).exp().mean()
    assert codes.std(0).mean() > 0.05


def test_swae_one_step_decreases_a_fixed_batch_loss():
    # lr 1e-4: Adam's first step moves every He-initialised weight by lr at once, which on
    # dense uniform-noise images moves the codes by more than the z-loss's scale at 1e-3.
    model = _swae(IMAGE)
    _descends(model, _data(IMAGE, n=8), list(model.parameters()), lr=1e-4)


def test_swae_defaults_follow_the_paper():
    model = SWAE(VECTOR, n_pseudo=10)
    assert (model.beta, model.alpha, model.latent_dim) == (0.5, 1.0, 8)
    assert SWAE.training_defaults["lr"] == 1e-3
    assert SWAE.__init__.__kwdefaults__["n_pseudo"] == 4000


def test_swae_rejects_bad_configurations_and_inputs():
    with pytest.raises(ValueError, match="beta"):
        SWAE(VECTOR, beta=1.5, n_pseudo=4)
    with pytest.raises(ValueError, match="unknown nearest"):
        SWAE(VECTOR, nearest="manhattan", n_pseudo=4)
    model = _swae(VECTOR)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 10\)"):
        model.losses(torch.rand(4, 1, 10))
    with pytest.raises(TypeError, match="floating"):
        model.losses(torch.ones(4, 10, dtype=torch.int32))


# ------------------------------------------------------------------------------- GMWAE


def _gmwae(shape=VECTOR, **kwargs) -> GMWAE:
    torch.manual_seed(0)
    return GMWAE(shape, latent_dim=3, n_components=4, **kwargs)


@pytest.mark.parametrize("shape", [IMAGE, VECTOR])
def test_gmwae_losses_are_finite_and_differentiable(shape):
    model = _gmwae(shape)
    terms = model.losses(_data(shape))
    assert set(terms) == {"loss", "reconstruction", "mmd", "component_entropy"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    torch.testing.assert_close(
        terms["loss"], terms["reconstruction"] + model.lambda_z * terms["mmd"]
    )
    terms["loss"].backward()
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()


def test_gmwae_terms_reach_the_parameters_they_should():
    model = _gmwae(VECTOR)
    groups = {
        "q_k": model.encoder,
        "heads": model.component_encoder,
        "decoder": model.decoder,
    }
    terms = model.losses(_data(VECTOR))
    assert _reached(terms["reconstruction"], groups) == {"q_k", "heads", "decoder"}
    # The weighted MMD reaches q(k | x) through the weights pi_k(x_i) / N.
    assert _reached(terms["mmd"], groups) == {"q_k", "heads"}


def test_gmwae_expectation_over_k_is_exact():
    model = _gmwae(VECTOR)
    x = _data(VECTOR, n=6)
    torch.manual_seed(5)
    terms = model.losses(x)
    torch.manual_seed(5)
    log_probs, mu, logvar = model.posterior(x)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    z_prior = model.prior.rsample_per_component(6).transpose(0, 1)  # one draw per component
    probs = log_probs.exp()
    recon = sum(
        probs[:, k] * (x - model.decode(z[:, k])).pow(2).sum(1) for k in range(4)
    ).mean()
    torch.testing.assert_close(terms["reconstruction"], recon)
    mmd = mixture_mmd(z, probs, z_prior, bandwidth=1.0, scales=model.mmd.scales)
    torch.testing.assert_close(terms["mmd"], mmd)


def _kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    d2 = (u - v).pow(2).sum()
    return sum(c / (c + d2) for c in GMWAE_SCALES)


def test_mixture_mmd_is_the_u_statistic_over_data_points_with_a_stratified_prior():
    gen = torch.Generator().manual_seed(3)
    n, k, m, dim = 4, 3, 5, 2
    z = torch.randn(n, k, dim, generator=gen, dtype=torch.float64)
    zp = torch.randn(m, k, dim, generator=gen, dtype=torch.float64)
    probs = torch.softmax(torch.randn(n, k, generator=gen, dtype=torch.float64), -1)
    pairs = [(i, j, a, b) for i in range(n) for j in range(n) for a in range(k)
             for b in range(k)]
    qq = sum(probs[i, a] * probs[j, b] * _kernel(z[i, a], z[j, b])
             for i, j, a, b in pairs if i != j) / (n * (n - 1))
    pp = sum(_kernel(zp[i, a], zp[j, b]) for i in range(m) for j in range(m) if i != j
             for a in range(k) for b in range(k)) / (k * k * m * (m - 1))
    qp = sum(probs[i, a] * _kernel(z[i, a], zp[j, b]) for i in range(n) for j in range(m)
             for a in range(k) for b in range(k)) / (k * n * m)
    torch.testing.assert_close(mixture_mmd(z, probs, zp), qq + pp - 2 * qp)
    # "biased": the V-statistic between the two weighted clouds, as otloss.mmd computes it
    flat = otloss.mmd(z.reshape(-1, dim), zp.reshape(-1, dim), probs.reshape(-1) / n,
                      kernel="imq", bandwidth=1.0, scales=GMWAE_SCALES, estimator="biased")
    torch.testing.assert_close(mixture_mmd(z, probs, zp, estimator="biased"), flat)


def test_mixture_mmd_is_unbiased_for_undecided_weights_unlike_the_flattened_u_statistic():
    # Every head is exactly its prior component, so the aggregated posterior is the prior for
    # any weights and the population MMD is 0. Pairing the K codes of one sample with each
    # other (the weighted U-statistic of the flattened cloud) lowers the estimate for a
    # uniform q(k | x): a bias towards undecided weights, which lambda multiplies.
    prior = otloss.priors.FixedGaussianMixture(3, 4, sigma=0.5)
    gen = torch.Generator().manual_seed(0)
    n, k, draws = 4, 4, 300
    uniform = torch.full((n, k), 1.0 / k)
    ours, flattened = [], []
    for _ in range(draws):
        z = prior.rsample_per_component(n, generator=gen).transpose(0, 1)
        zp = prior.rsample_per_component(n, generator=gen).transpose(0, 1)
        ours.append(float(mixture_mmd(z, uniform, zp)))
        flattened.append(float(otloss.mmd(z.reshape(-1, 3), zp.reshape(-1, 3),
                                          uniform.reshape(-1) / n, kernel="imq",
                                          bandwidth=1.0, scales=GMWAE_SCALES)))
    ours_t, flat_t = torch.tensor(ours), torch.tensor(flattened)
    assert abs(ours_t.mean()) < 4 * ours_t.std() / draws**0.5
    assert flat_t.mean() < -4 * flat_t.std() / draws**0.5


def test_mixture_mmd_rejects_mismatched_shapes_and_estimators():
    z, probs, zp = torch.randn(4, 3, 2), torch.full((4, 3), 1 / 3), torch.randn(5, 3, 2)
    with pytest.raises(ValueError, match="share K and L"):
        mixture_mmd(z, probs, torch.randn(5, 2, 2))
    with pytest.raises(ValueError, match=r"probs must have shape \(4, 3\)"):
        mixture_mmd(z, probs[:, :2], zp)
    with pytest.raises(ValueError, match="estimator"):
        mixture_mmd(z, probs, zp, estimator="linear")
    with pytest.raises(ValueError, match=r"z has 1 samples .* at least 2"):
        mixture_mmd(z[:1], probs[:1], zp)
    with pytest.raises(ValueError, match=r"z_prior has 0 samples .* at least 1"):
        mixture_mmd(z, probs, zp[:0], estimator="biased")


def test_gmwae_component_probs_sum_to_one_and_assignments_are_their_argmax():
    model = _gmwae(IMAGE)
    x = _data(IMAGE, n=7)
    probs = model.component_probs(x)
    assert probs.shape == (7, 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(7))
    assert (probs >= 0).all()
    labels = model.assignments(x)
    assert labels.dtype == torch.int64 and labels.shape == (7,)
    torch.testing.assert_close(labels, probs.argmax(-1))
    codes = model.encode(x)
    _, mu, _ = model.posterior(x)
    torch.testing.assert_close(codes, mu[torch.arange(7), labels])


def test_gmwae_pretraining_matches_the_prior_moments_and_touches_only_the_heads():
    model = _gmwae(VECTOR)
    x = _data(VECTOR, n=64)
    groups = {"q_k": model.encoder, "heads": model.component_encoder, "decoder": model.decoder}
    first = model.pretrain_losses(x)
    assert set(first) == {"loss", "mean", "covariance"}
    assert _reached(first["loss"], groups) == {"heads"}
    last = model.pretrain_heads([x] * 150, 150, lr=1e-2)
    assert set(last) == {"loss", "mean", "covariance"}
    assert last["loss"] < 0.05 * float(first["loss"].detach())
    with torch.no_grad():
        _, mu, _ = model.posterior(x)
    centres = mu.mean(0)
    torch.testing.assert_close(centres, model.prior.means, atol=0.15, rtol=0)


def test_gmwae_pretrain_heads_trains_only_the_heads_reproducibly_from_a_tensor():
    x = _data(VECTOR, n=64)
    runs = []
    for _ in range(2):
        model = _gmwae(VECTOR)
        others = [p.detach().clone() for m in (model.encoder, model.decoder)
                  for p in m.parameters()]
        heads = [p.detach().clone() for p in model.pretrain_parameters()]
        model.pretrain_heads(x, 5, batch_size=16, seed=3)
        after = [p.detach() for m in (model.encoder, model.decoder) for p in m.parameters()]
        assert all(torch.equal(a, b) for a, b in zip(others, after, strict=True))
        assert not all(torch.equal(a, b) for a, b in
                       zip(heads, model.pretrain_parameters(), strict=True))
        runs.append([p.detach().clone() for p in model.pretrain_parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


def test_gmwae_pretrain_heads_takes_batches_from_an_iterable_and_zero_steps_is_a_no_op():
    model = _gmwae(VECTOR)
    x, y = _data(VECTOR, n=32), torch.zeros(32)
    heads = [p.detach().clone() for p in model.pretrain_parameters()]
    assert model.pretrain_heads(iter([(x, y)]), 0) == {}
    assert all(torch.equal(a, b) for a, b in zip(heads, model.pretrain_parameters(), strict=True))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    terms = model.pretrain_heads(loader, 3)
    assert set(terms) == {"loss", "mean", "covariance"} and math.isfinite(terms["loss"])
    with pytest.raises(ValueError, match="lr"):
        model.pretrain_heads(x, 1, lr=0.0)
    with pytest.raises(ValueError, match="steps"):
        model.pretrain_heads(x, 1.5)


def test_gmwae_default_networks_start_informative():
    # The logits of q(k | x) differ between images and the decoder's output between codes,
    # so different components reconstruct an image differently and q(k | x) has a signal.
    torch.manual_seed(0)
    model = GMWAE((1, 28, 28))
    with torch.no_grad():
        logits = model.encoder(_sprites(64, size=28))
        images = model.decode(model.prior.rsample(64))
    assert logits.std(0).mean() > 0.05
    assert images.std(0).mean() > 0.02


def test_gmwae_one_step_decreases_a_fixed_batch_loss():
    model = _gmwae(VECTOR, lambda_z=10.0)
    _descends(model, _data(VECTOR, n=16), list(model.parameters()))


def test_gmwae_defaults_follow_the_paper():
    model = GMWAE(IMAGE)
    assert (model.latent_dim, model.n_components, model.lambda_z) == (10, 10, 500.0)
    assert len(model.mmd.scales) == 15 and min(model.mmd.scales) == 0.01
    assert max(model.mmd.scales) == 500.0
    assert GMWAE.training_defaults["lr"] == 5e-4


def test_gmwae_rejects_bad_configurations_and_inputs():
    with pytest.raises(ValueError, match="n_components"):
        GMWAE(VECTOR, latent_dim=3, n_components=0)
    with pytest.raises(TypeError, match="FixedGaussianMixture"):
        GMWAE(VECTOR, latent_dim=3, prior=nn.Linear(2, 2))
    model = _gmwae(VECTOR)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 10\)"):
        model.losses(torch.rand(4, 12))
    with pytest.raises(ValueError, match="at least 2"):
        model.losses(torch.rand(1, 10))
    bad = GMWAE(VECTOR, latent_dim=3, n_components=4, encoder=nn.Linear(10, 5))
    with pytest.raises(ValueError, match=r"\(N, n_components\) = \(4, 4\)"):
        bad.losses(torch.rand(4, 10))


@pytest.mark.slow
def test_gmwae_q_k_given_x_learns_the_digit_classes():
    # scikit-learn's digits (64 pixels), the paper's lambda: after 300 steps q(k | x) puts
    # the classes on different components (chance: ~0.11 under Hungarian matching) and is
    # no longer uniform (entropy below log 10).
    from sklearn.datasets import load_digits

    from otloss.metrics import cluster_accuracy

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    torch.manual_seed(0)
    model = GMWAE((64,))
    model.pretrain_heads(x, 100, batch_size=32, seed=0)
    order = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    for _ in range(300):
        opt.zero_grad()
        model.losses(x[torch.randint(len(x), (32,), generator=order)])["loss"].backward()
        opt.step()
    with torch.no_grad():
        probs = model.component_probs(x)
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(1).mean()
    assert entropy < 0.99 * math.log(10)
    assert cluster_accuracy(digits.target, probs.argmax(1).numpy()) > 0.25


# ------------------------------------------------------------------------------- GMVAE


def test_gmvae_elbo_terms_match_their_closed_forms():
    torch.manual_seed(0)
    prior = otloss.priors.FixedGaussianMixture(3, 4, sigma=0.7)
    model = GMVAE((6,), latent_dim=3, n_components=4, prior=prior)
    x = torch.rand(5, 6)
    torch.manual_seed(1)
    terms = model.losses(x)
    torch.manual_seed(1)
    log_probs, mu, logvar = model.posterior(x)
    probs = log_probs.exp()
    # diagonal Gaussians against sigma^2 I: 0.5 sum_d [s^2/sigma^2 + (mu - m)^2/sigma^2 - 1
    # - log(s^2/sigma^2)]; the discrete KL against the uniform p_D: sum_k pi_k log(K pi_k)
    ratio = logvar.exp() / 0.49
    kl = 0.5 * (ratio + (mu - prior.means).pow(2) / 0.49 - 1 - ratio.log()).sum(-1)
    torch.testing.assert_close(terms["continuous_kl"], (probs * kl).sum(-1).mean())
    torch.testing.assert_close(terms["discrete_kl"],
                               (probs * (log_probs + math.log(4))).sum(-1).mean())
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    x_hat = model.decode(z.flatten(0, 1)).view(5, 4, 6).clamp(1e-6, 1 - 1e-6)
    nll = -(x.unsqueeze(1) * x_hat.log() + (1 - x.unsqueeze(1)) * (1 - x_hat).log()).sum(-1)
    torch.testing.assert_close(terms["reconstruction"], (probs * nll).sum(-1).mean())
    torch.testing.assert_close(
        terms["loss"], terms["reconstruction"] + terms["continuous_kl"] + terms["discrete_kl"]
    )


def test_gmvae_beta_scales_both_kl_terms_and_gradients_reach_every_network():
    torch.manual_seed(0)
    model = GMVAE((6,), latent_dim=3, n_components=4, beta=20.0)
    terms = model.losses(torch.rand(5, 6))
    torch.testing.assert_close(
        terms["loss"],
        terms["reconstruction"] + 20.0 * (terms["continuous_kl"] + terms["discrete_kl"]),
    )
    groups = {"q_k": model.encoder, "heads": model.component_encoder, "decoder": model.decoder}
    assert _reached(terms["loss"], groups) == {"q_k", "heads", "decoder"}
    assert _reached(terms["discrete_kl"], groups) == {"q_k"}
    with pytest.raises(ValueError, match="beta"):
        GMVAE((6,), latent_dim=3, n_components=4, beta=-1.0)

