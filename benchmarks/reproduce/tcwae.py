"""5. TCWAE (MWS and GAN, two values of beta each) against WAE-MMD on the procedural
sprites: MIG, FactorVAE score, SAP and reconstruction.

The paper (TCWAE, dSprites table): MIG 0.36 (MWS, beta = 50) and 0.34 (GAN, beta = 100)
against WAE's 0.026, at a similar reconstruction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import Tensor, nn
from torch.nn import functional as F

from benchmarks.harness import table
from benchmarks.reproduce.budget import Context
from benchmarks.reproduce.report import Row, Section, choose, fmt, learning
from benchmarks.reproduce.training import Curve, batched, mean_squared_error, train
from otloss import metrics
from otloss.data import Sprites
from otloss.models import TCWAE, WAE
from otloss.models.tcwae import PAPER_WEIGHTS
from otloss.plots import plot_learning_curves, plot_traversals
from otloss.train import seed_everything

#: The paper's scores: MIG, FactorVAE, SAP, reconstruction (64 px dSprites, its units).
PAPER = {
    "WAE": ("0.026", "0.52", "0.010", "3.01"),
    "TCWAE-MWS": ("0.36 (beta = 50)", "0.75", "0.091", "4.16"),
    "TCWAE-GAN": ("0.34 (beta = 100)", "0.78", "0.071", "3.57"),
}
SCORES = ("mig", "factor_vae", "sap")
#: A position factor counts as encoded when one code dimension carries half its entropy.
POSITION_ENCODED = 0.5
ENCODED = {
    True: "Both positions are encoded by single dimensions: the MIG is limited by the second "
          "most informative dimension (the factors are shared), which the TC term is there "
          "to separate.",
    False: "Even the positions, the easiest factors, are not encoded by any single "
           "dimension (the most informative carries less than half of their entropy): the "
           "low MIG comes from an encoder that has not learnt the factors within this "
           "budget, not from factors it encodes but entangles.",
}
#: The issue's reading of the paper's claim at CPU scale: MIG >= 0.10 and >= 3x WAE's.
MIG_TARGET, MIG_RATIO = 0.10, 3.0
BEYOND_NOISE = {True: "beyond the bootstrap noise (the 95 % interval of the difference "
                      "excludes 0)",
                False: "within the bootstrap noise (the 95 % interval of the difference "
                       "includes 0)"}
MAJORITY = {True: ". Reproduced in direction for the majority of the runs.",
            False: ". Not reproduced at this budget for most runs."}


def reconstruction_errors(model: nn.Module, x: Tensor) -> tuple[float, float]:
    """Mean per-image binary cross-entropy and squared error of the reconstructions."""
    x_hat = batched(model.reconstruct, x).clamp(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1).mean()
    return float(bce), mean_squared_error(x, x_hat)


def tcwae_experiment(ctx: Context) -> Section:
    b = ctx.budget
    steps, batch = b.steps(300), b.batch(64)
    image_size = 32
    n_train = b.size(10000, 128)
    n_codes = b.size(3000, 100)
    fv_train, fv_eval, fv_var = b.size(200, 5), b.size(100, 5), b.size(2000, 100)
    sprites = Sprites(image_size=image_size)
    rng = np.random.RandomState(ctx.seed)
    _, x_train = sprites.sample(n_train, rng)
    _, x_eval = sprites.sample(b.size(2000, 32), np.random.RandomState(ctx.seed + 3))
    shape = (1, image_size, image_size)
    runs: list[tuple[str, Callable[[], nn.Module]]] = [
        ("WAE-MMD (lambda = 10)", lambda: WAE(shape, latent_dim=10)),
    ]
    for estimator in ("mws", "gan"):
        paper_beta, _ = _paper_beta(estimator)
        for beta in (paper_beta / 5, paper_beta):
            runs.append((
                f"TCWAE-{estimator.upper()} (beta = {beta:g})",
                lambda e=estimator, bt=beta: TCWAE(shape, latent_dim=10, estimator=e,
                                                    dataset_size=n_train, beta=bt,
                                                    cost="cross_entropy"),
            ))
    scores: dict[str, dict[str, float]] = {}
    curves: dict[str, Curve] = {}
    mig_resamples: dict[str, np.ndarray] = {}
    encoded: dict[str, np.ndarray] = {}  # per factor: max_i I(c_i; v_k) / H(v_k)
    n_boot, n_curve = b.size(100, 5), max(100, n_codes // 3)
    figures = []
    for i, (name, build) in enumerate(runs):
        seed_everything(ctx.seed)
        model = build()

        def curve_mig(m: nn.Module = model) -> float:
            codes, factors = metrics.sample_codes(m.encode, sprites, n_curve,
                                                  random_state=ctx.seed + 5)
            return metrics.mig(codes, factors)

        curves[name] = train(model, x_train, steps, f"sprites_{i}", ctx, evaluate=curve_mig,
                             batch_size=batch)
        encode = model.encode
        # the same random_state: every model is scored on the same factors (paired)
        codes, factors = metrics.sample_codes(encode, sprites, n_codes, random_state=ctx.seed)
        # the same resampling seed and N: the same rows in every model's resamples
        mig_resamples[name] = metrics.bootstrap(metrics.mig, codes, factors,
                                                n_resamples=n_boot, random_state=ctx.seed)
        fv = metrics.factor_vae_score(encode, sprites, num_train=fv_train, num_eval=fv_eval,
                                      num_variance_estimate=fv_var, random_state=ctx.seed)
        bce, sq = reconstruction_errors(model, x_eval)
        encoded[name] = metrics.normalized_mutual_information(codes, factors).max(axis=0)
        scores[name] = {"mig": metrics.mig(codes, factors), "sap": metrics.sap(codes, factors),
                        "mig_sd": float(mig_resamples[name].std()),
                        "factor_vae": fv["eval_accuracy"], "active": fv["num_active_dims"],
                        "bce": bce, "sq": sq}
        if name.startswith("TCWAE-MWS") and "beta = 50" in name:
            path = plot_traversals(model.decode, batched(encode, x_eval[:1])[0],
                                   ctx.figures / "tcwae_traversals.png")
            figures.append((f"{name}: latent traversals", path))
    paper = PAPER
    header = ["model", "MIG (paper)", "MIG", "MIG bootstrap sd", "FactorVAE (paper)",
              "FactorVAE", "SAP (paper)", "SAP", "rec. BCE (paper)", "rec. BCE",
              "rec. squared", "active dims"]
    model_rows = []
    for name, s in scores.items():
        p = paper[name.split(" ")[0].replace("-MMD", "")]
        model_rows.append([name, p[0], fmt(s["mig"]), fmt(s["mig_sd"]), p[1],
                           fmt(s["factor_vae"]), p[2],
                           fmt(s["sap"]), p[3], fmt(s["bce"], 1), fmt(s["sq"], 1),
                           str(s["active"])])
    wae_name = runs[0][0]
    wae_scores = scores[wae_name]
    exp = "TCWAE vs WAE, sprites"
    keys = SCORES
    rows = [Row(exp, f"{wae_name}: MIG / FactorVAE / SAP", "0.026 / 0.52 / 0.010 (lambda = 200)",
                " / ".join(fmt(wae_scores[k]) for k in keys), "baseline")]
    paper_beta_runs = []
    for estimator in ("mws", "gan"):
        name = f"TCWAE-{estimator.upper()} (beta = {_paper_beta(estimator)[0]:g})"
        paper_beta_runs.append(name)
        wins = sum(scores[name][k] > wae_scores[k] for k in keys)
        p = paper[f"TCWAE-{estimator.upper()}"]
        rows.append(Row(exp, f"{name}: MIG / FactorVAE / SAP",
                        f"{p[0].split(' ')[0]} / {p[1]} / {p[2]}",
                        " / ".join(fmt(scores[name][k]) for k in keys),
                        f"above WAE on {wins} of 3"))
    mws = paper_beta_runs[0]
    gap = mig_resamples[mws] - mig_resamples[wae_name]
    low, high = np.percentile(gap, [2.5, 97.5])
    ratio = scores[mws]["mig"] / max(wae_scores["mig"], 1e-12)
    reached = scores[mws]["mig"] >= MIG_TARGET and ratio >= MIG_RATIO
    rows.append(Row(
        exp, f"{mws} MIG against WAE: ratio; difference with its bootstrap 95 % interval",
        "0.36 against 0.026 (14x)",
        f"{ratio:.1f}x; {fmt(scores[mws]['mig'] - wae_scores['mig'])} "
        f"[{fmt(low)}, {fmt(high)}]",
        choose({True: "matches (>= 0.10 and >= 3x WAE)", False: "below the target "
                "(>= 0.10 and >= 3x WAE)"}, reached)))
    rows.append(Row(
        exp, "reconstruction BCE per image: WAE / MWS / GAN (paper's beta)",
        "3.01 / 4.16 / 3.57 (64 px dSprites, its units)",
        " / ".join(fmt(scores[n]["bce"], 1) for n in (wae_name, *paper_beta_runs)), "-",
    ))
    wins_all = {n: sum(scores[n][k] > wae_scores[k] for k in keys) for n in scores
                if n != wae_name}
    collapsed = [n for n in wins_all if scores[n]["active"] == 0]
    settings = (
        f"Procedural sprites (`otloss.data.Sprites`, dSprites' factor grid with 3 shapes, 6 "
        f"scales, 40 orientations, 32 x 32 positions) rendered at {image_size} px instead of "
        f"64 to fit the CPU budget; {n_train} random training images. Every model: L = 10, "
        f"its default networks and optimiser, {steps} steps of batch {batch} (the paper: 300,000-"
        f"600,000 iterations). TCWAE: cross-entropy cost as in the paper's dSprites table, "
        f"gamma from the paper (MWS 100, GAN 5), two betas each (the paper's and a fifth of "
        f"it). WAE-MMD: squared-error cost, lambda = 10 (the paper's WAE used the "
        f"cross-entropy and lambda = 200). MIG and SAP on {n_codes} sampled codes (the lib "
        f"uses 10,000); FactorVAE score with {fv_train} / {fv_eval} votes of 64 images and "
        f"{fv_var} images for the variances (lib: 10,000 / 5,000 / 10,000). Reconstruction: "
        f"mean per-image binary cross-entropy (nats) and squared error on {x_eval.shape[0]} "
        "held-out random sprites. The paper's reconstruction column is on 64 px dSprites in "
        "its own units, so compare our models with each other, not with it."
    )
    discussion = [
        "Scores per model:\n\n" + table(header, model_rows),
        f"MIG noise: {n_boot} paired bootstrap resamples of the {n_codes} evaluation codes "
        f"(every model scored on the same factors and resampled rows). {mws}'s MIG "
        f"{fmt(scores[mws]['mig'])} ± {fmt(scores[mws]['mig_sd'])} against WAE's "
        f"{fmt(wae_scores['mig'])} ± {fmt(wae_scores['mig_sd'])}: the difference "
        f"{fmt(scores[mws]['mig'] - wae_scores['mig'])} [{fmt(low)}, {fmt(high)}] is "
        + choose(BEYOND_NOISE, low > 0 or high < 0) + ". "
        + learning(mws, curves[mws].steps, curves[mws].values, curves[mws].seconds,
                   max(MIG_TARGET, MIG_RATIO * wae_scores["mig"]))
        + " " + learning(wae_name, curves[wae_name].steps, curves[wae_name].values,
                         curves[wae_name].seconds),
        "How much of each factor (" + ", ".join(sprites.factor_names) + ") the most "
        "informative code dimension carries, max_i I(c_i; v_k) / H(v_k): "
        + "; ".join(f"{n}: " + " / ".join(f"{v:.2f}" for v in encoded[n])
                    for n in (wae_name, mws))
        + ". " + choose(ENCODED, float(encoded[mws][-2:].min()) >= POSITION_ENCODED),
        "The paper's claim, TCWAE disentangles better than WAE at similar reconstruction: "
        + "; ".join(f"{n} beats WAE on {w} of the 3 scores" for n, w in wins_all.items())
        + choose(MAJORITY, sum(w >= 2 for w in wins_all.values()) > len(wins_all) / 2)
        + collapse_sentence(collapsed, steps)
        + f" Absolute scores are below the paper's because every model had {steps} steps "
        "instead of hundreds of thousands, on 32 px images, with metric sample sizes a "
        "fraction of disentanglement_lib's (noisier, and MIG's plug-in estimate is biased "
        "upwards on few samples): differences between the models of a few thousandths in "
        "MIG and SAP, or of a few hundredths in the FactorVAE score (its votes), are within "
        "that noise.",
    ]
    figures.insert(0, (f"MIG against steps ({n_curve} codes per point)", plot_learning_curves(
        {n: c.points for n, c in curves.items()}, ctx.figures / "tcwae_mig_curve.png",
        ylabel="MIG", target=MIG_TARGET, target_label="target 0.10")))
    numbers = {"tcwae_mws.mig": scores[paper_beta_runs[0]]["mig"],
               "wae_sprites.mig": wae_scores["mig"]}
    return Section("5. TCWAE against WAE on the procedural sprites", rows, settings,
                   discussion, figures, numbers)


def collapse_sentence(collapsed: list[str], steps: int) -> str:
    """Which TCWAE runs have no active code dimension, and why; nothing if none."""
    if not collapsed:
        return ""
    return (f" The TCWAE runs {', '.join(collapsed)} have no active code dimension (every "
            "posterior mean varies with standard deviation below 0.05, FactorVAE's pruning "
            "threshold, so their FactorVAE score is 0): with beta and gamma weighting the KL "
            f"terms this heavily, {steps} steps leave the encoder collapsed onto the prior "
            "(compare their squared reconstruction error with WAE's).")


def _paper_beta(estimator: str) -> tuple[float, float]:
    """The paper's (beta, gamma) of ``estimator`` with the cross-entropy cost."""
    return PAPER_WEIGHTS[(estimator, "cross_entropy")]
