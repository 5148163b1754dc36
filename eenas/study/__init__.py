"""Studies and reports: the paper's analyses as commands that write tables and figures.

* :mod:`~eenas.study.precision`: one arch at several (backbone, exits) bit-widths.
* :mod:`~eenas.study.mounts`: identical exit heads at every placement of their mount points.
* :mod:`~eenas.study.hardware`: archs on several accelerators, ranked by average ET.
* :mod:`~eenas.study.heads`: every exit head of a space, trained once: is the head bank sane?
* :mod:`~eenas.study.report`: every figure of a search run and ``report.md``.
* :mod:`~eenas.study.reference`: the reference work's released nets, and a front drawn against them.

See docs/studies.md.
"""

from eenas.study.mounts import MountSettings, MountStudy, run_mount_study, write_mount_study
from eenas.study.precision import PRECISION_GRID, PrecisionStudy, run_precision_study, write_precision_study
from eenas.study.report import load_results, write_report

__all__ = [
    "PRECISION_GRID", "MountSettings", "MountStudy", "PrecisionStudy", "load_results", "run_mount_study",
    "run_precision_study", "write_mount_study", "write_precision_study", "write_report",
]
