"""Loading accelerators: presets by name, files by path (eenas's own format or Stream's), cached.

Apart from the data model (:mod:`eenas.hardware.accelerator`), which the Stream reader
(:mod:`eenas.hardware.stream_format`) builds on: this module dispatches to both, so neither imports the other's
loader.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from eenas.errors import EenasError
from eenas.hardware.accelerator import (
    CASE_STUDY_PRESETS,
    DEFAULT_HARDWARE,
    PRESETS,
    Accelerator,
    _with_weights,
    accelerator_from_dict,
    is_preset,
    read_yaml,
)
from eenas.hardware.stream_format import is_stream, stream_accelerator


def _parse(path: Path | Traversable, source: str, default_name: str, read: list[str] | None = None) -> Accelerator:
    """eenas's own format, or a Stream accelerator file whose core files lie beside it (their paths
    are appended to ``read``)."""
    data = read_yaml(path, source)
    try:
        if is_stream(data):
            base = path.parent if isinstance(path, Path) else _presets_folder()
            return stream_accelerator(data, base, default_name, read if read is not None else [])
        return accelerator_from_dict(data, default_name)
    except EenasError as exc:
        raise EenasError(f"{source}: {exc}") from None


def _presets_folder() -> Traversable:
    return resources.files("eenas.hardware").joinpath("presets")


@functools.cache
def _preset(name: str) -> Accelerator:
    return _parse(_presets_folder().joinpath(f"{name}.yaml"), name, name)


# The core files each Stream file read, so that its cache entry also depends on their stamps.
_CORE_FILES: dict[str, tuple[str, ...]] = {}


def _stamp(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _from_file(path: str, stamps: tuple[tuple[int, int], ...]) -> Accelerator:
    read: list[str] = []
    acc = _parse(Path(path), path, Path(path).stem, read)
    _CORE_FILES[path] = tuple(read)
    return acc


def clear_loaded() -> None:
    """Forget loaded presets and files (for cold-start benchmarks)."""
    _preset.cache_clear()
    _from_file.cache_clear()
    _with_weights.cache_clear()


def load_accelerator(name_or_path: str | os.PathLike | Accelerator = DEFAULT_HARDWARE) -> Accelerator:
    """A preset by name (:data:`PRESETS`) or a YAML file by path: eenas's own format, or a Stream
    accelerator file (1.x ``graph:`` or 2.x ``core_connectivity:`` form) with its ZigZag core files.

    Results are cached (files by path, modification time and size, a Stream file's core files
    included), so the search can call this for every candidate.
    """
    if isinstance(name_or_path, Accelerator):
        return name_or_path
    text = os.fspath(name_or_path)
    if is_preset(text):
        return _preset(text)
    if not os.path.exists(text):
        raise EenasError(
            f"unknown hardware '{text}' (presets: {', '.join(PRESETS + CASE_STUDY_PRESETS)}; or a path to a YAML file)"
        )
    try:
        return _from_file(text, tuple(_stamp(p) for p in (text, *_CORE_FILES.get(text, ()))))
    except OSError as exc:
        raise EenasError(f"cannot read hardware file {text}: {exc.strerror}") from None
