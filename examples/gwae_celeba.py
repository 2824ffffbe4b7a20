"""Train a Gromov-Wasserstein autoencoder (GWAE) on CelebA, or on the embedded digits.

    python examples/gwae_celeba.py                        # CelebA 64x64 (needs the files)
    python examples/gwae_celeba.py --dataset digits       # no files: scikit-learn's digits

CelebA goes in <data root>/celeba/ (img_align_celeba/*.jpg, list_eval_partition.txt,
list_attr_celeba.txt; the data root is --data-root, else $OTLOSS_DATA, else
~/.otloss/data). The run folder (--out) receives checkpoint.pt, model.json,
metrics.jsonl, reconstructions.png, samples.png and isometry.png; --resume continues a
run exactly.
"""

from __future__ import annotations

import sys

import torch

from otloss import cli
from otloss.metrics import isometry_pairs
from otloss.models import GWAE, OTAutoencoder
from otloss.models.gwae import PRIORS
from otloss.plots import plot_isometry
from otloss.train import seed_everything

# The paper's CelebA runs use L = 64; other data keeps GWAE's default width.
LATENT_DIM = {"celeba": 64}


@cli.application
def main(argv: list[str] | None = None) -> OTAutoencoder:
    """Train, write the figures and return the trained model."""
    parser = cli.example_parser(
        __doc__, model=GWAE, dataset="celeba", max_steps=100_000, batch_size=64
    )
    parser.model_flag("latent_dim", type=int, default=lambda args: LATENT_DIM.get(args.dataset),
                      help="latent width L (default: 64 on CelebA, GWAE's otherwise)")
    parser.model_flag("prior", choices=PRIORS,
                      help="neural, factorised neural, Gaussian-mixture or N(0, I) prior")
    parser.model_flag("lambda_w", help="weight of L_W")
    parser.model_flag("lambda_d", help="weight of L_D")
    parser.model_flag("lambda_h", help="weight of R_H")
    parser.model_flag("aggregated_norm",
                      help="normalise the encoder by the aggregated posterior (C.2)")
    parser.train_flag("n_critic", help="critic steps per generator step", type=int)
    args = parser.parse_args(argv)

    # -- data and model ----------------------------------------------------------------
    data = cli.load_training_data(args)
    seed_everything(args.seed)
    model = cli.build_model(args, data_shape=cli.data_shape(data))

    # -- training: RMSprop 1e-4 / 5e-5 and n_critic critic steps per step (C.2) -----------
    trainer = cli.make_trainer(model, args)
    cli.announce(trainer, args)
    summary = cli.fit(trainer, data, args)

    # -- figures: reconstructions, samples and the isometry histogram (Fig. 1b) ----------
    figures = cli.save_figures(model, data, args.out)
    with torch.no_grad():
        z = model.prior.rsample(142)  # 142 codes give ~10,000 pairs, as in Fig. 1b
        dz, dx = isometry_pairs(model.decode(z).cpu(), z.cpu())
    figures.append(plot_isometry(dz, dx, f"{args.out}/isometry.png", scale=model.gw.scale.item()))
    cli.report(summary, figures)
    return model


if __name__ == "__main__":
    main(sys.argv[1:])
