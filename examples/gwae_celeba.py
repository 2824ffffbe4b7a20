"""Train a Gromov-Wasserstein autoencoder (GWAE) on CelebA, or on the embedded digits.

    python examples/gwae_celeba.py                        # CelebA 64x64 (needs the files)
    python examples/gwae_celeba.py --dataset digits       # no files: scikit-learn's digits

CelebA goes in <data root>/celeba/ (img_align_celeba/*.jpg, list_eval_partition.txt,
list_attr_celeba.txt; the data root is --data-root, else $OTLOSS_DATA, else
~/.otloss/data). The run folder (--out) receives checkpoint.pt, metrics.jsonl,
reconstructions.png, samples.png and isometry.png; --resume continues a run exactly.
"""

from __future__ import annotations

import sys

import torch

from otloss import cli
from otloss.metrics import isometry_pairs
from otloss.models import GWAE
from otloss.plots import plot_isometry
from otloss.train import seed_everything

# Latent width per dataset (the paper's CelebA runs use 64; small data needs fewer).
LATENT_DIM = {"celeba": 64}
DEFAULT_LATENT_DIM = 16


def main(argv: list[str] | None = None) -> None:
    parser = cli.example_parser(
        __doc__, name="gwae", dataset="celeba", max_steps=100_000, batch_size=64
    )
    parser.add_argument("--latent-dim", type=int, default=None,
                        help=f"L (default: 64 on CelebA, {DEFAULT_LATENT_DIM} otherwise)")
    parser.add_argument("--prior", default="np", choices=["np", "fnp", "gmp", "normal"],
                        help="neural, factorised neural, Gaussian-mixture or N(0, I) prior")
    parser.add_argument("--lambda-w", type=float, default=1.0, help="weight of L_W")
    parser.add_argument("--lambda-d", type=float, default=1.0, help="weight of L_D")
    parser.add_argument("--lambda-h", type=float, default=0.06, help="weight of R_H")
    parser.add_argument("--n-critic", type=int, default=GWAE.training_defaults["n_critic"],
                        help="critic steps per generator step")
    parser.add_argument("--aggregated-norm", action="store_true",
                        help="normalise the encoder by the aggregated posterior (C.2)")
    args = parser.parse_args(argv)

    # -- data ------------------------------------------------------------------------
    data = cli.load_training_data(args)
    latent_dim = args.latent_dim or LATENT_DIM.get(args.dataset, DEFAULT_LATENT_DIM)

    # -- model -----------------------------------------------------------------------
    seed_everything(args.seed)
    model = GWAE(
        cli.data_shape(data),
        latent_dim,
        prior=args.prior,
        lambda_w=args.lambda_w,
        lambda_d=args.lambda_d,
        lambda_h=args.lambda_h,
        aggregated_norm=args.aggregated_norm,
    )

    # -- training: RMSprop 1e-4 / 5e-5 and n_critic critic steps per step (C.2) -----------
    trainer = cli.make_trainer(model, args, **{**GWAE.training_defaults, "n_critic": args.n_critic})
    summary = cli.fit(trainer, data, args)

    # -- figures: reconstructions, samples and the isometry histogram (Fig. 1b) ----------
    figures = cli.save_figures(model, data, args.out)
    with torch.no_grad():
        z = model.prior.rsample(142)  # 142 codes give ~10,000 pairs, as in Fig. 1b
        dz, dx = isometry_pairs(model.decode(z).cpu(), z.cpu())
    figures.append(plot_isometry(dz, dx, f"{args.out}/isometry.png", scale=model.gw.scale.item()))
    cli.report(summary, figures)


if __name__ == "__main__":
    main(sys.argv[1:])
