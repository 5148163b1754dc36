"""ENOS: energy-aware network operator search for hybrid digital and compute-in-memory accelerators.

Follows Nasrin et al., arXiv:2104.05217; see docs/enos.md.  Only the CLI imports this package.
"""

from eenas.enos.pretrain import pretrain_float, publish_float
from eenas.enos.search import EnosConfig, RunResult, run_enos
from eenas.enos.sweep import SweepResult, parse_energy_weights, parse_seeds, run_sweep

__all__ = ["EnosConfig", "RunResult", "SweepResult", "parse_energy_weights", "parse_seeds", "pretrain_float",
           "publish_float", "run_enos", "run_sweep"]
