"""The reproduction report: one command trains every experiment and writes the report."""

import json
import math
import re

import pytest

from benchmarks import reproduce
from benchmarks.reproduce import report
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
    # every figure the report links exists beside it and is a non-empty PNG, with a
    # learning curve for each model
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 12
    for curve in ("gmwae_accuracy_curve", "swae_knn_curve", "gwae_gw_curves",
                  "ood_auroc_curve", "tcwae_mig_curve"):
        assert f"results/{curve}.png" in links
    assert "learning curve" in text and "bootstrap" in text
    for link in links:
        png = out.parent / link
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the numbers in the summary table are finite
    numbers = re.findall(r"\| (-?\d+\.\d+|nan|inf) ", text)
    assert numbers and not any(n in ("nan", "inf") for n in numbers)
    # the key numbers, as floats, beside the report
    results = json.loads((out.parent / "results.json").read_text())
    assert list(results) == list(reproduce.RESULT_KEYS)
    assert set(results) == {
        "budget_minutes", "gmwae.cluster_accuracy_greedy", "gmwae.lambda",
        "kmeans.cluster_accuracy_greedy", "swae.knn5", "wae_mnist.knn5", "tcwae_mws.mig",
        "wae_sprites.mig", "gwae.ood_auroc",
    }
    assert all(isinstance(v, float) and math.isfinite(v) for v in results.values())
    assert results["budget_minutes"] == 0.001 and results["gmwae.lambda"] == 500.0
    for key in ("gmwae.cluster_accuracy_greedy", "kmeans.cluster_accuracy_greedy",
                "swae.knn5", "wae_mnist.knn5", "gwae.ood_auroc"):
        assert 0.0 <= results[key] <= 1.0, key


def test_learning_sentence_extrapolates_the_measured_slope_only_while_it_rises():
    rising = report.learning("M", [0, 100, 200, 300], [0.5, 0.6, 0.7, 0.8], 60.0, 0.9)
    # last half: slope 0.001 per step, 0.1 short: 100 more steps at 0.2 s per step
    assert "+1.000 per 1000 steps" in rising and "100 more steps" in rising
    assert "about 0 more minutes" in rising
    flat = report.learning("M", [0, 100, 200, 300], [0.5, 0.7, 0.7, 0.7], 60.0, 0.9)
    assert "no longer rises" in flat
    reached = report.learning("M", [0, 100], [0.5, 0.95], 60.0, 0.9)
    assert reached.endswith("per 1000 steps.")
    assert "no learning curve" in report.learning("M", [0], [0.5], 1.0, 0.9)


def test_curves_do_not_change_the_run(tmp_path):
    torch = pytest.importorskip("torch")
    from benchmarks.reproduce.budget import Budget, Context
    from benchmarks.reproduce.training import train
    from otloss.models import WAE

    ctx = Context(Budget(1.0), tmp_path, tmp_path, tmp_path / "runs", 0, 1)
    x = torch.rand(64, 1, 16, 16)
    finals = []
    for evaluate in (None, lambda: float(torch.rand(())) + 0.0):
        torch.manual_seed(0)
        model = WAE((1, 16, 16), latent_dim=2)
        curve = train(model, x, 6, "run", ctx, evaluate=evaluate, batch_size=16)
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        assert len(curve.steps) == (0 if evaluate is None else 7) and curve.seconds > 0
    torch.testing.assert_close(finals[0], finals[1], rtol=0, atol=0)


def test_verdicts_compare_the_measured_value_with_the_target():
    assert report.at_least(0.70, 0.65) == "matches"
    assert report.at_least(0.60, 0.65) == "below the paper"
    assert report.at_most(24.0, 25.0) == "matches"
    assert report.at_most(26.0, 25.0) == "above the paper (worse)"
    assert report.auroc_against(0.9, 0.3, "WAE") == "above WAE"
    assert report.auroc_against(0.4, 0.3, "WAE") == "above WAE, below chance"
    assert report.trend(3.0, 2.0) == "falls" and report.trend(2.0, 3.0) == "does not fall"
    assert "in the paper's range" in report.shortfall("x", 0.7, 0.65, "why")
    assert report.shortfall("x", 0.5, 0.65, "too few steps").endswith("too few steps.")


def test_results_json_needs_every_key_and_writes_non_finite_numbers_as_null(tmp_path):
    numbers = {key: 0.5 for key in reproduce.RESULT_KEYS if key != "budget_minutes"}
    numbers["swae.knn5"] = float("nan")
    section = reproduce.Section("t", [], "", [], [], numbers)
    path = report.write_results(tmp_path / "results.json", [section], 3.0)
    results = json.loads(path.read_text())
    assert results["budget_minutes"] == 3.0 and results["swae.knn5"] is None
    del numbers["gwae.ood_auroc"]
    with pytest.raises(ValueError, match=r"gwae\.ood_auroc"):
        report.write_results(tmp_path / "r.json", [section], 3.0)

