"""Train a symmetric Wasserstein autoencoder (SWAE) with a learnable pseudo-input prior on MNIST.

    python examples/swae_mnist.py                         # MNIST IDX files in <root>/mnist/
    python examples/swae_mnist.py --dataset digits        # no files: scikit-learn's digits

The prior is a mixture of conditional Gaussians given K learnable pseudo-inputs,
initialised from training images; each sample is matched with its nearest pseudo-input.
The run folder (--out) receives checkpoint.pt, model.json, metrics.jsonl,
reconstructions.png, samples.png and pseudo_inputs.png; --resume continues a run exactly.
"""

from __future__ import annotations

import sys

from otloss import cli
from otloss.models import SWAE, OTAutoencoder
from otloss.models.swae import NEAREST
from otloss.plots import plot_samples
from otloss.train import seed_everything


@cli.application
def main(argv: list[str] | None = None) -> OTAutoencoder:
    """Train, write the figures and return the trained model."""
    parser = cli.example_parser(
        __doc__, model=SWAE, dataset="mnist", max_steps=60_000, batch_size=100
    )
    parser.model_flag("latent_dim", help="latent width L (the paper's MNIST value)")
    parser.model_flag("n_pseudo", help="pseudo-inputs K, at most a third of the data")
    parser.model_flag("beta", help="share of the x-loss")
    parser.model_flag("alpha", help="weight of the z-loss")
    parser.model_flag("nearest", choices=NEAREST,
                      help="space where each sample's nearest pseudo-input is chosen")
    args = parser.parse_args(argv)

    # -- data and model: pseudo-inputs start as training images (a resume reloads them) ----
    data = cli.load_training_data(args)
    seed_everything(args.seed)
    n_pseudo = min(cli.model_arguments(args)["n_pseudo"], len(data) // 3)
    model = cli.build_model(args, data_shape=cli.data_shape(data), n_pseudo=n_pseudo)
    model.init_pseudo_inputs(cli.first_images(data, model.prior.n_pseudo))

    # -- training: the paper's Adam settings (SWAE.training_defaults) ---------------------
    trainer = cli.make_trainer(model, args)
    cli.announce(trainer, args)
    summary = cli.fit(trainer, data, args)

    # -- figures: reconstructions, samples and the learnt pseudo-inputs ------------------
    figures = cli.save_figures(model, data, args.out)
    pseudo = model.prior.pseudo_inputs[:32].detach().cpu()
    figures.append(plot_samples(pseudo, f"{args.out}/pseudo_inputs.png", title="pseudo-inputs"))
    cli.report(summary, figures)
    return model


if __name__ == "__main__":
    main(sys.argv[1:])
