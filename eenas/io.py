"""Atomic file writes, so a killed run never leaves a half-written result behind, and JSON reads that fail in
one line."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from eenas.errors import EenasError

DEFAULT_CACHE_DIR = Path("~/.cache/eenas").expanduser()  # trained weights, logits, searched allocations
_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it) and put back at once
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write through ``write(fileobj)`` to a temporary file, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it the mode open() would have
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """The JSON value in ``path`` (a ``what``: "arch file", ...).  A missing or unreadable file, one that is not
    UTF-8 or not JSON (a truncated write) or nested too deeply for the parser is an error naming it, not a
    traceback."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EenasError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise EenasError(f"{path}: not a text file (not UTF-8), so not JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EenasError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise EenasError(f"{path}: JSON nested too deeply to read") from None


def join(values: Iterable[float]) -> str:
    """Per-exit values in one table cell, ';'-joined to 6 significant digits (tables only: files keep numbers)."""
    return ";".join(f"{v:.6g}" for v in values)
