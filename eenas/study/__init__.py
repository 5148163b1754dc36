"""Studies and reports: the paper's analyses as commands that write tables and figures.

* :mod:`~eenas.study.precision`: one arch at several (backbone, exits) bit-widths.

See docs/studies.md.
"""

from eenas.study.precision import PRECISION_GRID, PrecisionStudy, run_precision_study, write_precision_study

__all__ = ["PRECISION_GRID", "PrecisionStudy", "run_precision_study", "write_precision_study"]
