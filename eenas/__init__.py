"""eenas: hardware-aware NAS of early-exit networks for multi-core edge accelerators."""

__version__ = "0.1.0"
