"""The reproduction report: one command trains every experiment and writes the report."""

import math
import re

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from benchmarks import reproduce
from tests.conftest import SHARED_DATA

needs_data = pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "omniglot").is_dir(),
    reason="needs the real MNIST and Omniglot files in ../shared/data",
)


def test_budget_scales_steps_and_sizes_down_to_their_floors():
    budget = reproduce.Budget(reproduce.REFERENCE_MINUTES / 4)
    assert budget.steps(400) == 100
    assert budget.steps(400, minimum=200) == 200
    assert budget.size(1000, minimum=10) == 250
    assert reproduce.Budget(2 * reproduce.REFERENCE_MINUTES).steps(400) == 800
    assert reproduce.Budget(2 * reproduce.REFERENCE_MINUTES).size(1000, minimum=10) == 1000


def test_budget_must_be_positive():
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--budget-minutes", "0"])


def test_gmvae_elbo_terms_match_torch_distributions():
    torch.manual_seed(0)
    model = reproduce.GMVAE((6,), latent_dim=3, n_components=4)
    x = torch.rand(5, 6)
    terms = model.losses(x)
    log_probs, mu, logvar = model.posterior(x)
    prior = MultivariateNormal(model.prior.means, scale_tril=model.prior.scale_tril)
    posterior = MultivariateNormal(mu, scale_tril=torch.diag_embed((0.5 * logvar).exp()))
    probs = log_probs.exp()
    expected_kl = (probs * kl_divergence(posterior, prior)).sum(-1).mean()
    expected_discrete = (probs * (log_probs + math.log(4))).sum(-1).mean()
    assert torch.allclose(terms["continuous_kl"], expected_kl, atol=1e-5)
    assert torch.allclose(terms["discrete_kl"], expected_discrete, atol=1e-6)
    assert torch.allclose(
        terms["loss"], terms["reconstruction"] + expected_kl + expected_discrete, atol=1e-4
    )
    terms["loss"].backward()
    assert next(model.encoder.parameters()).grad is not None


@pytest.mark.slow
@needs_data
def test_smallest_budget_writes_the_report_with_every_row_and_figure(tmp_path):
    out = tmp_path / "docs" / "results.md"
    path = reproduce.main([
        "--budget-minutes", "0.001",
        "--out", str(out),
        "--work-dir", str(tmp_path / "runs"),
        "--data-root", str(SHARED_DATA),
        "--threads", "1",
        "--jobs", "1",
        "--batch-cap", "16",
    ])
    assert path == out
    text = out.read_text()
    for title in ("GM-WAE on MNIST", "SWAE against WAE-MMD", "GWAE (neural prior)",
                  "Out-of-distribution", "TCWAE against WAE"):
        assert title in text
    for quantity in ("cluster accuracy", f"lambda = {reproduce.SMALL_LAMBDA:g}", "k-means",
                     "GM-VAE", "5-NN", "POT empirical GW",
                     "PSNR", "ROC-AUC", "MIG", "FactorVAE", "SAP"):
        assert quantity in text
    # every figure the report links exists beside it and is a non-empty PNG
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 8
    for link in links:
        png = out.parent / link
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the numbers in the summary table are finite
    numbers = re.findall(r"\| (-?\d+\.\d+|nan|inf) ", text)
    assert numbers and not any(n in ("nan", "inf") for n in numbers)
