"""Train a Wasserstein autoencoder (WAE-MMD, or WAE-GAN with --regularizer gan) on MNIST.

    python examples/wae_mnist.py                         # MNIST IDX files in <root>/mnist/
    python examples/wae_mnist.py --dataset digits        # no files: scikit-learn's digits
    python examples/wae_mnist.py --regularizer gan       # latent discriminator instead of MMD

The run folder (--out) receives checkpoint.pt, model.json, metrics.jsonl,
reconstructions.png and samples.png; --resume continues a run exactly.
"""

from __future__ import annotations

import sys

from otloss import cli
from otloss.models import WAE, OTAutoencoder
from otloss.models.wae import REGULARIZERS
from otloss.train import seed_everything


@cli.application
def main(argv: list[str] | None = None) -> OTAutoencoder:
    """Train, write the figures and return the trained model."""
    parser = cli.example_parser(
        __doc__, model=WAE, dataset="mnist", max_steps=60_000, batch_size=100
    )
    parser.model_flag("latent_dim", help="latent width L (the paper's MNIST value)")
    parser.model_flag("regularizer", choices=REGULARIZERS,
                      help="latent penalty: IMQ multi-scale MMD or a JS-GAN discriminator")
    parser.model_flag("lambda_z", type=float,
                      help="penalty weight (default: the paper's for the regularizer)")
    args = parser.parse_args(argv)

    # -- data and model ----------------------------------------------------------------
    data = cli.load_training_data(args)
    seed_everything(args.seed)
    model = cli.build_model(args, data_shape=cli.data_shape(data))

    # -- training: the paper's Adam settings (WAE.training_defaults) ----------------------
    trainer = cli.make_trainer(model, args)
    cli.announce(trainer, args)
    summary = cli.fit(trainer, data, args)

    # -- figures ------------------------------------------------------------------------
    cli.report(summary, cli.save_figures(model, data, args.out))
    return model


if __name__ == "__main__":
    main(sys.argv[1:])
