"""Tables as CSV (for scripts) and markdown (for reading), written atomically."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from eenas.io import write_text

if TYPE_CHECKING:  # the CLI imports this module: keep its start free of pandas
    import pandas as pd


def markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g")


def write_csv(out: Path, name: str, frame: pd.DataFrame) -> Path:
    return write_text(out / f"{name}.csv", frame.to_csv(index=False))


def write_markdown(path: Path, title: str, sections: Iterable[tuple[str, str]]) -> Path:
    """A markdown page: ``# title``, then per section ``## heading`` and its body."""
    parts = [f"# {title}", ""]
    for heading, body in sections:
        parts += [f"## {heading}", "", body.rstrip(), ""]
    return write_text(path, "\n".join(parts))
