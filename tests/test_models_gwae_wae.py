"""GWAE and WAE: finite differentiable losses, gradient routing, one step of descent, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from otloss.models import GWAE, WAE, AggregatedPosteriorNorm
from otloss.train import Trainer

IMAGE = (1, 28, 28)
VECTOR = (10,)


def _data(shape: tuple[int, ...], n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def _small_gwae(shape: tuple[int, ...] = VECTOR, **kwargs) -> GWAE:
    torch.manual_seed(0)
    return GWAE(shape, latent_dim=4, **kwargs)


def _groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Parameters by role; the GW scale is its own group."""
    groups = {
        "encoder": list(model.encoder.parameters()),
        "decoder": list(model.decoder.parameters()),
        "prior": list(model.prior.parameters()),
    }
    if isinstance(model, GWAE):
        groups["scale"] = [model.gw.log_scale]
        groups["critic"] = list(model.critic.parameters())
    elif model.discriminator is not None:
        groups["critic"] = list(model.discriminator.parameters())
    return {k: v for k, v in groups.items() if v}


def _reached(term: torch.Tensor, model: nn.Module) -> set[str]:
    """Names of the parameter groups that receive a non-zero gradient from ``term``."""
    groups = _groups(model)
    flat = [p for ps in groups.values() for p in ps]
    grads = torch.autograd.grad(term, flat, retain_graph=True, allow_unused=True)
    reached, i = set(), 0
    for name, params in groups.items():
        gs = grads[i : i + len(params)]
        i += len(params)
        if any(g is not None and g.abs().sum() > 0 for g in gs):
            reached.add(name)
    return reached


# ------------------------------------------------------------------------------ GWAE


@pytest.mark.parametrize("prior", ["np", "fnp", "gmp", "normal"])
def test_gwae_losses_are_finite_and_differentiable_for_every_prior(prior):
    model = _small_gwae(prior=prior, n_components=3)
    terms = model.losses(_data(VECTOR))
    assert set(terms) == {"loss", "gw", "reconstruction", "joint_critic", "entropy", "scale"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    expected = (
        terms["gw"]
        + model.lambda_w * terms["reconstruction"]
        + model.lambda_d * terms["joint_critic"]
        - model.lambda_h * terms["entropy"]
    )
    torch.testing.assert_close(terms["loss"], expected)
    terms["loss"].backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_gwae_on_images_builds_the_papers_networks_and_runs():
    model = _small_gwae(IMAGE, aggregated_norm=True)
    x = _data(IMAGE, n=6)
    terms = model.losses(x)
    assert all(torch.isfinite(t) for t in terms.values())
    critic = model.critic_losses(x)
    assert set(critic) == {"loss", "estimate", "gradient_penalty"}
    assert all(torch.isfinite(t) for t in critic.values())
    model.eval()
    assert model.reconstruct(x).shape == x.shape
    assert model.sample(5).shape == (5, *IMAGE)
    assert model.encode(x).shape == (6, 4)


def test_gwae_terms_reach_exactly_their_parameters():
    model = _small_gwae(prior="np")
    x = _data(VECTOR)
    terms = model.losses(x)
    assert _reached(terms["gw"], model) == {"decoder", "prior", "scale"}
    assert _reached(terms["reconstruction"], model) == {"encoder", "decoder"}
    assert _reached(terms["joint_critic"], model) == {"encoder", "decoder", "prior"}
    assert _reached(terms["entropy"], model) == {"encoder"}
    assert _reached(terms["loss"], model) == {"encoder", "decoder", "prior", "scale"}
    critic = model.critic_losses(x)["loss"]
    assert _reached(critic, model) == {"critic"}
    # the generator step freezes the critic only while it builds its graph
    assert all(p.requires_grad for p in model.critic.parameters())


def test_gwae_critic_losses_build_a_fresh_graph_each_call():
    model = _small_gwae()
    opt = torch.optim.RMSprop(model.critic_parameters(), lr=1e-3)
    x = _data(VECTOR)
    for _ in range(2):  # a reused graph would fail after the in-place optimiser step
        opt.zero_grad()
        model.critic_losses(x)["loss"].backward()
        opt.step()
    assert all(p.grad is None for p in model.encoder.parameters())


@pytest.mark.parametrize("shape", [VECTOR, IMAGE])
def test_gwae_one_step_decreases_a_fixed_batch_loss(shape):
    model = _small_gwae(shape)
    x = _data(shape, n=8)
    params = [p for p in model.parameters() if all(p is not q for q in model.critic_parameters())]
    opt = torch.optim.Adam(params, lr=1e-4)

    def fixed_loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same noise and prior draws each time
        return model.losses(x)["loss"]

    before = fixed_loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = fixed_loss()
    assert after < before


def test_gwae_default_critic_is_the_papers_table_7_network():
    from otloss.models.gwae import joint_critic

    critic = joint_critic((3, 64, 64), 8)
    convs = [m for m in critic.net.x_branch.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 128, 256]  # 64 px -> 1 px
    assert critic.spectral_norm and critic.gp_weight == 10.0
    assert critic.net.merge_scale == 0.5
    assert critic(torch.rand(2, 3, 64, 64), torch.randn(2, 8)).shape == (2,)


def test_gwae_scale_and_normalisation_defaults():
    assert _small_gwae(prior="np").gw.normalize_z
    assert not _small_gwae(prior="normal").gw.normalize_z
    model = _small_gwae(scale=1.5, lambda_h=0.03)
    torch.testing.assert_close(model.gw.scale, torch.tensor(1.5))
    assert model.lambda_h == 0.03
    assert GWAE.training_defaults["optimizer"] == "rmsprop"


def test_gwae_gw_term_uses_the_papers_distances():
    """d(u, u') = |u - u'| / sqrt(2) on both spaces: L_GW is GWEstimator's value / sqrt(2)."""
    model = _small_gwae(prior="normal")
    x = _data(VECTOR)
    torch.manual_seed(3)
    terms = model.losses(x)
    torch.manual_seed(3)
    mu, logvar = model.posterior(x)
    z_q = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    z_p = model.prior.rsample(8)
    x_gen = model.decode(torch.cat([z_q, z_p]))[8:]
    torch.testing.assert_close(terms["gw"], model.gw(x_gen, z_p) / 2**0.5)


def test_gwae_trains_with_the_trainer(tmp_path):
    model = _small_gwae()
    trainer = Trainer(
        model, out_dir=tmp_path, batch_size=8, n_critic=2, progress=False,
        tensorboard=False, log_every=1, **{k: v for k, v in GWAE.training_defaults.items()
                                          if k not in ("batch_size", "n_critic")},
    )
    assert trainer.adversarial
    summary = trainer.fit(_data(VECTOR, n=32), max_steps=2)
    assert {"gw", "critic/gradient_penalty"} <= summary.metrics.keys()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prior": "flow"}, ValueError, "prior"),
        ({"prior": nn.Linear(2, 2)}, TypeError, "rsample"),
        ({"latent_dim": 0}, ValueError, "latent_dim"),
        ({"lambda_w": -1.0}, ValueError, "lambda_w"),
        ({"lambda_h": "1"}, TypeError, "lambda_h"),
        ({"rho": 0.5}, ValueError, "rho"),
        ({"critic": nn.Linear(2, 1)}, TypeError, "KantorovichCritic"),
    ],
)
def test_gwae_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        GWAE(VECTOR, **{"latent_dim": 4, **kwargs})


