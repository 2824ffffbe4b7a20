"""What `Trainer` needs from a model, and how it asks for a critic.

A model trains if it follows `TrainableModel` (``losses(x) -> dict``); an
adversarial model (a critic or discriminator, e.g. GWAE's joint critic, WAE-GAN,
TCWAE-GAN) also follows `AdversarialModel`. Whether a model has a critic is
decided one way, by `is_adversarial`: it has ``critic_losses`` and
``critic_parameters``. The reference models whose critic is optional expose the two
methods only on instances that have one (`otloss.models.base.critic_method`), so
their ``has_critic`` and `is_adversarial` agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = ["AdversarialModel", "TrainableModel", "check_terms", "is_adversarial"]

_CRITIC_METHODS = ("critic_losses", "critic_parameters")


@runtime_checkable
class TrainableModel(Protocol):
    """What `Trainer` needs from a model (an ``nn.Module``).

    ``losses(x)`` returns a dict of scalar tensors: the total to minimise under
    ``"loss"``, and every term that makes it up (``"gw"``, ``"reconstruction"``, ...),
    which are logged but not differentiated. All parameters of the model that are not
    critic parameters are trained on ``"loss"``.
    """

    def losses(self, x: Tensor) -> dict[str, Tensor]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@runtime_checkable
class AdversarialModel(TrainableModel, Protocol):
    """A `TrainableModel` with a critic trained by its own optimiser.

    ``critic_losses(x)`` returns the critic's objective under ``"loss"`` (to minimise,
    e.g. ``-(E f(real) - E f(fake)) + gradient penalty``) plus its terms;
    ``critic_parameters()`` yields the critic's parameters. The generator's parameters
    are the model's other parameters, found by identity. A critic step updates only the
    critic and a generator step only the generator, whatever graph the losses build.
    """

    def critic_losses(self, x: Tensor) -> dict[str, Tensor]: ...

    def critic_parameters(self) -> Iterable[nn.Parameter]: ...


def is_adversarial(model: object) -> bool:
    """Whether ``model`` has a critic: it has both ``critic_losses`` and
    ``critic_parameters`` (attribute lookup, so a method that an instance does not have
    counts as absent).

    Raises:
        TypeError: the model has one of the two methods but not the other.
    """
    present = [hasattr(model, name) for name in _CRITIC_METHODS]
    if any(present) and not all(present):
        raise TypeError("an adversarial model needs both critic_losses(x) and critic_parameters()")
    return all(present)


def check_terms(terms: object, method: str) -> dict[str, Tensor]:
    """The protocol's contract on ``losses``/``critic_losses`` outputs, from metadata only."""
    if not isinstance(terms, dict) or "loss" not in terms:
        got = list(terms) if isinstance(terms, dict) else type(terms).__name__
        raise TypeError(
            f"model.{method}(x) must return a dict with the total under 'loss', got {got}"
        )
    for name, value in terms.items():
        if not isinstance(value, Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"model.{method}(x)[{name!r}] must be a scalar tensor, got {shape}")
    return terms
