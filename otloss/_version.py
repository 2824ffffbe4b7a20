"""The library's version: the one source (``otloss.__version__`` and the package metadata)."""

__version__ = "0.1.0"
