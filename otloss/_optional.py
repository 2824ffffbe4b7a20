"""Imports of optional dependencies with an error message that says what to install.

The core of otloss needs only torch and numpy. Evaluation (``otloss.metrics``) and
figures (``otloss.plots``) use scikit-learn, SciPy, POT and matplotlib, which come with
the ``examples`` and ``compare`` extras.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_optional"]

#: pip distribution name and otloss extra of each optional module.
_DISTRIBUTIONS = {
    "sklearn": ("scikit-learn", "examples"),
    "scipy": ("scipy", "examples"),
    "matplotlib": ("matplotlib", "examples"),
    "PIL": ("pillow", "examples"),
    "ot": ("pot", "compare"),
}


def import_optional(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``"sklearn.ensemble"``) or raise an ImportError naming the fix.

    Args:
        module: dotted module name.
        purpose: what needs it, e.g. ``"otloss.metrics.dci"``, quoted in the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        dist, extra = _DISTRIBUTIONS.get(top, (top, None))
        hint = f"pip install {dist}" + (f" (or otloss's [{extra}] extra)" if extra else "")
        raise ImportError(f"{purpose} needs the optional dependency {dist!r}: {hint}") from err
