"""Content-addressed cache of trained weights and logits under ``--cache-dir``.

Entries are keyed by a hash of everything that determines them, written atomically and
loaded with ``weights_only=True``.  A file that fails to load is deleted and rebuilt, never
trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from eenas.io import DEFAULT_CACHE_DIR, atomic_write

log = logging.getLogger(__name__)


def config_hash(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Cache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root else DEFAULT_CACHE_DIR
        # Entries ("kind/key") this process read from disk and those it built, each once in first-use
        # order: a run records them, so which of its numbers come from earlier runs' weights is known.
        self.loaded: dict[str, None] = {}
        self.trained: dict[str, None] = {}
        # Called with (entry, seconds) after each build: a search logs its trained jobs with them.
        self.listeners: list[Callable[[str, float], None]] = []

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.pt"

    def checkpoint(self, kind: str, key: str) -> Path:
        """Where the training of ``kind/key`` keeps its per-epoch state until the entry is saved."""
        return self.root / "checkpoints" / kind / f"{key}.pt"

    def load(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self.path(kind, key)
        if not path.exists():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(data, dict):
                raise ValueError("not a dict")
        except Exception as exc:  # truncated, garbage or foreign file: rebuild it
            log.warning("cache file %s is corrupt (%s); rebuilding it", path, type(exc).__name__)
            path.unlink(missing_ok=True)
            return None
        return data

    def save(self, kind: str, key: str, data: dict[str, Any]) -> None:
        atomic_write(self.path(kind, key), lambda fh: torch.save(data, fh))

    def get_or_build(
        self, kind: str, key: str, build: Callable[[], dict[str, Any]], check: Callable[[dict], None] | None = None
    ) -> dict[str, Any]:
        """Load ``kind/key``, or build and store it; ``check`` may reject a loaded entry."""
        data = self.load(kind, key)
        if data is not None and check is not None:
            try:
                check(data)
            except Exception as exc:
                log.warning("cache entry %s/%s does not fit (%s); rebuilding it", kind, key, exc)
                data = None
        if data is not None:
            self.loaded.setdefault(f"{kind}/{key}")
            return data
        start = time.perf_counter()
        data = build()
        self.store(kind, key, data, time.perf_counter() - start)  # nested builds included
        return data

    def store(self, kind: str, key: str, data: dict[str, Any], seconds: float) -> None:
        """Save an entry this run trained (here or on a cluster worker) and tell the listeners."""
        self.save(kind, key, data)
        self.trained.setdefault(f"{kind}/{key}")
        for listener in self.listeners:
            listener(f"{kind}/{key}", seconds)
