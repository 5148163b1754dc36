"""Pretrained float weights shipped with the package (``eenas weights list``)."""

from eenas.weights.registry import PRETRAINED_MODES, WeightsEntry, WeightsRegistry, resolve_pretrained, sha256_of

__all__ = ["PRETRAINED_MODES", "WeightsEntry", "WeightsRegistry", "resolve_pretrained", "sha256_of"]
