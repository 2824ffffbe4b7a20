"""4. Out-of-distribution detection, MNIST (in) against Omniglot (out): ROC-AUC.

The paper (GWAE, figure 3) shows ROC curves without an AUROC: GWAE with the
Gaussian-mixture prior, scored by its critic's potential, ranks above the likelihood
baselines (VAE, DAGMM). The baseline here is section 2's WAE-MMD scored by -log p(E(x)).
"""

from __future__ import annotations

from torch import Tensor

from benchmarks.reproduce.budget import Context
from benchmarks.reproduce.data import MNIST_SHAPE, load_omniglot
from benchmarks.reproduce.report import Row, Section, auroc_against, choose, fmt, learning
from benchmarks.reproduce.training import batched, train
from otloss import metrics
from otloss.models import GWAE, WAE
from otloss.plots import plot_learning_curves, plot_reconstructions
from otloss.train import seed_everything

#: The issue's target for the paper's score (the paper shows curves only).
AUROC_TARGET = 0.9
HOLDS = {True: "holds", False: "does not hold"}
GWAE_NLL = {
    True: " (below chance: the failure of likelihood scores described for WAE below, on the "
          "same model whose critic separates the sets).",
    False: ".",
}
WAE_CODES = {
    True: ": its sparse strokes encode nearer the prior's mode, the familiar failure of "
          "likelihood scores on out-of-distribution data.",
    False: ".",
}


