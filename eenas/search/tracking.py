"""Optional TensorBoard logging of a search: each iteration's values from ``events.jsonl``, as scalars.

``tensorboard`` is an optional extra (``pip install eenas[tensorboard]``); it is imported only
when a run asks for it, and a run that asks without it stops before anything is trained.
"""

from __future__ import annotations

import math
from pathlib import Path

from eenas.errors import EenasError

# Per iteration: hypervolume, evaluated candidates, predictor quality, the best accuracy and ET ratio on the front.
SCALARS = ("hypervolume", "true_evaluations", "front_size", "cv_tau", "tau_new", "rmse_new", "et_tau_new",
           "best_accuracy", "best_et_ratio")


class TensorBoardWriter:
    """An event listener of :class:`~eenas.search.rundir.RunDir`: ``search/<value>`` scalars, step = iteration.

    The log directory is created at the first iteration; a resumed run appends to it.
    """

    def __init__(self, logdir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise EenasError("--tensorboard needs the tensorboard package: pip install eenas[tensorboard]") from None
        self.logdir, self._writer_class, self._writer = Path(logdir), SummaryWriter, None

    def __call__(self, kind: str, fields: dict) -> None:
        if kind == "iteration":
            if self._writer is None:
                self._writer = self._writer_class(str(self.logdir))
            for name in SCALARS:
                value = fields.get(name)
                if value is not None and math.isfinite(value):  # the initial sample has no predictor quality
                    self._writer.add_scalar(f"search/{name}", value, fields["iteration"])
            self._writer.flush()
        elif kind == "finished" and self._writer is not None:
            self._writer.close()
            self._writer = None
