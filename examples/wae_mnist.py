"""Train a Wasserstein autoencoder (WAE-MMD, or WAE-GAN with --regularizer gan) on MNIST.

    python examples/wae_mnist.py                         # MNIST IDX files in <root>/mnist/
    python examples/wae_mnist.py --dataset digits        # no files: scikit-learn's digits
    python examples/wae_mnist.py --regularizer gan       # latent discriminator instead of MMD

The run folder (--out) receives checkpoint.pt, metrics.jsonl, reconstructions.png and
samples.png; --resume continues a run exactly.
"""

from __future__ import annotations

import sys

from otloss import cli
from otloss.models import WAE
from otloss.train import seed_everything


def main(argv: list[str] | None = None) -> None:
    parser = cli.example_parser(
        __doc__, name="wae", dataset="mnist", max_steps=60_000, batch_size=100
    )
    parser.add_argument("--latent-dim", type=int, default=8, help="L (the paper's MNIST: 8)")
    parser.add_argument("--regularizer", default="mmd", choices=["mmd", "gan"],
                        help="latent penalty: IMQ multi-scale MMD or a JS-GAN discriminator")
    parser.add_argument("--lambda-z", type=float, default=None,
                        help="penalty weight (default: 10 for MMD, 1 for GAN)")
    args = parser.parse_args(argv)

    # -- data and model ----------------------------------------------------------------
    data = cli.load_training_data(args)
    seed_everything(args.seed)
    model = WAE(cli.data_shape(data), args.latent_dim, regularizer=args.regularizer,
                lambda_z=args.lambda_z)

    # -- training: Adam 1e-3 (discriminator 5e-4), as in the paper ------------------------
    trainer = cli.make_trainer(model, args, **WAE.training_defaults)
    summary = cli.fit(trainer, data, args)

    # -- figures ------------------------------------------------------------------------
    cli.report(summary, cli.save_figures(model, data, args.out))


if __name__ == "__main__":
    main(sys.argv[1:])