def ood_experiment(ctx: Context, mnist: tuple[Tensor, ...], wae: WAE) -> Section:
    x_train, _, x_test, _ = mnist
    b = ctx.budget
    steps, batch = b.steps(240, minimum=4), b.batch(64)
    n = b.size(2000, 32)
    x_in = x_test[:n]
    x_out = load_omniglot(ctx.data_root, n, ctx.seed)
    seed_everything(ctx.seed)
    gwae = GWAE(MNIST_SHAPE, latent_dim=16, prior="gmp", n_components=10)

    def potential(x: Tensor) -> Tensor:
        """The paper's score: the critic at the generated pair (decoder(z), z), z = E(x)."""
        z = gwae.encode(x)
        return gwae.critic(gwae.decode(z), z)

    def joint_potential(x: Tensor) -> Tensor:
        """The critic at the encoded pair (x, E(x)): sees the input itself."""
        return gwae.critic(x, gwae.encode(x))

    def gwae_nll(x: Tensor) -> Tensor:
        """The likelihood baselines' score on GWAE's learnt mixture prior: -log pi(E(x))."""
        return -gwae.prior.log_prob(gwae.encode(x))

    def wae_nll(x: Tensor) -> Tensor:
        return -wae.prior.log_prob(wae.encode(x))

    n_curve = max(16, n // 4)

    def curve_auroc() -> float:
        return metrics.ood_auroc(batched(potential, x_in[:n_curve]),
                                 batched(potential, x_out[:n_curve]), higher_is_ood=False)

    curve = train(gwae, x_train, steps, "gwae_gmp", ctx, evaluate=curve_auroc,
                  batch_size=batch)

    auroc = {
        "gwae": metrics.ood_auroc(batched(potential, x_in), batched(potential, x_out),
                                  higher_is_ood=False),
        "gwae_joint": metrics.ood_auroc(batched(joint_potential, x_in),
                                        batched(joint_potential, x_out), higher_is_ood=False),
        "gwae_nll": metrics.ood_auroc(batched(gwae_nll, x_in), batched(gwae_nll, x_out)),
        "wae": metrics.ood_auroc(batched(wae_nll, x_in), batched(wae_nll, x_out)),
    }
    code_norm = {name: float(batched(wae.encode, x).norm(dim=1).mean())
                 for name, x in (("in", x_in), ("out", x_out))}
    samples = plot_reconstructions(x_out[:16], batched(gwae.reconstruct, x_out[:16]),
                                   ctx.figures / "ood_omniglot_reconstructions.png",
                                   title="Omniglot (OoD) and GWAE (GMP) reconstructions")
    exp = "OoD, MNIST (in) vs Omniglot (out)"
    rows = [
        Row(exp, "GWAE (GMP) ROC-AUC, critic potential f(D(z), z) at z = E(x) (the paper's)",
            "best of GWAE / VAE / DAGMM (fig. 3, curves only)", fmt(auroc["gwae"]),
            auroc_against(auroc["gwae"], auroc["wae"], "WAE")),
        Row(exp, "GWAE (GMP) ROC-AUC, critic potential f(x, E(x))", "-",
            fmt(auroc["gwae_joint"]), auroc_against(auroc["gwae_joint"], auroc["wae"], "WAE")),
        Row(exp, "GWAE (GMP) ROC-AUC, -log pi(E(x)) under its learnt mixture prior", "-",
            fmt(auroc["gwae_nll"]), auroc_against(auroc["gwae_nll"], auroc["wae"], "WAE")),
        Row(exp, "WAE-MMD ROC-AUC, -log p(E(x)) under N(0, I)", "VAE baseline below GWAE",
            fmt(auroc["wae"]), "-"),
    ]
    settings = (
        f"GWAE with the Gaussian-mixture prior (10 components, L = 16), otherwise section "
        f"3's settings, {steps} generator steps. Scores on {n} MNIST test images and {n} "
        "Omniglot evaluation-set characters resized to 28 px (ink = 1, as MNIST; the paper "
        "upsamples Omniglot to 10,000). GWAE's score is the paper's estimated Kantorovich "
        "potential E_{p(x|z)} f(x, z) at the posterior mean z = E(x), i.e. f(D(z), z) with "
        "the deterministic decoder D; the critic is trained to be high on encoded pairs, so "
        "low means OoD. The second GWAE row scores the encoded pair f(x, E(x)) instead, "
        "which also sees the input image. The baseline is "
        "section 2's WAE-MMD (same MNIST training) scored by -log N(E(x); 0, I)."
    )
    discussion = [
        "The paper shows ROC curves without quoting an AUROC; its claim is the ordering "
        "GWAE (GMP) above the likelihood baselines. Here the paper's score gives "
        f"{fmt(auroc['gwae'])} against WAE's {fmt(auroc['wae'])}: the ordering "
        + choose(HOLDS, auroc["gwae"] > auroc["wae"])
        + sign_caveat(auroc["gwae"], steps)
        + f". The critic at the encoded pair f(x, E(x)), which sees the input, gives "
        f"{fmt(auroc['gwae_joint'])}; the NLL under GWAE's learnt mixture prior "
        f"{fmt(auroc['gwae_nll'])}" + choose(GWAE_NLL, auroc["gwae_nll"] < 0.5),
        f"WAE codes: mean |E(x)| = {code_norm['in']:.2f} on MNIST, {code_norm['out']:.2f} on "
        "Omniglot. " + likelihood_sentence(auroc["wae"], code_norm),
    ]
    curve_fig = plot_learning_curves({"GWAE (GMP), critic potential": curve.points},
                                     ctx.figures / "ood_auroc_curve.png", ylabel="ROC-AUC",
                                     target=AUROC_TARGET, target_label="target 0.9")
    discussion.append(learning("The GWAE (GMP) ROC-AUC", curve.steps, curve.values,
                               curve.seconds, AUROC_TARGET))
    figures = [(f"ROC-AUC of the critic potential against steps ({n_curve} + {n_curve} "
                "images per point)", curve_fig),
               ("Omniglot characters (odd rows) and GWAE (GMP) reconstructions", samples)]
    return Section("4. Out-of-distribution detection: MNIST against Omniglot", rows, settings,
                   discussion, figures, {"gwae.ood_auroc": auroc["gwae"]})


def sign_caveat(auroc: float, steps: int) -> str:
    """Nothing when the paper's score ranks better than chance, else why it may not."""
    if auroc >= 0.5:
        return ""
    return (f", but the score ranks Omniglot as *more* data-like than MNIST (read as an "
            f"energy, higher = OoD, it would give {fmt(1 - auroc)}). The paper does not "
            "state the sign of its score; this script fixes it from the critic's objective "
            "(high on encoded data pairs) and does not choose it after the fact. After "
            f"{steps} generator steps (a fraction of an epoch) the critic separates encoded "
            "from generated pairs of MNIST; nothing in its training shows it Omniglot, and "
            "the potential of the generated pair (D(z), z) depends on the input only "
            "through its code")


def likelihood_sentence(auroc: float, code_norm: dict[str, float]) -> str:
    """What the WAE likelihood score's AUROC says."""
    if auroc >= 0.5:
        return "The likelihood score separates the two sets better than chance."
    return ("An AUROC below 0.5 means -log p(E(x)) ranks Omniglot as *more* typical than "
            "MNIST" + choose(WAE_CODES, code_norm["out"] < code_norm["in"]))
