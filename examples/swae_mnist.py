"""Train a symmetric Wasserstein autoencoder (SWAE) with a learnable pseudo-input prior on MNIST.

    python examples/swae_mnist.py                         # MNIST IDX files in <root>/mnist/
    python examples/swae_mnist.py --dataset digits        # no files: scikit-learn's digits

The prior is a mixture of conditional Gaussians given K learnable pseudo-inputs,
initialised from training images; each sample is matched with its nearest pseudo-input.
The run folder (--out) receives checkpoint.pt, metrics.jsonl, reconstructions.png,
samples.png and pseudo_inputs.png; --resume continues a run exactly.
"""

from __future__ import annotations

import sys

from otloss import cli
from otloss.models import SWAE
from otloss.plots import plot_samples
from otloss.train import seed_everything


def main(argv: list[str] | None = None) -> None:
    parser = cli.example_parser(
        __doc__, name="swae", dataset="mnist", max_steps=60_000, batch_size=100
    )
    parser.add_argument("--latent-dim", type=int, default=8, help="L (the paper's MNIST: 8)")
    parser.add_argument("--n-pseudo", type=int, default=None,
                        help="pseudo-inputs K (default: 4000, at most a third of the data)")
    parser.add_argument("--beta", type=float, default=0.5, help="x-loss share (paper: 0.5)")
    parser.add_argument("--alpha", type=float, default=1.0, help="z-loss weight (paper: 1)")
    parser.add_argument("--nearest", default="data", choices=["data", "latent", "cosine"],
                        help="space where each sample's nearest pseudo-input is chosen")
    args = parser.parse_args(argv)

    # -- data and model: pseudo-inputs start as training images (a resume reloads them) ----
    data = cli.load_training_data(args)
    n_pseudo = args.n_pseudo or min(4000, len(data) // 3)
    seed_everything(args.seed)
    model = SWAE(cli.data_shape(data), args.latent_dim, n_pseudo=n_pseudo, beta=args.beta,
                 alpha=args.alpha, nearest=args.nearest)
    model.init_pseudo_inputs(cli.first_images(data, n_pseudo))

    # -- training: Adam 1e-3, as in the paper -------------------------------------------
    trainer = cli.make_trainer(model, args, **SWAE.training_defaults)
    summary = cli.fit(trainer, data, args)

    # -- figures: reconstructions, samples and the learnt pseudo-inputs ------------------
    figures = cli.save_figures(model, data, args.out)
    pseudo = model.prior.pseudo_inputs[:32].detach().cpu()
    figures.append(plot_samples(pseudo, f"{args.out}/pseudo_inputs.png", title="pseudo-inputs"))
    cli.report(summary, figures)


if __name__ == "__main__":
    main(sys.argv[1:])