def test_gwae_rejects_bad_inputs_with_their_shapes():
    model = _small_gwae()
    with pytest.raises(ValueError, match=r"\(N, 10\).*\(8, 11\)"):
        model.losses(torch.rand(8, 11))
    with pytest.raises(ValueError, match="at least 2"):
        model.losses(torch.rand(1, 10))
    with pytest.raises(TypeError, match="floating"):
        model.losses(torch.ones(8, 10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        _small_gwae(IMAGE).critic_losses(torch.rand(4, 1, 32, 32))
    bad_encoder = GWAE(VECTOR, latent_dim=4, encoder=nn.Linear(10, 4))
    with pytest.raises(ValueError, match="2 \\* latent_dim"):
        bad_encoder.losses(torch.rand(8, 10))


def test_aggregated_posterior_norm_standardises_the_aggregated_posterior():
    norm = AggregatedPosteriorNorm(3, momentum=1.0, eps=0.0)
    g = torch.Generator().manual_seed(0)
    mu = 3.0 + 2.0 * torch.randn(64, 3, generator=g)
    logvar = torch.randn(64, 3, generator=g)
    mu_hat, logvar_hat = norm(mu, logvar)
    # law of total variance: mean of the variances + unbiased variance of the means = 1
    total = logvar_hat.exp().mean(0) + mu_hat.var(0, unbiased=True)
    torch.testing.assert_close(total, torch.ones(3))
    torch.testing.assert_close(mu_hat.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    # eval mode reuses the running statistics (momentum 1: exactly this batch's)
    norm.eval()
    torch.testing.assert_close(norm(mu, logvar)[0], mu_hat)
    norm.train()
    with pytest.raises(ValueError, match="B >= 2"):
        norm(mu[:1], logvar[:1])
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        norm(mu, logvar[:, :2])


def test_aggregated_posterior_norm_gradients_are_finite_in_float64():
    norm = AggregatedPosteriorNorm(2).double()
    mu = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m, v: norm(m, v), (mu, logvar))


# ------------------------------------------------------------------------------- WAE


@pytest.mark.parametrize("regularizer", ["mmd", "gan"])
@pytest.mark.parametrize("shape", [VECTOR, IMAGE])
def test_wae_losses_are_finite_and_differentiable(regularizer, shape):
    torch.manual_seed(0)
    model = WAE(shape, latent_dim=4, regularizer=regularizer)
    x = _data(shape)
    terms = model.losses(x)
    assert set(terms) == {"loss", "reconstruction", regularizer}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    torch.testing.assert_close(
        terms["loss"], terms["reconstruction"] + model.lambda_z * terms[regularizer]
    )
    terms["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.encoder.parameters())
    assert model.lambda_z == {"mmd": 10.0, "gan": 1.0}[regularizer]


def test_wae_mmd_has_no_critic_and_wae_gan_has_one(tmp_path):
    mmd, gan = WAE(VECTOR, 4), WAE(VECTOR, 4, regularizer="gan")
    assert not hasattr(mmd, "critic_losses") and not hasattr(mmd, "critic_parameters")
    assert hasattr(gan, "critic_losses") and hasattr(gan, "critic_parameters")
    common = {"progress": False, "tensorboard": False, "batch_size": 8}
    assert not Trainer(mmd, out_dir=tmp_path / "mmd", **common).adversarial
    trainer = Trainer(gan, out_dir=tmp_path / "gan", **common)
    assert trainer.adversarial
    summary = trainer.fit(_data(VECTOR, n=16), max_steps=2)
    assert "critic/accuracy" in summary.metrics


def test_wae_terms_reach_exactly_their_parameters():
    torch.manual_seed(0)
    model = WAE(VECTOR, 4)
    terms = model.losses(_data(VECTOR))
    assert _reached(terms["reconstruction"], model) == {"encoder", "decoder"}
    assert _reached(terms["mmd"], model) == {"encoder"}
    gan = WAE(VECTOR, 4, regularizer="gan")
    x = _data(VECTOR)
    assert _reached(gan.losses(x)["gan"], gan) == {"encoder"}
    assert _reached(gan.critic_losses(x)["loss"], gan) == {"critic"}


def test_wae_stochastic_encoder_samples_around_its_mean():
    torch.manual_seed(0)
    model = WAE(VECTOR, 4, stochastic_encoder=True)
    x = _data(VECTOR)
    assert model.encode(x).shape == (8, 4)
    mean, z = model._codes(x)
    assert not torch.equal(mean, z)
    assert torch.isfinite(model.losses(x)["loss"])


@pytest.mark.parametrize("regularizer", ["mmd", "gan"])
def test_wae_one_step_decreases_a_fixed_batch_loss(regularizer):
    torch.manual_seed(0)
    model = WAE(IMAGE, 4, regularizer=regularizer)
    x = _data(IMAGE)
    disc = set(map(id, model.discriminator.parameters())) if model.has_critic else set()
    opt = torch.optim.Adam([p for p in model.parameters() if id(p) not in disc], lr=1e-4)

    def fixed_loss() -> torch.Tensor:
        torch.manual_seed(1)
        return model.losses(x)["loss"]

    before = fixed_loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        assert fixed_loss() < before


def test_wae_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="regularizer"):
        WAE(VECTOR, regularizer="sinkhorn")
    with pytest.raises(ValueError, match="lambda_z"):
        WAE(VECTOR, lambda_z=-1.0)
    with pytest.raises(ValueError, match="discriminator"):
        WAE(VECTOR, discriminator=nn.Linear(8, 1))
    with pytest.raises(ValueError, match="latent_dim"):
        WAE(VECTOR, latent_dim=-2)
    model = WAE(VECTOR, 4)
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        model.losses(torch.rand(8, 3))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        WAE(VECTOR, 4, encoder=nn.Linear(10, 5)).losses(torch.rand(8, 10))
    with pytest.raises(ValueError, match="logits"):
        WAE(VECTOR, 4, regularizer="gan", discriminator=nn.Linear(4, 2)).losses(
            torch.rand(8, 10)
        )


def test_gwae_default_networks_start_informative():
    # The posterior means of different images spread more than the posterior noise and the
    # decoder's output depends on z; with PyTorch's default initialisation the means are
    # ~1e-3 apart under unit-variance noise and GWAE reconstructs the mean image (MNIST,
    # 300 steps: PSNR 9.6 dB, 5-NN accuracy of the codes 0.23).
    from otloss.data import Sprites
    from otloss.models.base import INITIAL_LOGVAR

    torch.manual_seed(0)
    model = GWAE((1, 28, 28))
    x = Sprites(image_size=28).sample(64, np.random.RandomState(0))[1]
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        images = model.decode(model.prior.rsample(64))
    torch.testing.assert_close(logvar, torch.full_like(logvar, INITIAL_LOGVAR))
    assert mu.std(0).mean() > (0.5 * logvar).exp().mean()
    assert images.std(0).mean() > 0.02
