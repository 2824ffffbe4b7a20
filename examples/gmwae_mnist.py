"""Train a Gaussian-mixture WAE (GM-WAE) on MNIST: clusters in a mixture latent space.

    python examples/gmwae_mnist.py                        # MNIST IDX files in <root>/mnist/
    python examples/gmwae_mnist.py --dataset digits       # no files: scikit-learn's digits

The component heads are first pre-trained by moment matching (each head onto its prior
component, as in the paper), then the whole model trains on reconstruction + weighted
MMD. The run folder (--out) receives checkpoint.pt, model.json, metrics.jsonl,
reconstructions.png, samples.png and clusters.png (mean q(k | x) per class); --resume
continues a run exactly.
"""

from __future__ import annotations

import sys

import torch

from otloss import cli
from otloss.models import GMWAE, OTAutoencoder
from otloss.plots import plot_cluster_posterior
from otloss.train import InfiniteBatches, seed_everything


@cli.application
def main(argv: list[str] | None = None) -> OTAutoencoder:
    """Train, write the figures and return the trained model."""
    parser = cli.example_parser(
        __doc__, model=GMWAE, dataset="mnist", max_steps=50_000, batch_size=100
    )
    parser.model_flag("latent_dim", help="latent width L (the paper's)")
    parser.model_flag("n_components", help="mixture components K (the paper's)")
    parser.model_flag("lambda_z", help="MMD weight (the paper's; for short runs 20 lets "
                      "q(k | x) split the classes within a few hundred steps, see "
                      "docs/models.md)")
    parser.add_argument("--pretrain-steps", type=int, default=500,
                        help="moment-matching steps of the heads before training (0: none)")
    args = parser.parse_args(argv)

    # -- data and model ----------------------------------------------------------------
    data = cli.load_training_data(args)
    seed_everything(args.seed)
    model = cli.build_model(args, data_shape=cli.data_shape(data))
    trainer = cli.make_trainer(model, args)

    # -- pre-training of the heads (a resumed run has it in its checkpoint) ---------------
    if not cli.will_resume(args):
        model.pretrain_heads(InfiniteBatches(data, trainer.config.batch_size, seed=args.seed),
                             args.pretrain_steps, lr=trainer.config.lr)

    # -- training: the paper's Adam settings (GMWAE.training_defaults) --------------------
    cli.announce(trainer, args)
    summary = cli.fit(trainer, data, args)

    # -- figures: reconstructions, samples and the cluster posterior per class ------------
    figures = cli.save_figures(model, data, args.out)
    x, labels = zip(*(data[i] for i in range(min(len(data), 1000))), strict=True)
    with torch.no_grad():
        probs = model.component_probs(torch.stack(x).to(trainer.device)).cpu()
    figures.append(plot_cluster_posterior(torch.stack(labels), probs, f"{args.out}/clusters.png"))
    cli.report(summary, figures)
    return model


if __name__ == "__main__":
    main(sys.argv[1:])
